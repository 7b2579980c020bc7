#!/usr/bin/env bash
# Accepted and delivered msg/s through ct-relay (fsync on), next to the same
# load sent straight to the sink, measured in the same run.
#
#   bench/run.sh [--messages N] [--sessions S] [--size BYTES] [--rate MSGS_PER_S | --half-rate]
#                [--storage-url URL | --postgres | --both]
#
# Defaults: 2000 messages, 16 sessions, 10 KiB each, SQLite in a temporary
# folder. --postgres makes a fresh database on $DATABASE_URL's server
# (default the local one) and drops it afterwards; --both runs SQLite, then
# PostgreSQL. Prints one JSON line per run, with the accept latency (end of
# DATA to 250) at p50/p99/max. --rate paces the load; --half-rate runs once
# flat out, then again paced at half the accepted rate it measured.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin ct-relay --example bench_load

args=()
backends=(sqlite)
half=""
admin="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
for a in "$@"; do
    case "$a" in
        --postgres) backends=(postgres) ;;
        --both) backends=(sqlite postgres) ;;
        --half-rate) half=1 ;;
        *) args+=("$a") ;;
    esac
done
db="ct_bench_$(date +%s)_$$"
cleanup() { psql "$admin" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" 2>/dev/null || true; }
# One run; with --half-rate, a second one paced at half the first's rate.
run() {
    local out
    out=$(target/release/examples/bench_load --relay target/release/ct-relay "$@")
    echo "$out"
    if [ -n "$half" ]; then
        local rate
        rate=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["relay_accepted_msgs_per_s"] / 2)' "$out")
        target/release/examples/bench_load --relay target/release/ct-relay "$@" --rate "$rate"
    fi
}
for backend in "${backends[@]}"; do
    if [ "$backend" = postgres ]; then
        trap cleanup EXIT
        psql "$admin" -qc "CREATE DATABASE $db"
        run "${args[@]}" --storage-url "${admin%/*}/$db"
    else
        run "${args[@]}"
    fi
done
