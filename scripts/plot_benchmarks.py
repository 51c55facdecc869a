#!/usr/bin/python3
"""Plots for docs/benchmarks.md from the raw `strata bench offline --json` lines kept in
docs/results (each line: "<name> <json>"). Needs Debian's python3-matplotlib.

  scripts/plot_benchmarks.py docs/results/capacity-2026-11-23.txt docs/img/capacity.png
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(src, out):
    names, admitted, decode, kv = [], [], [], []
    for line in open(src):
        name, _, rest = line.partition(" ")
        j = json.loads(rest)
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
    main(sys.argv[1], sys.argv[2])
