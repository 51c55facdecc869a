"""The official `openai` Python SDK chatting with a TinyLlama-shaped LCKV model served under
mpirun (usage: lckv_tinyllama_sdk_test.py BASE_URL OUT_JSON): a greedy chat whole and streamed
must agree, the stream must end with a finish reason, and the answer's token ids go to OUT_JSON
for the wrapper to compare with a single-rank `strata generate`.
"""
import json
import sys
import urllib.request

import openai

base_url, out_path = sys.argv[1], sys.argv[2]
client = openai.OpenAI(base_url=base_url + "/v1", api_key="unused", max_retries=0, timeout=600)
model = "model"
# Short: LCKV prefills a prompt in m + b = 9 passes over most of a 1.1B model, on 2 cores.
messages = [{"role": "user", "content": "Hello!"}]
request = dict(model=model, messages=messages, max_tokens=4, temperature=0,
               extra_body={"ignore_eos": True, "return_token_ids": True})

whole = client.chat.completions.create(**request)
assert len(whole.choices) == 1
assert whole.choices[0].finish_reason == "length"
assert whole.usage.completion_tokens == 4
ids = whole.choices[0].model_extra["token_ids"]
assert len(ids) == 4, ids

text, finish = "", None
for chunk in client.chat.completions.create(**request, stream=True):
    for c in chunk.choices:
        text += c.delta.content or ""
        finish = c.finish_reason or finish
assert text == whole.choices[0].message.content, (text, whole.choices[0].message.content)
assert finish == "length"
# The prompt's ids as the server tokenized them (vLLM's /tokenize with the same messages).
req = urllib.request.Request(base_url + "/tokenize", data=json.dumps({"model": model, "messages": messages}).encode(),
                             headers={"Content-Type": "application/json"})
with urllib.request.urlopen(req) as r:
    tokenized = json.load(r)
assert tokenized["count"] == whole.usage.prompt_tokens
with open(out_path, "w") as f:
    json.dump({"ids": ids, "text": text, "prompt": tokenized["tokens"]}, f)
print(f"chat answered {text!r} ({ids}), prompt {whole.usage.prompt_tokens} tokens")
