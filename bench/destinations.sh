#!/usr/bin/env bash
# One slow or failing destination next to a healthy one, with the mx
# transport, against the smarthost transport in the same run (see
# bench/destinations.py):
#
#   bench/destinations.sh [--messages N] [--sessions S] [--size BYTES]
#                         [--sick slow|drop] [--delay SECONDS] [--rounds N]
#                         [--share FRACTION]
#
# Installs Debian's postfix package (smtp-source, smtp-sink) when missing.
# Run as root (smtp-sink drops to user postfix). Prints one JSON line.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v smtp-source >/dev/null; then
    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y postfix
fi
cargo build --release --quiet --bin ct-relay
exec python3 bench/destinations.py "$@"
