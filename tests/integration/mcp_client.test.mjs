// The MCP client end to end: `redline mcp tools|call` against real MCP servers built with the
// official SDKs (tests/mcp_servers): @modelcontextprotocol/sdk 1.x speaking 2025-11-25 and
// @modelcontextprotocol/server 2.x speaking 2026-07-28, each over stdio and Streamable HTTP.
// The client negotiates the revision itself (protocol = "auto").
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';

import { mcpServersDir, redlineBin, startMcpHttpServer, toToml, writeTempFile } from './helpers.mjs';

const TOOL_NAMES = ['append_note', 'crash', 'fail', 'get_counts', 'read_document', 'search', 'slow'];
const TIMEOUT_MS = 1500;

/** `redline args...` without blocking the event loop, so the variants below run side by side. */
function redline(args) {
  return new Promise((resolve, reject) => {
    execFile(redlineBin, args, { timeout: 20000 }, (error, stdout, stderr) => {
      if (error && typeof error.code !== 'number') reject(error);
      else resolve({ code: error ? error.code : 0, stdout, stderr });
    });
  });
}

function writeConfig(server) {
  return writeTempFile(
    'mcp.toml',
    toToml({
      backends: [{ name: 'unused', base_url: 'http://127.0.0.1:9/v1', models: [{ name: 'm' }] }],
      models: [{ name: 'chat', targets: [{ backend: 'unused', model: 'm' }] }],
      mcp_servers: [{ name: 'tools', timeout_ms: TIMEOUT_MS, ...server }],
    }),
  );
}

/** One `redline mcp call` making the given calls in order; resolves with each line's JSON. */
async function callTools(config, calls) {
  const args = ['mcp', 'call', '--config', config, '--server', 'tools'];
  for (const { tool, args: toolArgs = {}, key = '' } of calls) {
    args.push('--tool', tool, '--arguments', JSON.stringify(toolArgs), '--idempotency-key', key);
  }
  const { code, stdout, stderr } = await redline(args);
  const lines = stdout.trim().split('\n').filter(Boolean).map((line) => JSON.parse(line));
  assert.equal(lines.length, calls.length, `stdout: ${stdout}\nstderr: ${stderr}`);
  return { code, lines, stderr };
}

const textOf = (result) => result.content.map((block) => block.text).join('\n');

const variants = [
  { name: 'sdk 1.x over stdio', script: 'v1_server.mjs', transport: 'stdio', revision: '2025-11-25' },
  { name: 'sdk 1.x over HTTP', script: 'v1_server.mjs', transport: 'http', revision: '2025-11-25' },
  { name: 'server 2.x over stdio', script: 'v2_server.mjs', transport: 'stdio', revision: '2026-07-28' },
  { name: 'server 2.x over HTTP', script: 'v2_server.mjs', transport: 'http', revision: '2026-07-28' },
];

describe('redline mcp', { concurrency: true }, () => {
  for (const variant of variants) {
    // One variant's tests share a server and its counts: they run in order.
    describe(variant.name, { concurrency: false }, () => {
      const script = path.join(mcpServersDir, variant.script);
      const notes = writeTempFile('notes.jsonl', '');
      let http;
      let config;

      before(async () => {
        if (variant.transport === 'stdio') {
          config = writeConfig({ transport: 'stdio', command: process.execPath, args: [script, '--notes', notes] });
        } else {
          http = startMcpHttpServer(variant.script, notes);
          config = writeConfig({ transport: 'http', url: await http.listening });
        }
      });
      after(() => http?.child.kill('SIGTERM'));

      it(`lists the tools and negotiates ${variant.revision}`, async () => {
        const { code, stdout, stderr } = await redline(['mcp', 'tools', '--config', config, '--server', 'tools', '--json']);
        assert.equal(code, 0, stderr);
        const listed = JSON.parse(stdout);
        assert.equal(listed.server, 'tools');
        assert.equal(listed.protocol, variant.revision);
        assert.deepEqual(listed.tools.map((tool) => tool.name).sort(), TOOL_NAMES);
        const search = listed.tools.find((tool) => tool.name === 'search');
        assert.equal(search.annotations.readOnlyHint, true);
        assert.deepEqual(search.inputSchema.required, ['query']);

        const human = await redline(['mcp', 'tools', '--config', config, '--server', 'tools']);
        assert.equal(human.code, 0, human.stderr);
        assert.match(human.stdout, new RegExp(`speaks protocol ${variant.revision}; 7 tool`));
      });

      it('calls tools: results, tool errors, and the idempotency key reaches the server', async () => {
        const key = `key-${variant.transport}-${variant.script}`;
        const { code, lines } = await callTools(config, [
          { tool: 'search', args: { query: 'red lines', limit: 2 } },
          { tool: 'fail', args: { message: 'no luck' } },
          { tool: 'append_note', args: { text: 'once' }, key },
          { tool: 'get_counts' },
        ]);
        assert.equal(code, 1, 'a tool error makes the exit code 1');
        const [search, fail, note, counts] = lines;
        assert.equal(search.isError, false);
        assert.equal(search.structuredContent.query, 'red lines');
        assert.equal(search.structuredContent.results.length, 2);
        assert.match(textOf(search), /red lines result 1/);
        assert.equal(fail.isError, true);
        assert.equal(textOf(fail), 'no luck');
        assert.equal(note.isError, false);
        assert.equal(counts.structuredContent.by_key[key], 1);
        assert.equal(counts.structuredContent.total, 1);
      });

      it('reports a timeout past timeout_ms and cancels the call', async () => {
        const started = Date.now();
        const { code, lines, stderr } = await callTools(config, [
          { tool: 'slow', args: { ms: 10000 } },
          { tool: 'search', args: { query: 'after' } },
          { tool: 'get_counts' },
        ]);
        assert.equal(code, 1);
        assert.equal(lines[0].error.kind, 'timeout');
        assert.match(lines[0].error.message, new RegExp(`no answer within ${TIMEOUT_MS} ms`));
        assert.match(stderr, /timeout/);
        assert.equal(lines[1].structuredContent.query, 'after');
        assert.ok(Date.now() - started < 8000, 'the timed-out call was not waited for');
        if (variant.transport === 'stdio') {
          // notifications/cancelled is read before the next request, so the server has seen it.
          assert.equal(lines[2].structuredContent.cancelled, 1, JSON.stringify(lines[2]));
        }
      });

      if (variant.transport === 'stdio') {
        it('a crash fails the call; the next call restarts the server', async () => {
          const { code, lines, stderr } = await callTools(config, [
            { tool: 'crash', args: { exit_code: 3 } },
            { tool: 'search', args: { query: 'again' } },
          ]);
          assert.equal(code, 1);
          assert.equal(lines[0].error.kind, 'crashed');
          assert.match(lines[0].error.message, /exited with status 3/);
          assert.match(lines[0].error.message, /crash tool called/, 'the crash report quotes stderr');
          assert.match(stderr, /crashed/);
          assert.equal(lines[1].structuredContent.query, 'again');
        });
      }
    });
  }

  it('a configured revision the server does not speak is an error', async () => {
    const script = path.join(mcpServersDir, 'v2_server.mjs');
    const config = writeConfig({ transport: 'stdio', command: process.execPath, args: [script], protocol: '2025-11-25' });
    const { code, stderr } = await redline(['mcp', 'tools', '--config', config, '--server', 'tools']);
    assert.equal(code, 1);
    assert.match(stderr, /server: .*initialize: Unsupported protocol version/);
  });

  it('a 2.x server that also serves 2025 clients is still spoken to in 2026-07-28', async () => {
    const script = path.join(mcpServersDir, 'v2_server.mjs');
    const config = writeConfig({ transport: 'stdio', command: process.execPath, args: [script, '--legacy'] });
    const { code, stdout, stderr } = await redline(['mcp', 'tools', '--config', config, '--server', 'tools', '--json']);
    assert.equal(code, 0, stderr);
    assert.equal(JSON.parse(stdout).protocol, '2026-07-28');
  });

  it('usage and configuration errors exit 2', async () => {
    const config = writeConfig({ transport: 'stdio', command: process.execPath, args: ['-e', '0'] });
    const unknown = await redline(['mcp', 'tools', '--config', config, '--server', 'nope']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /no \[\[mcp_servers\]\] entry named "nope" \(configured: tools\)/);
    const noTool = await redline(['mcp', 'call', '--config', config, '--server', 'tools']);
    assert.equal(noTool.code, 2);
    const missing = await redline(['mcp', 'tools', '--config', '/nonexistent.toml', '--server', 'tools']);
    assert.equal(missing.code, 2);
  });
});
