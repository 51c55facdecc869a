"""What the Python oracle tests share: transformers' greedy decoding, its comparison with Strata's
`generate --json` answers, and the ctest-style ending.
"""
import json
import os
import sys

# SmolLM2's comparison prompts, shared with scripts/compare_llamacpp_greedy.py.
PROMPTS_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "smollm2_prompts.json")


def load_prompts():
    """(chats, texts): user messages for the chat template, and plain texts."""
    with open(PROMPTS_FILE) as f:
        p = json.load(f)
    return p["chats"], p["texts"]


def hf_greedy(model, ids, steps):
    """transformers' greedy tokens for `ids`, their logprobs and the gap between the best two."""
    import torch  # only the tests that run transformers need it

    tokens, logprobs, gaps = [], [], []
    past, inp = None, torch.tensor([ids])
    with torch.no_grad():
        for _ in range(steps):
            out = model(input_ids=inp, past_key_values=past, use_cache=True)
            past = out.past_key_values
            lp = torch.log_softmax(out.logits[0, -1].double(), dim=-1)
            top = torch.topk(lp, 2)
            t = int(top.indices[0])
            tokens.append(t)
            logprobs.append(float(lp[t]))
            gaps.append(float(top.values[0] - top.values[1]))
            inp = torch.tensor([[t]])
    return tokens, logprobs, gaps


def compare_greedy(label, model, prompts, got, steps, tie, tolerance, failures):
    """Strata's greedy answers `got` against transformers': tokens equal up to a near-tie (the
    best two within `tie`), logprobs of the shared tokens within `tolerance`. Returns (tokens
    compared, near-ties, worst logprob difference)."""
    if len(got) != len(prompts) or any(len(g["tokens"]) != steps for g in got):
        failures.append(f"{label}: strata answered {len(got)} prompts, token counts {[len(g['tokens']) for g in got]}")
    compared, ties, worst = 0, 0, 0.0
    for k, (p, g) in enumerate(zip(prompts, got)):
        want, want_lp, gaps = hf_greedy(model, p, steps)
        for i in range(min(steps, len(g["tokens"]))):
            if g["tokens"][i] != want[i]:
                if gaps[i] <= tie:
                    ties += 1
                else:
                    failures.append(f"{label} prompt {k} step {i}: strata {g['tokens'][i]}, transformers {want[i]} "
                                    f"(best two {gaps[i]:.2e} apart)")
                break
            diff = abs(g["logprobs"][i] - want_lp[i])
            worst, compared = max(worst, diff), compared + 1
            if diff > tolerance:
                failures.append(f"{label} prompt {k} step {i}: logprob strata {g['logprobs'][i]:.6f}, "
                                f"transformers {want_lp[i]:.6f}")
    return compared, ties, worst


def finish(failures, most=20):
    """Prints the first failures and the ctest summary line, and exits with the verdict."""
    for f in failures[:most]:
        print("FAIL:", f)
    print("1 passed, 0 failed" if not failures else "0 passed, 1 failed")
    sys.exit(1 if failures else 0)
