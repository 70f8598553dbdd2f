// The gateway's HTTP surface against real processes: successful calls, every error status a
// client can provoke (with OpenAI-style bodies), request ids, health and metrics.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import {
  SseStream,
  assertOpenAiError,
  chatBody,
  freePort,
  getJsonResponse,
  killAll,
  postJson,
  rawExchange,
  sendLargeRequest,
  sleep,
  startGateway,
  startSim,
  waitFor,
} from './helpers.mjs';

describe('gateway HTTP surface', () => {
  let edge;
  let slow;
  let gateway;

  before(async () => {
    edge = await startSim(null, { name: 'edge', model: { output_tokens: 8 } });
    // Answers far later than the gateway's first-byte timeout for the "slow" alias.
    slow = await startSim(null, { name: 'slow', model: { ttft_ms: { mean: 5000, stddev: 0 } } });
    const deadPort = await freePort();
    gateway = await startGateway(null, {
      server: { header_timeout_ms: 1000 },
      routing: { max_attempts: 2 },
      backends: [
        { name: 'edge', sim: edge, tier: 'edge' },
        { name: 'slow', sim: slow, first_byte_timeout_ms: 300 },
        { name: 'dead', port: deadPort },
      ],
      aliases: [
        { name: 'chat', targets: ['edge'] },
        { name: 'slow', targets: ['slow'] },
        { name: 'down', targets: ['dead'] },
      ],
    });
  });
  after(killAll);

  it('serves a non-streaming chat completion and names the backend', async () => {
    const { status, headers, json } = await gateway.chat(chatBody('hello'));
    assert.equal(status, 200, JSON.stringify(json));
    assert.equal(headers.get('x-redline-backend'), 'edge');
    assert.equal(json.object, 'chat.completion');
    assert.equal(json.choices[0].message.role, 'assistant');
    assert.equal(typeof json.choices[0].message.content, 'string');
    assert.ok(json.choices[0].message.content.length > 0);
    assert.ok(json.usage.prompt_tokens > 0 && json.usage.completion_tokens > 0, JSON.stringify(json.usage));
  });

  it('streams a chat completion as SSE ending in [DONE]', async () => {
    const stream = await SseStream.open(
      `${gateway.baseUrl}/chat/completions`,
      chatBody('stream please', { stream: true }),
    );
    assert.equal(stream.status, 200);
    assert.match(stream.headers['content-type'], /text\/event-stream/);
    assert.equal(stream.headers['x-redline-backend'], 'edge');
    const payloads = await stream.rest();
    assert.equal(payloads.at(-1), '[DONE]', `stream:\n${stream.raw}`);
    const chunks = payloads.slice(0, -1).map((p) => JSON.parse(p));
    assert.ok(chunks.length >= 2, `expected several chunks, got ${chunks.length}`);
    for (const chunk of chunks) assert.equal(chunk.object, 'chat.completion.chunk');
    const text = chunks.map((c) => c.choices[0]?.delta?.content ?? '').join('');
    assert.ok(text.length > 0, 'streamed content is not empty');
  });

  it('serves /v1/completions and /v1/embeddings', async () => {
    const completion = await postJson(`${gateway.baseUrl}/completions`, {
      model: 'chat',
      prompt: 'Once upon a time',
      max_tokens: 5,
    });
    assert.equal(completion.status, 200, completion.text);
    assert.equal(typeof completion.json.choices[0].text, 'string');

    const embedding = await postJson(`${gateway.baseUrl}/embeddings`, {
      model: 'chat',
      input: ['alpha', 'beta'],
      encoding_format: 'float',
    });
    assert.equal(embedding.status, 200, embedding.text);
    assert.equal(embedding.json.data.length, 2);
    assert.ok(embedding.json.data[0].embedding.length > 0);
    assert.equal(embedding.json.data[0].embedding.length, embedding.json.data[1].embedding.length);
  });

  it('lists the aliases in /v1/models', async () => {
    const { status, json } = await getJsonResponse(`${gateway.baseUrl}/models`);
    assert.equal(status, 200);
    assert.equal(json.object, 'list');
    const ids = json.data.map((m) => m.id).sort();
    assert.deepEqual(ids, ['chat', 'down', 'slow']);
    for (const model of json.data) assert.equal(model.object, 'model');
  });

  it('answers /healthz and /readyz', async () => {
    assert.equal((await getJsonResponse(`${gateway.url}/healthz`)).status, 200);
    const ready = await waitFor(async () => (await getJsonResponse(`${gateway.url}/readyz`)).status === 200);
    assert.ok(ready, '/readyz answers 200 while a backend is healthy');
  });

  it('echoes x-request-id, and makes one up when the client sends none', async () => {
    const echoed = await gateway.chat(chatBody('id'), { headers: { 'x-request-id': 'it-req-42' } });
    assert.equal(echoed.status, 200);
    assert.equal(echoed.headers.get('x-request-id'), 'it-req-42');
    const fresh = await gateway.chat(chatBody('id'));
    const id = fresh.headers.get('x-request-id');
    assert.ok(id && id.length >= 8, `generated request id: ${id}`);
    const another = await gateway.chat(chatBody('id'));
    assert.notEqual(another.headers.get('x-request-id'), id, 'generated ids differ');
    const onError = await postJson(`${gateway.baseUrl}/chat/completions`, '{', {
      headers: { 'x-request-id': 'bad-json-7' },
    });
    assert.equal(onError.headers.get('x-request-id'), 'bad-json-7', 'echoed on errors too');
  });

  it('rejects invalid JSON with 400', async () => {
    const { status, json } = await postJson(`${gateway.baseUrl}/chat/completions`, '{"model": "chat",');
    assert.equal(status, 400);
    assertOpenAiError(assert, json);
    assert.equal(json.error.type, 'invalid_request_error');
  });

  it('rejects a missing model with 400 and param "model"', async () => {
    const { status, json } = await postJson(`${gateway.baseUrl}/chat/completions`, {
      messages: [{ role: 'user', content: 'hi' }],
    });
    assert.equal(status, 400);
    assertOpenAiError(assert, json);
    assert.equal(json.error.param, 'model');
  });

  it('rejects a mistyped field with 400', async () => {
    const wrongModel = await postJson(`${gateway.baseUrl}/chat/completions`, {
      model: 42,
      messages: [{ role: 'user', content: 'hi' }],
    });
    assert.equal(wrongModel.status, 400);
    assertOpenAiError(assert, wrongModel.json);
    assert.equal(wrongModel.json.error.param, 'model');

    const wrongMessages = await postJson(`${gateway.baseUrl}/chat/completions`, {
      model: 'chat',
      messages: 'hi',
    });
    assert.equal(wrongMessages.status, 400);
    assertOpenAiError(assert, wrongMessages.json);
    assert.equal(wrongMessages.json.error.param, 'messages');
  });

  it('answers an unknown model with 404', async () => {
    const { status, json } = await gateway.chat({ ...chatBody('hi'), model: 'no-such-model' });
    assert.equal(status, 404);
    assertOpenAiError(assert, json);
    assert.match(json.error.message, /no-such-model/);
  });

  it('answers a wrong method with 405', async () => {
    const { status, json } = await getJsonResponse(`${gateway.baseUrl}/chat/completions`);
    assert.equal(status, 405);
    assertOpenAiError(assert, json);
  });

  it('answers an unknown path with 404', async () => {
    const { status, json } = await getJsonResponse(`${gateway.baseUrl}/no/such/route`);
    assert.equal(status, 404);
    assertOpenAiError(assert, json);
  });

  it('answers an 11 MiB body with 413', async () => {
    const body = Buffer.alloc(11 * 1024 * 1024, 'a');
    const { status, json } = await sendLargeRequest(gateway.port, {
      path: '/v1/chat/completions',
      headers: { 'content-type': 'application/json' },
      body,
    });
    assert.equal(status, 413);
    assertOpenAiError(assert, json);
  });

  it('answers a 64 KiB header with 431', async () => {
    const { status, json } = await sendLargeRequest(gateway.port, {
      path: '/v1/chat/completions',
      headers: { 'content-type': 'application/json', 'x-padding': 'p'.repeat(64 * 1024) },
      body: Buffer.from(JSON.stringify(chatBody('hi'))),
    });
    assert.equal(status, 431);
    assertOpenAiError(assert, json);
  });

  it('drops a client that stalls halfway through its request head', async () => {
    const result = await rawExchange(
      gateway.port,
      'POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: appl',
      { ms: 6000 },
    );
    assert.notEqual(result.closedBy, 'timeout', `still open after 6 s: ${result.received}`);
    assert.ok(
      result.received === '' || result.received.startsWith('HTTP/1.1 408'),
      `expected 408 or a silent close, got: ${result.received}`,
    );
    assert.ok(result.elapsedMs >= 500, `closed after ${result.elapsedMs} ms, before the timeout`);
    assert.ok(result.elapsedMs < 4000, `took ${result.elapsedMs} ms for a 1000 ms header timeout`);
    // The gateway still serves others afterwards.
    assert.equal((await gateway.chat(chatBody('after stall'))).status, 200);
  });

  it('answers 503 with a reason when every backend of the alias is down', async () => {
    // Give the active health check time to see the dead backend, then ask twice: both the
    // "never tried" and the "known down" paths must answer 503.
    await sleep(600);
    for (let i = 0; i < 2; i++) {
      const { status, json, text } = await gateway.chat({ ...chatBody('anyone?'), model: 'down' });
      assert.equal(status, 503, text);
      assertOpenAiError(assert, json);
      assert.match(json.error.message, /backend|unavailable|unhealthy|down|eligible|connect/i);
    }
  });

  it('answers 504 when the backend sends nothing within first_byte_timeout_ms', async () => {
    const started = Date.now();
    const { status, json, text } = await gateway.chat({ ...chatBody('slow'), model: 'slow' });
    const elapsed = Date.now() - started;
    assert.equal(status, 504, text);
    assertOpenAiError(assert, json);
    assert.ok(elapsed < 3000, `504 after ${elapsed} ms; two attempts of 300 ms were configured`);
  });

  it('counts requests in /metrics', async () => {
    await gateway.chat(chatBody('count me'));
    const response = await fetch(`${gateway.url}/metrics`);
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /text\/plain/);
    const text = await response.text();
    assert.match(text, /^# TYPE \S+ counter$/m, 'has counters');
    const requestSamples = text
      .split('\n')
      .filter((line) => !line.startsWith('#') && /request/i.test(line.split(/[{ ]/)[0]));
    assert.ok(requestSamples.length > 0, `no request metric in:\n${text.slice(0, 2000)}`);
    const total = requestSamples
      .filter((line) => /_total[{ ]/.test(line))
      .reduce((sum, line) => sum + Number(line.trim().split(/\s+/).at(-1)), 0);
    assert.ok(total >= 1, `request counters add up to ${total}:\n${requestSamples.join('\n')}`);
    assert.match(text, /edge/, 'metrics name the backend');
  });
});
