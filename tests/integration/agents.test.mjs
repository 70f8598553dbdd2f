// Durable agents end to end: server-side tool loops over real MCP servers (the official SDKs,
// both protocol revisions, stdio and Streamable HTTP), approvals, red lines on tool calls, limits,
// cancel, task graphs, and kill -9 of the gateway in the middle of runs and graphs. What a tool
// server executed is read from the server's own ledger (its get_counts tool's notes file), what
// the model saw from the simulator (/sim/requests).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';

import OpenAI from 'openai';

import {
  callGateway,
  killAll,
  mintKey,
  mcpServersDir,
  RedlineProcess,
  sleep,
  startGateway,
  startMcpHttpServer,
  startSim,
  waitFor,
} from './helpers.mjs';

const ADMIN_TOKEN = 'admin-token-for-agent-tests-0123456789';
process.env.REDLINE_AGENTS_ADMIN_TOKEN = ADMIN_TOKEN;

const call = callGateway;
const createKey = (gateway, fields) => mintKey(gateway, ADMIN_TOKEN, fields);

async function startRun(gateway, key, body) {
  const { status, json, text } = await call(gateway, 'POST', '/v1/agent/runs', { key, body });
  assert.equal(status, 200, text);
  return json;
}

async function getRun(gateway, key, id) {
  const { status, json, text } = await call(gateway, 'GET', `/v1/agent/runs/${id}`, { key });
  assert.equal(status, 200, text);
  return json;
}

async function steps(gateway, key, id) {
  const { status, json, text } = await call(gateway, 'GET', `/v1/agent/runs/${id}/steps`, { key });
  assert.equal(status, 200, text);
  return json.data;
}

/** Polls the run until its status is one of `statuses`. */
async function runReaches(gateway, key, id, statuses, ms = 20000) {
  let run;
  await waitFor(async () => {
    run = await getRun(gateway, key, id);
    return statuses.includes(run.status);
  }, ms).catch(() => {
    throw new Error(`run ${id} did not reach ${statuses} within ${ms} ms: ${JSON.stringify(run)}`);
  });
  return run;
}

/** Polls the run until it waits for the approval of a step other than `decidedStep`. */
async function nextApproval(gateway, key, id, decidedStep, ms = 20000) {
  let run;
  await waitFor(async () => {
    run = await getRun(gateway, key, id);
    return run.status === 'waiting_approval' && run.pending.step !== decidedStep;
  }, ms).catch(() => {
    throw new Error(`run ${id} did not ask for another approval within ${ms} ms: ${JSON.stringify(run)}`);
  });
  return run;
}

async function graphReaches(gateway, key, id, statuses, ms = 30000) {
  let graph;
  await waitFor(async () => {
    const { json } = await call(gateway, 'GET', `/v1/agent/graphs/${id}`, { key });
    graph = json;
    return statuses.includes(graph.status);
  }, ms).catch(() => {
    throw new Error(`graph ${id} did not reach ${statuses} within ${ms} ms: ${JSON.stringify(graph)}`);
  });
  return graph;
}

/** What the tool server executed, from its ledger file (see tests/mcp_servers/tools.mjs). */
function ledger(notes) {
  const entries = fs.existsSync(notes)
    ? fs.readFileSync(notes, 'utf8').split('\n').filter(Boolean).map((line) => JSON.parse(line))
    : [];
  const executions = entries.filter((entry) => entry.event !== 'cancelled');
  const byKey = {};
  for (const entry of executions) byKey[entry.key ?? ''] = (byKey[entry.key ?? ''] ?? 0) + 1;
  return { total: executions.length, byKey };
}

const mcpTools = (server, tools, extra = {}) => [{ type: 'mcp', server_label: server, allowed_tools: tools, ...extra }];

/** The text of the tool results a run's journal holds, in order. */
const toolOutputs = (journal) =>
  journal.filter((step) => step.kind === 'tool_call' && step.status === 'completed').map((step) => step.result.output);

function stdioServer(name, script, notes, extra = {}) {
  return {
    name,
    transport: 'stdio',
    command: process.execPath,
    args: [path.join(mcpServersDir, script), '--notes', notes, ...(extra.flags ?? [])],
    timeout_ms: 5000,
    ...Object.fromEntries(Object.entries(extra).filter(([key]) => key !== 'flags')),
  };
}

describe('agents: runs over MCP tools', () => {
  let sims;
  let gateway;
  let keyA;
  let keyB;
  const notes = {};

  before(async () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'redline-agents-'));
    for (const name of ['files', 'web', 'fragile', 'approvals', 'blocked']) notes[name] = path.join(tmp, `${name}.jsonl`);
    sims = {
      agent: await startSim(null, { name: 'agent', model: { output_tokens: 8, tool_rounds: 2, cite_tool_results: true } }),
      slow: await startSim(null, { name: 'slow', model: { output_tokens: 8, ttft_ms: { mean: 3000, stddev: 0 } } }),
      broken: await startSim(null, { name: 'broken', failures: { error_5xx: 1.0 } }),
    };
    const web = startMcpHttpServer('v2_server.mjs', notes.web);
    gateway = await startGateway(null, {
      auth: { required: true, admin_token_env: 'REDLINE_AGENTS_ADMIN_TOKEN', key_cache_ttl_ms: 200 },
      agents: { max_concurrent_runs_per_tenant: 8 },
      rules: [{ name: 'no-blocked-notes', action: 'deny', tools: ['blocked/append_note'] }],
      mcp_servers: [
        stdioServer('files', 'v1_server.mjs', notes.files),
        { name: 'web', transport: 'http', url: await web.listening, timeout_ms: 5000 },
        stdioServer('fragile', 'v1_server.mjs', notes.fragile),
        stdioServer('approvals', 'v2_server.mjs', notes.approvals, { require_approval: ['append_note'] }),
        stdioServer('blocked', 'v1_server.mjs', notes.blocked),
        stdioServer('alpha-only', 'v1_server.mjs', path.join(tmp, 'alpha.jsonl'), { tenants: ['alpha'] }),
      ],
      backends: [
        { name: 'agent', sim: sims.agent },
        { name: 'slow', sim: sims.slow },
        { name: 'broken', sim: sims.broken },
      ],
      aliases: [
        { name: 'agent', targets: ['agent'] },
        { name: 'slow', targets: ['slow'] },
        { name: 'broken', targets: ['broken'] },
      ],
    });
    keyA = await createKey(gateway, { tenant: 'alpha' });
    keyB = await createKey(gateway, { tenant: 'beta' });
  });
  after(killAll);

  for (const [server, revision] of [['files', 'sdk 1.x over stdio'], ['web', 'server 2.x over Streamable HTTP']]) {
    it(`runs the tool loop server-side: ${revision}`, async () => {
      const run = await startRun(gateway, keyA, {
        model: 'agent',
        instructions: 'Answer from what the search finds.',
        input: 'What do we know about red lines?',
        tools: mcpTools(server, ['search']),
      });
      assert.match(run.id, /^run_/);
      const done = await runReaches(gateway, keyA, run.id, ['completed', 'failed']);
      assert.equal(done.status, 'completed', JSON.stringify(done));
      assert.equal(done.model_calls, 3);
      assert.equal(done.tool_calls, 2);
      assert.ok(done.usage.input_tokens > 0);

      const journal = await steps(gateway, keyA, run.id);
      assert.deepEqual(
        journal.map((step) => step.kind),
        ['setup', 'model_call', 'tool_call', 'model_call', 'tool_call', 'model_call'],
      );
      assert.ok(journal.every((step) => step.status === 'completed'), JSON.stringify(journal));
      const toolSteps = journal.filter((step) => step.kind === 'tool_call');
      assert.ok(toolSteps.every((step) => step.idempotency_key), 'each tool call carries a key');
      assert.equal(new Set(toolSteps.map((step) => step.idempotency_key)).size, 2);
      // The answer cites the last result, which came from the server (its hits name the query).
      const outputs = toolOutputs(journal);
      assert.match(outputs[1], /result 1 <https:\/\/example\.test\//);
      assert.ok(done.output_text.startsWith(`Found: ${outputs[1].split('\n')[0]}`), done.output_text);

      // The model saw the tool under its qualified name and the results as tool messages.
      const requests = (await sims.agent.requests()).filter((r) => r.body.tools?.some((t) => t.function.name === `${server}__search`));
      const last = requests.at(-1).body.messages;
      assert.equal(last.filter((m) => m.role === 'tool').length, 2);
      assert.equal(last[0].role, 'system');
    });
  }

  it('passes a tool error to the model and goes on', async () => {
    const run = await startRun(gateway, keyA, { model: 'agent', input: 'try the failing tool', tools: mcpTools('files', ['fail']) });
    const done = await runReaches(gateway, keyA, run.id, ['completed', 'failed']);
    assert.equal(done.status, 'completed', JSON.stringify(done));
    const toolSteps = (await steps(gateway, keyA, run.id)).filter((step) => step.kind === 'tool_call');
    assert.equal(toolSteps.length, 2);
    assert.ok(toolSteps.every((step) => step.result.is_error === true), JSON.stringify(toolSteps));
  });

  it('pauses for a decision when the server crashes mid-call, then resumes', async () => {
    const run = await startRun(gateway, keyA, { model: 'agent', input: 'crash it', tools: mcpTools('fragile', ['crash']) });
    const paused = await runReaches(gateway, keyA, run.id, ['requires_action', 'completed', 'failed']);
    assert.equal(paused.status, 'requires_action', JSON.stringify(paused));
    assert.equal(paused.pending.type, 'unknown_outcome');
    assert.equal(paused.pending.tool, 'crash');
    assert.match(paused.pending.reason, /exited|crash/i);

    // Another tenant cannot decide it, nor even see it.
    const foreign = await call(gateway, 'POST', `/v1/agent/runs/${run.id}/resolve`, {
      key: keyB,
      body: { step: paused.pending.step, action: 'assume_done', output: 'x' },
    });
    assert.equal(foreign.status, 404);
    const wrongStep = await call(gateway, 'POST', `/v1/agent/runs/${run.id}/resolve`, {
      key: keyA,
      body: { step: 1, action: 'assume_done', output: 'x' },
    });
    assert.equal(wrongStep.status, 409, wrongStep.text);

    const resolved = await call(gateway, 'POST', `/v1/agent/runs/${run.id}/resolve`, {
      key: keyA,
      body: { step: paused.pending.step, action: 'assume_done', output: 'the crash tool did its job' },
    });
    assert.equal(resolved.status, 200, resolved.text);
    // The second round crashes the (restarted) server again; this time the run is failed.
    const again = await runReaches(gateway, keyA, run.id, ['requires_action', 'completed', 'failed']);
    assert.equal(again.status, 'requires_action', JSON.stringify(again));
    assert.notEqual(again.pending.step, paused.pending.step);
    const failed = await call(gateway, 'POST', `/v1/agent/runs/${run.id}/resolve`, {
      key: keyA,
      body: { step: again.pending.step, action: 'fail' },
    });
    assert.equal(failed.status, 200, failed.text);
    const end = await runReaches(gateway, keyA, run.id, ['failed', 'completed']);
    assert.equal(end.status, 'failed');

    // The server came back for the next run.
    const next = await startRun(gateway, keyA, { model: 'agent', input: 'search after crash', tools: mcpTools('fragile', ['search']) });
    assert.equal((await runReaches(gateway, keyA, next.id, ['completed', 'failed'])).status, 'completed');
  });

  it('waits for approval of a gated tool: the owning key approves, the admin approves, rejections are told to the model', async () => {
    const run = await startRun(gateway, keyA, { model: 'agent', input: 'note this', tools: mcpTools('approvals', ['append_note']) });
    const waiting = await runReaches(gateway, keyA, run.id, ['waiting_approval', 'completed', 'failed']);
    assert.equal(waiting.status, 'waiting_approval', JSON.stringify(waiting));
    assert.equal(waiting.pending.type, 'approval');
    assert.equal(waiting.pending.tool, 'append_note');
    await sleep(300);
    assert.equal(ledger(notes.approvals).total, 0, 'nothing runs before the approval');

    const listed = await call(gateway, 'GET', '/admin/agent/approvals', { key: ADMIN_TOKEN });
    assert.equal(listed.status, 200, listed.text);
    assert.ok(listed.json.data.some((entry) => entry.id === run.id && entry.tenant === 'alpha'), listed.text);
    const notAdmin = await call(gateway, 'GET', '/admin/agent/approvals', { key: keyA });
    assert.equal(notAdmin.status, 401);
    const foreign = await call(gateway, 'POST', `/v1/agent/runs/${run.id}/approvals/${waiting.pending.step}`, { key: keyB, body: { approve: true } });
    assert.equal(foreign.status, 404);

    const byOwner = await call(gateway, 'POST', `/v1/agent/runs/${run.id}/approvals/${waiting.pending.step}`, {
      key: keyA,
      body: { approve: true, reason: 'looks fine' },
    });
    assert.equal(byOwner.status, 200, byOwner.text);
    const second = await nextApproval(gateway, keyA, run.id, waiting.pending.step);
    assert.equal(ledger(notes.approvals).total, 1);
    const byAdmin = await call(gateway, 'POST', `/admin/agent/runs/alpha/${run.id}/approvals/${second.pending.step}`, {
      key: ADMIN_TOKEN,
      body: { approve: true },
    });
    assert.equal(byAdmin.status, 200, byAdmin.text);
    assert.equal((await runReaches(gateway, keyA, run.id, ['completed', 'failed'])).status, 'completed');
    assert.equal(ledger(notes.approvals).total, 2);
    const approvals = (await steps(gateway, keyA, run.id)).filter((step) => step.kind === 'approval');
    assert.deepEqual(approvals.map((step) => step.result.approved), [true, true]);
    assert.deepEqual(approvals.map((step) => step.result.by.split(':')[0]), ['key', 'admin']);

    const rejected = await startRun(gateway, keyA, { model: 'agent', input: 'note that', tools: mcpTools('approvals', ['append_note']) });
    let decided = 0;
    for (let round = 0; round < 2; ++round) {
      const pending = await nextApproval(gateway, keyA, rejected.id, decided);
      decided = pending.pending.step;
      const answer = await call(gateway, 'POST', `/v1/agent/runs/${rejected.id}/approvals/${pending.pending.step}`, {
        key: keyA,
        body: { approve: false, reason: 'not today' },
      });
      assert.equal(answer.status, 200, answer.text);
    }
    assert.equal((await runReaches(gateway, keyA, rejected.id, ['completed', 'failed'])).status, 'completed');
    assert.equal(ledger(notes.approvals).total, 2, 'rejected calls never ran');
    const told = toolOutputs(await steps(gateway, keyA, rejected.id));
    assert.ok(told.every((text) => /not approved/.test(text)), JSON.stringify(told));
  });

  it('leaves a run parked for a decision alone while other runs of its tenant come and go', async () => {
    const parked = await startRun(gateway, keyA, { model: 'agent', input: 'note this', tools: mcpTools('approvals', ['append_note']) });
    const waiting = await runReaches(gateway, keyA, parked.id, ['waiting_approval', 'completed', 'failed']);
    assert.equal(waiting.status, 'waiting_approval', JSON.stringify(waiting));
    await sleep(1100); // updated_at counts seconds
    const other = await startRun(gateway, keyA, { model: 'agent', input: 'search while one waits', tools: mcpTools('files', ['search']) });
    assert.equal((await runReaches(gateway, keyA, other.id, ['completed', 'failed'])).status, 'completed');
    await sleep(300);
    // A run that waits for a decision is woken by the decision only: written again, it could undo
    // a decision that landed meanwhile.
    const still = await getRun(gateway, keyA, parked.id);
    assert.equal(still.status, 'waiting_approval');
    assert.equal(still.updated_at, waiting.updated_at, 'the parked run was not written again');
    assert.equal((await call(gateway, 'POST', `/v1/agent/runs/${parked.id}/cancel`, { key: keyA })).status, 200);
  });

  it('denies a tool call by red-line rule: the server never sees it', async () => {
    const run = await startRun(gateway, keyA, { model: 'agent', input: 'write a note', tools: mcpTools('blocked', ['append_note']) });
    const done = await runReaches(gateway, keyA, run.id, ['completed', 'failed']);
    assert.equal(done.status, 'completed', JSON.stringify(done));
    const toolSteps = (await steps(gateway, keyA, run.id)).filter((step) => step.kind === 'tool_call');
    assert.equal(toolSteps.length, 2);
    for (const step of toolSteps) {
      assert.equal(step.result.decision, 'deny');
      assert.match(step.result.output, /blocked by red-line rule 'no-blocked-notes'/);
    }
    assert.equal(ledger(notes.blocked).total, 0);
  });

  it('keeps runs and tool servers to their tenant', async () => {
    const run = await startRun(gateway, keyA, { model: 'agent', input: 'mine', tools: mcpTools('files', ['search']) });
    for (const suffix of ['', '/steps']) {
      const { status } = await call(gateway, 'GET', `/v1/agent/runs/${run.id}${suffix}`, { key: keyB });
      assert.equal(status, 404);
    }
    assert.equal((await call(gateway, 'POST', `/v1/agent/runs/${run.id}/cancel`, { key: keyB })).status, 404);
    const listB = await call(gateway, 'GET', '/v1/agent/runs', { key: keyB });
    assert.ok(!listB.json.data.some((entry) => entry.id === run.id));
    const listA = await call(gateway, 'GET', '/v1/agent/runs', { key: keyA });
    assert.ok(listA.json.data.some((entry) => entry.id === run.id));

    const refused = await call(gateway, 'POST', '/v1/agent/runs', {
      key: keyB,
      body: { model: 'agent', input: 'x', tools: mcpTools('alpha-only', ['search']) },
    });
    assert.equal(refused.status, 400, refused.text);
    assert.match(refused.json.error.message, /alpha-only/);
    const byAddress = await call(gateway, 'POST', '/v1/agent/runs', {
      key: keyA,
      body: { model: 'agent', input: 'x', tools: [{ type: 'mcp', server_label: 'files', server_url: 'http://169.254.169.254/' }] },
    });
    assert.equal(byAddress.status, 400);
    assert.equal(byAddress.json.error.param, 'tools[0].server_url');
  });

  it('stops a run at its step limit, and on a failing model fails it with the reason', async () => {
    const run = await startRun(gateway, keyA, {
      model: 'agent',
      input: 'search a lot',
      tools: mcpTools('files', ['search']),
      limits: { max_steps: 2 },
    });
    const stopped = await runReaches(gateway, keyA, run.id, ['stopped', 'completed', 'failed']);
    assert.equal(stopped.status, 'stopped', JSON.stringify(stopped));
    assert.equal(stopped.error.code, 'max_steps_reached');
    assert.equal(stopped.model_calls + stopped.tool_calls, 2);

    const broken = await startRun(gateway, keyA, { model: 'broken', input: 'hello' });
    const failed = await runReaches(gateway, keyA, broken.id, ['failed', 'completed']);
    assert.equal(failed.status, 'failed');
    assert.ok(failed.error.message, JSON.stringify(failed));
  });

  it('cancels a run in the middle of a model call and streams its events', async () => {
    const run = await startRun(gateway, keyA, { model: 'slow', input: 'take your time' });
    await waitFor(async () => (await steps(gateway, keyA, run.id)).some((step) => step.kind === 'model_call'), 5000);
    // The response headers come after the journal snapshot is taken and the live events are
    // subscribed to, so the cancel below lands in the live part of the stream.
    const stream = await fetch(`${gateway.url}/v1/agent/runs/${run.id}/events`, {
      headers: { authorization: `Bearer ${keyA}` },
      signal: AbortSignal.timeout(15000),
    });
    assert.equal(stream.status, 200);
    assert.match(stream.headers.get('content-type'), /text\/event-stream/);
    const started = Date.now();
    const cancelled = await call(gateway, 'POST', `/v1/agent/runs/${run.id}/cancel`, { key: keyA });
    assert.equal(cancelled.status, 200, cancelled.text);
    assert.equal((await runReaches(gateway, keyA, run.id, ['cancelled'], 2000)).status, 'cancelled');
    // The slow model answers after 3 s; cancelling does not wait for it.
    assert.ok(Date.now() - started < 2000, 'the model call was abandoned, not waited for');
    // Cancelling an ended run changes nothing and says so.
    const again = await call(gateway, 'POST', `/v1/agent/runs/${run.id}/cancel`, { key: keyA });
    assert.equal(again.status, 200, again.text);
    assert.equal(again.json.status, 'cancelled');

    const text = await stream.text();
    const parsed = text
      .split('\n\n')
      .map((block) => block.split('\n').find((line) => line.startsWith('data: ')))
      .filter(Boolean)
      .map((line) => JSON.parse(line.slice(6)));
    // The journal so far arrives as run.step events and the run's status at that moment; what
    // happens later arrives live, and the stream ends with the status that ended the run.
    const snapshotEnd = parsed.findIndex((event) => event.type === 'run.status');
    assert.ok(snapshotEnd >= 2, text);
    const snapshot = parsed.slice(0, snapshotEnd);
    assert.ok(snapshot.every((event) => event.type === 'run.step'), text);
    assert.equal(snapshot[0].step.kind, 'setup');
    assert.ok(snapshot.some((event) => event.step.kind === 'model_call'), text);
    assert.equal(parsed[snapshotEnd].status, 'running');
    assert.equal(parsed.at(-1).type, 'run.status');
    assert.equal(parsed.at(-1).status, 'cancelled');
    assert.equal(parsed.length, snapshotEnd + 2, `no step is sent twice: ${text}`);
  });

  it('answers /v1/responses offering mcp tools by running the loop server-side (openai SDK)', async () => {
    const client = new OpenAI({ apiKey: keyA, baseURL: gateway.baseUrl, maxRetries: 0 });
    const tools = [{ type: 'mcp', server_label: 'files', allowed_tools: ['search'], require_approval: 'never' }];
    const response = await client.responses.create({ model: 'agent', input: 'What do we know about red lines?', tools });
    assert.equal(response.status, 'completed');
    const calls = response.output.filter((item) => item.type === 'mcp_call');
    assert.equal(calls.length, 2);
    for (const item of calls) {
      assert.equal(item.server_label, 'files');
      assert.equal(item.name, 'search');
      assert.equal(typeof JSON.parse(item.arguments).query, 'string');
      assert.match(item.output, /result 1 <https:\/\/example\.test\//);
      assert.equal(item.error, null);
    }
    assert.ok(response.output_text.startsWith(`Found: ${calls[1].output.split('\n')[0]}`), response.output_text);
    assert.ok(response.usage.input_tokens > 0);
    assert.equal(response.tools[0].type, 'mcp');
    const run = await getRun(gateway, keyA, response.redline.run_id);
    assert.equal(run.status, 'completed');
    assert.equal(run.tool_calls, 2);

    // Stored like any response, and continued like one.
    const stored = await client.responses.retrieve(response.id);
    assert.deepEqual(stored.output.map((item) => item.type), ['mcp_call', 'mcp_call', 'message']);
    const next = await client.responses.create({ model: 'agent', previous_response_id: response.id, input: 'echo: thanks' });
    assert.equal(next.output_text, 'thanks');
    const history = (await sims.agent.requests()).at(-1).body.messages;
    assert.ok(history.some((m) => m.role === 'assistant' && m.content.startsWith('Found: ')), JSON.stringify(history));

    // A gated tool parks the run: the response is incomplete and names the run to approve.
    const gated = await client.responses.create({
      model: 'agent',
      input: 'note it',
      tools: [{ type: 'mcp', server_label: 'approvals', allowed_tools: ['append_note'] }],
    });
    assert.equal(gated.status, 'incomplete');
    assert.equal(gated.incomplete_details.reason, 'waiting_approval');
    assert.equal(gated.redline.run_status, 'waiting_approval');
    assert.equal((await call(gateway, 'POST', `/v1/agent/runs/${gated.redline.run_id}/cancel`, { key: keyA })).status, 200);

    for (const [body, param] of [
      [{ model: 'agent', input: 'x', stream: true, tools }, 'stream'],
      [{ model: 'agent', input: 'x', tools: [{ ...tools[0], server_url: 'http://127.0.0.1:1/mcp' }] }, 'tools[0].server_url'],
      [{ model: 'agent', input: 'x', tools: [{ type: 'mcp', server_label: 'nope' }] }, 'tools'],
      [{ model: 'agent', input: 'x', tools: [...tools, { type: 'function', name: 'f' }] }, 'tools'],
    ]) {
      const refused = await call(gateway, 'POST', '/v1/responses', { key: keyA, body });
      assert.equal(refused.status, 400, refused.text);
      assert.equal(refused.json.error.param, param, refused.text);
    }
  });

  it('rejects malformed runs with a named parameter', async () => {
    for (const [body, param] of [
      [{ input: 'x' }, 'model'],
      [{ model: 'agent' }, 'input'],
      [{ model: 'agent', input: 'x', tools: [{ type: 'function', name: 'f' }] }, 'tools[0].type'],
      [{ model: 'agent', input: 'x', limits: { max_steps: 0 } }, 'limits.max_steps'],
    ]) {
      const { status, json, text } = await call(gateway, 'POST', '/v1/agent/runs', { key: keyA, body });
      assert.equal(status, 400, text);
      assert.equal(json.error.param, param, text);
    }
    const garbage = await call(gateway, 'POST', '/v1/agent/runs', { key: keyA, body: '{"model":' });
    assert.equal(garbage.status, 400);
  });
});

describe('agents: task graphs', () => {
  let sims;
  let gateway;
  let key;

  before(async () => {
    sims = {
      agent: await startSim(null, { name: 'graph-agent', model: { output_tokens: 8, ttft_ms: { mean: 150, stddev: 0 } } }),
      broken: await startSim(null, { name: 'graph-broken', failures: { error_5xx: 1.0 } }),
    };
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'redline-graphs-'));
    gateway = await startGateway(null, {
      auth: { required: true, admin_token_env: 'REDLINE_AGENTS_ADMIN_TOKEN' },
      agents: { max_concurrent_runs_per_tenant: 16 },
      mcp_servers: [stdioServer('files', 'v1_server.mjs', path.join(tmp, 'files.jsonl'))],
      routing: { max_attempts: 1 },
      backends: [
        { name: 'agent', sim: sims.agent },
        { name: 'broken', sim: sims.broken },
      ],
      aliases: [
        { name: 'agent', targets: ['agent'] },
        { name: 'broken', targets: ['broken'] },
      ],
    });
    key = await createKey(gateway, { tenant: 'graphs' });
  });
  after(killAll);

  const post = (body) => call(gateway, 'POST', '/v1/agent/graphs', { key, body });

  it('rejects unknown dependencies and names the cycle', async () => {
    const cycle = await post({
      tasks: [
        { id: 'a', instructions: 'x', model: 'agent', depends_on: ['c'] },
        { id: 'b', instructions: 'x', model: 'agent', depends_on: ['a'] },
        { id: 'c', instructions: 'x', model: 'agent', depends_on: ['b'] },
        { id: 'd', instructions: 'x', model: 'agent' },
      ],
    });
    assert.equal(cycle.status, 400, cycle.text);
    assert.match(cycle.json.error.message, /cycle: a -> c -> b -> a/);
    const unknown = await post({ tasks: [{ id: 'a', instructions: 'x', model: 'agent', depends_on: ['nope'] }] });
    assert.equal(unknown.status, 400);
    assert.match(unknown.json.error.message, /nope/);
    assert.equal(unknown.json.error.param, 'tasks[0].depends_on[0]');
  });

  it('runs independent tasks concurrently up to max_concurrency and hands results to dependents', async () => {
    const tasks = ['t1', 't2', 't3', 't4', 't5', 't6'].map((id) => ({ id, instructions: `echo: result of ${id}`, model: 'agent' }));
    tasks.push({ id: 'merge', instructions: 'echo: merged', model: 'agent', depends_on: ['t1', 't2', 't3', 't4', 't5', 't6'] });
    const created = await post({ tasks, max_concurrency: 2 });
    assert.equal(created.status, 200, created.text);
    const graph = await graphReaches(gateway, key, created.json.id, ['completed', 'failed']);
    assert.equal(graph.status, 'completed', JSON.stringify(graph));
    assert.equal(graph.tasks.length, 7);
    assert.ok(graph.usage.input_tokens > 0);

    // At most two tasks' model calls were ever in flight together, and two were.
    const calls = [];
    for (const task of graph.tasks) {
      for (const step of await steps(gateway, key, task.run_id)) {
        if (step.kind === 'model_call') calls.push({ task: task.id, start: step.started_at, end: step.finished_at });
      }
    }
    let peak = 0;
    for (const probe of calls) {
      peak = Math.max(peak, calls.filter((other) => other.start <= probe.start && other.end > probe.start).length);
    }
    assert.equal(peak, 2, JSON.stringify(calls));
    const merge = calls.find((entry) => entry.task === 'merge');
    assert.ok(calls.every((entry) => entry.task === 'merge' || entry.end <= merge.start), 'merge waited for its dependencies');

    // The dependent task saw each dependency's result.
    const requests = await sims.agent.requests();
    const mergeRequest = requests.find((r) => r.body.messages.some((m) => typeof m.content === 'string' && m.content.includes('echo: merged')));
    const prompt = JSON.stringify(mergeRequest.body.messages);
    for (const id of ['t1', 't6']) assert.ok(prompt.includes(`result of ${id}`), prompt);
  });

  it('retries a failing task per policy, blocks its dependents, and finishes the rest', async () => {
    const created = await post({
      tasks: [
        { id: 'flaky', instructions: 'x', model: 'broken', retry: { max_attempts: 2, backoff_ms: 50 } },
        { id: 'after-flaky', instructions: 'x', model: 'agent', depends_on: ['flaky'] },
        { id: 'after-that', instructions: 'x', model: 'agent', depends_on: ['after-flaky'] },
        { id: 'independent', instructions: 'echo: fine', model: 'agent' },
      ],
    });
    assert.equal(created.status, 200, created.text);
    const graph = await graphReaches(gateway, key, created.json.id, ['completed', 'failed']);
    assert.equal(graph.status, 'failed');
    const byId = Object.fromEntries(graph.tasks.map((task) => [task.id, task]));
    assert.equal(byId.flaky.status, 'failed');
    assert.equal(byId.flaky.attempts, 2);
    assert.equal(byId['after-flaky'].status, 'blocked');
    assert.equal(byId['after-that'].status, 'blocked');
    assert.equal(byId['after-flaky'].run_id, null, 'a blocked task never started');
    assert.equal(byId.independent.status, 'completed');
    assert.equal(byId.independent.output_text, 'fine');
  });

  it('cancels a graph: running tasks are cancelled, pending ones never start', async () => {
    const created = await post({
      tasks: [
        { id: 'first', instructions: 'x', model: 'agent', tools: mcpTools('files', ['slow']) },
        { id: 'second', instructions: 'x', model: 'agent', depends_on: ['first'] },
      ],
    });
    assert.equal(created.status, 200, created.text);
    await graphReaches(gateway, key, created.json.id, ['running']);
    const cancelled = await call(gateway, 'POST', `/v1/agent/graphs/${created.json.id}/cancel`, { key });
    assert.equal(cancelled.status, 200, cancelled.text);
    const graph = await graphReaches(gateway, key, created.json.id, ['cancelled'], 5000);
    const byId = Object.fromEntries(graph.tasks.map((task) => [task.id, task]));
    assert.equal(byId.first.status, 'cancelled');
    assert.equal(byId.second.status, 'cancelled');
    assert.equal(byId.second.run_id, null);
    const foreign = await call(gateway, 'GET', `/v1/agent/graphs/${created.json.id}`, { key: await createKey(gateway, { tenant: 'other' }) });
    assert.equal(foreign.status, 404);
  });
});

describe('agents: context compaction', () => {
  let sim;
  let summarySim;
  let options;
  let gateway;
  let key;

  before(async () => {
    sim = await startSim(null, { name: 'compaction-agent', model: { output_tokens: 8, tool_rounds: 6, cite_tool_results: true } });
    summarySim = await startSim(null, { name: 'compaction-summary', model: { output_tokens: 12 } });
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'redline-compaction-'));
    options = {
      auth: { required: true, admin_token_env: 'REDLINE_AGENTS_ADMIN_TOKEN' },
      // A small window: a few documents fill the threshold.
      agents: { context_window_tokens: 1500, compaction_threshold: 0.6, keep_recent_steps: 2, summary_model: 'summary' },
      mcp_servers: [stdioServer('files', 'v1_server.mjs', path.join(tmp, 'files.jsonl'))],
      backends: [
        { name: 'agent', sim },
        { name: 'summary', sim: summarySim },
      ],
      aliases: [
        { name: 'agent', targets: ['agent'] },
        { name: 'summary', targets: ['summary'] },
      ],
    };
    gateway = await startGateway(null, options);
    key = await createKey(gateway, { tenant: 'compaction' });
  });
  after(killAll);

  it('masks older observations when the prompt nears the window, journals it, and the run still succeeds', async () => {
    const run = await startRun(gateway, key, { model: 'agent', input: 'research red lines in depth', tools: mcpTools('files', ['read_document']) });
    const done = await runReaches(gateway, key, run.id, ['completed', 'failed', 'stopped']);
    assert.equal(done.status, 'completed', JSON.stringify(done));
    const journal = await steps(gateway, key, run.id);
    const compactions = journal.filter((step) => step.kind === 'compaction');
    assert.ok(compactions.length >= 1, JSON.stringify(journal.map((step) => step.kind)));
    for (const step of compactions) {
      assert.equal(step.status, 'completed');
      assert.ok(step.result.masked > 0);
      assert.ok(step.result.estimated_tokens_after < step.result.estimated_tokens_before, JSON.stringify(step.result));
    }
    // The model's later prompts carried markers instead of the old results, and every tool call.
    const last = (await sim.requests()).at(-1).body.messages;
    assert.ok(last.some((m) => m.role === 'tool' && m.content.startsWith('[observation masked by compaction')), JSON.stringify(last));
    // One summary, after the untouched head: the run's first messages (its affinity key) stay.
    assert.equal(last.filter((m) => m.role === 'system' && m.content.startsWith('Summary of earlier steps: ')).length, 1, JSON.stringify(last));
    assert.deepEqual(last[0], { role: 'user', content: 'research red lines in depth' });
    assert.equal(last[1].role, 'assistant');
    assert.equal(last.filter((m) => m.role === 'tool').length, 6, 'tool calls and their answers stay paired');
    assert.equal(last.filter((m) => m.role === 'assistant' && m.tool_calls).length, 6);
    // The latest result is intact: the answer cites it.
    const outputs = toolOutputs(journal);
    assert.ok(done.output_text.startsWith(`Found: ${outputs.at(-1).split('\n')[0]}`), done.output_text);
  });

  it('summarises the older turns with the summary model and counts its tokens', async () => {
    await summarySim.reset();
    const notes = 'Earlier finding: the audit chain is signed with Ed25519 and verified offline. '.repeat(4);
    const run = await startRun(gateway, key, {
      model: 'agent',
      input: [
        { role: 'user', content: 'what did we learn so far?' },
        { role: 'assistant', content: notes },
        { role: 'user', content: 'now research red lines' },
      ],
      tools: mcpTools('files', ['read_document']),
    });
    const done = await runReaches(gateway, key, run.id, ['completed', 'failed', 'stopped']);
    assert.equal(done.status, 'completed', JSON.stringify(done));
    const compactions = (await steps(gateway, key, run.id)).filter((step) => step.kind === 'compaction');
    assert.ok(compactions[0].result.summarised >= 1, 'the earlier notes were summarised');
    // Each compaction asked the summary model once: the notes, and the results it masked.
    const summaryRequests = await summarySim.requests();
    assert.equal(summaryRequests.length, compactions.length);
    const asked = summaryRequests.map((request) => request.body.messages[1].content).join('\n');
    assert.ok(asked.includes('Ed25519'), asked);
    assert.match(asked, /Result of files__read_document\(\{"id":".*"\}\):\n.* section 1: finding /);
    const last = (await sim.requests()).at(-1).body.messages;
    assert.ok(last.some((m) => m.role === 'system' && m.content.startsWith('Summary of earlier steps: ')), JSON.stringify(last));
    assert.ok(!last.some((m) => typeof m.content === 'string' && m.content.includes('Earlier finding')), 'the notes were replaced');
    const modelTokens = (await steps(gateway, key, run.id))
      .filter((step) => step.kind === 'model_call')
      .reduce((sum, step) => sum + step.result.input_tokens, 0);
    const summaryTokens = compactions.reduce((sum, step) => sum + step.result.input_tokens, 0);
    assert.ok(summaryTokens > 0);
    assert.equal(done.usage.input_tokens, modelTokens + summaryTokens);
  });

  it('keeps nothing verbatim when told to (keep_recent_steps = 0) and still finishes', async () => {
    await gateway.reload({ ...options, agents: { ...options.agents, keep_recent_steps: 0 } });
    await sleep(300);
    const run = await startRun(gateway, key, { model: 'agent', input: 'read everything', tools: mcpTools('files', ['read_document']) });
    const done = await runReaches(gateway, key, run.id, ['completed', 'failed', 'stopped']);
    assert.equal(done.status, 'completed', JSON.stringify(done));
    assert.ok((await steps(gateway, key, run.id)).some((step) => step.kind === 'compaction'));
    assert.ok(gateway.proc.running);
  });
});

describe('agents: kill -9 of the gateway in the middle of runs and graphs', () => {
  let sim;
  let configPath;
  let key;
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'redline-agent-kill-'));
  const notes = { plain: path.join(tmp, 'plain.jsonl'), dedupe: path.join(tmp, 'dedupe.jsonl') };

  async function startServe() {
    const proc = new RedlineProcess('gateway', ['serve', '--config', configPath]);
    const port = Number(/listen = "127\.0\.0\.1:(\d+)"/.exec(fs.readFileSync(configPath, 'utf8'))[1]);
    const gateway = { proc, url: `http://127.0.0.1:${port}` };
    await proc.waitHttpOk(`${gateway.url}/healthz`);
    return gateway;
  }

  before(async () => {
    // Each model call takes a while, so kills land in model calls, tool calls and in between.
    sim = await startSim(null, { name: 'kill-agent', model: { output_tokens: 8, tool_rounds: 4, ttft_ms: { mean: 120, stddev: 40 } } });
    const first = await startGateway(null, {
      auth: { required: true, admin_token_env: 'REDLINE_AGENTS_ADMIN_TOKEN' },
      store: { sqlite_path: path.join(tmp, 'redline.db') },
      mcp_servers: [
        // Not idempotent: an interrupted call waits for a decision.
        stdioServer('plain', 'v1_server.mjs', notes.plain),
        // Declared idempotent, and the server deduplicates by idempotency key: retried at once.
        stdioServer('dedupe', 'v1_server.mjs', notes.dedupe, { flags: ['--dedupe'], idempotent_tools: ['append_note'] }),
      ],
      backends: [{ name: 'agent', sim }],
      aliases: [{ name: 'agent', targets: ['agent'] }],
    });
    configPath = first.configPath;
    key = await createKey(first, { tenant: 'durable' });
    await first.proc.kill();
  });
  after(killAll);

  /** Kills the gateway a few times while `busy()` says work is going on, restarting it each time. */
  async function killRepeatedly(busy, kills) {
    let gateway = await startServe();
    for (let i = 0; i < kills; ++i) {
      await sleep(150 + 170 * i);
      if (!(await busy(gateway))) break;
      await gateway.proc.kill();
      gateway = await startServe();
    }
    return gateway;
  }

  it('every run completes and every note is written exactly once', async () => {
    let gateway = await startServe();
    const runs = [];
    for (let i = 0; i < 3; ++i) {
      for (const server of ['plain', 'dedupe']) {
        runs.push({ server, ...(await startRun(gateway, key, { model: 'agent', input: `run ${i}`, tools: mcpTools(server, ['append_note']) })) });
      }
    }
    await gateway.proc.kill();
    gateway = await killRepeatedly(async (g) => {
      const listed = await call(g, 'GET', '/v1/agent/runs', { key });
      return listed.json.data.some((run) => ['queued', 'running'].includes(run.status));
    }, 4);

    // Runs on the non-idempotent server whose call was cut off wait for a decision; the test
    // decides as an operator would, from the server's own ledger.
    for (const run of runs) {
      for (;;) {
        const state = await runReaches(gateway, key, run.id, ['completed', 'failed', 'requires_action'], 30000);
        if (state.status !== 'requires_action') break;
        assert.equal(run.server, 'plain', 'an idempotent tool is retried, never parked');
        const step = (await steps(gateway, key, run.id)).find((entry) => entry.seq === state.pending.step);
        const executed = ledger(notes.plain).byKey[step.idempotency_key] ?? 0;
        const body = executed ? { step: step.seq, action: 'assume_done', output: 'noted' } : { step: step.seq, action: 'retry' };
        const resolved = await call(gateway, 'POST', `/v1/agent/runs/${run.id}/resolve`, { key, body });
        assert.equal(resolved.status, 200, resolved.text);
      }
    }
    for (const run of runs) {
      const done = await getRun(gateway, key, run.id);
      assert.equal(done.status, 'completed', JSON.stringify(done));
      const keys = (await steps(gateway, key, run.id))
        .filter((step) => step.kind === 'tool_call' && step.status === 'completed')
        .map((step) => step.idempotency_key);
      assert.equal(new Set(keys).size, 4, `run ${run.id} made its four calls`);
      const counts = ledger(notes[run.server]).byKey;
      for (const callKey of keys) {
        // Executed at most once; a call taken as done on the operator's word ran exactly once.
        assert.equal(counts[callKey], 1, `${run.server} call ${callKey} executed ${counts[callKey]} times`);
      }
    }
    await gateway.proc.kill();
  });

  it('every graph completes after kills, each task having run once', async () => {
    let gateway = await startServe();
    const graphs = [];
    for (let i = 0; i < 2; ++i) {
      const tasks = [
        { id: 'gather', instructions: `gather ${i}`, model: 'agent', tools: mcpTools('dedupe', ['append_note']) },
        { id: 'check', instructions: `check ${i}`, model: 'agent', tools: mcpTools('dedupe', ['append_note']) },
        { id: 'report', instructions: `report ${i}`, model: 'agent', depends_on: ['gather', 'check'], tools: mcpTools('dedupe', ['append_note']) },
      ];
      const created = await call(gateway, 'POST', '/v1/agent/graphs', { key, body: { tasks } });
      assert.equal(created.status, 200, created.text);
      graphs.push(created.json.id);
    }
    await gateway.proc.kill();
    gateway = await killRepeatedly(async (g) => {
      for (const id of graphs) {
        const { json } = await call(g, 'GET', `/v1/agent/graphs/${id}`, { key });
        if (json.status === 'running') return true;
      }
      return false;
    }, 4);
    for (const id of graphs) {
      const graph = await graphReaches(gateway, key, id, ['completed', 'failed'], 60000);
      assert.equal(graph.status, 'completed', JSON.stringify(graph));
      for (const task of graph.tasks) {
        assert.equal(task.status, 'completed');
        assert.equal(task.attempts, 1);
        const keys = (await steps(gateway, key, task.run_id))
          .filter((step) => step.kind === 'tool_call' && step.status === 'completed')
          .map((step) => step.idempotency_key);
        assert.equal(keys.length, 4);
        for (const callKey of keys) assert.equal(ledger(notes.dedupe).byKey[callKey], 1);
      }
    }
    await gateway.proc.kill();
  });
});
