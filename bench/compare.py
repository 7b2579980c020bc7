#!/usr/bin/env python3
"""End to end against Postfix, in one run on one machine.

The same load, Postfix's smtp-source (SESSIONS parallel sessions, MESSAGES
messages of SIZE bytes, several per session), goes to:

  direct    smtp-source -> smtp-sink                        (no relay, no disk)
  postfix   smtp-source -> Postfix -> smtp-sink             (virtual_alias_maps)
  ct-relay  smtp-source -> ct-relay -> smtp-sink            (fsync on)

and each rate is measured from the first connection to the moment the sink has
counted every message ("delivered"). With --rspamd, two more take their
turns, both scanning every message with one rspamd (its normal worker, one
process, and its milter proxy; started here with the tests' configuration):

  postfix_rspamd   smtp-source -> Postfix + rspamd milter -> smtp-sink
  ct_relay_rspamd  smtp-source -> ct-relay (scan.rspamd_url) -> smtp-sink
 The three take turns for ROUNDS rounds (rates on a shared VM
drift from one minute to the next: Postfix's alone moved between 300 and 490
msg/s here), each ct-relay round on a fresh database directory (SQLite) or
the same database (PostgreSQL). Prints one JSON line per storage backend:
each round's rates, their medians, and the ratio of ct-relay's median to
Postfix's. Run it through bench/compare.sh, which builds the relay
and installs Postfix's tools when missing. Needs root (Postfix's master and
smtp-sink start as root and drop to user postfix).
"""

import argparse
import json
import os
import statistics
import socket
import subprocess
import sys
import tempfile
import threading
import time

ALIAS_DOMAIN = "ct.test"
REAL = "buyer@example.net"
SENDER = "shop@example.org"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, limit=20.0):
    end = time.monotonic() + limit
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"nothing listens on 127.0.0.1:{port}")


class Sink:
    """smtp-sink with its running counter (`mesg=N` after each message)."""

    def __init__(self):
        self.port = free_port()
        self.count = 0
        self.proc = subprocess.Popen(
            ["smtp-sink", "-u", "postfix", "-c", f"127.0.0.1:{self.port}", "1024"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        threading.Thread(target=self._read, daemon=True).start()
        wait_port(self.port)

    def _read(self):
        pending = b""
        while chunk := self.proc.stdout.read1(65536):
            pending += chunk
            *done, pending = pending.split(b"\r")
            if done:
                last = done[-1]
                at = last.rfind(b"mesg=")
                if at >= 0:
                    self.count = int(last[at + 5 :])

    def wait_for(self, n, limit):
        end = time.monotonic() + limit
        while self.count < n:
            if time.monotonic() > end:
                sys.exit(f"the sink got {self.count} of {n} messages in {limit}s")
            time.sleep(0.002)
        return time.monotonic()

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def send(args, port, to, sink):
    """smtp-source into 127.0.0.1:port; (accepted, delivered) msg/s."""
    start = time.monotonic()
    subprocess.run(
        [
            "smtp-source", "-d",
            "-s", str(args.sessions),
            "-m", str(args.messages),
            "-l", str(args.size),
            "-f", SENDER, "-t", to,
            f"127.0.0.1:{port}",
        ],
        check=True,
    )
    accepted = time.monotonic()
    delivered = sink.wait_for(args.messages, limit=600)
    return (
        round(args.messages / (accepted - start)),
        round(args.messages / (delivered - start)),
    )


# Every service but the SMTP listener, shared with the interop tests.
MASTER_CF = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../scripts/postfix/master.cf")


def run_postfix(args, sink, milter=None):
    """Postfix as an alias relay: virtual_alias_maps maps the alias to the
    real address, relayhost is the sink. Its queue fsyncs, as always.
    `milter`: rspamd's milter address, asked about every message."""
    with tempfile.TemporaryDirectory(prefix="ct-bench-postfix-") as root:
        os.chmod(root, 0o755)
        for sub in ("etc", "queue", "data"):
            os.mkdir(os.path.join(root, sub))
        subprocess.run(["chown", "postfix", os.path.join(root, "data")], check=True)
        port = free_port()
        alias = f"0123456789abcdef0123456789abcdef@{ALIAS_DOMAIN}"
        main_cf = f"""compatibility_level = 3.6
queue_directory = {root}/queue
data_directory = {root}/data
maillog_file_prefixes = {root}
maillog_file = {root}/maillog
myhostname = postfix.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
virtual_alias_domains = {ALIAS_DOMAIN}
virtual_alias_maps = inline:{{ {alias}={REAL} }}
relayhost = [127.0.0.1]:{sink.port}
local_transport = error:no local delivery
alias_maps =
smtp_dns_support_level = disabled
smtpd_peername_lookup = no
biff = no
"""
        if milter:
            main_cf += f"smtpd_milters = inet:{milter}\nmilter_default_action = tempfail\nmilter_protocol = 6\n"
        with open(os.path.join(root, "etc/main.cf"), "w") as f:
            f.write(main_cf)
        with open(os.path.join(root, "etc/master.cf"), "w") as f:
            with open(MASTER_CF) as services:
                f.write(f"127.0.0.1:{port} inet n - n - - smtpd\n" + services.read())
        conf = ["postfix", "-c", os.path.join(root, "etc")]
        subprocess.run(conf + ["start"], check=True, capture_output=True)
        try:
            wait_port(port)
            return send(args, port, alias, sink)
        finally:
            subprocess.run(conf + ["stop"], capture_output=True)
            time.sleep(1)


# `--encryption`: the relay seals addresses, messages and timeline excerpts.
SEALED = 'encryption_key = "hex:' + "5e" * 32 + '"'


def relay_config(smtp_port, storage_url, sink_port, storage_extra="", more=""):
    """A benchmark relay's configuration: SMTP on `smtp_port`, delivering
    to the sink, no DNS-based checks, no rate limits."""
    return f"""
[smtp]
listen = "127.0.0.1:{smtp_port}"
hostname = "relay.test"
max_sessions_per_ip = 1000
{more}
[alias]
domain = "{ALIAS_DOMAIN}"
hmac_key = "hex:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"

[storage]
url = "{storage_url}"
{storage_extra}

[delivery]
transport = "smarthost"
smarthost = "127.0.0.1:{sink_port}"
tls = "off"

[auth]
# No DNS here: SPF/DKIM/DMARC lookups would only time out.
check = false

[policy]
# One alias takes the whole load: no rate limits.
per_sender_and_alias_per_hour = 0
per_alias_per_hour = 0
privileged_per_sender_and_alias_per_hour = 0
privileged_per_alias_per_hour = 0
"""


def run_relay(args, sink, storage_url, load=None, rspamd_url=None, storage_extra=""):
    """ct-relay delivering to `sink`; `load(args, port, alias, sink, proc)`
    sends the messages (default: `send`). `rspamd_url`: scan every message
    there. `storage_extra`: more `[storage]` settings."""
    with tempfile.TemporaryDirectory(prefix="ct-bench-relay-") as root:
        port = free_port()
        url = storage_url or f"sqlite://{root}/relay.db"
        config = os.path.join(root, "relay.toml")
        with open(config, "w") as f:
            f.write(relay_config(port, url, sink.port, storage_extra))
            if rspamd_url:
                f.write(f'\n[scan]\nrspamd_url = "{rspamd_url}"\n')
        relay = [args.relay, "--config", config]
        made = subprocess.run(
            relay + ["alias", "create", "--store", "bench", "--order", "1",
                     "--role", "customer", "--email", REAL],
            check=True, capture_output=True, text=True,
        )
        alias = json.loads(made.stdout)["alias"]
        log = open(os.path.join(root, "relay.log"), "w")
        proc = subprocess.Popen(relay + ["serve"], stdout=log, stderr=log)
        try:
            wait_port(port)
            if load is None:
                return send(args, port, alias, sink)
            return load(args, port, alias, sink, proc)
        finally:
            proc.terminate()
            proc.wait()


class Rspamd:
    """rspamd with Debian's configuration and the tests' local files
    (tests/scanners/rspamd), its milter proxy on for Postfix. Compiled
    regexps are kept under target/tmp like the tests' (a cold start takes
    ~20 s)."""

    def __init__(self):
        here = os.path.dirname(os.path.abspath(__file__))
        self.root = tempfile.mkdtemp(prefix="ct-bench-rspamd-")
        local = os.path.join(self.root, "local")
        subprocess.run(["cp", "-r", os.path.join(here, "../tests/scanners/rspamd"), local], check=True)
        self.normal, self.proxy = free_port(), free_port()
        with open(os.path.join(local, "override.d/worker-proxy.inc"), "w") as f:
            f.write(f'bind_socket = "127.0.0.1:{self.proxy}";\nmilter = yes;\ncount = 1;\n'
                    f'upstream "local" {{ default = yes; hosts = "127.0.0.1:{self.normal}"; }}\n')
        cache = os.path.join(here, "../target/tmp/rspamd-hs-cache")
        os.makedirs(cache, exist_ok=True)
        dirs = {}
        for sub in ("run", "db", "log"):
            dirs[sub] = os.path.join(self.root, sub)
            os.mkdir(dirs[sub])
        for d in [self.root, cache, *dirs.values()]:
            os.chmod(d, 0o777)
        var = {
            "LOCAL_CONFDIR": local, "RUNDIR": dirs["run"], "DBDIR": dirs["db"],
            "LOGDIR": dirs["log"], "NORMAL_PORT": self.normal,
            "CONTROLLER_PORT": free_port(), "CLAMD_PORT": free_port(), "HS_CACHE": cache,
        }
        cmd = ["rspamd", "-f", "-i"] + [f"--var={k}={v}" for k, v in var.items()]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.normal, limit=120)
        wait_port(self.proxy, limit=120)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.normal}"

    @property
    def milter(self):
        return f"127.0.0.1:{self.proxy}"

    def stop(self):
        self.proc.terminate()
        self.proc.wait()
        subprocess.run(["rm", "-rf", self.root])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--relay", default="target/release/ct-relay")
    p.add_argument("--messages", type=int, default=5000)
    p.add_argument("--sessions", type=int, default=20)
    p.add_argument("--size", type=int, default=10240)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--storage-url", action="append", default=[],
                   help="one run per URL; none: SQLite in a temporary folder")
    p.add_argument("--rspamd", action="store_true",
                   help="also Postfix + rspamd milter and ct-relay scanning with rspamd")
    p.add_argument("--encryption", action="store_true",
                   help="also ct-relay sealing addresses and messages at rest")
    args = p.parse_args()
    rspamd = Rspamd() if args.rspamd else None

    def phase(run, *extra):
        sink = Sink()
        try:
            return run(args, sink, *extra)
        finally:
            sink.stop()

    def direct(args, sink):
        return send(args, sink.port, REAL, sink)

    for url in args.storage_url or [None]:
        backend = "sqlite" if url is None or url.startswith("sqlite") else "postgres"
        rounds = []
        for _ in range(args.rounds):
            r = {
                "direct": phase(direct)[1],
                "postfix": phase(run_postfix)[1],
                "ct_relay": phase(run_relay, url)[1],
            }
            if args.encryption:
                r["ct_relay_sealed"] = phase(run_relay, url, None, None, SEALED)[1]
            if rspamd:
                r["postfix_rspamd"] = phase(run_postfix, rspamd.milter)[1]
                r["ct_relay_rspamd"] = phase(run_relay, url, None, rspamd.url)[1]
            rounds.append(r)
        median = {k: round(statistics.median(r[k] for r in rounds)) for k in rounds[0]}
        scanning = {}
        if rspamd:
            scanning = {
                "ct_relay_rspamd_vs_postfix_rspamd": round(
                    median["ct_relay_rspamd"] / median["postfix_rspamd"], 2),
                "ct_relay_rspamd_vs_ct_relay": round(
                    median["ct_relay_rspamd"] / median["ct_relay"], 2),
            }
        if args.encryption:
            scanning["ct_relay_sealed_vs_ct_relay"] = round(
                median["ct_relay_sealed"] / median["ct_relay"], 2)
        print(json.dumps({
            "backend": backend,
            "messages": args.messages,
            "sessions": args.sessions,
            "size": args.size,
            "delivered_msgs_per_s": {k: [r[k] for r in rounds] for k in rounds[0]},
            "median": median,
            "ratio_per_round": [round(r["ct_relay"] / r["postfix"], 2) for r in rounds],
            "ct_relay_vs_postfix_delivered": round(median["ct_relay"] / median["postfix"], 2),
            **scanning,
        }), flush=True)
    if rspamd:
        rspamd.stop()


if __name__ == "__main__":
    main()
