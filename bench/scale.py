#!/usr/bin/env python3
"""How ct-relay holds up as its data grows, in one run on one machine.

For each storage backend (SQLite in a temporary folder; PostgreSQL with
--storage-url), on a fresh database:

  growth   `ct-relay alias import` of ALIASES aliases (import rate, the
           write-ahead log's largest size), then MESSAGES messages of SIZE
           bytes, smtp-source -> ct-relay -> smtp-sink, all to one order's
           alias (the "hot order"), in PHASES phases: each phase's
           delivered rate, the database's bytes on disk per message
           (database + WAL for SQLite, the database's size for PostgreSQL),
           the WAL's largest size, the relay's largest RSS; then the
           latency of `GET /v1/orders/{order}/timeline?limit=50` on the hot
           order's first page, a middle page and its last page (median of
           REPEAT requests each).
  purging  the same load again on a fresh database with
           `storage.retention` short (5 s) and the purge running every 2 s,
           so from the first phase on it deletes as much as arrives: per-
           phase rates, the database's size after each phase (it should
           stay flat), and the first phase's rate against the growth run's
           (what purging costs).
  nodes    (PostgreSQL, --nodes 1,2,3) that many relay nodes on one
           database, the load split over their listeners: delivered rate
           per node count. On a 2-core machine this shows the mechanism
           (nodes share one queue), not a speed-up.

The reference is measured in the same run: smtp-source -> smtp-sink
directly (the ceiling of the machine and tools), and each figure is given
with its ratio to it. Prints one JSON line per backend and part. Run it
through bench/scale.sh, which builds the relay and installs Postfix's tools.
"""

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare import SENDER, Sink, free_port, relay_config, wait_port  # noqa: E402

TOKEN = "bench-token-0123456789abcdef0123456789abcdef"
HOT_STORE, HOT_ORDER = "bench", "hot-1"
REAL = "buyer@example.net"


def say(*parts):
    print("scale:", *parts, file=sys.stderr, flush=True)


class Sampler:
    """Largest value of `measure()` every 0.25 s while it runs."""

    def __init__(self, measure):
        self.measure, self.largest, self.running = measure, 0, True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while self.running:
            try:
                self.largest = max(self.largest, self.measure())
            except OSError:
                pass
            time.sleep(0.25)

    def stop(self):
        self.running = False
        self.thread.join()
        return self.largest


def file_size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def rss_kib(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total = max(total, int(line.split()[1]))
        except OSError:
            pass
    return total


class Store:
    """The database one part runs on, and how big it is on disk."""

    def __init__(self, url, root):
        self.url = url or f"sqlite://{root}/relay.db"
        self.sqlite = self.url.startswith("sqlite")
        self.path = self.url[len("sqlite://"):] if self.sqlite else None

    def wal(self):
        return file_size(self.path + "-wal") if self.sqlite else 0

    def size(self):
        if self.sqlite:
            return file_size(self.path) + self.wal()
        out = subprocess.run(["psql", self.url, "-Atc", "SELECT pg_database_size(current_database())"],
                             capture_output=True, text=True, check=True)
        return int(out.stdout.strip())

    def entry_at(self, offset):
        """The id of the hot order's timeline entry at `offset` (oldest
        first): the cursor of the page after it."""
        sql = ("SELECT id FROM timeline_entries WHERE store = 'bench' AND order_id = 'hot-1' "
               f"ORDER BY at, id LIMIT 1 OFFSET {offset}")
        if self.sqlite:
            with sqlite3.connect(self.path) as c:
                return c.execute(sql).fetchone()[0]
        out = subprocess.run(["psql", self.url, "-Atc", sql], capture_output=True, text=True, check=True)
        return out.stdout.strip()


class Node:
    """One `ct-relay serve` on `store`, delivering to `sink`."""

    def __init__(self, args, store, sink, root, name, extra=""):
        self.smtp, self.api = free_port(), free_port()
        self.config = os.path.join(root, f"{name}.toml")
        api = f'[api]\nlisten = "127.0.0.1:{self.api}"\ntoken = "{TOKEN}"\n'
        with open(self.config, "w") as f:
            f.write(relay_config(self.smtp, store.url, sink.port, extra, more=api))
        self.cmd = [args.relay, "--config", self.config]
        self.log = os.path.join(root, f"{name}.log")
        self.proc = None

    def cli(self, *argv, stdin=None):
        return subprocess.run(self.cmd + list(argv), check=True, capture_output=True,
                              stdin=stdin, text=stdin is None)

    def start(self):
        log = open(self.log, "w")
        self.proc = subprocess.Popen(self.cmd + ["serve"], stdout=log, stderr=log)
        wait_port(self.smtp, limit=60)
        wait_port(self.api, limit=60)

    def stop(self):
        if self.proc:
            self.proc.terminate()
            self.proc.wait()

    def get_ms(self, path):
        req = urllib.request.Request(f"http://127.0.0.1:{self.api}{path}",
                                     headers={"Authorization": f"Bearer {TOKEN}"})
        start = time.perf_counter()
        with urllib.request.urlopen(req) as r:
            body = r.read()
        took = (time.perf_counter() - start) * 1000
        return took, json.loads(body)


def import_aliases(args, node, store, root):
    """ALIASES lines: two participants (buyer, shop) per order."""
    lines = os.path.join(root, "aliases.jsonl")
    with open(lines, "w") as f:
        for i in range(args.aliases // 2):
            order = f"{1000000000000 + i}-01"
            s = f"store{i % 100}"
            f.write(json.dumps({"store": s, "order": order, "role": "customer",
                                "email": f"buyer{i}@example.com"}) + "\n")
            f.write(json.dumps({"store": s, "order": order, "role": "store",
                                "email": f"sac@{s}.example"}) + "\n")
    wal = Sampler(store.wal)
    start = time.monotonic()
    with open(lines) as stdin, open(os.devnull, "w") as out:
        subprocess.run(node.cmd + ["alias", "import"], stdin=stdin, stdout=out, check=True)
    took = time.monotonic() - start
    os.remove(lines)
    return {"aliases": args.aliases, "seconds": round(took, 1),
            "aliases_per_s": round(args.aliases / took),
            "wal_largest_bytes": wal.stop(), "wal_after_bytes": store.wal()}


def send(args, ports, to, sink, messages, already):
    """smtp-source into each of `ports` at once (`messages` split evenly);
    the delivered rate until the sink has counted them all."""
    start = time.monotonic()
    share = messages // len(ports)
    procs = [subprocess.Popen(["smtp-source", "-d", "-s", str(args.sessions), "-m", str(share),
                               "-l", str(args.size), "-f", SENDER, "-t", to, f"127.0.0.1:{p}"])
             for p in ports]
    for p in procs:
        if p.wait() != 0:
            sys.exit("smtp-source failed")
    sink.wait_for(already + share * len(ports), limit=3600)
    return round(share * len(ports) / (time.monotonic() - start))


def phases(args, nodes, store, sink, alias):
    """PHASES phases of MESSAGES/PHASES messages; per phase: rate, bytes
    on disk, WAL and RSS peaks."""
    per = args.messages // args.phases
    before = store.size()
    out, sent = [], 0
    for n in range(args.phases):
        wal = Sampler(store.wal)
        rss = Sampler(lambda: rss_kib([x.proc.pid for x in nodes]))
        rate = send(args, [x.smtp for x in nodes], alias, sink, per, sent)
        sent += per
        size = store.size()
        out.append({"phase": n + 1, "delivered_msgs_per_s": rate, "disk_bytes": size,
                    "wal_bytes": store.wal(),
                    "disk_bytes_per_message": round((size - before) / sent),
                    "wal_largest_bytes": wal.stop(), "rss_largest_kib": rss.stop()})
        say(json.dumps(out[-1]))
    return out


def timeline_latency(args, node, store):
    """Median ms of a 50-entry page: first, middle and last of the hot order."""
    query = f"/v1/orders/{HOT_ORDER}/timeline?store={HOT_STORE}&limit=50"
    total = args.messages
    pages = {"first": query,
             "middle": f"{query}&after={store.entry_at(total // 2)}",
             "last": f"{query}&after={store.entry_at(total - 51)}"}
    result = {}
    for name, path in pages.items():
        times = []
        for _ in range(args.repeat):
            took, body = node.get_ms(path)
            times.append(took)
        assert len(body["entries"]) == 50, body.get("entries", [])[:1]
        result[f"{name}_page_ms"] = round(statistics.median(times), 1)
    return result


def hot_alias(node):
    made = node.cli("alias", "create", "--store", HOT_STORE, "--order", HOT_ORDER,
                    "--role", "customer", "--email", REAL)
    return json.loads(made.stdout)["alias"]


def direct(args):
    sink = Sink()
    try:
        return send(args, [sink.port], REAL, sink, args.messages // args.phases, 0)
    finally:
        sink.stop()


def growth(args, url, ceiling):
    with tempfile.TemporaryDirectory(prefix="ct-bench-scale-") as root:
        store = Store(url, root)
        sink = Sink()
        # Nothing is old enough to purge; the purge runs (and compacts) every
        # 30 s as it does hourly in production.
        node = Node(args, store, sink, root, "relay", "purge_interval = \"30s\"")
        try:
            node.cli("migrate")
            imported = import_aliases(args, node, store, root)
            say("import", json.dumps(imported))
            alias = hot_alias(node)
            node.start()
            run = phases(args, [node], store, sink, alias)
            latency = timeline_latency(args, node, store)
        finally:
            node.stop()
            sink.stop()
        first, last = run[0]["delivered_msgs_per_s"], run[-1]["delivered_msgs_per_s"]
        return {"part": "growth", "import": imported, "phases": run,
                "last_vs_first": round(last / first, 2),
                "first_phase_vs_direct": round(first / ceiling, 3),
                "timeline_entries": args.messages, "timeline": latency}


def purging(args, url, ceiling, unpurged=None):
    with tempfile.TemporaryDirectory(prefix="ct-bench-scale-") as root:
        store = Store(url, root)
        sink = Sink()
        extra = f'retention = "{args.retention}"\npurge_interval = "2s"'
        node = Node(args, store, sink, root, "relay", extra)
        try:
            node.cli("migrate")
            alias = hot_alias(node)
            node.start()
            run = phases(args, [node], store, sink, alias)
        finally:
            node.stop()
            sink.stop()
        first, last = run[0]["delivered_msgs_per_s"], run[-1]["delivered_msgs_per_s"]
        sizes = [p["disk_bytes"] for p in run]
        return {"part": "purging", "retention": args.retention, "phases": run,
                "last_vs_first": round(last / first, 2),
                "first_phase_vs_direct": round(first / ceiling, 3),
                "disk_bytes_last_vs_second_phase": round(sizes[-1] / sizes[1], 2),
                "first_phase_vs_growth_first_phase": round(first / unpurged, 2) if unpurged else None}


def nodes(args, url, counts, ceiling):
    out = []
    for count in counts:
        with tempfile.TemporaryDirectory(prefix="ct-bench-scale-") as root:
            store = Store(url, root)
            sink = Sink()
            cluster = [Node(args, store, sink, root, f"node{i}") for i in range(count)]
            try:
                cluster[0].cli("migrate")
                alias = hot_alias(cluster[0])
                for n in cluster:
                    n.start()
                rate = send(args, [n.smtp for n in cluster], alias, sink, args.node_messages, 0)
            finally:
                for n in cluster:
                    n.stop()
                sink.stop()
            out.append({"nodes": count, "delivered_msgs_per_s": rate,
                        "vs_direct": round(rate / ceiling, 3)})
            say(json.dumps(out[-1]))
            # The next count starts on an empty database.
            subprocess.run(["psql", store.url, "-qc",
                            "SET client_min_messages = warning; DROP SCHEMA public CASCADE; CREATE SCHEMA public"], check=True)
    return {"part": "nodes", "messages": args.node_messages, "runs": out}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--relay", default="target/release/ct-relay")
    p.add_argument("--aliases", type=int, default=1_000_000)
    p.add_argument("--messages", type=int, default=200_000)
    p.add_argument("--phases", type=int, default=5)
    p.add_argument("--size", type=int, default=5120)
    p.add_argument("--sessions", type=int, default=20)
    p.add_argument("--repeat", type=int, default=20, help="requests per timeline page")
    p.add_argument("--retention", default="5s",
                   help="retention of the purging part: short, so the purge runs in every phase")
    p.add_argument("--storage-url", default=None, help="PostgreSQL database (emptied); none: SQLite")
    p.add_argument("--parts", default="growth,purging,nodes")
    p.add_argument("--nodes", default="1,2,3", help="node counts of the nodes part (PostgreSQL)")
    p.add_argument("--node-messages", type=int, default=30_000)
    args = p.parse_args()
    backend = "sqlite" if args.storage_url is None else "postgres"
    ceiling = direct(args)
    say(f"direct smtp-source -> smtp-sink: {ceiling} msg/s")
    parts = args.parts.split(",")
    common = {"backend": backend, "aliases": args.aliases, "messages": args.messages,
              "size": args.size, "sessions": args.sessions, "direct_msgs_per_s": ceiling}

    def fresh():
        if args.storage_url:
            subprocess.run(["psql", args.storage_url, "-qc",
                            "SET client_min_messages = warning; DROP SCHEMA public CASCADE; CREATE SCHEMA public"], check=True)

    unpurged = None
    if "growth" in parts:
        fresh()
        grown = growth(args, args.storage_url, ceiling)
        unpurged = grown["phases"][0]["delivered_msgs_per_s"]
        print(json.dumps({**common, **grown}), flush=True)
    if "purging" in parts:
        fresh()
        purged = purging(args, args.storage_url, ceiling, unpurged)
        print(json.dumps({**common, **purged}), flush=True)
    if "nodes" in parts and args.storage_url:
        fresh()
        counts = [int(n) for n in args.nodes.split(",")]
        print(json.dumps({**common, **nodes(args, args.storage_url, counts, ceiling)}), flush=True)


if __name__ == "__main__":
    main()
