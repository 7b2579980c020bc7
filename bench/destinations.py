#!/usr/bin/env python3
"""Per-destination delivery, in one run on one machine.

ct-relay with the mx transport, a DNS server of our own (MX and A records
for two domains) and Postfix's smtp-sink on two loopback addresses on one
port (`delivery.port`):

  healthy.test -> 127.0.0.2   answers at once
  sick.test    -> 127.0.0.3   answers each DATA after --delay seconds
                              (--sick slow), or drops every connection
                              at DATA without a reply (--sick drop)

  other.test   -> 127.0.0.4   answers at once

Phases, each on a fresh SQLite database:

  smarthost      MESSAGES to healthy.test through the smarthost transport
  mx_alone       MESSAGES to healthy.test through the mx transport
  mx_with_other  the same, while MESSAGES × --share (0.25) go to other.test (healthy): the
                 relay's extra work of taking those messages in, alone
  mx_with_sick   the same, while MESSAGES × --share (0.25) go to sick.test instead

Each round runs every phase; it prints one JSON line: each phase's median
delivered rate over the rounds to healthy.test
(msg/s, from the first connection until the sink counted every message),
the share the healthy destination keeps next to the sick one
(mx_with_sick / mx_alone; and against the same extra load going to a
healthy destination, mx_with_sick / mx_with_other, which isolates what the
sick destination itself costs), and mx against smarthost. Run it through
bench/destinations.sh, which builds the relay and installs smtp-sink.
"""

import argparse
import json
import os
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from compare import free_port, relay_config  # noqa: E402

HEALTHY, SICK, OTHER = "127.0.0.2", "127.0.0.3", "127.0.0.4"
ZONE = {
    ("other.test", 15): ("mx", "mx.other.test"),
    ("mx.other.test", 1): ("a", OTHER),
    ("healthy.test", 15): ("mx", "mx.healthy.test"),
    ("mx.healthy.test", 1): ("a", HEALTHY),
    ("sick.test", 15): ("mx", "mx.sick.test"),
    ("mx.sick.test", 1): ("a", SICK),
}


def dns_server():
    """A UDP DNS server answering from ZONE; its port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))

    def name_at(data, i):
        labels = []
        while data[i]:
            labels.append(data[i + 1 : i + 1 + data[i]].decode())
            i += 1 + data[i]
        return ".".join(labels).lower(), i + 1

    def encode(name):
        return b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"

    def serve():
        while True:
            data, peer = sock.recvfrom(4096)
            qid, _flags = struct.unpack(">HH", data[:4])
            name, end = name_at(data, 12)
            qtype, _ = struct.unpack(">HH", data[end : end + 4])
            question = data[12 : end + 4]
            found = ZONE.get((name, qtype))
            exists = any(n == name for n, _ in ZONE)
            rcode = 0 if found or exists else 3
            answer = b""
            if found:
                kind, value = found
                rdata = (
                    struct.pack(">H", 10) + encode(value)
                    if kind == "mx"
                    else socket.inet_aton(value)
                )
                answer = (
                    b"\xc0\x0c"
                    + struct.pack(">HHIH", qtype, 1, 300, len(rdata))
                    + rdata
                )
            header = struct.pack(
                ">HHHHHH", qid, 0x8580 | rcode, 1, 1 if found else 0, 0, 0
            )
            sock.sendto(header + question + answer, peer)

    threading.Thread(target=serve, daemon=True).start()
    return sock.getsockname()[1]


class Sink:
    """smtp-sink on ip:port, counting messages (`mesg=N`)."""

    def __init__(self, ip, port, extra=()):
        self.count = 0
        self.proc = subprocess.Popen(
            ["smtp-sink", "-u", "postfix", *extra, "-c", f"{ip}:{port}", "1024"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        threading.Thread(target=self._read, daemon=True).start()
        end = time.monotonic() + 10
        while True:
            try:
                socket.create_connection((ip, port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > end:
                    sys.exit(f"smtp-sink did not start on {ip}:{port}")
                time.sleep(0.05)

    def _read(self):
        pending = b""
        while chunk := self.proc.stdout.read1(65536):
            pending += chunk
            *done, pending = pending.split(b"\r")
            if done:
                at = done[-1].rfind(b"mesg=")
                if at >= 0:
                    self.count = int(done[-1][at + 5 :])

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def source(args, port, alias, messages):
    subprocess.run(
        ["smtp-source", "-d", "-s", str(args.sessions), "-m", str(messages),
         "-l", str(args.size), "-f", "shop@example.org", "-t", alias,
         f"127.0.0.1:{port}"],
        check=True,
    )


def phase(args, transport, mx_port, dns_port, second=None):
    """Deliver MESSAGES to healthy.test (and MESSAGES × --share (0.25) to `second` at the
    same time); the healthy destination's delivered rate."""
    healthy = Sink(HEALTHY, mx_port)
    try:
        with tempfile.TemporaryDirectory(prefix="ct-bench-dest-") as root:
            port = free_port()
            config = relay_config(port, f"sqlite://{root}/relay.db", mx_port)
            if transport == "mx":
                config = config.replace(
                    f'transport = "smarthost"\nsmarthost = "127.0.0.1:{mx_port}"',
                    f'transport = "mx"\nport = {mx_port}\n'
                    f'nameservers = ["127.0.0.1:{dns_port}"]',
                )
            else:
                config = config.replace(
                    f"127.0.0.1:{mx_port}", f"{HEALTHY}:{mx_port}"
                )
            path = os.path.join(root, "relay.toml")
            with open(path, "w") as f:
                f.write(config)
            relay = [args.relay, "--config", path]
            aliases = {}
            for n, domain in enumerate(["healthy.test", "sick.test", "other.test"]):
                made = subprocess.run(
                    relay + ["alias", "create", "--store", "bench", "--order", str(n),
                             "--role", "customer", "--email", f"buyer@{domain}"],
                    check=True, capture_output=True, text=True,
                )
                aliases[domain] = json.loads(made.stdout)["alias"]
            log = open(os.path.join(root, "relay.log"), "w")
            proc = subprocess.Popen(relay + ["serve"], stdout=log, stderr=log)
            try:
                time.sleep(0.5)
                start = time.monotonic()
                sick = None
                if second:
                    sick = threading.Thread(
                        target=source,
                        args=(args, port, aliases[second], int(args.messages * args.share)),
                    )
                    sick.start()
                source(args, port, aliases["healthy.test"], args.messages)
                end = time.monotonic() + 600
                while healthy.count < args.messages:
                    if time.monotonic() > end:
                        sys.exit(f"healthy got {healthy.count} of {args.messages}")
                    time.sleep(0.005)
                rate = args.messages / (time.monotonic() - start)
                print(f"  {transport}{' with ' + second if second else ''}: "
                      f"{rate:.0f} msg/s", file=sys.stderr)
                if sick:
                    sick.join()
                return round(rate)
            finally:
                proc.terminate()
                proc.wait()
    finally:
        healthy.stop()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--messages", type=int, default=2000)
    p.add_argument("--sessions", type=int, default=10)
    p.add_argument("--size", type=int, default=5000)
    p.add_argument("--sick", choices=["slow", "drop"], default="slow")
    p.add_argument("--delay", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--share", type=float, default=0.25,
                   help="messages to the second domain, as a share of MESSAGES")
    p.add_argument("--relay", default="target/release/ct-relay")
    args = p.parse_args()
    mx_port = free_port()
    dns_port = dns_server()
    extra = ["-w", str(args.delay)] if args.sick == "slow" else ["-q", "data"]
    sick = Sink(SICK, mx_port, extra)
    other = Sink(OTHER, mx_port)
    rates = {"smarthost": [], "mx_alone": [], "mx_with_other": [], "mx_with_sick": []}
    try:
        print(f"{args.messages} messages of {args.size} bytes; sick.test {args.sick}; "
              f"{args.rounds} rounds", file=sys.stderr)
        for n in range(args.rounds):
            print(f"round {n + 1}", file=sys.stderr)
            rates["smarthost"].append(phase(args, "smarthost", mx_port, dns_port))
            rates["mx_alone"].append(phase(args, "mx", mx_port, dns_port))
            rates["mx_with_other"].append(phase(args, "mx", mx_port, dns_port, "other.test"))
            rates["mx_with_sick"].append(phase(args, "mx", mx_port, dns_port, "sick.test"))
    finally:
        sick.stop()
        other.stop()
    median = {k: statistics.median(v) for k, v in rates.items()}
    print(json.dumps({
        "messages": args.messages,
        "sick": args.sick,
        "share": args.share,
        "rounds": args.rounds,
        **{k: round(v) for k, v in median.items()},
        "kept_with_sick": round(median["mx_with_sick"] / median["mx_alone"], 3),
        "kept_vs_same_load": round(median["mx_with_sick"] / median["mx_with_other"], 3),
        "mx_vs_smarthost": round(median["mx_alone"] / median["smarthost"], 3),
        "each_round": rates,
    }))

if __name__ == "__main__":
    main()
