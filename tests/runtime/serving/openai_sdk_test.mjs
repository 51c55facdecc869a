// The official `openai` npm SDK against `strata serve` (usage: node openai_sdk_test.mjs NPM_DIR
// BASE_URL): n, top_logprobs, penalties, logit_bias, streaming and non-streaming, /tokenize round
// trips, structured outputs (response_format json_schema, guided_choice) and tools (tool_choice
// required and named, streamed and not; validated with ajv), then 20 rounds of 64 concurrent streams on keep-alive connections with maxRetries 0:
// every one must complete (no connection error); the wrapper checks the kernel's reset count.
import { createRequire } from 'node:module';
import assert from 'node:assert/strict';

const [npmDir, baseURL] = process.argv.slice(2);
const require = createRequire(npmDir + '/package.json');
const OpenAI = require('openai').default ?? require('openai');
const Ajv = require('ajv').default ?? require('ajv');
const ajv = new Ajv({ strict: false });
const client = new OpenAI({ baseURL: baseURL + '/v1', apiKey: 'unused', maxRetries: 0, timeout: 60000 });
const model = 'model';

// Non-streaming completions with the knobs users send.
const many = await client.completions.create({
  model, prompt: [1, 2, 3], max_tokens: 6, temperature: 1, seed: 7, n: 3, logprobs: 2,
  presence_penalty: 0.5, frequency_penalty: 0.5, logit_bias: { '9': 2 },
});
assert.equal(many.choices.length, 3);
for (const c of many.choices) {
  assert.equal(c.logprobs.tokens.length, 6);
  for (const alternatives of c.logprobs.top_logprobs) assert.ok(Object.keys(alternatives).length <= 2);
}
// Chat with top_logprobs, both ways; the stream's text is the whole response's.
const messages = [{ role: 'user', content: 'hello there' }];
const whole = await client.chat.completions.create({
  model, messages, max_tokens: 8, temperature: 0, logprobs: true, top_logprobs: 3,
});
assert.equal(whole.choices[0].logprobs.content.length, 8);
for (const t of whole.choices[0].logprobs.content) assert.equal(t.top_logprobs.length, 3);
let streamed = '';
let chunks = 0;
const stream = await client.chat.completions.create({
  model, messages, max_tokens: 8, temperature: 0, stream: true, logprobs: true, top_logprobs: 2,
  stream_options: { include_usage: true },
});
let usage = null;
for await (const chunk of stream) {
  if (chunk.usage) usage = chunk.usage;
  for (const c of chunk.choices) {
    streamed += c.delta?.content ?? '';
    if (c.logprobs?.content?.length) {
      chunks += 1;
      assert.equal(c.logprobs.content[0].top_logprobs.length, 2);
    }
  }
}
assert.equal(streamed, whole.choices[0].message.content);
assert.equal(chunks, 8);
assert.equal(usage.completion_tokens, 8);

// /tokenize and /detokenize (vLLM's shapes) round trip.
const post = async (path, body) => (await fetch(baseURL + path, {
  method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) })).json();
for (const text of ['hello world', 'ünïcödé and 日本語', 'a\nb\tc  d']) {
  const t = await post('/tokenize', { prompt: text });
  assert.equal(t.count, t.tokens.length);
  assert.equal((await post('/detokenize', { tokens: t.tokens })).prompt, text);
}

// Structured outputs. The model has random weights and a 512-token vocabulary: schemas are kept
// bounded (maxLength, enums, integer ranges, maxItems) so that every output can finish.
const person = {
  type: 'object',
  properties: {
    name: { type: 'string', maxLength: 8 },
    age: { type: 'integer', minimum: 0, maximum: 120 },
    tags: { type: 'array', items: { enum: ['a', 'b', 'c'] }, maxItems: 3 },
  },
  required: ['name', 'age', 'tags'],
  additionalProperties: false,
};
const validPerson = ajv.compile(person);
const responseFormat = { type: 'json_schema', json_schema: { name: 'person', schema: person, strict: true } };
const asked = { model, messages, max_tokens: 400, temperature: 0, seed: 3, response_format: responseFormat };
const shaped = await client.chat.completions.create(asked);
assert.equal(shaped.choices[0].finish_reason, 'stop', shaped.choices[0].message.content);
const parsed = JSON.parse(shaped.choices[0].message.content);
assert.ok(validPerson(parsed), JSON.stringify(validPerson.errors) + ' ' + shaped.choices[0].message.content);
let shapedText = '';
for await (const chunk of await client.chat.completions.create({ ...asked, stream: true }))
  for (const c of chunk.choices) shapedText += c.delta?.content ?? '';
assert.equal(shapedText, shaped.choices[0].message.content);
assert.ok(validPerson(JSON.parse(shapedText)));
// On /v1/completions too (vLLM's guided_choice).
const chosen = await client.completions.create({ model, prompt: 'pick', max_tokens: 20, guided_choice: ['red', 'green', 'blue'] });
assert.ok(['red', 'green', 'blue'].includes(chosen.choices[0].text), chosen.choices[0].text);
// An unsupported schema keyword is a 400 naming it, raised by the SDK as BadRequestError.
await assert.rejects(
  client.chat.completions.create({ model, messages, response_format: { type: 'json_schema', json_schema: {
    name: 'x', schema: { type: 'object', properties: { t: { type: 'array', uniqueItems: true } } } } } }),
  (e) => e instanceof OpenAI.BadRequestError && e.status === 400 && /uniqueItems/.test(e.message) &&
         e.param === 'response_format');

// Tools: a forced call (tool_choice required, or a named function), streamed and not. The
// streamed deltas, accumulated as the SDK's users do, give the same calls.
const tools = [
  { type: 'function', function: { name: 'get_weather', description: 'The weather in a city', parameters: {
    type: 'object', properties: { city: { type: 'string', maxLength: 10 }, unit: { enum: ['c', 'f'] } },
    required: ['city', 'unit'], additionalProperties: false } } },
  { type: 'function', function: { name: 'add', parameters: {
    type: 'object', properties: { a: { type: 'integer', minimum: 0, maximum: 100 }, b: { type: 'integer', minimum: 0, maximum: 100 } },
    required: ['a', 'b'], additionalProperties: false } } },
];
const validArgs = Object.fromEntries(tools.map((t) => [t.function.name, ajv.compile(t.function.parameters)]));
async function collect(stream) {
  let content = null, finish = null;
  const calls = [];
  for await (const chunk of stream)
    for (const c of chunk.choices) {
      if (c.delta?.content) content = (content ?? '') + c.delta.content;
      for (const t of c.delta?.tool_calls ?? []) {
        if (!calls[t.index]) {
          assert.ok(t.id && t.type === 'function' && t.function.name, JSON.stringify(t));
          calls[t.index] = { id: t.id, type: t.type, function: { name: t.function.name, arguments: '' } };
        }
        calls[t.index].function.arguments += t.function?.arguments ?? '';
      }
      if (c.finish_reason) finish = c.finish_reason;
    }
  return { content, calls, finish };
}
for (const [toolChoice, reason] of [['required', 'tool_calls'], [{ type: 'function', function: { name: 'add' } }, 'stop']]) {
  const request = { model, messages: [{ role: 'user', content: 'What is 2 + 3?' }], tools, tool_choice: toolChoice,
                    parallel_tool_calls: false, max_tokens: 400, temperature: 0, seed: 11 };
  const whole = (await client.chat.completions.create(request)).choices[0];
  const label = JSON.stringify(toolChoice);
  assert.equal(whole.finish_reason, reason, label);
  assert.equal(whole.message.content, null, label);
  assert.ok(whole.message.tool_calls?.length >= 1, label);
  for (const call of whole.message.tool_calls) {
    assert.match(call.id, /^chatcmpl-tool-[0-9a-f]{32}$/);
    assert.equal(call.type, 'function');
    if (typeof toolChoice === 'object') assert.equal(call.function.name, 'add');
    const validate = validArgs[call.function.name];
    assert.ok(validate, `unknown tool ${call.function.name}`);
    assert.ok(validate(JSON.parse(call.function.arguments)), `${label}: ${call.function.arguments} ${JSON.stringify(validate.errors)}`);
  }
  const streamed = await collect(await client.chat.completions.create({ ...request, stream: true }));
  assert.equal(streamed.finish, reason, label);
  assert.equal(streamed.content, null, label);
  assert.deepEqual(streamed.calls, whole.message.tool_calls.map(({ id, type, function: f }) =>
    ({ id, type, function: { name: f.name, arguments: f.arguments } })), label);
}
// A history with a tool call and its result is accepted (auto: the output is parsed for calls).
const followUp = await client.chat.completions.create({ model, tools, max_tokens: 8, temperature: 0, messages: [
  { role: 'user', content: 'weather?' },
  { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function',
    function: { name: 'get_weather', arguments: '{"city": "Paris", "unit": "c"}' } }] },
  { role: 'tool', tool_call_id: 'call_1', content: '18' }] });
assert.ok(['stop', 'length', 'tool_calls'].includes(followUp.choices[0].finish_reason));
await assert.rejects(client.chat.completions.create({ model, messages, tools, tool_choice: { type: 'function', function: { name: 'nope' } } }),
  (e) => e instanceof OpenAI.BadRequestError && e.param === 'tool_choice');
console.log('sdk: structured outputs and tool calls passed');

// 20 rounds of 64 concurrent streams over the SDK's keep-alive connections, no retries.
let failures = 0, completed = 0;
for (let round = 0; round < 20; ++round) {
  await Promise.all(Array.from({ length: 64 }, async (_, i) => {
    try {
      const s = await client.completions.create({
        model, prompt: [1 + (i % 50), 2, 3], max_tokens: 8, temperature: 0, stream: true });
      let text = 0;
      for await (const chunk of s) text += chunk.choices.length;
      if (text > 0) completed += 1;
    } catch (e) {
      failures += 1;
      console.error(`round ${round} stream ${i}: ${e.message} ${e.cause?.code ?? ''}`);
    }
  }));
}
console.log(`sdk: ${completed} of ${20 * 64} concurrent streams completed, ${failures} failed`);
assert.equal(failures, 0);
assert.equal(completed, 20 * 64);
console.log('openai sdk: all checks passed');
