// The command line: `redline config check` reports every problem with its position, `serve`
// refuses a broken config, and every subcommand documents itself in --help.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';

import { repoRoot, runRedline, writeTempFile } from './helpers.mjs';

// Line numbers matter: the assertions below name them.
const brokenConfig = [
  '[server]', //                                              1
  'listen = 42', //                                           2  not a string
  '', //                                                      3
  '[routing]', //                                             4
  'max_attempts = 0', //                                      5  must be >= 1
  '', //                                                      6
  '[[backends]]', //                                          7
  'name = "edge"', //                                         8
  'base_url = "ftp://127.0.0.1:9101/v1"', //                  9  not http(s)
  'models = [ { name = "llama" } ]', //                      10
  '', //                                                     11
  '[[models]]', //                                           12
  'name = "chat"', //                                        13
  'strategy = "fastest"', //                                 14 no such strategy
  'targets = [ { backend = "nope", model = "llama" } ]', //  15 unknown backend
  '',
].join('\n');

const validConfig = `
[server]
listen = "127.0.0.1:0"
access_log = "off"

[[backends]]
name = "edge"
base_url = "http://127.0.0.1:9101/v1"
models = [ { name = "llama" } ]

[[models]]
name = "chat"
targets = [ { backend = "edge", model = "llama" } ]
`;

function errorLines(output, file) {
  const name = path.basename(file).replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  // The key is absent for TOML syntax errors: "file:line:col: message".
  const pattern = new RegExp(`^\\S*${name}:(\\d+):(\\d+): (?:(\\S+): )?(.+)$`);
  return output
    .split('\n')
    .map((line) => pattern.exec(line.trim()))
    .filter(Boolean)
    .map(([, line, column, key = '', message]) => ({
      line: Number(line),
      column: Number(column),
      key,
      message,
    }));
}

describe('redline CLI', () => {
  it('config check reports every error with file, line, column and key, and exits 1', () => {
    const file = writeTempFile('broken.toml', brokenConfig);
    const { code, stdout, stderr } = runRedline(['config', 'check', file]);
    const output = stdout + stderr;
    assert.equal(code, 1, output);
    const errors = errorLines(output, file);
    const at = (line) => errors.filter((e) => e.line === line);
    assert.ok(at(2).some((e) => e.key === 'server.listen'), `line 2 server.listen:\n${output}`);
    assert.ok(at(5).some((e) => e.key === 'routing.max_attempts'), `line 5:\n${output}`);
    assert.ok(at(9).some((e) => /^backends\[\d\]\.base_url$/.test(e.key)), `line 9:\n${output}`);
    assert.ok(at(14).some((e) => /^models\[\d\]\.strategy$/.test(e.key)), `line 14:\n${output}`);
    assert.ok(at(15).some((e) => /nope/.test(e.message)), `line 15 unknown backend:\n${output}`);
    for (const error of errors) assert.ok(error.column >= 1, `column of ${JSON.stringify(error)}`);
  });

  it('config check reports a TOML syntax error with its line', () => {
    const file = writeTempFile('syntax.toml', '[server]\nlisten = "127.0.0.1:8080\n');
    const { code, stdout, stderr } = runRedline(['config', 'check', file]);
    assert.equal(code, 1, stdout + stderr);
    const errors = errorLines(stdout + stderr, file);
    assert.ok(errors.some((e) => e.line === 2), `no error on line 2:\n${stdout}${stderr}`);
  });

  it('config check accepts a valid config and exits 0', () => {
    const file = writeTempFile('valid.toml', validConfig);
    const { code, stdout, stderr } = runRedline(['config', 'check', file]);
    assert.equal(code, 0, stdout + stderr);
    assert.equal(errorLines(stdout + stderr, file).length, 0);
  });

  it('config check exits non-zero for a missing file', () => {
    const { code, stdout, stderr } = runRedline(['config', 'check', '/nonexistent/redline.toml']);
    assert.notEqual(code, 0);
    assert.match(stdout + stderr, /nonexistent\/redline\.toml/);
  });

  it('serve refuses a broken config with the same errors and a non-zero exit', () => {
    const file = writeTempFile('broken-serve.toml', brokenConfig);
    const { code, stdout, stderr } = runRedline(['serve', '--config', file], 10000);
    assert.notEqual(code, 0);
    assert.ok(errorLines(stdout + stderr, file).some((e) => e.line === 2), stdout + stderr);
  });

  it('the shipped example configs are valid', (t) => {
    const examples = ['quickstart.toml', 'reference.toml']
      .map((name) => path.join(repoRoot, 'examples', name))
      .filter((file) => fs.existsSync(file));
    if (examples.length === 0) return t.skip('no examples/quickstart.toml or reference.toml yet');
    for (const file of examples) {
      const { code, stdout, stderr } = runRedline(['config', 'check', file]);
      assert.equal(code, 0, `${file}:\n${stdout}${stderr}`);
    }
  });

  for (const subcommand of [[], ['serve'], ['sim'], ['config', 'check']]) {
    it(`redline ${[...subcommand, '--help'].join(' ')} prints usage and exits 0`, () => {
      const { code, stdout } = runRedline([...subcommand, '--help']);
      assert.equal(code, 0);
      assert.match(stdout, /usage/i);
      if (subcommand[0] === 'serve' || subcommand[0] === 'sim') assert.match(stdout, /--config/);
    });
  }
});
