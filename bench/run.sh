#!/usr/bin/env bash
# Accepted and delivered msg/s through ct-relay (fsync on), next to the same
# load sent straight to the sink, measured in the same run.
#
#   bench/run.sh [--messages N] [--sessions S] [--size BYTES] [--storage-url URL | --postgres | --both]
#
# Defaults: 2000 messages, 16 sessions, 10 KiB each, SQLite in a temporary
# folder. --postgres makes a fresh database on $DATABASE_URL's server
# (default the local one) and drops it afterwards; --both runs SQLite, then
# PostgreSQL. Prints one JSON line per run.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin ct-relay --example bench_load

args=()
backends=(sqlite)
admin="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
for a in "$@"; do
    case "$a" in
        --postgres) backends=(postgres) ;;
        --both) backends=(sqlite postgres) ;;
        *) args+=("$a") ;;
    esac
done
db="ct_bench_$(date +%s)_$$"
cleanup() { psql "$admin" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" 2>/dev/null || true; }
for backend in "${backends[@]}"; do
    if [ "$backend" = postgres ]; then
        trap cleanup EXIT
        psql "$admin" -qc "CREATE DATABASE $db"
        target/release/examples/bench_load --relay target/release/ct-relay "${args[@]}" --storage-url "${admin%/*}/$db"
    else
        target/release/examples/bench_load --relay target/release/ct-relay "${args[@]}"
    fi
done
