#!/usr/bin/env python3
"""A seeded random Llama-architecture model written as an F16 (or F32) GGUF file, for speed
comparisons on a real file format: quantize it with your llama.cpp's llama-quantize (Q8_0, Q4_K_M,
...) and give the result to scripts/bench_vs_llamacpp.sh --gguf. The tokenizer metadata (a gpt2
byte-level BPE vocabulary with its merges) is copied from another GGUF file, e.g. SmolLM2's from
build/smollm2/, so both engines load a real vocabulary; the vocabulary size is that file's.

Usage: random_llama_gguf.py OUT.gguf --tokenizer-from FILE.gguf [--layers 12 --hidden 1024
       --heads 16 --kv-heads 4 --ffn 2816 --context 2048 --seed 1 --outtype f16]
Needs numpy and the gguf package (the build's venv has both: build/venv/bin/python).
"""
import argparse

import numpy as np
from gguf import GGUFReader, GGUFWriter, GGUFValueType


def copy_tokenizer(reader, writer):
    for field in reader.fields.values():
        if not field.name.startswith("tokenizer."):
            continue
        kind = field.types[0]
        if kind == GGUFValueType.ARRAY:
            item = field.types[1]
            if item == GGUFValueType.STRING:
                values = [bytes(field.parts[i]).decode("utf-8", "surrogateescape") for i in field.data]
            else:
                values = [field.parts[i].tolist()[0] for i in field.data]
            writer.add_array(field.name, values)
        elif kind == GGUFValueType.STRING:
            writer.add_string(field.name, bytes(field.parts[field.data[0]]).decode("utf-8"))
        elif kind == GGUFValueType.BOOL:
            writer.add_bool(field.name, bool(field.parts[field.data[0]][0]))
        else:
            writer.add_uint32(field.name, int(field.parts[field.data[0]][0]))
    return len(reader.fields["tokenizer.ggml.tokens"].data)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--tokenizer-from", required=True)
    p.add_argument("--layers", type=int, default=12)
    p.add_argument("--hidden", type=int, default=1024)
    p.add_argument("--heads", type=int, default=16)
    p.add_argument("--kv-heads", type=int, default=4)
    p.add_argument("--ffn", type=int, default=2816)
    p.add_argument("--context", type=int, default=2048)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--outtype", choices=["f16", "f32"], default="f16")
    a = p.parse_args()
    rng = np.random.default_rng(a.seed)
    dtype = np.float16 if a.outtype == "f16" else np.float32
    w = GGUFWriter(a.out, "llama")
    head_dim = a.hidden // a.heads
    for key, value in [("block_count", a.layers), ("context_length", a.context), ("embedding_length", a.hidden),
                       ("feed_forward_length", a.ffn), ("attention.head_count", a.heads),
                       ("attention.head_count_kv", a.kv_heads), ("rope.dimension_count", head_dim)]:
        w.add_uint32(f"llama.{key}", value)
    w.add_float32("llama.attention.layer_norm_rms_epsilon", 1e-5)
    w.add_float32("llama.rope.freq_base", 10000.0)
    w.add_uint32("general.file_type", 1 if a.outtype == "f16" else 0)
    vocab = copy_tokenizer(GGUFReader(a.tokenizer_from), w)

    def matrix(rows, cols, scale):
        return (rng.standard_normal((rows, cols), dtype=np.float32) * scale).astype(dtype)

    w.add_tensor("token_embd.weight", matrix(vocab, a.hidden, 1.0))
    w.add_tensor("output.weight", matrix(vocab, a.hidden, 1 / np.sqrt(a.hidden)))
    w.add_tensor("output_norm.weight", (1 + 0.1 * rng.standard_normal(a.hidden)).astype(np.float32))
    kv = a.kv_heads * head_dim
    for layer in range(a.layers):
        for name, rows, cols in [("attn_q", a.hidden, a.hidden), ("attn_k", kv, a.hidden), ("attn_v", kv, a.hidden),
                                 ("attn_output", a.hidden, a.hidden), ("ffn_gate", a.ffn, a.hidden),
                                 ("ffn_up", a.ffn, a.hidden), ("ffn_down", a.hidden, a.ffn)]:
            w.add_tensor(f"blk.{layer}.{name}.weight", matrix(rows, cols, 1 / np.sqrt(cols)))
        for norm in ("attn_norm", "ffn_norm"):
            w.add_tensor(f"blk.{layer}.{norm}.weight", (1 + 0.1 * rng.standard_normal(a.hidden)).astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"wrote {a.out}: llama, {a.layers} layers, hidden {a.hidden}, {a.heads} heads ({a.kv_heads} KV), "
          f"MLP {a.ffn}, vocabulary {vocab}, {a.outtype}")


if __name__ == "__main__":
    main()
