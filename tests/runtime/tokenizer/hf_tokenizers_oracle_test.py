"""Strata's tokenizer.json implementation against Hugging Face `tokenizers`, the library that
defines the format: seeded random pipelines (normalizers, pre-tokenizers, BPE and Unigram models
trained here by `tokenizers` itself, decoders, added tokens with every flag, post-processors) and
seeded random texts (Unicode, whitespace runs, digits, emoji, control bytes, added tokens inside
text), then SmolLM2-135M-Instruct's real vocabulary and merges on >= 500 texts. Every case
compares the ids (without and with the post-processor's special tokens) and the decoded text
(keeping and skipping special tokens). A negative control (SmolLM2's tokenizer without its digit
splitting, given to Strata only) must be caught, so the comparison can fail.

Strata's tokenizer built from the GGUF file's metadata alone (tokenizer.ggml.*, pre "smollm"), and
the same vocabulary written in GPT-2's vocab.json + merges.txt layout, are compared on the same
SmolLM2 texts. (The GGUF case's expectation is tokenizers running the tokenizer.json that
tests/python/gguf_tokenizer.py writes from the same metadata with the same digit-first rule, as
SmolLM2 publishes its tokenizer; it checks Strata's reading of the metadata, not that rule.)

Usage: hf_tokenizers_oracle_test.py TOKENIZE_CASES_BIN SMOLLM2_TOKENIZER_DIR SMOLLM2_GGUF [PIPELINES] [SEED]
"""
import glob
import json
import os
import random
import subprocess
import sys
import tempfile

from tokenizers import (AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors,
                        trainers)

WORDS = ("the quick brown fox jumps over lazy dog Hello world I'm they'll we've you'd John's tokenizer "
         "merges byte level BPE unigram Strata model layer cache running ran runner unbelievable "
         "internationalization ÜBER Straße café naïve résumé façade coöperate").split()
UNICODE = ["Ελληνικά", "русский", "日本語の文章", "한국어", "中文字符", "Ω≈ç√∫", "ﬁ ligature", "Ｆｕｌｌｗｉｄｔｈ", "e\u0301",
           "a\u0308o\u0308", "ǅ", "İstanbul", "ß", "½ ² ⅷ", "\u200b", "\ufeff", "עברית", "العربية", "हिन्दी", "ไทย"]
EMOJI = ["😀", "🎉", "👍🏽", "👨‍👩‍👧‍👦", "🇫🇷", "❤️", "🤖"]
SPACES = [" ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n ", "\u00a0", "\u3000", "\t \t", "        "]
PUNCT = ["'s", "'t", "'re", "'ll", "'d", ",", ".", "!", "?", "...", "--", "(", ")", "{", "}", "[x]", "\"q\"", "#",
         "$5", "@", "a_b", "x=1;", "://", "<tag>", "&amp;"]
CONTROL = ["\x00", "\x01", "\x07", "\x1b", "\x7f", "\x0b", "\x0c"]
LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")


def random_text(rng, specials):
    parts = []
    for _ in range(rng.randint(0, 14)):
        kind = rng.random()
        if kind < 0.35:
            w = rng.choice(WORDS)
            parts.append(w.upper() if rng.random() < 0.1 else w)
        elif kind < 0.45:
            parts.append(str(rng.randint(0, 10 ** rng.randint(1, 9))))
        elif kind < 0.55:
            parts.append(rng.choice(UNICODE))
        elif kind < 0.62:
            parts.append(rng.choice(EMOJI))
        elif kind < 0.75:
            parts.append(rng.choice(SPACES))
        elif kind < 0.87:
            parts.append(rng.choice(PUNCT))
        elif kind < 0.91:
            parts.append(rng.choice(CONTROL))
        elif specials:
            parts.append(rng.choice(specials))
        parts.append(rng.choice(["", " ", " ", ""]))
    return "".join(parts)


def training_corpus(rng):
    return [random_text(rng, []) for _ in range(300)] + [" ".join(WORDS), " ".join(UNICODE), " ".join(EMOJI)]


def random_normalizer(rng, kind):
    steps = []
    if rng.random() < 0.4:
        steps.append(rng.choice([normalizers.NFC(), normalizers.NFKC(), normalizers.NFD(), normalizers.NFKD()]))
    if rng.random() < 0.2:
        steps += [normalizers.NFD(), normalizers.StripAccents()]
    if rng.random() < 0.25:
        steps.append(normalizers.Lowercase())
    if rng.random() < 0.2:
        steps.append(normalizers.Replace(rng.choice(["``", "  ", "é", "\t"]), rng.choice(["\"", " ", "e", ""])))
    if rng.random() < 0.15:
        steps.append(normalizers.Strip(left=rng.random() < 0.5, right=rng.random() < 0.5))
    if kind == "metaspace_bpe" and rng.random() < 0.5:  # Llama 2's and Mistral's normalizer
        steps += [normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")]
    if not steps:
        return None
    return steps[0] if len(steps) == 1 and rng.random() < 0.5 else normalizers.Sequence(steps)


def random_pre_tokenizer(rng, kind, normalizer_prepends):
    if kind == "byte_bpe":
        choice = rng.random()
        if choice < 0.4:
            return pre_tokenizers.ByteLevel(add_prefix_space=rng.random() < 0.3, use_regex=True)
        if choice < 0.7:
            return pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=rng.random() < 0.7),
                                            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
        behavior = rng.choice(["isolated", "removed", "merged_with_previous", "merged_with_next", "contiguous"])
        pattern = Regex(LLAMA3_SPLIT) if rng.random() < 0.7 else Regex(r"\s+|\p{N}")
        return pre_tokenizers.Sequence([pre_tokenizers.Split(pattern, behavior, invert=False),
                                        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    if kind in ("metaspace_bpe", "unigram"):
        if normalizer_prepends:
            return None
        scheme = rng.choice(["always", "first", "never"])
        meta = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme=scheme, split=rng.random() < 0.7)
        if rng.random() < 0.3:
            return pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), meta])
        return meta
    return rng.choice([pre_tokenizers.Whitespace(), pre_tokenizers.WhitespaceSplit(),
                       pre_tokenizers.CharDelimiterSplit(rng.choice([" ", "-", "e"]))])


def byte_tokens():
    return [f"<0x{b:02X}>" for b in range(256)]


def random_tokenizer(rng, index):
    kind = rng.choice(["byte_bpe", "byte_bpe", "metaspace_bpe", "unigram", "whitespace_bpe"])
    specials = rng.sample(["<s>", "</s>", "<unk>", "<|eot|>", "[MASK]", "<pad>", "<extra_id_0>"], 3)
    if "<unk>" not in specials:
        specials.append("<unk>")
    vocab_size = rng.randint(300, 1500)
    normalizer = random_normalizer(rng, kind)
    prepends = normalizer is not None and "Prepend" in json.dumps(json.loads(normalizer.__getstate__()))
    byte_fallback = kind == "metaspace_bpe" or (kind == "unigram" and rng.random() < 0.5)
    if kind == "unigram":
        tok = Tokenizer(models.Unigram())
        trainer = trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=specials, unk_token="<unk>",
                                          max_piece_length=rng.randint(4, 16), show_progress=False)
    else:
        tok = Tokenizer(models.BPE(unk_token=None if kind == "byte_bpe" else "<unk>"))
        alphabet = pre_tokenizers.ByteLevel.alphabet() if kind == "byte_bpe" else []
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, initial_alphabet=alphabet,
                                      show_progress=False)
    tok.normalizer = normalizer
    tok.pre_tokenizer = random_pre_tokenizer(rng, kind, prepends)
    tok.train_from_iterator(training_corpus(rng), trainer)
    model = json.loads(tok.to_str())["model"]
    if byte_fallback:  # byte pieces as Llama's vocabularies hold them, then the model rebuilt with fallback
        if kind == "unigram":
            vocab = [tuple(p) for p in model["vocab"]]
            have = {p for p, _ in vocab}
            vocab += [(b, 0.0) for b in byte_tokens() if b not in have]
            tok.model = models.Unigram(vocab, unk_id=model["unk_id"], byte_fallback=True)
        else:
            vocab = dict(model["vocab"])
            for b in byte_tokens():
                vocab.setdefault(b, len(vocab))
            tok.model = models.BPE(vocab, [tuple(m) if isinstance(m, list) else tuple(m.split(" ", 1))
                                           for m in model["merges"]],
                                   unk_token="<unk>", byte_fallback=True, fuse_unk=rng.random() < 0.7)
    if kind == "byte_bpe" and rng.random() < 0.3:  # Llama 3's: a word that is a token is taken whole
        model = json.loads(tok.to_str())["model"]
        tok.model = models.BPE(dict(model["vocab"]), [tuple(m) if isinstance(m, list) else tuple(m.split(" ", 1))
                                                      for m in model["merges"]], ignore_merges=True)
    if kind == "byte_bpe":
        tok.decoder = decoders.ByteLevel()
    elif kind == "metaspace_bpe" and tok.pre_tokenizer is None:
        tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                         decoders.Strip(" ", 1, 0)])
    elif kind in ("metaspace_bpe", "unigram"):
        meta = json.loads(tok.to_str())["pre_tokenizer"]
        if meta["type"] == "Sequence":
            meta = meta["pretokenizers"][-1]
        steps = [decoders.ByteFallback()] if byte_fallback else []
        tok.decoder = decoders.Sequence(steps + [decoders.Metaspace(replacement="▁",
                                                                    prepend_scheme=meta["prepend_scheme"],
                                                                    split=meta["split"])])
    # Added tokens with every flag, some of them words the model also knows.
    added = []
    for i in range(rng.randint(0, 4)):
        content = rng.choice([f"<|tool_{i}|>", f"[X{i}]", "fox", " dog", "café", "日本", "<0>", "123", "ab c"])
        added.append(AddedToken(content, single_word=rng.random() < 0.3, lstrip=rng.random() < 0.3,
                                rstrip=rng.random() < 0.3, normalized=rng.random() < 0.5,
                                special=rng.random() < 0.5))
    tok.add_tokens(added)
    post = rng.random()
    if post < 0.3 and "<s>" in specials:
        single = "<s> $A </s>" if "</s>" in specials and rng.random() < 0.5 else "<s> $A"
        tok.post_processor = processors.TemplateProcessing(
            single=single, special_tokens=[(t, tok.token_to_id(t)) for t in ("<s>", "</s>") if t in single])
    elif post < 0.5 and kind == "byte_bpe":
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    name = f"#{index} {kind}"
    return name, tok, specials + [a.content for a in added]


def run_strata(binary, cases, work):
    in_path, out_path = os.path.join(work, "cases.json"), os.path.join(work, "strata.json")
    with open(in_path, "w") as f:
        json.dump(cases, f)
    subprocess.run([binary, in_path, out_path], check=True)
    with open(out_path) as f:
        return json.load(f)


def hf_expectations(tok, texts):
    encodings = [tok.encode(t, add_special_tokens=False).ids for t in texts]
    return {"ids": encodings,
            "ids_with_special": [tok.encode(t, add_special_tokens=True).ids for t in texts],
            "decoded": [tok.decode(ids, skip_special_tokens=False) for ids in encodings],
            "decoded_skip_special": [tok.decode(ids, skip_special_tokens=True) for ids in encodings]}


def compare(name, texts, want, got, report):
    """Counts the cases (one per text and field) and the mismatches, printing the first few."""
    if "error" in got:
        report["mismatches"] += 1
        report["lines"].append(f"{name}: Strata refused the tokenizer: {got['error']}")
        return
    for field in ("ids", "ids_with_special", "decoded", "decoded_skip_special"):
        if len(got[field]) != len(want[field]):
            report["mismatches"] += 1
            report["lines"].append(f"{name} {field}: {len(got[field])} answers for {len(want[field])} texts")
            continue
        for text, w, g in zip(texts, want[field], got[field]):
            report["cases"] += 1
            if w != g:
                report["mismatches"] += 1
                report["by_pipeline"].add(name)
                if len(report["lines"]) < 25:
                    report["lines"].append(f"{name} {field}: text {text!r}\n    tokenizers {w!r}\n    strata     {g!r}")


def real_texts(rng, count):
    lines = []
    for path in sorted(glob.glob("/usr/share/common-licenses/GPL-3") + glob.glob("/usr/lib/python3*/[a-c]*.py")):
        with open(path, encoding="utf-8", errors="replace") as f:
            lines += [l.rstrip("\n") for l in f if l.strip()]
    return rng.sample(lines, min(count, len(lines)))


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    binary, smol_dir, smol_gguf = sys.argv[1], sys.argv[2], sys.argv[3]
    pipelines = int(sys.argv[4]) if len(sys.argv) > 4 else 200
    seed = int(sys.argv[5]) if len(sys.argv) > 5 else 2026
    rng = random.Random(seed)
    work = tempfile.mkdtemp(prefix="hf-tokenizers-oracle-")
    cases, names, all_texts, wants = [], [], [], []
    for i in range(pipelines):
        name, tok, specials = random_tokenizer(rng, i)
        d = os.path.join(work, f"t{i}")
        os.makedirs(d)
        tok.save(os.path.join(d, "tokenizer.json"))
        # The oracle reads the file Strata reads (an in-memory tokenizer can differ from its saved
        # form: a special added token is saved with normalized false).
        tok = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
        texts = [random_text(rng, specials) for _ in range(40)]
        want = hf_expectations(tok, texts)
        cases.append({"dir": d, "texts": texts, "decode": want["ids"]})
        names.append(name + " " + json.dumps(json.loads(tok.to_str())["pre_tokenizer"])[:120])
        all_texts.append(texts)
        wants.append(want)
    # SmolLM2: its real vocabulary and merges, through its tokenizer.json as `strata` loads it.
    smol = Tokenizer.from_file(os.path.join(smol_dir, "tokenizer.json"))
    smol_specials = ["<|im_start|>", "<|im_end|>", "<|endoftext|>"]
    smol_texts = real_texts(rng, 300) + [random_text(rng, smol_specials) for _ in range(300)]
    cases.append({"dir": smol_dir, "texts": smol_texts, "decode": hf_expectations(smol, smol_texts)["ids"]})
    names.append("SmolLM2-135M-Instruct")
    all_texts.append(smol_texts)
    wants.append(hf_expectations(smol, smol_texts))
    cases.append({"dir": smol_gguf, "texts": smol_texts, "decode": wants[-1]["ids"]})
    names.append("SmolLM2-135M-Instruct from its GGUF metadata")
    all_texts.append(smol_texts)
    wants.append(wants[-1])
    # The same vocabulary and merges in GPT-2's original layout (vocab.json + merges.txt), which
    # Strata reads as a byte-level BPE with GPT-2's pre-tokenizer: tokenizers builds it alike.
    gpt2_dir = os.path.join(work, "vocab-merges")
    os.makedirs(gpt2_dir)
    smol_model = json.loads(smol.to_str())["model"]
    with open(os.path.join(gpt2_dir, "vocab.json"), "w") as f:
        json.dump(smol_model["vocab"], f, ensure_ascii=False)
    with open(os.path.join(gpt2_dir, "merges.txt"), "w") as f:
        f.write("#version: 0.2\n")
        for m in smol_model["merges"]:
            f.write((" ".join(m) if isinstance(m, list) else m) + "\n")
    gpt2 = Tokenizer(models.BPE.from_file(os.path.join(gpt2_dir, "vocab.json"), os.path.join(gpt2_dir, "merges.txt")))
    gpt2.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    gpt2.decoder = decoders.ByteLevel()
    # GPT-2's tokenizer classes in transformers register <|endoftext|> as their special token.
    gpt2.add_special_tokens([AddedToken("<|endoftext|>", special=True, normalized=False)])
    cases.append({"dir": gpt2_dir, "texts": smol_texts, "decode": hf_expectations(gpt2, smol_texts)["ids"]})
    names.append("SmolLM2's vocabulary as vocab.json + merges.txt")
    all_texts.append(smol_texts)
    wants.append(hf_expectations(gpt2, smol_texts))
    # The negative control: Strata gets SmolLM2's tokenizer without its Digits step.
    broken = json.load(open(os.path.join(smol_dir, "tokenizer.json")))
    broken["pre_tokenizer"] = broken["pre_tokenizer"]["pretokenizers"][-1]
    broken_dir = os.path.join(work, "broken")
    os.makedirs(broken_dir)
    json.dump(broken, open(os.path.join(broken_dir, "tokenizer.json"), "w"))
    cases.append({"dir": broken_dir, "texts": smol_texts, "decode": wants[-3]["ids"]})

    got = run_strata(binary, cases, work)
    if len(got) != len(cases):
        sys.exit(f"tokenize_cases answered {len(got)} of {len(cases)} tokenizers")
    report = {"cases": 0, "mismatches": 0, "lines": [], "by_pipeline": set()}
    for name, texts, want, g in zip(names, all_texts, wants, got):
        compare(name, texts, want, g, report)
    control = {"cases": 0, "mismatches": 0, "lines": [], "by_pipeline": set()}
    compare("control", smol_texts, wants[-3], got[-1], control)
    smol_cases = 12 * len(smol_texts)
    print(f"{report['cases']} cases ({pipelines} random pipelines x 40 texts, SmolLM2 x {len(smol_texts)} texts from tokenizer.json, from the GGUF and as vocab.json + merges.txt; "
          f"ids, ids with special tokens, decoded, decoded skipping special): {report['mismatches']} mismatches "
          f"in {len(report['by_pipeline'])} pipelines; SmolLM2: {smol_cases} cases")
    for line in report["lines"]:
        print(line)
    print(f"negative control (no digit splitting, Strata only): {control['mismatches']} of {control['cases']} "
          "cases differ, as they must")
    ok = report["mismatches"] == 0 and control["mismatches"] > 0
    print("1 passed, 0 failed" if ok else "0 passed, 1 failed")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
