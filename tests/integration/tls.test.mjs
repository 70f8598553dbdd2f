// TLS to upstreams: the certificate chain is verified against ca_file (or the system store) and
// the certificate must name the host in base_url. The upstream here is a small HTTPS server that
// speaks the OpenAI wire format; its CA and certificate are made with the openssl command.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';

import { chatBody, killAll, startGateway } from './helpers.mjs';

function makeCertificates() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'redline-tls-'));
  const run = (...args) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  run('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=Redline Test CA',
    '-keyout', 'ca.key', '-out', 'ca.pem');
  run('req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-keyout', 'server.key',
    '-out', 'server.csr');
  fs.writeFileSync(path.join(dir, 'san.ext'), 'subjectAltName=DNS:localhost\n');
  run('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial',
    '-days', '2', '-extfile', 'san.ext', '-out', 'server.pem');
  return {
    caFile: path.join(dir, 'ca.pem'),
    key: fs.readFileSync(path.join(dir, 'server.key')),
    cert: fs.readFileSync(path.join(dir, 'server.pem')),
  };
}

function startHttpsUpstream({ key, cert }) {
  let chatRequests = 0;
  const server = https.createServer({ key, cert }, (req, res) => {
    let body = '';
    req.on('data', (chunk) => (body += chunk));
    req.on('end', () => {
      res.setHeader('Content-Type', 'application/json');
      if (req.method === 'GET' && req.url === '/v1/models') {
        res.end(JSON.stringify({ object: 'list', data: [] }));
        return;
      }
      chatRequests += 1;
      const model = JSON.parse(body).model;
      res.end(JSON.stringify({
        id: 'chatcmpl-tls', object: 'chat.completion', created: 0, model,
        choices: [{ index: 0, message: { role: 'assistant', content: 'over tls' }, finish_reason: 'stop' }],
        usage: { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 },
      }));
    });
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () =>
      resolve({ server, port: server.address().port, chatRequests: () => chatRequests }));
  });
}

describe('TLS upstreams', () => {
  let certificates;
  let upstream;
  before(async () => {
    certificates = makeCertificates();
    upstream = await startHttpsUpstream(certificates);
  });
  after(async () => {
    upstream?.server.close();
    await killAll();
  });

  const gatewayFor = (t, backend) =>
    startGateway(t, {
      routing: { max_attempts: 1 },
      backends: [{ name: 'secure', port: upstream.port, health_path: '', ...backend }],
      aliases: [{ name: 'chat', targets: ['secure'] }],
    });

  it('reaches an https upstream whose certificate chains to ca_file', async (t) => {
    const gateway = await gatewayFor(t, {
      base_url: `https://localhost:${upstream.port}/v1`,
      ca_file: certificates.caFile,
    });
    const result = await gateway.chat(chatBody('hello'));
    assert.equal(result.status, 200, result.text);
    assert.equal(result.json.choices[0].message.content, 'over tls');
    assert.equal(result.headers.get('x-redline-backend'), 'secure');
  });

  it('refuses an upstream certificate the trust store does not vouch for', async (t) => {
    const before = upstream.chatRequests();
    const gateway = await gatewayFor(t, { base_url: `https://localhost:${upstream.port}/v1` });
    const result = await gateway.chat(chatBody('hello'));
    assert.equal(result.status, 502, result.text);
    assert.equal(result.json.error.code, 'upstream_error');
    assert.equal(upstream.chatRequests(), before, 'no request may reach an unverified upstream');
  });

  it('refuses a certificate issued for another host name', async (t) => {
    const before = upstream.chatRequests();
    const gateway = await gatewayFor(t, {
      base_url: `https://127.0.0.1:${upstream.port}/v1`,
      ca_file: certificates.caFile,
    });
    const result = await gateway.chat(chatBody('hello'));
    assert.equal(result.status, 502, result.text);
    assert.equal(upstream.chatRequests(), before);
  });
});
