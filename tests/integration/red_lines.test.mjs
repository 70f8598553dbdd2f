// Red lines end to end: two simulated backends with different clearances and jurisdictions
// behind one alias. What each backend received is read from the backend itself (/sim/requests),
// never inferred from the gateway's headers alone.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import {
  SseStream,
  chatBody,
  getJsonResponse,
  killAll,
  postJson,
  runRedline,
  sendMany,
  startGateway,
  startSim,
  waitFor,
} from './helpers.mjs';

const ADMIN_TOKEN = 'admin-token-for-red-line-tests-0123456789';
process.env.REDLINE_ADMIN_TOKEN = ADMIN_TOKEN;

const SSN_TEXT = 'my social security number is 123-45-6789, please file it';
const EMAIL = 'alice.liddell@example.org';

// onprem (DE, cleared to SECRET with every caveat) and cloud (US, cleared to INTERNAL//PII).
function redLineConfig(sims, { rules = [], extra = {} } = {}) {
  return {
    auth: { required: true, admin_token_env: 'REDLINE_ADMIN_TOKEN', key_cache_ttl_ms: 200 },
    detectors: {
      custom: [{ name: 'launch_codes', keywords: ['launch codes'], raise: 'INTERNAL' }],
    },
    rules,
    backends: [
      {
        name: 'onprem',
        sim: sims.onprem,
        tier: 'onprem',
        jurisdiction: 'DE',
        clearance: 'SECRET//NOFORN/PII/PHI/PCI/EXPORT_CONTROLLED',
      },
      { name: 'cloud', sim: sims.cloud, tier: 'cloud', jurisdiction: 'US', clearance: 'INTERNAL//PII' },
    ],
    aliases: [{ name: 'chat', strategy: 'least_load', targets: ['onprem', 'cloud'] }],
    ...extra,
  };
}

async function admin(gateway, method, path, body) {
  const init = { method, headers: { authorization: `Bearer ${ADMIN_TOKEN}` } };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers['content-type'] = 'application/json';
  }
  return getJsonResponse(`${gateway.url}${path}`, init);
}

async function createKey(gateway, fields) {
  const { status, json, text } = await admin(gateway, 'POST', '/admin/keys', fields);
  assert.equal(status, 201, text);
  assert.match(json.key, /^rl_/);
  return json;
}

const bearer = (key) => ({ headers: { authorization: `Bearer ${key}` } });

// Every request body a sim received whose user text contains `needle`.
async function received(sim, needle) {
  const requests = await sim.requests();
  return requests.filter((r) => JSON.stringify(r.body).includes(needle));
}

describe('red lines', () => {
  let onprem;
  let cloud;
  before(async () => {
    onprem = await startSim(undefined, { name: 'onprem' });
    cloud = await startSim(undefined, { name: 'cloud' });
  });
  after(killAll);

  it('needs a valid key, and a key only for its models', async (t) => {
    const gateway = await startGateway(t, redLineConfig({ onprem, cloud }));
    let answer = await gateway.chat(chatBody('hello'));
    assert.equal(answer.status, 401);
    assert.equal(answer.json.error.code, 'missing_api_key');
    answer = await gateway.chat(chatBody('hello'), bearer('rl_0123456789ab_notarealsecretatallnotarealsecretatallxxxxxx'));
    assert.equal(answer.status, 401);
    assert.equal(answer.json.error.code, 'invalid_api_key');

    const key = await createKey(gateway, { tenant: 'acme', models: ['other'] });
    answer = await gateway.chat(chatBody('hello'), bearer(key.key));
    assert.equal(answer.status, 403);
    assert.equal(answer.json.error.code, 'model_not_allowed');

    const good = await createKey(gateway, { tenant: 'acme' });
    answer = await gateway.chat(chatBody('hello'), bearer(good.key));
    assert.equal(answer.status, 200, answer.text);
    assert.equal(answer.headers.get('x-redline-label'), 'PUBLIC');

    // The admin API wants the admin credential, not a tenant key.
    const listed = await getJsonResponse(`${gateway.url}/admin/keys`, bearer(good.key));
    assert.equal(listed.status, 401);
  });

  it('stops a revoked key within a second, including a revocation from the CLI', async (t) => {
    const gateway = await startGateway(t, redLineConfig({ onprem, cloud }));
    const viaApi = await createKey(gateway, { tenant: 'acme' });
    assert.equal((await gateway.chat(chatBody('one'), bearer(viaApi.key))).status, 200);
    const revoked = await admin(gateway, 'DELETE', `/admin/keys/${viaApi.id}`);
    assert.equal(revoked.status, 200, revoked.text);
    const started = Date.now();
    await waitFor(async () => (await gateway.chat(chatBody('two'), bearer(viaApi.key))).status === 401, 1000);
    assert.ok(Date.now() - started < 1000);

    // Another process (the CLI) revokes in the same store file.
    const viaCli = await createKey(gateway, { tenant: 'acme' });
    assert.equal((await gateway.chat(chatBody('three'), bearer(viaCli.key))).status, 200);
    const cli = runRedline(['keys', 'revoke', '--config', gateway.configPath, viaCli.id]);
    assert.equal(cli.code, 0, cli.stdout + cli.stderr);
    const cliRevokedAt = Date.now();
    await waitFor(async () => (await gateway.chat(chatBody('four'), bearer(viaCli.key))).status === 401, 1000);
    assert.ok(Date.now() - cliRevokedAt < 1000);
    const answer = await gateway.chat(chatBody('five'), bearer(viaCli.key));
    assert.equal(answer.json.error.code, 'revoked_api_key');
  });

  it('sends labelled requests only to cleared backends', async (t) => {
    const gateway = await startGateway(t, redLineConfig({ onprem, cloud }));
    const key = await createKey(gateway, { tenant: 'acme' });
    await onprem.reset();
    await cloud.reset();
    const secret = await sendMany(12, 4, (i) => gateway.chat(chatBody(`${SSN_TEXT} #${i}`), bearer(key.key)));
    for (const answer of secret) {
      assert.equal(answer.status, 200, answer.text);
      assert.equal(answer.headers.get('x-redline-backend'), 'onprem');
      assert.equal(answer.headers.get('x-redline-label'), 'CONFIDENTIAL//PII');
    }
    assert.equal((await received(onprem, '123-45-6789')).length, 12);
    assert.equal((await received(cloud, '123-45-6789')).length, 0);

    // Clean traffic still uses both.
    const clean = await sendMany(24, 8, (i) => gateway.chat(chatBody(`weather report ${i}`), bearer(key.key)));
    const backends = new Set(clean.map((a) => a.headers.get('x-redline-backend')));
    assert.deepEqual([...backends].sort(), ['cloud', 'onprem']);
  });

  it('lets a client raise its label but never lower it', async (t) => {
    const gateway = await startGateway(t, redLineConfig({ onprem, cloud }));
    const key = await createKey(gateway, { tenant: 'acme', default_label: 'CONFIDENTIAL', max_label: 'SECRET' });
    await cloud.reset();
    const lowered = await sendMany(8, 4, (i) =>
      gateway.chat(chatBody(`lower me ${i}`), { headers: { ...bearer(key.key).headers, 'x-redline-classification': 'PUBLIC' } }),
    );
    for (const answer of lowered) {
      assert.equal(answer.status, 200, answer.text);
      assert.equal(answer.headers.get('x-redline-label'), 'CONFIDENTIAL');
      assert.equal(answer.headers.get('x-redline-backend'), 'onprem');
    }
    assert.equal((await received(cloud, 'lower me')).length, 0);

    const above = await gateway.chat(chatBody('too high'), {
      headers: { ...bearer(key.key).headers, 'x-redline-classification': 'TOP_SECRET' },
    });
    assert.equal(above.status, 403);
    assert.equal(above.json.error.code, 'label_above_key_clearance');

    const open = await createKey(gateway, { tenant: 'acme' });
    const nowhere = await gateway.chat(chatBody('nobody may read this'), {
      headers: { ...bearer(open.key).headers, 'x-redline-classification': 'TOP_SECRET' },
    });
    assert.equal(nowhere.status, 503);
    assert.equal(nowhere.json.error.code, 'no_cleared_backend');
    assert.match(nowhere.json.error.message, /TOP_SECRET/);
    assert.doesNotMatch(nowhere.json.error.message, /nobody may read/);
  });

  it('keeps a tenant inside its jurisdictions', async (t) => {
    const gateway = await startGateway(
      t,
      redLineConfig({ onprem, cloud }, { extra: { tenants: [{ name: 'eu-only', jurisdictions: ['EU'] }] } }),
    );
    const key = await createKey(gateway, { tenant: 'eu-only' });
    await cloud.reset();
    const answers = await sendMany(10, 5, (i) => gateway.chat(chatBody(`eu data ${i}`), bearer(key.key)));
    for (const answer of answers) assert.equal(answer.headers.get('x-redline-backend'), 'onprem');
    assert.equal((await received(cloud, 'eu data')).length, 0);
  });

  it('denies by rule, and in shadow mode changes nothing but counts', async (t) => {
    const rules = [
      { name: 'no-aws-keys', action: 'deny', detectors: ['aws_access_key'], message: 'rotate that key' },
      { name: 'watch-email', action: 'deny', mode: 'shadow', detectors: ['email'] },
    ];
    const gateway = await startGateway(t, redLineConfig({ onprem, cloud }, { rules }));
    const key = await createKey(gateway, { tenant: 'acme' });
    const denied = await gateway.chat(chatBody('deploy with AKIAIOSFODNN7EXAMPLE now'), bearer(key.key));
    assert.equal(denied.status, 403);
    assert.equal(denied.json.error.code, 'red_line_denied');
    assert.match(denied.json.error.message, /no-aws-keys/);
    assert.doesNotMatch(denied.json.error.message, /AKIA/);

    await onprem.reset();
    await cloud.reset();
    const shadowed = await sendMany(5, 5, (i) => gateway.chat(chatBody(`write to ${EMAIL} ${i}`), bearer(key.key)));
    for (const answer of shadowed) assert.equal(answer.status, 200, answer.text);
    const arrived = (await received(onprem, EMAIL)).length + (await received(cloud, EMAIL)).length;
    assert.equal(arrived, 5, 'shadow mode must not change what is sent');
    const metrics = await (await fetch(`${gateway.url}/metrics`)).text();
    assert.match(metrics, /redline_rule_matches_total\{action="deny",mode="shadow",rule="watch-email"\} 5/);
    assert.match(metrics, /redline_rule_matches_total\{action="deny",mode="enforce",rule="no-aws-keys"\} 1/);
    assert.match(metrics, /redline_policy_decisions_total\{decision="deny",label="CONFIDENTIAL"\} 1/);
  });

  it('holds a request for approval and releases it when an admin decides', async (t) => {
    const rules = [
      { name: 'launch-review', action: 'require_approval', detectors: ['launch_codes'], approval_timeout_ms: 600 },
    ];
    const gateway = await startGateway(t, redLineConfig({ onprem, cloud }, { rules }));
    const key = await createKey(gateway, { tenant: 'acme' });

    const held = gateway.chat(chatBody('send the launch codes summary'), bearer(key.key));
    let pending;
    await waitFor(async () => {
      pending = (await admin(gateway, 'GET', '/admin/approvals')).json.data;
      return pending.length === 1;
    });
    assert.equal(pending[0].rule, 'launch-review');
    assert.equal(pending[0].detectors, 'launch_codes=1');
    assert.doesNotMatch(JSON.stringify(pending), /summary/);
    const approved = await admin(gateway, 'POST', `/admin/approvals/${pending[0].id}/approve`);
    assert.equal(approved.status, 200, approved.text);
    assert.equal((await held).status, 200);

    const second = gateway.chat(chatBody('more launch codes please'), bearer(key.key));
    await waitFor(async () => (await admin(gateway, 'GET', '/admin/approvals')).json.data.length === 1);
    const [waiting] = (await admin(gateway, 'GET', '/admin/approvals')).json.data;
    assert.equal((await admin(gateway, 'POST', `/admin/approvals/${waiting.id}/deny`)).status, 200);
    const refused = await second;
    assert.equal(refused.status, 403);
    assert.equal(refused.json.error.code, 'approval_denied');

    const timedOut = await gateway.chat(chatBody('launch codes again'), bearer(key.key));
    assert.equal(timedOut.status, 403);
    assert.equal(timedOut.json.error.code, 'approval_timed_out');
  });

  it('redacts for the cloud and restores the answer, streamed in pieces', async (t) => {
    const rules = [{ name: 'mask-email-for-cloud', action: 'redact', redact: ['email'], backend_tiers: ['cloud'] }];
    const config = redLineConfig({ onprem, cloud }, { rules });
    config.aliases = [{ name: 'chat', targets: ['cloud'] }];
    const gateway = await startGateway(t, config);
    const key = await createKey(gateway, { tenant: 'acme' });
    await cloud.reset();
    const text = `echo: mail ${EMAIL} and bob@example.com, then ${EMAIL} again`;

    const stream = await SseStream.open(`${gateway.baseUrl}/chat/completions`, chatBody(text, { stream: true }), bearer(key.key).headers);
    assert.equal(stream.status, 200);
    let content = '';
    for (let payload = await stream.next(); payload !== null; payload = await stream.next()) {
      if (payload === '[DONE]') break;
      const chunk = JSON.parse(payload);
      content += chunk.choices?.[0]?.delta?.content ?? '';
    }
    assert.equal(content, text.slice('echo: '.length));

    const plain = await gateway.chat(chatBody(text), bearer(key.key));
    assert.equal(plain.status, 200, plain.text);
    assert.equal(plain.json.choices[0].message.content, text.slice('echo: '.length));

    // The backend never saw an address, and the same address got the same placeholder.
    const seen = await cloud.requests();
    assert.equal(seen.length, 2);
    for (const request of seen) {
      const sent = request.body.messages[0].content;
      assert.doesNotMatch(sent, /example\.(org|com)/);
      const placeholders = sent.match(/\[REDACTED_EMAIL_\d+\]/g);
      assert.equal(placeholders.length, 3);
      assert.equal(placeholders[0], placeholders[2]);
      assert.notEqual(placeholders[0], placeholders[1]);
    }
  });

  it('restores placeholders inside streamed tool-call arguments', async (t) => {
    const rules = [{ name: 'mask-email', action: 'redact', redact: ['email'] }];
    const gateway = await startGateway(t, redLineConfig({ onprem, cloud }, { rules }));
    const key = await createKey(gateway, { tenant: 'acme' });
    const tools = [{ type: 'function', function: { name: 'send_mail', parameters: { type: 'object', properties: { text: { type: 'string' } } } } }];
    const text = `echo: notify "${EMAIL}" now`;
    const stream = await SseStream.open(
      `${gateway.baseUrl}/chat/completions`,
      chatBody(text, { stream: true, tools }),
      bearer(key.key).headers,
    );
    let args = '';
    for (let payload = await stream.next(); payload !== null; payload = await stream.next()) {
      if (payload === '[DONE]') break;
      for (const call of JSON.parse(payload).choices?.[0]?.delta?.tool_calls ?? []) args += call.function?.arguments ?? '';
    }
    assert.deepEqual(JSON.parse(args), { text: text.slice('echo: '.length) });
  });

  it('stops output above what the key may receive', async (t) => {
    const gateway = await startGateway(t, redLineConfig({ onprem, cloud }));
    const key = await createKey(gateway, { tenant: 'acme', max_label: 'INTERNAL//PII' });
    // The prompt is clean; the model's answer ("... SECRET//NOFORN ...") is not.
    const prompt = 'echo-reverse: NROFON//TERCES si siht';
    const stream = await SseStream.open(
      `${gateway.baseUrl}/chat/completions`,
      chatBody(prompt, { stream: true }),
      bearer(key.key).headers,
    );
    assert.equal(stream.status, 200);
    const payloads = [];
    for (let payload = await stream.next(); payload !== null; payload = await stream.next()) payloads.push(payload);
    const last = JSON.parse(payloads.at(-1));
    assert.equal(last.error.code, 'output_above_clearance');
    assert.match(last.error.message, /classified SECRET/);
    assert.ok(!payloads.includes('[DONE]'));

    const plain = await gateway.chat(chatBody(prompt), bearer(key.key));
    assert.equal(plain.status, 403);
    assert.equal(plain.json.error.code, 'output_above_clearance');
    assert.doesNotMatch(plain.text, /this is/);
  });
});
