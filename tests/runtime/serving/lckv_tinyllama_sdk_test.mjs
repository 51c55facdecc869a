// The official `openai` npm SDK chatting with a TinyLlama-shaped LCKV model served under
// mpirun (usage: node lckv_tinyllama_sdk_test.mjs NPM_DIR BASE_URL OUT_JSON): a greedy chat
// whole and streamed must agree, the stream must end with a finish reason, and the answer's token
// ids go to OUT_JSON for the wrapper to compare with a single-rank `strata generate`.
import { createRequire } from 'node:module';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';

const [npmDir, baseURL, outPath] = process.argv.slice(2);
const require = createRequire(npmDir + '/package.json');
const OpenAI = require('openai').default ?? require('openai');
const client = new OpenAI({ baseURL: baseURL + '/v1', apiKey: 'unused', maxRetries: 0, timeout: 600000 });
const model = 'model';
// Short: LCKV prefills a prompt in m + b = 9 passes over most of a 1.1B model, on 2 cores.
const messages = [{ role: 'user', content: 'Hello!' }];
const request = { model, messages, max_tokens: 4, temperature: 0, ignore_eos: true, return_token_ids: true };

const whole = await client.chat.completions.create(request);
assert.equal(whole.choices.length, 1);
assert.equal(whole.choices[0].finish_reason, 'length');
assert.equal(whole.usage.completion_tokens, 4);
const ids = whole.choices[0].token_ids;
assert.equal(ids.length, 4);

let text = '';
let finish = null;
const stream = await client.chat.completions.create({ ...request, stream: true });
for await (const chunk of stream) {
  for (const c of chunk.choices) {
    text += c.delta?.content ?? '';
    if (c.finish_reason) finish = c.finish_reason;
  }
}
assert.equal(text, whole.choices[0].message.content);
assert.equal(finish, 'length');
// The prompt's ids as the server tokenized them (vLLM's /tokenize with the same messages).
const tokenized = await (await fetch(baseURL + '/tokenize', {
  method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ model, messages }),
})).json();
assert.equal(tokenized.count, whole.usage.prompt_tokens);
writeFileSync(outPath, JSON.stringify({ ids, text, prompt: tokenized.tokens }));
console.log(`chat answered ${JSON.stringify(text)} (${ids}), prompt ${whole.usage.prompt_tokens} tokens`);
