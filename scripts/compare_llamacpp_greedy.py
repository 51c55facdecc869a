#!/usr/bin/env python3
"""Greedy tokens of Strata and llama.cpp on the same GGUF file, side by side.

Starts the llama-server of a llama.cpp checkout the user built (CPU, default settings, on
loopback), sends each prompt as token ids (`strata tokenize` spells them, so both see the same
ids) with temperature 0 and the two best logprobs per step, and compares with `strata generate`
on the same ids, each stopping at the end of the answer (llama.cpp's ignore_eos would ban the
end-of-sequence token rather than go past it, so neither ignores it). Prints, per prompt, how many tokens agree and, where they part,
llama.cpp's margin between its two best candidates there (a near-tie when it is small: llama.cpp
multiplies quantized weights by 8-bit-quantized activations, Strata dequantizes the weights to
float32, so near-ties may break either way). Standard library only.

Usage: compare_llamacpp_greedy.py LLAMA_CPP_DIR STRATA_BIN MODEL.gguf [--steps N] [--json OUT]
"""
import argparse
import json
import math
import os
import subprocess
import sys
import time
import urllib.request

# The prompts the transformers comparison uses too (tests/runtime/model/transformers_gguf_test.py).
PROMPTS_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "python", "smollm2_prompts.json")
# SmolLM2's chat template for one user turn (its default system prompt included).
CHATML = ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
          "<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n")


def tokenize(strata, model, text):
    r = subprocess.run([strata, "tokenize", "--model", model, "--text", text, "--add-special-tokens=false"],
                       capture_output=True, text=True, check=True)
    return [int(x) for x in r.stdout.strip().split(",") if x]


def post(port, path, body):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as r:
        return json.load(r)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("llama_cpp_dir")
    ap.add_argument("strata")
    ap.add_argument("model")
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--json", dest="json_out")
    a = ap.parse_args()
    server_bin = os.path.join(a.llama_cpp_dir, "build", "bin", "llama-server")
    if not os.access(server_bin, os.X_OK):
        sys.exit(f"{server_bin} is missing: build it (cmake -B build && cmake --build build --target llama-server)")
    with open(PROMPTS_FILE) as f:
        shared = json.load(f)
    prompts = [tokenize(a.strata, a.model, CHATML.format(c)) for c in shared["chats"]] + \
              [tokenize(a.strata, a.model, t) for t in shared["texts"]]
    port = 18000 + os.getpid() % 1000
    server = subprocess.Popen([server_bin, "-m", a.model, "--host", "127.0.0.1", "--port", str(port), "-c", "4096"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(240):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.5)
        theirs = []
        for p in prompts:
            r = post(port, "/completion", {"prompt": p, "n_predict": a.steps, "temperature": 0,
                                           "n_probs": 2, "cache_prompt": False, "samplers": ["top_k"], "top_k": 1})
            theirs.append(r["completion_probabilities"])
    finally:
        server.terminate()
        server.wait(timeout=30)
    ours = subprocess.run([a.strata, "generate", "--model", a.model, "--prompt-ids",
                           ";".join(",".join(map(str, p)) for p in prompts), "--max-tokens", str(a.steps),
                           "--json"], capture_output=True, text=True, check=True)
    ours = json.loads(ours.stdout)
    rows, equal_all = [], 0
    for k, (mine, probs) in enumerate(zip(ours, theirs)):
        tokens = [step["id"] for step in probs]
        # Strata's ids end with the end-of-sequence token where it stopped; llama.cpp's list may not.
        n = min(len(mine["tokens"]), len(tokens))
        agree = next((i for i, (x, y) in enumerate(zip(mine["tokens"], tokens)) if x != y), n)
        if agree == n and len(mine["tokens"]) != len(tokens) and abs(len(mine["tokens"]) - len(tokens)) > 1:
            agree = n  # one stopped where the other went on: a difference at n
            tokens = tokens[:n + 1]
        margin = None
        if agree < len(tokens):
            top = probs[agree]["top_logprobs"]
            margin = top[0]["logprob"] - top[1]["logprob"] if len(top) > 1 else math.inf
        whole = agree == n and abs(len(mine["tokens"]) - len(probs)) <= 1
        equal_all += whole
        rows.append({"prompt": k, "agree": agree, "strata_tokens": len(mine["tokens"]), "llama_cpp_tokens": len(probs),
                     "llama_cpp_margin_at_split": None if whole else margin})
        print(f"prompt {k:2d}: {agree:2d} tokens agree (strata {len(mine['tokens'])}, llama.cpp {len(probs)})" +
              ("" if margin is None else f"; llama.cpp's best two were {margin:.4f} nats apart where they part"))
    print(f"{equal_all} of {len(prompts)} prompts agree on every greedy token (up to {a.steps}, or the end)")
    if a.json_out:
        with open(a.json_out, "w") as f:
            json.dump({"model": a.model, "steps": a.steps, "prompts": rows}, f, indent=1)


if __name__ == "__main__":
    main()
