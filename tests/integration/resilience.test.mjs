// Failures between the gateway and its backends: a backend that dies, backends that answer
// 500 or 429, a stream cut in the middle, and a client that goes away.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';

import {
  SseStream,
  chatBody,
  chatRequests,
  countBy,
  killAll,
  sendMany,
  startGateway,
  startSim,
  waitFor,
} from './helpers.mjs';

async function sendSequential(gateway, count, makeBody) {
  return sendMany(count, 1, (i) => gateway.chat(makeBody(i)));
}

function assertAllOk(results) {
  for (const result of results) assert.equal(result.status, 200, result.text);
}

const backendsOf = (results) => countBy(results.map((r) => r.headers.get('x-redline-backend')));

describe('resilience', () => {
  after(killAll);

  it('keeps serving through the other target when a backend is killed', async (t) => {
    const edge = await startSim(t, { name: 'edge' });
    const cloud = await startSim(t, { name: 'cloud' });
    const gateway = await startGateway(t, {
      backends: [
        { name: 'edge', sim: edge },
        { name: 'cloud', sim: cloud },
      ],
      aliases: [{ name: 'chat', strategy: 'least_load', targets: ['edge', 'cloud'] }],
    });
    assertAllOk(await sendSequential(gateway, 4, (i) => chatBody(`before ${i}`)));

    await edge.kill();
    // Right after the kill the gateway has not noticed yet: connection failures must be retried.
    const results = await sendSequential(gateway, 12, (i) => chatBody(`after ${i}`));
    assertAllOk(results);
    assert.deepEqual(backendsOf(results), { cloud: 12 });
  });

  it('falls back to the fallback alias when every target of an alias is down', async (t) => {
    const edge = await startSim(t, { name: 'edge' });
    const cloud = await startSim(t, { name: 'cloud' });
    const gateway = await startGateway(t, {
      backends: [
        { name: 'edge', sim: edge, tier: 'edge' },
        { name: 'cloud', sim: cloud, tier: 'cloud' },
      ],
      aliases: [
        { name: 'chat', targets: ['edge'], fallbacks: ['chat-cloud'] },
        { name: 'chat-cloud', targets: ['cloud'] },
      ],
    });
    const before = await sendSequential(gateway, 3, (i) => chatBody(`before ${i}`));
    assertAllOk(before);
    assert.deepEqual(backendsOf(before), { edge: 3 });

    await edge.kill();
    const results = await sendSequential(gateway, 8, (i) => chatBody(`after ${i}`));
    assertAllOk(results);
    assert.deepEqual(backendsOf(results), { cloud: 8 });
    assert.ok(chatRequests(await cloud.stats()) >= 8);
  });

  for (const [label, failures, statusKey] of [
    ['500', { error_5xx: 1.0 }, '500'],
    ['429', { rate_limit_429: 1.0, retry_after_s: 1 }, '429'],
  ]) {
    it(`retries a ${label} from one backend on a healthy one`, async (t) => {
      const failing = await startSim(t, { name: 'failing', failures });
      const healthy = await startSim(t, { name: 'healthy' });
      // The failing backend is the cheap one, so the cost strategy tries it first.
      const gateway = await startGateway(t, {
        backends: [
          { name: 'failing', sim: failing, price_input_per_mtok: 0.1, price_output_per_mtok: 0.1 },
          { name: 'healthy', sim: healthy, price_input_per_mtok: 9, price_output_per_mtok: 9 },
        ],
        aliases: [
          { name: 'chat', strategy: 'cost', max_latency_ms: 5000, targets: ['failing', 'healthy'] },
        ],
      });
      const results = await sendSequential(gateway, 8, (i) => chatBody(`retry ${i}`));
      assertAllOk(results);
      assert.deepEqual(backendsOf(results), { healthy: 8 });
      const failingStats = await failing.stats();
      assert.ok(
        Number(failingStats.failures[statusKey]) >= 1,
        `the failing backend was never tried: ${JSON.stringify(failingStats)}`,
      );
    });
  }

  it('turns a stream cut by the backend into an SSE error event, without [DONE]', async (t) => {
    const flaky = await startSim(t, {
      name: 'flaky',
      model: { output_tokens: 40, tokens_per_second: 100 },
      failures: { disconnect_mid_stream: 1.0 },
    });
    const gateway = await startGateway(t, {
      backends: [{ name: 'flaky', sim: flaky }],
      aliases: [{ name: 'chat', targets: ['flaky'] }],
    });
    const stream = await SseStream.open(
      `${gateway.baseUrl}/chat/completions`,
      chatBody('cut me off', { stream: true }),
    );
    assert.equal(stream.status, 200);
    const payloads = await stream.rest(15000);
    assert.ok(!payloads.includes('[DONE]'), `a cut stream must not end in [DONE]:\n${stream.raw}`);
    const errors = payloads
      .filter((p) => p !== '[DONE]')
      .map((p) => JSON.parse(p))
      .filter((event) => event.error);
    assert.equal(errors.length, 1, `expected one error event:\n${stream.raw}`);
    assert.equal(typeof errors[0].error.message, 'string');
    assert.ok(errors[0].error.message.length > 0);
    assert.equal(payloads.at(-1), JSON.stringify(JSON.parse(payloads.at(-1))), 'last event is JSON');
    assert.ok(JSON.parse(payloads.at(-1)).error, 'the error is the last event');
  });

  it('cancels the upstream request when the client goes away mid-stream', async (t) => {
    const slow = await startSim(t, {
      name: 'slow',
      model: { output_tokens: 60, tokens_per_second: 5 },
    });
    const gateway = await startGateway(t, {
      backends: [{ name: 'slow', sim: slow }],
      aliases: [{ name: 'chat', targets: ['slow'] }],
    });
    const stream = await SseStream.open(
      `${gateway.baseUrl}/chat/completions`,
      chatBody('a long answer please', { stream: true }),
    );
    assert.equal(stream.status, 200);
    const first = await stream.next(5000);
    assert.ok(first && first !== '[DONE]', 'got a first chunk');
    assert.equal((await slow.stats()).in_flight, 1, 'the upstream request is in flight');

    stream.destroy();
    const stats = await waitFor(async () => {
      const s = await slow.stats();
      return s.cancelled >= 1 && s.in_flight === 0 ? s : null;
    }, 2500);
    assert.ok(stats, `upstream not cancelled within 2.5 s: ${JSON.stringify(await slow.stats())}`);
    assert.equal(stats.completed, 0, 'the upstream stream was not run to completion');
  });
});
