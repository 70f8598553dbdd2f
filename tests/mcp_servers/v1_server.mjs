#!/usr/bin/env node
// A test MCP server built with the official @modelcontextprotocol/sdk 1.x: protocol revision
// 2025-11-25 (initialize handshake; over HTTP, sessions named by Mcp-Session-Id). It offers the
// tools described in tools.mjs (search, read_document, append_note, get_counts, fail, crash,
// slow).
//
//   node tests/mcp_servers/v1_server.mjs [--transport stdio|http] [--port N] [--host H]
//        [--notes FILE] [--dedupe] [--json-response]
//
//   stdio   McpServer + StdioServerTransport: newline-delimited JSON-RPC on stdin/stdout.
//   http    McpServer + StreamableHTTPServerTransport on POST/GET/DELETE /mcp, one transport and
//           server per session. Answers are SSE streams unless --json-response. A request naming
//           an unknown session gets 404 (the client must initialize again); a request without a
//           session that is not `initialize` gets 400. Prints "listening on port N" once ready.
//
// See tools.mjs for --notes and --dedupe. Exits when stdin closes (stdio) or on SIGTERM.
import { randomUUID } from 'node:crypto';
import http from 'node:http';

import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { isInitializeRequest } from '@modelcontextprotocol/sdk/types.js';

import {
  IDEMPOTENCY_KEY_META,
  announcePort,
  parseServerOptions,
  registerTools,
  toolDefinitions,
} from './tools.mjs';

const options = parseServerOptions();
const tools = toolDefinitions(options);

function newServer() {
  const server = new McpServer({ name: 'redline-test-v1', version: '1.0.0' });
  registerTools(server, tools, (extra) => ({
    idempotencyKey: extra._meta?.[IDEMPOTENCY_KEY_META],
    signal: extra.signal,
  }));
  return server;
}

function jsonRpcError(res, status, message) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ jsonrpc: '2.0', error: { code: -32000, message }, id: null }));
}

async function readJson(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  const text = Buffer.concat(chunks).toString('utf8');
  return text === '' ? undefined : JSON.parse(text);
}

async function serveHttp() {
  const sessions = new Map(); // Mcp-Session-Id → transport
  const httpServer = http.createServer(async (req, res) => {
    try {
      if (new URL(req.url, 'http://localhost').pathname !== '/mcp') {
        res.writeHead(404).end();
        return;
      }
      const body = req.method === 'POST' ? await readJson(req) : undefined;
      const sessionId = req.headers['mcp-session-id'];
      let transport = sessionId ? sessions.get(sessionId) : undefined;
      if (sessionId && !transport) {
        jsonRpcError(res, 404, 'Session not found');
        return;
      }
      if (!transport) {
        if (req.method !== 'POST' || !isInitializeRequest(body)) {
          jsonRpcError(res, 400, 'Bad Request: No valid session ID provided');
          return;
        }
        transport = new StreamableHTTPServerTransport({
          sessionIdGenerator: () => randomUUID(),
          enableJsonResponse: options.flags.has('json-response'),
          onsessioninitialized: (id) => sessions.set(id, transport),
        });
        transport.onclose = () => {
          if (transport.sessionId) sessions.delete(transport.sessionId);
        };
        await newServer().connect(transport);
      }
      await transport.handleRequest(req, res, body);
    } catch (error) {
      if (!res.headersSent) jsonRpcError(res, 400, `Bad Request: ${error.message}`);
    }
  });
  httpServer.listen(options.port, options.host, () => announcePort(httpServer));
  process.on('SIGTERM', () => process.exit(0));
}

if (options.transport === 'stdio') {
  await newServer().connect(new StdioServerTransport());
} else {
  await serveHttp();
}
