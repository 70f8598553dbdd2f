// Accountability end to end: usage metered from what upstreams report (streams included), budgets
// that hold under 64 concurrent clients, and an audit chain that survives kill -9 with every
// answered request recorded and verifiable offline from an export and the public key.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, describe, it } from 'node:test';

import {
  SseStream,
  chatBody,
  chatRequests,
  getJson,
  getJsonResponse,
  killAll,
  postJson,
  runRedline,
  sendMany,
  sleep,
  startGateway,
  startSim,
  waitFor,
  writeTempFile,
} from './helpers.mjs';

const ADMIN_TOKEN = 'admin-token-for-accountability-tests-0123';
process.env.REDLINE_ADMIN_TOKEN = ADMIN_TOKEN;
const admin = { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } };
const auth = { required: false, admin_token_env: 'REDLINE_ADMIN_TOKEN' };

function adminGet(gateway, path) {
  return getJsonResponse(`${gateway.url}${path}`, admin);
}

async function usage(gateway, query = '') {
  const { status, json, text } = await adminGet(gateway, `/admin/usage${query}`);
  assert.equal(status, 200, text);
  return json.data;
}

// Every JSONL line of an export of the gateway's chain.
function exportChain(gateway) {
  const out = writeTempFile('audit.jsonl', '');
  const exported = runRedline(['audit', 'export', '--config', gateway.configPath, '--out', out]);
  assert.equal(exported.code, 0, exported.stderr + exported.stdout);
  const lines = fs.readFileSync(out, 'utf8').split('\n').filter(Boolean);
  return { file: out, lines, records: lines.map((l) => JSON.parse(l)).filter((r) => r.seq) };
}

describe('accountability', () => {
  after(killAll);

  it('meters streams from the upstream usage even when the client did not ask for it', async (t) => {
    const sim = await startSim(t, { name: 'metered', model: { output_tokens: 16 } });
    const gateway = await startGateway(t, {
      auth,
      backends: [
        { name: 'metered', sim, price_input_per_mtok: 1000, price_output_per_mtok: 2000 },
      ],
      aliases: [{ name: 'chat', targets: ['metered'] }],
    });
    const plain = SseStream.open(`${gateway.baseUrl}/chat/completions`,
      chatBody('count to sixteen', { stream: true }));
    const plainEvents = await (await plain).rest();
    assert.equal(plainEvents.at(-1), '[DONE]');
    assert.ok(!plainEvents.some((e) => e.includes('"usage":{')), 'no usage chunk was asked for');

    const asked = await SseStream.open(`${gateway.baseUrl}/chat/completions`,
      chatBody('count to sixteen', { stream: true, stream_options: { include_usage: true } }));
    const askedEvents = await asked.rest();
    const usageChunk = askedEvents.map((e) => (e === '[DONE]' ? null : JSON.parse(e)))
      .find((e) => e?.usage);
    assert.equal(usageChunk.usage.completion_tokens, 16);
    assert.deepEqual(usageChunk.choices, []);

    // The upstream was asked for usage both times.
    const received = await sim.requests();
    assert.equal(received.length, 2);
    for (const request of received) assert.equal(request.body.stream_options.include_usage, true);

    const rows = await waitFor(async () => {
      const data = await usage(gateway, '?group_by=tenant,model,backend');
      return data[0]?.requests === 2 ? data : null;
    });
    assert.equal(rows.length, 1);
    const row = rows[0];
    assert.equal(row.tenant, 'anonymous');
    assert.equal(row.model, 'chat');
    assert.equal(row.backend, 'metered');
    assert.equal(row.tokens_out, 32);
    const expectedCost = (row.tokens_in * 1000 + 32 * 2000) / 1e6;
    assert.ok(Math.abs(row.cost_usd - expectedCost) < 1e-6, `${row.cost_usd} vs ${expectedCost}`);

    const metrics = await (await fetch(`${gateway.url}/metrics`)).text();
    const cost = metrics.match(/^redline_cost_usd_total\{model="chat",tenant="anonymous"\} (\S+)$/m);
    assert.ok(cost, metrics);
    assert.ok(Math.abs(Number(cost[1]) - expectedCost) < 1e-6);
    assert.match(metrics,
      /^redline_tenant_tokens_total\{direction="output",model="chat",tenant="anonymous"\} 32$/m);
  });

  it('holds a budget under 64 concurrent clients: never overspent, never a 5xx', async (t) => {
    const sim = await startSim(t, { name: 'budgeted', model: { output_tokens: 16, ttft_ms: { mean: 20, stddev: 5 } } });
    const gateway = await startGateway(t, {
      auth,
      backends: [
        { name: 'budgeted', sim, price_input_per_mtok: 1000, price_output_per_mtok: 1000 },
      ],
      aliases: [{ name: 'chat', targets: ['budgeted'] }],
      budgets: [{ tenant: 'anonymous', period: 'day', max_cost_usd: 1.0 }],
    });
    const body = chatBody('a short question', { max_tokens: 16 });
    // Worst case reserved per request: the body's bytes as input tokens plus 16 output tokens, at
    // $0.001 a token: about ten requests' worth of reservations fit the budget at once.
    const worstCase = (Buffer.byteLength(JSON.stringify(body)) + 16) / 1000;
    assert.ok(worstCase * 8 < 1.0 && worstCase * 14 > 1.0, `worst case ${worstCase}`);

    const statuses = [];
    const codes = new Set();
    await Promise.all(Array.from({ length: 64 }, async () => {
      for (let i = 0; i < 6; ++i) {
        const { status, json } = await gateway.chat(body);
        statuses.push(status);
        if (status !== 200) {
          codes.add(json?.error?.code);
          break;
        }
      }
    }));
    const ok = statuses.filter((s) => s === 200).length;
    assert.ok(statuses.every((s) => s === 200 || s === 429), JSON.stringify(statuses));
    assert.deepEqual([...codes], ['budget_exceeded']);
    assert.ok(ok >= 10, `${ok} requests fit`);
    // Nothing refused reached the upstream.
    assert.equal(chatRequests(await sim.stats()), ok);

    const budgets = await waitFor(async () => {
      const { json } = await adminGet(gateway, '/admin/budgets');
      return json.data[0].reserved_cost_usd === 0 ? json.data : null;
    });
    const [budget] = budgets;
    assert.equal(budget.scope, 'tenant:anonymous');
    assert.ok(budget.spent_cost_usd <= 1.0, `spent ${budget.spent_cost_usd}`);
    // Every answer was charged: at least its 16 output tokens at $0.001.
    assert.ok(budget.spent_cost_usd >= ok * 0.016 - 1e-9, `spent ${budget.spent_cost_usd}`);
    const [row] = await waitFor(async () => {
      const data = await usage(gateway);
      return data[0]?.requests === statuses.length ? data : null;
    });
    assert.ok(Math.abs(row.cost_usd - budget.spent_cost_usd) < 1e-6,
      `usage ${row.cost_usd} vs budget ${budget.spent_cost_usd}`);
  });

  it('survives kill -9 under load: the chain verifies and every answered request is in it',
    async (t) => {
      const sim = await startSim(t, { name: 'durable', model: { output_tokens: 8, ttft_ms: { mean: 5, stddev: 2 } } });
      const options = {
        auth,
        audit: { durability: 'before_response', checkpoint_interval_ms: 100 },
        store: { sqlite_path: writeTempFile('durable.db', '') },
        backends: [{ name: 'durable', sim }],
        aliases: [{ name: 'chat', targets: ['durable'] }],
      };
      const gateway = await startGateway(t, options);
      const completed = [];
      let stop = false;
      const client = async (n) => {
        while (!stop) {
          try {
            if (n % 2 === 0) {
              const response = await fetch(`${gateway.baseUrl}/chat/completions`, {
                method: 'POST',
                headers: { 'content-type': 'application/json' },
                body: JSON.stringify(chatBody(`json ${n}`)),
              });
              const json = await response.json();
              if (response.status === 200 && json.choices) {
                completed.push(response.headers.get('x-request-id'));
              }
            } else {
              const stream = await SseStream.open(`${gateway.baseUrl}/chat/completions`,
                chatBody(`stream ${n}`, { stream: true }));
              const events = await stream.rest();
              if (events.at(-1) === '[DONE]') completed.push(stream.headers['x-request-id']);
            }
          } catch {
            // The gateway died mid-request: that one was not seen completed.
          }
        }
      };
      const load = Promise.all(Array.from({ length: 16 }, (_, n) => client(n)));
      await waitFor(() => completed.length >= 200, 20000);
      await gateway.proc.kill();
      stop = true;
      await load;
      assert.ok(completed.length >= 200);

      const restarted = await startGateway(t, options);
      await restarted.proc.stop();
      const verified = runRedline(['audit', 'verify', '--config', restarted.configPath]);
      assert.equal(verified.code, 0, verified.stdout + verified.stderr);

      const { records } = exportChain(restarted);
      const recorded = new Set(records.map((r) => r.request_id));
      const missing = completed.filter((id) => !recorded.has(id));
      assert.deepEqual(missing, [], `${missing.length} of ${completed.length} answered requests have no record`);
    });

  it('exports a chain that verifies with only the public key, and names a tampered record',
    async (t) => {
      const sim = await startSim(t, { name: 'audited' });
      const gateway = await startGateway(t, {
        auth: { required: true, admin_token_env: 'REDLINE_ADMIN_TOKEN' },
        audit: { checkpoint_interval_ms: 50 },
        backends: [{ name: 'audited', sim }],
        aliases: [{ name: 'chat', targets: ['audited'] }],
      });
      const created = await postJson(`${gateway.url}/admin/keys`, { tenant: 'acme' }, admin);
      assert.equal(created.status, 201, created.text);
      const key = created.json.key;
      const sent = await sendMany(20, 4, () =>
        gateway.chat(chatBody('hello'), { headers: { authorization: `Bearer ${key}` } }));
      assert.ok(sent.every((r) => r.status === 200));
      const denied = await gateway.chat(chatBody('hello'), { headers: { authorization: 'Bearer rl_nope_nope' } });
      assert.equal(denied.status, 401);
      // A key minted by the CLI in another process joins the same chain.
      const minted = runRedline(['keys', 'create', '--config', gateway.configPath, '--tenant', 'ops']);
      assert.equal(minted.code, 0, minted.stderr);
      const mintedId = minted.stdout.split('\n')[1];
      await sleep(200);  // past a checkpoint
      await gateway.proc.stop();

      const pubkey = runRedline(['audit', 'pubkey', '--config', gateway.configPath]);
      assert.equal(pubkey.code, 0, pubkey.stderr);
      assert.match(pubkey.stdout, /BEGIN PUBLIC KEY/);
      const pubkeyFile = writeTempFile('audit.pub', pubkey.stdout);

      const { file, lines, records } = exportChain(gateway);
      assert.equal(records.length, 23, 'two admin actions, twenty answers and one refusal');
      const actions = records.filter((r) => r.kind === 'admin');
      assert.deepEqual(actions.map((r) => [r.action, r.target]),
        [['keys.create', created.json.id], ['keys.create', mintedId]]);
      const answered = records.filter((r) => r.kind === 'request' && r.status === 200);
      assert.equal(answered.length, 20);
      assert.ok(answered.every((r) => r.tenant === 'acme' && r.key_id === created.json.id &&
        r.backend === 'audited' && r.request_sha256.length === 64 && r.response_sha256.length === 64));
      assert.ok(records.some((r) => r.status === 401));

      const good = runRedline(['audit', 'verify', '--export', file, '--pubkey', pubkeyFile]);
      assert.equal(good.code, 0, good.stdout + good.stderr);

      // One changed field in the tenth record.
      const index = lines.findIndex((l) => l.includes('"seq":10,'));
      const tampered = [...lines];
      tampered[index] = tampered[index].replace('"status":200', '"status":201');
      assert.notEqual(tampered[index], lines[index]);
      const tamperedFile = writeTempFile('tampered.jsonl', `${tampered.join('\n')}\n`);
      const bad = runRedline(['audit', 'verify', '--export', tamperedFile, '--pubkey', pubkeyFile]);
      assert.equal(bad.code, 1, bad.stdout + bad.stderr);
      assert.match(bad.stdout + bad.stderr, /record 10\b.*modified/);

      // A record taken out of the middle.
      const deletedFile = writeTempFile('deleted.jsonl',
        `${lines.filter((_, i) => i !== index).join('\n')}\n`);
      const gap = runRedline(['audit', 'verify', '--export', deletedFile, '--pubkey', pubkeyFile]);
      assert.equal(gap.code, 1);
      assert.match(gap.stdout + gap.stderr, /deleted/);
    });
});
