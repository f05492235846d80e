#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Turn a bench/run-guest.sh result file into the seed's three tables and a chart.

Usage: report.py RESULTS.jsonl OUT.json OUT.md OUT.svg

OUT.json holds the raw runs, the environment and the medians; OUT.md the tables (medians over
the repetitions, with the min-max spread, and the rust/C, rust/raw and dio/buffered ratios);
OUT.svg grouped bars of IOPS per workload, relative to the raw backing storage.
"""

import json
import statistics
import sys

SUBJECTS = ["raw", "c-buf", "c-dio", "rust-buf", "rust-dio", "rust1-buf", "rust1-dio"]
NAMES = {
    "raw": "raw backing file (O_DIRECT)",
    "c-buf": "loop.ko, DIO off",
    "c-dio": "loop.ko, DIO on",
    "rust-buf": "rust_loop, DIO off",
    "rust-dio": "rust_loop, DIO on",
    "rust1-buf": "rust_loop 1 queue, DIO off",
    "rust1-dio": "rust_loop 1 queue, DIO on",
}
A = ["randread", "read", "randwrite", "write"]
B = ["libaio-randread", "libaio-randwrite", "io_uring-randread", "io_uring-randwrite"]
E = ["psync4-randread", "libaio2-randread", "psync1-read"]
RATIOS = [("rust/C, DIO on", "rust-dio", "c-dio"),
          ("rust/C, DIO off", "rust-buf", "c-buf"),
          ("rust 1 queue/C, DIO on", "rust1-dio", "c-dio"),
          ("rust 1 queue/C, DIO off", "rust1-buf", "c-buf"),
          ("rust DIO on / raw", "rust-dio", "raw"),
          ("rust DIO on/off", "rust-dio", "rust-buf"),
          ("loop.ko DIO on/off", "c-dio", "c-buf")]
ENGINE = ["to_shared", "aio_nowait", "aio_blocking", "buffered_nowait", "buffered_blocking",
          "eagain_fallbacks", "blocking_path", "requeued"]


RUNS = []


def load(path):
    env, runs, memory = {}, [], {}
    with open(path) as f:
        for line in f:
            r = json.loads(line)
            if r["kind"] == "env":
                env = r
            elif r["kind"] == "run":
                runs.append(r)
            elif r["kind"] == "memory":
                memory[r["subject"]] = r
    return env, runs, memory


def summarize(runs):
    """(subject, workload, label) -> {metric: (median, min, max)}."""
    groups = {}
    for r in runs:
        groups.setdefault((r["subject"], r["workload"], r["label"]), []).append(r)
    out = {}
    for key, rs in groups.items():
        m = {}
        for metric in ["iops", "bw_kib", "lat_p50_us", "lat_p99_us", "ctxt_per_io", "cpu_busy_pct"]:
            vals = [r[metric] for r in rs if r.get(metric) is not None]
            if vals:
                m[metric] = (statistics.median(vals), min(vals), max(vals))
        out[key] = m
    return out


def fmt(x, digits=0):
    if x is None:
        return "–"
    if digits == 0:
        return f"{x:,.0f}"
    return f"{x:,.{digits}f}"


def cell(s, key, metric, digits=0):
    v = s.get(key, {}).get(metric)
    if not v:
        return "–"
    med, lo, hi = v
    if lo == hi:
        return fmt(med, digits)
    return f"{fmt(med, digits)} <sub>({fmt(lo, digits)}–{fmt(hi, digits)})</sub>"


def ratio(s, k1, k2, metric="iops"):
    a = s.get(k1, {}).get(metric)
    b = s.get(k2, {}).get(metric)
    if not a or not b or b[0] == 0:
        return "–"
    return f"{a[0] / b[0]:.2f}"


def present(s, subj, workload, labels):
    return any((subj, workload, lb) in s for lb in labels)


def table(s, workload, labels, metric, digits, title):
    lines = [f"**{title}**", "", "| subject | " + " | ".join(labels) + " |",
             "|---|" + "---|" * len(labels)]
    for subj in SUBJECTS:
        if present(s, subj, workload, labels):
            lines.append(f"| {NAMES[subj]} | " + " | ".join(
                cell(s, (subj, workload, lb), metric, digits) for lb in labels) + " |")
    for name, k1, k2 in RATIOS:
        if present(s, k1, workload, labels) and present(s, k2, workload, labels):
            lines.append(f"| *{name}* | " + " | ".join(
                ratio(s, (k1, workload, lb), (k2, workload, lb), metric) for lb in labels)
                + " |")
    return lines


def per_subject(s, workload, label, title):
    """One workload: IOPS, p50, p99, CPU busy and context switches per I/O, per subject."""
    lines = [f"**{title}**", "",
             "| subject | IOPS | p50 µs | p99 µs | CPU busy % | ctxt/IO |",
             "|---|---|---|---|---|---|"]
    for subj in SUBJECTS:
        k = (subj, workload, label)
        if k in s:
            lines.append(f"| {NAMES[subj]} | {cell(s, k, 'iops')} | {cell(s, k, 'lat_p50_us', 1)} | "
                         f"{cell(s, k, 'lat_p99_us', 1)} | {cell(s, k, 'cpu_busy_pct', 1)} | "
                         f"{cell(s, k, 'ctxt_per_io', 2)} |")
    for name, k1, k2 in RATIOS:
        a, b = (k1, workload, label), (k2, workload, label)
        if a in s and b in s:
            lines.append(f"| *{name}* | {ratio(s, a, b)} | {ratio(s, a, b, 'lat_p50_us')} | "
                         f"{ratio(s, a, b, 'lat_p99_us')} | {ratio(s, a, b, 'cpu_busy_pct')} | "
                         f"{ratio(s, a, b, 'ctxt_per_io')} |")
    return lines


def engine_table(runs):
    """rust_loop's engine counters (medians over the repetitions), as a share of the requests."""
    groups = {}
    for r in runs:
        e = r.get("engine") or {}
        if r["subject"].startswith("rust") and e.get("dispatched"):
            groups.setdefault((r["subject"], r["workload"], r["label"]), []).append(e)
    lines = ["**Engine**: what rust_loop did with the requests of each run (debugfs "
             "`rust_loop/loopN/stats`, medians; % of the requests dispatched)", "",
             "| subject | workload | requests | " + " | ".join(ENGINE) + " |",
             "|---|---|---|" + "---|" * len(ENGINE)]
    for (subj, w, lb), es in sorted(groups.items()):
        n = statistics.median(e["dispatched"] for e in es)
        cols = []
        for c in ENGINE:
            v = statistics.median(e.get(c, 0) for e in es)
            cols.append(f"{100 * v / n:.0f}%" if n else "–")
        lines.append(f"| {NAMES[subj]} | {w} {lb} | {n:,.0f} | " + " | ".join(cols) + " |")
    return lines


def loop_ko(key):
    """The loop.ko run a rust_loop run (subject, workload, label) is compared with."""
    subj, w, lb = key
    return ("c-" + subj.split("-", 1)[1], w, lb)


def paired(k1, k2, metric="iops"):
    """The ratio k1/k2 of each repetition (the two runs of a repetition are minutes apart at
    most, while the boot's drift spans the whole run): (median, min, max), or None."""
    by_rep = {}
    for r in RUNS:
        key = (r["subject"], r["workload"], r["label"])
        if key in (k1, k2) and r.get(metric):
            by_rep.setdefault(r["rep"], {})[key] = r[metric]
    rs = [v[k1] / v[k2] for v in by_rep.values() if k1 in v and k2 in v]
    return (statistics.median(rs), min(rs), max(rs)) if rs else None


def paired_table():
    """Per-repetition rust/C ratios of every workload: where all of a workload's repetitions
    fall on one side of 1.0, the difference is more than the boot's drift."""
    keys = sorted({(r["subject"], r["workload"], r["label"]) for r in RUNS
                   if r["subject"] in ("rust-dio", "rust-buf", "rust1-dio", "rust1-buf")})
    lines = ["**10. rust/C per repetition** (each repetition's rust_loop run over the loop.ko "
             "run of the same repetition: median, min–max; *all above* / *all below* when "
             "every repetition is on that side of 1.0)", "",
             "| subject | workload | IOPS rust/C | every repetition | ctxt/IO rust/C |",
             "|---|---|---|---|---|"]
    for subj, w, lb in keys:
        c = loop_ko((subj, w, lb))
        x = paired((subj, w, lb), c)
        if x is None:
            continue
        side = "all above" if x[1] > 1.0 else "all below" if x[2] < 1.0 else "both sides"
        cx = paired((subj, w, lb), c, "ctxt_per_io")
        cxs = f"{cx[0]:.2f} <sub>({cx[1]:.2f}–{cx[2]:.2f})</sub>" if cx else "–"
        lines.append(f"| {NAMES[subj]} | {w} {lb} | {x[0]:.2f} <sub>({x[1]:.2f}–{x[2]:.2f})"
                     f"</sub> | {side} | {cxs} |")
    return lines


def med(s, key, metric):
    v = s.get(key, {}).get(metric)
    return v[0] if v else None


def targets(s):
    """The engine's goals (README: Performance), each with its measured value."""
    rows = ["**Goals**", "", "| goal | measured | met |", "|---|---|---|"]

    def row(goal, value, ok):
        rows.append(f"| {goal} | {value} | {'yes' if ok else 'no'} |")

    def r(k1, k2, metric="iops"):
        a, b = med(s, k1, metric), med(s, k2, metric)
        return a / b if a is not None and b else None

    x = r(("rust-dio", "e", "psync4-randread"), ("c-dio", "e", "psync4-randread"))
    if x is not None:
        row("RAM, DIO on, psync x4 random read: rust/C >= 3.0", f"{x:.2f}", x >= 3.0)
    x = r(("rust-dio", "e", "psync4-randread"), ("raw", "e", "psync4-randread"))
    if x is not None:
        row("RAM, DIO on, psync x4 random read: about 0.7 of raw", f"{x:.2f}", x >= 0.6)
    x = r(("rust-dio", "e", "psync1-read"), ("c-dio", "e", "psync1-read"), "lat_p50_us")
    if x is not None:
        row("RAM, DIO on, one psync job: p50 latency <= 0.5x loop.ko's", f"{x:.2f}", x <= 0.5)
    x = r(("rust-buf", "b", "libaio-randread"), ("c-buf", "b", "libaio-randread"))
    if x is not None:
        row("virtio, buffered cold random read QD32: rust/C >= 2.0", f"{x:.2f}", x >= 2.0)
    worst, worst_k = None, None
    worse_ctxt = []
    for (subj, w, lb) in s:
        if not subj.startswith("rust-"):
            continue
        c = loop_ko((subj, w, lb))
        v = r((subj, w, lb), c)
        if v is not None and (worst is None or v < worst):
            worst, worst_k = v, f"{NAMES[subj]}, {w} {lb}"
        cx = r((subj, w, lb), c, "ctxt_per_io")
        if cx is not None and cx > 1.0:
            worse_ctxt.append(f"{w} {lb} ({subj}: {cx:.2f})")
    if worst is not None:
        row("no workload below 0.95 of loop.ko (worst)", f"{worst:.2f} ({worst_k})",
            worst >= 0.95)
    row("context switches per I/O no higher than loop.ko's",
        "higher in: " + ", ".join(worse_ctxt) if worse_ctxt else "never higher",
        not worse_ctxt)
    # The same two goals with each repetition paired with loop.ko's run of that repetition:
    # below (above) in every repetition is a difference the boot's drift does not explain.
    below, above = [], []
    for (subj, w, lb) in sorted(s):
        if not subj.startswith("rust-"):
            continue
        c = loop_ko((subj, w, lb))
        x = paired((subj, w, lb), c)
        if x is not None and x[2] < 0.95:
            below.append(f"{w} {lb} ({subj}: {x[0]:.2f}, at most {x[2]:.2f})")
        cx = paired((subj, w, lb), c, "ctxt_per_io")
        if cx is not None and cx[1] > 1.0:
            above.append(f"{w} {lb} ({subj}: {cx[0]:.2f}, at least {cx[1]:.2f})")
    row("… paired per repetition: no workload below 0.95 of loop.ko in every repetition",
        "below in: " + ", ".join(below) if below else "none", not below)
    row("… paired per repetition: no workload with more context switches in every repetition",
        "more in: " + ", ".join(above) if above else "none", not above)
    return rows


def markdown(env, s, memory):
    md = [f"Kernel {env.get('kernel')}, {env.get('vcpus')} vCPUs ({env.get('cpu')}), "
          f"{env.get('accel')}, {env.get('fio')}, logical block size {env.get('block_size')}, "
          f"{env.get('reps')} interleaved repetitions of {env.get('runtime_s')} s runs, "
          f"{env.get('date')}{' (BENCH_QUICK)' if env.get('quick') else ''}. Medians, "
          "min–max in small print."]
    if env.get("accel") == "TCG":
        md.append("")
        md.append("Under TCG (software emulation) absolute numbers mean nothing; compare ratios.")
    md.append("")
    md += table(s, "a", A, "iops", 0,
                "1. Throughput (IOPS), the seed's job: fio 4 jobs psync on ext4 over the device")
    md.append("")
    rows = ["**2. Context switches per I/O** (system-wide `/proc/stat` ctxt delta / I/Os)", "",
            "| subject | " + " | ".join(A) + " | " + " | ".join(B) + " |",
            "|---|" + "---|" * (len(A) + len(B))]
    for subj in SUBJECTS:
        rows.append(f"| {NAMES[subj]} | " + " | ".join(
            [cell(s, (subj, "a", lb), "ctxt_per_io", 2) for lb in A]
            + [cell(s, (subj, "b", lb), "ctxt_per_io", 2) for lb in B]) + " |")
    for name, k1, k2 in [("rust/C, DIO on", "rust-dio", "c-dio"),
                         ("rust DIO on/off", "rust-dio", "rust-buf"),
                         ("loop.ko DIO on/off", "c-dio", "c-buf")]:
        rows.append(f"| *{name}* | " + " | ".join(
            [ratio(s, (k1, "a", lb), (k2, "a", lb), "ctxt_per_io") for lb in A]
            + [ratio(s, (k1, "b", lb), (k2, "b", lb), "ctxt_per_io") for lb in B]) + " |")
    md += rows
    md.append("")
    mem = ["**3. Memory** (growth over a read pass of the files on the mounted file system, "
           "caches dropped first)", "", "| subject | data read | Buffers | Cached |",
           "|---|---|---|---|"]
    for subj in SUBJECTS:
        m = memory.get(subj)
        if m:
            mem.append(f"| {NAMES[subj]} | {m['data_mb']} MiB | +{m['buffers_mb']} MiB | "
                       f"+{m['cached_mb']} MiB |")
    md += mem
    md.append("")
    md += table(s, "b", B, "iops", 0,
                "4. The loop device itself: 4 KiB random I/O at queue depth 32 (IOPS); with "
                "DIO off, the buffered cold-cache case")
    md.append("")
    md += per_subject(s, "c", "psync-randread",
                      "5. Latency: one psync job, 4 KiB random reads (virtio)")
    md.append("")
    md += per_subject(s, "d", "libaio16-write",
                      "6. Upstream's regression case: one sequential writer, libaio QD16, DIO on "
                      "(virtio)")
    md.append("")
    md += table(s, "e", E, "iops", 0,
                "7. Backing store in RAM (tmpfs), DIO on: 4 KiB reads, psync x4 random, libaio "
                "x2 QD32 random, one psync job sequential (IOPS)")
    md.append("")
    md += table(s, "e", E, "lat_p50_us", 1, "8. Backing store in RAM: p50 latency (µs)")
    md.append("")
    md += table(s, "e", E, "ctxt_per_io", 2,
                "9. Backing store in RAM: context switches per I/O")
    md.append("")
    md += engine_table(RUNS)
    md.append("")
    md += paired_table()
    md.append("")
    md += targets(s)
    return "\n".join(md) + "\n"


def chart(env, s, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = [("a", lb, f"ext4 {lb}") for lb in A] + [("b", lb, lb) for lb in B] + \
        [("c", "psync-randread", "psync randread QD1"), ("d", "libaio16-write", "seq write QD16")] + \
        [("e", lb, f"RAM {lb}") for lb in E]
    subjects = [x for x in SUBJECTS if x != "raw"]
    fig, ax = plt.subplots(figsize=(12, 4.8))
    width = 0.8 / len(subjects)
    for i, subj in enumerate(subjects):
        ys = []
        for w, lb, _ in groups:
            v = s.get((subj, w, lb), {}).get("iops")
            r = s.get(("raw", w, lb), {}).get("iops")
            ys.append(v[0] / r[0] if v and r and r[0] else 0)
        xs = [g + (i - (len(subjects) - 1) / 2) * width for g in range(len(groups))]
        ax.bar(xs, ys, width, label=NAMES[subj])
    ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--", label="raw backing file = 1")
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels([g[2] for g in groups], rotation=20, ha="right")
    ax.set_ylabel("IOPS relative to the raw backing file")
    ax.set_title(f"rust_loop vs loop.ko, Linux {env.get('kernel')}, {env.get('accel')} "
                 f"({env.get('vcpus')} vCPUs): medians of {env.get('reps')} runs")
    ax.legend(fontsize=8, ncol=3)
    fig.tight_layout()
    fig.savefig(path, format="svg")


def main():
    src, out_json, out_md, out_svg = sys.argv[1:5]
    env, runs, memory = load(src)
    global RUNS
    RUNS = runs
    s = summarize(runs)
    if not runs or not env:
        print("no runs in " + src, file=sys.stderr)
        return 1
    medians = [{"subject": k[0], "workload": k[1], "label": k[2],
                **{m: v[0] for m, v in vals.items()},
                "spread": {m: [v[1], v[2]] for m, v in vals.items()}} for k, vals in s.items()]
    with open(out_json, "w") as f:
        json.dump({"environment": env, "runs": runs, "memory": list(memory.values()),
                   "medians": medians}, f, indent=1)
    with open(out_md, "w") as f:
        f.write(markdown(env, s, memory))
    chart(env, s, out_svg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
