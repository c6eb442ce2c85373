// `chaperone config validate` as an operator runs it before deploying: the real CLI, the real OPA. Exit 0
// for a config `chaperone up` would serve; 1, with every problem and its line, for one it would refuse
// (schema, translation to Envoy resources, policy build); 2 when the file cannot be read.
import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../lib/tools.ts';
import { runCli } from '../support/cli.ts';

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'chaperone-config-validate-'));
  await cp(join(PROJECT_ROOT, 'policies'), join(dir, 'policies'), { recursive: true });
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const VALID = `listeners: [{ name: egress, port: 10000 }]
targets:
  - name: demo
    upstream: http://127.0.0.1:8080
    match: { path_prefix: /demo }
policy:
  dir: policies
  entrypoint: chaperone/authz/decision
`;

async function validate(name: string, yaml: string | null, json = false) {
  const file = join(dir, name);
  if (yaml !== null) await writeFile(file, yaml);
  return runCli(['config', 'validate', '--config', file, ...(json ? ['--json'] : [])], {
    timeoutMs: 120_000,
  });
}

describe('chaperone config validate', () => {
  it('passes a config chaperone up would serve (exit 0)', async () => {
    const { code, out } = await validate('valid.yaml', VALID);
    expect(code, out).toBe(0);
    expect(out).toMatch(/✓ schema/);
    expect(out).toMatch(/✓ envoy\s+\d+ resources, version [0-9a-f]{12}/);
    expect(out).toMatch(/✓ policy\s+.*policies → revision [0-9a-f]{16} \(chaperone\/authz\/decision\)/);
    const json = await validate('valid.yaml', null, true);
    expect(json.code).toBe(0);
    expect(JSON.parse(json.out)).toMatchObject({
      valid: true,
      checks: { schema: { ok: true }, envoy: { ok: true } },
    });
  }, 120_000);

  it('names every schema problem with its line (exit 1)', async () => {
    const { code, out } = await validate(
      'schema.yaml',
      `${VALID}telemetry:\n  metrics:\n    address: 0.0.0.0:9464\nenvoy:\n  admin_port: 99999\n`,
    );
    expect(code, out).toBe(1);
    expect(out).toContain('✗ schema');
    expect(out).toMatch(/schema\.yaml:13: envoy\.admin_port/);
    expect(out).toContain('✗ envoy');
    expect(out).toMatch(/invalid\n$/);
  });

  it('names a config that cannot be translated to Envoy resources (exit 1)', async () => {
    const { code, out } = await validate(
      'translate.yaml',
      VALID.replace(
        'match: { path_prefix: /demo }',
        'match: { path_prefix: /demo }\n    tls: { sni: x.example.com }',
      ),
    );
    expect(code, out).toBe(1);
    expect(out).toContain('✓ schema');
    expect(out).toContain('✗ envoy');
    expect(out).toMatch(/targets\[0\]\.tls.*https/);
  });

  it('names a broken policy file with its line (exit 1)', async () => {
    await writeFile(
      join(dir, 'policies', 'chaperone', 'authz', 'broken.rego'),
      'package chaperone.authz\n\nx := 1 +* 2\n',
    );
    try {
      const { code, out } = await validate('policy.yaml', VALID, true);
      expect(code, out).toBe(1);
      const v = JSON.parse(out) as { valid: boolean; checks: { policy: { ok: boolean; errors: string[] } } };
      expect(v.valid).toBe(false);
      expect(v.checks.policy.errors.join('\n')).toMatch(/broken\.rego:3/);
    } finally {
      await rm(join(dir, 'policies', 'chaperone', 'authz', 'broken.rego'));
    }
  }, 120_000);

  it('refuses a metrics listener off loopback without a token file, with its line (exit 1)', async () => {
    const { code, out } = await validate(
      'metrics.yaml',
      `${VALID}telemetry:\n  metrics:\n    address: 0.0.0.0:9464\n`,
    );
    expect(code, out).toBe(1);
    expect(out).toMatch(/metrics\.yaml:11: telemetry\.metrics\.address: is not a loopback address/);
  });

  it('is a usage error when the file cannot be read (exit 2)', async () => {
    const { code, out } = await validate('missing.yaml', null);
    expect(code).toBe(2);
    expect(out).toContain('cannot read');
  });
});
