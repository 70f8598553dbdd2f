// Stateful sessions end to end: the Responses and Conversations APIs and agent memory against a
// real gateway in front of real simulators. What a backend received is read from the backend
// itself (/sim/requests); what is stored is read back through the API, across a restart too.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';

import {
  callGateway,
  killAll,
  mintKey,
  postJson,
  sleep,
  startGateway,
  startSim,
  waitFor,
} from './helpers.mjs';

const ADMIN_TOKEN = 'admin-token-for-session-tests-0123456789';
process.env.REDLINE_SESSIONS_ADMIN_TOKEN = ADMIN_TOKEN;

const call = callGateway;
const createKey = (gateway, fields) => mintKey(gateway, ADMIN_TOKEN, fields);

async function respond(gateway, key, body) {
  const { status, json, text } = await call(gateway, 'POST', '/v1/responses', { key, body });
  assert.equal(status, 200, text);
  return json;
}

const outputText = (response) =>
  response.output
    .filter((item) => item.type === 'message')
    .flatMap((item) => item.content.map((part) => part.text ?? ''))
    .join('');

/** The chat messages each upstream request carried, oldest request first. */
async function upstreamMessages(sim) {
  const requests = await sim.requests();
  return requests.filter((r) => r.path.endsWith('/chat/completions')).map((r) => r.body.messages);
}

const text = (messages) => messages.map((m) => `${m.role}: ${typeof m.content === 'string' ? m.content : JSON.stringify(m.content)}`).join('\n');

describe('sessions: responses, conversations, memory', () => {
  let sims;
  let gateway;
  let config;
  let storeDir;
  let keyA;
  let keyB;
  let keyInternal;

  before(async () => {
    sims = {
      onprem: await startSim(null, { name: 'onprem', model: { output_tokens: 8 } }),
      cloud: await startSim(null, { name: 'cloud', model: { output_tokens: 8 } }),
      slow: await startSim(null, {
        name: 'slow',
        model: { output_tokens: 40, tokens_per_second: 40 },
      }),
    };
    storeDir = fs.mkdtempSync(path.join(os.tmpdir(), 'redline-sessions-'));
    config = {
      store: { sqlite_path: path.join(storeDir, 'redline.db') },
      auth: { required: true, admin_token_env: 'REDLINE_SESSIONS_ADMIN_TOKEN', key_cache_ttl_ms: 200 },
      sessions: { purge_interval_ms: 200 },
      tenants: [{ name: 'short-lived', retention_ms: 1500 }],
      rules: [
        { name: 'mask-email-for-cloud', action: 'redact', detectors: ['email'], redact: ['email'], backend_tiers: ['cloud'] },
      ],
      backends: [
        { name: 'onprem', sim: sims.onprem, tier: 'onprem', jurisdiction: 'DE', clearance: 'SECRET//PII' },
        { name: 'cloud', sim: sims.cloud, tier: 'cloud', jurisdiction: 'IE', clearance: 'INTERNAL//PII' },
        { name: 'slow', sim: sims.slow, tier: 'onprem', clearance: 'SECRET//PII' },
      ],
      aliases: [
        { name: 'chat', strategy: 'least_load', targets: ['onprem', 'cloud'] },
        { name: 'chat-onprem', targets: ['onprem'] },
        { name: 'chat-cloud', targets: ['cloud'] },
        { name: 'chat-slow', targets: ['slow'] },
      ],
    };
    gateway = await startGateway(null, config);
    keyA = await createKey(gateway, { tenant: 'alpha', max_label: 'SECRET//PII' });
    keyB = await createKey(gateway, { tenant: 'beta', max_label: 'SECRET//PII' });
    keyInternal = await createKey(gateway, { tenant: 'alpha', max_label: 'INTERNAL//PII' });
  });
  after(async () => {
    await killAll();
    fs.rmSync(storeDir, { recursive: true, force: true });
  });

  it('continues a previous_response_id chain, with only the latest instructions', async () => {
    await sims.onprem.reset();
    const first = await respond(gateway, keyA, {
      model: 'chat-onprem',
      instructions: 'first instructions',
      input: 'echo: remember the number 4711',
    });
    assert.equal(first.status, 'completed');
    assert.equal(outputText(first), 'remember the number 4711');
    const second = await respond(gateway, keyA, {
      model: 'chat-onprem',
      instructions: 'second instructions',
      input: 'echo: what was it?',
      previous_response_id: first.id,
    });
    assert.equal(second.previous_response_id, first.id);
    const [, upstream] = await upstreamMessages(sims.onprem);
    assert.deepEqual(
      upstream.map((m) => [m.role, m.content]),
      [
        ['system', 'second instructions'],
        ['user', 'echo: remember the number 4711'],
        ['assistant', 'remember the number 4711'],
        ['user', 'echo: what was it?'],
      ],
    );
  });

  it('keeps stored objects to their tenant: another tenant gets 404, never the object', async () => {
    const response = await respond(gateway, keyA, { model: 'chat-onprem', input: 'alpha secret plans' });
    const conversation = (await call(gateway, 'POST', '/v1/conversations', { key: keyA, body: { items: [{ role: 'user', content: 'alpha item' }] } })).json;
    const record = (await call(gateway, 'POST', '/v1/memory/records', { key: keyA, body: { user: 'u1', text: 'alpha fact about turbines' } })).json;
    const block = (await call(gateway, 'POST', '/v1/memory/blocks', { key: keyA, body: { user: 'u1', name: 'persona', value: 'alpha persona' } })).json;

    const probes = [
      ['GET', `/v1/responses/${response.id}`],
      ['GET', `/v1/responses/${response.id}/input_items`],
      ['POST', `/v1/responses/${response.id}/cancel`],
      ['DELETE', `/v1/responses/${response.id}`],
      ['GET', `/v1/conversations/${conversation.id}`],
      ['GET', `/v1/conversations/${conversation.id}/items`],
      ['POST', `/v1/conversations/${conversation.id}/items`, { items: [{ role: 'user', content: 'x' }] }],
      ['DELETE', `/v1/conversations/${conversation.id}`],
      ['GET', `/v1/memory/records/${record.id}`],
      ['DELETE', `/v1/memory/records/${record.id}`],
      ['GET', `/v1/memory/blocks/${block.id}`],
      ['POST', `/v1/memory/blocks/${block.id}`, { value: 'overwritten' }],
    ];
    for (const [method, path, body] of probes) {
      const answer = await call(gateway, method, path, { key: keyB, body });
      assert.equal(answer.status, 404, `${method} ${path} as another tenant: ${answer.text}`);
      assert.ok(!answer.text.includes('alpha'), `${method} ${path} leaked: ${answer.text}`);
    }
    // Beta cannot continue alpha's chain or turn alpha's conversation either.
    for (const body of [
      { model: 'chat-onprem', input: 'x', previous_response_id: response.id },
      { model: 'chat-onprem', input: 'x', conversation: conversation.id },
    ]) {
      const answer = await call(gateway, 'POST', '/v1/responses', { key: keyB, body });
      assert.equal(answer.status, 404, answer.text);
    }
    const search = await call(gateway, 'GET', '/v1/memory/records?user=u1&query=turbines', { key: keyB });
    assert.deepEqual(search.json.data, []);
    const blocks = await call(gateway, 'GET', '/v1/memory/blocks?user=u1', { key: keyB });
    assert.deepEqual(blocks.json.data, []);
    // ...and everything is still there for alpha.
    assert.equal((await call(gateway, 'GET', `/v1/responses/${response.id}`, { key: keyA })).status, 200);
    assert.equal((await call(gateway, 'GET', `/v1/conversations/${conversation.id}/items`, { key: keyA })).json.data.length, 1);
    assert.equal((await call(gateway, 'GET', `/v1/memory/records/${record.id}`, { key: keyA })).json.text, 'alpha fact about turbines');
    assert.equal((await call(gateway, 'GET', `/v1/memory/blocks/${block.id}`, { key: keyA })).json.value, 'alpha persona');
  });

  it('queues concurrent turns on one conversation in order: no fork, no lost turn', async () => {
    const conversation = (await call(gateway, 'POST', '/v1/conversations', { key: keyA, body: {} })).json;
    await sims.slow.reset();
    const turns = 8;
    // Sent together; each waits for the one before it. The slow backend makes a fork likely if
    // turns were not serialised.
    const answers = await Promise.all(
      Array.from({ length: turns }, (_, i) =>
        sleep(i * 15).then(() =>
          call(gateway, 'POST', '/v1/responses', {
            key: keyA,
            body: { model: 'chat-slow', input: `echo: turn ${i}`, conversation: conversation.id },
          }),
        ),
      ),
    );
    for (const answer of answers) assert.equal(answer.status, 200, answer.text);
    const items = (await call(gateway, 'GET', `/v1/conversations/${conversation.id}/items?order=asc&limit=100`, { key: keyA })).json.data;
    assert.equal(items.length, turns * 2);
    // Each user item is directly followed by its own answer, in arrival order.
    for (let i = 0; i < turns; ++i) {
      assert.equal(items[2 * i].role, 'user');
      assert.equal(items[2 * i].content[0].text, `echo: turn ${i}`);
      assert.equal(items[2 * i + 1].role, 'assistant');
      assert.equal(items[2 * i + 1].content[0].text, `turn ${i}`);
    }
    // Upstream, turn k saw exactly the k turns before it: the history grew by one turn each time.
    const upstream = await upstreamMessages(sims.slow);
    assert.equal(upstream.length, turns);
    upstream.forEach((messages, k) => {
      assert.equal(messages.length, 2 * k + 1, text(messages));
      assert.equal(messages.at(-1).content, `echo: turn ${k}`);
    });
  });

  it('store: false leaves nothing behind', async () => {
    const marker = `unstored-marker-${Date.now()}`;
    const response = await respond(gateway, keyA, { model: 'chat-onprem', input: `echo: ${marker}`, store: false });
    assert.equal(outputText(response), marker);
    assert.equal(response.store, false);
    assert.equal((await call(gateway, 'GET', `/v1/responses/${response.id}`, { key: keyA })).status, 404);
    const chained = await call(gateway, 'POST', '/v1/responses', {
      key: keyA,
      body: { model: 'chat-onprem', input: 'x', previous_response_id: response.id },
    });
    assert.equal(chained.status, 404);
    // Not in the database file, its write-ahead log, or anywhere else the store keeps bytes.
    const files = fs.readdirSync(storeDir);
    assert.ok(files.includes('redline.db'), files.join(', '));
    for (const file of files) {
      const bytes = fs.readFileSync(path.join(storeDir, file));
      assert.ok(!bytes.includes(marker), `${file} holds the prompt of a store: false response`);
    }
  });

  it('purges idle responses and conversations after their tenant\'s retention', async () => {
    const shortKey = await createKey(gateway, { tenant: 'short-lived' });
    const shortResponse = await respond(gateway, shortKey, { model: 'chat-onprem', input: 'soon gone' });
    const shortConversation = (await call(gateway, 'POST', '/v1/conversations', { key: shortKey, body: {} })).json;
    const keptResponse = await respond(gateway, keyA, { model: 'chat-onprem', input: 'kept' });
    assert.equal((await call(gateway, 'GET', `/v1/responses/${shortResponse.id}`, { key: shortKey })).status, 200);
    const gone = await waitFor(
      async () =>
        (await call(gateway, 'GET', `/v1/responses/${shortResponse.id}`, { key: shortKey })).status === 404 &&
        (await call(gateway, 'GET', `/v1/conversations/${shortConversation.id}`, { key: shortKey })).status === 404,
      6000,
      200,
    );
    assert.ok(gone, 'the short-lived tenant\'s objects outlived their retention');
    assert.equal((await call(gateway, 'GET', `/v1/responses/${keptResponse.id}`, { key: keyA })).status, 200);
  });

  it('supersedes a record by subject and keeps the old one auditable', async () => {
    const first = (await call(gateway, 'POST', '/v1/memory/records', {
      key: keyA,
      body: { user: 'u2', subject: 'user.city', text: 'The user lives in Berlin.' },
    })).json;
    await sleep(1100);  // validity is in whole seconds
    const second = (await call(gateway, 'POST', '/v1/memory/records', {
      key: keyA,
      body: { user: 'u2', subject: 'user.city', text: 'The user moved to Paris.' },
    })).json;
    assert.deepEqual(second.superseded_ids, [first.id]);
    const old = (await call(gateway, 'GET', `/v1/memory/records/${first.id}`, { key: keyA })).json;
    assert.equal(old.superseded_by, second.id);
    assert.equal(old.valid_until, second.valid_from);

    const current = (await call(gateway, 'GET', '/v1/memory/records?user=u2&query=user+lives+moved', { key: keyA })).json.data;
    assert.deepEqual(current.map((r) => r.id), [second.id]);
    const then = (await call(gateway, 'GET', `/v1/memory/records?user=u2&as_of=${first.valid_from}`, { key: keyA })).json.data;
    assert.deepEqual(then.map((r) => r.id), [first.id]);
    const history = (await call(gateway, 'GET', '/v1/memory/records?user=u2&include_superseded=true', { key: keyA })).json.data;
    assert.deepEqual(history.map((r) => r.id).sort(), [first.id, second.id].sort());

    // The same fact again is not a second record; an explicit update supersedes too.
    const again = (await call(gateway, 'POST', '/v1/memory/records', {
      key: keyA,
      body: { user: 'u2', subject: 'user.city', text: '  the user MOVED to paris. ' },
    })).json;
    assert.equal(again.duplicate, true);
    assert.equal(again.id, second.id);
    const updated = (await call(gateway, 'POST', `/v1/memory/records/${second.id}`, {
      key: keyA,
      body: { text: 'The user moved to Lyon.' },
    })).json;
    assert.deepEqual(updated.superseded_ids, [second.id]);
    assert.equal(updated.subject, 'user.city');
  });

  it('injects memory only where the route is cleared for its label', async () => {
    const user = `u-label-${Date.now()}`;
    const secret = (await call(gateway, 'POST', '/v1/memory/records', {
      key: keyA,
      body: { user, text: 'Project Falcon launches in May.', label: 'SECRET' },
    })).json;
    assert.equal(secret.label, 'SECRET');
    const open = (await call(gateway, 'POST', '/v1/memory/records', {
      key: keyA,
      body: { user, text: 'Project Falcon has a public website.' },
    })).json;
    await call(gateway, 'POST', '/v1/memory/blocks', { key: keyA, body: { user, name: 'persona', value: 'Answer briefly.' } });
    const memory = { user, search: 'When does Project Falcon launch?', top_k: 5 };

    // "chat" reaches onprem (SECRET) and cloud (INTERNAL): the turn is raised to SECRET and goes
    // to onprem only, every time.
    await sims.onprem.reset();
    await sims.cloud.reset();
    for (let i = 0; i < 6; ++i) {
      const answer = await call(gateway, 'POST', '/v1/responses', {
        key: keyA,
        body: { model: 'chat', input: `Falcon question ${i}`, store: false, redline: { memory } },
      });
      assert.equal(answer.status, 200, answer.text);
      assert.equal(answer.headers.get('x-redline-backend'), 'onprem');
      assert.equal(answer.headers.get('x-redline-label'), 'SECRET');
    }
    const onprem = (await upstreamMessages(sims.onprem)).map(text);
    assert.equal(onprem.length, 6);
    for (const seen of onprem) {
      assert.match(seen, /Project Falcon launches in May/);
      assert.match(seen, /\[persona\] Answer briefly\./);
    }
    assert.equal((await upstreamMessages(sims.cloud)).length, 0);

    // "chat-cloud" reaches only the INTERNAL backend: the SECRET record stays out, the rest goes in.
    const cloudAnswer = await call(gateway, 'POST', '/v1/responses', {
      key: keyA,
      body: { model: 'chat-cloud', input: 'Falcon?', store: false, redline: { memory } },
    });
    assert.equal(cloudAnswer.status, 200, cloudAnswer.text);
    const [cloudSeen] = (await upstreamMessages(sims.cloud)).map(text);
    assert.doesNotMatch(cloudSeen, /launches in May/);
    assert.match(cloudSeen, /public website/);

    // A key cleared to INTERNAL never gets it either, and cannot read it.
    await sims.onprem.reset();
    const internal = await call(gateway, 'POST', '/v1/responses', {
      key: keyInternal,
      body: { model: 'chat-onprem', input: 'Falcon?', store: false, redline: { memory } },
    });
    assert.equal(internal.status, 200, internal.text);
    assert.doesNotMatch(text((await upstreamMessages(sims.onprem))[0]), /launches in May/);
    assert.equal((await call(gateway, 'GET', `/v1/memory/records/${secret.id}`, { key: keyInternal })).status, 404);
    assert.equal((await call(gateway, 'GET', `/v1/memory/records/${open.id}`, { key: keyInternal })).status, 200);
    // ...nor write above its clearance.
    const above = await call(gateway, 'POST', '/v1/memory/records', {
      key: keyInternal,
      body: { user, text: 'x', label: 'SECRET' },
    });
    assert.equal(above.status, 403);
    assert.equal(above.json.error.code, 'label_above_key_clearance');
  });

  it('keeps redaction placeholders stable across the turns of a conversation', async () => {
    const conversation = (await call(gateway, 'POST', '/v1/conversations', { key: keyA, body: {} })).json;
    await sims.cloud.reset();
    const first = await respond(gateway, keyA, {
      model: 'chat-cloud',
      input: 'echo: write to ann@example.org please',
      conversation: conversation.id,
    });
    // The user gets the real address back; the cloud backend only ever saw a placeholder.
    assert.equal(outputText(first), 'write to ann@example.org please');
    // A new address arrives first in the next turn (in the instructions, which precede the
    // history): it must not take over the first address's placeholder.
    const second = await respond(gateway, keyA, {
      model: 'chat-cloud',
      instructions: 'CC bob@example.org on everything',
      input: 'echo: and ann@example.org again',
      conversation: conversation.id,
    });
    assert.equal(outputText(second), 'and ann@example.org again');
    const [turn1, turn2] = (await upstreamMessages(sims.cloud)).map(text);
    for (const seen of [turn1, turn2]) assert.doesNotMatch(seen, /@example\.org/);
    assert.match(turn1, /write to \[REDACTED_EMAIL_1\] please/);
    assert.match(turn2, /CC \[REDACTED_EMAIL_2\] on everything/);
    assert.match(turn2, /user: echo: write to \[REDACTED_EMAIL_1\] please/);
    assert.match(turn2, /and \[REDACTED_EMAIL_1\] again/);
  });

  it('runs background responses, polls them, and cancels them', async () => {
    const queued = await respond(gateway, keyA, { model: 'chat-slow', input: 'echo: in the background', background: true });
    assert.ok(['queued', 'in_progress'].includes(queued.status), queued.status);
    assert.equal(queued.background, true);
    const done = await waitFor(async () => {
      const { json } = await call(gateway, 'GET', `/v1/responses/${queued.id}`, { key: keyA });
      return json.status === 'completed' ? json : null;
    }, 10000, 100);
    assert.ok(done, 'the background response never completed');
    assert.equal(outputText(done), 'in the background');

    const slow = await respond(gateway, keyA, { model: 'chat-slow', input: 'a long answer', background: true });
    await sleep(200);
    const cancelled = await call(gateway, 'POST', `/v1/responses/${slow.id}/cancel`, { key: keyA });
    assert.equal(cancelled.status, 200, cancelled.text);
    assert.equal(cancelled.json.status, 'cancelled');
    await sleep(300);
    assert.equal((await call(gateway, 'GET', `/v1/responses/${slow.id}`, { key: keyA })).json.status, 'cancelled');

    const foreground = await respond(gateway, keyA, { model: 'chat-onprem', input: 'x' });
    const refused = await call(gateway, 'POST', `/v1/responses/${foreground.id}/cancel`, { key: keyA });
    assert.equal(refused.status, 400);
  });

  it('answers malformed and conflicting requests with OpenAI-style 4xx errors', async () => {
    const cases = [
      [{ model: 'chat', input: 42 }, 400, 'input'],
      [{ input: 'x' }, 400, 'model'],
      [{ model: 'chat', input: 'x', previous_response_id: 'resp_x', conversation: 'conv_y' }, 400, null],
      [{ model: 'chat', input: 'x', background: true, store: false }, 400, null],
      [{ model: 'chat', input: 'x', conversation: 'conv_y', store: false }, 400, 'store'],
      [{ model: 'chat', input: 'x', tools: [{ type: 'web_search' }] }, 400, null],
      [{ model: 'no-such-model', input: 'x' }, 404, 'model'],
      [{ model: 'chat', input: 'x', conversation: 'conv_missing' }, 404, null],
      [{ model: 'chat', input: 'x', redline: { memory: { top_k: 'many' } } }, 400, 'redline.memory.top_k'],
    ];
    for (const [body, status, param] of cases) {
      const answer = await call(gateway, 'POST', '/v1/responses', { key: keyA, body });
      assert.equal(answer.status, status, `${JSON.stringify(body)}: ${answer.text}`);
      assert.equal(typeof answer.json.error.message, 'string');
      if (param) assert.equal(answer.json.error.param, param);
    }
    const notJson = await fetch(`${gateway.url}/v1/responses`, {
      method: 'POST',
      headers: { authorization: `Bearer ${keyA}`, 'content-type': 'application/json' },
      body: '{"model": "chat", "input": ',
    });
    assert.equal(notJson.status, 400);
    assert.equal((await call(gateway, 'POST', '/v1/responses', { body: { model: 'chat', input: 'x' } })).status, 401);
    // A key may not store items it could not send.
    const above = await call(gateway, 'POST', '/v1/conversations', {
      key: keyInternal,
      body: { items: [{ role: 'user', content: 'SECRET//NOFORN briefing follows' }] },
    });
    assert.equal(above.status, 403, above.text);
    assert.equal(above.json.error.code, 'label_above_key_clearance');
    assert.equal(
      (await call(gateway, 'POST', '/v1/responses', { key: keyA, body: { model: 'chat', input: [] } })).json.error.param,
      'input',
    );
    // A client cannot resend an item the conversation already holds.
    const conversation = (await call(gateway, 'POST', '/v1/conversations', {
      key: keyA,
      body: { items: [{ id: 'msg_fixed', type: 'message', role: 'user', content: 'hi' }] },
    })).json;
    const duplicate = await call(gateway, 'POST', '/v1/responses', {
      key: keyA,
      body: { model: 'chat', conversation: conversation.id, input: [{ id: 'msg_fixed', type: 'message', role: 'user', content: 'hi' }] },
    });
    assert.equal(duplicate.status, 400, duplicate.text);
  });

  it('keeps responses, conversations and memory across a restart', async () => {
    const response = await respond(gateway, keyA, { model: 'chat-onprem', input: 'echo: before the restart' });
    const conversation = (await call(gateway, 'POST', '/v1/conversations', { key: keyA, body: { metadata: { topic: 'restart' } } })).json;
    await respond(gateway, keyA, { model: 'chat-onprem', input: 'echo: first turn', conversation: conversation.id });
    const record = (await call(gateway, 'POST', '/v1/memory/records', { key: keyA, body: { user: 'u3', text: 'Survives restarts.' } })).json;
    const block = (await call(gateway, 'POST', '/v1/memory/blocks', { key: keyA, body: { user: 'u3', name: 'notes', value: 'still here' } })).json;
    const interrupted = await respond(gateway, keyA, { model: 'chat-slow', input: 'never finishes', background: true });

    gateway.proc.signal('SIGKILL');
    await gateway.proc.waitExit();
    const port = gateway.port;
    gateway = await startGateway(null, fs.readFileSync(gateway.configPath, 'utf8').replaceAll(`127.0.0.1:${port}`, '127.0.0.1:{{port}}'));

    const again = await call(gateway, 'GET', `/v1/responses/${response.id}`, { key: keyA });
    assert.equal(again.status, 200);
    assert.equal(outputText(again.json), 'before the restart');
    assert.deepEqual((await call(gateway, 'GET', `/v1/conversations/${conversation.id}`, { key: keyA })).json.metadata, { topic: 'restart' });
    const next = await respond(gateway, keyA, { model: 'chat-onprem', input: 'echo: second turn', conversation: conversation.id });
    assert.equal(outputText(next), 'second turn');
    const items = (await call(gateway, 'GET', `/v1/conversations/${conversation.id}/items?order=asc`, { key: keyA })).json.data;
    assert.deepEqual(items.map((i) => i.content[0].text), ['echo: first turn', 'first turn', 'echo: second turn', 'second turn']);
    const chained = await respond(gateway, keyA, { model: 'chat-onprem', input: 'echo: after', previous_response_id: response.id });
    assert.equal(chained.status, 'completed');
    assert.equal((await call(gateway, 'GET', `/v1/memory/records/${record.id}`, { key: keyA })).json.text, 'Survives restarts.');
    assert.equal((await call(gateway, 'GET', `/v1/memory/blocks/${block.id}`, { key: keyA })).json.value, 'still here');
    // A background response the kill interrupted is reported failed, not left in progress.
    const lost = (await call(gateway, 'GET', `/v1/responses/${interrupted.id}`, { key: keyA })).json;
    assert.equal(lost.status, 'failed');
    assert.equal(lost.error.code, 'server_restarted');
  });
});

// A model server that speaks chat completions and, asked to extract memory, answers with the
// facts the test scripted. Only this test double decides what "the model" extracts.
async function startFakeExtractor(factsFor) {
  const http = await import('node:http');
  const requests = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => (body += chunk));
    req.on('end', () => {
      if (req.method === 'GET') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ object: 'list', data: [] }));
        return;
      }
      const request = JSON.parse(body);
      requests.push(request);
      const extraction = request.response_format?.type === 'json_object';
      const transcript = request.messages.at(-1).content;
      const content = extraction ? JSON.stringify({ facts: factsFor(transcript) }) : 'Noted.';
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          id: 'chatcmpl-fake',
          object: 'chat.completion',
          created: 1,
          model: request.model,
          choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }],
          usage: { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 },
        }),
      );
    });
  });
  server.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  return { server, requests, port: server.address().port };
}

describe('sessions: automatic memory extraction', () => {
  let fake;
  let gateway;

  before(async () => {
    fake = await startFakeExtractor((transcript) => {
      const city = /moved to (\w+)/.exec(transcript)?.[1];
      return city ? [{ subject: 'user.city', text: `The user lives in ${city}.` }] : [];
    });
    gateway = await startGateway(null, {
      memory: { extraction_model: 'extractor', extraction_max_output_tokens: 64, extraction_max_input_chars: 300 },
      backends: [{ name: 'fake', port: fake.port, tier: 'onprem', clearance: 'SECRET//PII' }],
      aliases: [
        { name: 'chat', targets: ['fake'] },
        { name: 'extractor', targets: ['fake'] },
      ],
    });
  });
  after(async () => {
    await killAll();
    fake.server.close();
  });

  it('files facts from a finished turn, with their own token budget, and supersedes by subject', async () => {
    const memory = { user: 'u9', extract: true };
    const first = await respond(gateway, undefined, {
      model: 'chat',
      input: `${'filler '.repeat(100)}By the way, I just moved to Lyon.`,
      redline: { memory },
    });
    const filed = await waitFor(async () => {
      const { json } = await call(gateway, 'GET', '/v1/memory/records?user=u9');
      return json.data.length > 0 ? json.data : null;
    }, 5000, 100);
    assert.ok(filed, 'no fact was extracted');
    assert.equal(filed.length, 1);
    assert.equal(filed[0].text, 'The user lives in Lyon.');
    assert.equal(filed[0].subject, 'user.city');
    assert.equal(filed[0].source, `extraction:${first.id}`);

    const extraction = fake.requests.find((r) => r.response_format?.type === 'json_object');
    assert.equal(extraction.model, 'test-model');
    assert.equal(extraction.max_completion_tokens, 64);
    const transcript = extraction.messages.at(-1).content;
    assert.ok(transcript.length <= 300, `the extraction read ${transcript.length} characters`);
    assert.match(transcript, /moved to Lyon/);

    const second = await respond(gateway, undefined, {
      model: 'chat',
      input: 'Update: I moved to Nice last week.',
      redline: { memory },
    });
    const current = await waitFor(async () => {
      const { json } = await call(gateway, 'GET', '/v1/memory/records?user=u9');
      return json.data.length === 1 && json.data[0].text.includes('Nice') ? json.data : null;
    }, 5000, 100);
    assert.ok(current, 'the newer fact did not supersede the older one');
    assert.equal(current[0].source, `extraction:${second.id}`);
    const history = (await call(gateway, 'GET', '/v1/memory/records?user=u9&include_superseded=true')).json.data;
    assert.equal(history.length, 2);

    // The next turn gets the current fact injected when it searches memory.
    await respond(gateway, undefined, {
      model: 'chat',
      input: 'Where do I live?',
      redline: { memory: { user: 'u9', search: 'Where does the user live' } },
    });
    const turn = fake.requests.at(-1);
    assert.match(JSON.stringify(turn.messages), /The user lives in Nice\./);
    assert.doesNotMatch(JSON.stringify(turn.messages), /Lyon/);
  });
});
