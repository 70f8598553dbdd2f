// Routing strategies, observed from outside: which backend the gateway names in
// x-redline-backend, cross-checked against what each simulator says it served.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';

import {
  chatBody,
  chatRequests,
  countBy,
  killAll,
  sendMany,
  startGateway,
  startSim,
} from './helpers.mjs';

async function sendAndCount(gateway, count, concurrency, makeBody) {
  const results = await sendMany(count, concurrency, (i) => gateway.chat(makeBody(i)));
  for (const result of results) assert.equal(result.status, 200, result.text);
  return countBy(results.map((r) => r.headers.get('x-redline-backend')));
}

function twoSimGateway(t, strategy, first, second, extra = {}) {
  return startGateway(t, {
    routing: extra.routing,
    backends: [
      { name: 'a', sim: first, ...(extra.a ?? {}) },
      { name: 'b', sim: second, ...(extra.b ?? {}) },
    ],
    aliases: [{ name: 'chat', strategy, targets: ['a', 'b'], ...(extra.alias ?? {}) }],
  });
}

describe('routing strategies', () => {
  after(killAll);

  it('least_load spreads concurrent requests over two equal backends', async (t) => {
    const a = await startSim(t, { name: 'a', model: { ttft_ms: { mean: 40, stddev: 0 } } });
    const b = await startSim(t, { name: 'b', model: { ttft_ms: { mean: 40, stddev: 0 } } });
    const gateway = await twoSimGateway(t, 'least_load', a, b);
    const counts = await sendAndCount(gateway, 48, 8, (i) => chatBody(`least load ${i}`));
    assert.equal((counts.a ?? 0) + (counts.b ?? 0), 48, JSON.stringify(counts));
    assert.ok(counts.a >= 14 && counts.b >= 14, `uneven split: ${JSON.stringify(counts)}`);
    // The simulators agree with the header.
    assert.equal(chatRequests(await a.stats()), counts.a);
    assert.equal(chatRequests(await b.stats()), counts.b);
  });

  it('weighted sends about three times as much to a weight-3 backend', async (t) => {
    const a = await startSim(t, { name: 'a' });
    const b = await startSim(t, { name: 'b' });
    const gateway = await twoSimGateway(t, 'weighted', a, b, { a: { weight: 3 }, b: { weight: 1 } });
    const counts = await sendAndCount(gateway, 200, 4, (i) => chatBody(`weighted ${i}`));
    const share = (counts.a ?? 0) / 200;
    assert.ok(share >= 0.62 && share <= 0.88, `weight-3 share ${share}: ${JSON.stringify(counts)}`);
    assert.equal(chatRequests(await a.stats()), counts.a);
  });

  it('prefix_affinity keeps one prompt prefix on one backend and spreads different ones', async (t) => {
    const a = await startSim(t, { name: 'a' });
    const b = await startSim(t, { name: 'b' });
    const gateway = await twoSimGateway(t, 'prefix_affinity', a, b, {
      routing: { prefix_affinity_bytes: 256 },
    });
    const withPrefix = (prefix, question) => ({
      model: 'chat',
      messages: [
        { role: 'system', content: `${prefix} `.repeat(40) },
        { role: 'user', content: question },
      ],
    });

    const shared = await sendAndCount(gateway, 12, 3, (i) => withPrefix('You are a tax advisor.', `question ${i}`));
    assert.equal(Object.keys(shared).length, 1, `one prefix went to several backends: ${JSON.stringify(shared)}`);

    const distinct = await sendAndCount(gateway, 40, 4, (i) =>
      withPrefix(`Persona number ${i * 7919} with its own instructions.`, 'hello'),
    );
    assert.ok(
      (distinct.a ?? 0) >= 6 && (distinct.b ?? 0) >= 6,
      `40 different prefixes were not spread: ${JSON.stringify(distinct)}`,
    );

    // Affinity is stable: the first prefix still lands where it did.
    const again = await sendAndCount(gateway, 4, 1, (i) => withPrefix('You are a tax advisor.', `later ${i}`));
    assert.deepEqual(Object.keys(again), Object.keys(shared));
  });

  it('latency prefers a fast backend over a slow one after warm-up', async (t) => {
    const fast = await startSim(t, { name: 'fast', model: { ttft_ms: { mean: 5, stddev: 0 } } });
    const slow = await startSim(t, { name: 'slow', model: { ttft_ms: { mean: 150, stddev: 0 } } });
    const gateway = await startGateway(t, {
      backends: [
        { name: 'slow', sim: slow },
        { name: 'fast', sim: fast },
      ],
      aliases: [{ name: 'chat', strategy: 'latency', targets: ['slow', 'fast'] }],
    });
    await sendAndCount(gateway, 20, 2, (i) => chatBody(`warm-up ${i}`));
    const counts = await sendAndCount(gateway, 40, 2, (i) => chatBody(`measured ${i}`));
    assert.ok((counts.fast ?? 0) >= 30, `fast backend got too little: ${JSON.stringify(counts)}`);
  });

  it('cost sends traffic to the cheaper backend', async (t) => {
    const cheap = await startSim(t, { name: 'cheap' });
    const pricey = await startSim(t, { name: 'pricey' });
    const gateway = await startGateway(t, {
      backends: [
        { name: 'pricey', sim: pricey, price_input_per_mtok: 5, price_output_per_mtok: 15 },
        { name: 'cheap', sim: cheap, price_input_per_mtok: 0.15, price_output_per_mtok: 0.6 },
      ],
      aliases: [
        { name: 'chat', strategy: 'cost', max_latency_ms: 2000, targets: ['pricey', 'cheap'] },
      ],
    });
    const counts = await sendAndCount(gateway, 24, 3, (i) => chatBody(`cost ${i}`));
    assert.ok((counts.cheap ?? 0) >= 22, `cheap backend got too little: ${JSON.stringify(counts)}`);
    assert.equal(chatRequests(await cheap.stats()), counts.cheap);
  });
});
