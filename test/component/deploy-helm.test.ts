// The Helm chart (deploy/helm/chaperone) as a cluster would get it: `helm lint`, `helm template` with
// the smallest working values (ci/minimal-values.yaml) and with a fleet (ci/fleet-values.yaml), every rendered object validated by
// kubeconform against the Kubernetes schemas (strict: unknown fields are errors) for the oldest and
// newest Kubernetes the chart supports, the chaperone.yaml it renders accepted by Chaperone's own
// config loader, and the security properties checked on the objects: agents reach only the egress
// listener, the control-plane ports never leave the pod, credentials come from Secret references, the
// gateways and the authz replicas share one data-plane CA (test/component/deploy-authz-tls.test.ts starts
// a replica from these objects and calls it over mutual TLS).
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../config/load-config.ts';
import { locateTool, TOOLS_DIR } from '../../lib/tools.ts';
import { byKindName, CHART, type K8sObject, renderChart, run } from '../support/helm.ts';

const SCHEMAS = join(TOOLS_DIR, 'kubernetes-json-schema');

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

const VALUE_SETS = [
  { name: 'minimal values (ci/minimal-values.yaml)', args: ['-f', join(CHART, 'ci', 'minimal-values.yaml')] },
  { name: 'a fleet (ci/fleet-values.yaml)', args: ['-f', join(CHART, 'ci', 'fleet-values.yaml')] },
  {
    name: "a fleet with the operator's data-plane CA",
    args: ['-f', join(CHART, 'ci', 'fleet-values.yaml'), '--set', 'dataPlane.tls.existingSecret=fleet-ca'],
  },
];

describe('Helm chart', () => {
  const rendered = new Map<string, { text: string; objects: K8sObject[] }>();
  beforeAll(async () => {
    for (const set of VALUE_SETS) rendered.set(set.name, await renderChart(set.args));
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
      // The only Secret the chart may render is the data-plane CA it generates for authz replicas:
      // credentials and the database URL stay in Secrets the operator manages.
      const secrets = objects.filter((o) => o['kind'] === 'Secret').map((o) => o['metadata']['name']);
      expect(secrets).toEqual(
        set.name === 'a fleet (ci/fleet-values.yaml)' ? ['demo-chaperone-data-plane-ca'] : [],
      );
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
    { set: 'minimal values (ci/minimal-values.yaml)', secret: null },
    { set: 'a fleet (ci/fleet-values.yaml)', secret: 'demo-chaperone-data-plane-ca' },
    { set: "a fleet with the operator's data-plane CA", secret: 'fleet-ca' },
  ])('gives the gateways and the authz replicas one data-plane CA, with $set', ({ set, secret }) => {
    const { objects } = rendered.get(set)!;
    const podOf = (name: string) => byKindName(objects, 'Deployment', name)['spec']['template']['spec'];
    const caVolume = (pod: K8sObject) =>
      (pod['volumes'] as K8sObject[]).find((v) => v['name'] === 'data-plane-ca')?.['secret'];
    const config = parseConfig(
      byKindName(objects, 'ConfigMap', 'demo-chaperone')['data']['chaperone.yaml'] as string,
      '/etc/chaperone/config/chaperone.yaml',
    );
    if (!secret) {
      // One gateway, no replicas: its pod generates a CA of its own in its state volume.
      expect(caVolume(podOf('demo-chaperone-gateway'))).toBeUndefined();
      expect(config.dataPlane.tls.caCert).toBeNull();
      return;
    }
    const gateway = podOf('demo-chaperone-gateway');
    const authz = podOf('demo-chaperone-authz');
    for (const pod of [gateway, authz]) {
      expect(caVolume(pod)).toEqual({ secretName: secret, defaultMode: 0o400 });
      expect(pod['containers'][0]['volumeMounts']).toContainEqual({
        name: 'data-plane-ca',
        mountPath: '/etc/chaperone/data-plane-ca',
        readOnly: true,
      });
    }
    const args = authz['containers'][0]['args'] as string[];
    expect(args[args.indexOf('--tls-ca') + 1]).toBe(config.dataPlane.tls.caCert);
    expect(args[args.indexOf('--tls-ca-key') + 1]).toBe(config.dataPlane.tls.caKey);
    expect(config.dataPlane.tls.caCert).toBe('/etc/chaperone/data-plane-ca/tls.crt');
    for (const probe of ['startupProbe', 'livenessProbe', 'readinessProbe'])
      expect(authz['containers'][0][probe]).toMatchObject({ tcpSocket: { port: 'grpc' } });
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
