#!/usr/bin/env bash
# ct-relay against Postfix, end to end, in one run (see bench/compare.py):
# smtp-source -> {smtp-sink | Postfix | ct-relay} -> smtp-sink.
#
#   bench/compare.sh [--messages N] [--sessions S] [--size BYTES] [--rounds R]
#                    [--sqlite] [--postgres] [--rspamd] [--encryption]
#
# Defaults: 5000 messages, 20 sessions, 10 KiB, 3 rounds (medians are
# compared), SQLite then PostgreSQL (a fresh database on $DATABASE_URL's
# server, dropped afterwards). Installs
# Debian's postfix package (smtp-source, smtp-sink, Postfix) when missing.
# With --rspamd, also Postfix with rspamd as its milter and ct-relay
# scanning with rspamd (installs Debian's rspamd when missing).
# With --encryption, also ct-relay with storage.encryption_key set (the
# ratio ct_relay_sealed_vs_ct_relay is the cost of sealing at rest).
# Run as root. Prints one JSON line per backend.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v smtp-source >/dev/null || ! [ -x /usr/sbin/postfix ]; then
    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y postfix
fi
if [[ " $* " == *" --rspamd "* ]] && ! command -v rspamd >/dev/null; then
    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y rspamd
fi
cargo build --release --quiet --bin ct-relay

. bench/backends.sh
run_per_backend compare.py "$@"
