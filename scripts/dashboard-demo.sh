#!/usr/bin/env bash
# The README's dashboard picture, from a real run: a relay delivering to the
# development mail catcher, Prometheus (Debian's package) scraping it every
# 2 s, mail sent for a few minutes with an outage of the next hop in the
# middle (deliveries defer, the queue grows, then drains), then the
# dashboard's own queries rendered by ops/render-dashboard.py.
# Usage: scripts/dashboard-demo.sh [BINARY] [OUT]   (about 5 minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${1:-target/release/ct-relay}"
out="${2:-docs/ops/dashboard.png}"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
catcher_dir="$(mktemp -d)"
OPS_SMARTHOST="127.0.0.1:$(free_port)"
start_catcher() {
    python3 scripts/mailcatcher.py --listen "$OPS_SMARTHOST" --dir "$catcher_dir" > /dev/null 2>&1 &
    catcher=$!
}
start_catcher
# Mail from 127.0.0.1 is trusted (the store's own): give it the buyer's
# hourly budget per sender and alias, so one order can go over it.
export CT_RELAY__POLICY__PRIVILEGED_PER_SENDER_AND_ALIAS_PER_HOUR=20
# shellcheck source=scripts/relay-for-ops.sh
. scripts/relay-for-ops.sh "$bin"
prom_port="$(free_port)"
prom_dir="$(mktemp -d)"
cat > "$prom_dir/prometheus.yml" << YML
global: { scrape_interval: 2s, evaluation_interval: 2s }
rule_files: [ "$PWD/ops/prometheus/ct-relay-rules.yml" ]
scrape_configs:
  - job_name: ct-relay
    static_configs: [ { targets: [ "$OPS_API" ] } ]
YML
prometheus --config.file="$prom_dir/prometheus.yml" --storage.tsdb.path="$prom_dir/data" \
    --web.listen-address="127.0.0.1:$prom_port" > "$prom_dir/log" 2>&1 &
prom=$!
cleanup() { kill "$prom" "$catcher" 2> /dev/null || true; ops_stop; rm -rf "$prom_dir" "$catcher_dir"; }
trap cleanup EXIT
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$prom_port/-/ready" > /dev/null 2>&1 && break; sleep 0.2; done

phase() { echo "dashboard-demo: $(date +%T) $*"; }
send_for() { # seconds, messages per batch
    local until=$((SECONDS + $1)) n=0
    while [ $SECONDS -lt $until ]; do
        n=$((n + 1))
        ops_send "demo-$RANDOM-$n" "$2" > /dev/null
        sleep 1
    done
}
phase "mail flows (90 s); one order gets more than its hourly limit"
ops_send demo-limit 30 > /dev/null
send_for 90 20
phase "the next hop goes down (60 s): deliveries defer, the queue grows"
kill "$catcher"
send_for 60 20
phase "the next hop is back (90 s): the queue drains"
start_catcher
send_for 90 10
sleep 20
phase "rendering $out"
mkdir -p "$(dirname "$out")"
python3 ops/render-dashboard.py --prometheus "http://127.0.0.1:$prom_port" --minutes 4.5 --rate-interval 20s --out "$out"
