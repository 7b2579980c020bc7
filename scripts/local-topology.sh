#!/usr/bin/env bash
# The docker-compose.yml topology as local processes, for machines without a
# Docker engine: PostgreSQL (the local server), NODES ct-relay nodes on one
# database, and a mail catcher they deliver to.
#
#   scripts/local-topology.sh up [NODES]    # default 2 nodes
#   scripts/local-topology.sh down
#
# Environment (defaults in brackets):
#   TOPOLOGY_DIR  [data/topology]  pids, logs and the catcher's mail
#   SMTP_PORT     [2525]           node i listens on SMTP_PORT + i
#   API_PORT      [8080]           node i serves its HTTP API on API_PORT + i
#   CATCHER_PORT  [1025]
#   DATABASE_URL  [postgres://postgres@127.0.0.1:5432/postgres]  server to use
#   TOPOLOGY_DB   [ct_relay_dev]   database the nodes share (created if missing)
#   CT_RELAY_BIN  [target/release/ct-relay]
set -euo pipefail
cd "$(dirname "$0")/.."

dir="${TOPOLOGY_DIR:-data/topology}"
smtp_port="${SMTP_PORT:-2525}"
api_port="${API_PORT:-8080}"
catcher_port="${CATCHER_PORT:-1025}"
admin="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
db="${TOPOLOGY_DB:-ct_relay_dev}"
bin="${CT_RELAY_BIN:-target/release/ct-relay}"
db_url="${admin%/*}/$db"

wait_for_port() {
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nothing listens on port $1; see $dir/*.log" >&2
    return 1
}

up() {
    local nodes="${1:-2}"
    mkdir -p "$dir/catcher"
    [ -x "$bin" ] || cargo build --release --quiet --bin ct-relay
    if ! psql "$admin" -Atc "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1; then
        psql "$admin" -qc "CREATE DATABASE $db"
    fi
    python3 scripts/mailcatcher.py --listen "127.0.0.1:$catcher_port" --dir "$dir/catcher" \
        >"$dir/catcher.log" 2>&1 &
    echo $! >"$dir/catcher.pid"
    wait_for_port "$catcher_port"
    for i in $(seq 0 $((nodes - 1))); do
        CT_RELAY__SMTP__LISTEN="127.0.0.1:$((smtp_port + i))" \
        CT_RELAY__API__LISTEN="127.0.0.1:$((api_port + i))" \
        CT_RELAY__SMTP__HOSTNAME="node$i.ct-relay.localhost" \
        CT_RELAY__STORAGE__URL="$db_url" \
        CT_RELAY__DELIVERY__TRANSPORT=smarthost \
        CT_RELAY__DELIVERY__SMARTHOST="127.0.0.1:$catcher_port" \
            "$bin" serve >"$dir/node$i.log" 2>&1 &
        echo $! >"$dir/node$i.pid"
    done
    for i in $(seq 0 $((nodes - 1))); do wait_for_port $((smtp_port + i)); done
    echo "{\"nodes\":$nodes,\"smtp\":\"127.0.0.1:$smtp_port+\",\"api\":\"127.0.0.1:$api_port+\",\"catcher\":\"$dir/catcher\",\"storage_url\":\"$db_url\"}"
}

down() {
    for pidfile in "$dir"/*.pid; do
        [ -e "$pidfile" ] || continue
        kill -TERM "$(cat "$pidfile")" 2>/dev/null || true
        rm -f "$pidfile"
    done
    wait 2>/dev/null || true
}

case "${1:-}" in
    up) up "${2:-2}" ;;
    down) down ;;
    *) echo "usage: $0 up [NODES] | down" >&2; exit 2 ;;
esac
