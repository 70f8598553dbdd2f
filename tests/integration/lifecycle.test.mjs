// Process lifecycle of `redline serve`: SIGHUP reloads (a valid config takes effect without
// cutting streams, an invalid one is refused and the old one kept), SIGTERM drains.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, describe, it } from 'node:test';

import {
  SseStream,
  chatBody,
  killAll,
  sleep,
  startGateway,
  startSim,
  waitFor,
} from './helpers.mjs';

// About two seconds of streaming: long enough to act while it runs.
const slowModel = { output_tokens: 20, tokens_per_second: 10 };

function gatewayOptions(sim, aliases = [{ name: 'chat', targets: ['slow'] }]) {
  return { backends: [{ name: 'slow', sim }], aliases };
}

function contentOf(payloads) {
  return payloads
    .filter((p) => p !== '[DONE]')
    .map((p) => JSON.parse(p))
    .map((chunk) => chunk.choices?.[0]?.delta?.content ?? '')
    .join('');
}

function connects(port) {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.setTimeout(1000);
    socket.on('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.on('error', () => resolve(false));
    socket.on('timeout', () => {
      socket.destroy();
      resolve(false);
    });
  });
}

describe('lifecycle', () => {
  after(killAll);

  it('SIGHUP with a valid config adds an alias and leaves in-flight streams alone', async (t) => {
    const sim = await startSim(t, { name: 'slow', model: slowModel });
    const gateway = await startGateway(t, gatewayOptions(sim));
    assert.deepEqual(await gateway.modelIds(), ['chat']);

    const stream = await SseStream.open(
      `${gateway.baseUrl}/chat/completions`,
      chatBody('keep going', { stream: true }),
    );
    assert.equal(stream.status, 200);
    const first = await stream.next(5000);
    assert.ok(first && first !== '[DONE]');

    await gateway.reload(
      gatewayOptions(sim, [
        { name: 'chat', targets: ['slow'] },
        { name: 'chat-v2', targets: ['slow'] },
      ]),
    );
    const reloaded = await waitFor(async () => (await gateway.modelIds()).includes('chat-v2'), 3000);
    assert.ok(reloaded, `chat-v2 never appeared\n${gateway.proc.describe()}`);

    const rest = await stream.rest(15000);
    assert.equal(rest.at(-1), '[DONE]', `the in-flight stream was cut by the reload:\n${stream.raw}`);
    assert.ok(contentOf([first, ...rest]).length > 0);

    const viaNewAlias = await gateway.chat({ ...chatBody('new alias'), model: 'chat-v2' });
    assert.equal(viaNewAlias.status, 200, viaNewAlias.text);
    assert.ok(gateway.proc.running);
  });

  it('SIGHUP with an invalid config keeps the old config and the process', async (t) => {
    const sim = await startSim(t, { name: 'fast' });
    const gateway = await startGateway(t, gatewayOptions(sim));
    await gateway.reload('[server\nlisten = \n[[models]]\nname = 3\n');
    await sleep(500);
    assert.ok(gateway.proc.running, gateway.proc.describe());
    assert.deepEqual(await gateway.modelIds(), ['chat']);
    const response = await gateway.chat(chatBody('still here'));
    assert.equal(response.status, 200, response.text);

    // A config that parses but is wrong (alias pointing at a missing backend) is refused too.
    await gateway.reload(
      gatewayOptions(sim, [{ name: 'broken', targets: [{ backend: 'nope', model: 'test-model' }] }]),
    );
    await sleep(500);
    assert.ok(gateway.proc.running, gateway.proc.describe());
    assert.deepEqual(await gateway.modelIds(), ['chat']);
  });

  it('SIGTERM finishes in-flight streams, refuses new connections, then exits 0', async (t) => {
    const sim = await startSim(t, { name: 'slow', model: slowModel });
    const gateway = await startGateway(t, gatewayOptions(sim));
    const stream = await SseStream.open(
      `${gateway.baseUrl}/chat/completions`,
      chatBody('drain me', { stream: true }),
    );
    assert.equal(stream.status, 200);
    const first = await stream.next(5000);
    assert.ok(first && first !== '[DONE]');

    gateway.proc.signal('SIGTERM');
    await sleep(300);
    assert.ok(gateway.proc.running, 'still running while a stream is in flight');
    assert.equal(await connects(gateway.port), false, 'accepts new connections while draining');

    const rest = await stream.rest(15000);
    assert.equal(rest.at(-1), '[DONE]', `the stream was cut by SIGTERM:\n${stream.raw}`);
    const { code, signal } = await gateway.proc.waitExit(10000);
    assert.equal(signal, null, gateway.proc.describe());
    assert.equal(code, 0, gateway.proc.describe());
  });

  it('SIGTERM with nothing in flight exits 0 promptly', async (t) => {
    const sim = await startSim(t, { name: 'fast' });
    const gateway = await startGateway(t, gatewayOptions(sim));
    assert.equal((await gateway.chat(chatBody('one'))).status, 200);
    const started = Date.now();
    gateway.proc.signal('SIGTERM');
    const { code } = await gateway.proc.waitExit(5000);
    assert.equal(code, 0, gateway.proc.describe());
    assert.ok(Date.now() - started < 3000, 'an idle gateway does not wait out the drain timeout');
  });
});
