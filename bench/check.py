#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Check that a benchmark run is complete: bench/check.py RAW.jsonl REPORT.json REPORT.md CHART.svg

Every subject of the environment record has runs, every run did I/O (IOPS, I/O count and context
switches above zero), every subject has a memory row, and the report has its tables and chart.
Prints what is missing and exits 1, or exits 0.
"""

import json
import sys


def main():
    raw, report, md, svg = sys.argv[1:5]
    records = [json.loads(line) for line in open(raw, encoding="utf-8") if line.strip()]
    problems = []
    env = [r for r in records if r.get("kind") == "env"]
    if len(env) != 1:
        problems.append(f"{len(env)} environment records")
    runs = [r for r in records if r.get("kind") == "run"]
    subjects = sorted({r["subject"] for r in runs})
    if not subjects:
        problems.append("no runs")
    for s in subjects:
        if not any(r.get("kind") == "memory" and r.get("subject") == s for r in records):
            problems.append(f"no memory row for {s}")
    for r in runs:
        if not (r.get("iops", 0) > 0 and r.get("ios", 0) > 0 and r.get("ctxt", 0) > 0):
            problems.append(f"a run without I/O: {json.dumps(r)}")
    if not json.load(open(report, encoding="utf-8")).get("medians"):
        problems.append("no medians in the JSON report")
    text = open(md, encoding="utf-8").read()
    for title in ("1. Throughput", "2. Context switches", "3. Memory"):
        if title not in text:
            problems.append(f"table '{title}' missing from the report")
    if "<svg" not in open(svg, encoding="utf-8").read():
        problems.append("the chart is not an SVG")
    for p in problems:
        print(f"bench check: {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
