#!/usr/bin/env python3
"""Where the CPU goes, per message: the same smtp-source load as
bench/compare.py (ct-relay only, into smtp-sink), with the CPU time of
each of the relay's threads (by name), its context switches and the sink's
CPU, read from /proc before and after the load.

    python3 bench/cpu.py [--messages N] [--sessions S] [--size BYTES]
                         [--storage-url URL] [--relay PATH]

Build the relay first (cargo build --release); run as root (smtp-sink
drops to user postfix). Prints one JSON line.
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(stat_path):
    with open(stat_path) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def threads(pid):
    """{thread name: (cpu seconds, context switches)}, summed by name."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        base = f"/proc/{pid}/task/{tid}"
        try:
            cpu = cpu_seconds(f"{base}/stat")
            with open(f"{base}/status") as f:
                status = dict(line.split(":", 1) for line in f if ":" in line)
        except OSError:
            continue  # the thread ended
        name = status["Name"].strip()
        switches = sum(int(status[k]) for k in ("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"))
        total = out.get(name, (0.0, 0))
        out[name] = (total[0] + cpu, total[1] + switches)
    return out


def busy():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v) - v[3] - v[4], sum(v)


def measured(args, port, alias, sink, proc):
    before, sink0, machine0 = threads(proc.pid), cpu_seconds(f"/proc/{sink.proc.pid}/stat"), busy()
    start = time.monotonic()
    rates = compare.send(args, port, alias, sink)
    wall = time.monotonic() - start
    after, sink1, machine1 = threads(proc.pid), cpu_seconds(f"/proc/{sink.proc.pid}/stat"), busy()
    n = args.messages
    per_thread = {}
    for name, (cpu, switches) in after.items():
        cpu0, switches0 = before.get(name, (0.0, 0))
        per_thread[name] = {
            "cpu_us_per_msg": round((cpu - cpu0) / n * 1e6),
            "switches_per_msg": round((switches - switches0) / n, 1),
        }
    return {
        "messages": n,
        "delivered_msgs_per_s": rates[1],
        "relay_cpu_us_per_msg": sum(t["cpu_us_per_msg"] for t in per_thread.values()),
        "relay_threads": per_thread,
        "sink_cpu_us_per_msg": round((sink1 - sink0) / n * 1e6),
        "machine_busy": round((machine1[0] - machine0[0]) / (machine1[1] - machine0[1]), 2),
        "wall_s": round(wall, 2),
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--relay", default="target/release/ct-relay")
    p.add_argument("--messages", type=int, default=10000)
    p.add_argument("--sessions", type=int, default=20)
    p.add_argument("--size", type=int, default=10240)
    p.add_argument("--storage-url", default=None)
    args = p.parse_args()
    sink = compare.Sink()
    try:
        print(json.dumps(compare.run_relay(args, sink, args.storage_url, load=measured)), flush=True)
    finally:
        sink.stop()


if __name__ == "__main__":
    main()
