// `chaperone policy publish|revisions|rollback` as a user runs them, on the embedded store of a stopped
// gateway (`--data-dir`; the PostgreSQL fleet is test/e2e/policy-fleet.test.ts): what is published is
// what a node will load, a broken policy never reaches the store, nothing is published by accident.
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openAuditStore } from '../../audit/store.ts';
import { readBundleArchive } from '../../authz-server/policy/bundle-archive.ts';
import { resolveVerification } from '../../authz-server/policy/bundle-keys.ts';
import { verifyBundleSignature } from '../../authz-server/policy/bundle-signing.ts';
import { runCli } from '../support/cli.ts';
import {
  FLEET_ENTRYPOINT,
  type KeyFiles,
  writeFleetPolicy,
  writeKeyPair,
} from '../support/policy-bundles.ts';

let dir: string;
let dataDir: string;
let keys: KeyFiles;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'chaperone-publish-'));
  dataDir = join(dir, 'audit');
  const store = await openAuditStore({ dataDir });
  await store.migrate();
  await store.close();
  keys = await writeKeyPair(dir, 'ec');
  await writeFleetPolicy(join(dir, 'v1'), 'v1');
  await writeFleetPolicy(join(dir, 'broken'), 'v2');
  await mkdir(join(dir, 'broken', 'fleet'), { recursive: true });
  await writeFile(
    join(dir, 'broken', 'fleet', 'bad.rego'),
    'package fleet\n\nx := http.send({"url": "x"})\n',
  );
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function storeRows(sql: string): Promise<Record<string, unknown>[]> {
  const store = await openAuditStore({ dataDir });
  try {
    return (await store.sql.query(sql)).map((r) => ({
      ...r,
      ...('revision' in r ? { revision: Number(r['revision']) } : {}),
    }));
  } finally {
    await store.close();
  }
}

const cli = (...args: string[]) => runCli(['policy', ...args, '--data-dir', dataDir], { timeoutMs: 120_000 });

// Each CLI run opens the embedded store from disk: seconds apiece on a busy machine.
describe('chaperone policy publish|revisions|rollback', { timeout: 180_000 }, () => {
  it('publishes revisions (the same bundle twice is a no-op) and lists them', async () => {
    const unsigned = await cli('publish', join(dir, 'v1'), '-e', FLEET_ENTRYPOINT);
    expect(unsigned.code, unsigned.out).toBe(0);
    expect(unsigned.out).toContain('UNSIGNED');
    expect(unsigned.out).toContain('published r1');
    const again = await cli('publish', join(dir, 'v1'), '-e', FLEET_ENTRYPOINT);
    expect(again.code, again.out).toBe(0);
    expect(again.out).toContain("r1 already is the fleet's policy");
    const signed = await cli(
      'publish',
      join(dir, 'v1'),
      '-e',
      FLEET_ENTRYPOINT,
      '--signing-key',
      keys.privatePem,
      '--signing-alg',
      'ES256',
      '--key-id',
      'ci',
      '--json',
    );
    expect(signed.code, signed.out).toBe(0);
    expect((JSON.parse(signed.out) as { revision: unknown }).revision).toMatchObject({
      id: 'r2',
      signedBy: 'ci',
    });

    const list = await cli('revisions');
    expect(list.code, list.out).toBe(0);
    expect(list.out).toMatch(/^\* r2 .* signed \(ci\)/m);
    expect(list.out).toMatch(/^ {2}r1 .* UNSIGNED/m);
    expect(list.out).toContain('active: r2 (publish');
  });

  it('what is stored verifies with the public key, as a node will check it', async () => {
    const store = await openAuditStore({ dataDir });
    try {
      const [row] = await store.sql.query<{ bundle: Uint8Array }>(
        'SELECT bundle FROM policy_revisions WHERE revision = 2',
      );
      const files = readBundleArchive(Buffer.from(row!.bundle));
      const v = resolveVerification({
        keyid: null,
        scope: null,
        excludeFiles: [],
        keys: { ci: { algorithm: 'ES256', key: `file:${keys.publicPem}`, scope: null } },
      });
      expect(await verifyBundleSignature(files, v)).toMatchObject({ keyid: 'ci' });
      expect(files.get('/data.json')?.toString()).toContain('"v1"');
    } finally {
      await store.close();
    }
  });

  it('rolls back, and refuses an unknown or malformed revision', async () => {
    const ok = await cli('rollback', 'r1');
    expect(ok.code, ok.out).toBe(0);
    expect(
      await storeRows('SELECT revision, reason FROM policy_activations ORDER BY seq DESC LIMIT 1'),
    ).toEqual([{ revision: 1, reason: 'rollback' }]);
    expect((await cli('rollback', 'r7')).code).toBe(1);
    const bad = await cli('rollback', 'latest');
    expect(bad.code).toBe(2);
    expect(bad.out).toContain('is not a revision id like r7');
  });

  it('a policy that does not build with Chaperone’s capabilities never reaches the store', async () => {
    const res = await cli('publish', join(dir, 'broken'), '-e', FLEET_ENTRYPOINT);
    expect(res.code).toBe(1);
    expect(res.out).toMatch(/bad\.rego:3/);
    expect(res.out).toMatch(/http\.send/);
    expect(await storeRows('SELECT count(*)::int AS n FROM policy_revisions')).toEqual([{ n: 2 }]);
  });

  it('without --store, a missing data directory is an error, not a new empty store', async () => {
    const res = await runCli(['policy', 'publish', join(dir, 'v1'), '--data-dir', join(dir, 'nowhere')]);
    expect(res.code).toBe(2); // usage or environment (docs/cli.md)
    expect(res.out).toContain('no store: give --store');
    await expect(readFile(join(dir, 'nowhere'))).rejects.toThrow();
  });
});
