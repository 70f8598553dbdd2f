// The tools every test MCP server in this folder offers, independent of SDK and transport, so
// the same assertions hold against each server:
//
//   search      read-only; {query, limit?} → a deterministic list of hits derived from the
//               query (text content plus structuredContent {query, results}).
//   append_note {text} → appends one line to the notes file and counts the execution under the
//               call's idempotency key (params._meta["dev.redline/idempotency-key"]).
//   read_document {id} read-only; a deterministic document of about 2,000 characters.
//   get_counts  {} → {total, by_key, cancelled}: how many times append_note ran, in total and per
//               idempotency key, and how many slow calls were cancelled. Tests use it to assert
//               exactly-once execution.
//   fail        {message?} → a tool error (isError: true) carrying the message.
//   crash       {exit_code?} → the server process exits in the middle of the call.
//   slow        {ms} → answers after `ms` milliseconds; a cancelled call is counted instead.
//
// State: with a notes file (--notes FILE or MCP_NOTES_FILE) every execution and cancellation is
// a JSON line in that file and the counts are read back from it, so they survive a restarted
// process and are shared by stateless HTTP instances and by several server processes. Without
// one they are kept in memory.
//
// Options (parsed by parseServerOptions, shared by the servers):
//   --transport stdio|http   default stdio
//   --port N                 http: port to listen on (0 = any free one; the port is printed on
//                            stdout as "listening on port N")
//   --host H                 http: default 127.0.0.1
//   --notes FILE             see State above (else MCP_NOTES_FILE)
//   --dedupe                 append_note executes once per idempotency key; a repeated key gets
//                            the first execution's answer (what a deduplicating server does)
import fs from 'node:fs';
import { z } from 'zod';

export const IDEMPOTENCY_KEY_META = 'dev.redline/idempotency-key';

export function parseServerOptions(argv = process.argv.slice(2)) {
  const options = {
    transport: 'stdio',
    port: 0,
    host: '127.0.0.1',
    notes: process.env.MCP_NOTES_FILE ?? '',
    dedupe: false,
    flags: new Set(),
  };
  for (let i = 0; i < argv.length; ++i) {
    const arg = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) throw new Error(`${arg} needs a value`);
      return argv[++i];
    };
    if (arg === '--transport') options.transport = value();
    else if (arg === '--port') options.port = Number(value());
    else if (arg === '--host') options.host = value();
    else if (arg === '--notes') options.notes = value();
    else if (arg === '--dedupe') options.dedupe = true;
    else if (arg.startsWith('--')) options.flags.add(arg.slice(2));
    else throw new Error(`unexpected argument ${arg}`);
  }
  if (!['stdio', 'http'].includes(options.transport)) {
    throw new Error(`--transport must be stdio or http, not ${options.transport}`);
  }
  return options;
}

// Executions and cancellations, kept in the notes file when there is one.
class Ledger {
  constructor(file) {
    this.file = file;
    this.memory = [];
  }
  record(entry) {
    if (this.file) fs.appendFileSync(this.file, `${JSON.stringify(entry)}\n`);
    else this.memory.push(entry);
  }
  entries() {
    if (!this.file) return this.memory;
    if (!fs.existsSync(this.file)) return [];
    return fs
      .readFileSync(this.file, 'utf8')
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((line) => JSON.parse(line));
  }
}

const text = (value) => ({ type: 'text', text: value });

// A small deterministic hash, so search results depend only on the query.
function hash(value) {
  let h = 2166136261;
  for (const c of value) h = Math.imul(h ^ c.codePointAt(0), 16777619) >>> 0;
  return h;
}

/**
 * The tool definitions for `registerTool(name, config, handler)`; both SDK generations take the
 * same shape. `handler(args, call)` gets `call = {idempotencyKey, signal}` from the SDK adapter.
 * The state (counts, --dedupe answers) lives in the ledger.
 */
export function toolDefinitions(options) {
  const ledger = new Ledger(options.notes);

  const counts = () => {
    const byKey = {};
    let total = 0;
    let cancelled = 0;
    for (const entry of ledger.entries()) {
      if (entry.event === 'cancelled') {
        cancelled += 1;
        continue;
      }
      total += 1;
      if (entry.key) byKey[entry.key] = (byKey[entry.key] ?? 0) + 1;
    }
    return { total, by_key: byKey, cancelled };
  };

  return {
    search: {
      config: {
        title: 'Search',
        description: 'Searches the test corpus; the same query always gives the same hits.',
        inputSchema: { query: z.string(), limit: z.number().int().min(1).max(10).optional() },
        outputSchema: {
          query: z.string(),
          results: z.array(z.object({ title: z.string(), url: z.string() })),
        },
        annotations: { readOnlyHint: true, idempotentHint: true, openWorldHint: false },
      },
      handler: async ({ query, limit = 3 }) => {
        const seed = hash(query);
        const results = Array.from({ length: limit }, (_, i) => ({
          title: `${query} result ${i + 1}`,
          url: `https://example.test/${(seed + i).toString(16)}`,
        }));
        return {
          content: [text(results.map((r) => `${r.title} <${r.url}>`).join('\n'))],
          structuredContent: { query, results },
        };
      },
    },

    append_note: {
      config: {
        title: 'Append note',
        description: 'Appends a line to the notes file (a side effect: not idempotent).',
        inputSchema: { text: z.string() },
        annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false },
      },
      handler: async ({ text: note }, { idempotencyKey }) => {
        // The ledger, not process memory, remembers answers: a restarted server still
        // deduplicates a call it executed before it went down.
        const earlier =
          options.dedupe && idempotencyKey
            ? ledger.entries().find((entry) => entry.key === idempotencyKey && entry.answer)
            : undefined;
        if (earlier) return { content: [text(earlier.answer)] };
        const answer = `appended note ${counts().total + 1}`;
        ledger.record({ key: idempotencyKey ?? '', text: note, answer });
        return { content: [text(answer)] };
      },
    },

    read_document: {
      config: {
        title: 'Read document',
        description: 'Reads a long document of the test corpus; the same id always gives the same text.',
        inputSchema: { id: z.string() },
        annotations: { readOnlyHint: true, idempotentHint: true, openWorldHint: false },
      },
      handler: async ({ id }) => {
        const seed = hash(id);
        // About 2,000 characters: what makes an agent's context grow.
        const lines = Array.from(
          { length: 25 },
          (_, i) => `${id} section ${i + 1}: finding ${(seed + i * 7919).toString(16)} holds for the record.`,
        );
        return { content: [text(lines.join('\n'))] };
      },
    },

    get_counts: {
      config: {
        title: 'Get counts',
        description: 'How often append_note ran (total and per idempotency key) and how many slow calls were cancelled.',
        inputSchema: {},
        annotations: { readOnlyHint: true },
      },
      handler: async () => {
        const value = counts();
        return { content: [text(JSON.stringify(value))], structuredContent: value };
      },
    },

    fail: {
      config: {
        title: 'Fail',
        description: 'Always answers with a tool error.',
        inputSchema: { message: z.string().optional() },
      },
      handler: async ({ message = 'requested failure' }) => ({
        content: [text(message)],
        isError: true,
      }),
    },

    crash: {
      config: {
        title: 'Crash',
        description: 'Exits the server process in the middle of the call.',
        inputSchema: { exit_code: z.number().int().min(0).max(255).optional() },
      },
      handler: async ({ exit_code: code = 1 }) => {
        process.stderr.write(`crash tool called: exiting with status ${code}\n`);
        process.exit(code);
      },
    },

    slow: {
      config: {
        title: 'Slow',
        description: 'Answers after the given number of milliseconds.',
        inputSchema: { ms: z.number().int().min(0) },
        annotations: { readOnlyHint: true },
      },
      handler: ({ ms }, { signal }) =>
        new Promise((resolve) => {
          const timer = setTimeout(() => resolve({ content: [text(`slept ${ms} ms`)] }), ms);
          signal?.addEventListener('abort', () => {
            clearTimeout(timer);
            ledger.record({ event: 'cancelled', tool: 'slow' });
            resolve({ content: [text('cancelled')], isError: true });
          });
        }),
    },
  };
}

/**
 * Registers the tools on an McpServer of either SDK generation. Create `tools` once per process
 * (toolDefinitions) and register them on every server instance, so per-session and per-request
 * instances share one state. `callOf(extra)` turns the SDK's per-call context into
 * {idempotencyKey, signal}.
 */
export function registerTools(server, tools, callOf) {
  for (const [name, tool] of Object.entries(tools)) {
    server.registerTool(name, tool.config, (args, extra) => tool.handler(args, callOf(extra)));
  }
}

/** Prints the port an HTTP server listens on, in the form tests wait for. */
export function announcePort(httpServer) {
  process.stdout.write(`listening on port ${httpServer.address().port}\n`);
}
