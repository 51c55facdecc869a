// The official `openai` npm SDK against `strata serve` (usage: node openai_sdk_test.mjs NPM_DIR
// BASE_URL): n, top_logprobs, penalties, logit_bias, streaming and non-streaming, /tokenize round
// trips, then 20 rounds of 64 concurrent streams on keep-alive connections with maxRetries 0:
// every one must complete (no connection error); the wrapper checks the kernel's reset count.
import { createRequire } from 'node:module';
import assert from 'node:assert/strict';

const [npmDir, baseURL] = process.argv.slice(2);
const require = createRequire(npmDir + '/package.json');
const OpenAI = require('openai').default ?? require('openai');
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
