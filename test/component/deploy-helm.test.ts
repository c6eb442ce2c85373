// The Helm chart (deploy/helm/chaperone) as a cluster would get it: `helm lint`, `helm template` with
// the smallest working values (ci/minimal-values.yaml) and with a fleet (ci/fleet-values.yaml), every rendered object validated by
// kubeconform against the Kubernetes schemas (strict: unknown fields are errors) for the oldest and
// newest Kubernetes the chart supports, the chaperone.yaml it renders accepted by Chaperone's own
// config loader, and the security properties checked on the objects: agents reach only the egress
// listener, the control-plane ports never leave the pod, credentials come from Secret references.
import { execFile } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import yaml from 'js-yaml';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../config/load-config.ts';
import { locateTool, PROJECT_ROOT, TOOLS_DIR } from '../../lib/tools.ts';

const CHART = join(PROJECT_ROOT, 'deploy', 'helm', 'chaperone');
const SCHEMAS = join(TOOLS_DIR, 'kubernetes-json-schema');

/** A rendered Kubernetes object, checked field by field. */
type K8sObject = Record<string, any>;

function run(
  cmd: string,
  args: string[],
  stdin?: string,
): Promise<{ code: number; stdout: string; out: string }> {
  return new Promise((resolve) => {
    const child = execFile(
      cmd,
      args,
      { maxBuffer: 16 * 1024 * 1024, timeout: 60_000 },
      (err, stdout, stderr) =>
        resolve({ code: err ? Number(err.code ?? 1) : 0, stdout, out: `${stdout}${stderr}` }),
    );
    if (stdin !== undefined) child.stdin?.end(stdin);
  });
}

async function render(args: string[] = []): Promise<{ text: string; objects: K8sObject[] }> {
  const res = await run(locateTool('helm'), ['template', 'demo', CHART, '--namespace', 'agents', ...args]);
  expect(res.code, res.out).toBe(0);
  const objects = yaml.loadAll(res.stdout).filter((o): o is K8sObject => o !== null && typeof o === 'object');
  return { text: res.stdout, objects };
}

/** The Kubernetes versions whose schemas `npm run tools -- --test` installed (v1.29.0-standalone-strict → 1.29.0). */
function kubernetesVersions(): string[] {
  return readdirSync(SCHEMAS)
    .map((d) => /^v(\d+\.\d+\.\d+)-standalone-strict$/.exec(d)?.[1])
    .filter((v): v is string => v !== undefined);
}

async function kubeconform(manifests: string, version: string) {
  return run(
    locateTool('kubeconform'),
    [
      '-strict',
      '-summary',
      '-output',
      'json',
      '-kubernetes-version',
      version,
      '-schema-location',
      `${SCHEMAS}/{{ .NormalizedKubernetesVersion }}-standalone{{ .StrictSuffix }}/{{ .ResourceKind }}{{ .KindSuffix }}.json`,
      '-',
    ],
    manifests,
  );
}

const byKindName = (objects: K8sObject[], kind: string, name: string) => {
  const found = objects.find((o) => o['kind'] === kind && o['metadata']?.['name'] === name);
  if (!found) throw new Error(`no ${kind} ${name} in the rendering`);
  return found;
};

const VALUE_SETS = [
  { name: 'minimal values (ci/minimal-values.yaml)', args: ['-f', join(CHART, 'ci', 'minimal-values.yaml')] },
  { name: 'a fleet (ci/fleet-values.yaml)', args: ['-f', join(CHART, 'ci', 'fleet-values.yaml')] },
];

describe('Helm chart', () => {
  const rendered = new Map<string, { text: string; objects: K8sObject[] }>();
  beforeAll(async () => {
    for (const set of VALUE_SETS) rendered.set(set.name, await render(set.args));
  });

  it('passes helm lint --strict', async () => {
    const res = await run(locateTool('helm'), [
      'lint',
      '--strict',
      CHART,
      '-f',
      join(CHART, 'ci', 'fleet-values.yaml'),
    ]);
    expect(res.code, res.out).toBe(0);
  });

  it('has schemas for the oldest and newest Kubernetes it supports', () => {
    expect(kubernetesVersions().length).toBeGreaterThanOrEqual(2);
  });

  for (const set of VALUE_SETS) {
    it(`renders objects kubeconform accepts (strict) with ${set.name}`, async () => {
      const { text, objects } = rendered.get(set.name)!;
      for (const version of kubernetesVersions()) {
        const res = await kubeconform(text, version);
        expect(res.code, `Kubernetes ${version}:\n${res.out}`).toBe(0);
        const summary = JSON.parse(res.stdout) as { summary: Record<string, number> };
        expect(summary.summary, `Kubernetes ${version}`).toEqual({
          valid: objects.length,
          invalid: 0,
          errors: 0,
          skipped: 0,
        });
      }
    });

    it(`renders a chaperone.yaml that Chaperone accepts, with ${set.name}`, () => {
      const { objects } = rendered.get(set.name)!;
      const text = byKindName(objects, 'ConfigMap', 'demo-chaperone')['data']['chaperone.yaml'] as string;
      const config = parseConfig(text, '/etc/chaperone/config/chaperone.yaml');
      // The control plane's gRPC (xDS + access logs) and the pod's own authz server stay on loopback.
      expect(config.controlPlane.xdsAddress).toBe('127.0.0.1:18000');
      expect(config.authz.addresses[0]).toBe('127.0.0.1:9191');
      expect(config.audit.spoolDir).toBe('/var/lib/chaperone/spool');
    });

    it(`runs non-root, read-only, with health probes and Secret references, with ${set.name}`, () => {
      const { objects, text } = rendered.get(set.name)!;
      const workloads = objects.filter((o) => o['kind'] === 'Deployment');
      expect(workloads.length).toBeGreaterThan(0);
      for (const d of workloads) {
        const pod = d['spec']['template']['spec'];
        expect(pod['securityContext']['runAsNonRoot']).toBe(true);
        expect(pod['automountServiceAccountToken']).toBe(false);
        for (const c of pod['containers']) {
          expect(c['securityContext']).toMatchObject({
            allowPrivilegeEscalation: false,
            readOnlyRootFilesystem: true,
            capabilities: { drop: ['ALL'] },
          });
          for (const probe of ['startupProbe', 'livenessProbe', 'readinessProbe'])
            expect(c[probe]).toBeDefined();
          for (const e of c['env'] ?? [])
            expect(e['valueFrom']?.['secretKeyRef'] ?? e['value']).toBeDefined();
        }
      }
      const gateway = byKindName(objects, 'Deployment', 'demo-chaperone-gateway')['spec']['template']['spec'];
      const c = gateway['containers'][0];
      expect(c['livenessProbe']['httpGet']['path']).toBe('/healthz');
      expect(c['readinessProbe']['httpGet']['path']).toBe('/readyz');
      expect(c['ports'].map((p: K8sObject) => p['containerPort']).sort()).toEqual([10000, 8181]);
      // No Secret is rendered: credentials stay in Secrets the operator manages.
      expect(objects.filter((o) => o['kind'] === 'Secret')).toEqual([]);
      expect(text).not.toMatch(/postgres:\/\//);
      expect(byKindName(objects, 'PodDisruptionBudget', 'demo-chaperone-gateway')).toBeDefined();
    });
  }

  it('keeps agents off the control-plane ports: only Envoy reaches authz, only admins the API', () => {
    const { objects } = rendered.get('a fleet (ci/fleet-values.yaml)')!;
    const gw = byKindName(objects, 'NetworkPolicy', 'demo-chaperone-gateway')['spec'];
    expect(gw['policyTypes']).toEqual(['Ingress']);
    const rules = gw['ingress'] as K8sObject[];
    expect(rules.map((r) => r['ports'].map((p: K8sObject) => p['port']))).toEqual([[10000], [8181]]);
    expect(rules[0]!['from']).toEqual([
      { namespaceSelector: {}, podSelector: { matchLabels: { 'chaperone/agent': 'true' } } },
    ]);
    // The API: admins and the authz replicas (they fetch the agent-token keys), nobody else.
    expect(rules[1]!['from']).toEqual([
      { podSelector: { matchLabels: { 'chaperone/admin': 'true' } } },
      {
        podSelector: {
          matchLabels: {
            'app.kubernetes.io/name': 'chaperone',
            'app.kubernetes.io/instance': 'demo',
            'app.kubernetes.io/component': 'authz',
          },
        },
      },
    ]);
    const authz = byKindName(objects, 'NetworkPolicy', 'demo-chaperone-authz')['spec'];
    expect(authz['ingress']).toEqual([
      {
        from: [
          {
            podSelector: {
              matchLabels: {
                'app.kubernetes.io/name': 'chaperone',
                'app.kubernetes.io/instance': 'demo',
                'app.kubernetes.io/component': 'gateway',
              },
            },
          },
        ],
        ports: [{ port: 9191, protocol: 'TCP' }],
      },
    ]);
    // Envoy finds every authz replica through the headless Service.
    expect(byKindName(objects, 'Service', 'demo-chaperone-authz')['spec']['clusterIP']).toBe('None');
    const config = parseConfig(
      byKindName(objects, 'ConfigMap', 'demo-chaperone')['data']['chaperone.yaml'] as string,
      '/etc/chaperone/config/chaperone.yaml',
    );
    expect(config.authz.addresses).toEqual([
      '127.0.0.1:9191',
      'demo-chaperone-authz.agents.svc.cluster.local:9191',
    ]);
  });

  it.each([
    {
      why: 'a release without an OIDC issuer (the chart defaults)',
      set: [],
      message: 'config.identity.issuers is empty',
    },
    {
      why: 'more than one gateway without PostgreSQL',
      set: ['--set', 'gateway.replicas=2'],
      message: 'needs database.existingSecret',
    },
    {
      why: 'authz replicas without PostgreSQL',
      set: ['--set', 'authz.replicas=1'],
      message: 'needs database.existingSecret',
    },
    {
      why: 'a NetworkPolicy that would let everyone reach the listener',
      set: ['--set', 'networkPolicy.agents=null'],
      message: 'networkPolicy.agents is empty',
    },
  ])('refuses $why', async ({ set, message }) => {
    const minimal = set.length > 0 ? ['-f', join(CHART, 'ci', 'minimal-values.yaml')] : [];
    const res = await run(locateTool('helm'), ['template', 'demo', CHART, ...minimal, ...set]);
    expect(res.code).not.toBe(0);
    expect(res.out).toContain(message);
  });
});
