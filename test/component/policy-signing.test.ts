// Bundle signatures against the real OPA CLI, both ways: bundles signed by `opa build --signing-key`
// (RS256, ES256, HS256) load; bundles Chaperone signs (`chaperone policy publish`) are accepted by
// `opa build --verification-key`; an unsigned, tampered, re-keyed, out-of-scope or padded bundle is
// refused with ERR_BUNDLE_SIGNATURE while the last good policy keeps serving. File digests follow
// OPA's canonical form for data files, checked here on the cases where a naive JSON re-encoding
// would differ (number spellings, U+2028, astral keys).
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readBundleArchive, writeBundleArchive } from '../../authz-server/policy/bundle-archive.ts';
import { resolveSigningKey, resolveVerification } from '../../authz-server/policy/bundle-keys.ts';
import { signBundleFiles, verifyBundleSignature } from '../../authz-server/policy/bundle-signing.ts';
import { PolicyStore } from '../../authz-server/policy/policy-store.ts';
import type { BundleSigningConfig } from '../../config/types.ts';
import {
  FLEET_ENTRYPOINT,
  type KeyFiles,
  opaBuild,
  opaVerifies,
  tamper,
  writeFleetPolicy,
  writeKeyPair,
} from '../support/policy-bundles.ts';

let dir: string;
let rsa: KeyFiles;
let ec: KeyFiles;
let other: KeyFiles;
let secretFile: string;
let signedRsa: string;

const TRICKY = {
  spelled: 'SPELLED',
  text: 'line\u2028separator, tab\t, emoji 😀, <tag>&',
  '\u{1F600}': 'astral key sorts after',
  '\uFFFD': 'a BMP key above the surrogates',
};

const signing = (keys: BundleSigningConfig['keys'], more: Partial<BundleSigningConfig> = {}) =>
  resolveVerification({ keyid: null, scope: null, excludeFiles: [], keys, ...more });

const rsaKeys = () => ({ default: { algorithm: 'RS256', key: `file:${rsa.publicPem}`, scope: null } });

function store(verification = signing(rsaKeys())) {
  return new PolicyStore(
    { kind: 'offered', path: 'test', entrypoint: FLEET_ENTRYPOINT },
    {},
    { verification },
  );
}

const offer = async (s: PolicyStore, path: string) =>
  s.offer({ bytes: await readFile(path), origin: `test ${path}` });

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'chaperone-signing-'));
  // Raw JSON text, so the number spellings reach the bundle as written.
  await writeFleetPolicy(join(dir, 'src'), 'v1');
  const raw = JSON.stringify({ version: 'v1', ...TRICKY }).replace(
    '"SPELLED"',
    '[1.0,1e2,-0,12345678901234567890,0.1]',
  );
  await writeFile(join(dir, 'src', 'fleet', 'data.json'), raw);
  [rsa, ec, other] = await Promise.all([
    writeKeyPair(dir, 'rsa'),
    writeKeyPair(dir, 'ec'),
    writeKeyPair(dir, 'rsa', 'other'),
  ]);
  secretFile = join(dir, 'hmac.secret');
  await writeFile(secretFile, 'a shared secret of the fleet');
  signedRsa = await opaBuild(join(dir, 'src'), join(dir, 'rsa.tar.gz'), { key: rsa.privatePem });
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('bundles signed by opa', () => {
  it('RS256, ES256 and HS256 signatures verify and the policy loads', async () => {
    const s = store(
      signing({
        default: { algorithm: 'RS256', key: `file:${rsa.publicPem}`, scope: null },
      }),
    );
    expect(await offer(s, signedRsa)).toBe(true);
    expect(s.current()?.verifiedBy).toBe('default');
    // OPA kept the spellings a JSON round trip would lose: the digest is over them.
    const data = readBundleArchive(await readFile(signedRsa))
      .get('/data.json')!
      .toString();
    expect(data).toContain('[1.0,1e2,-0,12345678901234567890,0.1]');
    expect(data).toContain('\\u2028');

    const es = await opaBuild(join(dir, 'src'), join(dir, 'ec.tar.gz'), { key: ec.privatePem, alg: 'ES256' });
    const sEc = store(signing({ default: { algorithm: 'ES256', key: `file:${ec.publicPem}`, scope: null } }));
    expect(await offer(sEc, es)).toBe(true);

    const hs = await opaBuild(join(dir, 'src'), join(dir, 'hs.tar.gz'), { key: secretFile, alg: 'HS256' });
    const sHs = store(signing({ default: { algorithm: 'HS256', key: `file:${secretFile}`, scope: null } }));
    expect(await offer(sHs, hs)).toBe(true);
  });

  it('a scope claim must match the configured scope', async () => {
    const claims = join(dir, 'claims.json');
    await writeFile(claims, JSON.stringify({ scope: 'write' }));
    const scoped = await opaBuild(join(dir, 'src'), join(dir, 'scoped.tar.gz'), {
      key: rsa.privatePem,
      claimsFile: claims,
    });
    // With a claims file OPA writes no kid: the key is named by the configuration.
    const keys = { fleet: { algorithm: 'RS256', key: `file:${rsa.publicPem}`, scope: 'write' } };
    expect(await offer(store(signing(keys, { keyid: 'fleet' })), scoped)).toBe(true);
    const wrong = store(signing(keys, { keyid: 'fleet', scope: 'read' }));
    expect(await offer(wrong, scoped)).toBe(false);
    expect(wrong.lastError()?.message).toMatch(/scope "write" is not the expected "read"/);
  });
});

describe('refused bundles', () => {
  const refused = async (path: string, pattern: RegExp, s = store()) => {
    expect(await offer(s, signedRsa)).toBe(true);
    const before = s.current();
    expect(await offer(s, path)).toBe(false);
    expect(s.lastError()).toMatchObject({ code: 'ERR_BUNDLE_SIGNATURE' });
    expect(s.lastError()?.message).toMatch(pattern);
    // The last good one keeps serving.
    expect(s.current()).toBe(before);
    expect(s.status()).toMatchObject({ refused: 1, last_refused: { code: 'ERR_BUNDLE_SIGNATURE' } });
  };

  it('an unsigned bundle', async () => {
    await refused(await opaBuild(join(dir, 'src'), join(dir, 'unsigned.tar.gz')), /not signed/);
  });

  it('data changed after signing', async () => {
    const t = await tamper(signedRsa, join(dir, 't1.tar.gz'), '/data.json', (b) =>
      Buffer.from(b.toString().replace('"v1"', '"v2"')),
    );
    await refused(t, /data\.json: digest mismatch/);
  });

  it('a flipped byte in the WASM module', async () => {
    const t = await tamper(signedRsa, join(dir, 't2.tar.gz'), '/policy.wasm', (b) => {
      const c = Buffer.from(b);
      c[c.length - 1] ^= 1;
      return c;
    });
    await refused(t, /policy\.wasm: digest mismatch/);
  });

  it('a file added, a file removed', async () => {
    const files = readBundleArchive(await readFile(signedRsa));
    const added = new Map(files).set('/extra/data.json', Buffer.from('{"x":1}'));
    await writeFile(join(dir, 'added.tar.gz'), writeBundleArchive(added));
    await refused(join(dir, 'added.tar.gz'), /extra\/data\.json is in the bundle but not covered/);
    const removed = new Map(files);
    removed.delete('/.manifest');
    await writeFile(join(dir, 'removed.tar.gz'), writeBundleArchive(removed));
    await refused(join(dir, 'removed.tar.gz'), /\.manifest are signed but missing/);
  });

  it('signed by another key', async () => {
    const o = await opaBuild(join(dir, 'src'), join(dir, 'other.tar.gz'), { key: other.privatePem });
    await refused(o, /refused by key "default": the signature does not verify/);
  });

  it('a second signatures file, or one path twice in the archive', async () => {
    const files = readBundleArchive(await readFile(signedRsa));
    const second = new Map(files).set('/fleet/.signatures.json', files.get('/.signatures.json')!);
    await writeFile(join(dir, 'second.tar.gz'), writeBundleArchive(second));
    await refused(join(dir, 'second.tar.gz'), /second signatures file/);
  });

  it('exclude_files leaves a file out of the check', async () => {
    const files = readBundleArchive(await readFile(signedRsa));
    files.set('/notes/readme.txt', Buffer.from('not signed'));
    await writeFile(join(dir, 'notes.tar.gz'), writeBundleArchive(files));
    const s = store(signing(rsaKeys(), { excludeFiles: ['notes/*.txt'] }));
    expect(await offer(s, join(dir, 'notes.tar.gz'))).toBe(true);
  });
});

describe('bundles signed by chaperone', () => {
  it('are accepted by opa, and opa refuses them tampered', async () => {
    const unsigned = await opaBuild(join(dir, 'src'), join(dir, 'plain.tar.gz'));
    const key = resolveSigningKey({ ref: `file:${rsa.privatePem}`, algorithm: 'RS256', keyid: 'default' });
    const signed = await signBundleFiles(readBundleArchive(await readFile(unsigned)), key);
    const ours = join(dir, 'ours.tar.gz');
    await writeFile(ours, writeBundleArchive(signed));
    expect(await opaVerifies(ours, rsa.publicPem)).toBe(true);
    expect(await verifyBundleSignature(signed, signing(rsaKeys()))).toMatchObject({ keyid: 'default' });
    const t = await tamper(ours, join(dir, 'ours-t.tar.gz'), '/data.json', (b) =>
      Buffer.from(b.toString().replace('"v1"', '"v9"')),
    );
    expect(await opaVerifies(t, rsa.publicPem)).toBe(false);
    expect(await offer(store(), t)).toBe(false);
  });

  it('with ES256, verified by opa', async () => {
    const unsigned = join(dir, 'plain.tar.gz');
    const key = resolveSigningKey({ ref: `file:${ec.privatePem}`, algorithm: 'ES256', keyid: 'default' });
    const ours = join(dir, 'ours-ec.tar.gz');
    await writeFile(
      ours,
      writeBundleArchive(await signBundleFiles(readBundleArchive(await readFile(unsigned)), key)),
    );
    expect(await opaVerifies(ours, ec.publicPem, 'ES256')).toBe(true);
  });
});

describe('verification keys', () => {
  it('an HMAC secret cannot be written inline, a missing env reference stops the start', () => {
    expect(() => signing({ k: { algorithm: 'HS256', key: 'inline-secret', scope: null } })).toThrow(
      /must be env:NAME or file:\/path$/,
    );
    expect(() =>
      signing({ k: { algorithm: 'RS256', key: 'env:CHAPERONE_TEST_UNSET_KEY', scope: null } }),
    ).toThrow(/is not set/);
    expect(() => signing(rsaKeys(), { keyid: 'nope' })).toThrow(/no key "nope"/);
  });

  it('the logger is never handed key material', async () => {
    const lines: string[] = [];
    const logger = pino({ level: 'info' }, { write: (l: string) => void lines.push(l) });
    const s = new PolicyStore(
      { kind: 'offered', path: 'test', entrypoint: FLEET_ENTRYPOINT },
      { onError: (e) => logger.error({ errors: e.errors }, e.message) },
      { verification: signing({ default: { algorithm: 'HS256', key: `file:${secretFile}`, scope: null } }) },
    );
    await offer(s, signedRsa);
    expect(lines.join('')).not.toContain('a shared secret of the fleet');
    expect(lines.join('')).toMatch(/not signed with HS256/);
  });
});
