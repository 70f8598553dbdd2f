// The official OpenAI SDK, pointed at a real gateway in front of real simulators, must work as it
// does against OpenAI: typed responses, streaming, tool calls, JSON mode, embeddings, model
// listing, and its typed error classes, including the red lines' refusals.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import OpenAI from 'openai';

import { freePort, killAll, postJson, startGateway, startSim } from '../integration/helpers.mjs';

const ADMIN_TOKEN = 'compat-admin-token-0123456789abcdef';
process.env.REDLINE_COMPAT_ADMIN_TOKEN = ADMIN_TOKEN;

describe('OpenAI SDK against Redline', () => {
  let client;
  let gateway;

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
    const edge = await startSim(null, { name: 'edge' });
    const limited = await startSim(null, {
      name: 'limited',
      failures: { rate_limit_429: 1.0, retry_after_s: 1 },
    });
    gateway = await startGateway(null, {
      auth: { required: true, admin_token_env: 'REDLINE_COMPAT_ADMIN_TOKEN' },
      rules: [{ name: 'no-private-keys', action: 'deny', detectors: ['private_key'] }],
      backends: [
        {
          name: 'edge',
          sim: edge,
          tier: 'edge',
          clearance: 'CONFIDENTIAL//PII',
          models: [{ name: 'llama-3.1-8b' }, { name: 'text-embedding-3-small' }],
        },
        { name: 'limited', sim: limited, models: [{ name: 'gpt-4o-mini' }] },
        { name: 'dead', port: await freePort(), models: [{ name: 'gpt-4o-mini' }] },
      ],
      aliases: [
        { name: 'chat', targets: [{ backend: 'edge', model: 'llama-3.1-8b' }] },
        { name: 'embed', targets: [{ backend: 'edge', model: 'text-embedding-3-small' }] },
        { name: 'limited', targets: [{ backend: 'limited', model: 'gpt-4o-mini' }] },
        { name: 'down', targets: [{ backend: 'dead', model: 'gpt-4o-mini' }] },
      ],
    });
    client = clientWith(await createKey({ tenant: 'compat' }));
  });
  after(killAll);

  const messages = [
    { role: 'system', content: 'You are terse.' },
    { role: 'user', content: 'Say hello.' },
  ];

  it('creates a chat completion', async () => {
    const completion = await client.chat.completions.create({ model: 'chat', messages });
    assert.equal(completion.object, 'chat.completion');
    assert.equal(typeof completion.id, 'string');
    assert.equal(completion.choices.length, 1);
    assert.equal(completion.choices[0].message.role, 'assistant');
    assert.ok(completion.choices[0].message.content.length > 0);
    assert.equal(completion.choices[0].finish_reason, 'stop');
    assert.ok(completion.usage.total_tokens > 0);
    assert.equal(
      completion.usage.total_tokens,
      completion.usage.prompt_tokens + completion.usage.completion_tokens,
    );
  });

  it('streams a chat completion with usage at the end', async () => {
    const stream = await client.chat.completions.create({
      model: 'chat',
      messages,
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    assert.ok(chunks.length >= 3, `only ${chunks.length} chunks`);
    const text = chunks.map((c) => c.choices[0]?.delta?.content ?? '').join('');
    assert.ok(text.length > 0);
    const last = chunks.at(-1);
    assert.deepEqual(last.choices, [], 'the usage chunk has no choices');
    assert.ok(last.usage && last.usage.completion_tokens > 0, JSON.stringify(last));
    for (const chunk of chunks.slice(0, -1)) assert.ok(!chunk.usage, 'usage only in the last chunk');
    assert.ok(chunks.some((c) => c.choices[0]?.finish_reason === 'stop'));
  });

  const weatherTool = {
    type: 'function',
    function: {
      name: 'get_weather',
      description: 'Current weather for a city',
      parameters: {
        type: 'object',
        properties: { city: { type: 'string' } },
        required: ['city'],
      },
    },
  };

  it('returns tool calls the SDK parses', async () => {
    const completion = await client.chat.completions.create({
      model: 'chat',
      messages: [{ role: 'user', content: 'Weather in Oslo?' }],
      tools: [weatherTool],
    });
    const choice = completion.choices[0];
    assert.equal(choice.finish_reason, 'tool_calls');
    assert.ok(choice.message.tool_calls.length >= 1);
    const call = choice.message.tool_calls[0];
    assert.equal(call.type, 'function');
    assert.equal(typeof call.id, 'string');
    assert.equal(call.function.name, 'get_weather');
    const args = JSON.parse(call.function.arguments);
    assert.equal(typeof args, 'object');
  });

  it('streams tool calls the SDK assembles', async () => {
    const runner = client.chat.completions.stream({
      model: 'chat',
      messages: [{ role: 'user', content: 'Weather in Oslo?' }],
      tools: [weatherTool],
    });
    const completion = await runner.finalChatCompletion();
    const call = completion.choices[0].message.tool_calls?.[0];
    assert.ok(call, JSON.stringify(completion));
    assert.equal(call.function.name, 'get_weather');
    JSON.parse(call.function.arguments);
  });

  it('answers JSON mode with parseable JSON', async () => {
    const completion = await client.chat.completions.create({
      model: 'chat',
      messages: [{ role: 'user', content: 'Describe a cat as JSON.' }],
      response_format: { type: 'json_object' },
    });
    const parsed = JSON.parse(completion.choices[0].message.content);
    assert.equal(typeof parsed, 'object');
    assert.notEqual(parsed, null);
  });

  it('creates legacy completions', async () => {
    const completion = await client.completions.create({ model: 'chat', prompt: 'Once upon', max_tokens: 4 });
    assert.equal(completion.object, 'text_completion');
    assert.equal(typeof completion.choices[0].text, 'string');
  });

  it('creates embeddings as floats', async () => {
    const response = await client.embeddings.create({
      model: 'embed',
      input: ['first text', 'second text'],
      encoding_format: 'float',
    });
    assert.equal(response.data.length, 2);
    const [first, second] = response.data.map((d) => d.embedding);
    assert.ok(first.length > 0);
    assert.equal(first.length, second.length);
    assert.ok(first.every((x) => typeof x === 'number' && Number.isFinite(x)));
    assert.notDeepEqual(first, second, 'different texts, different vectors');
  });

  it('creates embeddings with the SDK default (base64) encoding', async () => {
    const response = await client.embeddings.create({ model: 'embed', input: 'hello' });
    assert.equal(response.data.length, 1);
    const vector = response.data[0].embedding;
    assert.ok(vector.length > 0, 'decoded vector has dimensions');
    assert.ok(Array.from(vector).every(Number.isFinite));
    const asFloats = await client.embeddings.create({
      model: 'embed',
      input: 'hello',
      encoding_format: 'float',
    });
    assert.equal(vector.length, asFloats.data[0].embedding.length);
  });

  it('lists the aliases as models', async () => {
    const ids = [];
    for await (const model of client.models.list()) ids.push(model.id);
    for (const alias of ['chat', 'embed', 'limited', 'down']) assert.ok(ids.includes(alias), ids.join());
  });

  it('raises BadRequestError for a malformed request', async () => {
    await assert.rejects(
      client.chat.completions.create({ model: 'chat', messages: 'not a list' }),
      (error) => error instanceof OpenAI.BadRequestError && error.status === 400,
    );
  });

  it('raises NotFoundError for an unknown model', async () => {
    await assert.rejects(
      client.chat.completions.create({ model: 'gpt-nope', messages }),
      (error) => {
        assert.ok(error instanceof OpenAI.NotFoundError, `${error.constructor.name}: ${error.message}`);
        assert.equal(error.status, 404);
        assert.ok(error.error?.message, 'the SDK read the error body');
        return true;
      },
    );
  });

  it('raises RateLimitError when the only backend answers 429', async () => {
    await assert.rejects(client.chat.completions.create({ model: 'limited', messages }), (error) => {
      assert.ok(error instanceof OpenAI.RateLimitError, `${error.constructor.name}: ${error.message}`);
      assert.equal(error.status, 429);
      return true;
    });
  });

  it('raises an APIError with status 503 when no backend can serve', async () => {
    await assert.rejects(client.chat.completions.create({ model: 'down', messages }), (error) => {
      assert.ok(error instanceof OpenAI.InternalServerError, `${error.constructor.name}: ${error.message}`);
      assert.equal(error.status, 503);
      assert.ok(error.headers.get('x-request-id'), 'errors carry the request id');
      return true;
    });
  });

  it('raises AuthenticationError without a valid key', async () => {
    await assert.rejects(clientWith('rl_000000000000_not-a-key').chat.completions.create({ model: 'chat', messages }), (error) => {
      assert.ok(error instanceof OpenAI.AuthenticationError, `${error.constructor.name}: ${error.message}`);
      assert.equal(error.status, 401);
      assert.equal(error.code, 'invalid_api_key');
      return true;
    });
  });

  it('raises PermissionDeniedError naming the red-line rule that blocked', async () => {
    const pem = '-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7\n-----END RSA PRIVATE KEY-----';
    const request = { model: 'chat', messages: [{ role: 'user', content: `use ${pem}` }] };
    await assert.rejects(client.chat.completions.create(request), (error) => {
      assert.ok(error instanceof OpenAI.PermissionDeniedError, `${error.constructor.name}: ${error.message}`);
      assert.equal(error.status, 403);
      assert.equal(error.code, 'red_line_denied');
      assert.match(error.message, /no-private-keys/);
      assert.doesNotMatch(error.message, /MIIE/);
      return true;
    });
  });

  it('raises PermissionDeniedError for a model the key may not use', async () => {
    const narrow = clientWith(await createKey({ tenant: 'compat', models: ['embed'] }));
    await assert.rejects(narrow.chat.completions.create({ model: 'chat', messages }), (error) => {
      assert.ok(error instanceof OpenAI.PermissionDeniedError, `${error.constructor.name}: ${error.message}`);
      assert.equal(error.code, 'model_not_allowed');
      return true;
    });
  });

  it('raises a 503 APIError when no backend is cleared for the label', async () => {
    await assert.rejects(
      client.chat.completions.create({ model: 'chat', messages }, { headers: { 'X-Redline-Classification': 'SECRET' } }),
      (error) => {
        assert.ok(error instanceof OpenAI.InternalServerError, `${error.constructor.name}: ${error.message}`);
        assert.equal(error.status, 503);
        assert.equal(error.code, 'no_cleared_backend');
        assert.match(error.message, /label SECRET/);
        assert.equal(error.headers.get('x-redline-label'), 'SECRET');
        return true;
      },
    );
  });
});
