#!/usr/bin/env python3
"""Render the Grafana dashboard's panels from a real Prometheus: each panel's
queries are run with /api/v1/query_range and drawn with matplotlib, in the
dashboard's grid order. Used where no Grafana is installed (no Grafana
package comes from Debian's or npm's registries here); the queries are the
dashboard's own, with $__rate_interval set to --rate-interval.

    ops/render-dashboard.py --prometheus http://127.0.0.1:9090 \
        --minutes 10 --out docs/ops/dashboard.png
"""
import argparse
import datetime
import json
import re
import time
import urllib.parse
import urllib.request

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402


def query_range(base, expr, start, end, step):
    params = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": step})
    with urllib.request.urlopen(f"{base}/api/v1/query_range?{params}", timeout=30) as r:
        body = json.load(r)
    if body.get("status") != "success":
        raise SystemExit(f"query failed: {expr}: {body}")
    return body["data"]["result"]


def legend(fmt, labels):
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), fmt) or "value"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prometheus", required=True)
    ap.add_argument("--dashboard", default="ops/grafana/ct-relay.json")
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--rate-interval", default="30s")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    dash = json.load(open(args.dashboard))
    panels = sorted(dash["panels"], key=lambda p: (p["gridPos"]["y"], p["gridPos"]["x"]))
    end = time.time()
    start = end - args.minutes * 60
    step = max(2, int(args.minutes * 60 / 300))
    cols = 3
    rows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(6 * cols, 3.2 * rows), squeeze=False)
    fig.suptitle(f"{dash['title']}: the last {args.minutes:g} minutes, from a real Prometheus scrape", fontsize=14)
    drawn = 0
    for ax, panel in zip(axes.flat, panels):
        unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "")
        ax.set_title(f"{panel['title']}" + (f"  [{unit}]" if unit not in ("", "short") else ""), fontsize=10)
        for target in panel["targets"]:
            expr = target["expr"].replace("$__rate_interval", args.rate_interval)
            for series in query_range(args.prometheus, expr, start, end, step):
                xs = [datetime.datetime.fromtimestamp(float(t)) for t, _ in series["values"]]
                ys = [float(v) for _, v in series["values"]]
                ax.plot(xs, ys, label=legend(target.get("legendFormat", ""), series["metric"]))
                drawn += 1
        ax.set_xlim(datetime.datetime.fromtimestamp(start), datetime.datetime.fromtimestamp(end))
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S"))
        ax.xaxis.set_major_locator(mdates.MinuteLocator())
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=7, loc="upper left")
        else:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="grey")
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(args.out, dpi=80)
    print(f"{args.out}: {len(panels)} panels, {drawn} series")


if __name__ == "__main__":
    main()
