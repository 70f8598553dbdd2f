#!/usr/bin/env node
// A test MCP server built with the official @modelcontextprotocol/server 2.x: protocol revision
// 2026-07-28 — no handshake and no sessions; every request carries the protocol version, client
// info and capabilities in params._meta, and `server/discover` tells what the server speaks. It
// offers the tools described in tools.mjs (search, read_document, append_note, get_counts, fail,
// crash, slow).
//
//   node tests/mcp_servers/v2_server.mjs [--transport stdio|http] [--port N] [--host H]
//        [--notes FILE] [--dedupe] [--legacy]
//
//   stdio   serveStdio: newline-delimited JSON-RPC on stdin/stdout.
//   http    createMcpHandler (stateless: a fresh server instance per request) on POST /mcp via
//           node:http. Prints "listening on port N" once ready.
//   --legacy  also serve 2025-era clients (initialize handshake) the way the SDK does by
//           default; without it the server is modern-only and rejects them, so a test cannot
//           pass by accident on the older revision.
//
// See tools.mjs for --notes and --dedupe. Exits when stdin closes (stdio) or on SIGTERM.
import http from 'node:http';

import { McpServer, createMcpHandler } from '@modelcontextprotocol/server';
import { serveStdio } from '@modelcontextprotocol/server/stdio';

import {
  IDEMPOTENCY_KEY_META,
  announcePort,
  parseServerOptions,
  registerTools,
  toolDefinitions,
} from './tools.mjs';

const options = parseServerOptions();
const tools = toolDefinitions(options);
const legacy = options.flags.has('legacy');

function newServer() {
  const server = new McpServer({ name: 'redline-test-v2', version: '2.0.0' });
  registerTools(server, tools, (ctx) => ({
    idempotencyKey: ctx.mcpReq._meta?.[IDEMPOTENCY_KEY_META],
    signal: ctx.mcpReq.signal,
  }));
  return server;
}

// node:http → fetch Request → the SDK's web-standard handler → node:http. A client that goes
// away aborts the request, which is how a 2026-07-28 client cancels over HTTP.
async function toFetchRequest(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  const controller = new AbortController();
  req.socket.on('close', () => controller.abort());
  const headers = new Headers();
  for (const [name, value] of Object.entries(req.headers)) {
    for (const item of [value].flat()) headers.append(name, item);
  }
  const hasBody = !['GET', 'HEAD'].includes(req.method);
  return new Request(new URL(req.url, `http://${req.headers.host ?? 'localhost'}`), {
    method: req.method,
    headers,
    body: hasBody ? Buffer.concat(chunks) : undefined,
    signal: controller.signal,
  });
}

async function serveHttp() {
  const handler = createMcpHandler(newServer, { legacy: legacy ? 'stateless' : 'reject' });
  const httpServer = http.createServer(async (req, res) => {
    try {
      if (new URL(req.url, 'http://localhost').pathname !== '/mcp') {
        res.writeHead(404).end();
        return;
      }
      const response = await handler.fetch(await toFetchRequest(req));
      res.writeHead(response.status, Object.fromEntries(response.headers));
      if (response.body) {
        for await (const chunk of response.body) res.write(chunk);
      }
      res.end();
    } catch (error) {
      if (!res.headersSent) res.writeHead(500);
      res.end();
    }
  });
  httpServer.listen(options.port, options.host, () => announcePort(httpServer));
  process.on('SIGTERM', () => process.exit(0));
}

if (options.transport === 'stdio') {
  serveStdio(newServer, { legacy: legacy ? 'serve' : 'reject' });
} else {
  await serveHttp();
}
