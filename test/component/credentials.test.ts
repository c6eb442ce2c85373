// Credential injection over real gRPC: the target's secret reaches the upstream headers of allowed
// requests only, rotates when its file changes, and never shows up in a deny, a log line or status.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AuthzServer, startAuthzServer } from '../../authz-server/server.ts';
import { type AuthzClient, authzClient, deniedStatus, headerOf } from '../support/authz-client.ts';
import { waitFor } from '../support/wait.ts';

const POLICY = `package test.creds

decision := {"allowed": true, "headers": {"authorization": "policy-tried-this"}} if input.parsed_path[0] == "open"

decision := {"allowed": false, "http_status": 403, "body": "closed"} if input.parsed_path[0] == "closed"
`;

const ENV_SECRET = `sk_live_${'e'.repeat(24)}`;
const FILE_SECRET_1 = `ghp_${'1'.repeat(36)}`;
const FILE_SECRET_2 = `ghp_${'2'.repeat(36)}`;

let dir: string;
let secretFile: string;
let server: AuthzServer;
let client: AuthzClient;
const logLines: string[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'chaperone-creds-'));
  await writeFile(join(dir, 'policy.rego'), POLICY);
  secretFile = join(dir, 'github-token');
  await writeFile(secretFile, `${FILE_SECRET_1}\n`);
  process.env['CHAPERONE_TEST_PAYMENTS_KEY'] = ENV_SECRET;
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      logLines.push(chunk.toString('utf8'));
      cb();
    },
  });
  server = await startAuthzServer({
    address: '127.0.0.1:0',
    policy: { dir, entrypoint: 'test/creds/decision' },
    logger: pino({ level: 'debug' }, sink),
    credentials: {
      payments: [{ header: 'Authorization', value: 'env:CHAPERONE_TEST_PAYMENTS_KEY', format: 'Bearer {}' }],
      github: [{ header: 'x-github-token', value: `file:${secretFile}` }],
      broken: [{ header: 'x-api-key', value: 'env:CHAPERONE_TEST_UNSET_VARIABLE' }],
    },
  });
  client = authzClient(server.address);
});

afterAll(async () => {
  client?.close();
  await server?.close();
  delete process.env['CHAPERONE_TEST_PAYMENTS_KEY'];
  await rm(dir, { recursive: true, force: true });
});

const target = (name: string) => ({ route_id: `r-${name}`, target: name });

describe('credential injection', () => {
  it('sets the target credential on an allowed request, over what the policy or client set', async () => {
    const res = await client.check({
      path: '/open/charges',
      headers: { authorization: 'Bearer agent-own-token' },
      contextExtensions: target('payments'),
    });
    expect(res.status.code).toBe(0);
    const auth = res.okResponse?.headers?.filter((h) => h.header.key === 'authorization') ?? [];
    expect(auth.map((h) => h.header.value)).toEqual([`Bearer ${ENV_SECRET}`]);
    expect(auth[0]?.appendAction).toBe('OVERWRITE_IF_EXISTS_OR_ADD');
    expect(res.okResponse?.headersToRemove ?? []).not.toContain('authorization');
    // Never towards the client: not in response headers.
    expect(JSON.stringify(res.okResponse?.responseHeadersToAdd ?? [])).not.toContain(ENV_SECRET);
  });

  it('injects nothing into a denied request', async () => {
    const res = await client.check({ path: '/closed/x', contextExtensions: target('payments') });
    expect(deniedStatus(res)).toBe(403);
    expect(JSON.stringify(res)).not.toContain(ENV_SECRET);
  });

  it('leaves targets without credentials alone', async () => {
    const res = await client.check({ path: '/open/x', contextExtensions: target('other') });
    expect(headerOf(res.okResponse?.headers, 'authorization')).toBe('policy-tried-this');
  });

  it('rotates a file credential without restart', async () => {
    const first = await client.check({ path: '/open/repos', contextExtensions: target('github') });
    expect(headerOf(first.okResponse?.headers, 'x-github-token')).toBe(FILE_SECRET_1);
    await writeFile(secretFile, FILE_SECRET_2);
    await waitFor(
      async () => {
        const res = await client.check({ path: '/open/repos', contextExtensions: target('github') });
        return headerOf(res.okResponse?.headers, 'x-github-token') === FILE_SECRET_2;
      },
      { timeoutMs: 10_000, intervalMs: 100, what: 'the rotated credential' },
    );
  });

  it('denies with 503 when the credential cannot be resolved, naming no secret', async () => {
    const res = await client.check({ path: '/open/x', contextExtensions: target('broken') });
    expect(deniedStatus(res)).toBe(503);
    const body = JSON.parse(res.deniedResponse?.body ?? '{}') as Record<string, unknown>;
    expect(body['error']).toBe('ERR_CREDENTIAL_UNAVAILABLE');
  });

  it('keeps every secret out of logs and status', () => {
    const all = logLines.join('') + JSON.stringify(server.credentials.status());
    for (const secret of [ENV_SECRET, FILE_SECRET_1, FILE_SECRET_2]) expect(all).not.toContain(secret);
    expect(all).toContain('CHAPERONE_TEST_UNSET_VARIABLE'); // the reference is named, so the operator can fix it
  });

  it('refuses an inline secret in the configuration without echoing it', async () => {
    const inline = `sk_inline_${'z'.repeat(20)}`;
    const err = await startAuthzServer({
      address: '127.0.0.1:0',
      policy: { dir, entrypoint: 'test/creds/decision' },
      logger: pino({ level: 'silent' }),
      credentials: { x: [{ header: 'x-api-key', value: inline }] },
    }).then(
      () => null,
      (e: unknown) => e as Error,
    );
    expect(err?.message).toMatch(/must be a reference/);
    expect(err?.message).not.toContain(inline);
  });
});
