#!/usr/bin/env node
// An MCP server for bench/agents.sh, built with the official @modelcontextprotocol/sdk 1.x over
// stdio (newline-delimited JSON-RPC on stdin/stdout; the gateway starts it as a child process).
// Its tools answer deterministically from their arguments, so two runs of the bench see the
// same observations:
//
//   read_document {id}   a document of about --doc-chars characters (default 8000, ~2,000
//                        tokens at 4 characters a token). Its FIRST line is a fact that only
//                        this id produces: "Document <id>: reference code <12 hex digits>."
//                        (the code is from SHA-256 of the id). The rest is filler prose drawn
//                        from a fixed vocabulary, seeded by the id.
//   lookup {key}         one short line ("<key> = <8 hex digits>"): a cheap tool call.
//
//   node bench/mcp_docs_server.mjs [--doc-chars N]
//
// Exits when stdin closes.
import { createHash } from 'node:crypto';

import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { z } from 'zod';

let docChars = 8000;
for (let i = 2; i < process.argv.length; i++) {
  if (process.argv[i] === '--doc-chars' && i + 1 < process.argv.length) {
    docChars = Number(process.argv[++i]);
  } else {
    throw new Error(`unexpected argument ${process.argv[i]}`);
  }
}
if (!Number.isInteger(docChars) || docChars < 100) throw new Error('--doc-chars must be >= 100');

const WORDS = [
  'archive', 'ledger', 'harbour', 'signal', 'quarterly', 'revenue', 'shipment', 'contract',
  'supplier', 'inventory', 'forecast', 'clause', 'amendment', 'schedule', 'delivery', 'audit',
  'warehouse', 'region', 'margin', 'invoice', 'customer', 'renewal', 'pricing', 'volume',
  'north', 'south', 'east', 'west', 'central', 'pending', 'approved', 'reviewed', 'the', 'of',
  'and', 'to', 'in', 'for', 'with', 'on', 'was', 'were', 'is', 'by', 'under', 'after', 'before',
  'report', 'section', 'figure', 'table', 'note', 'summary', 'detail', 'estimate', 'record',
];

const sha256 = (text) => createHash('sha256').update(text).digest('hex');

// xorshift32 seeded from the id: the same id always gives the same filler.
function filler(id, chars) {
  let state = Number.parseInt(sha256(`filler:${id}`).slice(0, 8), 16) || 1;
  const next = () => {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state;
  };
  const lines = [];
  let size = 0;
  let paragraph = 1;
  while (size < chars) {
    const words = [];
    const count = 60 + (next() % 40);
    for (let i = 0; i < count; i++) words.push(WORDS[next() % WORDS.length]);
    const line = `${paragraph}. ${words.join(' ')}.`;
    lines.push(line);
    size += line.length + 1;
    paragraph++;
  }
  return lines.join('\n').slice(0, Math.max(0, chars));
}

export function documentText(id) {
  const first = `Document ${id}: reference code ${sha256(`doc:${id}`).slice(0, 12)}.`;
  return `${first}\n${filler(id, docChars - first.length - 1)}`;
}

const server = new McpServer({ name: 'redline-bench-docs', version: '1.0.0' });
server.registerTool(
  'read_document',
  {
    title: 'Read document',
    description: 'Returns the full text of a document by id. The first line states its reference code.',
    inputSchema: { id: z.string() },
    annotations: { readOnlyHint: true, idempotentHint: true, openWorldHint: false },
  },
  async ({ id }) => ({ content: [{ type: 'text', text: documentText(id) }] }),
);
server.registerTool(
  'lookup',
  {
    title: 'Lookup',
    description: 'Looks a key up; answers one short line.',
    inputSchema: { key: z.string() },
    annotations: { readOnlyHint: true, idempotentHint: true, openWorldHint: false },
  },
  async ({ key }) => ({
    content: [{ type: 'text', text: `${key} = ${sha256(`lookup:${key}`).slice(0, 8)}` }],
  }),
);
await server.connect(new StdioServerTransport());
