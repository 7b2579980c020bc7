#!/usr/bin/env bash
# The HTTP API against its OpenAPI document: the document validates, and a
# property-based run of schemathesis against a running relay finds no 5xx.
#
#   scripts/api-contract.sh [RELAY_BINARY]     # default target/debug/ct-relay
#
# Needs python3; installs schemathesis and openapi-spec-validator with pip.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${1:-target/debug/ct-relay}"
[ -x "$bin" ] || cargo build --quiet --bin ct-relay

python3 -m pip install --quiet --disable-pip-version-check \
    'schemathesis==4.32.5' 'openapi-spec-validator==0.9.0' 2>&1 | grep -v 'as the .root. user' || true
python3 -m openapi_spec_validator docs/openapi.json

work="$(mktemp -d)"
read -r smtp_port api_port < <(python3 -c '
import socket
ports = []
for _ in range(2):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); ports.append(s.getsockname()[1]); s.close()
print(*ports)')
token="contract-test-token-$(date +%s)"
# schemathesis also sends requests without a token or with a wrong one;
# with the per-address limit on, the endpoints would answer 429 from then
# on and their logic would go untested (tests/operator.rs tests the limit).
CT_RELAY__STORAGE__URL="sqlite://$work/relay.db" \
CT_RELAY__DELIVERY__DIR="$work/outbox" \
CT_RELAY__SMTP__LISTEN="127.0.0.1:$smtp_port" \
CT_RELAY__API__LISTEN="127.0.0.1:$api_port" \
CT_RELAY__API__TOKEN="$token" \
CT_RELAY__API__MAX_AUTH_FAILURES_PER_MINUTE=0 \
    "$bin" serve >"$work/relay.log" 2>&1 &
relay=$!
trap 'kill $relay 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$api_port") 2>/dev/null && break
    sleep 0.1
done

# From the scratch folder: schemathesis keeps its cache (.schemathesis/) in
# the working directory, and a run must not leave files in the tree.
(cd "$work" && python3 -m schemathesis.cli run "http://127.0.0.1:$api_port/v1/openapi.json" \
    --header "Authorization: Bearer $token" \
    --checks not_a_server_error \
    --max-examples 50 \
    --seed 20261123)
