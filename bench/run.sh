#!/usr/bin/env bash
# Accepted and delivered msg/s through ct-relay (fsync on), next to the same
# load sent straight to the sink, measured in the same run.
#
#   bench/run.sh [--messages N] [--sessions S] [--size BYTES] [--storage-url URL | --postgres]
#
# Defaults: 2000 messages, 16 sessions, 10 KiB each, SQLite in a temporary
# folder. --postgres makes a fresh database on $DATABASE_URL's server
# (default the local one) and drops it afterwards. Prints one JSON line.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin ct-relay --example bench_load

args=()
db=""
admin="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
for a in "$@"; do
    if [ "$a" = "--postgres" ]; then
        db="ct_bench_$(date +%s)_$$"
        psql "$admin" -qc "CREATE DATABASE $db"
        args+=(--storage-url "${admin%/*}/$db")
    else
        args+=("$a")
    fi
done
cleanup() { [ -z "$db" ] || psql "$admin" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)"; }
trap cleanup EXIT
target/release/examples/bench_load --relay target/release/ct-relay "${args[@]}"
