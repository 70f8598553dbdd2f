// Load generator for server-side conversation state: N concurrent conversations of T turns each,
// against plain chat completions carrying the whole history, in one run against one gateway and
// one upstream. Node's own http only.
//
// Workloads (each a batch: N clients start together, each runs its T turns back to back, the
// batch ends when the last client is done):
//   stateless  POST /v1/chat/completions through the gateway; the client sends the whole history
//              (user and assistant messages, no system message) every turn.
//   stateful   POST /v1/conversations, then T times POST /v1/responses {model, input, conversation}
//              with only the new user input; the gateway loads and stores the history.
//   direct     the stateless turns sent to the upstream itself (no gateway), with --direct.
// The user texts are the same in all three, so the upstream does the same work. turns/s is the
// batch's completed turns over its wall time (for stateful that window includes creating the N
// conversations); latency is per turn, the creations' own latency is reported apart.
//
// After a warm-up batch of each workload, ROUNDS rounds run interleaved (stateless, stateful,
// direct, stateless, ...) and each figure's median over the rounds is reported, because the
// machine's speed drifts. After every stateful round a sample of its conversations is read back
// (GET /v1/conversations/{id}/items?order=asc&limit=100) and must hold exactly 2*T items, user
// and assistant alternating, with the user texts that were sent; a mismatch counts as an error.
//
// Usage: node sessions.mjs --gateway http://127.0.0.1:19411 [--direct http://127.0.0.1:19401]
//          [--model m] [--conversations 1000] [--turns 4] [--rounds 3]
//          [--warmup-conversations N] [--warmup-turns 1] [--verify 100] [--timeout-ms 60000]
//          [--gateway-pid PID] [--sim-pid PID] [--out-dir DIR] [--only stateful,...]
// With --gateway-pid / --sim-pid it also reports each process's CPU time per turn, the gateway's
// resident memory (sampled every 100 ms) and what it wrote to storage per turn (/proc/PID/io;
// tmpfs writes are not counted there). Writes DIR/results.json and DIR/summary.md
// and prints the summary; exits 1 when any measured turn or check failed. --only runs a subset of
// the workloads (for profiling one of them); the comparison then needs both stateless and stateful.
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import {performance} from 'node:perf_hooks';

// ---- options ------------------------------------------------------------------------------------

function parseArgs(argv) {
  const options = {
    gateway: '', direct: '', model: 'm', conversations: 1000, turns: 4, rounds: 3,
    warmupConversations: -1, warmupTurns: 1, verify: 100, timeoutMs: 60000, gatewayPid: 0,
    simPid: 0, outDir: '', only: '',
  };
  const names = {
    '--gateway': 'gateway', '--direct': 'direct', '--model': 'model',
    '--conversations': 'conversations', '--turns': 'turns', '--rounds': 'rounds',
    '--warmup-conversations': 'warmupConversations', '--warmup-turns': 'warmupTurns',
    '--verify': 'verify', '--timeout-ms': 'timeoutMs', '--gateway-pid': 'gatewayPid',
    '--sim-pid': 'simPid', '--out-dir': 'outDir', '--only': 'only',
  };
  const strings = new Set(['gateway', 'direct', 'model', 'outDir', 'only']);
  for (let i = 2; i < argv.length; i += 2) {
    const key = names[argv[i]];
    if (!key || i + 1 >= argv.length) throw new Error(`bad argument ${argv[i]}`);
    options[key] = strings.has(key) ? argv[i + 1] : Number(argv[i + 1]);
    if (!strings.has(key) && !Number.isFinite(options[key])) {
      throw new Error(`${argv[i]} needs a number`);
    }
  }
  if (!options.gateway) throw new Error('--gateway is required');
  if (options.conversations < 1 || options.turns < 1 || options.rounds < 1) {
    throw new Error('--conversations, --turns and --rounds must be at least 1');
  }
  if (options.warmupConversations < 0) options.warmupConversations = options.conversations;
  return options;
}

const options = parseArgs(process.argv);

// ---- HTTP ---------------------------------------------------------------------------------------

// One keep-alive agent per target, big enough that every client keeps its own connection: no
// request waits for a socket, and no idle socket is closed because too many are free at once.
function target(base) {
  const url = new URL(base);
  const sockets = options.conversations + options.warmupConversations + 64;
  return {
    host: url.hostname,
    port: Number(url.port),
    agent: new http.Agent({keepAlive: true, maxSockets: sockets, maxFreeSockets: sockets}),
  };
}

const gateway = target(options.gateway);
const direct = options.direct ? target(options.direct) : null;

// Resolves to {status, json, text}; rejects on a network error or after timeoutMs.
function call(to, method, urlPath, body) {
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
    request.setTimeout(options.timeoutMs, () => request.destroy(new Error('timeout')));
    request.on('error', reject);
    request.end(payload);
  });
}

// ---- measurement of the processes ---------------------------------------------------------------

// CPU seconds the process's threads have run so far (schedstat: nanoseconds, unlike the 10 ms
// ticks of /proc/PID/stat, which are too coarse for a batch of a second).
function cpuSeconds(pid) {
  return pid ? schedTimes(pid).run / 1e9 : 0;
}

function memoryKib(pid, field) {
  if (!pid) return 0;
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const match = status.match(new RegExp(`^${field}:\\s+(\\d+)`, 'm'));
    return match ? Number(match[1]) : 0;
  } catch {
    return 0;
  }
}

// Bytes the process sent to storage so far (/proc/PID/io write_bytes: page-cache writes it
// dirtied, counted when they are made), or null when unreadable.
function diskWriteBytes(pid) {
  if (!pid) return null;
  try {
    const match = fs.readFileSync(`/proc/${pid}/io`, 'utf8').match(/^write_bytes:\s+(\d+)/m);
    return match ? Number(match[1]) : null;
  } catch {
    return null;
  }
}

// Nanoseconds the process's threads ran and waited on a run queue (ready, but the CPU was busy
// with something else), summed over its threads: /proc/PID/task/TID/schedstat.
function schedTimes(pid) {
  const sum = {run: 0, wait: 0};
  if (!pid) return sum;
  try {
    for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
      try {
        const [run, wait] = fs.readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8')
            .split(' ').map(Number);
        sum.run += run;
        sum.wait += wait;
      } catch {
        // the thread ended
      }
    }
  } catch {
    // no such process
  }
  return sum;
}

// Busy and total jiffies per CPU, to tell how much of each core the run had.
function cpuTimes() {
  const times = {};
  for (const line of fs.readFileSync('/proc/stat', 'utf8').split('\n')) {
    const match = line.match(/^cpu(\d+)\s+(.*)$/);
    if (!match) continue;
    const v = match[2].split(/\s+/).map(Number);
    const idle = v[3] + v[4];
    const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
    times[match[1]] = {busy: total - idle, total};
  }
  return times;
}

function busyShare(before, after) {
  const share = {};
  for (const cpu of Object.keys(after)) {
    const total = after[cpu].total - before[cpu].total;
    share[`cpu${cpu}`] = total > 0 ? (after[cpu].busy - before[cpu].busy) / total : 0;
  }
  return share;
}

// ---- workloads ----------------------------------------------------------------------------------

const userText = (client, turn) =>
  `Conversation ${client}, turn ${turn + 1}: please answer in a few words.`;

function chatContent(json) {
  const content = json?.choices?.[0]?.message?.content;
  return typeof content === 'string' && content.length > 0 ? content : null;
}

function responseText(json) {
  if (!json || json.status !== 'completed' || !Array.isArray(json.output)) return null;
  const text = json.output
      .filter((item) => item.type === 'message')
      .flatMap((item) => item.content ?? [])
      .map((part) => part.text ?? '')
      .join('');
  return text.length > 0 ? text : null;
}

// A failed call: counted, and the first few kept for the report. A client stops at its first
// failure (its next turn would not have the history it needs).
function failure(stats, what, detail) {
  stats.errors++;
  if (stats.samples.length < 5) stats.samples.push(`${what}: ${String(detail).slice(0, 300)}`);
}

async function timed(stats, fn) {
  const started = performance.now();
  const result = await fn();
  stats.latencies.push(performance.now() - started);
  return result;
}

async function statelessClient(to, client, turns, stats) {
  const messages = [];
  for (let turn = 0; turn < turns; turn++) {
    messages.push({role: 'user', content: userText(client, turn)});
    let answer;
    try {
      answer = await timed(stats, () => call(to, 'POST', '/v1/chat/completions',
                                             {model: options.model, messages}));
    } catch (error) {
      failure(stats, 'chat', error.message);
      return;
    }
    const content = answer.status === 200 ? chatContent(answer.json) : null;
    if (content === null) {
      failure(stats, `chat ${answer.status}`, answer.text);
      return;
    }
    stats.ok++;
    messages.push({role: 'assistant', content});
  }
}

async function statefulClient(to, client, turns, stats) {
  let conversation;
  try {
    const started = performance.now();
    conversation = await call(to, 'POST', '/v1/conversations', {metadata: {bench: 'sessions'}});
    stats.createLatencies.push(performance.now() - started);
  } catch (error) {
    failure(stats, 'create', error.message);
    return;
  }
  const id = conversation.json?.id;
  if (conversation.status !== 200 || typeof id !== 'string') {
    failure(stats, `create ${conversation.status}`, conversation.text);
    return;
  }
  stats.conversations[client] = id;
  for (let turn = 0; turn < turns; turn++) {
    let answer;
    try {
      answer = await timed(stats, () => call(to, 'POST', '/v1/responses', {
        model: options.model, input: userText(client, turn), conversation: id,
      }));
    } catch (error) {
      failure(stats, 'response', error.message);
      return;
    }
    if (answer.status !== 200 || responseText(answer.json) === null) {
      failure(stats, `response ${answer.status}`, answer.text);
      return;
    }
    stats.ok++;
  }
}

// Reads back `sample` of the round's conversations; returns {checked, mismatches, samples}.
async function verify(conversations, turns, sample) {
  const clients = Object.keys(conversations).map(Number).sort((a, b) => a - b);
  const picked = [];
  const step = Math.max(1, clients.length / Math.max(1, sample));
  for (let i = 0; i < clients.length && picked.length < sample; i += step) {
    picked.push(clients[Math.floor(i)]);
  }
  const result = {checked: 0, mismatches: 0, samples: []};
  const mismatch = (client, why) => {
    result.mismatches++;
    if (result.samples.length < 5) result.samples.push(`conversation ${client}: ${why}`);
  };
  await Promise.all(picked.map(async (client) => {
    const id = conversations[client];
    result.checked++;
    let answer;
    try {
      answer = await call(gateway, 'GET', `/v1/conversations/${id}/items?order=asc&limit=100`);
    } catch (error) {
      mismatch(client, error.message);
      return;
    }
    const items = answer.json?.data;
    if (answer.status !== 200 || !Array.isArray(items)) {
      mismatch(client, `status ${answer.status}: ${answer.text.slice(0, 200)}`);
      return;
    }
    if (items.length !== 2 * turns || answer.json.has_more) {
      mismatch(client, `${items.length} items (has_more ${answer.json.has_more}), expected ${2 * turns}`);
      return;
    }
    for (let i = 0; i < items.length; i++) {
      const item = items[i];
      const role = i % 2 === 0 ? 'user' : 'assistant';
      if (item.type !== 'message' || item.role !== role) {
        mismatch(client, `item ${i} is ${item.type}/${item.role}, expected message/${role}`);
        return;
      }
      const text = (item.content ?? []).map((part) => part.text ?? '').join('');
      if (role === 'user' ? text !== userText(client, i / 2) : text.length === 0) {
        mismatch(client, `item ${i} has text ${JSON.stringify(text.slice(0, 80))}`);
        return;
      }
    }
  }));
  return result;
}

// Runs one batch of a workload and measures it.
async function batch(workload, clients, turns) {
  const stats = {ok: 0, errors: 0, samples: [], latencies: [], createLatencies: [],
                 conversations: {}};
  const to = workload === 'direct' ? direct : gateway;
  const run = workload === 'stateful' ? statefulClient : statelessClient;

  let rssMax = memoryKib(options.gatewayPid, 'VmRSS');
  const sampler = setInterval(() => {
    rssMax = Math.max(rssMax, memoryKib(options.gatewayPid, 'VmRSS'));
  }, 100);
  const cpuBefore = cpuTimes();
  const gatewayBefore = cpuSeconds(options.gatewayPid);
  const schedBefore = schedTimes(options.gatewayPid);
  const writtenBefore = diskWriteBytes(options.gatewayPid);
  const simBefore = cpuSeconds(options.simPid);
  const selfBefore = process.cpuUsage();
  const started = performance.now();

  const runs = [];
  for (let client = 0; client < clients; client++) runs.push(run(to, client, turns, stats));
  await Promise.all(runs);

  const elapsed = (performance.now() - started) / 1000;
  const self = process.cpuUsage(selfBefore);
  const gatewayCpu = cpuSeconds(options.gatewayPid) - gatewayBefore;
  const schedAfter = schedTimes(options.gatewayPid);
  const writtenAfter = diskWriteBytes(options.gatewayPid);
  const simCpu = cpuSeconds(options.simPid) - simBefore;
  const busy = busyShare(cpuBefore, cpuTimes());
  clearInterval(sampler);
  rssMax = Math.max(rssMax, memoryKib(options.gatewayPid, 'VmRSS'));

  const sorted = Float64Array.from(stats.latencies).sort();
  const creates = Float64Array.from(stats.createLatencies).sort();
  const perTurnUs = (seconds) => (stats.ok > 0 ? (seconds * 1e6) / stats.ok : null);
  return {
    workload, clients, turns, ok_turns: stats.ok, errors: stats.errors, error_samples: stats.samples,
    elapsed_s: elapsed, turns_per_s: stats.ok / elapsed,
    p50_ms: percentile(sorted, 0.5), p90_ms: percentile(sorted, 0.9),
    p99_ms: percentile(sorted, 0.99), max_ms: sorted.length ? sorted[sorted.length - 1] : null,
    mean_ms: sorted.length ? sorted.reduce((a, b) => a + b, 0) / sorted.length : null,
    create_p50_ms: percentile(creates, 0.5), create_p99_ms: percentile(creates, 0.99),
    gateway_cpu_s: options.gatewayPid && workload !== 'direct' ? gatewayCpu : null,
    gateway_cpu_us_per_turn: options.gatewayPid && workload !== 'direct' ? perTurnUs(gatewayCpu) : null,
    sim_cpu_us_per_turn: options.simPid ? perTurnUs(simCpu) : null,
    loadgen_cpu_us_per_turn: perTurnUs((self.user + self.system) / 1e6),
    gateway_rss_max_kib: options.gatewayPid ? rssMax : null,
    gateway_disk_write_kib_per_turn: writtenBefore !== null && writtenAfter !== null && stats.ok > 0
        ? (writtenAfter - writtenBefore) / 1024 / stats.ok : null,
    // Seconds of CPU the gateway's threads got, and spent ready but waiting for a CPU (behind
    // each other or other processes), summed over its threads, per second of the batch.
    gateway_run_share: options.gatewayPid ? (schedAfter.run - schedBefore.run) / 1e9 / elapsed : null,
    gateway_cpu_wait_share:
        options.gatewayPid ? (schedAfter.wait - schedBefore.wait) / 1e9 / elapsed : null,
    cpu_busy: busy,
    conversations: stats.conversations,
  };
}

function percentile(sorted, q) {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)];
}

function median(values) {
  const present = values.filter((v) => v !== null && v !== undefined).sort((a, b) => a - b);
  if (present.length === 0) return null;
  const mid = Math.floor(present.length / 2);
  return present.length % 2 ? present[mid] : (present[mid - 1] + present[mid]) / 2;
}

// ---- the run ------------------------------------------------------------------------------------

const log = (message) =>
  process.stderr.write(`[sessions ${new Date().toISOString().slice(11, 19)}] ${message}\n`);

const workloads = ['stateless', 'stateful', ...(direct ? ['direct'] : [])]
    .filter((w) => !options.only || options.only.split(',').includes(w));
const summaryOf = (r) =>
  `${r.ok_turns}/${r.clients * r.turns} turns in ${r.elapsed_s.toFixed(2)} s: ` +
  `${r.turns_per_s.toFixed(0)} turns/s, p50 ${r.p50_ms?.toFixed(1)} ms, ` +
  `p99 ${r.p99_ms?.toFixed(1)} ms, ${r.errors} errors` +
  (r.gateway_cpu_us_per_turn ? `, gateway ${r.gateway_cpu_us_per_turn.toFixed(0)} CPU µs/turn` : '') +
  (r.gateway_rss_max_kib ? `, gateway RSS ≤ ${(r.gateway_rss_max_kib / 1024).toFixed(1)} MiB` : '') +
  (r.gateway_run_share !== null ? `, gateway used ${(r.gateway_run_share * 100).toFixed(0)}% of a core ` +
   `(its threads waited for a CPU ${(r.gateway_cpu_wait_share * 100).toFixed(0)}% of thread-time)` : '');

const idleRssKib = memoryKib(options.gatewayPid, 'VmRSS');
const loadavgStart = os.loadavg();
const warmups = [];
for (const workload of workloads) {
  log(`warm-up ${workload}: ${options.warmupConversations} clients × ${options.warmupTurns} turns`);
  const r = await batch(workload, options.warmupConversations, options.warmupTurns);
  log(`  ${summaryOf(r)}`);
  delete r.conversations;
  warmups.push(r);
}

const runs = [];
const verifications = [];
for (let round = 1; round <= options.rounds; round++) {
  for (const workload of workloads) {
    log(`round ${round}/${options.rounds} ${workload}: ${options.conversations} clients × ` +
        `${options.turns} turns`);
    const r = await batch(workload, options.conversations, options.turns);
    r.round = round;
    log(`  ${summaryOf(r)}`);
    if (workload === 'stateful') {
      const checked = await verify(r.conversations, options.turns, options.verify);
      checked.round = round;
      verifications.push(checked);
      log(`  verified ${checked.checked} conversations: ${checked.mismatches} mismatches` +
          (checked.samples.length ? ` (${checked.samples.join('; ')})` : ''));
    }
    delete r.conversations;
    runs.push(r);
  }
}

const medians = {};
for (const workload of workloads) {
  const mine = runs.filter((r) => r.workload === workload);
  const m = {workload, rounds: mine.length, errors: mine.reduce((a, r) => a + r.errors, 0)};
  for (const key of ['turns_per_s', 'p50_ms', 'p90_ms', 'p99_ms', 'max_ms', 'mean_ms',
                     'create_p50_ms', 'create_p99_ms', 'gateway_cpu_us_per_turn',
                     'sim_cpu_us_per_turn', 'loadgen_cpu_us_per_turn', 'gateway_rss_max_kib',
                     'gateway_run_share', 'gateway_cpu_wait_share',
                     'gateway_disk_write_kib_per_turn']) {
    m[key] = median(mine.map((r) => r[key]));
  }
  m.cpu0_busy = median(mine.map((r) => r.cpu_busy.cpu0 ?? null));
  m.cpu1_busy = median(mine.map((r) => r.cpu_busy.cpu1 ?? null));
  medians[workload] = m;
}
const mismatches = verifications.reduce((a, v) => a + v.mismatches, 0);
if (medians.stateful) medians.stateful.errors += mismatches;
const stateless = medians.stateless ?? {};
const stateful = medians.stateful ?? {};
// null unless both figures are there
const both = (a, b, fn) => (a === null || a === undefined || b === null || b === undefined ? null : fn(a, b));
const comparison = {
  throughput_ratio: both(stateful.turns_per_s, stateless.turns_per_s, (a, b) => a / b),
  added_p50_ms: both(stateful.p50_ms, stateless.p50_ms, (a, b) => a - b),
  added_p99_ms: both(stateful.p99_ms, stateless.p99_ms, (a, b) => a - b),
  added_gateway_cpu_us_per_turn:
      both(stateful.gateway_cpu_us_per_turn, stateless.gateway_cpu_us_per_turn, (a, b) => a - b),
  verified_conversations: verifications.reduce((a, v) => a + v.checked, 0),
  verify_mismatches: mismatches,
};

// ---- report -------------------------------------------------------------------------------------

const f = (x, digits = 0) => (x === null || x === undefined ? '–' : x.toFixed(digits));
const pct = (x) => (x === null || x === undefined ? '–' : `${Math.round(x * 100)}%`);
const lines = [];
const out = (s = '') => lines.push(s);
const label = {
  stateless: 'stateless: chat completions via gateway, client sends history',
  stateful: 'stateful: conversation + responses via gateway',
  direct: 'direct: chat completions to the simulator, no gateway',
};
out(`${options.conversations} concurrent clients × ${options.turns} turns, ${options.rounds} ` +
    `interleaved rounds, medians over rounds (warm-up: ${options.warmupConversations} × ` +
    `${options.warmupTurns} of each first). Load average at start ${loadavgStart.map((x) => x.toFixed(2)).join(' ')}, ` +
    `at end ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}.`);
out();
out('| workload | turns/s | p50 ms | p90 ms | p99 ms | errors | gateway CPU µs/turn | gateway CPU use | CPU0 / CPU1 busy |');
out('| --- | --- | --- | --- | --- | --- | --- | --- | --- |');
for (const workload of workloads) {
  const m = medians[workload];
  out(`| ${label[workload]} | ${f(m.turns_per_s)} | ${f(m.p50_ms, 1)} | ${f(m.p90_ms, 1)} | ` +
      `${f(m.p99_ms, 1)} | ${m.errors} | ${f(m.gateway_cpu_us_per_turn)} | ` +
      `${pct(m.gateway_run_share)} | ${pct(m.cpu0_busy)} / ${pct(m.cpu1_busy)} |`);
}
out();
out('Latencies are per turn (a conversation\'s creation is not a turn; its latency is below). ' +
    '"gateway CPU use" is the CPU time its threads got per second of the batch (from ' +
    '/proc/PID/task/*/schedstat); "CPU busy" counts every process on that CPU.');
out();
out('| stateful vs stateless | value |');
out('| --- | --- |');
out(`| throughput ratio (stateful / stateless) | ${f(comparison.throughput_ratio, 2)}× |`);
out(`| added latency per turn, p50 | ${f(comparison.added_p50_ms, 1)} ms |`);
out(`| added latency per turn, p99 | ${f(comparison.added_p99_ms, 1)} ms |`);
out(`| added gateway CPU per turn | ${f(comparison.added_gateway_cpu_us_per_turn)} µs |`);
out(`| gateway writes to storage per stateful turn (WAL and checkpoints) | ` +
    `${f(stateful.gateway_disk_write_kib_per_turn)} KiB |`);
out(`| conversation create p50 / p99 | ${f(stateful.create_p50_ms, 1)} / ${f(stateful.create_p99_ms, 1)} ms |`);
if (options.gatewayPid) {
  out(`| gateway RSS idle / peak with ${options.conversations} conversations in flight | ` +
      `${f(idleRssKib / 1024, 1)} / ${f(stateful.gateway_rss_max_kib / 1024 || null, 1)} MiB |`);
}
out(`| conversations read back and checked | ${comparison.verified_conversations}, ` +
    `${comparison.verify_mismatches} mismatches |`);
out();
out('Every round:');
out();
out('| round | workload | turns/s | p50 ms | p99 ms | errors | gateway CPU µs/turn | gateway CPU use | CPU0 / CPU1 busy |');
out('| --- | --- | --- | --- | --- | --- | --- | --- | --- |');
for (const r of runs) {
  out(`| ${r.round} | ${r.workload} | ${f(r.turns_per_s)} | ${f(r.p50_ms, 1)} | ${f(r.p99_ms, 1)} | ` +
      `${r.errors} | ${f(r.gateway_cpu_us_per_turn)} | ${pct(r.gateway_run_share)} | ` +
      `${pct(r.cpu_busy.cpu0)} / ${pct(r.cpu_busy.cpu1)} |`);
}
const summary = lines.join('\n') + '\n';

const results = {options, idle_rss_kib: idleRssKib, loadavg_start: loadavgStart,
                 loadavg_end: os.loadavg(), warmups, runs, verifications, medians, comparison};
if (options.outDir) {
  fs.mkdirSync(options.outDir, {recursive: true});
  fs.writeFileSync(path.join(options.outDir, 'results.json'), JSON.stringify(results, null, 2));
  fs.writeFileSync(path.join(options.outDir, 'summary.md'), summary);
}
process.stdout.write(summary);
gateway.agent.destroy();
direct?.agent.destroy();
const failed = runs.some((r) => r.errors > 0) || mismatches > 0;
process.exit(failed ? 1 : 0);
