#!/usr/bin/env bash
# The Debian package on this machine, as an operator gets it: install it with
# dpkg, check what it put where, verify its systemd unit, run the installed
# binary with the installed configuration as the ct-relay user (as the unit
# does: its environment file, its working directory, its umask, port 25
# through the one capability; there is no systemd here to start it), send a
# message through it with swaks, find it masked in the outbox, reload, stop,
# then purge the package and check nothing is left. Needs root.
# Usage: scripts/package-test.sh [target/debian/ct-relay.deb]
set -euo pipefail
cd "$(dirname "$0")/.."
deb="${1:-target/debian/ct-relay.deb}"
config=/etc/ct-relay/ct-relay.toml
log="$(mktemp)"
relay_pid=""

fail() {
    echo "package-test: FAIL: $*" >&2
    echo "--- relay log:" >&2
    cat "$log" >&2 || true
    exit 1
}
step() { echo "package-test: $*"; }
cleanup() {
    if [ -n "$relay_pid" ] && kill -0 "$relay_pid" 2> /dev/null; then kill -9 "$relay_pid" || true; fi
    rm -f "$log"
}
trap cleanup EXIT

[ "$(id -u)" = 0 ] || fail "run as root (dpkg -i)"
if dpkg-query -W ct-relay > /dev/null 2>&1; then dpkg --purge ct-relay > /dev/null; fi
if ss -ltn 'sport = :25' | grep -q LISTEN; then fail "port 25 is taken: stop the MTA listening there"; fi

step "dpkg -i $deb"
dpkg -i "$deb"

step "files, user, modes"
[ -x /usr/bin/ct-relay ] || fail "no /usr/bin/ct-relay"
dpkg-query -W -f='${Conffiles}\n' ct-relay | grep -q "$config" || fail "$config is not a conffile"
getent passwd ct-relay | grep -q ':/var/lib/ct-relay:/usr/sbin/nologin$' || fail "no ct-relay system user"
[ "$(stat -c '%a %U' /var/lib/ct-relay)" = "700 ct-relay" ] || fail "/var/lib/ct-relay: $(stat -c '%a %U' /var/lib/ct-relay)"
for secret in hmac.key encryption.key api.token; do
    [ "$(stat -c '%a %U %G' /etc/ct-relay/$secret)" = "640 root ct-relay" ] ||
        fail "/etc/ct-relay/$secret: $(stat -c '%a %U %G' /etc/ct-relay/$secret)"
done
grep -q '^CT_RELAY__SMTP__HOSTNAME=' /etc/default/ct-relay || fail "no /etc/default/ct-relay"
for f in /usr/share/man/man1/ct-relay.1.gz /usr/share/man/man1/ct-relay-check-config.1.gz \
    /usr/share/bash-completion/completions/ct-relay /usr/share/zsh/vendor-completions/_ct-relay \
    /usr/share/fish/vendor_completions.d/ct-relay.fish /usr/lib/systemd/system/ct-relay.service; do
    [ -s "$f" ] || fail "missing $f"
done
zcat /usr/share/man/man1/ct-relay-alias-show.1.gz | grep -q 'The alias, as mail is sent to it' || fail "man page without help text"

step "systemd-analyze verify"
verify="$(systemd-analyze verify /usr/lib/systemd/system/ct-relay.service 2>&1)" || fail "systemd-analyze verify: $verify"
[ -z "$verify" ] || fail "systemd-analyze verify said: $verify"

# The service's environment, as EnvironmentFile= gives it.
set -a
# shellcheck disable=SC1091
. /etc/default/ct-relay
set +a
as_relay() { runuser -u ct-relay -- /usr/bin/ct-relay --config "$config" "$@"; }

step "check-config as the ct-relay user"
as_relay check-config > /dev/null || fail "check-config of the installed configuration"

step "serve: installed binary, installed config, ct-relay user, port 25"
(
    cd /var/lib/ct-relay
    umask 0077
    exec setpriv --reuid=ct-relay --regid=ct-relay --init-groups \
        --inh-caps=+net_bind_service --ambient-caps=+net_bind_service \
        /usr/bin/ct-relay --config "$config" serve
) > "$log" 2>&1 &
relay_pid=$!
token="$(cat /etc/ct-relay/api.token)"
for _ in $(seq 100); do
    curl -fs http://127.0.0.1:8080/readyz > /dev/null 2>&1 && break
    kill -0 "$relay_pid" 2> /dev/null || fail "the relay exited"
    sleep 0.2
done
curl -fs http://127.0.0.1:8080/readyz > /dev/null || fail "not ready"
[ "$(ps -o user= -p "$relay_pid")" = "ct-relay" ] || fail "the relay does not run as ct-relay"

alias_json="$(as_relay alias create --store acme --order pkg-1 --email buyer@example.net)"
customer="$(printf '%s' "$alias_json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["alias"])')"
curl -fs -H "Authorization: Bearer $token" "http://127.0.0.1:8080/v1/aliases/$customer" > /dev/null ||
    fail "the API does not take the generated token"

step "swaks to $customer on port 25"
swaks --server 127.0.0.1:25 --from shop@acme.example --to "$customer" \
    --header "Subject: package test" --body "Your order pkg-1 ships today." > /dev/null ||
    fail "swaks: the message was not accepted"
eml=""
for _ in $(seq 50); do
    eml="$(find /var/lib/ct-relay/outbox -name '*.eml' 2> /dev/null | head -1)"
    [ -n "$eml" ] && break
    sleep 0.2
done
[ -n "$eml" ] || fail "nothing in /var/lib/ct-relay/outbox"
grep -q 'Your order pkg-1 ships today.' "$eml" || fail "the delivered body differs"
! grep -q 'shop@acme.example' "$eml" || fail "the sender's real address reached the buyer"
grep -qi "^From:.*@ct.example.com" "$eml" || fail "From is not masked: $(grep -i '^From:' "$eml")"
for f in /var/lib/ct-relay/ct-relay.db "$eml"; do
    [ "$(stat -c '%a %U' "$f")" = "600 ct-relay" ] || fail "$f: $(stat -c '%a %U' "$f")"
done
grep -q '"level":"INFO"' "$log" || fail "the log is not JSON"

step "reload (SIGHUP) and stop (SIGTERM)"
kill -HUP "$relay_pid"
sleep 0.5
kill -0 "$relay_pid" || fail "the relay died on SIGHUP"
grep -q 'SIGHUP' "$log" || fail "SIGHUP not logged"
kill -TERM "$relay_pid"
status=0
wait "$relay_pid" || status=$?
relay_pid=""
[ "$status" = 0 ] || fail "the relay exited $status on SIGTERM"

step "dpkg --purge"
dpkg --purge ct-relay
for gone in /usr/bin/ct-relay /var/lib/ct-relay /etc/ct-relay /etc/default/ct-relay /usr/lib/systemd/system/ct-relay.service; do
    [ ! -e "$gone" ] || fail "$gone is left after purge"
done
step "OK"
