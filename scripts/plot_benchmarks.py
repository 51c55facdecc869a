#!/usr/bin/python3
"""Plots for docs/benchmarks.md from the raw `strata bench offline --json` lines kept in
docs/results (each line: "<name> <json>"). Needs Debian's python3-matplotlib.

  scripts/plot_benchmarks.py capacity docs/results/capacity-2026-11-23.txt docs/img/capacity.png
  scripts/plot_benchmarks.py roofline docs/results/roofline-2026-11-23.txt docs/img/roofline.png
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def load(src):
    for line in open(src):
        name, _, rest = line.partition(" ")
        yield name, json.loads(rest)


def roofline(src, out):
    """Batch-1 decode per run against the floor measured just before that run."""
    rows = list(load(src))
    fig, ax = plt.subplots(figsize=(8, 4))
    for i, (name, j) in enumerate(rows):
        per_token = j["decode_bytes_per_token"]
        floors = [bw / per_token for bw in j["read_bandwidth_bytes_per_s_runs"]]
        runs = j["decode_tokens_per_s_runs"]
        ax.bar(i - 0.2, sorted(floors)[len(floors) // 2], 0.4, color="tab:gray", label="bandwidth floor" if i == 0 else None)
        ax.bar(i + 0.2, sorted(runs)[len(runs) // 2], 0.4, color="tab:blue", label="decode (median)" if i == 0 else None)
        ax.plot([i + 0.2] * len(runs), runs, "k.", markersize=4, label="each run" if i == 0 else None)
        ax.text(i + 0.2, max(runs), f"{100 * j['decode_fraction_of_floor']:.0f}%", ha="center", va="bottom", fontsize=9)
    ax.set_xticks(range(len(rows)), [f"{n}\n{j['config']['weight_dtype']}" for n, j in rows])
    ax.set_ylabel("tokens/s, batch 1, 1 thread")
    ax.set_title("Pythia-160M decode against the read-bandwidth floor (% = median of per-run fractions)")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def capacity(src, out):
    names, admitted, decode, kv = [], [], [], []
    for name, j in load(src):
        names.append(name)
        admitted.append(j["admitted_batch"])
        decode.append(j["decode_tokens_per_s"])
        kv.append(j["kv_bytes_per_token"])
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    a.bar(names, admitted, color="tab:blue")
    a.set_yscale("log")
    a.set_ylabel("sequences admitted at once (log)")
    a.set_title("Batch a 4 MiB KV budget admits")
    for i, v in enumerate(admitted):
        a.text(i, v, str(v), ha="center", va="bottom", fontsize=8)
    b.plot(admitted, decode, "o", color="tab:orange")
    for n, x, y in zip(names, admitted, decode):
        b.annotate(n, (x, y), textcoords="offset points", xytext=(4, -10), fontsize=8)
    b.set_xscale("log")
    b.set_xlabel("admitted batch (log)")
    b.set_ylabel("decode tokens/s (1 CPU thread)")
    b.set_title("Throughput at the admitted batch")
    fig.suptitle("Pythia-160M shapes, FP16 KV, prompt 32 + 16 tokens")
    fig.tight_layout()
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    {"capacity": capacity, "roofline": roofline}[sys.argv[1]](sys.argv[2], sys.argv[3])
