#!/usr/bin/env bash
# Accepted and delivered msg/s through ct-relay (SQLite, fsync on), next to the
# same load sent straight to the sink, measured in the same run.
#
#   bench/run.sh [--messages N] [--sessions S] [--size BYTES] [--storage-url URL]
#
# Defaults: 2000 messages, 16 sessions, 10 KiB each. Prints one JSON line.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin ct-relay --example bench_load
exec target/release/examples/bench_load --relay target/release/ct-relay "$@"
