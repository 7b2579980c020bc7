#!/usr/bin/env bash
# How ct-relay holds up as its data grows (see bench/scale.py): a bulk
# import, then messages in phases on the grown database, timeline pages on
# the order holding them all, a run with the purge deleting as much as
# arrives, and 1, 2, 3 nodes on one PostgreSQL.
#
#   bench/scale.sh [--aliases N] [--messages M] [--phases P] [--sqlite] [--postgres]
#                  [--parts growth,purging,nodes] [--nodes 1,2,3]
#
# Defaults: 1,000,000 aliases, 200,000 messages of 5 KiB in 5 phases,
# SQLite then PostgreSQL (a fresh database on $DATABASE_URL's server,
# dropped afterwards). Installs Debian's postfix package (smtp-source,
# smtp-sink) when missing. Run as root. Prints one JSON line per backend
# and part; progress on stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v smtp-source >/dev/null; then
    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y postfix
fi
cargo build --release --quiet --bin ct-relay

. bench/backends.sh
run_per_backend scale.py "$@"
