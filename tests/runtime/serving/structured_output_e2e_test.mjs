// Structured outputs end to end (usage: node structured_output_e2e_test.mjs NPM_DIR BASE_URL
// REQUESTS): REQUESTS seeded chat requests spread over 20 JSON schemas (nested objects, arrays
// with bounds, enums, anyOf, $ref incl. recursion, patterns, formats, integer and number ranges,
// tuples), half greedy and half sampled, to a random-weight model: every output must finish by
// itself ("stop") and parse and validate against its schema with ajv's 2020-12 validator (+ ajv-formats, full mode).
// Grammars that admit exactly one string (guided_choice of one, a literal guided_regex) must
// produce it, and a const schema its value.
import { createRequire } from 'node:module';
import assert from 'node:assert/strict';

const [npmDir, baseURL, requestsArg] = process.argv.slice(2);
const require = createRequire(npmDir + '/package.json');
// JSON Schema 2020-12 (prefixItems, $defs): ajv's draft-2020 validator.
const Ajv = require('ajv/dist/2020').default ?? require('ajv/dist/2020');
const addFormats = require('ajv-formats').default ?? require('ajv-formats');
const ajv = new Ajv({ strict: false, allErrors: true });
addFormats(ajv, { mode: 'full' });
const requests = Number(requestsArg ?? 200);

const int = (minimum, maximum) => ({ type: 'integer', minimum, maximum });
const str = (maxLength, extra = {}) => ({ type: 'string', maxLength, ...extra });
const obj = (properties, required = Object.keys(properties), extra = {}) =>
  ({ type: 'object', properties, required, ...extra });
const schemas = [
  obj({ name: str(12), age: int(0, 120) }),
  { enum: ['red', 'green', 'blue'] },
  { type: 'array', items: int(-50, 50), minItems: 1, maxItems: 5 },
  obj({ user: obj({ id: int(1, 9999), email: str(40) }), active: { type: 'boolean' } }),
  { anyOf: [int(0, 9), str(5), { type: 'null' }] },
  { $defs: { pt: obj({ x: int(0, 100), y: int(-100, 0) }) }, ...obj({ a: { $ref: '#/$defs/pt' }, b: { $ref: '#/$defs/pt' } }) },
  obj({ code: { type: 'string', pattern: '^[A-Z]{3}-[0-9]{4}$' } }),
  obj({ ok: { type: 'boolean' }, v: { const: 'v1' } }),
  obj({ a: int(0, 9), b: str(4), c: { type: 'boolean' } }, ['b']),
  { type: 'array', maxItems: 3, items: obj({ k: { enum: ['x', 'y'] }, n: int(0, 99) }) },
  obj({ d: { type: 'string', format: 'date' } }),
  obj({ id: { type: 'string', format: 'uuid' } }),
  { type: 'number', minimum: 0, maximum: 1 },
  { $defs: { node: obj({ v: int(0, 9), kids: { type: 'array', items: { $ref: '#/$defs/node' }, maxItems: 1 } }) },
    $ref: '#/$defs/node' },
  { type: 'array', prefixItems: [str(3), int(0, 9)], items: false, minItems: 2 },
  { enum: ['café', 'naïve', '日本', 'plain'] },
  { const: { status: 'ok', code: 200, tags: ['a', 'b'] } },
  int(-1000, -3),
  obj({ tags: { type: 'array', items: { enum: ['a', 'b', 'c'] }, minItems: 2, maxItems: 4 } }, ['tags'],
    { additionalProperties: false }),
  { type: 'string', minLength: 3, maxLength: 8 },
];
assert.equal(schemas.length, 20);

async function chat(body) {
  const r = await fetch(baseURL + '/v1/chat/completions', {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ model: 'model', max_tokens: 700, ...body }),
  });
  const j = await r.json();
  assert.equal(r.status, 200, JSON.stringify(j));
  return j.choices[0];
}

let done = 0, sampled = 0, tokens = 0;
const queue = [...Array(requests).keys()];
async function worker() {
  while (queue.length) {
    const i = queue.shift();
    const schema = schemas[i % schemas.length];
    const greedy = Math.floor(i / schemas.length) % 2 === 0;
    const choice = await chat({
      messages: [{ role: 'user', content: `request ${i}: answer in JSON` }],
      temperature: greedy ? 0 : 1, seed: i,
      response_format: { type: 'json_schema', json_schema: { name: `s${i % schemas.length}`, schema, strict: true } },
    });
    const text = choice.message.content;
    assert.equal(choice.finish_reason, 'stop', `schema ${i % schemas.length} request ${i}: ${text}`);
    let value;
    try { value = JSON.parse(text); } catch (e) { assert.fail(`schema ${i % schemas.length}: not JSON: ${text}`); }
    const ok = ajv.validate(schema, value);
    assert.ok(ok, `schema ${i % schemas.length} request ${i}: ${text}\n${JSON.stringify(ajv.errors)}`);
    if (schema.const) assert.deepEqual(value, schema.const);
    done += 1;
    sampled += greedy ? 0 : 1;
    tokens += text.length;
  }
}
await Promise.all([worker(), worker(), worker(), worker()]);
assert.equal(done, requests);

// Grammars with exactly one sentence produce it.
for (const [body, want] of [
  [{ guided_choice: ['the only answer'] }, 'the only answer'],
  [{ guided_regex: 'exactly \\(this\\)' }, 'exactly (this)'],
  [{ guided_grammar: 'root ::= "a" b\nb ::= "-b-" "c"' }, 'a-b-c'],
]) {
  for (const temperature of [0, 1]) {
    const c = await chat({ messages: [{ role: 'user', content: 'x' }], temperature, seed: 3, ...body });
    assert.equal(c.message.content, want);
    assert.equal(c.finish_reason, 'stop');
  }
}
console.log(`${done} outputs over ${schemas.length} schemas (${sampled} sampled, ${done - sampled} greedy) ` +
            `parse and validate; ${tokens} characters; the single-sentence grammars produced their sentence`);
