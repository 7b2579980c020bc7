# Sourced by scripts/ops-check.sh and scripts/dashboard-demo.sh: start a
# relay from config/default.toml in a temporary directory, with its API on
# $OPS_API and SMTP on $OPS_SMTP, delivering to $OPS_SMARTHOST if set (else
# to an outbox folder). Defines ops_stop.
# Usage: . scripts/relay-for-ops.sh BINARY
ops_bin="$1"
OPS_DIR="$(mktemp -d)"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
OPS_SMTP="127.0.0.1:$(free_port)"
OPS_API="127.0.0.1:$(free_port)"
export CT_RELAY__SMTP__LISTEN="$OPS_SMTP"
export CT_RELAY__API__LISTEN="$OPS_API"
export CT_RELAY__STORAGE__URL="sqlite://$OPS_DIR/relay.db"
export CT_RELAY__DELIVERY__DIR="$OPS_DIR/outbox"
export CT_RELAY__DELIVERY__RETRY_INITIAL="5s"
export CT_RELAY__DELIVERY__RETRY_MAX="20s"
export CT_RELAY__DELIVERY__POLL_INTERVAL="1s"
export CT_RELAY__AUTH__CHECK="false"
if [ -n "${OPS_SMARTHOST:-}" ]; then
    export CT_RELAY__DELIVERY__TRANSPORT="smarthost"
    export CT_RELAY__DELIVERY__SMARTHOST="$OPS_SMARTHOST"
    export CT_RELAY__DELIVERY__TLS="off"
fi
"$ops_bin" --config config/default.toml serve > "$OPS_DIR/relay.log" 2>&1 &
OPS_PID=$!
for _ in $(seq 100); do
    curl -fs "http://$OPS_API/readyz" > /dev/null 2>&1 && break
    sleep 0.2
done
curl -fs "http://$OPS_API/readyz" > /dev/null || { cat "$OPS_DIR/relay.log"; exit 1; }
ops_stop() {
    kill "$OPS_PID" 2> /dev/null || true
    wait "$OPS_PID" 2> /dev/null || true
    rm -rf "$OPS_DIR"
}
# Send $2 messages from the shop to a customer alias of order $1.
ops_send() {
    local customer shop
    customer="$("$ops_bin" --config config/default.toml alias create --store acme --order "$1" --email "buyer-$1@example.net" | python3 -c 'import json,sys; print(json.load(sys.stdin)["alias"])')"
    shop="$("$ops_bin" --config config/default.toml alias create --store acme --order "$1" --role store --email "sac@acme.example" | python3 -c 'import json,sys; print(json.load(sys.stdin)["alias"])')"
    python3 - "$OPS_SMTP" "$customer" "$2" << 'PY'
import smtplib, sys
host, port = sys.argv[1].rsplit(":", 1)
to, count = sys.argv[2], int(sys.argv[3])
# A Delivered-To of an earlier hop, as forwarded mail has: masking removes it.
with smtplib.SMTP(host, int(port)) as s:
    for n in range(count):
        try:
            s.sendmail("sac@acme.example", [to],
                       f"Delivered-To: sac@acme.example\r\nFrom: sac@acme.example\r\nTo: {to}\r\n"
                       f"Subject: Order update {n}\r\n\r\nYour order moved.\r\n")
        except smtplib.SMTPException:
            pass  # refused (a rate limit, say): the dashboard shows it
PY
}
