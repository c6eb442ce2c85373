// Golden files of the two translators, in xds/translate/testdata:
//   stage 1, config → IR:    `<case>.in.yaml` → `<case>.ir.yaml` (or `<case>.error.txt` when rejected);
//   stage 2, IR → Envoy:     `<case>.ir.yaml` → `<case>.out.yaml`;
// plus the properties every output must have whatever the case: determinism, the hardening of every
// HTTP connection manager, route ↔ authz context, no credential material, strict validation. Each case
// runs through the pipeline once and each snapshot is encoded once (counted below); real Envoy
// validates the same `.out.yaml` files (test/component/envoy-validate.test.ts).
// `UPDATE_GOLDEN=1 npx vitest run test/unit/translate-golden.test.ts` (or `tsx scripts/update-golden.ts`)
// rewrites the expected files and removes orphans.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import yaml from 'js-yaml';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../config/errors.ts';
import { loadConfig, parseConfig } from '../../config/load-config.ts';
import { buildIr } from '../../xds/ir/build-ir.ts';
import type { Ir } from '../../xds/ir/types.ts';
import {
  type EnvoyResourcesJson,
  encodeEnvoyResource,
  type ResourceEncoder,
  type XdsSnapshot,
} from '../../xds/server/snapshot.ts';
import { TranslateError } from '../../xds/translate/errors.ts';
import { extAuthzTimeout } from '../../xds/translate/request-body.ts';
import { translate } from '../../xds/translate/translate.ts';
import { GoldenDir, generatedHeader } from '../support/golden.ts';

const IN = '.in.yaml';
const IR = '.ir.yaml';
const OUT = '.out.yaml';
const ERROR = '.error.txt';

const golden = new GoldenDir(fileURLToPath(new URL('../../xds/translate/testdata', import.meta.url)), [
  IR,
  OUT,
  ERROR,
]);
const cases = golden.cases(IN);

const dump = (doc: unknown) => yaml.dump(doc, { lineWidth: -1, noRefs: true });

interface Rendered {
  file: string;
  text: string;
}

/**
 * Configs are parsed as if they lived in GOLDEN_CONFIG_DIR: default socket paths are absolute, derived
 * from the config's directory, and must not depend on where the repository is checked out.
 */
const GOLDEN_CONFIG_DIR = '/etc/chaperone/';

/** Stage 1: the config file through parseConfig → buildIr; a rejected config renders its message. */
function configToIr(name: string): Rendered & { ir?: Ir } {
  const file = name + IN;
  try {
    const ir = buildIr(parseConfig(readFileSync(golden.path(file), 'utf8'), GOLDEN_CONFIG_DIR + file));
    return { file: name + IR, text: generatedHeader(file) + dump(ir), ir };
  } catch (err) {
    if (err instanceof ConfigError)
      return { file: name + ERROR, text: `${err.message.replaceAll(GOLDEN_CONFIG_DIR, '')}\n` };
    throw err;
  }
}

/** Every encoding of a resource in this file's golden runs goes through here. */
let encodings = 0;
const countingEncoder: ResourceEncoder = (messageName, resource) => {
  encodings++;
  return encodeEnvoyResource(messageName, resource);
};

/** Stage 2: the IR as its golden file holds it (YAML, read back) through translate. */
function irToEnvoy(name: string, irText: string) {
  const { resources, snapshot } = translate(yaml.load(irText) as Ir, countingEncoder);
  return { file: name + OUT, text: generatedHeader(name + IR) + dump(resources), resources, snapshot };
}

const stage1 = cases.map((name) => ({ name, ...configToIr(name) }));
const stage2 = stage1.flatMap((r) => (r.ir ? [{ name: r.name, ...irToEnvoy(r.name, r.text) }] : []));
const encodingsOfStage2 = encodings;

function expectGolden(r: Rendered): void {
  const expected = golden.expected(r.file, r.text);
  expect(expected, `${r.file} is missing: run tsx scripts/update-golden.ts`).toBeDefined();
  expect(r.text).toBe(expected);
}

describe('golden files', () => {
  it('has the cases the translators promise', () => {
    expect(cases).toEqual(
      expect.arrayContaining([
        'minimal',
        'https-sni',
        'prefix-rewrite',
        'two-listeners',
        'credentials',
        'protocol-mcp',
        'request-bodies',
        'error-duplicate-match',
        'error-request-body',
        'error-schema',
        'error-upstream',
      ]),
    );
    expect(stage2.length).toBeGreaterThanOrEqual(6);
  });

  describe('stage 1: config → IR', () => {
    it.each(stage1.map((r) => [r.name, r] as const))('%s', (_name, r) => expectGolden(r));

    it('an IR file holds the whole IR (YAML round trip is lossless)', () => {
      for (const r of stage1) if (r.ir) expect(yaml.load(r.text), r.name).toEqual(r.ir);
    });
  });

  describe('stage 2: IR → Envoy', () => {
    it.each(stage2.map((r) => [r.name, r] as const))('%s', (_name, r) => expectGolden(r));

    it('encodes each resource of each snapshot once', () => {
      const resources = stage2.reduce((n, r) => n + countResources(r.snapshot), 0);
      expect(resources).toBeGreaterThan(20);
      expect(encodingsOfStage2).toBe(resources);
    });
  });

  it('has no orphaned or stale expected files', () => {
    expect(golden.orphans([...stage1, ...stage2].map((r) => r.file))).toEqual([]);
  });
});

function countResources(snapshot: XdsSnapshot): number {
  let n = 0;
  for (const byName of snapshot.resources.values()) n += byName.size;
  return n;
}

const outputs: [string, EnvoyResourcesJson][] = stage2.map((r) => [r.name, r.resources]);

function hcmOf(listener: Record<string, any>): Record<string, any> {
  const filters = listener['filter_chains'][0]['filters'];
  expect(filters).toHaveLength(1);
  expect(filters[0].name).toBe('envoy.filters.network.http_connection_manager');
  return filters[0].typed_config;
}

describe.each(outputs)('every output: %s', (_name, resources) => {
  it('hardens every HTTP connection manager and fails closed', () => {
    for (const listener of resources.listeners) {
      const hcm = hcmOf(listener);
      expect(hcm).toMatchObject({
        normalize_path: true,
        merge_slashes: true,
        path_with_escaped_slashes_action: 'REJECT_REQUEST',
        common_http_protocol_options: { headers_with_underscores_action: 'REJECT_REQUEST' },
        use_remote_address: true,
        generate_request_id: true,
        rds: { route_config_name: listener['name'], config_source: { ads: {}, resource_api_version: 'V3' } },
      });
      expect(hcm['http_filters'].map((f: { name: string }) => f.name)).toEqual([
        'envoy.filters.http.header_mutation',
        'envoy.filters.http.ext_authz',
        'chaperone.response_masking',
        'chaperone.strip_mask_header',
        'envoy.filters.http.router',
      ]);
      // ext_proc only behind the composite filter, on the mask header ext_authz sets; the header is
      // removed before the router.
      const masking = hcm['http_filters'][2].typed_config;
      expect(masking.xds_matcher.matcher_tree.input.typed_config.header_name).toBe('x-chaperone-mask');
      const action = masking.xds_matcher.matcher_tree.exact_match_map.map.on.action.typed_config;
      expect(action.typed_config.name).toBe('envoy.filters.http.ext_proc');
      expect(action.typed_config.typed_config.failure_mode_allow).toBe(false);
      expect(hcm['http_filters'][3].typed_config.mutations.request_mutations).toEqual([
        { remove: 'x-chaperone-mask' },
      ]);
      const mutations = hcm['http_filters'][0].typed_config.mutations.request_mutations;
      expect(mutations).toContainEqual({ remove_on_match: { key_matcher: { prefix: 'x-chaperone-' } } });
      expect(mutations.map((m: { remove?: string }) => m.remove)).toEqual(
        expect.arrayContaining(['x-forwarded-user', 'x-forwarded-email', 'x-forwarded-groups']),
      );
      expect(hcm['http_filters'][1].typed_config).toEqual({
        '@type': 'type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz',
        transport_api_version: 'V3',
        // 0.5 s, plus 0.5 s per MiB of the largest body a route buffers (extAuthzTimeout below).
        grpc_service: {
          envoy_grpc: { cluster_name: 'chaperone_authz' },
          timeout: expect.stringMatching(/^\d+(\.\d)?s$/),
        },
        failure_mode_allow: false,
        status_on_error: { code: 'ServiceUnavailable' },
        // Whole bodies only: Envoy answers 413 above the limit, no check sees part of a body.
        with_request_body: { max_request_bytes: 65536, allow_partial_message: false, pack_as_bytes: true },
      });
      // Envoy's own answers carry a Chaperone code in JSON: its 413 (no decision) names the limit, its 503
      // for a missing decision says so; whatever the authz server answered keeps its body.
      expect(
        hcm['local_reply_config'].mappers.map(
          (m: { body_format_override: { json_format: { error: string } } }) =>
            m.body_format_override.json_format.error,
        ),
      ).toEqual(['ERR_BODY_TOO_LARGE', 'ERR_AUTHZ_UNAVAILABLE']);
      expect(hcm['access_log']).toEqual([
        expect.objectContaining({
          name: 'envoy.access_loggers.http_grpc',
          typed_config: expect.objectContaining({
            common_config: {
              log_name: `chaperone.${listener['name']}`,
              transport_api_version: 'V3',
              grpc_service: { envoy_grpc: { cluster_name: 'chaperone_xds' } },
            },
          }),
        }),
      ]);
    }
    expect(resources.clusters.find((c) => c['name'] === 'chaperone_authz')).toMatchObject({
      typed_extension_protocol_options: {
        'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
          explicit_http_config: { http2_protocol_options: {} },
        },
      },
    });
  });

  it('sends route_id, target, checksum, protocol and body mode from every route to the authz server', () => {
    for (const rc of resources.routes) {
      for (const vh of rc['virtual_hosts'] as any[]) {
        for (const route of vh.routes) {
          // RFC 9728 metadata: answered by Envoy, public, never checked.
          if (route.direct_response) {
            expect(route.name).toMatch(/\/0\/oauth-protected-resource$/);
            expect(route.match.path).toMatch(/^\/\.well-known\/oauth-protected-resource(\/|$)/);
            expect(route.typed_per_filter_config['envoy.filters.http.ext_authz']).toMatchObject({
              disabled: true,
            });
            continue;
          }
          const settings = route.typed_per_filter_config['envoy.filters.http.ext_authz'].check_settings;
          const ext = settings.context_extensions;
          const rewrites = route.route?.prefix_rewrite !== undefined;
          const buffered = ext.body === 'buffer';
          const oauth = ext.resource !== undefined;
          expect(Object.keys(ext).sort()).toEqual(
            [
              'body',
              'checksum',
              'protocol',
              'route_id',
              'target',
              ...(rewrites ? ['path_prefix', 'prefix_rewrite'] : []),
              ...(buffered ? ['max_request_bytes'] : []),
              ...(oauth ? ['resource', 'resource_metadata'] : []),
            ].sort(),
          );
          expect(ext.route_id).toBe(route.name);
          expect(ext.route_id).toBe(`${ext.target}/0`);
          expect(ext.checksum).toMatch(/^[0-9a-f]{16}$/);
          expect(route.route.cluster).toBe(`target/${ext.target}`);
          // What Envoy buffers and what the authz server is told are the same number.
          if (buffered) {
            expect(settings.with_request_body).toEqual({
              max_request_bytes: Number(ext.max_request_bytes),
              allow_partial_message: false,
              pack_as_bytes: true,
            });
            expect(route.metadata.filter_metadata.chaperone.max_request_bytes).toBe(
              Number(ext.max_request_bytes),
            );
            expect(settings.disable_request_body_buffering).toBeUndefined();
          } else {
            expect(ext.body).toBe('headers_only');
            expect(settings.disable_request_body_buffering).toBe(true);
            expect(settings.with_request_body).toBeUndefined();
          }
        }
      }
    }
  });

  it('is sorted by name and verifies TLS wherever it is used', () => {
    for (const list of [resources.listeners, resources.routes, resources.clusters]) {
      const names = list.map((r) => String(r['name']));
      expect(names).toEqual([...names].sort());
    }
    for (const cluster of resources.clusters) {
      const ts = cluster['transport_socket'] as any;
      if (!ts) continue;
      const context = ts.typed_config.common_tls_context;
      if (context.combined_validation_context) {
        // Chaperone's own TCP services: Envoy's client certificate, the data-plane CA and the server role.
        const combined = context.combined_validation_context;
        expect(combined.validation_context_sds_secret_config.sds_config.path_config_source.path).toMatch(
          /^\//,
        );
        expect(combined.default_validation_context.match_typed_subject_alt_names).toEqual([
          { san_type: 'URI', matcher: { exact: 'urn:chaperone:data-plane:server' } },
        ]);
        expect(context.tls_certificate_sds_secret_configs).toHaveLength(1);
        continue;
      }
      const validation = context.validation_context;
      expect(validation.trusted_ca.filename).toMatch(/^\//);
      expect(validation.match_typed_subject_alt_names).toHaveLength(1);
    }
  });
});

describe('translate', () => {
  it('is deterministic and independent of target order', () => {
    const text = readFileSync(golden.path(`prefix-rewrite${IN}`), 'utf8');
    const config = parseConfig(text);
    const once = translate(buildIr(config));
    expect(translate(buildIr(config)).resources).toEqual(once.resources);
    const shuffled = parseConfig(text);
    shuffled.targets.reverse();
    const reordered = translate(buildIr(shuffled));
    expect(JSON.stringify(reordered.resources)).toBe(JSON.stringify(once.resources));
    expect(reordered.snapshot.version).toBe(once.snapshot.version);
  });

  it('puts no credential material in Envoy resources', () => {
    // Set while translating: nothing may resolve a reference on the way to Envoy.
    process.env['OPENAI_API_KEY'] = 'sk-resolved-S3CRET';
    try {
      const file = `credentials${IN}`;
      const ir = buildIr(parseConfig(readFileSync(golden.path(file), 'utf8'), file));
      const text = dump(translate(ir).resources);
      for (const needle of ['S3CRET', 'OPENAI_API_KEY', 'env:', 'file:', '/run/secrets', 'Bearer']) {
        expect(text).not.toContain(needle);
      }
    } finally {
      delete process.env['OPENAI_API_KEY'];
    }
  });

  it('gives the check more time the larger the body a route of the listener buffers', () => {
    const timeoutOf = (targets: string) =>
      extAuthzTimeout(buildIr(parseConfig(`targets:\n${targets}`)).listeners[0]!);
    const t = (name: string, extra: string) =>
      `  - {name: ${name}, upstream: "http://127.0.0.1:1", match: {path_prefix: /${name}/}${extra}}\n`;
    expect(extAuthzTimeout(buildIr(parseConfig('')).listeners[0]!)).toBe('0.5s');
    expect(timeoutOf(t('a', ', body: headers_only'))).toBe('0.5s');
    expect(timeoutOf(t('a', ''))).toBe('0.6s'); // 64 KiB
    expect(timeoutOf(t('a', '') + t('b', ', protocol: llm'))).toBe('1s'); // 1 MiB
    expect(timeoutOf(t('a', ', max_request_bytes: 1572864'))).toBe('1.3s');
    expect(timeoutOf(t('a', ', max_request_bytes: 8388608'))).toBe('4.5s');
  });

  it('translates the documented example', async () => {
    const { resources } = translate(buildIr(await loadConfig(resolve('examples/chaperone.yaml'))));
    expect(resources.clusters.map((c) => c['name'])).toEqual([
      'chaperone_authz',
      'target/demo',
      'target/files',
      'target/openai',
      'target/tools',
    ]);
    expect(resources.endpoints.map((e) => e['cluster_name'])).toEqual(['target/demo', 'target/files']);
  });

  const base = (): Ir => buildIr(parseConfig('targets: [{name: a, upstream: "http://127.0.0.1:1"}]'));
  const unsupported: [string, (ir: Ir) => void, string][] = [
    [
      'an unknown protocol',
      (ir) => {
        (ir.listeners[0]!.virtualHosts[0]!.routes[0] as { protocol: string }).protocol = 'grpc';
      },
      'RouteConfiguration[egress] egress/*/a/0: unsupported protocol "grpc"',
    ],
    [
      'a route to a missing cluster',
      (ir) => {
        ir.listeners[0]!.virtualHosts[0]!.routes[0]!.cluster = 'target/nope';
      },
      'RouteConfiguration[egress] egress/*/a/0: cluster "target/nope" is not defined',
    ],
    [
      'an unknown discovery type',
      (ir) => {
        (ir.clusters.find((c) => c.name === 'target/a') as { discovery: string }).discovery = 'magic';
      },
      'Cluster[target/a] type: unsupported discovery "magic"',
    ],
    [
      'a DNS name in an EDS cluster',
      (ir) => {
        ir.clusters.find((c) => c.name === 'target/a')!.endpoints = [{ host: 'api.example.com', port: 80 }];
      },
      'Cluster[target/a] endpoints: EDS endpoints must be IP addresses',
    ],
    [
      'a malformed duration',
      (ir) => {
        ir.listeners[0]!.virtualHosts[0]!.routes[0]!.timeout = '30 seconds';
      },
      // The route configuration cannot be encoded, so the listener's RDS reference dangles too.
      ' (2 problems):\n' +
        '  RouteConfiguration[egress] virtual_hosts[0].routes[0].route.timeout: expected a duration like "1.5s"\n' +
        '  Listener[egress] filter_chains[0].filters[0].typed_config.rds: route configuration "egress" does not exist',
    ],
  ];
  const messageOf = (tail: string) =>
    `cannot translate to Envoy resources${tail.startsWith(' (') ? tail : `: ${tail}`}`;
  it.each(unsupported)('rejects %s instead of dropping it', (_name, mutate, message) => {
    const ir = base();
    mutate(ir);
    let error: unknown;
    try {
      translate(ir);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(TranslateError);
    expect((error as TranslateError).code).toBe('ERR_TRANSLATE');
    expect((error as TranslateError).message).toBe(messageOf(message));
  });
});
