"""Structured outputs end to end (usage: structured_output_e2e_test.py BASE_URL REQUESTS):
REQUESTS seeded chat requests spread over 20 JSON schemas (nested objects, arrays with bounds,
enums, anyOf, $ref incl. recursion, patterns, formats, integer and number ranges, tuples), half
greedy and half sampled, to a random-weight model: every output must finish by itself ("stop")
and parse and validate against its schema with jsonschema's Draft 2020-12 validator and its
format checkers (date, uuid, ...). Grammars that admit exactly one string (guided_choice of one,
a literal guided_regex) must produce it, and a const schema its value. First, the validator
itself must reject a wrong value for every schema, formats included, so the check can fail.
"""
import json
import sys
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import jsonschema

base_url, requests = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 200


def integer(minimum, maximum):
    return {"type": "integer", "minimum": minimum, "maximum": maximum}


def string(max_length, **extra):
    return {"type": "string", "maxLength": max_length, **extra}


def obj(properties, required=None, **extra):
    return {"type": "object", "properties": properties,
            "required": list(properties) if required is None else required, **extra}


# Each schema with a value it must reject.
SCHEMAS = [
    (obj({"name": string(12), "age": integer(0, 120)}), {"name": "x", "age": 121}),
    ({"enum": ["red", "green", "blue"]}, "pink"),
    ({"type": "array", "items": integer(-50, 50), "minItems": 1, "maxItems": 5}, []),
    (obj({"user": obj({"id": integer(1, 9999), "email": string(40)}), "active": {"type": "boolean"}}),
     {"user": {"id": 1}, "active": True}),
    ({"anyOf": [integer(0, 9), string(5), {"type": "null"}]}, 10),
    ({"$defs": {"pt": obj({"x": integer(0, 100), "y": integer(-100, 0)})},
      **obj({"a": {"$ref": "#/$defs/pt"}, "b": {"$ref": "#/$defs/pt"}})}, {"a": {"x": 1, "y": 1}, "b": {"x": 1, "y": 0}}),
    (obj({"code": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{4}$"}}), {"code": "AB-1234"}),
    (obj({"ok": {"type": "boolean"}, "v": {"const": "v1"}}), {"ok": True, "v": "v2"}),
    (obj({"a": integer(0, 9), "b": string(4), "c": {"type": "boolean"}}, ["b"]), {"a": 1}),
    ({"type": "array", "maxItems": 3, "items": obj({"k": {"enum": ["x", "y"]}, "n": integer(0, 99)})},
     [{"k": "z", "n": 1}]),
    (obj({"d": {"type": "string", "format": "date"}}), {"d": "2026-02-30"}),
    (obj({"id": {"type": "string", "format": "uuid"}}), {"id": "123e4567-e89b-12d3-a456-42661417400"}),
    ({"type": "number", "minimum": 0, "maximum": 1}, 1.5),
    ({"$defs": {"node": obj({"v": integer(0, 9), "kids": {"type": "array", "items": {"$ref": "#/$defs/node"},
                                                          "maxItems": 1}})},
      "$ref": "#/$defs/node"}, {"v": 1, "kids": [{"v": 10, "kids": []}]}),
    ({"type": "array", "prefixItems": [string(3), integer(0, 9)], "items": False, "minItems": 2}, ["a", 1, 2]),
    ({"enum": ["café", "naïve", "日本", "plain"]}, "cafe"),
    ({"const": {"status": "ok", "code": 200, "tags": ["a", "b"]}}, {"status": "ok", "code": 200, "tags": ["b", "a"]}),
    (integer(-1000, -3), -2),
    (obj({"tags": {"type": "array", "items": {"enum": ["a", "b", "c"]}, "minItems": 2, "maxItems": 4}}, ["tags"],
         additionalProperties=False), {"tags": ["a", "b"], "extra": 1}),
    ({"type": "string", "minLength": 3, "maxLength": 8}, "ab"),
]
assert len(SCHEMAS) == 20
VALIDATORS = [jsonschema.Draft202012Validator(s, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
              for s, _ in SCHEMAS]
for k, (validator, (_, wrong)) in enumerate(zip(VALIDATORS, SCHEMAS)):
    assert not validator.is_valid(wrong), f"schema {k}: the validator accepts {wrong!r}"


def chat(body):
    data = json.dumps({"model": "model", "max_tokens": 700, **body}).encode()
    request = urllib.request.Request(base_url + "/v1/chat/completions", data=data,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=600) as r:
            return json.load(r)["choices"][0]
    except urllib.error.HTTPError as e:
        raise AssertionError(f"HTTP {e.code}: {e.read().decode()}")


def one(i):
    k = i % len(SCHEMAS)
    schema = SCHEMAS[k][0]
    greedy = (i // len(SCHEMAS)) % 2 == 0
    choice = chat({"messages": [{"role": "user", "content": f"request {i}: answer in JSON"}],
                   "temperature": 0 if greedy else 1, "seed": i,
                   "response_format": {"type": "json_schema",
                                       "json_schema": {"name": f"s{k}", "schema": schema, "strict": True}}})
    text = choice["message"]["content"]
    assert choice["finish_reason"] == "stop", f"schema {k} request {i}: {text!r}"
    try:
        value = json.loads(text)
    except ValueError:
        raise AssertionError(f"schema {k} request {i}: not JSON: {text!r}")
    errors = [e.message for e in VALIDATORS[k].iter_errors(value)]
    assert not errors, f"schema {k} request {i}: {text!r}\n{errors}"
    if "const" in schema:
        assert value == schema["const"], text
    return (0 if greedy else 1), len(text)


with ThreadPoolExecutor(4) as pool:
    results = list(pool.map(one, range(requests)))
sampled = sum(s for s, _ in results)
characters = sum(n for _, n in results)

# Grammars with exactly one sentence produce it.
for body, want in (({"guided_choice": ["the only answer"]}, "the only answer"),
                   ({"guided_regex": "exactly \\(this\\)"}, "exactly (this)"),
                   ({"guided_grammar": 'root ::= "a" b\nb ::= "-b-" "c"'}, "a-b-c")):
    for temperature in (0, 1):
        c = chat({"messages": [{"role": "user", "content": "x"}], "temperature": temperature, "seed": 3, **body})
        assert c["message"]["content"] == want, c["message"]["content"]
        assert c["finish_reason"] == "stop"
print(f"{len(results)} outputs over {len(SCHEMAS)} schemas ({sampled} sampled, {len(results) - sampled} greedy) "
      f"parse and validate; {characters} characters; the single-sentence grammars produced their sentence")
