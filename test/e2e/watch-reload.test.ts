// Hot reload under `chaperone up --config`, end to end through the real watchers of the real process:
// files in a temporary policy directory are edited as an operator edits them (a valid change is served
// through Envoy; a broken file is reported in /status and the log with its file and line while the last
// good policy keeps serving), and the config lives in a Kubernetes ConfigMap layout (`..data` swapped by
// updateConfigMap): a new target is served, and an edit to a restart-only section is reported while its
// running value stays in force.
import { cp, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../lib/tools.ts';
import { updateConfigMap } from '../support/configmap.ts';
import {
  apiFetch,
  devGatewayYaml,
  devToken,
  type GatewayPorts,
  type GatewayProcess,
  gatewayPorts,
  startGatewayProcess,
} from '../support/gateway-process.ts';
import { waitFor } from '../support/wait.ts';

let gw: GatewayProcess;
let ports: GatewayPorts;
let policyDir: string;
const tokens: Record<string, string> = {};

const EXTRA_TARGET = `  - name: extra
    upstream: http://127.0.0.1:PORT
    match:
      path_prefix: /extra
`;

function yaml(p: GatewayPorts, o: { extraTarget?: boolean; admins?: string } = {}): string {
  return devGatewayYaml(p, o.extraTarget ? EXTRA_TARGET.replace('PORT', String(p.demo)) : '')
    .replace(`dir: ${join(PROJECT_ROOT, 'policies')}`, `dir: ${policyDir}`)
    .replace('admins: [security]', `admins: [${o.admins ?? 'security'}]`);
}

interface Status {
  authz: { policy_revision: string | null; policy_error: string | null };
  xds: { config: { version: string; restart_needed: { section: string; line: number | null }[] } };
}

async function status(): Promise<Status> {
  const res = await apiFetch(gw, tokens['carol']!, '/status');
  expect(res.status).toBe(200);
  return (await res.json()) as Status;
}

async function egress(path: string, user?: string): Promise<number> {
  const res = await fetch(`${gw.egress}${path}`, {
    headers: user ? { authorization: `Bearer ${tokens[user]}` } : {},
  });
  await res.body?.cancel();
  return res.status;
}

beforeAll(async () => {
  policyDir = await mkdtemp(join(tmpdir(), 'chaperone-watch-policy-'));
  await cp(join(PROJECT_ROOT, 'policies'), policyDir, { recursive: true });
  ports = await gatewayPorts();
  gw = await startGatewayProcess({ ports, yaml: (p) => yaml(p), configMap: true });
  for (const u of ['alice', 'bob', 'carol']) tokens[u] = await devToken(gw, u);
}, 120_000);

afterAll(async () => {
  await gw?.cleanup();
  await rm(policyDir, { recursive: true, force: true });
});

describe('policy edits under chaperone up --config', () => {
  it('serves a valid change', async () => {
    expect(await egress('/demo/items', 'bob')).toBe(403);
    const before = (await status()).authz.policy_revision;
    const dataFile = join(policyDir, 'chaperone', 'targets', 'data.json');
    const data = JSON.parse(await readFile(dataFile, 'utf8'));
    data.demo.rules[0].groups.push('contractors');
    // As an editor saves: a temporary file renamed over the original.
    await writeFile(`${dataFile}.tmp`, JSON.stringify(data, null, 2));
    await rename(`${dataFile}.tmp`, dataFile);
    await waitFor(async () => (await egress('/demo/items', 'bob')) === 200, {
      what: 'bob allowed by the edited policy',
      timeoutMs: 60_000,
      intervalMs: 200,
    });
    expect((await status()).authz.policy_revision).not.toBe(before);
  }, 90_000);

  it('reports a broken file with its line in /status and the log, and keeps serving the last good', async () => {
    const revision = (await status()).authz.policy_revision;
    const broken = join(policyDir, 'chaperone', 'authz', 'broken.rego');
    await writeFile(broken, 'package chaperone.authz\n\nbroken := 1 +* 2\n\nfine := 3\n');
    await waitFor(async () => /broken\.rego:3/.test((await status()).authz.policy_error ?? ''), {
      what: 'the policy error in /status',
      timeoutMs: 60_000,
      intervalMs: 200,
    });
    expect(gw.output()).toMatch(/"file":"[^"]*broken\.rego","line":3/);
    const s = await status();
    expect(s.authz.policy_revision).toBe(revision);
    expect(await egress('/demo/items', 'bob')).toBe(200);
    await rm(broken);
    await waitFor(async () => (await status()).authz.policy_error === null, {
      what: 'the error cleared once the file is gone',
      timeoutMs: 60_000,
      intervalMs: 200,
    });
  }, 150_000);
});

describe('a config in a ConfigMap volume', () => {
  const configDir = () => join(gw.dir, 'config');

  it('serves an update that adds a target (the ..data symlink swapped)', async () => {
    expect(await egress('/extra/items', 'alice')).toBe(404); // no route yet
    const version = (await status()).xds.config.version;
    await updateConfigMap(configDir(), { 'chaperone.yaml': yaml(ports, { extraTarget: true }) });
    await waitFor(async () => (await egress('/extra/items', 'alice')) !== 404, {
      what: 'the new target routed by Envoy',
      timeoutMs: 30_000,
      intervalMs: 200,
    });
    const s = await status();
    expect(s.xds.config.version).not.toBe(version);
    expect(s.xds.config.restart_needed).toEqual([]);
  }, 60_000);

  it('reports an edit to a restart-only section and keeps its running value', async () => {
    await updateConfigMap(configDir(), {
      'chaperone.yaml': yaml(ports, { extraTarget: true, admins: 'nobody-yet' }),
    });
    await waitFor(async () => (await status()).xds.config.restart_needed.length > 0, {
      what: 'restart_needed in /status',
      timeoutMs: 30_000,
      intervalMs: 200,
    });
    const line = yaml(ports).split('\n').indexOf('access:') + 1;
    expect((await status()).xds.config.restart_needed).toEqual([{ section: 'access', line }]);
    expect(gw.output()).toContain(`access (line ${line}) changed; applied at the next restart`);
    // carol is still an admin: the running access section is in force until a restart.
    expect((await apiFetch(gw, tokens['carol']!, '/status')).status).toBe(200);
    // The rest of the same edit was applied: the extra target still routes.
    expect(await egress('/extra/items', 'alice')).not.toBe(404);
  }, 60_000);
});
