// `chaperone policy build|test|check` as CI runs them: the real CLI in a child process, the real OPA,
// readable output and exit codes (0 ok, 1 failed, 2 usage).
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readBundle } from '../../authz-server/policy/bundle-reader.ts';
import { PolicyEngine } from '../../authz-server/policy/policy-engine.ts';
import { PROJECT_ROOT } from '../../lib/tools.ts';
import { runCli } from '../support/cli.ts';

const chaperone = (args: string[]) => runCli(args, { cwd: PROJECT_ROOT, timeoutMs: 120_000 });

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'chaperone-policy-cli-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const req = (identity: unknown, method: string, path: string[], body?: unknown) => ({
  attributes: { request: { http: { method, headers: {} } } },
  parsed_path: path,
  parsed_query: {},
  ...(body ? { parsed_body: body } : {}),
  identity,
  identity_error: identity ? null : { code: 'ERR_TOKEN_MISSING', reason: 'no token' },
  route: { id: 'demo/0', target: 'demo', checksum: 'c' },
});

describe('chaperone policy', () => {
  it('tests the shipped library with coverage and passes', async () => {
    const { code, out } = await chaperone(['policy', 'test', '--dir', 'policies']);
    expect(code, out).toBe(0);
    expect(out).toMatch(/coverage \d+\.\d% \(threshold 90%\)/);
    expect(out).toMatch(/\d+ passed, 0 failed/);
  });

  it('checks formatting and strict types of the shipped library', async () => {
    const { code, out } = await chaperone(['policy', 'check', '--dir', 'policies']);
    expect(code, out).toBe(0);
    expect(out).toContain('✓ regal lint');
    expect(out).toContain('policy check passed');
  });

  it('builds a bundle the authz server evaluates like the library says', async () => {
    const out = join(dir, 'bundle.tar.gz');
    const res = await chaperone(['policy', 'build', '--dir', 'policies', '-o', out]);
    expect(res.code, res.out).toBe(0);
    expect(res.out).toMatch(/built .*revision [0-9a-f]{16}/);
    const engine = await PolicyEngine.load(readBundle(await readFile(out), out), 'chaperone/authz/decision');
    const alice = { subject: 'alice', groups: ['engineering'], actor: null };
    const bob = { subject: 'bob', groups: ['contractors'], actor: null };
    const decide = (input: unknown) => {
      const r = engine.evaluate(input);
      if (!r.ok) throw new Error(r.code);
      return r.result as { allowed: boolean; http_status?: number; approval?: unknown };
    };
    expect(decide(req(alice, 'GET', ['demo', 'items'])).allowed).toBe(true);
    expect(decide(req(bob, 'GET', ['demo', 'items'])).http_status).toBe(403);
    expect(decide(req(null, 'GET', ['demo', 'items'])).http_status).toBe(401);
    expect(decide(req(alice, 'POST', ['demo', 'items'], { priority: 'critical' })).allowed).toBe(false);
    expect(decide(req(alice, 'DELETE', ['demo', 'items', '1'])).approval).toMatchObject({
      reviewers: ['security'],
    });
  });

  it('reports broken Rego with file:line and exit 1', async () => {
    const broken = join(dir, 'broken');
    await rm(broken, { recursive: true, force: true });
    await import('node:fs/promises').then((fs) => fs.mkdir(broken));
    await writeFile(join(broken, 'policy.rego'), 'package p\n\nallow if {\n  input.x ==\n}\n');
    const res = await chaperone([
      'policy',
      'build',
      '--dir',
      broken,
      '-e',
      'p/allow',
      '-o',
      join(dir, 'b.tar.gz'),
    ]);
    expect(res.code).toBe(1);
    expect(res.out).toMatch(/policy\.rego:5(:\d+)?: rego_parse_error/);
  });

  it('refuses a builtin the WASM runtime lacks at build time', async () => {
    const d = join(dir, 'http');
    await import('node:fs/promises').then((fs) => fs.mkdir(d, { recursive: true }));
    await writeFile(
      join(d, 'policy.rego'),
      'package p\n\nallow if http.send({"method": "get", "url": "http://x"}).status_code == 200\n',
    );
    const res = await chaperone([
      'policy',
      'build',
      '--dir',
      d,
      '-e',
      'p/allow',
      '-o',
      join(dir, 'h.tar.gz'),
    ]);
    expect(res.code).toBe(1);
    expect(res.out).toMatch(/policy\.rego:3:\d+: rego_type_error: undefined function http\.send/);
  });

  it('fails a failing opa test with its name and location, and writes JUnit', async () => {
    const d = join(dir, 'failing');
    await import('node:fs/promises').then((fs) => fs.mkdir(d, { recursive: true }));
    await writeFile(join(d, 'p.rego'), 'package p\n\nallow if input.x == 1\n');
    await writeFile(
      join(d, 'p_test.rego'),
      'package p_test\n\nimport data.p\n\ntest_one if p.allow with input as {"x": 1}\n\ntest_two if p.allow with input as {"x": 2}\n',
    );
    const junit = join(dir, 'junit.xml');
    const res = await chaperone(['policy', 'test', '--dir', d, '--junit', junit]);
    expect(res.code).toBe(1);
    expect(res.out).toMatch(/✗ p_test\.test_two\s+\S*p_test\.rego:7/);
    expect(res.out).toContain('1 passed, 1 failed');
    const xml = await readFile(junit, 'utf8');
    expect(xml).toContain('tests="2" failures="1"');
    expect(xml).toMatch(/<testcase classname="p_test" name="test_two"[^>]*><failure/);
  });

  it('fails below the coverage threshold, naming the uncovered lines', async () => {
    const d = join(dir, 'uncovered');
    await import('node:fs/promises').then((fs) => fs.mkdir(d, { recursive: true }));
    await writeFile(
      join(d, 'p.rego'),
      'package p\n\nallow if input.x == 1\n\ndeny if {\n\tinput.y == 2\n\tinput.z == 3\n}\n',
    );
    await writeFile(
      join(d, 'p_test.rego'),
      'package p_test\n\nimport data.p\n\ntest_one if p.allow with input as {"x": 1}\n',
    );
    const res = await chaperone(['policy', 'test', '--dir', d, '--coverage-threshold', '95']);
    expect(res.code).toBe(1);
    expect(res.out).toMatch(/p\.rego: [\d.]+%, not covered: lines/);
  });

  it('runs the request fixtures through the production path with the shipped library', async () => {
    const { code, out } = await chaperone(['policy', 'test', '--dir', 'policies', '-v']);
    expect(code, out).toBe(0);
    expect(out).toMatch(/✓ a delete waits for security\s+policies\/fixtures\/demo\.yaml:\d+/);
    expect(out).toMatch(/request fixtures .*\n[\s\S]*\d+ passed, 0 failed/);
  });

  it('reports a fixture that fails on purpose with a diff, exit 1 and a JUnit failure', async () => {
    const junit = join(dir, 'fixtures-junit.xml');
    const { code, out } = await chaperone([
      'policy',
      'test',
      '--dir',
      'policies',
      '--fixtures',
      'test/fixtures/policy-fixtures',
      '--junit',
      junit,
    ]);
    expect(code).toBe(1);
    expect(out).toContain(
      '✗ contractors read the demo API (wrong on purpose)  test/fixtures/policy-fixtures/failing.yaml:3',
    );
    expect(out).toContain('allowed: expected true, got false');
    expect(out).toContain('headers_set.x-chaperone-user: expected "bob", got null');
    const xml = await readFile(junit, 'utf8');
    expect(xml).toMatch(/name="contractors read the demo API \(wrong on purpose\)"[^>]*><failure/);
  });

  it('rejects an invalid fixture file with its line', async () => {
    const d = join(dir, 'bad-fixtures');
    await import('node:fs/promises').then((fs) => fs.mkdir(d, { recursive: true }));
    await writeFile(
      join(d, 'x.yaml'),
      'cases:\n  - name: typo\n    request: { method: GET, path: / }\n    expect: { alowed: true }\n',
    );
    const { code, out } = await chaperone(['policy', 'test', '--dir', 'policies', '--fixtures', d]);
    expect(code).toBe(1);
    expect(out).toMatch(/x\.yaml:4: cases\[0\]\.expect: must NOT have additional properties/);
  });

  it('type-checks against the input schema: a misspelt input field is an error with file and line', async () => {
    const d = join(dir, 'typo');
    await import('node:fs/promises').then((fs) => fs.mkdir(d, { recursive: true }));
    await writeFile(
      join(d, 'p.rego'),
      'package typo\n\nimport rego.v1\n\nallow if "admins" in input.identity.grups\n',
    );
    const { code, out } = await chaperone(['policy', 'check', '--dir', d]);
    expect(code).toBe(1);
    expect(out).toMatch(/✗ \S*p\.rego:5:\d+: rego_type_error: undefined ref: input\.identity\.grups/);
  });

  it('lints with Regal and reports the rule, file and line', async () => {
    const d = join(dir, 'lint');
    await import('node:fs/promises').then((fs) => fs.mkdir(d, { recursive: true }));
    await writeFile(join(d, 'p.rego'), 'package lint\n\nimport rego.v1\n\nallow = true\n');
    const { code, out } = await chaperone(['policy', 'check', '--dir', d]);
    expect(code).toBe(1);
    expect(out).toMatch(
      /✗ \S*p\.rego:5:7: regal style\/use-assignment-operator: Prefer := over = for assignment/,
    );
  });

  it('is a usage error (exit 2) for a missing directory', async () => {
    const res = await chaperone(['policy', 'test', '--dir', join(dir, 'nope')]);
    expect(res.code).toBe(2);
    expect(res.out).toContain('does not exist');
  });
});
