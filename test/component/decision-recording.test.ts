// Decisions are recorded before the answer: the recorder sees every decision with its verdict, and an
// ALLOW that cannot be recorded durably becomes a 503 deny (no unaudited access), while a deny is
// still returned as the policy decided.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AuthzServer, startAuthzServer } from '../../authz-server/server.ts';
import type { DecisionEvent } from '../../contracts/decision.ts';
import { type AuthzClient, authzClient, deniedStatus } from '../support/authz-client.ts';

let dir: string;
let server: AuthzServer;
let client: AuthzClient;
let failing = false;
const recorded: DecisionEvent[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'chaperone-record-'));
  await writeFile(
    join(dir, 'p.rego'),
    'package t\n\ndefault decision := false\n\ndecision if input.parsed_path[0] == "ok"\n',
  );
  server = await startAuthzServer({
    address: '127.0.0.1:0',
    policy: { dir, entrypoint: 't/decision' },
    logger: pino({ level: 'silent' }),
    recorder: {
      record: async (e) => {
        if (failing) throw new Error('disk full');
        recorded.push(e);
      },
    },
  });
  client = authzClient(server.address);
});

afterAll(async () => {
  client?.close();
  await server?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('decision recording', () => {
  it('records allow and deny with their verdicts and the request id Envoy logs', async () => {
    await client.check({ path: '/ok', headers: { 'x-request-id': 'rid-1' } });
    await client.check({ path: '/no', headers: { 'x-request-id': 'rid-2' } });
    expect(recorded.map((e) => [e.requestId, e.verdict.decision, e.path])).toEqual([
      ['rid-1', 'allow', '/ok'],
      ['rid-2', 'deny', '/no'],
    ]);
    expect(recorded[0]!.policyRevision).toMatch(/^[0-9a-f]{16}$/);
  });

  it('turns an unrecordable ALLOW into 503 ERR_AUDIT_UNAVAILABLE', async () => {
    failing = true;
    try {
      const res = await client.check({ path: '/ok' });
      expect(res.okResponse).toBeUndefined();
      expect(deniedStatus(res)).toBe(503);
      expect(JSON.parse(res.deniedResponse?.body ?? '{}').error).toBe('ERR_AUDIT_UNAVAILABLE');
      const deny = await client.check({ path: '/no' });
      expect(deniedStatus(deny)).toBe(403);
      expect(server.metrics.errors['ERR_AUDIT_UNAVAILABLE']).toBe(1);
    } finally {
      failing = false;
    }
  });
});
