"""Small random llama and qwen2 models written as GGUF with every block format Strata loads, one per tensor role
and layer (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K, F16, BF16, F32; K-quants as seeded random
blocks, the rest quantized by gguf-py's reference quantizers; GQA so that K's permutation uses the
KV head count; an untied output.weight; qwen2 with q/k/v biases and no Q/K permutation), then
Strata against transformers (PyTorch, CPU) loading
the same file: with weights dequantized (--dequantize), greedy tokens equal (except where
transformers' best two are within 1e-4) and logprobs within 1e-3 on 6 prompts x 16 steps; on the
default path (packed blocks, 8-bit activations) tokens equal except where the best two are within
0.3; mpirun tp 2, pp 2 give the single rank's tokens on the default path; `plan` counts the weight
bytes the engine holds, and refuses a tp that would cut quantized blocks.

Usage: gguf_quant_model_test.py STRATA_BIN MPIEXEC
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
from gguf import GGMLQuantizationType as Q, GGUFWriter
from gguf.constants import GGML_QUANT_SIZES
from gguf.quants import quantize
from transformers import AutoModelForCausalLM

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))
from oracle_support import compare_greedy, finish  # noqa: E402

HIDDEN, HEADS, KV_HEADS, FF, VOCAB, LAYERS = 256, 4, 2, 512, 512, 2
HEAD_DIM = HIDDEN // HEADS
STEPS, TIE, TOLERANCE = 16, 1e-4, 1e-3
# The default path multiplies packed blocks by 8-bit activations (as llama.cpp does): a near-tie is
# wider, and logprobs move by up to ~0.4 on these random models.
PACKED_TIE, PACKED_TOLERANCE = 0.3, 0.6
HALF_FIELDS = {Q.Q4_K: [0, 2], Q.Q5_K: [0, 2], Q.Q6_K: [208]}
# The largest |sub-block scale x quant| of each K-quant's random bytes (6-bit scales x 4/5-bit
# quants; Q6_K's int8 scales x 6-bit signed quants): the super-block scales are divided by it, so
# that weights come out about `scale` in size, as a trained model's do. (Scaled as 1/20 instead,
# weights reached 16 and the logits hundreds of nats, where 8-bit activations flip even a
# 10-nat margin.)
K_RANGE = {Q.Q4_K: 63 * 15, Q.Q5_K: 63 * 31, Q.Q6_K: 128 * 32}
# Per layer, the block format of each projection (rows of 256 inputs allow K-quants everywhere).
FORMATS = [
    {"attn_q": Q.Q4_0, "attn_k": Q.Q4_1, "attn_v": Q.Q5_0, "attn_output": Q.Q5_1, "ffn_gate": Q.Q4_K,
     "ffn_up": Q.Q5_K, "ffn_down": Q.Q6_K},
    {"attn_q": Q.Q8_0, "attn_k": Q.F16, "attn_v": Q.BF16, "attn_output": Q.F32, "ffn_gate": Q.Q6_K,
     "ffn_up": Q.Q4_K, "ffn_down": Q.Q5_K},
]


def tensor(rng, qtype, rows, cols, scale):
    """A [rows, cols] weight in `qtype`: (data, raw_dtype) for GGUFWriter.add_tensor."""
    if qtype == Q.F32:
        return (rng.standard_normal((rows, cols)) * scale).astype(np.float32), None
    if qtype == Q.F16:
        return (rng.standard_normal((rows, cols)) * scale).astype(np.float16), None
    if qtype in HALF_FIELDS:  # seeded random blocks with small finite scales
        block, size = GGML_QUANT_SIZES[qtype]
        raw = rng.integers(0, 256, size=(rows, cols // block, size), dtype=np.uint8)
        for at in HALF_FIELDS[qtype]:
            raw[:, :, at:at + 2] = (np.abs(rng.standard_normal((rows, cols // block))) * scale * 8 / K_RANGE[qtype]).astype(
                np.float16).view(np.uint8).reshape(rows, cols // block, 2)
        return raw.reshape(rows, -1), qtype
    return quantize((rng.standard_normal((rows, cols)) * scale).astype(np.float32), qtype), qtype


def write_model(path, rng, arch):
    w = GGUFWriter(path, arch)
    for key, value in [("block_count", LAYERS), ("context_length", 512), ("embedding_length", HIDDEN),
                       ("feed_forward_length", FF), ("attention.head_count", HEADS),
                       ("attention.head_count_kv", KV_HEADS), ("rope.dimension_count", HEAD_DIM)]:
        w.add_uint32(f"{arch}.{key}", value)
    w.add_float32(f"{arch}.attention.layer_norm_rms_epsilon", 1e-5)
    w.add_float32(f"{arch}.rope.freq_base", 10000.0)
    w.add_string("tokenizer.ggml.model", "gpt2")
    w.add_string("tokenizer.ggml.pre", "gpt-2")
    w.add_array("tokenizer.ggml.tokens", [f"<t{i}>" for i in range(VOCAB)])
    w.add_array("tokenizer.ggml.token_type", [1] * VOCAB)
    w.add_array("tokenizer.ggml.merges", [])
    w.add_uint32("tokenizer.ggml.bos_token_id", 1)
    w.add_uint32("tokenizer.ggml.eos_token_id", 2)

    def add(name, data_raw):
        data, raw = data_raw
        w.add_tensor(name, data, raw_dtype=raw)

    add("token_embd.weight", tensor(rng, Q.Q8_0, VOCAB, HIDDEN, 1.0))
    add("output.weight", tensor(rng, Q.Q6_K, VOCAB, HIDDEN, 0.05))
    w.add_tensor("output_norm.weight", (1 + 0.1 * rng.standard_normal(HIDDEN)).astype(np.float32))
    for layer, formats in enumerate(FORMATS):
        shapes = {"attn_q": (HIDDEN, HIDDEN), "attn_k": (KV_HEADS * HEAD_DIM, HIDDEN),
                  "attn_v": (KV_HEADS * HEAD_DIM, HIDDEN), "attn_output": (HIDDEN, HIDDEN), "ffn_gate": (FF, HIDDEN),
                  "ffn_up": (FF, HIDDEN), "ffn_down": (HIDDEN, FF)}
        for role, qtype in formats.items():
            rows, cols = shapes[role]
            add(f"blk.{layer}.{role}.weight", tensor(rng, qtype, rows, cols, 0.08))
        if arch == "qwen2":
            for role in ("attn_q", "attn_k", "attn_v"):
                w.add_tensor(f"blk.{layer}.{role}.bias", (0.1 * rng.standard_normal(shapes[role][0])).astype(np.float32))
        for norm in ("attn_norm", "ffn_norm"):
            w.add_tensor(f"blk.{layer}.{norm}.weight", (1 + 0.1 * rng.standard_normal(HIDDEN)).astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def strata_generate(cmd, prompts):
    r = subprocess.run(cmd + ["--prompt-ids", ";".join(",".join(map(str, p)) for p in prompts),
                              "--max-tokens", str(STEPS), "--ignore-eos", "--json"],
                       capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd[:4])} failed: {r.stderr[-2000:]}")
    return json.loads(r.stdout)


def weight_bytes(cmd):
    r = subprocess.run(cmd + ["--json"], capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd[:4])} failed: {r.stderr[-2000:]}")
    j = json.loads(r.stdout)
    return j["stages"][0]["weight_bytes_per_rank"] if "stages" in j else j["weight_bytes"]


def check_plan(binary, arch, path, failures):
    """`plan` counts the bytes the engine holds (packed or, with --dequantize, floats), and refuses a
    tp whose slices cut quantized blocks (tp 4 cuts the Q6_K ffn_down's 256-element blocks at 128)."""
    sizes = []
    for extra in ([], ["--dequantize"]):
        planned = weight_bytes([binary, "plan", "--model", path] + extra)
        held = weight_bytes([binary, "bench", "offline", "--model", path, "--batch", "1", "--output-len", "2",
                             "--repeat", "1"] + extra)
        sizes.append(f"{'dequantized' if extra else 'packed'} {planned} planned / {held} held")
        if planned != held:
            failures.append(f"{arch}: plan counts {planned} weight bytes {extra}, the engine holds {held}")
    r = subprocess.run([binary, "plan", "--model", path, "--tp", "4"], capture_output=True, text=True, timeout=600)
    if r.returncode == 0 or "whole blocks" not in r.stderr:
        failures.append(f"{arch}: plan --tp 4 should refuse to cut Q6_K blocks: rc {r.returncode}, {r.stderr[-500:]}")
    r2 = subprocess.run([binary, "plan", "--model", path, "--tp", "4", "--dequantize"], capture_output=True, text=True,
                        timeout=600)
    if r2.returncode != 0:
        failures.append(f"{arch}: plan --tp 4 --dequantize should plan: {r2.stderr[-500:]}")
    return f"weight bytes {', '.join(sizes)}; tp 4 refused ({r.stderr.strip()[-90:]}), accepted with --dequantize"


def check(binary, mpiexec, arch, work, failures):
    rng = np.random.default_rng(2026)
    os.makedirs(os.path.join(work, arch))
    path = os.path.join(work, arch, "model.gguf")
    write_model(path, rng, arch)
    prompts = [[int(x) for x in rng.integers(3, VOCAB, size=n)] for n in (1, 3, 5, 8, 13, 21)]
    model = AutoModelForCausalLM.from_pretrained(os.path.dirname(path), gguf_file="model.gguf", dtype=torch.float32).eval()
    exact = strata_generate([binary, "generate", "--model", path, "--threads", "2", "--dequantize"], prompts)
    compared, ties, worst = compare_greedy(arch, model, prompts, exact, STEPS, TIE, TOLERANCE, failures)
    # The default path: Q8_0/Q5_0/Q4_0/Q4_1/Q4_K packed, 8-bit activations.
    got = strata_generate([binary, "generate", "--model", path, "--threads", "2"], prompts)
    p_compared, p_ties, p_worst = compare_greedy(f"{arch} packed", model, prompts, got, STEPS, PACKED_TIE,
                                                 PACKED_TOLERANCE, failures)
    layouts = []
    for np_, args in (("2", ["--tp", "2"]), ("2", ["--pp", "2"])):
        other = strata_generate([mpiexec, "-np", np_, binary, "generate", "--model", path, "--threads", "1"] + args, prompts)
        same = [o["tokens"] for o in other] == [g["tokens"] for g in got]
        layouts.append(f"{' '.join(args)} {'equal' if same else 'DIFFERENT'}")
        if not same:
            failures.append(f"{arch}: mpirun {' '.join(args)}: tokens differ from one rank's")
    plan_checks = check_plan(binary, arch, path, failures)
    print(f"random {arch}: {plan_checks}")
    print(f"random {arch} in 11 block formats, weights dequantized: {compared} greedy tokens equal to transformers, "
          f"{ties} near-ties, worst logprob difference {worst:.2e}")
    print(f"random {arch} in 11 block formats, packed (default): {p_compared} greedy tokens equal to transformers, "
          f"{p_ties} near-ties (best two within {PACKED_TIE}), worst logprob difference {p_worst:.2e}; "
          f"{', '.join(layouts)} to one rank")


def main():
    binary, mpiexec = sys.argv[1], sys.argv[2]
    torch.set_num_threads(2)
    os.environ.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
                      OMPI_MCA_rmaps_base_oversubscribe="1")
    work = tempfile.mkdtemp(prefix="gguf-quant-model-")
    failures = []
    for arch in ("llama", "qwen2"):
        check(binary, mpiexec, arch, work, failures)
    finish(failures)

if __name__ == "__main__":
    main()
