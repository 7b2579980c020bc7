#!/usr/bin/env bash
# Run every cargo-fuzz target (fuzz/fuzz_targets) for SECONDS each, default 60,
# starting from the committed seeds in fuzz/seeds/<target> (header_mask also
# from tests/corpus/headers). New inputs go to
# fuzz/corpus/<target> (not committed); a crash stops the run with the input
# saved under fuzz/artifacts/<target>/ and a non-zero exit.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]       explore: a new random seed each run
#   scripts/fuzz.sh --runs N [TARGET...]        fixed: N inputs, seed 1, a fresh
#                                               corpus (what CI runs)
set -euo pipefail
limit=(-max_total_time="${1:-60}")
corpus=corpus
if [ "${1:-}" = --runs ]; then
    limit=(-runs="${2:?--runs needs a number}" -seed=1)
    corpus=corpus-fixed
    shift
fi
shift || true
cd "$(dirname "$0")/../fuzz"

# cargo-fuzz builds with -Zsanitizer=address, a nightly flag; this machine
# has only stable Rust, which accepts it with RUSTC_BOOTSTRAP.
export RUSTC_BOOTSTRAP=1
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list)
fi
cargo fuzz build
for target in "${targets[@]}"; do
    # The fixed run starts from the seeds alone, every time.
    [ "$corpus" = corpus ] || rm -rf "${corpus:?}/$target"
    mkdir -p "$corpus/$target" artifacts
    log="artifacts/$target.log"
    echo "== $target: ${limit[*]}"
    status=0
    # The header masker also starts from the real-world header corpus.
    extra=()
    [ "$target" = header_mask ] && extra=(../tests/corpus/headers)
    cargo fuzz run "$target" "$corpus/$target" "seeds/$target" "${extra[@]}" -- \
        "${limit[@]}" -print_final_stats=1 >"$log" 2>&1 || status=$?
    grep -E '^(Done|stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb))' "$log" || true
    if [ "$status" -ne 0 ]; then
        tail -n 80 "$log" >&2
        echo "fuzz target $target failed (exit $status); the input is under fuzz/artifacts/$target/" >&2
        exit "$status"
    fi
done
