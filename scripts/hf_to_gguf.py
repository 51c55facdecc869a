#!/usr/bin/python3
"""Convert a stock GPT-NeoX checkpoint in the Hugging Face layout to a GGUF file for llama.cpp.

    /usr/bin/python3 scripts/hf_to_gguf.py MODEL_DIR --gguf-py LLAMA_CPP_DIR/gguf-py \
        [--outfile OUT.gguf] [--outtype auto|f32|f16|bf16] [--tokenizer-pre NAME]

MODEL_DIR holds config.json, model.safetensors (or shards with model.safetensors.index.json) and
tokenizer.json, e.g. what `strata make-model DIR --family gpt_neox` writes. Only stock GPT-NeoX
(Pythia: fused `query_key_value`, parallel or sequential residual) is supported; MLKV checkpoints
(`num_key_value_layers` / `num_key_value_heads`, separate query/key/value) are refused, since
llama.cpp has no such architecture.

Dependencies: numpy and the `gguf` package of the llama.cpp checkout whose binaries will load the
file (`--gguf-py LLAMA_CPP_DIR/gguf-py`, or $LLAMA_CPP_DIR/gguf-py); no torch, transformers or
safetensors. Safetensors files are read directly (8-byte little-endian header length, JSON
header, raw little-endian data).

The output matches what llama.cpp's own convert_hf_to_gguf.py (class GPTNeoXModel) writes for the
same checkpoint:
  * tensors are named through gguf.get_tensor_name_map(MODEL_ARCH.GPTNEOX, ...);
  * the fused query_key_value weight and bias are re-ordered from the per-head [q|k|v]
    interleaving of Hugging Face's layout to [all q | all k | all v], exactly as GPTNeoXModel does;
  * 1-D tensors, norms and biases are F32; 2-D weight matrices take --outtype (F32, F16 or BF16,
    rounded from F32 by gguf.quants, as prepare_tensors does; BF16 sources are widened to F32
    first, as there);
  * hyper-parameters: context length, embedding length, block count, feed-forward length, rope
    dimension count (int(rotary_pct * head_dim)), head count, use_parallel_residual, layer norm eps;
  * vocabulary as _set_vocab_gpt2 writes it: tokenizer.ggml.model "gpt2", the token list padded
    with "[PAD{i}]" (type UNUSED) up to the embedding's rows, token types (added special tokens
    CONTROL, other added tokens USER_DEFINED, the rest NORMAL), merges and bos/eos ids through
    gguf.SpecialVocab.
Differences from llama.cpp's converter, all for checkpoints its converter would reject or get wrong:
  * the pre-tokenizer is chosen from tokenizer.json's pre_tokenizer (ByteLevel with GPT-2's regex ->
    "gpt-2") instead of by hashing a test string through transformers; --tokenizer-pre overrides it;
  * general.file_type is written (GPTNeoXModel.set_gguf_parameters forgets it; harmless);
  * rope.freq_base is written when rotary_emb_base / rope_theta is present and is not 10000
    (llama.cpp's converter drops it; llama.cpp's default is 10000);
  * a tied checkpoint (tie_word_embeddings, no embed_out) gets output.weight = a copy of the
    embedding (llama.cpp's GPT-NeoX graph requires output.weight).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import struct
import sys
import types
from pathlib import Path

import numpy as np

logger = logging.getLogger("hf_to_gguf")


class ConversionError(Exception):
    pass


# ---------------------------------------------------------------------------------------------
# gguf-py


def import_gguf(gguf_py: str | None):
    """Imports the checkout's gguf package. gguf/__init__.py imports vocab.py, which imports
    sentencepiece at module level although only SentencePiece vocabularies (never used here) need
    it; where sentencepiece is not installed a placeholder module stands in for it."""
    if gguf_py is None and os.environ.get("LLAMA_CPP_DIR"):
        gguf_py = os.path.join(os.environ["LLAMA_CPP_DIR"], "gguf-py")
    if gguf_py is None:
        raise ConversionError("--gguf-py LLAMA_CPP_DIR/gguf-py is required (or set LLAMA_CPP_DIR)")
    if not os.path.isfile(os.path.join(gguf_py, "gguf", "__init__.py")):
        raise ConversionError(f"--gguf-py {gguf_py}: no gguf/__init__.py there "
                              "(pass the gguf-py directory of a llama.cpp checkout)")
    sys.path.insert(0, os.path.abspath(gguf_py))
    try:
        import sentencepiece  # noqa: F401
    except ImportError:
        stub = types.ModuleType("sentencepiece")

        class SentencePieceProcessor:  # only SentencePiece vocabularies use it
            def __init__(self, *args, **kwargs):
                raise RuntimeError("sentencepiece is not installed")

        stub.SentencePieceProcessor = SentencePieceProcessor  # type: ignore[attr-defined]
        sys.modules["sentencepiece"] = stub
    try:
        import gguf
    except ImportError as e:
        raise ConversionError(f"cannot import gguf from {gguf_py}: {e}") from e
    if not os.path.abspath(gguf.__file__).startswith(os.path.abspath(gguf_py)):
        raise ConversionError(f"imported gguf from {gguf.__file__}, not from {gguf_py}")
    return gguf


# ---------------------------------------------------------------------------------------------
# safetensors

_ST_DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16, "F64": np.float64}


def read_safetensors(path: Path) -> dict[str, tuple[str, list[int], np.ndarray]]:
    """name -> (dtype string, shape, raw array of that dtype; BF16 as uint16), memory-mapped."""
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) != 8:
            raise ConversionError(f"{path}: too short for a safetensors file")
        (n,) = struct.unpack("<Q", head)
        if n > 100 * 1024 * 1024:
            raise ConversionError(f"{path}: implausible safetensors header length {n}")
        header = json.loads(f.read(n))
    base = 8 + n
    size = path.stat().st_size
    mm = np.memmap(path, dtype=np.uint8, mode="r")
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dt = info["dtype"]
        if dt not in _ST_DTYPES:
            raise ConversionError(f"{path}: tensor {name} has unsupported dtype {dt}")
        begin, end = info["data_offsets"]
        shape = [int(d) for d in info["shape"]]
        np_dt = np.dtype(_ST_DTYPES[dt]).newbyteorder("<")
        count = int(np.prod(shape)) if shape else 1
        if end - begin != count * np_dt.itemsize or base + end > size:
            raise ConversionError(f"{path}: tensor {name} has inconsistent offsets")
        arr = mm[base + begin:base + end].view(np_dt).reshape(shape)
        out[name] = (dt, shape, arr)
    return out


def widen(dt: str, arr: np.ndarray) -> np.ndarray:
    # llama.cpp's prepare_tensors converts everything that is not F16/F32 to F32 first.
    if dt == "BF16":
        return (arr.astype(np.uint32) << 16).view(np.float32)
    if dt == "F16":
        return np.asarray(arr)  # kept as F16 (not widened), as prepare_tensors does
    return np.asarray(arr, dtype=np.float32)


def load_checkpoint(model_dir: Path) -> dict[str, tuple[str, list[int], np.ndarray]]:
    index = model_dir / "model.safetensors.index.json"
    if index.is_file():
        weight_map = json.loads(index.read_text(encoding="utf-8")).get("weight_map")
        if not isinstance(weight_map, dict):
            raise ConversionError(f"{index}: no weight_map")
        parts = sorted(set(weight_map.values()))
    elif (model_dir / "model.safetensors").is_file():
        weight_map, parts = None, ["model.safetensors"]
    else:
        raise ConversionError(f"{model_dir}: no model.safetensors or model.safetensors.index.json "
                              "(only safetensors checkpoints are supported)")
    tensors: dict[str, tuple[str, list[int], np.ndarray]] = {}
    for part in parts:
        for name, t in read_safetensors(model_dir / part).items():
            if name in tensors:
                raise ConversionError(f"tensor {name} appears in more than one shard")
            tensors[name] = t
    if weight_map is not None and set(weight_map) != set(tensors):
        missing = sorted(set(weight_map) - set(tensors))
        extra = sorted(set(tensors) - set(weight_map))
        raise ConversionError(f"weight map and shards disagree: missing {missing[:5]}, extra {extra[:5]}")
    return tensors


# ---------------------------------------------------------------------------------------------
# checks


def check_config(hp: dict) -> None:
    archs = hp.get("architectures") or []
    if hp.get("model_type") != "gpt_neox" and "GPTNeoXForCausalLM" not in archs:
        raise ConversionError(f"only GPT-NeoX checkpoints are supported (model_type {hp.get('model_type')!r}, "
                              f"architectures {archs})")
    n_head, n_layer = hp["num_attention_heads"], hp["num_hidden_layers"]
    kv_layers = hp.get("num_key_value_layers")
    kv_heads = hp.get("num_key_value_heads")
    if (kv_layers is not None and kv_layers != n_layer) or (kv_heads is not None and kv_heads != n_head):
        raise ConversionError(
            f"MLKV checkpoint (num_key_value_layers={kv_layers}, num_key_value_heads={kv_heads}): llama.cpp has "
            "no architecture for cross-layer/grouped KV in GPT-NeoX; only stock GPT-NeoX (fused query_key_value) "
            "converts")
    if hp["hidden_size"] % n_head:
        raise ConversionError("hidden_size is not a multiple of num_attention_heads")
    act = hp.get("hidden_act", "gelu")
    if act not in ("gelu", "gelu_new", "gelu_fast", "gelu_pytorch_tanh"):
        raise ConversionError(f"hidden_act {act!r}: llama.cpp's GPT-NeoX graph only computes GELU")
    if hp.get("rope_scaling"):
        raise ConversionError(f"rope_scaling {hp['rope_scaling']!r} is not supported")
    if hp.get("attention_bias") is False:
        raise ConversionError("attention_bias=false: llama.cpp's GPT-NeoX needs the attention biases")


# ---------------------------------------------------------------------------------------------
# vocabulary


def pick_tokenizer_pre(tok: dict) -> str:
    """The llama.cpp pre-tokenizer for tokenizer.json's pre_tokenizer. llama.cpp's converter hashes
    a test string's encoding; without transformers we read the declared pre-tokenizer instead."""
    pre = tok.get("pre_tokenizer") or {}
    if pre.get("type") == "ByteLevel" and pre.get("use_regex", True) and not pre.get("add_prefix_space", False):
        return "gpt-2"  # GPT-2's regex over bytes: llama.cpp's LLAMA_VOCAB_PRE_TYPE_GPT2
    raise ConversionError(
        f"tokenizer.json pre_tokenizer {json.dumps(pre)[:200]} is not GPT-2's byte-level one; pass "
        "--tokenizer-pre NAME (a name llama.cpp's src/llama-vocab.cpp accepts, e.g. gpt-2, olmo, default)")


def looks_special(token: str) -> bool:
    # Model.does_token_look_special in convert_hf_to_gguf.py.
    if token in ("<pad>", "<mask>", "<2mass>", "[@BOS@]"):
        return True
    return ((token.startswith("<|") and token.endswith("|>"))
            or (token.startswith("<\uff5c") and token.endswith("\uff5c>"))
            or (token.startswith("<unused") and token.endswith(">")))


def build_vocab(gguf, model_dir: Path, n_vocab: int, tokenizer_pre: str | None):
    path = model_dir / "tokenizer.json"
    if not path.is_file():
        raise ConversionError(f"{model_dir}: no tokenizer.json (a byte-level BPE tokenizer.json is required)")
    tok = json.loads(path.read_text(encoding="utf-8"))
    model = tok.get("model") or {}
    if model.get("type") != "BPE":
        raise ConversionError(f"tokenizer.json model type {model.get('type')!r}: only byte-level BPE is supported")
    pre = tokenizer_pre or pick_tokenizer_pre(tok)
    vocab: dict[str, int] = dict(model.get("vocab") or {})
    added = {a["content"]: a for a in tok.get("added_tokens") or []}
    for content, a in added.items():
        vocab[content] = a["id"]
    if not vocab:
        raise ConversionError("tokenizer.json has an empty vocabulary")
    if max(vocab.values()) >= n_vocab:
        raise ConversionError(f"tokenizer.json has token id {max(vocab.values())} but the embedding has only "
                              f"{n_vocab} rows")
    reverse = {i: t for t, i in vocab.items()}
    tokens, toktypes = [], []
    for i in range(n_vocab):
        if i not in reverse:
            tokens.append(f"[PAD{i}]")
            toktypes.append(gguf.TokenType.UNUSED)
            continue
        t = reverse[i]
        if t in added:
            toktypes.append(gguf.TokenType.CONTROL if added[t].get("special") or looks_special(t)
                            else gguf.TokenType.USER_DEFINED)
        else:
            toktypes.append(gguf.TokenType.NORMAL)
        tokens.append(t)
    special = gguf.SpecialVocab(model_dir, load_merges=True, n_vocab=n_vocab)
    if not special.merges:
        raise ConversionError("tokenizer.json has no merges")
    return pre, tokens, toktypes, special


# ---------------------------------------------------------------------------------------------
# conversion


def reorder_qkv(data: np.ndarray, n_head: int, n_embd: int) -> np.ndarray:
    """GPTNeoXModel.modify_tensors: Hugging Face's fused query_key_value rows are grouped per head
    as [q_h | k_h | v_h]; llama.cpp wants [q (all heads) | k | v]."""
    head_dim = n_embd // n_head
    if data.ndim == 2:
        w = data.reshape(n_head, 3, head_dim, n_embd)
        return np.concatenate([w[:, 0].reshape(-1, n_embd), w[:, 1].reshape(-1, n_embd),
                               w[:, 2].reshape(-1, n_embd)], axis=0)
    b = data.reshape(n_head, 3, head_dim)
    return np.concatenate([b[:, 0].reshape(n_embd), b[:, 1].reshape(n_embd), b[:, 2].reshape(n_embd)], axis=0)


def convert(args) -> Path:
    gguf = import_gguf(args.gguf_py)
    model_dir = Path(args.model_dir)
    cfg_path = model_dir / "config.json"
    if not cfg_path.is_file():
        raise ConversionError(f"{model_dir}: no config.json")
    hp = json.loads(cfg_path.read_text(encoding="utf-8"))
    check_config(hp)
    n_layer, n_head, n_embd = hp["num_hidden_layers"], hp["num_attention_heads"], hp["hidden_size"]
    n_ff = hp["intermediate_size"]

    tensors = load_checkpoint(model_dir)
    if any(re.search(r"\.attention\.(query|key|value)\.weight$", n) for n in tensors):
        raise ConversionError("checkpoint has separate query/key/value tensors (MLKV layout); only stock GPT-NeoX "
                              "with fused query_key_value converts")
    for t in list(tensors):
        if t.endswith((".attention.masked_bias", ".attention.bias", ".rotary_emb.inv_freq")):
            del tensors[t]  # prepare_tensors skips these buffers
    if "gpt_neox.embed_in.weight" not in tensors:
        raise ConversionError("no gpt_neox.embed_in.weight in the checkpoint")
    if "embed_out.weight" not in tensors:
        if not hp.get("tie_word_embeddings", False):
            raise ConversionError("no embed_out.weight and tie_word_embeddings is not set")
        tensors["embed_out.weight"] = tensors["gpt_neox.embed_in.weight"]
    emb_dt = tensors["gpt_neox.embed_in.weight"][0]
    n_vocab = tensors["gpt_neox.embed_in.weight"][1][0]
    if hp.get("vocab_size", n_vocab) != n_vocab:
        logger.warning("config vocab_size %s differs from the embedding's %d rows; using the rows",
                       hp.get("vocab_size"), n_vocab)

    outtype = args.outtype
    if outtype == "auto":
        # The checkpoint's own dtype (torch_dtype; else the embedding's storage type).
        outtype = {"float32": "f32", "float16": "f16", "bfloat16": "bf16"}.get(
            str(hp.get("torch_dtype", "")), {"F32": "f32", "F16": "f16", "BF16": "bf16"}.get(emb_dt, "f32"))
    qtype = {"f32": gguf.GGMLQuantizationType.F32, "f16": gguf.GGMLQuantizationType.F16,
             "bf16": gguf.GGMLQuantizationType.BF16}[outtype]
    ftype = {"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16,
             "bf16": gguf.LlamaFileType.MOSTLY_BF16}[outtype]

    out = Path(args.outfile) if args.outfile else model_dir.parent / f"{model_dir.name}-{outtype}.gguf"
    arch = gguf.MODEL_ARCH.GPTNEOX
    tmap = gguf.get_tensor_name_map(arch, n_layer)
    writer = gguf.GGUFWriter(path=None, arch=gguf.MODEL_ARCH_NAMES[arch])

    expected = {"gpt_neox.embed_in.weight", "embed_out.weight", "gpt_neox.final_layer_norm.weight",
                "gpt_neox.final_layer_norm.bias"}
    for i in range(n_layer):
        p = f"gpt_neox.layers.{i}."
        for s in ("input_layernorm", "post_attention_layernorm", "attention.query_key_value", "attention.dense",
                  "mlp.dense_h_to_4h", "mlp.dense_4h_to_h"):
            expected |= {p + s + ".weight", p + s + ".bias"}
    missing, extra = sorted(expected - set(tensors)), sorted(set(tensors) - expected)
    if missing or extra:
        raise ConversionError(f"not a stock GPT-NeoX checkpoint: missing {missing[:6]}, unexpected {extra[:6]}")

    for name in sorted(tensors):
        dt, shape, raw = tensors[name]
        new_name = tmap.get_name(key=name, try_suffixes=(".weight", ".bias"))
        if new_name is None:
            raise ConversionError(f"cannot map tensor {name!r}")
        data = widen(dt, raw)
        if re.match(r"gpt_neox\.layers\.\d+\.attention\.query_key_value\.(weight|bias)$", name):
            data = reorder_qkv(data, n_head, n_embd)
        n_dims = data.ndim
        # prepare_tensors: 1-D tensors, norms and everything that is not a .weight stay F32.
        if n_dims <= 1 or new_name.endswith("_norm.weight") or not new_name.endswith(".weight"):
            data_qtype = gguf.GGMLQuantizationType.F32
        else:
            data_qtype = qtype
        data = gguf.quants.quantize(np.ascontiguousarray(data), data_qtype)
        shape_out = (gguf.quant_shape_from_byte_shape(data.shape, data_qtype)
                     if data.dtype == np.uint8 else data.shape)
        logger.info("%-32s %-4s -> %-4s %s", new_name, dt, data_qtype.name, list(reversed(shape_out)))
        writer.add_tensor(new_name, data, raw_dtype=data_qtype)

    # Model.prepare_metadata: general.*, then set_gguf_parameters, set_vocab, quantization version.
    writer.add_type(gguf.GGUFType.MODEL)
    writer.add_name(args.name or model_dir.name)
    writer.add_context_length(hp["max_position_embeddings"])
    writer.add_embedding_length(n_embd)
    writer.add_block_count(n_layer)
    writer.add_feed_forward_length(n_ff)
    writer.add_rope_dimension_count(int(hp["rotary_pct"] * (n_embd // n_head)))
    writer.add_head_count(n_head)
    writer.add_parallel_residual(hp.get("use_parallel_residual", True))
    writer.add_layer_norm_eps(hp["layer_norm_eps"])
    base = hp.get("rotary_emb_base", hp.get("rope_theta"))
    if base is not None and float(base) != 10000.0:
        writer.add_rope_freq_base(float(base))
    writer.add_file_type(ftype)

    pre, tokens, toktypes, special = build_vocab(gguf, model_dir, n_vocab, args.tokenizer_pre)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(toktypes)
    special.add_to_gguf(writer, quiet=not args.verbose)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    writer.write_header_to_file(path=tmp)
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file(progress=False)
    writer.close()
    os.replace(tmp, out)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model_dir", help="Hugging Face GPT-NeoX model directory")
    ap.add_argument("--gguf-py", help="LLAMA_CPP_DIR/gguf-py (default: $LLAMA_CPP_DIR/gguf-py)")
    ap.add_argument("--outfile", help="output .gguf (default: MODEL_DIR-<outtype>.gguf next to MODEL_DIR)")
    ap.add_argument("--outtype", choices=("auto", "f32", "f16", "bf16"), default="auto",
                    help="type of the 2-D weight matrices (default auto: the checkpoint's torch_dtype); "
                         "norms and biases are always F32")
    ap.add_argument("--tokenizer-pre", help="tokenizer.ggml.pre to write (default: from tokenizer.json)")
    ap.add_argument("--name", help="general.name (default: the directory name)")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="hf_to_gguf: %(message)s")
    try:
        out = convert(args)
    except (ConversionError, KeyError, ValueError, OSError) as e:
        if isinstance(e, KeyError):
            e = ConversionError(f"config.json lacks {e}")
        print(f"hf_to_gguf: error: {e}", file=sys.stderr)
        return 1
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
