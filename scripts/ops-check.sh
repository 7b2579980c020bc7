#!/usr/bin/env bash
# The ops/ files against a real relay: the alerting rules (promtool check
# and unit tests), the dashboard's queries (every metric they name is one
# the relay exports), and the relay's /metrics as scraped (promtool check
# metrics: HELP and TYPE lines, names, units); and every metric exported is
# listed in docs/OPERATIONS.md.
# Usage: scripts/ops-check.sh [BINARY]   (default target/debug/ct-relay)
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${1:-target/debug/ct-relay}"
command -v promtool > /dev/null || { echo "ops-check: promtool missing (apt-get install prometheus)" >&2; exit 1; }

promtool check rules ops/prometheus/ct-relay-rules.yml
(cd ops/prometheus && promtool test rules ct-relay-rules.test.yml)

# Every ct_relay_ metric a panel or rule names is one src/telemetry.rs defines.
python3 - << 'PY'
import json, re, sys
exported = set(re.findall(r'"(ct_relay_[a-z_]+)"', open("src/telemetry.rs").read()))
used = {}
dash = json.load(open("ops/grafana/ct-relay.json"))
for p in dash["panels"]:
    for t in p["targets"]:
        for m in re.findall(r"ct_relay_[a-z_]+", t["expr"]):
            used.setdefault(re.sub(r"_(bucket|sum|count)$", "", m), p["title"])
for m in re.findall(r"ct_relay_[a-z_]+", open("ops/prometheus/ct-relay-rules.yml").read()):
    used.setdefault(m, "alerting rules")
unknown = {m: where for m, where in used.items() if m not in exported}
if unknown:
    sys.exit(f"ops-check: metrics the relay does not export: {unknown}")
# And every metric the relay exports is listed in docs/OPERATIONS.md.
listed = set(re.findall(r"`(ct_relay_[a-z_]+)`", open("docs/OPERATIONS.md").read()))
unlisted = sorted(exported - listed)
if unlisted:
    sys.exit(f"ops-check: metrics docs/OPERATIONS.md does not list: {unlisted}")
print(f"ops-check: {len(dash['panels'])} panels and the rules name {len(used)} metrics, all exported")
PY

# shellcheck source=scripts/relay-for-ops.sh
. scripts/relay-for-ops.sh "$bin"
trap ops_stop EXIT
ops_send ops-1 3
sleep 2
curl -fs "http://$OPS_API/metrics" > "$OPS_DIR/metrics.txt"
grep -q '^ct_relay_messages_accepted_total 3$' "$OPS_DIR/metrics.txt" || { echo "ops-check: 3 accepted not in /metrics" >&2; cat "$OPS_DIR/metrics.txt"; exit 1; }
lint="$(promtool check metrics < "$OPS_DIR/metrics.txt" 2>&1)" || true
if [ -n "$lint" ]; then
    echo "ops-check: promtool check metrics:" >&2
    echo "$lint" >&2
    exit 1
fi
echo "ops-check: /metrics passes promtool check metrics ($(grep -c '^# HELP' "$OPS_DIR/metrics.txt") metrics)"
