// The official OpenAI SDK and the OpenAI Agents SDK, pointed at a real gateway in front of real
// simulators, must use Redline's Responses and Conversations APIs as they use OpenAI's: typed
// responses, the SDK's strict stream accumulator, previous_response_id chains, conversations (and
// their one-turn-at-a-time ordering), background responses and their cancellation, function tool
// round trips, structured outputs, input item listing, deletion, typed errors, red lines and
// upstream failures, and agent runs (tools, streaming, multi-turn, handoffs). The simulator's
// `echo: ` prompts and its /sim/requests log make the assertions exact: what the client got back
// and what reached the upstream model.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import OpenAI from 'openai';
import { zodTextFormat } from 'openai/helpers/zod';
import {
  Agent,
  run,
  setDefaultOpenAIClient,
  setOpenAIAPI,
  setTracingDisabled,
  tool,
} from '@openai/agents';
import { z } from 'zod';

import { killAll, postJson, sleep, startGateway, startSim, waitFor } from '../integration/helpers.mjs';

const ADMIN_TOKEN = 'compat-responses-admin-token-0123456789';
process.env.REDLINE_COMPAT_RESPONSES_ADMIN_TOKEN = ADMIN_TOKEN;

/** The chat completion bodies a simulator received, oldest first. */
async function upstreamChats(sim) {
  const requests = await sim.requests();
  return requests.filter((r) => r.path.endsWith('/chat/completions')).map((r) => r.body);
}

/** Every event's `type`, in order, without repeats of the same type in a row. */
function collapsedTypes(events) {
  return events.map((e) => e.type).filter((type, i, all) => i === 0 || all[i - 1] !== type);
}

function assertSequenceNumbers(events) {
  const numbers = events.map((e) => e.sequence_number);
  assert.ok(numbers.every((n) => Number.isInteger(n)), `sequence numbers: ${numbers}`);
  assert.deepEqual(
    numbers,
    numbers.map((_, i) => numbers[0] + i),
    `sequence_number counts up by one: ${numbers}`,
  );
  assert.equal(numbers[0], 0, 'sequence_number starts at 0');
}

/** [{role, text}] of message items, for readable deepEqual failures. */
function messageTexts(items) {
  return items
    .filter((item) => item.type === 'message')
    .map((item) => ({ role: item.role, text: item.content.map((part) => part.text ?? '').join('') }));
}

describe('OpenAI Responses and Conversations APIs against Redline', () => {
  let gateway;
  let fast;
  let slow;
  let crawl;
  let broken;
  let cut;
  let key;
  let client;

  function clientWith(apiKey) {
    return new OpenAI({ baseURL: gateway.baseUrl, apiKey, maxRetries: 0, timeout: 20000 });
  }

  async function createKey(fields) {
    const { status, json, text } = await postJson(`${gateway.url}/admin/keys`, fields, {
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    assert.equal(status, 201, text);
    return json.key;
  }

  before(async () => {
    [fast, slow, crawl, broken, cut] = await Promise.all([
      startSim(null, { name: 'fast' }),
      // 16 tokens at 24/s: a background turn takes about 0.7 s.
      startSim(null, { name: 'slow', model: { tokens_per_second: 24, output_tokens: 16 } }),
      // 400 tokens at 20/s: 20 s, far longer than any test waits; only cancellation ends it.
      startSim(null, { name: 'crawl', model: { tokens_per_second: 20, output_tokens: 400 } }),
      startSim(null, { name: 'broken', failures: { error_5xx: 1.0 } }),
      // Streams about half its answer, then drops the connection.
      startSim(null, {
        name: 'cut',
        model: { tokens_per_second: 400, output_tokens: 40 },
        failures: { disconnect_mid_stream: 1.0 },
      }),
    ]);
    gateway = await startGateway(null, {
      auth: { required: true, admin_token_env: 'REDLINE_COMPAT_RESPONSES_ADMIN_TOKEN' },
      rules: [{ name: 'no-private-keys', action: 'deny', detectors: ['private_key'] }],
      routing: { max_attempts: 1 },
      backends: [
        { name: 'fast', sim: fast, models: [{ name: 'sim-model' }] },
        { name: 'slow', sim: slow, models: [{ name: 'sim-model' }] },
        { name: 'crawl', sim: crawl, models: [{ name: 'sim-model' }] },
        { name: 'broken', sim: broken, models: [{ name: 'sim-model' }] },
        { name: 'cut', sim: cut, models: [{ name: 'sim-model' }] },
      ],
      aliases: [
        { name: 'chat', targets: [{ backend: 'fast', model: 'sim-model' }] },
        { name: 'slow', targets: [{ backend: 'slow', model: 'sim-model' }] },
        { name: 'crawl', targets: [{ backend: 'crawl', model: 'sim-model' }] },
        { name: 'broken', targets: [{ backend: 'broken', model: 'sim-model' }] },
        { name: 'cut', targets: [{ backend: 'cut', model: 'sim-model' }] },
      ],
    });
    key = await createKey({ tenant: 'responses' });
    client = clientWith(key);
  });
  after(killAll);

  // ---- 1. create ---------------------------------------------------------------------------

  it('creates a response: completed, output_text, usage, the alias as model, exact echo', async () => {
    await fast.reset();
    const response = await client.responses.create({
      model: 'chat',
      instructions: 'Repeat after me.',
      input: 'echo: The quick brown fox jumps',
    });
    assert.match(response.id, /^resp_/);
    assert.equal(response.object, 'response');
    assert.equal(response.status, 'completed');
    assert.equal(response.model, 'chat', 'the alias, not the upstream model name');
    assert.equal(response.output_text, 'The quick brown fox jumps');
    assert.equal(response.instructions, 'Repeat after me.');
    assert.equal(response.error, null);
    assert.equal(response.previous_response_id, null);
    assert.equal(response.output.length, 1);
    const [message] = response.output;
    assert.equal(message.type, 'message');
    assert.equal(message.role, 'assistant');
    assert.equal(message.status, 'completed');
    assert.match(message.id, /^msg_/);
    assert.deepEqual(message.content, [
      { type: 'output_text', text: 'The quick brown fox jumps', annotations: [] },
    ]);
    const { usage } = response;
    assert.ok(usage.input_tokens > 0, JSON.stringify(usage));
    assert.ok(usage.output_tokens > 0, JSON.stringify(usage));
    assert.equal(usage.total_tokens, usage.input_tokens + usage.output_tokens);

    const chats = await upstreamChats(fast);
    assert.equal(chats.length, 1);
    assert.equal(chats[0].model, 'sim-model');
    assert.deepEqual(chats[0].messages, [
      { role: 'system', content: 'Repeat after me.' },
      { role: 'user', content: 'echo: The quick brown fox jumps' },
    ]);
    assert.equal(chats[0].stream, undefined, 'a non-streaming turn asks for a whole completion');
  });

  it('generates free text with the usage the upstream reported', async () => {
    const response = await client.responses.create({ model: 'chat', input: 'Tell me something.' });
    assert.equal(response.status, 'completed');
    assert.ok(response.output_text.trim().length > 0, JSON.stringify(response.output));
    // The simulator answers output_tokens (16) tokens unless told fewer.
    assert.equal(response.usage.output_tokens, 16);
    assert.equal(
      response.usage.total_tokens,
      response.usage.input_tokens + response.usage.output_tokens,
    );
  });

  it('maps max_output_tokens upstream and reports an incomplete response', async () => {
    await fast.reset();
    const response = await client.responses.create({
      model: 'chat',
      input: 'Tell me a long story.',
      max_output_tokens: 4,
    });
    assert.equal(response.status, 'incomplete');
    assert.deepEqual(response.incomplete_details, { reason: 'max_output_tokens' });
    assert.equal(response.max_output_tokens, 4);
    assert.equal(response.usage.output_tokens, 4);
    const [chat] = await upstreamChats(fast);
    assert.equal(chat.max_completion_tokens, 4);
  });

  it('passes the "redline" extension through the SDK: memory blocks reach the prompt', async () => {
    const block = await postJson(
      `${gateway.baseUrl}/memory/blocks`,
      { user: 'alice', name: 'persona', value: 'Alice prefers green tea.' },
      { headers: { authorization: `Bearer ${key}` } },
    );
    assert.equal(block.status, 200, block.text);
    await fast.reset();
    const response = await client.responses.create({
      model: 'chat',
      input: 'echo: noted',
      redline: { memory: { user: 'alice' } },
    });
    assert.equal(response.output_text, 'noted');
    const [chat] = await upstreamChats(fast);
    const system = chat.messages.filter((m) => m.role === 'system').map((m) => m.content).join('\n');
    assert.match(system, /Alice prefers green tea\./, JSON.stringify(chat.messages));
    assert.deepEqual(chat.messages.at(-1), { role: 'user', content: 'echo: noted' });

    // Without the extension, no memory.
    await fast.reset();
    await client.responses.create({ model: 'chat', input: 'echo: plain' });
    const [plain] = await upstreamChats(fast);
    assert.deepEqual(plain.messages, [{ role: 'user', content: 'echo: plain' }]);
  });

  // ---- 2. streaming ------------------------------------------------------------------------

  it('streams typed events the SDK accumulator accepts (responses.stream)', async () => {
    await fast.reset();
    const stream = client.responses.stream({
      model: 'chat',
      input: 'echo: streaming works end to end',
    });
    const events = [];
    for await (const event of stream) events.push(event);
    const final = await stream.finalResponse();

    assert.equal(final.status, 'completed');
    assert.equal(final.output_text, 'streaming works end to end');
    assert.deepEqual(collapsedTypes(events), [
      'response.created',
      'response.in_progress',
      'response.output_item.added',
      'response.content_part.added',
      'response.output_text.delta',
      'response.output_text.done',
      'response.content_part.done',
      'response.output_item.done',
      'response.completed',
    ]);
    assertSequenceNumbers(events);
    const deltas = events.filter((e) => e.type === 'response.output_text.delta');
    assert.ok(deltas.length >= 2, `the text came in ${deltas.length} delta(s)`);
    assert.equal(deltas.map((e) => e.delta).join(''), final.output_text);
    assert.equal(events.find((e) => e.type === 'response.output_text.done').text, final.output_text);

    const created = events[0].response;
    assert.equal(created.status, 'in_progress');
    assert.equal(created.id, final.id);
    assert.equal(created.model, 'chat');
    const completed = events.at(-1).response;
    assert.equal(completed.id, final.id);
    assert.equal(completed.usage.total_tokens, completed.usage.input_tokens + completed.usage.output_tokens);
    assert.ok(completed.usage.output_tokens > 0);

    const [chat] = await upstreamChats(fast);
    assert.equal(chat.stream, true);
    assert.deepEqual(chat.stream_options, { include_usage: true });

    // The streamed response was stored as it ended.
    const stored = await client.responses.retrieve(final.id);
    assert.equal(stored.status, 'completed');
    assert.equal(stored.output_text, 'streaming works end to end');
    assert.deepEqual(stored.usage, completed.usage);
  });

  it('streams with create({stream: true}) as raw events', async () => {
    const stream = await client.responses.create({
      model: 'chat',
      input: 'echo: raw events arrive in order',
      stream: true,
    });
    const events = [];
    for await (const event of stream) events.push(event);
    assert.equal(events[0].type, 'response.created');
    assert.equal(events.at(-1).type, 'response.completed');
    assertSequenceNumbers(events);
    const text = events
      .filter((e) => e.type === 'response.output_text.delta')
      .map((e) => e.delta)
      .join('');
    assert.equal(text, 'raw events arrive in order');
    const final = events.at(-1).response;
    assert.equal(final.status, 'completed');
    assert.equal(final.output[0].content[0].text, 'raw events arrive in order');
    const added = events.find((e) => e.type === 'response.output_item.added');
    const done = events.find((e) => e.type === 'response.output_item.done');
    assert.equal(added.item.id, done.item.id);
    assert.equal(added.output_index, 0);
    assert.equal(done.item.status, 'completed');
    for (const e of events.filter((e) => e.type === 'response.output_text.delta')) {
      assert.equal(e.item_id, added.item.id);
      assert.equal(e.output_index, 0);
      assert.equal(e.content_index, 0);
    }
  });

  it('ends the stream with response.failed when the upstream drops mid-stream', async () => {
    const stream = await client.responses.create({ model: 'cut', input: 'Tell me a story.', stream: true });
    const events = [];
    for await (const event of stream) events.push(event);
    assertSequenceNumbers(events);
    const last = events.at(-1);
    assert.equal(last.type, 'response.failed', collapsedTypes(events).join());
    assert.equal(last.response.status, 'failed');
    assert.equal(typeof last.response.error.code, 'string');
    assert.ok(events.some((e) => e.type === 'response.output_text.delta'), 'part of the answer came first');
    assert.ok(!events.some((e) => e.type === 'response.completed'));
    const stored = await client.responses.retrieve(last.response.id);
    assert.equal(stored.status, 'failed');
  });

  it('returns structured output the SDK parses (responses.parse with zodTextFormat)', async () => {
    await fast.reset();
    const Person = z.object({ name: z.string(), age: z.number() });
    const response = await client.responses.parse({
      model: 'chat',
      input: 'Invent a person.',
      text: { format: zodTextFormat(Person, 'person') },
    });
    assert.equal(response.status, 'completed');
    assert.equal(typeof response.output_parsed.name, 'string');
    assert.equal(typeof response.output_parsed.age, 'number');
    assert.deepEqual(response.output_parsed, JSON.parse(response.output_text));
    assert.equal(response.text.format.type, 'json_schema');
    const [chat] = await upstreamChats(fast);
    assert.equal(chat.response_format.type, 'json_schema');
    assert.equal(chat.response_format.json_schema.name, 'person');
    assert.equal(chat.response_format.json_schema.strict, true);
    assert.deepEqual(chat.response_format.json_schema.schema.required, ['name', 'age']);
  });

  // ---- 3. previous_response_id ---------------------------------------------------------------

  it('chains turns with previous_response_id; instructions are not carried over', async () => {
    await fast.reset();
    const first = await client.responses.create({
      model: 'chat',
      instructions: 'First-turn rules.',
      input: 'echo: my name is Ada',
    });
    assert.equal(first.output_text, 'my name is Ada');
    const second = await client.responses.create({
      model: 'chat',
      instructions: 'Second-turn rules.',
      previous_response_id: first.id,
      input: 'echo: what is my name',
    });
    assert.equal(second.status, 'completed');
    assert.equal(second.previous_response_id, first.id);
    assert.equal(second.output_text, 'what is my name');
    const third = await client.responses.create({
      model: 'chat',
      previous_response_id: second.id,
      input: [{ role: 'user', content: 'echo: third' }],
    });
    assert.equal(third.output_text, 'third');
    assert.equal(third.instructions, null);

    const chats = await upstreamChats(fast);
    assert.equal(chats.length, 3);
    assert.deepEqual(chats[1].messages, [
      { role: 'system', content: 'Second-turn rules.' },
      { role: 'user', content: 'echo: my name is Ada' },
      { role: 'assistant', content: 'my name is Ada' },
      { role: 'user', content: 'echo: what is my name' },
    ]);
    assert.deepEqual(chats[2].messages, [
      { role: 'user', content: 'echo: my name is Ada' },
      { role: 'assistant', content: 'my name is Ada' },
      { role: 'user', content: 'echo: what is my name' },
      { role: 'assistant', content: 'what is my name' },
      { role: 'user', content: 'echo: third' },
    ]);
  });

  it('does not store a response created with store: false', async () => {
    const response = await client.responses.create({ model: 'chat', input: 'echo: ephemeral', store: false });
    assert.equal(response.output_text, 'ephemeral');
    assert.equal(response.store, false);
    await assert.rejects(client.responses.retrieve(response.id), OpenAI.NotFoundError);
    await assert.rejects(
      client.responses.create({ model: 'chat', input: 'hi', previous_response_id: response.id }),
      OpenAI.NotFoundError,
    );
  });

  // ---- 4. conversations ----------------------------------------------------------------------

  it('runs turns on a conversation and manages it', async () => {
    const conversation = await client.conversations.create({
      items: [{ type: 'message', role: 'developer', content: 'You are a parrot.' }],
      metadata: { topic: 'birds' },
    });
    assert.match(conversation.id, /^conv_/);
    assert.equal(conversation.object, 'conversation');
    assert.deepEqual(conversation.metadata, { topic: 'birds' });
    assert.equal(typeof conversation.created_at, 'number');

    await fast.reset();
    const first = await client.responses.create({
      model: 'chat',
      conversation: conversation.id,
      input: 'echo: polly wants a cracker',
    });
    assert.equal(first.output_text, 'polly wants a cracker');
    assert.deepEqual(first.conversation, { id: conversation.id });
    const second = await client.responses.create({
      model: 'chat',
      conversation: { id: conversation.id },
      input: [{ role: 'user', content: 'echo: pieces of eight' }],
    });
    assert.equal(second.output_text, 'pieces of eight');

    const chats = await upstreamChats(fast);
    assert.equal(chats.length, 2);
    assert.deepEqual(chats[0].messages, [
      { role: 'system', content: 'You are a parrot.' },
      { role: 'user', content: 'echo: polly wants a cracker' },
    ]);
    assert.deepEqual(chats[1].messages, [
      { role: 'system', content: 'You are a parrot.' },
      { role: 'user', content: 'echo: polly wants a cracker' },
      { role: 'assistant', content: 'polly wants a cracker' },
      { role: 'user', content: 'echo: pieces of eight' },
    ]);

    const expected = [
      { role: 'developer', text: 'You are a parrot.' },
      { role: 'user', text: 'echo: polly wants a cracker' },
      { role: 'assistant', text: 'polly wants a cracker' },
      { role: 'user', text: 'echo: pieces of eight' },
      { role: 'assistant', text: 'pieces of eight' },
    ];
    const ascending = await client.conversations.items.list(conversation.id, { order: 'asc' });
    assert.deepEqual(messageTexts(ascending.data), expected);
    assert.equal(ascending.has_more, false);
    assert.equal(ascending.data[2].id, first.output[0].id, 'the stored item is the output item');
    const descending = await client.conversations.items.list(conversation.id);
    assert.deepEqual(messageTexts(descending.data), [...expected].reverse(), 'newest first by default');
    // Paging: two at a time, ascending, through the SDK's auto-pagination.
    const paged = [];
    for await (const item of client.conversations.items.list(conversation.id, { order: 'asc', limit: 2 })) {
      paged.push(item);
    }
    assert.deepEqual(messageTexts(paged), expected);

    const one = await client.conversations.items.retrieve(ascending.data[1].id, {
      conversation_id: conversation.id,
    });
    assert.deepEqual(messageTexts([one]), [expected[1]]);

    const retrieved = await client.conversations.retrieve(conversation.id);
    assert.deepEqual(retrieved.metadata, { topic: 'birds' });
    const updated = await client.conversations.update(conversation.id, { metadata: { topic: 'pirates' } });
    assert.equal(updated.id, conversation.id);
    assert.deepEqual(updated.metadata, { topic: 'pirates' });
    assert.deepEqual((await client.conversations.retrieve(conversation.id)).metadata, { topic: 'pirates' });

    // Deleting an item takes it out of the list and out of the next turn's history.
    const afterDelete = await client.conversations.items.delete(ascending.data[0].id, {
      conversation_id: conversation.id,
    });
    assert.equal(afterDelete.id, conversation.id);
    const remaining = await client.conversations.items.list(conversation.id, { order: 'asc' });
    assert.deepEqual(messageTexts(remaining.data), expected.slice(1));
    await assert.rejects(
      client.conversations.items.retrieve(ascending.data[0].id, { conversation_id: conversation.id }),
      OpenAI.NotFoundError,
    );
    await fast.reset();
    await client.responses.create({ model: 'chat', conversation: conversation.id, input: 'echo: last' });
    const [third] = await upstreamChats(fast);
    assert.equal(third.messages[0].role, 'user', 'the deleted developer message is gone');
    assert.equal(third.messages.length, 5);

    const deleted = await client.conversations.delete(conversation.id);
    assert.equal(deleted.id, conversation.id);
    assert.equal(deleted.deleted, true);
    await assert.rejects(client.conversations.retrieve(conversation.id), OpenAI.NotFoundError);
    await assert.rejects(client.conversations.items.list(conversation.id), OpenAI.NotFoundError);
    await assert.rejects(
      client.responses.create({ model: 'chat', conversation: conversation.id, input: 'hi' }),
      OpenAI.NotFoundError,
    );
  });

  it('adds items to a conversation with conversations.items.create', async () => {
    const conversation = await client.conversations.create();
    assert.deepEqual(conversation.metadata, {});
    const added = await client.conversations.items.create(conversation.id, {
      items: [
        { type: 'message', role: 'user', content: 'echo: remembered' },
        { type: 'message', role: 'assistant', content: 'remembered' },
      ],
    });
    assert.equal(added.data.length, 2);
    await fast.reset();
    await client.responses.create({ model: 'chat', conversation: conversation.id, input: 'echo: next' });
    const [chat] = await upstreamChats(fast);
    assert.deepEqual(chat.messages, [
      { role: 'user', content: 'echo: remembered' },
      { role: 'assistant', content: 'remembered' },
      { role: 'user', content: 'echo: next' },
    ]);
  });

  it('runs turns on one conversation one at a time, in arrival order', async () => {
    const conversation = await client.conversations.create();
    await fast.reset();
    const started = Date.now();
    // The first turn takes about 0.7 s on the slow model; the second, sent while it runs, would
    // take milliseconds on its own but must wait for it and see its answer.
    const first = client.responses.create({
      model: 'slow',
      conversation: conversation.id,
      input: 'Slow question.',
    });
    assert.ok(await waitFor(async () => (await slow.stats()).in_flight === 1, 3000), 'the first turn runs');
    const second = client.responses.create({
      model: 'chat',
      conversation: conversation.id,
      input: 'echo: fast follow-up',
    });
    const [a, b] = await Promise.all([
      first.then((r) => ({ response: r, at: Date.now() - started })),
      second.then((r) => ({ response: r, at: Date.now() - started })),
    ]);
    assert.ok(b.at >= a.at, `the second turn ended at ${b.at} ms, before the first (${a.at} ms)`);
    const [chat] = await upstreamChats(fast);
    assert.deepEqual(chat.messages, [
      { role: 'user', content: 'Slow question.' },
      { role: 'assistant', content: a.response.output_text },
      { role: 'user', content: 'echo: fast follow-up' },
    ]);
    const items = await client.conversations.items.list(conversation.id, { order: 'asc' });
    assert.deepEqual(messageTexts(items.data), [
      { role: 'user', text: 'Slow question.' },
      { role: 'assistant', text: a.response.output_text },
      { role: 'user', text: 'echo: fast follow-up' },
      { role: 'assistant', text: 'fast follow-up' },
    ]);
  });

  // ---- 5. background -------------------------------------------------------------------------

  it('runs a background response to completion while the client polls', async () => {
    const started = Date.now();
    const queued = await client.responses.create({
      model: 'slow',
      input: 'Take your time.',
      background: true,
    });
    assert.ok(['queued', 'in_progress'].includes(queued.status), queued.status);
    assert.equal(queued.background, true);
    assert.equal(queued.usage, null);

    const seen = new Set([queued.status]);
    let current = queued;
    const deadline = Date.now() + 10000;
    while (!['completed', 'failed', 'cancelled', 'incomplete'].includes(current.status)) {
      assert.ok(Date.now() < deadline, `still ${current.status} after 10 s`);
      await sleep(50);
      current = await client.responses.retrieve(queued.id);
      seen.add(current.status);
    }
    assert.equal(current.status, 'completed', JSON.stringify(current.error));
    assert.ok(seen.has('in_progress'), `statuses seen: ${[...seen]}`);
    assert.ok(Date.now() - started >= 450, 'the slow model took its time');
    assert.equal(current.id, queued.id);
    assert.equal(current.background, true);
    assert.ok(current.output_text.length > 0);
    assert.equal(current.usage.output_tokens, 16);
  });

  it('cancels a background response; it stays cancelled and the upstream call ends', async () => {
    await crawl.reset();
    const queued = await client.responses.create({
      model: 'crawl',
      input: 'Write a very long essay.',
      background: true,
    });
    assert.ok(['queued', 'in_progress'].includes(queued.status), queued.status);
    const running = await waitFor(async () => (await crawl.stats()).in_flight === 1, 3000);
    assert.ok(running, 'the upstream call started');

    const cancelled = await client.responses.cancel(queued.id);
    assert.equal(cancelled.id, queued.id);
    assert.equal(cancelled.status, 'cancelled');
    await sleep(300);
    const later = await client.responses.retrieve(queued.id);
    assert.equal(later.status, 'cancelled');
    const idle = await waitFor(async () => (await crawl.stats()).in_flight === 0, 3000);
    assert.ok(idle, `the upstream call was not abandoned: ${JSON.stringify(await crawl.stats())}`);
    // Cancelling again is harmless and says the same.
    assert.equal((await client.responses.cancel(queued.id)).status, 'cancelled');
  });

  it('streams a background response and stores it', async () => {
    const stream = client.responses.stream({
      model: 'slow',
      input: 'echo: background and streamed',
      background: true,
    });
    const events = [];
    for await (const event of stream) events.push(event);
    const final = await stream.finalResponse();
    assertSequenceNumbers(events);
    assert.equal(final.status, 'completed');
    assert.equal(final.background, true);
    assert.equal(final.output_text, 'background and streamed');
    const stored = await client.responses.retrieve(final.id);
    assert.equal(stored.status, 'completed');
    assert.equal(stored.output_text, 'background and streamed');
  });

  it(
    'ends a cancelled background stream with the status the response keeps (cancelled)',
    async () => {
      const stream = await client.responses.create({
        model: 'crawl',
        input: 'Write a very long essay.',
        background: true,
        stream: true,
      });
      const events = [];
      let cancelled = null;
      for await (const event of stream) {
        events.push(event);
        if (event.type === 'response.output_text.delta' && !cancelled) {
          cancelled = await client.responses.cancel(events[0].response.id);
        }
      }
      assert.equal(cancelled?.status, 'cancelled');
      const id = events[0].response.id;
      assert.equal((await client.responses.retrieve(id)).status, 'cancelled');
      const last = events.at(-1);
      assert.equal(last.response.status, 'cancelled', `${last.type}: ${last.response.status}`);
      // Every item the stream opened was closed.
      const added = events.filter((e) => e.type === 'response.output_item.added').length;
      const done = events.filter((e) => e.type === 'response.output_item.done').length;
      assert.equal(done, added);
    },
  );

  it('refuses to cancel a response that was not created in the background', async () => {
    const response = await client.responses.create({ model: 'chat', input: 'echo: done already' });
    await assert.rejects(client.responses.cancel(response.id), (error) => {
      assert.ok(error instanceof OpenAI.BadRequestError, `${error.constructor.name}: ${error.message}`);
      assert.equal(error.status, 400);
      return true;
    });
    await assert.rejects(client.responses.cancel('resp_does_not_exist'), OpenAI.NotFoundError);
  });

  // ---- 6. function tools ---------------------------------------------------------------------

  const weatherTool = {
    type: 'function',
    name: 'get_weather',
    description: 'Current weather for a city',
    parameters: {
      type: 'object',
      properties: {
        city: { type: 'string' },
        unit: { type: 'string', enum: ['celsius', 'fahrenheit'] },
      },
      required: ['city', 'unit'],
      additionalProperties: false,
    },
    strict: true,
  };
  const timeTool = {
    type: 'function',
    name: 'get_time',
    description: 'Local time in a city',
    parameters: { type: 'object', properties: { zone: { type: 'string' } }, required: ['zone'] },
    strict: false,
  };

  it('round-trips a function tool call with the plain SDK', async () => {
    await fast.reset();
    const first = await client.responses.create({
      model: 'chat',
      input: 'What is the weather in Oslo?',
      tools: [weatherTool],
    });
    assert.equal(first.status, 'completed');
    assert.equal(first.output_text, '');
    assert.equal(first.output.length, 1, JSON.stringify(first.output));
    const [call] = first.output;
    assert.equal(call.type, 'function_call');
    assert.equal(call.name, 'get_weather');
    assert.match(call.id, /^fc_/);
    assert.equal(typeof call.call_id, 'string');
    assert.ok(call.call_id.length > 0);
    assert.equal(call.status, 'completed');
    const args = JSON.parse(call.arguments);
    assert.equal(typeof args.city, 'string');
    assert.ok(['celsius', 'fahrenheit'].includes(args.unit), call.arguments);
    assert.deepEqual(first.tools.map((t) => t.name), ['get_weather']);

    const second = await client.responses.create({
      model: 'chat',
      previous_response_id: first.id,
      input: [{ type: 'function_call_output', call_id: call.call_id, output: '{"temperature":21}' }],
      tools: [weatherTool],
    });
    assert.equal(second.status, 'completed');
    assert.equal(second.output.length, 1);
    assert.equal(second.output[0].type, 'message');
    assert.ok(second.output_text.length > 0);

    const chats = await upstreamChats(fast);
    assert.equal(chats.length, 2);
    assert.deepEqual(chats[0].tools, [
      {
        type: 'function',
        function: {
          name: 'get_weather',
          description: 'Current weather for a city',
          parameters: weatherTool.parameters,
          strict: true,
        },
      },
    ]);
    assert.deepEqual(chats[1].messages, [
      { role: 'user', content: 'What is the weather in Oslo?' },
      {
        role: 'assistant',
        content: null,
        tool_calls: [
          {
            id: call.call_id,
            type: 'function',
            function: { name: 'get_weather', arguments: call.arguments },
          },
        ],
      },
      { role: 'tool', tool_call_id: call.call_id, content: '{"temperature":21}' },
    ]);

    const inputs = await client.responses.inputItems.list(second.id, { order: 'asc' });
    assert.equal(inputs.data.length, 1);
    assert.equal(inputs.data[0].type, 'function_call_output');
    assert.equal(inputs.data[0].call_id, call.call_id);
    assert.equal(inputs.data[0].output, '{"temperature":21}');
  });

  it('calls the function tool_choice names, and none when tool_choice is "none"', async () => {
    await fast.reset();
    const named = await client.responses.create({
      model: 'chat',
      input: 'What time is it in Tokyo?',
      tools: [weatherTool, timeTool],
      tool_choice: { type: 'function', name: 'get_time' },
    });
    assert.equal(named.output[0].type, 'function_call');
    assert.equal(named.output[0].name, 'get_time');
    assert.equal(typeof JSON.parse(named.output[0].arguments).zone, 'string');
    assert.deepEqual(named.tool_choice, { type: 'function', name: 'get_time' });
    const none = await client.responses.create({
      model: 'chat',
      input: 'echo: no tools today',
      tools: [weatherTool],
      tool_choice: 'none',
    });
    assert.equal(none.output_text, 'no tools today');
    const chats = await upstreamChats(fast);
    assert.deepEqual(chats[0].tool_choice, { type: 'function', function: { name: 'get_time' } });
    assert.equal(chats[1].tool_choice, 'none');
  });

  it('streams a function call the SDK accumulator assembles', async () => {
    const stream = client.responses.stream({
      model: 'chat',
      input: 'Weather in Lima?',
      tools: [weatherTool],
    });
    const events = [];
    for await (const event of stream) events.push(event);
    const final = await stream.finalResponse();
    assertSequenceNumbers(events);
    const call = final.output.find((item) => item.type === 'function_call');
    assert.ok(call, JSON.stringify(final.output));
    assert.equal(call.name, 'get_weather');
    const args = JSON.parse(call.arguments);
    assert.deepEqual(Object.keys(args).sort(), ['city', 'unit']);
    const deltas = events.filter((e) => e.type === 'response.function_call_arguments.delta');
    assert.ok(deltas.length >= 1);
    assert.equal(deltas.map((e) => e.delta).join(''), call.arguments);
    const done = events.find((e) => e.type === 'response.function_call_arguments.done');
    assert.equal(done.arguments, call.arguments);
    assert.equal(events.at(-1).type, 'response.completed');
  });

  // ---- 7. input items, deletion --------------------------------------------------------------

  it('lists a response\'s input items and deletes the response', async () => {
    const response = await client.responses.create({
      model: 'chat',
      input: [
        { role: 'developer', content: 'Be brief.' },
        { role: 'user', content: [{ type: 'input_text', text: 'echo: listed' }] },
      ],
    });
    assert.equal(response.output_text, 'listed');
    const ascending = await client.responses.inputItems.list(response.id, { order: 'asc' });
    assert.deepEqual(messageTexts(ascending.data), [
      { role: 'developer', text: 'Be brief.' },
      { role: 'user', text: 'echo: listed' },
    ]);
    for (const item of ascending.data) {
      assert.equal(item.type, 'message');
      assert.match(item.id, /^msg_/);
      assert.deepEqual(item.content.map((part) => part.type), ['input_text']);
    }
    const descending = await client.responses.inputItems.list(response.id);
    assert.deepEqual(
      descending.data.map((item) => item.id),
      ascending.data.map((item) => item.id).reverse(),
    );
    // The output is not an input item.
    assert.ok(!ascending.data.some((item) => item.id === response.output[0].id));

    await client.responses.delete(response.id);
    await assert.rejects(client.responses.retrieve(response.id), OpenAI.NotFoundError);
    await assert.rejects(client.responses.inputItems.list(response.id), OpenAI.NotFoundError);
    await assert.rejects(client.responses.delete(response.id), OpenAI.NotFoundError);
  });

  it('keeps one tenant\'s responses and conversations from another', async () => {
    const other = clientWith(await createKey({ tenant: 'someone-else' }));
    const response = await client.responses.create({ model: 'chat', input: 'echo: mine' });
    const conversation = await client.conversations.create({ metadata: { owner: 'responses' } });
    await assert.rejects(other.responses.retrieve(response.id), OpenAI.NotFoundError);
    await assert.rejects(other.conversations.retrieve(conversation.id), OpenAI.NotFoundError);
    await assert.rejects(
      other.responses.create({ model: 'chat', input: 'hi', previous_response_id: response.id }),
      OpenAI.NotFoundError,
    );
    assert.equal((await client.responses.retrieve(response.id)).output_text, 'mine');
  });

  // ---- 8. errors -----------------------------------------------------------------------------

  it('raises typed SDK errors', async () => {
    await assert.rejects(
      client.responses.create({ model: 'chat', input: 'hi', previous_response_id: 'resp_nope' }),
      (error) => {
        assert.ok(error instanceof OpenAI.NotFoundError, `${error.constructor.name}: ${error.message}`);
        assert.equal(error.status, 404);
        assert.equal(error.param, 'previous_response_id');
        return true;
      },
    );
    const conversation = await client.conversations.create();
    const response = await client.responses.create({ model: 'chat', input: 'echo: x' });
    await assert.rejects(
      client.responses.create({
        model: 'chat',
        input: 'hi',
        conversation: conversation.id,
        previous_response_id: response.id,
      }),
      (error) => {
        assert.ok(error instanceof OpenAI.BadRequestError, `${error.constructor.name}: ${error.message}`);
        assert.equal(error.status, 400);
        return true;
      },
    );
    await assert.rejects(client.responses.create({ model: 'gpt-nope', input: 'hi' }), (error) => {
      assert.ok(error instanceof OpenAI.NotFoundError, `${error.constructor.name}: ${error.message}`);
      assert.equal(error.code, 'model_not_found');
      return true;
    });
    await assert.rejects(
      client.responses.create({ model: 'chat', input: 'hi' }, { headers: { Authorization: null } }),
      (error) => {
        assert.ok(error instanceof OpenAI.AuthenticationError, `${error.constructor.name}: ${error.message}`);
        assert.equal(error.status, 401);
        return true;
      },
    );
    await assert.rejects(
      clientWith('rl_000000000000_not-a-key').responses.create({ model: 'chat', input: 'hi' }),
      OpenAI.AuthenticationError,
    );
    await assert.rejects(
      client.responses.create({ model: 'chat', input: 'hi', tools: [{ type: 'web_search' }] }),
      (error) => {
        assert.ok(error instanceof OpenAI.BadRequestError, `${error.constructor.name}: ${error.message}`);
        assert.equal(error.param, 'tools[0].type');
        return true;
      },
    );
    await assert.rejects(
      client.responses.create({ model: 'chat', input: 'hi', background: true, store: false }),
      OpenAI.BadRequestError,
    );
    await assert.rejects(client.responses.create({ model: 'chat', input: 42 }), (error) => {
      assert.ok(error instanceof OpenAI.BadRequestError, `${error.constructor.name}: ${error.message}`);
      assert.equal(error.param, 'input');
      return true;
    });
    await assert.rejects(client.responses.retrieve(response.id, { stream: true }), (error) => {
      assert.ok(error instanceof OpenAI.BadRequestError, `${error.constructor.name}: ${error.message}`);
      assert.equal(error.param, 'stream');
      return true;
    });
    // A streamed request refused before the stream starts is a typed error too.
    await assert.rejects(
      (async () => {
        const stream = await client.responses.create({ model: 'gpt-nope', input: 'hi', stream: true });
        for await (const _ of stream) {
          // not reached
        }
      })(),
      OpenAI.NotFoundError,
    );
  });

  it('applies red lines to every turn: the input, the stored history, in the background', async () => {
    const pem = '-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7\n-----END RSA PRIVATE KEY-----';
    const denied = (error) => {
      assert.ok(error instanceof OpenAI.PermissionDeniedError, `${error.constructor.name}: ${error.message}`);
      assert.equal(error.status, 403);
      assert.equal(error.code, 'red_line_denied');
      assert.match(error.message, /no-private-keys/);
      assert.doesNotMatch(error.message, /MIIE/);
      return true;
    };
    await fast.reset();
    await assert.rejects(client.responses.create({ model: 'chat', input: `Use ${pem}` }), denied);
    await assert.rejects(
      (async () => {
        const stream = await client.responses.create({ model: 'chat', input: `Use ${pem}`, stream: true });
        for await (const _ of stream) {
          // not reached
        }
      })(),
      denied,
    );
    // History the turn did not send itself is scanned too.
    const conversation = await client.conversations.create({
      items: [{ type: 'message', role: 'user', content: `Remember ${pem}` }],
    });
    await assert.rejects(
      client.responses.create({ model: 'chat', conversation: conversation.id, input: 'echo: hello' }),
      denied,
    );
    const queued = await client.responses.create({ model: 'chat', input: `Use ${pem}`, background: true });
    const ended = await waitFor(async () => {
      const current = await client.responses.retrieve(queued.id);
      return current.status === 'failed' ? current : null;
    }, 3000);
    assert.ok(ended, 'the background response failed');
    assert.equal(ended.error.code, 'red_line_denied');
    assert.equal((await upstreamChats(fast)).length, 0, 'nothing reached the model');
  });

  it('reports upstream failures as typed errors and failed background responses', async () => {
    await assert.rejects(client.responses.create({ model: 'broken', input: 'hi' }), (error) => {
      assert.ok(error instanceof OpenAI.InternalServerError, `${error.constructor.name}: ${error.message}`);
      assert.equal(error.status, 500);
      return true;
    });
    const queued = await client.responses.create({ model: 'broken', input: 'hi', background: true });
    const ended = await waitFor(async () => {
      const current = await client.responses.retrieve(queued.id);
      return current.status === 'failed' ? current : null;
    }, 3000);
    assert.ok(ended, 'the background response failed');
    assert.equal(ended.error.code, 'server_error');
    assert.match(ended.error.message, /simulated failure/);
  });

  // ---- 9. @openai/agents ---------------------------------------------------------------------

  describe('@openai/agents over the Responses API', () => {
    let calls = [];
    let weatherAgent;
    let plainAgent;

    before(() => {
      setTracingDisabled(true);
      setOpenAIAPI('responses');
      setDefaultOpenAIClient(
        new OpenAI({ baseURL: gateway.baseUrl, apiKey: key, maxRetries: 0, timeout: 20000 }),
      );
      const getWeather = tool({
        name: 'get_weather',
        description: 'Current weather for a city',
        parameters: z.object({ city: z.string() }),
        execute: async ({ city }) => {
          calls.push(city);
          return `It is sunny in ${city}.`;
        },
      });
      weatherAgent = new Agent({
        name: 'Weather',
        instructions: 'Answer weather questions with the tool.',
        model: 'chat',
        tools: [getWeather],
      });
      plainAgent = new Agent({ name: 'Parrot', instructions: 'Repeat what you are told.', model: 'chat' });
    });

    it('runs an agent that calls a function tool exactly once', async () => {
      calls = [];
      await fast.reset();
      const result = await run(weatherAgent, 'What is the weather in Oslo?');
      assert.equal(calls.length, 1, `tool calls: ${calls}`);
      assert.equal(typeof result.finalOutput, 'string');
      assert.ok(result.finalOutput.length > 0);
      assert.match(result.lastResponseId, /^resp_/);
      const chats = await upstreamChats(fast);
      assert.equal(chats.length, 2);
      assert.equal(chats[0].tools[0].function.name, 'get_weather');
      const toolMessage = chats[1].messages.find((m) => m.role === 'tool');
      assert.ok(toolMessage, JSON.stringify(chats[1].messages));
      assert.equal(toolMessage.content, `It is sunny in ${calls[0]}.`);
      assert.equal(chats[1].messages[0].role, 'system');
      assert.equal(chats[1].messages[0].content, 'Answer weather questions with the tool.');
    });

    it('streams an agent run with a tool call', async () => {
      calls = [];
      const result = await run(weatherAgent, 'What is the weather in Lima?', { stream: true });
      const kinds = new Set();
      let text = '';
      for await (const event of result) {
        kinds.add(event.type);
        if (event.type === 'raw_model_stream_event' && event.data.type === 'output_text_delta') {
          text += event.data.delta;
        }
      }
      await result.completed;
      assert.equal(result.error ?? null, null);
      assert.equal(calls.length, 1, `tool calls: ${calls}`);
      assert.ok(kinds.has('raw_model_stream_event'), [...kinds].join());
      assert.ok(kinds.has('run_item_stream_event'), [...kinds].join());
      assert.equal(typeof result.finalOutput, 'string');
      assert.ok(result.finalOutput.length > 0);
      assert.equal(text, result.finalOutput, 'the streamed deltas are the final output');
    });

    it('continues a run with previousResponseId', async () => {
      await fast.reset();
      const first = await run(plainAgent, 'echo: the password is swordfish');
      assert.equal(first.finalOutput, 'the password is swordfish');
      const second = await run(plainAgent, 'echo: what was the password', {
        previousResponseId: first.lastResponseId,
      });
      assert.equal(second.finalOutput, 'what was the password');
      assert.notEqual(second.lastResponseId, first.lastResponseId);
      const chats = await upstreamChats(fast);
      assert.equal(chats.length, 2);
      assert.deepEqual(chats[1].messages, [
        { role: 'system', content: 'Repeat what you are told.' },
        { role: 'user', content: 'echo: the password is swordfish' },
        { role: 'assistant', content: 'the password is swordfish' },
        { role: 'user', content: 'echo: what was the password' },
      ]);
      const stored = await client.responses.retrieve(second.lastResponseId);
      assert.equal(stored.previous_response_id, first.lastResponseId);
    });

    it('returns structured final output for an outputType', async () => {
      await fast.reset();
      const agent = new Agent({
        name: 'Extractor',
        instructions: 'Extract the city and temperature.',
        model: 'chat',
        outputType: z.object({ city: z.string(), celsius: z.number() }),
      });
      const result = await run(agent, 'Oslo is 21 degrees.');
      assert.equal(typeof result.finalOutput.city, 'string');
      assert.equal(typeof result.finalOutput.celsius, 'number');
      const [chat] = await upstreamChats(fast);
      assert.equal(chat.response_format.type, 'json_schema');
      assert.deepEqual(chat.response_format.json_schema.schema.required, ['city', 'celsius']);
    });

    it('continues a run on a conversation with conversationId', async () => {
      const conversation = await client.conversations.create();
      await fast.reset();
      const options = { conversationId: conversation.id };
      const first = await run(plainAgent, 'echo: first in the conversation', options);
      const second = await run(plainAgent, 'echo: second in the conversation', options);
      assert.equal(first.finalOutput, 'first in the conversation');
      assert.equal(second.finalOutput, 'second in the conversation');
      const chats = await upstreamChats(fast);
      assert.deepEqual(chats[1].messages, [
        { role: 'system', content: 'Repeat what you are told.' },
        { role: 'user', content: 'echo: first in the conversation' },
        { role: 'assistant', content: 'first in the conversation' },
        { role: 'user', content: 'echo: second in the conversation' },
      ]);
      const items = await client.conversations.items.list(conversation.id, { order: 'asc' });
      assert.deepEqual(messageTexts(items.data), [
        { role: 'user', text: 'echo: first in the conversation' },
        { role: 'assistant', text: 'first in the conversation' },
        { role: 'user', text: 'echo: second in the conversation' },
        { role: 'assistant', text: 'second in the conversation' },
      ]);
    });

    it('hands off to another agent', async () => {
      await fast.reset();
      const spanish = new Agent({ name: 'Spanish', instructions: 'Answer in Spanish.', model: 'chat' });
      const triage = new Agent({
        name: 'Triage',
        instructions: 'Route the user.',
        model: 'chat',
        handoffs: [spanish],
      });
      const result = await run(triage, 'Hola, ¿qué tal?');
      assert.equal(result.lastAgent.name, 'Spanish');
      assert.ok(result.finalOutput.length > 0);
      const chats = await upstreamChats(fast);
      assert.equal(chats.length, 2);
      assert.equal(chats[0].tools[0].function.name, 'transfer_to_Spanish');
      assert.deepEqual(chats[1].messages[0], { role: 'system', content: 'Answer in Spanish.' });
      assert.ok(chats[1].messages.some((m) => m.role === 'tool'), JSON.stringify(chats[1].messages));
    });
  });

  // Last: everything above ran through this one gateway process.
  it('leaves the gateway running, with no errors in its log', () => {
    assert.ok(gateway.proc.running, gateway.proc.describe());
    const errors = gateway.proc.output.text.split('\n').filter((line) => /\[(error|critical)\]/.test(line));
    assert.deepEqual(errors, [], gateway.proc.describe());
  });
});
