"""A SentencePiece BPE vocabulary (`tokenizer.ggml.model` "llama", as Llama 2, TinyLlama and Mistral
GGUFs carry theirs: pieces, scores, token types, byte pieces) read by Strata from GGUF metadata
alone, against SentencePiece itself: spm_train (Debian's sentencepiece) trains a Llama-style model
(identity normalization, spaces kept, byte fallback, digits split) on Python's standard library,
its pieces and scores go into a GGUF with gguf-py, and Strata's ids for 600 texts (real lines and
seeded random ones: Unicode, emoji, digits, whitespace runs) must equal spm_encode's on the
original model; decoding them must give the text back.

Usage: gguf_spm_test.py TOKENIZE_CASES_BIN
"""
import glob
import json
import os
import random
import subprocess
import sys
import tempfile

from gguf import GGUFWriter

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))
from oracle_support import finish  # noqa: E402

PIECES = ["the", "quick", "brown", " fox", "Hello", "world", "12345", "3.14", "日本語", "한국어", "café", "naïve",
          "😀", "👍🏽", "  ", "\t", "!", "?", "def", "return", "self", "(x)", "[1, 2]", "{'a': 1}", "Ω≈ç", "ß"]


def main():
    binary = sys.argv[1]
    rng = random.Random(2026)
    work = tempfile.mkdtemp(prefix="gguf-spm-")
    lines = []
    for path in sorted(glob.glob("/usr/lib/python3*/[a-h]*.py")):
        with open(path, encoding="utf-8", errors="replace") as f:
            lines += [l.rstrip("\n") for l in f]
    corpus = os.path.join(work, "corpus.txt")
    with open(corpus, "w") as f:
        f.write("\n".join(lines[:40000]))
    prefix = os.path.join(work, "m")
    subprocess.run(["spm_train", f"--input={corpus}", f"--model_prefix={prefix}", "--vocab_size=3000", "--model_type=bpe",
                    "--byte_fallback=true", "--character_coverage=1.0", "--normalization_rule_name=identity",
                    "--remove_extra_whitespaces=false", "--split_digits=true", "--num_threads=2", "--minloglevel=2"],
                   check=True, capture_output=True)
    vocab = subprocess.run(["spm_export_vocab", f"--model={prefix}.model", "--output_format=vocab"], check=True,
                           capture_output=True, text=True).stdout
    tokens, scores = [], []
    for line in vocab.split("\n"):
        if line:
            piece, score = line.rsplit("\t", 1)
            tokens.append(piece)
            scores.append(float(score))
    types = [2 if t == "<unk>" else 3 if t in ("<s>", "</s>") else 6 if t.startswith("<0x") and len(t) == 6 else 1
             for t in tokens]
    def write(gguf_path, scores):
        w = GGUFWriter(gguf_path, "llama")
        w.add_string("tokenizer.ggml.model", "llama")
        w.add_array("tokenizer.ggml.tokens", tokens)
        w.add_array("tokenizer.ggml.scores", scores)
        w.add_array("tokenizer.ggml.token_type", types)
        w.add_uint32("tokenizer.ggml.unknown_token_id", tokens.index("<unk>"))
        w.add_uint32("tokenizer.ggml.bos_token_id", tokens.index("<s>"))
        w.add_uint32("tokenizer.ggml.eos_token_id", tokens.index("</s>"))
        w.add_bool("tokenizer.ggml.add_space_prefix", True)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()

    gguf_path = os.path.join(work, "spm.gguf")
    write(gguf_path, scores)
    # The negative control: the same pieces with their scores reversed merge in another order.
    broken_path = os.path.join(work, "reversed.gguf")
    write(broken_path, [-x for x in scores])
    texts = [l for l in rng.sample(lines, 300)]
    for _ in range(300):
        texts.append("".join(rng.choice(PIECES) + rng.choice(["", " ", "  "]) for _ in range(rng.randint(1, 12))))
    texts = [t.replace("\r", " ") for t in texts]
    enc = subprocess.run(["spm_encode", f"--model={prefix}.model", "--output_format=id"], input="\n".join(texts) + "\n",
                         check=True, capture_output=True, text=True).stdout.split("\n")
    want = [[int(x) for x in line.split()] for line in enc[:len(texts)]]
    cases = os.path.join(work, "cases.json")
    with open(cases, "w") as f:
        json.dump([{"dir": gguf_path, "texts": texts, "decode": want},
                   {"dir": broken_path, "texts": texts, "decode": want}], f)
    out = os.path.join(work, "out.json")
    subprocess.run([binary, cases, out], check=True)
    answers = json.load(open(out))
    got, control = answers[0], answers[1]
    if "error" in got:
        sys.exit(f"Strata refused the GGUF: {got['error']}")
    failures = []
    for text, w_ids, g_ids, decoded in zip(texts, want, got["ids"], got["decoded_skip_special"]):
        if w_ids != g_ids:
            failures.append(f"text {text!r}\n    spm_encode {w_ids}\n    strata     {g_ids}")
        if decoded != text:
            failures.append(f"text {text!r} decodes as {decoded!r}")
    if len(got["ids"]) != len(texts):
        failures.append(f"{len(got['ids'])} answers for {len(texts)} texts")
    control_differs = sum(a != b for a, b in zip(want, control.get("ids", [])))
    if control_differs == 0:
        failures.append("the negative control (scores reversed) matched spm_encode: the comparison cannot fail")
    print("e.g.", repr(texts[0][:60]), want[0][:12], "|", repr(texts[-1][:60]), want[-1][:12])
    print(f"{len(texts)} texts: Strata's ids from the GGUF's SentencePiece vocabulary ({len(tokens)} pieces) equal "
          f"spm_encode's on {len(texts) - sum(1 for f in failures if 'spm_encode' in f)}; "
          f"{sum(1 for f in failures if 'decodes' in f)} decode differently")
    print(f"negative control (scores reversed): {control_differs} of {len(texts)} texts differ, as they must")
    finish(failures, most=15)


if __name__ == "__main__":
    main()
