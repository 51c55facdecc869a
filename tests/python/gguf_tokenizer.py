"""Writes the tokenizer of a GGUF file with a gpt2-style vocabulary (tokenizer.ggml.model
"gpt2") as Hugging Face `tokenizers` builds it: tokenizer.json (byte-level BPE; the "smollm"
pre-tokenizer splits digits one by one first, as SmolLM2 publishes its tokenizer.json) and a
tokenizer_config.json with the special tokens, add_bos_token and the chat template.

Usage: gguf_tokenizer.py FILE.gguf OUT_DIR
"""
import json
import os
import sys

from gguf import GGUFReader
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors

CONTROL, USER_DEFINED = 3, 4  # llama.cpp's token types


def field(reader, key, default=None):
    f = reader.fields.get(key)
    return default if f is None else f.contents()


def main(path, out_dir):
    r = GGUFReader(path)
    if field(r, "tokenizer.ggml.model") != "gpt2":
        sys.exit(f"{path}: tokenizer.ggml.model is {field(r, 'tokenizer.ggml.model')!r}, not 'gpt2'")
    pre = field(r, "tokenizer.ggml.pre", "default")
    tokens = field(r, "tokenizer.ggml.tokens")
    types = field(r, "tokenizer.ggml.token_type")
    merges = [tuple(m.split(" ", 1)) for m in field(r, "tokenizer.ggml.merges")]
    tok = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges))
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    if pre == "smollm":
        tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
    elif pre in ("gpt-2", "default"):
        tok.pre_tokenizer = byte_level
    else:
        sys.exit(f"{path}: tokenizer.ggml.pre {pre!r} is not one this helper writes")
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    tok.add_tokens([AddedToken(t, special=types[i] == CONTROL, normalized=False)
                    for i, t in enumerate(tokens) if types[i] in (CONTROL, USER_DEFINED)])
    os.makedirs(out_dir, exist_ok=True)
    tok.save(os.path.join(out_dir, "tokenizer.json"))

    def token(key):
        i = field(r, key)
        return None if i is None else tokens[i]

    config = {"bos_token": token("tokenizer.ggml.bos_token_id"), "eos_token": token("tokenizer.ggml.eos_token_id"),
              "unk_token": token("tokenizer.ggml.unknown_token_id"), "pad_token": token("tokenizer.ggml.padding_token_id"),
              "add_bos_token": bool(field(r, "tokenizer.ggml.add_bos_token", False)),
              "add_eos_token": bool(field(r, "tokenizer.ggml.add_eos_token", False)),
              "chat_template": field(r, "tokenizer.chat_template")}
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w") as f:
        json.dump({k: v for k, v in config.items() if v is not None}, f, ensure_ascii=False, indent=1)
    print(f"{out_dir}: {len(tokens)} tokens, {len(merges)} merges, pre-tokenizer {pre}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
