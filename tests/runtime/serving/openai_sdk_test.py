"""The official `openai` Python SDK against `strata serve` (usage: openai_sdk_test.py BASE_URL):
n, top_logprobs, penalties, logit_bias, streaming and non-streaming, /tokenize round trips,
structured outputs (response_format json_schema, guided_choice) and tools (tool_choice required
and named, streamed and not; validated with jsonschema), then 20 rounds of 64 concurrent streams
on keep-alive connections with max_retries 0: every one must complete (no connection error); the
wrapper checks the kernel's reset count.
"""
import asyncio
import json
import re
import sys
import urllib.request

import jsonschema
import openai

base_url = sys.argv[1]
client = openai.OpenAI(base_url=base_url + "/v1", api_key="unused", max_retries=0, timeout=60)
model = "model"


def validator(schema):
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def post(path, body):
    request = urllib.request.Request(base_url + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request) as r:
        return json.load(r)


def expect_bad_request(param, pattern, **request):
    try:
        client.chat.completions.create(**request)
    except openai.BadRequestError as e:
        assert e.status_code == 400 and e.param == param, (e.status_code, e.param, e.message)
        assert re.search(pattern, e.message), e.message
        return
    raise AssertionError(f"no 400 for {request}")


# Non-streaming completions with the knobs users send.
many = client.completions.create(model=model, prompt=[1, 2, 3], max_tokens=6, temperature=1, seed=7, n=3,
                                 logprobs=2, presence_penalty=0.5, frequency_penalty=0.5, logit_bias={"9": 2})
assert len(many.choices) == 3
for c in many.choices:
    assert len(c.logprobs.tokens) == 6
    for alternatives in c.logprobs.top_logprobs:
        assert len(alternatives) <= 2

# Chat with top_logprobs, both ways; the stream's text is the whole response's.
messages = [{"role": "user", "content": "hello there"}]
whole = client.chat.completions.create(model=model, messages=messages, max_tokens=8, temperature=0, logprobs=True,
                                       top_logprobs=3)
assert len(whole.choices[0].logprobs.content) == 8
for t in whole.choices[0].logprobs.content:
    assert len(t.top_logprobs) == 3
streamed, chunks, usage = "", 0, None
for chunk in client.chat.completions.create(model=model, messages=messages, max_tokens=8, temperature=0, stream=True,
                                            logprobs=True, top_logprobs=2, stream_options={"include_usage": True}):
    if chunk.usage:
        usage = chunk.usage
    for c in chunk.choices:
        streamed += c.delta.content or ""
        if c.logprobs and c.logprobs.content:
            chunks += 1
            assert len(c.logprobs.content[0].top_logprobs) == 2
assert streamed == whole.choices[0].message.content, (streamed, whole.choices[0].message.content)
assert chunks == 8
assert usage.completion_tokens == 8

# /tokenize and /detokenize (vLLM's shapes) round trip.
for text in ["hello world", "ünïcödé and 日本語", "a\nb\tc  d"]:
    t = post("/tokenize", {"prompt": text})
    assert t["count"] == len(t["tokens"])
    assert post("/detokenize", {"tokens": t["tokens"]})["prompt"] == text

# Structured outputs. The model has random weights and a 512-token vocabulary: schemas are kept
# bounded (maxLength, enums, integer ranges, maxItems) so that every output can finish.
person = {
    "type": "object",
    "properties": {"name": {"type": "string", "maxLength": 8}, "age": {"type": "integer", "minimum": 0, "maximum": 120},
                   "tags": {"type": "array", "items": {"enum": ["a", "b", "c"]}, "maxItems": 3}},
    "required": ["name", "age", "tags"],
    "additionalProperties": False,
}
valid_person = validator(person)
asked = dict(model=model, messages=messages, max_tokens=400, temperature=0, seed=3,
             response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": person, "strict": True}})
shaped = client.chat.completions.create(**asked)
assert shaped.choices[0].finish_reason == "stop", shaped.choices[0].message.content
valid_person.validate(json.loads(shaped.choices[0].message.content))
shaped_text = "".join(c.delta.content or "" for chunk in client.chat.completions.create(**asked, stream=True)
                      for c in chunk.choices)
assert shaped_text == shaped.choices[0].message.content
valid_person.validate(json.loads(shaped_text))
# On /v1/completions too (vLLM's guided_choice).
chosen = client.completions.create(model=model, prompt="pick", max_tokens=20,
                                   extra_body={"guided_choice": ["red", "green", "blue"]})
assert chosen.choices[0].text in ("red", "green", "blue"), chosen.choices[0].text
# An unsupported schema keyword is a 400 naming it, raised by the SDK as BadRequestError.
expect_bad_request("response_format", "uniqueItems", model=model, messages=messages, response_format={
    "type": "json_schema", "json_schema": {"name": "x", "schema": {
        "type": "object", "properties": {"t": {"type": "array", "uniqueItems": True}}}}})

# Tools: a forced call (tool_choice required, or a named function), streamed and not. The
# streamed deltas, accumulated as the SDK's users do, give the same calls.
tools = [
    {"type": "function", "function": {"name": "get_weather", "description": "The weather in a city", "parameters": {
        "type": "object", "properties": {"city": {"type": "string", "maxLength": 10}, "unit": {"enum": ["c", "f"]}},
        "required": ["city", "unit"], "additionalProperties": False}}},
    {"type": "function", "function": {"name": "add", "parameters": {
        "type": "object", "properties": {"a": {"type": "integer", "minimum": 0, "maximum": 100},
                                         "b": {"type": "integer", "minimum": 0, "maximum": 100}},
        "required": ["a", "b"], "additionalProperties": False}}},
]
valid_args = {t["function"]["name"]: validator(t["function"]["parameters"]) for t in tools}


def collect(stream):
    content, finish, calls = None, None, []
    for chunk in stream:
        for c in chunk.choices:
            if c.delta.content:
                content = (content or "") + c.delta.content
            for t in c.delta.tool_calls or []:
                if t.index >= len(calls):
                    assert t.id and t.type == "function" and t.function.name, t
                    calls.append({"id": t.id, "type": t.type, "function": {"name": t.function.name, "arguments": ""}})
                calls[t.index]["function"]["arguments"] += t.function.arguments or ""
            if c.finish_reason:
                finish = c.finish_reason
    return content, calls, finish


for tool_choice, reason in (("required", "tool_calls"), ({"type": "function", "function": {"name": "add"}}, "stop")):
    request = dict(model=model, messages=[{"role": "user", "content": "What is 2 + 3?"}], tools=tools,
                   tool_choice=tool_choice, parallel_tool_calls=False, max_tokens=400, temperature=0, seed=11)
    label = json.dumps(tool_choice)
    w = client.chat.completions.create(**request).choices[0]
    assert w.finish_reason == reason, label
    assert w.message.content is None, label
    assert w.message.tool_calls and len(w.message.tool_calls) >= 1, label
    for call in w.message.tool_calls:
        assert re.fullmatch(r"chatcmpl-tool-[0-9a-f]{32}", call.id), call.id
        assert call.type == "function"
        if isinstance(tool_choice, dict):
            assert call.function.name == "add"
        assert call.function.name in valid_args, f"unknown tool {call.function.name}"
        valid_args[call.function.name].validate(json.loads(call.function.arguments))
    content, calls, finish = collect(client.chat.completions.create(**request, stream=True))
    assert finish == reason, label
    assert content is None, label
    assert calls == [{"id": c.id, "type": c.type, "function": {"name": c.function.name, "arguments": c.function.arguments}}
                     for c in w.message.tool_calls], label
# A history with a tool call and its result is accepted (auto: the output is parsed for calls).
follow_up = client.chat.completions.create(model=model, tools=tools, max_tokens=8, temperature=0, messages=[
    {"role": "user", "content": "weather?"},
    {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function", "function": {
        "name": "get_weather", "arguments": '{"city": "Paris", "unit": "c"}'}}]},
    {"role": "tool", "tool_call_id": "call_1", "content": "18"}])
assert follow_up.choices[0].finish_reason in ("stop", "length", "tool_calls")
expect_bad_request("tool_choice", "nope", model=model, messages=messages, tools=tools,
                   tool_choice={"type": "function", "function": {"name": "nope"}})
print("sdk: structured outputs and tool calls passed")


# 20 rounds of 64 concurrent streams over the SDK's keep-alive connections, no retries.
async def rounds():
    aclient = openai.AsyncOpenAI(base_url=base_url + "/v1", api_key="unused", max_retries=0, timeout=60)
    failures, completed = 0, 0

    async def one(round_, i):
        nonlocal failures, completed
        try:
            stream = await aclient.completions.create(model=model, prompt=[1 + i % 50, 2, 3], max_tokens=8,
                                                      temperature=0, stream=True)
            choices = 0
            async for chunk in stream:
                choices += len(chunk.choices)
            completed += choices > 0
        except Exception as e:  # counted and printed: every stream must complete
            failures += 1
            print(f"round {round_} stream {i}: {type(e).__name__}: {e} {e.__cause__!r}", file=sys.stderr)

    for round_ in range(20):
        await asyncio.gather(*(one(round_, i) for i in range(64)))
    await aclient.close()
    return failures, completed


failures, completed = asyncio.run(rounds())
print(f"sdk: {completed} of {20 * 64} concurrent streams completed, {failures} failed")
assert failures == 0 and completed == 20 * 64
print("openai sdk: all checks passed")
