// `redline policy test` over the shipped red-line suite (tests/policy_cases): every case passes,
// a wrong expectation fails with a diff an operator can read, and a malformed case file is a
// usage error that points at the offending line.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';

import { repoRoot, runRedline, writeTempFile } from './helpers.mjs';

const casesDir = path.join(repoRoot, 'tests', 'policy_cases');
const policyConfig = path.join(casesDir, 'policy.toml');
const caseFiles = fs
  .readdirSync(casesDir)
  .filter((name) => name.endsWith('.test'))
  .sort()
  .map((name) => path.join(casesDir, name));

// "242 cases, 242 passed, 0 failed"
function summary(stdout) {
  const match = stdout.match(/^(\d+) cases, (\d+) passed, (\d+) failed$/m);
  assert.ok(match, `no summary line in:\n${stdout}`);
  return { cases: Number(match[1]), passed: Number(match[2]), failed: Number(match[3]) };
}

describe('redline policy test', () => {
  it('passes every case of the shipped suite', () => {
    assert.ok(caseFiles.length >= 7, `expected the themed case files, found ${caseFiles}`);
    const { code, stdout, stderr } = runRedline([
      'policy',
      'test',
      '--config',
      policyConfig,
      ...caseFiles,
    ]);
    assert.equal(code, 0, `exit ${code}\nstdout:\n${stdout}\nstderr:\n${stderr}`);
    const { cases, passed, failed } = summary(stdout);
    assert.ok(cases >= 150, `only ${cases} cases ran`);
    assert.equal(failed, 0);
    assert.equal(passed, cases);
  });

  it('lists each passing case with -v', () => {
    const file = path.join(casesDir, 'secrets.test');
    const { code, stdout } = runRedline(['policy', 'test', '-v', '--config', policyConfig, file]);
    assert.equal(code, 0, stdout);
    assert.match(stdout, /^ok {3}.*secrets\.test:\d+ aws access key id$/m);
  });

  it('shows a readable diff for a wrong expectation and exits 1', () => {
    const file = writeTempFile(
      'wrong.test',
      [
        '# the first case is right, the second expects the wrong label and action',
        'case email is personal data',
        'text write to bob@example.com',
        'expect label INTERNAL//PII',
        '',
        'case ssn mislabelled on purpose',
        'text SSN 123-45-6789',
        'expect label INTERNAL',
        'expect action deny',
        '',
      ].join('\n'),
    );
    const { code, stdout } = runRedline(['policy', 'test', '--config', policyConfig, file]);
    assert.equal(code, 1, stdout);
    assert.ok(stdout.includes(`FAIL ${file}:6 ssn mislabelled on purpose`), stdout);
    assert.match(stdout, /label: expected INTERNAL\n\s+got CONFIDENTIAL\/\/PII/);
    assert.match(stdout, /action: expected deny\n\s+got allow/);
    assert.doesNotMatch(stdout, /email is personal data/);
    assert.deepEqual(summary(stdout), { cases: 2, passed: 1, failed: 1 });
  });

  it('rejects an unknown directive with its file and line, exit 2', () => {
    const file = writeTempFile(
      'typo.test',
      ['case a typo in a directive', 'text hello', 'expct label PUBLIC', ''].join('\n'),
    );
    const { code, stdout, stderr } = runRedline(['policy', 'test', '--config', policyConfig, file]);
    assert.equal(code, 2, `stdout:\n${stdout}\nstderr:\n${stderr}`);
    assert.ok(stderr.includes(`${file}:3: unknown directive 'expct'`), stderr);
    assert.doesNotMatch(stdout, /cases, .* passed/);
  });
});
