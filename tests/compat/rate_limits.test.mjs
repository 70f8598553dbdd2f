// Rate limits and budgets as the official OpenAI SDK sees them: the x-ratelimit-* headers on
// every answer, a typed RateLimitError with Retry-After on a 429, its retry logic waiting and
// then succeeding, and no retries where waiting cannot help (an exhausted budget).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import OpenAI from 'openai';

import { chatRequests, killAll, postJson, startGateway, startSim } from '../integration/helpers.mjs';

const ADMIN_TOKEN = 'compat-limits-admin-token-0123456789';
process.env.REDLINE_COMPAT_LIMITS_ADMIN_TOKEN = ADMIN_TOKEN;

describe('OpenAI SDK against Redline rate limits and budgets', () => {
  let gateway;
  let sim;
  let slow;

  async function createKey(tenant) {
    const { status, json, text } = await postJson(`${gateway.url}/admin/keys`, { tenant }, {
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    assert.equal(status, 201, text);
    return json.key;
  }

  function client(apiKey, maxRetries = 0) {
    return new OpenAI({ baseURL: gateway.baseUrl, apiKey, maxRetries, timeout: 20000 });
  }

  const ask = (openai, model = 'chat') =>
    openai.chat.completions.create({ model, messages: [{ role: 'user', content: 'hi' }], max_tokens: 8 });

  before(async () => {
    sim = await startSim(null, { name: 'limits-sim' });
    slow = await startSim(null, { name: 'slow-sim', model: { ttft_ms: { mean: 800, stddev: 0 } } });
    gateway = await startGateway(null, {
      auth: { required: true, admin_token_env: 'REDLINE_COMPAT_LIMITS_ADMIN_TOKEN' },
      backends: [
        { name: 'fast', sim, price_input_per_mtok: 1000, price_output_per_mtok: 1000 },
        { name: 'slow', sim: slow },
      ],
      aliases: [
        { name: 'chat', targets: ['fast'] },
        { name: 'slow', targets: ['slow'] },
      ],
      limits: [
        { tenant: 'rpm', each_key: true, requests_per_minute: 60, tokens_per_minute: 100000 },
        { tenant: 'serial', max_concurrent: 1 },
      ],
      budgets: [{ tenant: 'frugal', period: 'total', max_cost_usd: 0.5 }],
    });
  });
  after(killAll);

  it('sends x-ratelimit headers, a typed 429 with Retry-After, and lets the SDK retry through', async () => {
    const key = await createKey('rpm');
    const openai = client(key);
    const first = await ask(openai).withResponse();
    assert.equal(first.response.headers.get('x-ratelimit-limit-requests'), '60');
    assert.equal(first.response.headers.get('x-ratelimit-remaining-requests'), '59');
    assert.equal(first.response.headers.get('x-ratelimit-limit-tokens'), '100000');
    assert.match(first.response.headers.get('x-ratelimit-reset-requests'), /^\d+(\.\d+)?(ms|s)$/);
    // 60 a minute, refilled continuously: the minute's allowance passes, and a machine slow enough
    // to take more than a second over it earns a token or two more before the 429.
    let answered = 1;
    let refused;
    while (!refused && answered < 120) {
      try {
        await ask(openai);
        ++answered;
      } catch (error) {
        refused = error;
      }
    }
    assert.ok(answered >= 60 && answered < 120, `${answered} requests answered before a 429`);
    assert.ok(refused instanceof OpenAI.RateLimitError, String(refused));
    assert.equal(refused.status, 429);
    assert.equal(refused.code, 'rate_limit_exceeded');
    const header = (name) => refused.headers.get(name);
    assert.equal(header('x-ratelimit-remaining-requests'), '0');
    assert.equal(header('retry-after'), '1');
    const waitMs = Number(header('retry-after-ms'));
    assert.ok(waitMs > 0 && waitMs <= 1000, `retry-after-ms ${waitMs}`);

    // The SDK honours retry-after-ms and gets through once the bucket has refilled.
    const patient = client(key, 2);
    const started = Date.now();
    const answer = await ask(patient);
    assert.equal(answer.object, 'chat.completion');
    assert.ok(Date.now() - started >= waitMs * 0.5, `retried after ${Date.now() - started} ms`);

    // Another key of the same tenant has its own allowance.
    const other = await ask(client(await createKey('rpm')));
    assert.equal(other.object, 'chat.completion');
  });

  it('refuses a second concurrent request of a tenant limited to one', async () => {
    const openai = client(await createKey('serial'));
    const results = await Promise.allSettled([ask(openai, 'slow'), ask(openai, 'slow')]);
    const refused = results.filter((r) => r.status === 'rejected');
    assert.equal(refused.length, 1, JSON.stringify(results.map((r) => r.status)));
    assert.ok(refused[0].reason instanceof OpenAI.RateLimitError);
    assert.match(refused[0].reason.message, /concurren/i);
    assert.equal((await ask(openai, 'slow')).object, 'chat.completion');
  });

  it('stops at an exhausted budget without SDK retries, and never reaches the upstream', async () => {
    const openai = client(await createKey('frugal'), 3);
    const servedBefore = chatRequests(await sim.stats());
    let answered = 0;
    let refusal;
    for (let i = 0; i < 100 && !refusal; ++i) {
      try {
        await ask(openai);
        ++answered;
      } catch (error) {
        refusal = error;
      }
    }
    assert.ok(refusal instanceof OpenAI.RateLimitError, String(refusal));
    assert.equal(refusal.code, 'budget_exceeded');
    assert.match(refusal.message, /tenant:frugal/);
    assert.ok(answered > 0);
    const started = Date.now();
    await assert.rejects(ask(openai), OpenAI.RateLimitError);
    assert.ok(Date.now() - started < 500, 'the SDK did not wait to retry');
    assert.equal(chatRequests(await sim.stats()) - servedBefore, answered);
  });
});
