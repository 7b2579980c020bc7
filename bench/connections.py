#!/usr/bin/env python3
"""Many concurrent idle SMTP sessions on one relay node: memory per session.

Starts the release relay (SQLite in a temporary folder) with room for the
sessions, measures its resident memory, opens CONNECTIONS sessions that each
read the greeting and say EHLO, measures again, checks that one more session
still gets a message accepted, and prints one JSON line.

    python3 bench/connections.py [--connections 10000] [--relay target/release/ct-relay]

Each session is a socket in this process and one in the relay: the open-file
limit (`ulimit -n`) must exceed the count for both.
"""

import argparse
import asyncio
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def reply(reader):
    while True:
        line = await reader.readline()
        if len(line) < 4:
            raise ConnectionError("closed")
        if line[3:4] != b"-":
            return line


async def idle_session(port, opened):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    assert (await reply(reader)).startswith(b"220")
    writer.write(b"EHLO idle.bench\r\n")
    assert (await reply(reader)).startswith(b"250")
    opened.append(writer)


async def one_message(port, alias):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await reply(reader)
    for cmd in (b"EHLO bench", b"MAIL FROM:<shop@example.org>", f"RCPT TO:<{alias}>".encode(), b"DATA"):
        writer.write(cmd + b"\r\n")
        await reply(reader)
    writer.write(b"Subject: still serving\r\n\r\nhello\r\n.\r\n")
    done = await reply(reader)
    writer.close()
    return done.decode().strip()


async def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--connections", type=int, default=10000)
    p.add_argument("--relay", default="target/release/ct-relay")
    args = p.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < args.connections + 100:
        sys.exit(f"the open-file limit ({hard}) is below {args.connections} sessions")

    with tempfile.TemporaryDirectory(prefix="ct-bench-conn-") as root:
        port = free_port()
        config = os.path.join(root, "relay.toml")
        n = args.connections + 100
        with open(config, "w") as f:
            f.write(f"""
[smtp]
listen = "127.0.0.1:{port}"
hostname = "relay.test"
max_sessions = {n}
max_sessions_per_ip = {n}
[alias]
domain = "ct.test"
hmac_key = "hex:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
[storage]
url = "sqlite://{root}/relay.db"
[delivery]
transport = "file"
dir = "{root}/outbox"
[auth]
check = false
[log]
level = "warn"
""")
        relay = [args.relay, "--config", config]
        made = subprocess.run(
            relay + ["alias", "create", "--store", "bench", "--order", "1", "--email", "buyer@example.net"],
            check=True, capture_output=True, text=True,
        )
        alias = json.loads(made.stdout)["alias"]
        proc = subprocess.Popen(relay + ["serve"], preexec_fn=lambda: resource.setrlimit(
            resource.RLIMIT_NOFILE, (hard, hard)))
        try:
            for _ in range(200):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.05)
            await one_message(port, alias)  # warm up
            time.sleep(0.3)
            before = rss_kib(proc.pid)
            opened = []
            started = time.monotonic()
            # Open in waves so the listen backlog is not the limit.
            for i in range(0, args.connections, 100):
                count = min(100, args.connections - i)
                await asyncio.gather(*(idle_session(port, opened) for _ in range(count)))
            took = time.monotonic() - started
            time.sleep(0.5)
            after = rss_kib(proc.pid)
            served = await one_message(port, alias)
            print(json.dumps({
                "connections": len(opened),
                "opened_in_s": round(took, 2),
                "rss_before_kib": before,
                "rss_after_kib": after,
                "kib_per_connection": round((after - before) / len(opened), 1),
                "message_while_open": served,
            }), flush=True)
            for w in opened:
                w.close()
        finally:
            proc.terminate()
            proc.wait()


if __name__ == "__main__":
    asyncio.run(main())
