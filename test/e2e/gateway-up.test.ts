// `chaperone up --dev` as a user runs it (the real CLI in a child process): the control plane feeds a
// real Envoy over ADS, the authz server decides with the shipped policy library and dev tokens, the
// audit trail records decisions, config edits are pushed (or rejected with file:line while the last
// good config keeps serving), and SIGTERM stops everything cleanly.
import { execFile, spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminGet } from '../../lib/envoy-admin.ts';
import { PROJECT_ROOT } from '../../lib/tools.ts';
import { authzClient, checkDemoWith, deniedStatus } from '../support/authz-client.ts';
import { runCli, startAuthzServe } from '../support/cli.ts';
import {
  devGatewayYaml,
  type GatewayProcess,
  gatewayPorts,
  gatewaySockets,
  startGatewayProcess,
} from '../support/gateway-process.ts';
import { waitFor } from '../support/wait.ts';

let gw: GatewayProcess;

/** An agent token for alice, through the CLI (RFC 8693 exchange at the HTTP API). */
async function mintAgentToken(name: string, targets: string): Promise<string> {
  const res = await runCli([
    'agent',
    'token',
    '--name',
    name,
    '--targets',
    targets,
    '--api',
    gw.api,
    '--token',
    tokens['alice']!,
  ]);
  expect(res.code, res.out).toBe(0);
  return res.out.trim().split('\n').at(-1)!;
}

const tokens: Record<string, string> = {};

async function devToken(user: string): Promise<string> {
  const res = await fetch(`${gw.api}/dev/token?user=${user}`);
  const body = (await res.json()) as { token: string };
  expect(res.status).toBe(200);
  return body.token;
}

/** The HTTP API as carol, who holds the auditor and admin roles (the audit trail and /status need them). */
function api(path: string, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  headers.set('authorization', `Bearer ${tokens['carol']}`);
  return fetch(`${gw.api}${path}`, { ...init, headers });
}

function egress(path: string, init: RequestInit & { token?: string } = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  if (init.token) headers.set('authorization', `Bearer ${init.token}`);
  return fetch(`${gw.egress}${path}`, { ...init, headers });
}

beforeAll(async () => {
  gw = await startGatewayProcess();
  for (const u of ['alice', 'bob', 'carol']) tokens[u] = await devToken(u);
}, 120_000);

afterAll(async () => {
  await gw?.cleanup();
});

describe('chaperone up --dev', () => {
  it('prints a status line per component', () => {
    for (const c of [
      'dev issuer',
      'demo upstream',
      'audit',
      'authz server',
      'control plane',
      'envoy',
      'http api',
    ]) {
      expect(gw.output()).toContain(`✓ ${c}`);
    }
  });

  it('lets engineering read the demo API through Envoy, with identity injected and the token removed', async () => {
    const res = await egress('/demo/items', { token: tokens['alice'] });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { seen: Record<string, unknown> };
    expect(body.seen['user']).toBe('alice');
    expect(body.seen['groups']).toBe('engineering');
    expect(body.seen['authorization_header_present']).toBe(false);
    expect(res.headers.get('x-chaperone-decision-id')).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('denies contractors (403) and anonymous callers (401 JSON)', async () => {
    const bob = await egress('/demo/items', { token: tokens['bob'] });
    expect(bob.status).toBe(403);
    const anon = await egress('/demo/items');
    expect(anon.status).toBe(401);
    expect(anon.headers.get('content-type')).toContain('application/json');
  });

  it('reports health, readiness and an acknowledged xDS snapshot', async () => {
    expect((await fetch(`${gw.api}/healthz`)).status).toBe(200);
    await waitFor(async () => (await fetch(`${gw.api}/readyz`)).status === 200, {
      what: '/readyz',
      timeoutMs: 10_000,
    });
    const status = (await (await api('/status')).json()) as {
      xds: { version: string; current_streams: number; streams: { acked: Record<string, string | null> }[] };
      authz: { metrics: { total: number } };
    };
    expect(status.xds.streams).toHaveLength(1);
    expect(status.xds.current_streams).toBe(1);
    expect(Object.keys(status.xds.streams[0]!.acked).sort()).toEqual(['CDS', 'EDS', 'LDS', 'RDS']);
    expect(status.authz.metrics.total).toBeGreaterThan(0);
  });

  it('runs the generated listener in Envoy as validated (hardening included)', async () => {
    const dump = (
      await adminGet(`unix:${gatewaySockets(gw).admin}`, '/config_dump?resource=dynamic_listeners')
    ).body;
    // remove_on_match is newer than the bundled API protos (lib/envoy-proto.ts adds it): Envoy must
    // decode it as the same field, not as an unknown one.
    expect(dump).toMatch(/"remove_on_match":\s*\{\s*"key_matcher":\s*\{\s*"prefix":\s*"x-chaperone-"/);
    for (const field of [
      '"normalize_path": true',
      '"merge_slashes": true',
      '"path_with_escaped_slashes_action": "REJECT_REQUEST"',
    ]) {
      expect(dump).toContain(field);
    }
  });

  it('records each decision in the audit trail with an intact hash chain', async () => {
    const res = await egress('/demo/items', { token: tokens['alice'] });
    const decisionId = res.headers.get('x-chaperone-decision-id');
    await waitFor(
      async () => {
        const page = (await (await api(`/audit/decisions?user=alice&limit=5`)).json()) as {
          rows: { decision_id: string }[];
        };
        return page.rows.some((r) => r.decision_id === decisionId);
      },
      { what: 'the decision in the store', timeoutMs: 10_000 },
    );
    // Envoy's access-log entry for the same request arrives over ALS and joins on request id.
    const page = (await (await api(`/audit/decisions?user=alice&limit=5`)).json()) as {
      rows: { decision_id: string; request_id: string }[];
    };
    const row = page.rows.find((r) => r.decision_id === decisionId)!;
    await waitFor(
      async () => {
        const logs = (await (await api(`/audit/access-logs?request_id=${row.request_id}`)).json()) as {
          rows: { decision_id: string; response_code: number }[];
        };
        return logs.rows.some((l) => l.decision_id === decisionId && l.response_code === 200);
      },
      { what: 'the access-log entry', timeoutMs: 15_000 },
    );
    // The CLI reads the same trail.
    const cli = await runCli([
      'audit',
      'query',
      '--api',
      gw.api,
      '--token',
      tokens['carol']!,
      '--user',
      'alice',
      '--json',
      '--since',
      '1h',
    ]);
    expect(cli.code, cli.out).toBe(0);
    const lines = cli.out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { decision_id: string; subject: string });
    expect(lines.some((l) => l.decision_id === decisionId)).toBe(true);
    expect(lines.every((l) => l.subject === 'alice')).toBe(true);
    const table = await runCli([
      'audit',
      'query',
      '--api',
      gw.api,
      '--decision',
      'deny',
      '--token',
      tokens['carol']!,
    ]);
    expect(table.out).toMatch(/TIME\s+USER\s+AGENT\s+TARGET\s+REQUEST\s+DECISION\s+TRACE\s+REASON/);
    expect(table.out).toContain('bob');
    const verify = (await (await api(`/audit/verify`)).json()) as { ok: boolean; count: number };
    expect(verify.ok).toBe(true);
    expect(verify.count).toBeGreaterThan(0);
  });

  it('holds a DELETE for security approval, then lets exactly that request through once', async () => {
    const first = await egress('/demo/items/1', { method: 'DELETE', token: tokens['alice'] });
    expect(first.status).toBe(403);
    const body = (await first.json()) as {
      error: string;
      approval_id: string;
      status_url: string;
      reviewers: string[];
    };
    expect(body.error).toBe('approval_required');
    expect(body.reviewers).toEqual(['security']);
    expect(body.status_url).toBe(`${gw.api}/approvals/status?id=${body.approval_id}`);

    const list = await runCli(['approvals', 'list', '--api', gw.api, '--token', tokens['carol']!]);
    expect(list.code, list.out).toBe(0);
    expect(list.out).toContain(`${body.approval_id}  alice  DELETE /demo/items/1`);

    const self = await runCli([
      'approvals',
      'approve',
      body.approval_id,
      '--api',
      gw.api,
      '--token',
      tokens['alice']!,
    ]);
    expect(self.code).toBe(3);
    expect(self.out).toMatch(/forbidden|self_approval/);
    const bob = await runCli([
      'approvals',
      'approve',
      body.approval_id,
      '--api',
      gw.api,
      '--token',
      tokens['bob']!,
    ]);
    expect(bob.code).toBe(3);
    expect(bob.out).toContain('forbidden');

    // A different request is not covered by the pending approval.
    expect((await egress('/demo/items/2', { method: 'DELETE', token: tokens['alice'] })).status).toBe(403);

    const ok = await runCli([
      'approvals',
      'approve',
      body.approval_id,
      '--api',
      gw.api,
      '--token',
      tokens['carol']!,
    ]);
    expect(ok.code, ok.out).toBe(0);
    const status = await fetch(body.status_url, { headers: { authorization: `Bearer ${tokens['alice']}` } });
    expect(((await status.json()) as { status: string; decided_by: string }).decided_by).toBe('carol');

    expect((await egress('/demo/items/1', { method: 'DELETE', token: tokens['alice'] })).status).toBe(200);
    // One-time grant: the same request again needs a new approval.
    const again = await egress('/demo/items/1', { method: 'DELETE', token: tokens['alice'] });
    expect(again.status).toBe(403);
    expect(((await again.json()) as { approval_id: string }).approval_id).not.toBe(body.approval_id);

    await waitFor(
      async () => {
        const page = (await (await api(`/audit/decisions?user=alice&limit=20`)).json()) as {
          rows: { decision: string; reason: string; method: string }[];
        };
        return page.rows.some(
          (r) => r.method === 'DELETE' && r.decision === 'allow' && r.reason.includes('approved by carol'),
        );
      },
      { what: 'the approved request in the audit trail' },
    );
  });

  it('gives an agent its own short-lived identity tied to the user, lists it, and revokes it', async () => {
    const minted = await runCli([
      'agent',
      'token',
      '--name',
      'report-bot',
      '--targets',
      'demo',
      '--ttl',
      '15m',
      '--api',
      gw.api,
      '--token',
      tokens['alice']!,
    ]);
    expect(minted.code, minted.out).toBe(0);
    const agentToken = minted.out.trim().split('\n').at(-1)!;
    const [, payload] = agentToken.split('.');
    const claims = JSON.parse(Buffer.from(payload!, 'base64url').toString()) as Record<string, any>;
    expect(claims['sub']).toBe('alice');
    expect(claims['act']).toMatchObject({ agent: 'report-bot' });
    expect(claims['iss']).toBe(gw.api);

    const res = await egress('/demo/items', { token: agentToken });
    expect(res.status).toBe(200);
    const seen = ((await res.json()) as { seen: Record<string, unknown> }).seen;
    expect(seen['user']).toBe('alice');
    expect(seen['authorization_header_present']).toBe(false);

    // Limited to its targets, whatever alice herself may do.
    const ghToken = await mintAgentToken('gh-bot', 'github');
    const refused = await egress('/demo/items', { token: ghToken });
    expect(refused.status).toBe(403);
    expect(((await refused.json()) as { reason: string }).reason).toBe(
      'agent token is not valid for target demo',
    );

    const inventory = await runCli([
      'agents',
      'list',
      '--json',
      '--api',
      gw.api,
      '--token',
      tokens['alice']!,
    ]);
    const rows = JSON.parse(inventory.out) as {
      agent: string;
      user: string;
      requests: number;
      denied: number;
      targets_used: string[];
    }[];
    expect(rows.find((r) => r.agent === 'report-bot')).toMatchObject({
      user: 'alice',
      requests: 1,
      denied: 0,
      targets_used: ['demo'],
    });
    expect(rows.find((r) => r.agent === 'gh-bot')).toMatchObject({ requests: 1, denied: 1 });

    // bob may not stop alice's agents; carol (security) may stop all of them at once.
    const bob = await runCli([
      'agents',
      'revoke',
      '--user',
      'alice',
      '--api',
      gw.api,
      '--token',
      tokens['bob']!,
    ]);
    expect(bob.code).toBe(3);
    const kill = await runCli([
      'agents',
      'revoke',
      '--user',
      'alice',
      '--api',
      gw.api,
      '--token',
      tokens['carol']!,
    ]);
    expect(kill.code, kill.out).toBe(0);
    expect(kill.out).toContain('revoked 2 token(s)');
    const after = await egress('/demo/items', { token: agentToken });
    expect(after.status).toBe(401);
    expect(((await after.json()) as { code: string }).code).toBe('ERR_TOKEN_REVOKED');
    // alice herself is not affected by the kill switch of her agents.
    expect((await egress('/demo/items', { token: tokens['alice'] })).status).toBe(200);
    // But the token she held when it was pulled mints no new agent: she signs in again first.
    const stale = await runCli([
      'agent',
      'token',
      '--name',
      'late-bot',
      '--api',
      gw.api,
      '--token',
      tokens['alice']!,
    ]);
    expect(stale.code).not.toBe(0);
    expect(stale.out).toContain('invalid_grant');
    await waitFor(
      async () => {
        tokens['alice'] = await devToken('alice');
        const fresh = await runCli([
          'agent',
          'token',
          '--name',
          'late-bot',
          '--api',
          gw.api,
          '--token',
          tokens['alice'],
        ]);
        return fresh.code === 0;
      },
      { what: 'a token alice signed in for after the kill switch to mint agents again', timeoutMs: 10_000 },
    );
  });

  it('propagates a revocation to a standalone authz server within 5 seconds, and audits it', async () => {
    const agentToken = await mintAgentToken('fleet-bot', 'demo');
    // On a Unix socket: TCP would need the data-plane CA (test/security/dataplane-mtls.test.ts).
    const socket = `unix:${join(gw.dir, 'standalone-authz.sock')}`;
    const authz = startAuthzServe(socket, [
      '--issuer',
      `http://127.0.0.1:${gw.ports.idp}`,
      '--audience',
      'chaperone',
      '--control-plane',
      gw.api,
    ]);
    const client = authzClient(socket);
    try {
      const check = () => checkDemoWith(client, agentToken);
      await waitFor(async () => (await check()).status.code === 0, {
        what: 'the standalone authz server to allow the agent',
        timeoutMs: 60_000,
      });
      const revoke = await runCli([
        'agents',
        'revoke',
        '--agent',
        'fleet-bot',
        '--api',
        gw.api,
        '--token',
        tokens['alice']!,
      ]);
      expect(revoke.code, revoke.out).toBe(0);
      const started = Date.now();
      await waitFor(async () => deniedStatus(await check()) === 401, {
        what: 'the revocation to arrive',
        timeoutMs: 5_000,
        intervalMs: 100,
      });
      expect(Date.now() - started).toBeLessThan(5_000);
    } finally {
      client.close();
      authz.stop();
    }
    await waitFor(
      async () => {
        const { rows } = (await (await api(`/audit/decisions?decision=admin&limit=20`)).json()) as {
          rows: { method: string; subject: string; reason: string }[];
        };
        return rows.some(
          (r) =>
            r.method === 'REVOKE_AGENTS' && r.subject === 'alice' && r.reason.includes('agent fleet-bot'),
        );
      },
      { what: 'the revocation in the audit trail' },
    );
  });

  it('chaperone login: authorization code + PKCE in a browser, then commands use the cached token', async () => {
    const cache = join(gw.dir, 'token-cache.json');
    const env = { ...process.env, CHAPERONE_TOKEN_CACHE: cache, CHAPERONE_TOKEN: '' };
    delete (env as Record<string, string | undefined>)['CHAPERONE_TOKEN'];
    const child = spawn(
      process.execPath,
      [
        join(PROJECT_ROOT, 'cli/bin/chaperone.js'),
        'login',
        '--issuer',
        `http://127.0.0.1:${gw.ports.idp}`,
        '--login-hint',
        'alice',
        '--no-browser',
      ],
      { env, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let err = '';
    child.stderr.on('data', (b: Buffer) => {
      err += b.toString();
    });
    const exited = new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
    await waitFor(() => /Sign in at:\n\s+(\S+)/.test(err), { what: 'the sign-in URL', timeoutMs: 30_000 });
    // The browser: follow the provider's redirects (with its cookies) to the CLI's loopback callback.
    let url = new URL(/Sign in at:\n\s+(\S+)/.exec(err)![1]!);
    const cookies = new Map<string, string>();
    for (let hop = 0; hop < 12 && url.pathname !== '/callback'; hop++) {
      const res = await fetch(url, {
        redirect: 'manual',
        headers: { cookie: [...cookies].map(([k, v]) => `${k}=${v}`).join('; ') },
      });
      for (const c of res.headers.getSetCookie()) {
        const [pair] = c.split(';');
        const i = pair!.indexOf('=');
        cookies.set(pair!.slice(0, i), pair!.slice(i + 1));
      }
      url = new URL(res.headers.get('location')!, url);
    }
    expect((await fetch(url)).status).toBe(200);
    expect(await exited, err).toBe(0);
    expect(err).toContain('logged in as alice');

    const viaCache = await new Promise<{ code: number; out: string }>((resolve) =>
      execFile(
        process.execPath,
        [
          join(PROJECT_ROOT, 'cli/bin/chaperone.js'),
          'agent',
          'token',
          '--name',
          'cached-bot',
          '--api',
          gw.api,
        ],
        { env, timeout: 60_000 },
        (e, stdout, stderr) => resolve({ code: e ? Number(e.code ?? 1) : 0, out: `${stdout}${stderr}` }),
      ),
    );
    expect(viaCache.code, viaCache.out).toBe(0);
    const claims = JSON.parse(Buffer.from(viaCache.out.trim().split('.')[1]!, 'base64url').toString()) as {
      sub: string;
    };
    expect(claims.sub).toBe('alice');
  });

  it('rotates the signing key (security only) while tokens signed before keep working', async () => {
    const oldToken = await mintAgentToken('rotation-bot', 'demo');
    const denied = await runCli(['keys', 'rotate', '--api', gw.api, '--token', tokens['alice']!]);
    expect(denied.code).toBe(3);
    const rotated = await runCli(['keys', 'rotate', '--api', gw.api, '--token', tokens['carol']!]);
    expect(rotated.code, rotated.out).toBe(0);
    const newToken = await mintAgentToken('rotation-bot-2', 'demo');
    const kid = (t: string) =>
      (JSON.parse(Buffer.from(t.split('.')[0]!, 'base64url').toString()) as { kid: string }).kid;
    expect(kid(newToken)).not.toBe(kid(oldToken));
    // The authz server learns the new key on the unknown kid (one JWKS refresh) and still has the old one.
    expect((await egress('/demo/items', { token: newToken })).status).toBe(200);
    expect((await egress('/demo/items', { token: oldToken })).status).toBe(200);
  });

  it('pushes a config edit to Envoy, and keeps serving the last good config when an edit is broken', async () => {
    const original = await readFile(gw.configPath, 'utf8');
    // A second route to the same demo upstream under /extra.
    const extra = `  - name: extra\n    upstream: http://127.0.0.1:${gw.ports.demo}\n    match:\n      path_prefix: /extra\n`;
    expect((await egress('/extra/x', { token: tokens['alice'] })).status).toBe(404);
    const edited = Date.now();
    await writeFile(gw.configPath, devGatewayYaml(gw.ports, extra));
    // The shipped library has no rules for target "extra": Envoy routes it (so it is no longer a 404)
    // and the policy denies it.
    await waitFor(async () => (await egress('/extra/x', { token: tokens['alice'] })).status === 403, {
      what: 'the new route',
      timeoutMs: 15_000,
      intervalMs: 20,
    });
    // File watch (200 ms debounce) → translate → ADS push → Envoy ACK → served: within a second.
    expect(Date.now() - edited).toBeLessThan(1_000);

    await writeFile(gw.configPath, `${original}\nlisteners_typo: true\n`);
    await waitFor(
      async () => {
        const s = (await (await api('/status')).json()) as {
          xds: { config: { ok: boolean; errors: string[] } };
        };
        return !s.xds.config.ok && s.xds.config.errors.join('\n').includes('chaperone.yaml:');
      },
      { what: 'the broken config to be reported', timeoutMs: 15_000 },
    );
    expect((await egress('/demo/items', { token: tokens['alice'] })).status).toBe(200);
    expect((await egress('/extra/x', { token: tokens['alice'] })).status).toBe(403);
  });

  it('refuses to start when a port is taken, naming the component', async () => {
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
    const taken = (blocker.address() as { port: number }).port;
    const other = await startGatewayProcess({
      wait: false,
      ports: { ...(await gatewayPorts()), api: taken },
    });
    const code = await other.exited;
    blocker.close();
    await other.cleanup();
    expect(code).toBe(2);
    expect(other.output()).toMatch(/HTTP API: 127\.0\.0\.1:\d+ is already in use/);
  });

  it('stops cleanly on SIGTERM', async () => {
    const code = await gw.stop();
    expect(code).toBe(0);
    expect(gw.output()).toContain('chaperone: stopped');
  });
});
