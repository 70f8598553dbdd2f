// Load generator and grader for durable agents (bench/agents.sh runs it once per gateway it
// starts, then once more to write the summary). Node's own http only.
//
//   node agents.mjs compaction --gateway URL --name NAME --sims a=URL,b=URL,s=URL
//        --backends a[,b] --strategy S --compaction on|off --keep-recent-steps N
//        [--summary-model ALIAS] [--layers 8,8,6,2] [--graph-concurrency 8] [--tool-rounds 8]
//        [--gateway-pid PID] [--store-dir DIR] [--threshold T --window W --doc-chars N]
//        --out-dir DIR
//     (--keep-recent-steps, --summary-model, --threshold, --window and --doc-chars are only
//     recorded with the results; the gateway's configuration sets them.)
//     One task graph (layers of tasks, each task of a layer depending on two of the layer before)
//     whose tasks read documents with docs__read_document until the model answers. Waits for
//     the graph, grades every task, reads the simulators' token counts, and writes
//     DIR/compaction-NAME.json. A task succeeds iff its run completed and its output contains
//     "Found: <first line of the last tool result its run got>" (the last completed tool_call
//     step of GET /v1/agent/runs/{id}/steps). From each run's journal it also takes the backend
//     of every model call (backend hops: a call served by another backend than the one before)
//     and the summary model's usage on its compaction steps.
//
//   node agents.mjs journal --gateway URL --sim URL --graphs 100 --tasks 20 --concurrency 200
//        [--tool 1] [--rounds 1] [--chat 1] [--tag journal] [--gateway-pid PID] --out-dir DIR
//     GRAPHS graphs of TASKS tasks (layers of 5, each task depending on one of the layer before)
//     started at once; each task makes one model call, one docs__lookup call and one more model
//     call (--tool 0: one model call). Then, through the same gateway, as many plain chat
//     completions as the graphs journaled steps, from CONCURRENCY clients at once (the tenant's
//     run limit, so both workloads have as many calls in flight). Measures wall time, the
//     gateway's CPU (/proc/PID/task/*/schedstat) and what it wrote to storage (/proc/PID/io
//     write_bytes) for each; verifies every graph, task and journal. After a warm-up, ROUNDS
//     rounds of both, one after the other on the same store (--chat 0: the graphs only).
//     Writes DIR/TAG.json. agents.sh runs it on fresh gateways as journal-fresh-N (one round
//     each) and on one gateway as journal-growth (several rounds, graphs only: what a tenant's
//     growing history does to the same workload).
//
//   node agents.mjs summary --out-dir DIR [--cached-price 0.1]
//     Reads the JSON files above and writes DIR/summary.md (printed too).
//
// Exits 1 when a graph did not complete, a task failed its grade, or a call failed.
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import {performance} from 'node:perf_hooks';

// ---- options ------------------------------------------------------------------------------------

const phase = process.argv[2];
const options = {
  gateway: '', name: '', sims: '', sim: '', backends: 'a', strategy: 'least_load',
  compaction: 'on', keepRecentSteps: 0, summaryModel: '', layers: '8,8,6,2', graphConcurrency: 8, toolRounds: 8,
  graphs: 100, tasks: 20, concurrency: 200, tool: 1, rounds: 1, chat: 1, tag: 'journal',
  gatewayPid: 0, outDir: '',
  cachedPrice: 0.1, timeoutMs: 600000, docChars: 0, threshold: 0, window: 0, storeDir: '',
};
for (let i = 3; i < process.argv.length; i += 2) {
  const key = process.argv[i].replace(/^--/, '').replace(/-(\w)/g, (_, c) => c.toUpperCase());
  if (!(key in options) || i + 1 >= process.argv.length) {
    throw new Error(`bad argument ${process.argv[i]}`);
  }
  options[key] = typeof options[key] === 'number' ? Number(process.argv[i + 1]) : process.argv[i + 1];
  if (Number.isNaN(options[key])) throw new Error(`${process.argv[i]} needs a number`);
}
if (!['compaction', 'journal', 'summary'].includes(phase)) {
  throw new Error('usage: node agents.mjs compaction|journal|summary [options]');
}
if (!options.outDir) throw new Error('--out-dir is required');

const log = (message) =>
  process.stderr.write(`[agents ${new Date().toISOString().slice(11, 19)}] ${message}\n`);

// ---- HTTP ---------------------------------------------------------------------------------------

function target(base, sockets = 64) {
  const url = new URL(base);
  return {
    host: url.hostname,
    port: Number(url.port),
    agent: new http.Agent({keepAlive: true, maxSockets: sockets, maxFreeSockets: sockets}),
  };
}

// Resolves to {status, json, text}; rejects on a network error or after timeoutMs.
function call(to, method, urlPath, body, timeoutMs = 120000) {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? null : Buffer.from(JSON.stringify(body));
    const headers = {};
    if (payload) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = payload.length;
    }
    const request = http.request(
        {host: to.host, port: to.port, method, path: urlPath, headers, agent: to.agent},
        (response) => {
          const chunks = [];
          response.on('data', (chunk) => chunks.push(chunk));
          response.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let json = null;
            try {
              json = JSON.parse(text);
            } catch {
              // not JSON: the caller reports the text
            }
            resolve({status: response.statusCode, json, text});
          });
          response.on('error', reject);
        });
    request.setTimeout(timeoutMs, () => request.destroy(new Error('timeout')));
    request.on('error', reject);
    request.end(payload);
  });
}

async function getJson(to, urlPath) {
  const answer = await call(to, 'GET', urlPath);
  if (answer.status !== 200 || answer.json === null) {
    throw new Error(`GET ${urlPath}: ${answer.status} ${answer.text.slice(0, 300)}`);
  }
  return answer.json;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Runs fn over items with at most `limit` at once.
async function pool(items, limit, fn) {
  const results = new Array(items.length);
  let next = 0;
  const workers = Array.from({length: Math.min(limit, items.length)}, async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i], i);
    }
  });
  await Promise.all(workers);
  return results;
}

// ---- measurement of the processes ---------------------------------------------------------------

// Nanoseconds the process's threads ran, summed over its threads (/proc/PID/task/TID/schedstat).
function cpuNs(pid) {
  let sum = 0;
  if (!pid) return 0;
  try {
    for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
      try {
        sum += Number(fs.readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
      } catch {
        // the thread ended
      }
    }
  } catch {
    // no such process
  }
  return sum;
}

// Bytes the process sent to storage so far (/proc/PID/io write_bytes), or null when unreadable.
function diskWriteBytes(pid) {
  if (!pid) return null;
  try {
    const match = fs.readFileSync(`/proc/${pid}/io`, 'utf8').match(/^write_bytes:\s+(\d+)/m);
    return match ? Number(match[1]) : null;
  } catch {
    return null;
  }
}

// The processes whose parent is `pid` (the MCP servers the gateway started).
function childrenOf(pid) {
  const children = [];
  if (!pid) return children;
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) === pid) children.push(Number(entry));
    } catch {
      // gone
    }
  }
  return children;
}

function snapshot() {
  const children = childrenOf(options.gatewayPid);
  return {
    at: performance.now(),
    gatewayNs: cpuNs(options.gatewayPid),
    childrenNs: children.reduce((sum, pid) => sum + cpuNs(pid), 0),
    written: diskWriteBytes(options.gatewayPid),
  };
}

function since(before) {
  const after = snapshot();
  return {
    wall_s: (after.at - before.at) / 1000,
    gateway_cpu_s: (after.gatewayNs - before.gatewayNs) / 1e9,
    mcp_server_cpu_s: (after.childrenNs - before.childrenNs) / 1e9,
    written_bytes: before.written !== null && after.written !== null
        ? after.written - before.written : null,
  };
}

function storeBytes() {
  let bytes = 0;
  for (const suffix of ['', '-wal', '-shm']) {
    try {
      bytes += fs.statSync(path.join(options.storeDir || options.outDir, `agents.db${suffix}`)).size;
    } catch {
      // absent
    }
  }
  return bytes;
}

function percentile(values, q) {
  if (values.length === 0) return null;
  const sorted = Float64Array.from(values).sort();
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

const sum = (values) => values.reduce((a, b) => a + b, 0);

// ---- graphs -------------------------------------------------------------------------------------

// Layers of tasks; a task of layer L > 1 depends on `fanIn` tasks of layer L - 1.
function layeredTasks(layers, fanIn, makeTask) {
  const tasks = [];
  let previous = [];
  layers.forEach((count, layer) => {
    const current = [];
    for (let j = 0; j < count; j++) {
      const id = `l${layer + 1}-t${j + 1}`;
      const depends = [];
      for (let k = 0; k < Math.min(fanIn, previous.length); k++) {
        const dependency = previous[(j + k) % previous.length];
        if (!depends.includes(dependency)) depends.push(dependency);
      }
      tasks.push(makeTask(id, depends));
      current.push(id);
    }
    previous = current;
  });
  return tasks;
}

async function waitForGraphs(gateway, ids, deadline) {
  // Graphs finish roughly in the order they started: follow one at a time, so waiting costs the
  // gateway one status request per 100 ms, not one per graph.
  let polls = 0;
  const finished = new Map();
  for (const id of ids) {
    while (true) {
      const graph = await getJson(gateway, `/v1/agent/graphs/${id}`);
      polls++;
      if (graph.status !== 'running') {
        finished.set(id, {status: graph.status, at: performance.now()});
        break;
      }
      if (performance.now() > deadline) throw new Error(`graph ${id} still running at the deadline`);
      await sleep(100);
    }
  }
  return {finished, polls};
}

function firstLine(text) {
  return String(text ?? '').split('\n')[0];
}

// ---- compaction workload ------------------------------------------------------------------------

async function compaction() {
  const gateway = target(options.gateway);
  const sims = Object.fromEntries(options.sims.split(',').map((entry) => {
    const [name, url] = entry.split('=');
    return [name, {url, to: target(url, 4)}];
  }));
  const layers = options.layers.split(',').map(Number);
  const tools = [{type: 'mcp', server_label: 'docs', allowed_tools: ['read_document']}];
  const spec = {
    tasks: layeredTasks(layers, 2, (id, depends) => ({
      id,
      model: 'agent',
      instructions: `Task ${id}: read the documents you need with docs__read_document, one after ` +
          'another, and report the reference code stated on the first line of the last one.',
      tools,
      depends_on: depends,
      limits: {max_steps: 100, max_tokens: 5000000},
    })),
    max_concurrency: options.graphConcurrency,
    metadata: {bench: 'agents-compaction', configuration: options.name},
  };
  for (const sim of Object.values(sims)) await call(sim.to, 'POST', '/sim/reset');

  log(`${options.name}: graph of ${spec.tasks.length} tasks (layers ${layers.join('/')}), ` +
      `max_concurrency ${options.graphConcurrency}`);
  const before = snapshot();
  const created = await call(gateway, 'POST', '/v1/agent/graphs', spec);
  if (created.status !== 200 || !created.json?.id) {
    throw new Error(`POST /v1/agent/graphs: ${created.status} ${created.text.slice(0, 500)}`);
  }
  const graphId = created.json.id;
  const {polls} = await waitForGraphs(gateway, [graphId], performance.now() + options.timeoutMs);
  const measured = since(before);
  const graph = await getJson(gateway, `/v1/agent/graphs/${graphId}`);

  // Grade every task from its run's journal.
  const tasks = [];
  const steps = {setup: 0, model_call: 0, tool_call: 0, compaction: 0, other: 0};
  let masked = 0;
  let summarised = 0;
  let journalChars = 0;
  const promptTokens = [];
  // The summary model's calls as the compaction steps report them (the gateway's view).
  const summaryUsage = {calls: 0, input_tokens: 0, output_tokens: 0, cost_usd: 0};
  // Per run: the backends of its model calls in order ("aabbb"), and how often it changed.
  const backendRuns = [];
  for (const task of graph.tasks) {
    const entry = {id: task.id, status: task.status, run_id: task.run_id, ok: false, why: ''};
    tasks.push(entry);
    if (!task.run_id) {
      entry.why = 'no run';
      continue;
    }
    const journal = (await getJson(gateway, `/v1/agent/runs/${task.run_id}/steps`)).data ?? [];
    let lastTool = null;
    let backends = '';
    for (const step of journal) {
      steps[step.kind in steps ? step.kind : 'other']++;
      journalChars += JSON.stringify(step.request ?? null).length +
          JSON.stringify(step.result ?? null).length;
      if (step.kind === 'tool_call' && step.status === 'completed') lastTool = step.result?.output;
      if (step.kind === 'compaction' && step.status === 'completed') {
        masked += step.result?.masked ?? 0;
        summarised += step.result?.summarised ?? 0;
        if ((step.result?.input_tokens ?? 0) > 0) summaryUsage.calls++;
        summaryUsage.input_tokens += step.result?.input_tokens ?? 0;
        summaryUsage.output_tokens += step.result?.output_tokens ?? 0;
        summaryUsage.cost_usd += step.result?.cost_usd ?? 0;
      }
      if (step.kind === 'model_call' && step.status === 'completed') {
        promptTokens.push(step.result?.input_tokens ?? 0);
        backends += step.result?.backend || '?';
      }
    }
    let hops = 0;
    for (let i = 1; i < backends.length; i++) hops += backends[i] !== backends[i - 1] ? 1 : 0;
    backendRuns.push({task: task.id, backends, hops});
    entry.tool_results = journal.filter((s) => s.kind === 'tool_call').length;
    if (task.status !== 'completed') {
      entry.why = `task ${task.status}`;
    } else if (lastTool === null) {
      entry.why = 'no tool result';
    } else {
      const expected = `Found: ${firstLine(lastTool)}`;
      entry.ok = String(task.output_text ?? '').includes(expected);
      if (!entry.ok) entry.why = `output does not contain ${JSON.stringify(expected)}`;
    }
  }

  const simStats = {};
  for (const [name, sim] of Object.entries(sims)) {
    const stats = await getJson(sim.to, '/sim/stats');
    simStats[name] = {
      requests: stats.requests, completed: stats.completed, prompt_tokens: stats.prompt_tokens,
      cached_tokens: stats.cached_tokens, completion_tokens: stats.completion_tokens,
      by_model: stats.by_model,
    };
  }
  const result = {
    name: options.name, backends: options.backends.split(','), strategy: options.strategy,
    compaction: options.compaction, keep_recent_steps: options.keepRecentSteps,
    summary_model: options.compaction === 'on' ? options.summaryModel : '',
    threshold: options.threshold, context_window_tokens: options.window,
    layers, graph_concurrency: options.graphConcurrency, tool_rounds: options.toolRounds,
    doc_chars: options.docChars, graph_id: graphId, graph_status: graph.status,
    tasks_total: tasks.length, tasks_completed: tasks.filter((t) => t.status === 'completed').length,
    tasks_ok: tasks.filter((t) => t.ok).length, failures: tasks.filter((t) => !t.ok),
    gateway_usage: graph.usage, steps, masked, summarised, summary_usage: summaryUsage,
    backend_hops: {
      runs: backendRuns.length,
      runs_with_hops: backendRuns.filter((r) => r.hops > 0).length,
      hops: sum(backendRuns.map((r) => r.hops)),
      max: backendRuns.length ? Math.max(...backendRuns.map((r) => r.hops)) : 0,
      per_run: backendRuns,
    },
    journal_chars: journalChars,
    prompt_tokens_per_call: {
      max: promptTokens.length ? Math.max(...promptTokens) : 0,
      mean: promptTokens.length ? sum(promptTokens) / promptTokens.length : 0,
      p50: percentile(promptTokens, 0.5),
    },
    sims: simStats, measured, status_polls: polls, store_bytes: storeBytes(),
  };
  fs.writeFileSync(path.join(options.outDir, `compaction-${options.name}.json`),
                   JSON.stringify(result, null, 2));
  const main = Object.entries(simStats).filter(([name]) => name !== 's').map(([, s]) => s);
  log(`${options.name}: graph ${graph.status} in ${measured.wall_s.toFixed(1)} s; ` +
      `${result.tasks_ok}/${tasks.length} tasks graded ok; upstream input ` +
      `${sum(main.map((s) => s.prompt_tokens))} tokens (${sum(main.map((s) => s.cached_tokens))} ` +
      `cached), ${steps.compaction} compactions, summary model ${simStats.s?.requests ?? 0} calls, ` +
      `${result.backend_hops.hops} backend hops in ${result.backend_hops.runs_with_hops} runs`);
  for (const failure of result.failures.slice(0, 5)) log(`  task ${failure.id}: ${failure.why}`);
  gateway.agent.destroy();
  for (const sim of Object.values(sims)) sim.to.agent.destroy();
  return result.tasks_ok === tasks.length && graph.status === 'completed';
}

// ---- journal workload ---------------------------------------------------------------------------

async function journal() {
  const sockets = options.concurrency + options.graphs + 64;
  const gateway = target(options.gateway, sockets);
  const sim = target(options.sim, 4);
  const layers = [];
  for (let left = options.tasks; left > 0; left -= 5) layers.push(Math.min(5, left));
  const tools = options.tool
      ? [{type: 'mcp', server_label: 'docs', allowed_tools: ['lookup']}] : [];
  const graphSpec = (g) => ({
    tasks: layeredTasks(layers, 1, (id, depends) => ({
      id,
      model: 'agent',
      instructions: `Graph ${g}, task ${id}: ` +
          (options.tool ? 'look the key up with docs__lookup and report what it says.'
                        : 'answer in a few words.'),
      ...(tools.length ? {tools} : {}),
      depends_on: depends,
    })),
    max_concurrency: 5,
    metadata: {bench: 'agents-journal', graph: g},
  });
  const chatBody = (i) => ({
    model: 'agent',
    messages: [{role: 'user', content: `Reference call ${i}: answer in a few words.`}],
  });

  async function runGraphs(count, label) {
    const before = snapshot();
    const createLatencies = [];
    const ids = await Promise.all(Array.from({length: count}, async (_, g) => {
      const started = performance.now();
      const created = await call(gateway, 'POST', '/v1/agent/graphs', graphSpec(`${label}-${g}`));
      createLatencies.push(performance.now() - started);
      if (created.status !== 200 || !created.json?.id) {
        throw new Error(`POST /v1/agent/graphs: ${created.status} ${created.text.slice(0, 300)}`);
      }
      return created.json.id;
    }));
    const {finished, polls} =
        await waitForGraphs(gateway, ids, performance.now() + options.timeoutMs);
    const measured = since(before);
    return {ids, finished, polls, measured, createLatencies};
  }

  async function runChat(calls, concurrency) {
    const latencies = [];
    const errors = [];
    let next = 0;
    const before = snapshot();
    await Promise.all(Array.from({length: Math.min(concurrency, calls)}, async () => {
      while (next < calls) {
        const i = next++;
        const started = performance.now();
        try {
          const answer = await call(gateway, 'POST', '/v1/chat/completions', chatBody(i));
          if (answer.status !== 200 || !answer.json?.choices?.[0]?.message?.content) {
            errors.push(`${answer.status} ${answer.text.slice(0, 200)}`);
          }
        } catch (error) {
          errors.push(error.message);
        }
        latencies.push(performance.now() - started);
      }
    }));
    return {calls, concurrency, measured: since(before), latencies, errors};
  }

  // Every graph completed, every task completed with an answer, and every journal complete.
  async function verify(ids) {
    const problems = [];
    const steps = {setup: 0, model_call: 0, tool_call: 0, compaction: 0, other: 0};
    const stepMs = {setup: [], model_call: [], tool_call: []};
    const runMs = [];
    let runs = 0;
    let journalChars = 0;
    await pool(ids, 8, async (id) => {
      const graph = await getJson(gateway, `/v1/agent/graphs/${id}`);
      if (graph.status !== 'completed') problems.push(`graph ${id} is ${graph.status}`);
      await pool(graph.tasks, 4, async (task) => {
        if (task.status !== 'completed' || !task.output_text) {
          problems.push(`graph ${id} task ${task.id} is ${task.status}`);
        }
        if (!task.run_id) return;
        runs++;
        const list = (await getJson(gateway, `/v1/agent/runs/${task.run_id}/steps`)).data ?? [];
        let first = Infinity;
        let last = 0;
        let toolOutput = null;
        for (const step of list) {
          steps[step.kind in steps ? step.kind : 'other']++;
          journalChars += JSON.stringify(step.request ?? null).length +
              JSON.stringify(step.result ?? null).length;
          if (step.status !== 'completed') problems.push(`run ${task.run_id} step ${step.seq} ${step.status}`);
          if (step.finished_at) {
            stepMs[step.kind]?.push(step.finished_at - step.started_at);
            last = Math.max(last, step.finished_at);
          }
          first = Math.min(first, step.started_at);
          if (step.kind === 'tool_call') toolOutput = step.result?.output ?? null;
        }
        if (last > 0) runMs.push(last - first);
        const expected = options.tool ? 4 : 2;
        if (list.length !== expected) {
          problems.push(`run ${task.run_id} journaled ${list.length} steps, expected ${expected}`);
        }
        if (options.tool && (toolOutput === null ||
                             !String(task.output_text).includes(`Found: ${firstLine(toolOutput)}`))) {
          problems.push(`run ${task.run_id}: the answer does not cite its tool result`);
        }
      });
    });
    return {runs, steps, stepMs, runMs, journalChars, problems};
  }

  log(`warm-up: 2 graphs of ${options.tasks} tasks` +
      (options.chat ? `, ${options.concurrency} chat completions` : ''));
  await runGraphs(2, 'warmup');
  if (options.chat) await runChat(options.concurrency, options.concurrency);

  const rounds = [];
  for (let round = 1; round <= options.rounds; round++) {
    log(`round ${round}/${options.rounds}, agents: ${options.graphs} graphs × ${options.tasks} ` +
        `tasks at once (${options.tool ? 'model call, lookup tool call, model call' : 'one model call'} per task)`);
    await call(sim, 'POST', '/sim/reset');
    const storeBefore = storeBytes();
    const agents = await runGraphs(options.graphs, `r${round}`);
    const storeAfter = storeBytes();
    const simAgents = await getJson(sim, '/sim/stats');
    log(`  done in ${agents.measured.wall_s.toFixed(1)} s, ${agents.polls} status polls; verifying`);
    const checked = await verify(agents.ids);
    const stepsTotal = sum(Object.values(checked.steps));
    log(`  ${checked.runs} runs, ${stepsTotal} steps journaled, ${checked.problems.length} problems` +
        (checked.problems.length ? ` (${checked.problems.slice(0, 3).join('; ')})` : ''));

    let chat = null;
    let simChat = null;
    if (options.chat) {
      await call(sim, 'POST', '/sim/reset');
      log(`round ${round}/${options.rounds}, reference: ${stepsTotal} plain chat completions, ` +
          `${options.concurrency} clients`);
      chat = await runChat(stepsTotal, options.concurrency);
      simChat = await getJson(sim, '/sim/stats');
      log(`  done in ${chat.measured.wall_s.toFixed(1)} s, ${chat.errors.length} errors`);
    }
    rounds.push({
      round,
      // Runs this gateway had finished before the round (each left a record in the tenant's
      // memory, which every task's memory search goes through).
      earlier_runs: 2 * options.tasks + (round - 1) * options.graphs * options.tasks,
      agents: {
        measured: agents.measured, polls: agents.polls,
        create_p50_ms: percentile(agents.createLatencies, 0.5),
        create_p99_ms: percentile(agents.createLatencies, 0.99),
        graphs_completed: [...agents.finished.values()].filter((f) => f.status === 'completed').length,
        runs: checked.runs, steps: checked.steps, steps_total: stepsTotal,
        model_calls: simAgents.requests, journal_chars: checked.journalChars,
        step_ms: Object.fromEntries(Object.entries(checked.stepMs).map(([kind, values]) =>
          [kind, {p50: percentile(values, 0.5), p99: percentile(values, 0.99)}])),
        run_ms: {p50: percentile(checked.runMs, 0.5), p99: percentile(checked.runMs, 0.99)},
        store_growth_bytes: storeAfter - storeBefore,
        problems: checked.problems.slice(0, 50), problem_count: checked.problems.length,
      },
      chat: chat && {
        calls: chat.calls, concurrency: chat.concurrency, measured: chat.measured,
        p50_ms: percentile(chat.latencies, 0.5), p99_ms: percentile(chat.latencies, 0.99),
        mean_ms: chat.latencies.length ? sum(chat.latencies) / chat.latencies.length : null,
        model_calls: simChat.requests, errors: chat.errors.length,
        error_samples: chat.errors.slice(0, 5),
      },
    });
  }

  const result = {
    graphs: options.graphs, tasks: options.tasks, concurrency: options.concurrency,
    tool: options.tool, rounds, loadavg: os.loadavg(),
  };
  fs.writeFileSync(path.join(options.outDir, `${options.tag}.json`), JSON.stringify(result, null, 2));
  gateway.agent.destroy();
  sim.agent.destroy();
  return rounds.every((r) => r.agents.problem_count === 0 && (!r.chat || r.chat.errors === 0) &&
                              r.agents.graphs_completed === options.graphs);
}

// ---- summary ------------------------------------------------------------------------------------

function summary() {
  const f = (x, digits = 0) => (x === null || x === undefined || Number.isNaN(x) ? '–'
      : Number(x).toLocaleString('en-US', {minimumFractionDigits: digits, maximumFractionDigits: digits}));
  const pct = (x) => (x === null || x === undefined ? '–' : `${(x * 100).toFixed(0)}%`);
  const signed = (x) => (x === null ? '–' : Math.abs(x) < 0.005 ? '±0%'
      : `${x < 0 ? '−' : '+'}${(Math.abs(x) * 100).toFixed(0)}%`);
  const lines = [];
  const out = (s = '') => lines.push(s);
  const price = {a: [3.0, 15.0], b: [3.0, 15.0], s: [0.25, 1.25]};
  const costOf = (sims, discount) => {
    let cost = 0;
    for (const [name, s] of Object.entries(sims)) {
      const [input, output] = price[name] ?? [0, 0];
      const uncached = s.prompt_tokens - s.cached_tokens;
      cost += (uncached * input + s.cached_tokens * input * discount + s.completion_tokens * output) / 1e6;
    }
    return cost;
  };

  const files = fs.readdirSync(options.outDir).filter((f) => /^compaction-.*\.json$/.test(f));
  const order = (process.env.AGENTS_CONFIG_ORDER ?? '').split(',').filter(Boolean);
  const configs = files.map((file) => JSON.parse(fs.readFileSync(path.join(options.outDir, file), 'utf8')))
      .sort((x, y) => (order.indexOf(x.name) - order.indexOf(y.name)) || x.name.localeCompare(y.name));
  let failed = false;
  if (configs.length) {
    const first = configs[0];
    out(`#### Compaction: one graph of ${first.tasks_total} tasks (layers ${first.layers.join('/')}, ` +
        `max_concurrency ${first.graph_concurrency}), ${first.tool_rounds} document reads per task`);
    out();
    const baseline = configs.find((c) => c.compaction === 'off' && c.backends.length === 1);
    const mainSims = (c) => Object.entries(c.sims).filter(([n]) => n !== 's').map(([, s]) => s);
    for (const c of configs) {
      const main = mainSims(c);
      const input = sum(main.map((s) => s.prompt_tokens));
      const cached = sum(main.map((s) => s.cached_tokens));
      const s = c.sims.s ?? {prompt_tokens: 0, cached_tokens: 0, completion_tokens: 0, requests: 0};
      c.derived = {
        input, cached, uncached: input - cached,
        output: sum(main.map((m) => m.completion_tokens)),
        list: costOf(c.sims, 1), discounted: costOf(c.sims, options.cachedPrice),
        summaryList: costOf({s}, 1), summaryDiscounted: costOf({s}, options.cachedPrice),
        upstreamIn: sum(Object.values(c.sims).map((m) => m.prompt_tokens)),
        upstreamOut: sum(Object.values(c.sims).map((m) => m.completion_tokens)),
      };
      failed ||= c.tasks_ok !== c.tasks_total || c.graph_status !== 'completed';
    }
    const versus = (c, key) => (!baseline || c === baseline ? '–'
        : signed(c.derived[key] / baseline.derived[key] - 1));
    const setting = (c) => (c.compaction === 'on'
        ? `window ${f(c.context_window_tokens)} × ${c.threshold}, keep ${c.keep_recent_steps}, ` +
          `${c.summary_model ? `summary "${c.summary_model}"` : 'mask only'}`
        : 'off');
    out('| configuration | backends, strategy | compaction | tasks ok | upstream input tokens (a, b) | ' +
        'vs no compaction | cached | uncached input | peak / mean prompt per call | ' +
        `cost, list price | vs no compaction | cost, cached input at ${options.cachedPrice}× | vs no compaction |`);
    out('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
    for (const c of configs) {
      const d = c.derived;
      out(`| ${c.name} | ${c.backends.length}${c.backends.length > 1 ? `, ${c.strategy}` : ''} | ` +
          `${setting(c)} | ${c.tasks_ok}/${c.tasks_total} | ${f(d.input)} | ${versus(c, 'input')} | ` +
          `${f(d.cached)} (${pct(d.input ? d.cached / d.input : null)}) | ${f(d.uncached)} | ` +
          `${f(c.prompt_tokens_per_call.max)} / ${f(c.prompt_tokens_per_call.mean)} | ` +
          `$${f(d.list, 3)} | ${versus(c, 'list')} | $${f(d.discounted, 3)} | ${versus(c, 'discounted')} |`);
    }
    out();
    out('| configuration | compactions (observations masked) | summary-model calls | ' +
        'summary input / output tokens | summary cost, list / cached | summary share of cost, list / cached | ' +
        'output tokens (a, b) | journal text MiB | wall s |');
    out('| --- | --- | --- | --- | --- | --- | --- | --- | --- |');
    for (const c of configs) {
      const d = c.derived;
      const s = c.sims.s ?? {};
      out(`| ${c.name} | ${c.steps.compaction} (${c.masked}) | ${f(s.requests ?? 0)} | ` +
          `${f(s.prompt_tokens ?? 0)} / ${f(s.completion_tokens ?? 0)} | ` +
          `$${f(d.summaryList, 3)} / $${f(d.summaryDiscounted, 3)} | ` +
          `${pct(d.list ? d.summaryList / d.list : null)} / ${pct(d.discounted ? d.summaryDiscounted / d.discounted : null)} | ` +
          `${f(d.output)} | ${f(c.journal_chars / 1048576, 1)} | ${f(c.measured.wall_s, 1)} |`);
    }
    out();
    out('| configuration | gateway-reported input / output tokens | upstream input / output (a, b, s) | ' +
        'gateway cost (list) | model calls a / b | cache hits a / b | runs with backend hops (hops, most in one run) | ' +
        'gateway CPU s | MCP server CPU s | store MiB at end |');
    out('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
    for (const c of configs) {
      const a = c.sims.a ?? {};
      const b = c.sims.b ?? {};
      const two = c.backends.length > 1;
      const hit = (s) => (s.prompt_tokens ? pct(s.cached_tokens / s.prompt_tokens) : '–');
      const h = c.backend_hops;
      out(`| ${c.name} | ${f(c.gateway_usage.input_tokens)} / ${f(c.gateway_usage.output_tokens)} | ` +
          `${f(c.derived.upstreamIn)} / ${f(c.derived.upstreamOut)} | ` +
          `$${f(c.gateway_usage.cost_usd, 3)} | ${f(a.requests)} / ${two ? f(b.requests) : '–'} | ` +
          `${hit(a)} / ${two ? hit(b) : '–'} | ` +
          `${two ? `${h.runs_with_hops}/${h.runs} (${h.hops}, ${h.max})` : '–'} | ` +
          `${f(c.measured.gateway_cpu_s, 2)} | ${f(c.measured.mcp_server_cpu_s, 2)} | ` +
          `${f(c.store_bytes / 1048576, 1)} |`);
    }
    out();
    for (const c of configs) {
      const hopping = c.backend_hops.per_run.filter((r) => r.hops > 0);
      if (c.backends.length > 1 && hopping.length) {
        out(`- ${c.name}, backends of the model calls of runs that hopped: ` +
            hopping.slice(0, 6).map((r) => `${r.task} ${r.backends}`).join(', ') +
            (hopping.length > 6 ? `, … (${hopping.length} runs)` : ''));
      }
      for (const failure of c.failures.slice(0, 3)) out(`- ${c.name}, task ${failure.id}: ${failure.why}`);
    }
    out();
    out(`Prices: backends a and b $3 / $15 per million input / output tokens, the summary model's ` +
        `backend s $0.25 / $1.25; costs include the summary model. "list price" bills every input ` +
        `token in full (what the gateway's own accounting does); "cached input at ${options.cachedPrice}×" ` +
        `bills the simulators' cached_tokens at ${options.cachedPrice} of the input price. Upstream ` +
        `tokens are the simulators' own counts (/sim/stats, 4 characters a token, message text only). ` +
        `Backend hops: in a run's journal, model calls served by another backend than the call before.`);
    out();
  }

  const readJson = (file) => JSON.parse(fs.readFileSync(path.join(options.outDir, file), 'utf8'));
  const freshFiles = fs.readdirSync(options.outDir).filter((f) => /^journal-fresh-\d+\.json$/.test(f))
      .sort((x, y) => Number(x.match(/\d+/)[0]) - Number(y.match(/\d+/)[0]));
  if (freshFiles.length) {
    const runsOf = freshFiles.map(readJson);
    const j = runsOf[0];
    const stepsPerRun = j.tool ? 4 : 2;
    // Per fresh gateway: the figures of both workloads, and how they compare.
    const derived = runsOf.map((file, i) => {
      const {agents: a, chat: c} = file.rounds[0];
      const cpuStep = (a.measured.gateway_cpu_s * 1e6) / a.steps_total;
      const cpuCall = (c.measured.gateway_cpu_s * 1e6) / c.calls;
      failed ||= a.problem_count > 0 || c.errors > 0 || a.graphs_completed !== j.graphs;
      return {
        round: i + 1, a, c, cpuStep, cpuCall,
        stepsPerS: a.steps_total / a.measured.wall_s,
        callsPerS: c.calls / c.measured.wall_s,
        writtenStep: a.measured.written_bytes === null ? null : a.measured.written_bytes / a.steps_total,
        writtenCall: c.measured.written_bytes === null ? null : c.measured.written_bytes / c.calls,
        overheadUs: (a.measured.gateway_cpu_s * 1e6 - a.model_calls * cpuCall) / a.steps_total,
        stepWall: a.run_ms.p50 / stepsPerRun,
        coreUse: a.measured.gateway_cpu_s / a.measured.wall_s,
        coreUseChat: c.measured.gateway_cpu_s / c.measured.wall_s,
      };
    });
    const med = (fn) => {
      const values = derived.map(fn).filter((v) => v !== null && v !== undefined).sort((x, y) => x - y);
      if (!values.length) return null;
      const mid = Math.floor(values.length / 2);
      return values.length % 2 ? values[mid] : (values[mid - 1] + values[mid]) / 2;
    };
    const a0 = derived[0].a;
    const kib = (bytes, digits = 1) => (bytes === null ? '–' : `${f(bytes / 1024, digits)} KiB`);
    const problems = sum(derived.map((d) => d.a.problem_count));
    const chatErrors = sum(derived.map((d) => d.c.errors));
    out(`#### Journal: ${j.graphs} graphs × ${j.tasks} tasks started at once ` +
        `(${j.tool ? 'each task: model call, lookup tool call, model call' : 'each task: one model call'}), ` +
        `at most ${j.concurrency} runs at a time; then as many plain chat completions from ` +
        `${j.concurrency} clients; ${derived.length} rounds, each on a fresh gateway and store, medians`);
    out();
    out('| workload | done, per round | steps journaled | model calls | wall s | steps or calls / s | ' +
        'gateway CPU µs per step or call | gateway core use | storage written per step or call | latency p50 / p99 ms |');
    out('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
    out(`| graphs | ${a0.graphs_completed}/${j.graphs} graphs, ${a0.runs} runs; ${problems} problems in all rounds | ` +
        `${f(a0.steps_total)} (${Object.entries(a0.steps).filter(([, n]) => n).map(([k, n]) => `${k} ${n}`).join(', ')}) | ` +
        `${f(a0.model_calls)} | ${f(med((d) => d.a.measured.wall_s), 1)} | ${f(med((d) => d.stepsPerS))} | ` +
        `${f(med((d) => d.cpuStep))} | ${pct(med((d) => d.coreUse))} | ${kib(med((d) => d.writtenStep))} | ` +
        `run ${f(med((d) => d.a.run_ms.p50))} / ${f(med((d) => d.a.run_ms.p99))}; model step ` +
        `${f(med((d) => d.a.step_ms.model_call?.p50))} / ${f(med((d) => d.a.step_ms.model_call?.p99))}` +
        `${j.tool ? `, tool step ${f(med((d) => d.a.step_ms.tool_call?.p50))} / ${f(med((d) => d.a.step_ms.tool_call?.p99))}` : ''} |`);
    out(`| plain chat completions | ${f(derived[0].c.calls)} calls; ${chatErrors} errors in all rounds | – | ` +
        `${f(derived[0].c.model_calls)} | ${f(med((d) => d.c.measured.wall_s), 1)} | ${f(med((d) => d.callsPerS))} | ` +
        `${f(med((d) => d.cpuCall))} | ${pct(med((d) => d.coreUseChat))} | ${kib(med((d) => d.writtenCall), 2)} | ` +
        `${f(med((d) => d.c.p50_ms), 1)} / ${f(med((d) => d.c.p99_ms), 1)} |`);
    out();
    out('| journal overhead (medians over rounds) | value |');
    out('| --- | --- |');
    out(`| gateway CPU per journaled step / per plain call | **${f(med((d) => d.cpuStep / d.cpuCall), 1)}×** ` +
        `(${f(med((d) => d.cpuStep))} / ${f(med((d) => d.cpuCall))} µs) |`);
    out(`| gateway CPU per step beyond proxying the runs' model calls | ${f(med((d) => d.overheadUs))} µs ` +
        `(all its CPU minus ${f(a0.model_calls)} × the plain call's, over ${f(a0.steps_total)} steps) |`);
    out(`| throughput, steps/s over plain calls/s | ${f(med((d) => d.stepsPerS / d.callsPerS), 2)}× |`);
    out(`| latency per step within a run (run duration p50 / ${stepsPerRun} steps) vs plain call p50, ` +
        `as many in flight | ${f(med((d) => d.stepWall), 1)} ms vs ${f(med((d) => d.c.p50_ms), 1)} ms ` +
        `(${f(med((d) => d.stepWall / d.c.p50_ms), 1)}×) |`);
    out(`| storage written per step (gateway /proc/PID/io write_bytes) | ${kib(med((d) => d.writtenStep))}; ` +
        `the journal's own text is ${f(med((d) => d.a.journal_chars / d.a.steps_total))} characters per step; ` +
        `the store grew ${f(med((d) => d.a.store_growth_bytes / 1048576), 1)} MiB per round |`);
    out(`| MCP server CPU (a child of the gateway, not counted above) | ${f(med((d) => d.a.measured.mcp_server_cpu_s), 2)} s per round |`);
    out(`| graph creation p50 / p99 (${j.graphs} POSTs at once) | ${f(med((d) => d.a.create_p50_ms), 1)} / ` +
        `${f(med((d) => d.a.create_p99_ms), 1)} ms |`);
    out(`| status polls during a round | ${f(med((d) => d.a.polls))} (one graph followed at a time, every 100 ms) |`);
    for (const d of derived) {
      for (const problem of d.a.problems.slice(0, 3)) out(`| problem, round ${d.round} | ${problem} |`);
      for (const error of d.c.error_samples.slice(0, 3)) out(`| chat error, round ${d.round} | ${error} |`);
    }
    out();
    out('| round (fresh gateway) | graphs wall s | steps/s | CPU µs/step | written KiB/step | chat wall s | calls/s | CPU µs/call | CPU ratio |');
    out('| --- | --- | --- | --- | --- | --- | --- | --- | --- |');
    for (const d of derived) {
      out(`| ${d.round} | ${f(d.a.measured.wall_s, 1)} | ${f(d.stepsPerS)} | ${f(d.cpuStep)} | ` +
          `${d.writtenStep === null ? '–' : f(d.writtenStep / 1024, 1)} | ${f(d.c.measured.wall_s, 1)} | ` +
          `${f(d.callsPerS)} | ${f(d.cpuCall)} | ${f(d.cpuStep / d.cpuCall, 1)}× |`);
    }
    out();
  }
  if (fs.existsSync(path.join(options.outDir, 'journal-growth.json'))) {
    const g = readJson('journal-growth.json');
    out(`#### Journal on a growing store: the same ${g.graphs} × ${g.tasks} graphs, ${g.rounds.length} ` +
        'rounds one after the other on one gateway');
    out();
    out('| round | runs finished before it | graphs completed | problems | wall s | steps/s | gateway CPU µs/step | written KiB/step |');
    out('| --- | --- | --- | --- | --- | --- | --- | --- |');
    for (const r of g.rounds) {
      const a = r.agents;
      failed ||= a.problem_count > 0 || a.graphs_completed !== g.graphs;
      out(`| ${r.round} | ${f(r.earlier_runs)} | ${a.graphs_completed}/${g.graphs} | ${a.problem_count} | ` +
          `${f(a.measured.wall_s, 1)} | ${f(a.steps_total / a.measured.wall_s)} | ` +
          `${f((a.measured.gateway_cpu_s * 1e6) / a.steps_total)} | ` +
          `${a.measured.written_bytes === null ? '–' : f(a.measured.written_bytes / a.steps_total / 1024, 1)} |`);
      for (const problem of a.problems.slice(0, 3)) out(`| problem | ${problem} | | | | | | |`);
    }
    out();
  }
  const text = lines.join('\n') + '\n';
  fs.writeFileSync(path.join(options.outDir, 'summary.md'), text);
  process.stdout.write(text);
  return !failed;
}

// ---- main ---------------------------------------------------------------------------------------

let ok = false;
try {
  if (phase === 'compaction') ok = await compaction();
  else if (phase === 'journal') ok = await journal();
  else ok = summary();
} catch (error) {
  log(`error: ${error.stack ?? error.message}`);
  ok = false;
}
process.exit(ok ? 0 : 1);
