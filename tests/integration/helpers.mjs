// Shared machinery for the end-to-end tests: start real `redline sim` and `redline serve`
// processes on loopback ports, write their TOML configs, wait until they answer, talk to them
// over HTTP (including raw sockets for misbehaving clients), and make sure no child outlives the
// test run, whether a test passes or fails.
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const redlineBin = process.env.REDLINE_BIN
  ? path.resolve(process.env.REDLINE_BIN)
  : path.join(repoRoot, 'build', 'redline');

const children = new Set();
// A test that throws must not leave servers behind holding ports or CPU.
process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

let tempRoot;
function tempDir() {
  tempRoot ??= fs.mkdtempSync(path.join(os.tmpdir(), 'redline-it-'));
  return tempRoot;
}
process.on('exit', () => {
  if (tempRoot && !process.env.REDLINE_KEEP_TMP) fs.rmSync(tempRoot, { recursive: true, force: true });
});

let fileCounter = 0;
export function writeTempFile(name, text) {
  const file = path.join(tempDir(), `${fileCounter++}-${name}`);
  fs.writeFileSync(file, text);
  return file;
}

/** A port that was free a moment ago: the kernel picks it when we bind port 0. */
export async function freePort() {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

// ---------------------------------------------------------------------------------------------
// TOML. Top-level objects become [tables], top-level arrays of objects [[arrays of tables]];
// anything nested deeper is written inline, which TOML treats the same way.

// Keys whose values are fractions or prices: written as TOML floats even when whole (1 → 1.0),
// so a reader that asks for a float gets one.
const floatKeys = new Set([
  'error_5xx',
  'rate_limit_429',
  'timeout',
  'disconnect_mid_stream',
  'price_input_per_mtok',
  'price_output_per_mtok',
  'weight',
  'latency_exploration',
  'retry_budget_ratio',
  'max_cost_usd',
]);

function tomlValue(value, key = '') {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new Error(`TOML cannot hold ${value}`);
    return floatKeys.has(key) && Number.isInteger(value) ? `${value}.0` : String(value);
  }
  if (typeof value === 'boolean') return String(value);
  if (Array.isArray(value)) return `[${value.map(tomlValue).join(', ')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value).filter(([, v]) => v !== undefined);
    return `{ ${entries.map(([k, v]) => `${k} = ${tomlValue(v, k)}`).join(', ')} }`;
  }
  throw new Error(`TOML cannot hold ${value}`);
}

function tomlKeyValues(object) {
  return Object.entries(object)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k} = ${tomlValue(v, k)}`);
}

export function toToml(document) {
  const lines = [];
  for (const [key, value] of Object.entries(document)) {
    if (value === undefined) continue;
    if (Array.isArray(value) && value.length > 0 && value.every((v) => v && typeof v === 'object')) {
      for (const item of value) lines.push('', `[[${key}]]`, ...tomlKeyValues(item));
    } else if (value && typeof value === 'object' && !Array.isArray(value)) {
      lines.push('', `[${key}]`, ...tomlKeyValues(value));
    } else {
      lines.unshift(`${key} = ${tomlValue(value, key)}`);
    }
  }
  return `${lines.join('\n').trimStart()}\n`;
}

// ---------------------------------------------------------------------------------------------
// Processes

/**
 * Keeps the first and the last characters a child printed, for failure messages: the start of a
 * sanitizer report says what went wrong, the end where.
 */
class OutputTail {
  constructor(headLimit = 8000, tailLimit = 24000) {
    this.headLimit = headLimit;
    this.tailLimit = tailLimit;
    this.head = '';
    this.tail = '';
    this.dropped = 0;
  }
  push(chunk) {
    let text = chunk.toString();
    if (this.head.length < this.headLimit) {
      const room = this.headLimit - this.head.length;
      this.head += text.slice(0, room);
      text = text.slice(room);
    }
    this.tail += text;
    if (this.tail.length > this.tailLimit) {
      this.dropped += this.tail.length - this.tailLimit;
      this.tail = this.tail.slice(-this.tailLimit);
    }
  }
  get text() {
    const gap = this.dropped > 0 ? `\n[... ${this.dropped} characters left out ...]\n` : '';
    return this.head + gap + this.tail;
  }
}

export class RedlineProcess {
  constructor(label, args) {
    this.label = label;
    this.args = args;
    this.output = new OutputTail();
    this.child = spawn(redlineBin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(this.child);
    this.child.stdout.on('data', (chunk) => this.output.push(chunk));
    this.child.stderr.on('data', (chunk) => this.output.push(chunk));
    this.spawnError = null;
    this.child.on('error', (error) => {
      this.spawnError = error;
    });
    this.exited = new Promise((resolve) => {
      this.child.on('close', (code, signal) => {
        children.delete(this.child);
        this.exitCode = code;
        this.exitSignal = signal;
        resolve({ code, signal });
      });
    });
  }

  get pid() {
    return this.child.pid;
  }

  get running() {
    return this.exitCode === undefined && this.exitSignal === undefined && !this.spawnError;
  }

  describe() {
    const status = this.running
      ? 'still running'
      : this.spawnError
        ? `failed to start: ${this.spawnError.message}`
        : `exited with code ${this.exitCode} signal ${this.exitSignal}`;
    return `${this.label} (${redlineBin} ${this.args.join(' ')}) ${status}; output:\n${this.output.text}`;
  }

  signal(name) {
    if (this.running) this.child.kill(name);
  }

  /** Waits for the exit; SIGKILLs and fails when it takes longer than `ms`. */
  async waitExit(ms = 10000) {
    let timer;
    const timeout = new Promise((resolve) => {
      timer = setTimeout(() => resolve(null), ms);
    });
    const result = await Promise.race([this.exited, timeout]);
    clearTimeout(timer);
    if (result === null) {
      this.child.kill('SIGKILL');
      await this.exited;
      throw new Error(`${this.label} did not exit within ${ms} ms\n${this.describe()}`);
    }
    return result;
  }

  async stop() {
    if (!this.running) return;
    this.child.kill('SIGTERM');
    try {
      await this.waitExit(5000);
    } catch {
      // waitExit already escalated to SIGKILL; a slow shutdown is not what this call checks.
    }
  }

  async kill() {
    if (!this.running) return;
    this.child.kill('SIGKILL');
    await this.exited;
  }

  /** Polls `url` until it answers 2xx; fails with the child's output if it exits or times out. */
  async waitHttpOk(url, ms = 15000) {
    const deadline = Date.now() + ms;
    let lastError = 'no attempt';
    while (Date.now() < deadline) {
      if (!this.running) throw new Error(`${this.label} is not running\n${this.describe()}`);
      try {
        const response = await fetch(url, { signal: AbortSignal.timeout(1000) });
        await response.arrayBuffer();
        if (response.ok) return;
        lastError = `status ${response.status}`;
      } catch (error) {
        lastError = error.cause?.code ?? error.message;
      }
      await sleep(50);
    }
    throw new Error(`${url} not ready within ${ms} ms (${lastError})\n${this.describe()}`);
  }
}

/**
 * Ties a child's lifetime to a test: `scope` is the test context (killed in `t.after`), or null
 * for processes a suite shares, which its `after(killAll)` hook ends.
 */
function registerCleanup(scope, proc) {
  if (scope && typeof scope.after === 'function') scope.after(() => proc.kill());
}

/** Kills every process this test file started; for suite-level `after` hooks. */
export async function killAll() {
  const pending = [...children].map((child) => {
    child.kill('SIGKILL');
    return once(child, 'close').catch(() => {});
  });
  await Promise.all(pending);
}

/**
 * Simulator settings, with the fast, failure-free defaults most tests want; `model` fields and
 * `failures` override the defaults of the single "*" model.
 */
export function simConfig({ name, port, seed = 42, model = {}, failures = {}, models }) {
  const defaults = {
    name: '*',
    ttft_ms: { mean: 5, stddev: 0 },
    tokens_per_second: 0,
    max_concurrency: 0,
    queue_size: 0,
    output_tokens: 16,
  };
  const failureDefaults = {
    error_5xx: 0.0,
    rate_limit_429: 0.0,
    retry_after_s: 1,
    timeout: 0.0,
    disconnect_mid_stream: 0.0,
  };
  const list = models ?? [{ ...model }];
  return toToml({
    sim: { name, listen: `127.0.0.1:${port}`, seed },
    models: list.map((m) => ({
      ...defaults,
      ...m,
      failures: { ...failureDefaults, ...failures, ...(m.failures ?? {}) },
    })),
  });
}

export class Sim {
  constructor(name, port, proc, configPath) {
    this.name = name;
    this.port = port;
    this.proc = proc;
    this.configPath = configPath;
    this.url = `http://127.0.0.1:${port}`;
    this.baseUrl = `${this.url}/v1`;
  }
  async stats() {
    return getJson(`${this.url}/sim/stats`);
  }
  async requests() {
    return getJson(`${this.url}/sim/requests`);
  }
  async reset() {
    const response = await fetch(`${this.url}/sim/reset`, { method: 'POST' });
    await response.arrayBuffer();
    if (!response.ok) throw new Error(`sim reset: ${response.status}`);
  }
  kill() {
    return this.proc.kill();
  }
}

/** Starts `redline sim` with the options of simConfig() and waits until /healthz answers. */
export async function startSim(scope, options) {
  const port = options.port ?? (await freePort());
  const configPath = writeTempFile(`sim-${options.name}.toml`, simConfig({ ...options, port }));
  const proc = new RedlineProcess(`sim ${options.name}`, ['sim', '--config', configPath]);
  registerCleanup(scope, proc);
  await proc.waitHttpOk(`http://127.0.0.1:${port}/healthz`);
  return new Sim(options.name, port, proc, configPath);
}

/**
 * Gateway config. `backends` entries need `name` and either `sim` (a Sim) or `port`; every other
 * field is passed through (tier, weight, price_*, timeouts...). `models` (served by a backend)
 * default to ["*" matching] the names the aliases use.
 */
/**
 * A gateway config. Keys are optional unless `auth` says otherwise (the data-plane tests are not
 * about identity); each gateway gets its own store file unless `store` names one.
 */
export function gatewayConfig({
  port,
  server = {},
  routing = {},
  backends,
  aliases,
  auth = { required: false },
  store,
  labels,
  detectors,
  tenants,
  rules,
  audit,
  limits,
  budgets,
  sessions,
  memory,
  mcp_servers,
  agents,
}) {
  const backendTables = backends.map(({ sim, port: backendPort, ...rest }) => ({
    base_url: `http://127.0.0.1:${sim ? sim.port : backendPort}/v1`,
    health_interval_ms: 200,
    ...rest,
    models: rest.models ?? [{ name: 'test-model' }],
  }));
  const aliasTables = aliases.map((alias) => ({
    ...alias,
    targets: alias.targets.map((target) =>
      typeof target === 'string' ? { backend: target, model: 'test-model' } : target,
    ),
  }));
  return toToml({
    server: { listen: `127.0.0.1:${port}`, access_log: 'off', ...server },
    routing: { max_attempts: 3, ...routing },
    auth,
    store: store ?? { sqlite_path: path.join(tempDir(), `${fileCounter++}-redline.db`) },
    labels,
    detectors,
    tenants,
    rules,
    audit,
    limits,
    budgets,
    sessions,
    memory,
    agents,
    mcp_servers,
    backends: backendTables,
    models: aliasTables,
  });
}

export class Gateway {
  constructor(port, proc, configPath) {
    this.port = port;
    this.proc = proc;
    this.configPath = configPath;
    this.url = `http://127.0.0.1:${port}`;
    this.baseUrl = `${this.url}/v1`;
  }
  /** Rewrites the config file and sends SIGHUP. */
  async reload(options) {
    fs.writeFileSync(
      this.configPath,
      typeof options === 'string' ? options : gatewayConfig({ ...options, port: this.port }),
    );
    this.proc.signal('SIGHUP');
  }
  chat(body, init = {}) {
    return postJson(`${this.baseUrl}/chat/completions`, body, init);
  }
  async modelIds() {
    const { status, json } = await getJsonResponse(`${this.baseUrl}/models`);
    if (status !== 200) throw new Error(`/v1/models answered ${status}`);
    return json.data.map((m) => m.id);
  }
}

/** Starts `redline serve` with gatewayConfig(options) and waits until /healthz answers. */
export async function startGateway(scope, options) {
  const port = await freePort();
  const text = typeof options === 'string' ? options : gatewayConfig({ ...options, port });
  const configPath = writeTempFile('gateway.toml', text.replaceAll('{{port}}', String(port)));
  const proc = new RedlineProcess('gateway', ['serve', '--config', configPath]);
  registerCleanup(scope, proc);
  const gateway = new Gateway(port, proc, configPath);
  await proc.waitHttpOk(`${gateway.url}/healthz`);
  return gateway;
}

// ---------------------------------------------------------------------------------------------
// MCP test servers (tests/mcp_servers), built on the official SDKs.

export const mcpServersDir = path.join(repoRoot, 'tests', 'mcp_servers');

/**
 * Starts an MCP test server over Streamable HTTP on a free port; `listening` resolves with its
 * URL. Killed with every other child when the test file exits.
 */
export function startMcpHttpServer(script, notes, extra = []) {
  const child = spawn(
    process.execPath,
    [path.join(mcpServersDir, script), '--transport', 'http', '--port', '0', '--notes', notes, ...extra],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  children.add(child);
  child.on('close', () => children.delete(child));
  const listening = new Promise((resolve, reject) => {
    let buffered = '';
    child.stdout.on('data', (chunk) => {
      buffered += chunk;
      const match = /listening on port (\d+)/.exec(buffered);
      if (match) resolve(`http://127.0.0.1:${match[1]}/mcp`);
    });
    child.on('exit', (code) => reject(new Error(`${script} exited with ${code} before listening`)));
  });
  return { child, listening };
}

/** Runs `redline <args>` to completion. */
export function runRedline(args, timeoutMs = 15000) {
  const result = spawnSync(redlineBin, args, { encoding: 'utf8', timeout: timeoutMs });
  if (result.error) throw result.error;
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

// ---------------------------------------------------------------------------------------------
// HTTP

export async function getJsonResponse(url, init = {}) {
  const response = await fetch(url, { ...init, signal: AbortSignal.timeout(init.timeoutMs ?? 15000) });
  const text = await response.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: response.status, headers: response.headers, text, json };
}

export async function getJson(url) {
  const { status, json, text } = await getJsonResponse(url);
  if (status !== 200 || json === undefined) throw new Error(`GET ${url}: ${status} ${text}`);
  return json;
}

/** A request to the gateway under `key` (a bearer token), with `body` as JSON when given. */
export function callGateway(gateway, method, urlPath, { key, body } = {}) {
  const headers = {};
  if (key) headers.authorization = `Bearer ${key}`;
  const init = { method, headers };
  if (body !== undefined) {
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
    headers['content-type'] = 'application/json';
  }
  return getJsonResponse(`${gateway.url}${urlPath}`, init);
}

/** Mints an API key through the admin API; resolves with its secret. */
export async function mintKey(gateway, adminToken, fields) {
  const { status, json, text } = await callGateway(gateway, 'POST', '/admin/keys', { key: adminToken, body: fields });
  if (status !== 201) throw new Error(`POST /admin/keys answered ${status}: ${text}`);
  return json.key;
}

export function postJson(url, body, init = {}) {
  return getJsonResponse(url, {
    method: 'POST',
    ...init,
    headers: { 'content-type': 'application/json', ...(init.headers ?? {}) },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

export function chatBody(content, extra = {}) {
  return { model: 'chat', messages: [{ role: 'user', content }], ...extra };
}

/** Sends `count` requests, `concurrency` at a time; returns every result in order. */
export async function sendMany(count, concurrency, send) {
  const results = new Array(count);
  let next = 0;
  async function worker() {
    while (next < count) {
      const index = next++;
      results[index] = await send(index);
    }
  }
  await Promise.all(Array.from({ length: Math.min(count, concurrency) }, worker));
  return results;
}

export function countBy(values) {
  const counts = {};
  for (const value of values) counts[value] = (counts[value] ?? 0) + 1;
  return counts;
}

/**
 * An SSE stream over node:http, so the test controls the socket (it can stall or destroy it).
 * `next()` resolves with the next `data:` payload string, or null at the end of the stream.
 */
export class SseStream {
  static open(url, body, headers = {}) {
    return new Promise((resolve, reject) => {
      const payload = JSON.stringify(body);
      const request = http.request(url, {
        method: 'POST',
        agent: false,
        headers: {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(payload),
          ...headers,
        },
      });
      request.on('error', reject);
      request.on('response', (response) => resolve(new SseStream(request, response)));
      request.end(payload);
    });
  }

  constructor(request, response) {
    this.request = request;
    this.response = response;
    this.status = response.statusCode;
    this.headers = response.headers;
    this.buffer = '';
    this.raw = '';
    this.events = [];
    this.ended = false;
    this.error = null;
    this.waiters = [];
    response.setEncoding('utf8');
    response.on('data', (chunk) => {
      this.raw += chunk;
      this.buffer += chunk.replaceAll('\r\n', '\n');
      let boundary;
      while ((boundary = this.buffer.indexOf('\n\n')) >= 0) {
        const block = this.buffer.slice(0, boundary);
        this.buffer = this.buffer.slice(boundary + 2);
        const data = block
          .split('\n')
          .filter((line) => line.startsWith('data:'))
          .map((line) => line.slice(5).replace(/^ /, ''))
          .join('\n');
        if (block.split('\n').some((line) => line.startsWith('data:'))) this.events.push(data);
      }
      this.wake();
    });
    const finish = (error) => {
      this.ended = true;
      this.error ??= error ?? null;
      this.wake();
    };
    response.on('end', () => finish());
    response.on('aborted', () => finish(new Error('response aborted')));
    response.on('error', (error) => finish(error));
    response.on('close', () => finish());
  }

  wake() {
    for (const waiter of this.waiters.splice(0)) waiter();
  }

  async next(ms = 15000) {
    const deadline = Date.now() + ms;
    while (this.events.length === 0 && !this.ended) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no SSE event within ${ms} ms; got so far:\n${this.raw}`);
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return this.events.length > 0 ? this.events.shift() : null;
  }

  /** Every remaining data payload until the server ends the stream. */
  async rest(ms = 30000) {
    const deadline = Date.now() + ms;
    const payloads = [];
    for (;;) {
      const payload = await this.next(Math.max(1, deadline - Date.now()));
      if (payload === null) return payloads;
      payloads.push(payload);
    }
  }

  destroy() {
    this.request.destroy();
    this.response.destroy();
  }
}

/**
 * Writes raw bytes on a fresh connection and collects whatever comes back until the server
 * closes or `ms` pass. `keepOpen` leaves our side open after writing (a stalled client).
 */
export function rawExchange(port, data, { ms = 5000, keepOpen = true } = {}) {
  return new Promise((resolve) => {
    const started = Date.now();
    const socket = net.connect(port, '127.0.0.1');
    let received = '';
    let settled = false;
    const settle = (how) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ received, closedBy: how, elapsedMs: Date.now() - started });
    };
    const timer = setTimeout(() => settle('timeout'), ms);
    socket.on('connect', () => {
      socket.write(data, () => {
        if (!keepOpen) socket.end();
      });
    });
    socket.on('data', (chunk) => {
      received += chunk.toString('latin1');
    });
    socket.on('end', () => settle('server'));
    socket.on('close', () => settle('server'));
    socket.on('error', () => settle('error'));
  });
}

/**
 * Sends a request whose body may be large, and reads the answer even when the server answers
 * before it has read the whole body and then closes (as it should for 413).
 */
export function sendLargeRequest(port, { method = 'POST', path: urlPath, headers = {}, body }) {
  return new Promise((resolve, reject) => {
    const request = http.request({
      host: '127.0.0.1',
      port,
      method,
      path: urlPath,
      agent: false,
      headers: body ? { 'content-length': body.length, ...headers } : headers,
    });
    let writeError = null;
    request.on('error', (error) => {
      // The server may close while we still upload; what counts is whether a response came.
      writeError = error;
      setTimeout(
        () =>
          reject(
            new Error(
              `no response before the connection failed (${error.code ?? error.message}): a ` +
                'server that rejects a request early must still let the client read the answer ' +
                '(half-close and drain the rest of the body before closing)',
            ),
          ),
        100,
      );
    });
    request.on('response', (response) => {
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk) => {
        text += chunk;
      });
      const done = () => {
        let json;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolve({ status: response.statusCode, headers: response.headers, text, json, writeError });
      };
      response.on('end', done);
      response.on('error', done);
      response.on('aborted', done);
    });
    if (body) request.write(body);
    request.end();
  });
}

/** The shape every OpenAI-style error body has. */
export function assertOpenAiError(assert, json, context = '') {
  assert.ok(json && typeof json === 'object', `error body is JSON ${context}`);
  assert.ok(json.error && typeof json.error === 'object', `body has "error" ${context}`);
  assert.equal(typeof json.error.message, 'string', `error.message is a string ${context}`);
  assert.ok(json.error.message.length > 0, `error.message is not empty ${context}`);
  assert.equal(typeof json.error.type, 'string', `error.type is a string ${context}`);
  assert.ok('param' in json.error, `error has "param" ${context}`);
  assert.ok('code' in json.error, `error has "code" ${context}`);
}

/** Polls `probe` until it returns truthy; returns its last value either way. */
export async function waitFor(probe, ms = 3000, every = 50) {
  const deadline = Date.now() + ms;
  let value;
  for (;;) {
    value = await probe();
    if (value || Date.now() >= deadline) return value;
    await sleep(every);
  }
}

/** Chat requests a simulator served according to /sim/stats, not counting health probes. */
export function chatRequests(stats) {
  const entry = Object.entries(stats.by_path ?? {}).find(([p]) => p.endsWith('/chat/completions'));
  if (entry) return typeof entry[1] === 'number' ? entry[1] : entry[1].requests;
  return stats.requests;
}
