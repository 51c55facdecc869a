"""GGUF files as llama.cpp's convert_hf_to_gguf.py writes them for two cases transformers cannot
load from GGUF itself, checked against transformers (PyTorch, CPU) running the Hugging Face model
they were converted from:

- gptneox: a random Pythia-shaped model (partial rotary, parallel residual, biases, untied
  output); the fused query_key_value rows regrouped from [H, 3, hs] to [3, H, hs] as the converter
  does, one layer's QKV in Q8_0 and one in F16 (transformers gets the dequantized values), and
  under mpirun tp 2 (each slice's heads picked out of the regrouped rows) against one rank;
- llama with Llama 3.1's rope scaling: rope_freqs.weight holds the per-frequency factors the
  converter computes from rope_scaling (llama3: factor 8, original context 64, so low, blended
  and high frequencies all occur), Q/K rows permuted. Negative control: the same file without
  rope_freqs.weight must not match.

Greedy tokens equal except where transformers' best two are within 1e-4, logprobs within 1e-3,
6 prompts x 16 steps.

Usage: gguf_converted_test.py STRATA_BIN MPIEXEC
"""
import json
import math
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
from gguf import GGMLQuantizationType as Q, GGUFWriter
from gguf.quants import dequantize, quantize
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM, LlamaConfig, LlamaForCausalLM

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))
from oracle_support import compare_greedy, finish  # noqa: E402

HIDDEN, HEADS, FF, VOCAB, LAYERS, CONTEXT = 256, 4, 512, 512, 2, 512
HEAD_DIM = HIDDEN // HEADS
STEPS, TIE, TOLERANCE = 16, 1e-4, 1e-3
ROPE = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
        "original_max_position_embeddings": 64}


def randomize(model, seed):
    """Weights that keep activations O(1), so that logits are well separated."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            r = torch.randn(p.shape, generator=g, dtype=torch.float32)
            if "norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.1 * r)
            elif name.endswith("bias"):
                p.copy_(0.1 * r)
            elif "embed_in" in name or "embed_tokens" in name:
                p.copy_(r)
            else:
                p.copy_(r / math.sqrt(p.shape[-1]))


def stored(values, qtype):
    """(data, raw_dtype) for GGUFWriter and the values a reader gets back."""
    if qtype == Q.F32:
        return values.astype(np.float32), None, values.astype(np.float32)
    if qtype == Q.F16:
        v = values.astype(np.float16)
        return v, None, v.astype(np.float32)
    raw = quantize(values.astype(np.float32), qtype)
    return raw, qtype, dequantize(raw, qtype).reshape(values.shape)


def metadata(w, arch, extra):
    for key, value in [("block_count", LAYERS), ("context_length", CONTEXT), ("embedding_length", HIDDEN),
                       ("feed_forward_length", FF), ("attention.head_count", HEADS)] + extra:
        if isinstance(value, bool):
            w.add_bool(f"{arch}.{key}", value)
        elif isinstance(value, float):
            w.add_float32(f"{arch}.{key}", value)
        else:
            w.add_uint32(f"{arch}.{key}", value)
    w.add_string("tokenizer.ggml.model", "gpt2")
    w.add_string("tokenizer.ggml.pre", "gpt-2")
    w.add_array("tokenizer.ggml.tokens", [f"<t{i}>" for i in range(VOCAB)])
    w.add_array("tokenizer.ggml.token_type", [1] * VOCAB)
    w.add_array("tokenizer.ggml.merges", [])
    w.add_uint32("tokenizer.ggml.bos_token_id", 1)
    w.add_uint32("tokenizer.ggml.eos_token_id", 2)


def write(w):
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def neox_to_gguf_rows(t):
    """convert_hf_to_gguf's GPTNeoXModel: rows [H, 3, hs] regrouped as [3, H, hs]."""
    parts = t.reshape(HEADS, 3, HEAD_DIM, *t.shape[1:])
    return np.concatenate([parts[:, i].reshape(HEADS * HEAD_DIM, *t.shape[1:]) for i in range(3)])


def neox_from_gguf_rows(t):
    parts = t.reshape(3, HEADS, HEAD_DIM, *t.shape[1:])
    return np.stack([parts[i] for i in range(3)], axis=1).reshape(3 * HEADS * HEAD_DIM, *t.shape[1:])


def gptneox(work):
    cfg = GPTNeoXConfig(vocab_size=VOCAB, hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                        intermediate_size=FF, rotary_pct=0.25, max_position_embeddings=CONTEXT,
                        use_parallel_residual=True, hidden_act="gelu", tie_word_embeddings=False, layer_norm_eps=1e-5)
    model = GPTNeoXForCausalLM(cfg).float().eval()
    randomize(model, 1)
    names = {"gpt_neox.embed_in.weight": "token_embd.weight", "lm_head.weight": "output.weight",
             "gpt_neox.final_layer_norm.weight": "output_norm.weight",
             "gpt_neox.final_layer_norm.bias": "output_norm.bias"}
    per_layer = {"input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm",
                 "attention.query_key_value": "attn_qkv", "attention.dense": "attn_output",
                 "mlp.dense_h_to_4h": "ffn_up", "mlp.dense_4h_to_h": "ffn_down"}
    qkv_format = {0: Q.Q8_0, 1: Q.F16}
    path = os.path.join(work, "gptneox.gguf")
    w = GGUFWriter(path, "gptneox")
    metadata(w, "gptneox", [("rope.dimension_count", int(0.25 * HEAD_DIM)), ("use_parallel_residual", True),
                            ("attention.layer_norm_epsilon", 1e-5)])
    state = model.state_dict()
    loaded = {}
    for hf, value in state.items():
        if hf.endswith(("attention.bias", "masked_bias", "inv_freq")):
            continue
        v = value.numpy()
        if hf in names:
            gg, qtype = names[hf], Q.F32
        else:
            layer, role, kind = hf.split(".")[2], ".".join(hf.split(".")[3:-1]), hf.split(".")[-1]
            gg, qtype = f"blk.{layer}.{per_layer[role]}.{kind}", Q.F32
            if role == "attention.query_key_value":
                v = neox_to_gguf_rows(v)
                if kind == "weight":
                    qtype = qkv_format[int(layer)]
        data, raw, back = stored(v, qtype)
        w.add_tensor(gg, data, raw_dtype=raw)
        loaded[hf] = neox_from_gguf_rows(back) if "query_key_value" in hf else back
    write(w)
    model.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in loaded.items()}, strict=False)
    return path, model


def llama_permute(t, heads):
    """convert_hf_to_gguf's LlamaModel.permute: rotate-half pairs to llama.cpp's adjacent pairs."""
    return t.reshape(heads, 2, t.shape[0] // heads // 2, *t.shape[1:]).swapaxes(1, 2).reshape(t.shape)


def llama3_factors():
    """convert_hf_to_gguf's LlamaModel.generate_extra_tensors for rope_type llama3."""
    base, dim = 10000.0, HEAD_DIM
    freqs = 1.0 / (base ** (np.arange(0, dim, 2, dtype=np.float32) / dim))
    old, low, high, factor = (ROPE["original_max_position_embeddings"], ROPE["low_freq_factor"],
                              ROPE["high_freq_factor"], ROPE["factor"])
    out = []
    for f in freqs:
        wavelen = 2 * math.pi / f
        if wavelen < old / high:
            out.append(1.0)
        elif wavelen > old / low:
            out.append(factor)
        else:
            smooth = (old / wavelen - low) / (high - low)
            out.append(1 / ((1 - smooth) / factor + smooth))
    return np.array(out, dtype=np.float32)


def llama31(work):
    kv_heads = 2
    cfg = LlamaConfig(vocab_size=VOCAB, hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                      num_key_value_heads=kv_heads, intermediate_size=FF, max_position_embeddings=CONTEXT,
                      rms_norm_eps=1e-5, rope_theta=10000.0, rope_scaling=dict(ROPE), tie_word_embeddings=False)
    model = LlamaForCausalLM(cfg).float().eval()
    randomize(model, 2)
    names = {"model.embed_tokens.weight": "token_embd.weight", "lm_head.weight": "output.weight",
             "model.norm.weight": "output_norm.weight"}
    per_layer = {"input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm", "self_attn.q_proj": "attn_q",
                 "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
                 "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}
    paths = []
    for with_factors in (True, False):
        path = os.path.join(work, f"llama31{'' if with_factors else '-no-rope-freqs'}.gguf")
        w = GGUFWriter(path, "llama")
        metadata(w, "llama", [("attention.head_count_kv", kv_heads), ("rope.dimension_count", HEAD_DIM),
                              ("attention.layer_norm_rms_epsilon", 1e-5), ("rope.freq_base", 10000.0)])
        if with_factors:
            w.add_tensor("rope_freqs.weight", llama3_factors())
        for hf, value in model.state_dict().items():
            if hf.endswith("inv_freq"):
                continue
            v = value.numpy()
            if hf in names:
                gg = names[hf]
            else:
                layer, role, kind = hf.split(".")[2], ".".join(hf.split(".")[3:-1]), hf.split(".")[-1]
                gg = f"blk.{layer}.{per_layer[role]}.{kind}"
                if role == "self_attn.q_proj":
                    v = llama_permute(v, HEADS)
                elif role == "self_attn.k_proj":
                    v = llama_permute(v, kv_heads)
            w.add_tensor(gg, v.astype(np.float32))
        write(w)
        paths.append(path)
    return paths, model


def generate(cmd, prompts):
    r = subprocess.run(cmd + ["--prompt-ids", ";".join(",".join(map(str, p)) for p in prompts),
                              "--max-tokens", str(STEPS), "--ignore-eos", "--json"],
                       capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd[:4])} failed: {r.stderr[-2000:]}")
    return json.loads(r.stdout)


def main():
    binary, mpiexec = sys.argv[1], sys.argv[2]
    torch.set_num_threads(2)
    os.environ.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
                      OMPI_MCA_rmaps_base_oversubscribe="1")
    work = tempfile.mkdtemp(prefix="gguf-converted-")
    rng = np.random.default_rng(2026)
    prompts = [[int(x) for x in rng.integers(3, VOCAB, size=n)] for n in (1, 3, 5, 8, 13, 40)]
    failures = []

    path, model = gptneox(work)
    # Weights dequantized exactly (--dequantize): the packed path's 8-bit activations are checked elsewhere.
    got = generate([binary, "generate", "--model", path, "--threads", "2", "--dequantize"], prompts)
    compared, ties, worst = compare_greedy("gptneox", model, prompts, got, STEPS, TIE, TOLERANCE, failures)
    tp2 = generate([mpiexec, "-np", "2", binary, "generate", "--model", path, "--threads", "1", "--tp", "2", "--dequantize"], prompts)
    same = [o["tokens"] for o in tp2] == [g["tokens"] for g in got]
    if not same:
        failures.append("gptneox: mpirun --tp 2 tokens differ from one rank's")
    print(f"gptneox GGUF (QKV regrouped; Q8_0, F16 and F32): {compared} greedy tokens equal to transformers on the "
          f"Hugging Face model, {ties} near-ties, worst logprob difference {worst:.2e}; tp 2 {'equal' if same else 'DIFFERENT'}")

    (with_factors, without), model = llama31(work)
    got = generate([binary, "generate", "--model", with_factors, "--threads", "2"], prompts)
    compared, ties, worst = compare_greedy("llama31", model, prompts, got, STEPS, TIE, TOLERANCE, failures)
    print(f"llama with rope_freqs.weight (llama3 scaling): {compared} greedy tokens equal to transformers, {ties} "
          f"near-ties, worst logprob difference {worst:.2e}")
    control = []
    plain = generate([binary, "generate", "--model", without, "--threads", "2"], prompts)
    compare_greedy("llama31 without rope_freqs", model, prompts, plain, STEPS, TIE, TOLERANCE, control)
    print(f"negative control, the file without rope_freqs.weight: {len(control)} differences from transformers")
    if not control:
        failures.append("the file without rope_freqs.weight matched transformers: the factors were never tested")
    finish(failures)


if __name__ == "__main__":
    main()
