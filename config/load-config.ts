// Loads chaperone.yaml: YAML (with line tracking) → JSON Schema check → normalised Config with
// defaults. Every problem is collected into one ConfigError naming file, line and field path.
// Secrets: credential values are `env:`/`file:` references and stay references here; resolving them
// is the authz server's job, so no secret value ever enters the Config, the IR or the Envoy config.

import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import {
  isUnixAddress,
  UNIX_PATH_MAX_BYTES,
  UNIX_PREFIX,
  unixPathTooLong,
} from '../lib/data-plane-address.ts';
import { CONFIG_DEFAULTS } from './defaults.ts';
import { ConfigError, type ConfigIssue } from './errors.ts';
import { schemaIssues } from './schema.ts';
import type {
  AccessConfig,
  AuditStoreConfig,
  BundleServiceConfig,
  BundleSigningConfig,
  Config,
  ConsoleConfig,
  CredentialRefConfig,
  DataPlaneConfig,
  DecisionLogsConfig,
  IdentityConfig,
  IssuerConfig,
  ListenerConfig,
  NotificationEventKind,
  NotificationsConfig,
  PolicySource,
  TargetBody,
  TargetConfig,
  TargetMcpConfig,
  TargetProtocol,
  UsageLimitConfig,
} from './types.ts';
import { parseYamlSource, YamlSyntaxError } from './yaml-source.ts';

/** A config is a few KiB; a much larger file is a mistake (or an attack on the parser). */
const MAX_CONFIG_BYTES = 1024 * 1024;

const lineTables = new WeakMap<Config, (path: string) => number | undefined>();

/** Line of a field path in the file a Config was parsed from (undefined for hand-built configs). */
export function configLineOf(config: Config, path: string): number | undefined {
  return lineTables.get(config)?.(path);
}

/** A ConfigIssue for `path`, with its line when the config came from a file. */
export function configIssue(config: Config, path: string, message: string): ConfigIssue {
  const line = configLineOf(config, path);
  return line === undefined ? { path, message } : { path, line, message };
}

export function sortIssues(issues: ConfigIssue[]): ConfigIssue[] {
  return [...issues].sort(
    (a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.path < b.path ? -1 : a.path > b.path ? 1 : 0),
  );
}

type Raw = Record<string, any>;

/** Parses and validates configuration text. `file` names the source in errors and anchors relative paths. */
export function parseConfig(text: string, file: string | null = null): Config {
  if (Buffer.byteLength(text, 'utf8') > MAX_CONFIG_BYTES) {
    throw new ConfigError(file, [{ path: '', message: `file is larger than ${MAX_CONFIG_BYTES} bytes` }]);
  }
  let source: ReturnType<typeof parseYamlSource>;
  try {
    source = parseYamlSource(text);
  } catch (err) {
    if (err instanceof YamlSyntaxError) {
      const issue: ConfigIssue = { path: '', message: `YAML: ${err.reason}` };
      if (err.line !== undefined) issue.line = err.line;
      if (err.column !== undefined) issue.column = err.column;
      throw new ConfigError(file, [issue]);
    }
    throw err;
  }
  // An empty file is an all-defaults config.
  const data = source.data === undefined || source.data === null ? {} : source.data;
  const issues = schemaIssues(data, source.lineOf);
  if (issues.length > 0) throw new ConfigError(file, sortIssues(issues));

  const raw = data as Raw;
  const baseDir = file ? dirname(resolve(file)) : process.cwd();
  const localPath = (p: string) => (isAbsolute(p) ? p : resolve(baseDir, p));
  const semantic: { path: string; message: string }[] = [];

  const listeners: ListenerConfig[] = (raw['listeners'] ?? [{}]).map((l: Raw, i: number) => {
    const address = l['address'] ?? CONFIG_DEFAULTS.listener.address;
    if (isIP(address) === 0)
      semantic.push({ path: `listeners[${i}].address`, message: 'must be an IP address' });
    return {
      name: l['name'] ?? CONFIG_DEFAULTS.listener.name,
      address,
      port: l['port'] ?? CONFIG_DEFAULTS.listener.port,
    };
  });
  reportDuplicates(
    listeners.map((l) => l.name),
    'listeners',
    'name',
    semantic,
  );

  const targets: TargetConfig[] = (raw['targets'] ?? []).map((t: Raw, i: number) => {
    const tls = t['tls'] as Raw | undefined;
    if (tls?.['insecure_skip_verify'] === true) {
      semantic.push({
        path: `targets[${i}].tls.insecure_skip_verify`,
        message:
          'is not supported: upstream certificates are always verified (give tls.ca_file for a private CA)',
      });
    }
    return {
      name: t['name'],
      upstream: t['upstream'],
      tls: tls ? { sni: tls['sni'] ?? null, caFile: tls['ca_file'] ?? null } : null,
      match: { hosts: t['match']?.['hosts'] ?? [], pathPrefix: t['match']?.['path_prefix'] ?? null },
      prefixRewrite: t['prefix_rewrite'] ?? null,
      timeout: t['timeout'] === undefined ? null : envoyDuration(t['timeout']),
      protocol: (t['protocol'] ?? CONFIG_DEFAULTS.protocol) as TargetProtocol,
      body: targetBody(t, i, semantic),
      credentials: (t['credentials'] ?? []).map(
        (c: Raw): CredentialRefConfig => ({
          header: c['header'],
          value: c['value'].startsWith('file:') ? `file:${localPath(c['value'].slice(5))}` : c['value'],
          format: c['format'] ?? CONFIG_DEFAULTS.credentialFormat,
        }),
      ),
      ...mcpOf(t, i, raw, semantic),
    };
  });
  reportDuplicates(
    targets.map((t) => t.name),
    'targets',
    'name',
    semantic,
  );
  for (const [i, t] of targets.entries()) {
    reportDuplicates(
      t.credentials.map((c) => c.header),
      `targets[${i}].credentials`,
      'header',
      semantic,
    );
  }

  const limits = usageLimitsOf(raw, targets, semantic);

  const identityRaw = raw['identity'] as Raw | undefined;
  const identity: IdentityConfig | null = identityRaw
    ? {
        issuers: identityRaw['issuers'].map((is: Raw): IssuerConfig => {
          const out: IssuerConfig = { issuer: is['issuer'], audiences: [...is['audiences']] };
          if (is['jwks_uri'] !== undefined) out.jwksUri = is['jwks_uri'];
          if (is['groups_claim'] !== undefined) out.groupsClaim = is['groups_claim'];
          if (is['algorithms'] !== undefined) out.algorithms = [...is['algorithms']];
          return out;
        }),
        tokenHeader: identityRaw['token_header'] ?? CONFIG_DEFAULTS.tokenHeader,
        clockToleranceSec: identityRaw['clock_tolerance'] ?? CONFIG_DEFAULTS.clockToleranceSec,
        agentTokenMaxTtlMs: durationMs(
          identityRaw['agent_token_max_ttl'] ?? CONFIG_DEFAULTS.agentTokenMaxTtl,
        ),
      }
    : null;
  if (identity && identity.agentTokenMaxTtlMs > CONFIG_DEFAULTS.agentTokenMaxTtlCeilingMs)
    semantic.push({ path: 'identity.agent_token_max_ttl', message: 'must be at most 24h' });
  if (identity)
    reportDuplicates(
      identity.issuers.map((i) => i.issuer),
      'identity.issuers',
      'issuer',
      semantic,
    );

  const policyRaw = (raw['policy'] ?? {}) as Raw;
  const policySource: PolicySource =
    policyRaw['bundle'] !== undefined
      ? { kind: 'bundle', path: localPath(policyRaw['bundle']) }
      : { kind: 'dir', path: localPath(policyRaw['dir'] ?? CONFIG_DEFAULTS.policyDir) };

  const bundleService = bundleServiceOf(policyRaw, localPath, semantic);
  const signing = signingOf(policyRaw['signing'] as Raw | undefined, localPath);
  const decisionLogs = decisionLogsOf(raw['decision_logs'] as Raw | undefined, localPath, semantic);

  const auditRaw = (raw['audit'] ?? {}) as Raw;
  const storeText: string = auditRaw['store'] ?? CONFIG_DEFAULTS.auditStore;
  const store: AuditStoreConfig =
    storeText === 'embedded' ? { kind: 'embedded' } : { kind: 'postgres', connection: storeText };

  const authzRaw = (raw['authz'] ?? {}) as Raw;
  const cpRaw = (raw['control_plane'] ?? {}) as Raw;
  const envoyRaw = (raw['envoy'] ?? {}) as Raw;
  const metricsRaw = (raw['telemetry'] as Raw | undefined)?.['metrics'] as Raw | undefined;
  if (metricsRaw && metricsRaw['token_file'] === undefined && !isLoopbackHostPort(metricsRaw['address']))
    semantic.push({
      path: 'telemetry.metrics.address',
      message: 'is not a loopback address: give telemetry.metrics.token_file so scrapers must authenticate',
    });
  const spoolDir = localPath(auditRaw['spool_dir'] ?? CONFIG_DEFAULTS.spoolDir);
  const dataPlane = dataPlaneOf((raw['data_plane'] ?? {}) as Raw, dirname(spoolDir), localPath);
  const socket = (name: string) => `${UNIX_PREFIX}${join(dataPlane.socketDir, name)}`;
  const address = (text: string) =>
    isUnixAddress(text) ? `${UNIX_PREFIX}${localPath(text.slice(5))}` : text;
  const authzAddresses: string[] = (
    authzRaw['addresses'] ??
    (authzRaw['address'] ? [authzRaw['address']] : [socket(CONFIG_DEFAULTS.authzSocket)])
  ).map(address);
  const xdsAddress = address(cpRaw['xds_address'] ?? socket(CONFIG_DEFAULTS.xdsSocket));
  const adminAddress =
    envoyRaw['admin_port'] !== undefined
      ? `127.0.0.1:${envoyRaw['admin_port']}`
      : socket(CONFIG_DEFAULTS.envoyAdminSocket);
  checkDataPlaneAddresses(
    [
      ...authzAddresses.map((a, i) => ({
        a,
        path: authzRaw['addresses']
          ? `authz.addresses[${i}]`
          : authzRaw['address']
            ? 'authz.address'
            : 'data_plane.socket_dir',
      })),
      { a: xdsAddress, path: cpRaw['xds_address'] ? 'control_plane.xds_address' : 'data_plane.socket_dir' },
      { a: adminAddress, path: 'data_plane.socket_dir' },
    ],
    semantic,
  );
  if (new Set(authzAddresses.map(isUnixAddress)).size > 1)
    semantic.push({
      path: 'authz.addresses',
      message: 'must be all unix: sockets or all host:port addresses (one transport for the pool)',
    });

  const consoleCfg = consoleOf(raw['console'] as Raw | undefined, identity, semantic);
  const notifications = notificationsOf(raw['notifications'] as Raw | undefined, semantic);

  if (semantic.length > 0) {
    throw new ConfigError(
      file,
      sortIssues(semantic.map((s) => ({ ...s, ...lineField(source.lineOf(s.path)) }))),
    );
  }

  const config: Config = {
    file,
    listeners,
    identity,
    targets,
    access: accessOf(raw['access'] as Raw | undefined),
    policy: {
      source: policySource,
      entrypoint: policyRaw['entrypoint'] ?? CONFIG_DEFAULTS.entrypoint,
      ...(bundleService ? { bundleService } : {}),
      ...(signing ? { signing } : {}),
    },
    ...(decisionLogs ? { decisionLogs } : {}),
    audit: {
      store,
      spoolDir,
      ...(auditRaw['redact_headers'] ? { redactHeaders: auditRaw['redact_headers'] as string[] } : {}),
    },
    authz: {
      addresses: authzAddresses,
      maxOutstanding: authzRaw['max_outstanding'] ?? CONFIG_DEFAULTS.authzMaxOutstanding,
    },
    controlPlane: {
      xdsAddress,
      httpAddress: cpRaw['http_address'] ?? CONFIG_DEFAULTS.httpAddress,
      issuer: (cpRaw['issuer'] ?? `http://${cpRaw['http_address'] ?? CONFIG_DEFAULTS.httpAddress}`).replace(
        /\/$/,
        '',
      ),
    },
    envoy: {
      adminAddress,
      caFile: envoyRaw['ca_file'] ?? CONFIG_DEFAULTS.envoyCaFile,
      deltaXds: envoyRaw['delta_xds'] ?? false,
    },
    telemetry: {
      metrics: metricsRaw
        ? {
            address: metricsRaw['address'],
            tokenFile: metricsRaw['token_file'] === undefined ? null : localPath(metricsRaw['token_file']),
          }
        : null,
    },
    dataPlane,
    console: consoleCfg,
    notifications,
    approvals: {
      pendingTtlMs: ttlMs(
        (raw['approvals'] as Raw | undefined)?.['pending_ttl'] ?? CONFIG_DEFAULTS.approvalPendingTtl,
      ),
    },
    ...(limits.length > 0 ? { limits } : {}),
  };
  lineTables.set(config, source.lineOf);
  return config;
}

/** Reads and parses a config file; a missing/unreadable file is a ConfigError too. */
export async function loadConfig(path: string): Promise<Config> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'EIO';
    throw new ConfigError(path, [{ path: '', message: `cannot read the file (${code})` }], { cause: err });
  }
  return parseConfig(text, path);
}

/** `data_plane:` with its defaults beside the spool (the state directory). */
function dataPlaneOf(raw: Raw, stateDir: string, localPath: (p: string) => string): DataPlaneConfig {
  const tls = (raw['tls'] ?? {}) as Raw;
  return {
    socketDir: localPath(raw['socket_dir'] ?? join(stateDir, CONFIG_DEFAULTS.socketDirName)),
    tls: {
      dir: localPath(tls['dir'] ?? join(stateDir, CONFIG_DEFAULTS.pkiDirName)),
      caCert: tls['ca_cert'] === undefined ? null : localPath(tls['ca_cert']),
      caKey: tls['ca_key'] === undefined ? null : localPath(tls['ca_key']),
      serverNames: [...(tls['server_names'] ?? [])],
      certValiditySec:
        tls['cert_validity'] === undefined
          ? CONFIG_DEFAULTS.certValiditySec
          : validitySeconds(tls['cert_validity']),
    },
  };
}

/** "90m" | "24h" | "7d" (schema-checked) → seconds. */
function validitySeconds(text: string): number {
  const m = /^(\d+)([smhd])$/.exec(text)!;
  return Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86400 }[m[2] as 's' | 'm' | 'h' | 'd'];
}

/** Socket paths the kernel would refuse (too long), named at the setting that produced them. */
function checkDataPlaneAddresses(
  list: { a: string; path: string }[],
  out: { path: string; message: string }[],
): void {
  for (const { a, path } of list) {
    if (isUnixAddress(a) && unixPathTooLong(a.slice(UNIX_PREFIX.length)))
      out.push({
        path,
        message: `socket path ${a.slice(UNIX_PREFIX.length)} is longer than ${UNIX_PATH_MAX_BYTES} bytes (the kernel's limit): choose a shorter directory`,
      });
  }
}

/** `access:` → roles as lists of groups (schema-checked); a missing list is the default (nobody). */
function accessOf(raw: Raw | undefined): AccessConfig {
  const groups = (key: keyof AccessConfig): string[] => [...(raw?.[key] ?? CONFIG_DEFAULTS.access[key])];
  return { admins: groups('admins'), auditors: groups('auditors'), reviewers: groups('reviewers') };
}

/** `90s`, `15m`, `1h` (the schema checked the shape) in milliseconds. */
function durationMs(text: string): number {
  const unit = { s: 1_000, m: 60_000, h: 3_600_000 }[text.slice(-1) as 's' | 'm' | 'h'];
  return Number(text.slice(0, -1)) * unit;
}

/** `127.0.0.1:9464`, `[::1]:9464`, `localhost:9464`: reachable from this machine only. */
function isLoopbackHostPort(hostPort: string): boolean {
  const host = hostPort.slice(0, hostPort.lastIndexOf(':')).replace(/^\[(.*)\]$/, '$1');
  return host === 'localhost' || host === '::1' || (isIP(host) === 4 && host.startsWith('127.'));
}

/** `90s`, `30m`, `8h`, `2d` (schema-checked) → milliseconds. */
export function ttlMs(text: string): number {
  const m = /^(\d+)([smhd])$/.exec(text)!;
  return Number(m[1]) * { s: 1e3, m: 6e4, h: 3.6e6, d: 8.64e7 }[m[2] as 's' | 'm' | 'h' | 'd'];
}

/** `console:`; the sign-in issuer must be one the API trusts (its tokens are verified like bearer tokens). */
function consoleOf(
  raw: Raw | undefined,
  identity: IdentityConfig | null,
  semantic: { path: string; message: string }[],
): ConsoleConfig {
  const issuer: string | null = raw?.['issuer'] ?? null;
  if (issuer !== null && !identity?.issuers.some((i) => i.issuer === issuer))
    semantic.push({ path: 'console.issuer', message: 'must be one of identity.issuers' });
  const scopes: string[] = [...(raw?.['scopes'] ?? CONFIG_DEFAULTS.consoleScopes)];
  if (!scopes.includes('openid')) semantic.push({ path: 'console.scopes', message: 'must include openid' });
  return {
    enabled: (raw?.['enabled'] ?? true) && identity !== null,
    issuer,
    clientId: raw?.['client_id'] ?? CONFIG_DEFAULTS.consoleClientId,
    clientSecret: raw?.['client_secret'] ?? null,
    scopes,
    resource: raw?.['resource'] ?? null,
    sessionTtlMs: ttlMs(raw?.['session_ttl'] ?? CONFIG_DEFAULTS.consoleSessionTtl),
    sessionIdleMs: ttlMs(raw?.['session_idle'] ?? CONFIG_DEFAULTS.consoleSessionIdle),
  };
}

function notificationsOf(
  raw: Raw | undefined,
  semantic: { path: string; message: string }[],
): NotificationsConfig {
  const sinks = ((raw?.['sinks'] ?? []) as Raw[]).map((s) => ({
    name: s['name'] as string,
    type: s['type'] as 'webhook' | 'slack',
    url: s['url'] as string,
    secret: (s['secret'] as string | undefined) ?? null,
    events: [...(s['events'] ?? CONFIG_DEFAULTS.notificationEvents)] as NotificationEventKind[],
  }));
  reportDuplicates(
    sinks.map((s) => s.name),
    'notifications.sinks',
    'name',
    semantic,
  );
  return { sinks, maxAttempts: raw?.['max_attempts'] ?? CONFIG_DEFAULTS.notificationMaxAttempts };
}

const lineField = (line: number | undefined) => (line === undefined ? {} : { line });

/** `file:` references relative to the config file, like every other path in it. */
const localRef = (ref: string, localPath: (p: string) => string) =>
  ref.startsWith('file:') ? `file:${localPath(ref.slice(5))}` : ref;

function delaysOf(
  raw: Raw | undefined,
  path: string,
  defaults: { min: number; max: number },
  semantic: { path: string; message: string }[],
): { minDelaySec: number; maxDelaySec: number } {
  const min =
    raw?.['min_delay_seconds'] ?? Math.min(defaults.min, raw?.['max_delay_seconds'] ?? defaults.min);
  const max = raw?.['max_delay_seconds'] ?? Math.max(defaults.max, min);
  if (min > max)
    semantic.push({ path: `${path}.min_delay_seconds`, message: 'must not exceed max_delay_seconds' });
  return { minDelaySec: min, maxDelaySec: max };
}

function bundleServiceOf(
  policyRaw: Raw,
  localPath: (p: string) => string,
  semantic: { path: string; message: string }[],
): BundleServiceConfig | null {
  if (policyRaw['bundle_url'] === undefined) {
    for (const key of ['bundle_token', 'bundle_polling'])
      if (policyRaw[key] !== undefined)
        semantic.push({ path: `policy.${key}`, message: 'needs policy.bundle_url' });
    return null;
  }
  return {
    url: policyRaw['bundle_url'],
    token: policyRaw['bundle_token'] === undefined ? null : localRef(policyRaw['bundle_token'], localPath),
    ...delaysOf(
      policyRaw['bundle_polling'],
      'policy.bundle_polling',
      CONFIG_DEFAULTS.bundlePolling,
      semantic,
    ),
  };
}

function signingOf(raw: Raw | undefined, localPath: (p: string) => string): BundleSigningConfig | null {
  if (!raw) return null;
  const keys: BundleSigningConfig['keys'] = {};
  for (const [id, k] of Object.entries(raw['keys'] as Record<string, Raw>)) {
    keys[id] = {
      algorithm: k['algorithm'] ?? CONFIG_DEFAULTS.bundleKeyAlgorithm,
      key: localRef(k['key'], localPath),
      scope: k['scope'] ?? null,
    };
  }
  return {
    keyid: raw['keyid'] ?? null,
    scope: raw['scope'] ?? null,
    excludeFiles: raw['exclude_files'] ?? [],
    keys,
  };
}

function decisionLogsOf(
  raw: Raw | undefined,
  localPath: (p: string) => string,
  semantic: { path: string; message: string }[],
): DecisionLogsConfig | null {
  if (!raw) return null;
  const reporting = raw['reporting'] as Raw | undefined;
  const d = CONFIG_DEFAULTS.decisionLogs;
  return {
    url: raw['url'],
    token: raw['token'] === undefined ? null : localRef(raw['token'], localPath),
    ...delaysOf(reporting, 'decision_logs.reporting', d.delays, semantic),
    bufferSizeLimitBytes: reporting?.['buffer_size_limit_bytes'] ?? d.bufferSizeLimitBytes,
    uploadSizeLimitBytes: reporting?.['upload_size_limit_bytes'] ?? d.uploadSizeLimitBytes,
  };
}

/** Protocol views that read the request body: their targets cannot skip it. */
const BODY_READING_PROTOCOLS: readonly TargetProtocol[] = ['mcp', 'llm', 'graphql'];

/** A target's body setting when its config says nothing: buffered up to its protocol's default limit. */
export function defaultTargetBody(protocol: TargetProtocol): TargetBody {
  return { mode: 'buffer', maxRequestBytes: CONFIG_DEFAULTS.maxRequestBytes[protocol] };
}

/** `body` and `max_request_bytes` of targets[i], with the protocol's default limit. */
function targetBody(t: Raw, i: number, out: { path: string; message: string }[]): TargetBody {
  const protocol = (t['protocol'] ?? CONFIG_DEFAULTS.protocol) as TargetProtocol;
  if ((t['body'] ?? CONFIG_DEFAULTS.bodyMode) === 'buffer')
    return t['max_request_bytes'] === undefined
      ? defaultTargetBody(protocol)
      : { mode: 'buffer', maxRequestBytes: t['max_request_bytes'] };
  if (BODY_READING_PROTOCOLS.includes(protocol))
    out.push({
      path: `targets[${i}].body`,
      message: `headers_only cannot be used with protocol ${protocol}: its view reads the request body`,
    });
  if (t['max_request_bytes'] !== undefined)
    out.push({
      path: `targets[${i}].max_request_bytes`,
      message: 'applies only with body: buffer (a headers_only body is never buffered)',
    });
  return { mode: 'headers_only' };
}

function reportDuplicates(
  values: string[],
  listPath: string,
  key: string,
  out: { path: string; message: string }[],
) {
  const first = new Map<string, number>();
  values.forEach((v, i) => {
    const j = first.get(v);
    if (j === undefined) first.set(v, i);
    else
      out.push({
        path: `${listPath}[${i}].${key}`,
        message: `duplicate ${key} (also ${listPath}[${j}].${key})`,
      });
  });
}

/** "500ms" | "1.5s" | "2m" (schema-checked) → Envoy's proto3-JSON duration "0.5s" / "1.5s" / "120s". */
export function envoyDuration(text: string): string {
  const m = /^(\d+)(?:\.(\d+))?(ms|s|m)$/.exec(text)!;
  const unitNs = m[3] === 'ms' ? 1_000_000n : m[3] === 's' ? 1_000_000_000n : 60_000_000_000n;
  const frac = m[2] ?? '';
  // Integer nanoseconds: exact for the at most 3 decimals the schema allows.
  const ns = BigInt(m[1]!) * unitNs + (BigInt(frac || '0') * unitNs) / 10n ** BigInt(frac.length);
  const seconds = ns / 1_000_000_000n;
  const nanos = ns % 1_000_000_000n;
  return nanos === 0n ? `${seconds}s` : `${seconds}.${nanos.toString().padStart(9, '0').replace(/0+$/, '')}s`;
}

/**
 * `targets[i].mcp`: only on an MCP target; the resource is an absolute http(s) URL without a fragment
 * or query (RFC 8707), and someone must issue tokens for it (the identity issuers by default).
 */
function mcpOf(
  t: Raw,
  i: number,
  raw: Raw,
  out: { path: string; message: string }[],
): { mcp?: TargetMcpConfig } {
  const m = t['mcp'] as Raw | undefined;
  if (!m) return {};
  const at = `targets[${i}].mcp`;
  if ((t['protocol'] ?? CONFIG_DEFAULTS.protocol) !== 'mcp')
    out.push({ path: at, message: 'is only valid on a target with protocol: mcp' });
  let resource = String(m['resource']);
  try {
    const url = new URL(resource);
    if (url.username !== '' || url.password !== '')
      out.push({ path: `${at}.resource`, message: 'must not carry user info' });
    // The canonical form (MCP authorization spec): lowercase scheme and host, no trailing slash.
    resource = `${url.protocol}//${url.host}${url.pathname === '/' ? '' : url.pathname.replace(/\/$/, '')}`;
  } catch {
    out.push({ path: `${at}.resource`, message: 'must be an http(s) URL' });
  }
  const issuers = ((raw['identity'] as Raw | undefined)?.['issuers'] ?? []) as Raw[];
  const authorizationServers: string[] = m['authorization_servers'] ?? issuers.map((is) => is['issuer']);
  if (authorizationServers.length === 0)
    out.push({
      path: `${at}.authorization_servers`,
      message: 'must name an issuer (none is configured under identity.issuers)',
    });
  return { mcp: { resource, authorizationServers, scopes: m['scopes'] ?? [] } };
}

const LIMIT_WINDOWS = [
  ['minute', 'per_minute'],
  ['day', 'per_day'],
] as const;

/** `rate_limits:` and `budgets:`, one entry per window, each naming targets that exist. */
function usageLimitsOf(
  raw: Raw,
  targets: TargetConfig[],
  out: { path: string; message: string }[],
): UsageLimitConfig[] {
  const known = new Set(targets.map((t) => t.name));
  const limits: UsageLimitConfig[] = [];
  for (const [section, kind] of [
    ['rate_limits', 'requests'],
    ['budgets', 'tokens'],
  ] as const) {
    ((raw[section] ?? []) as Raw[]).forEach((entry, i) => {
      const names = entry['targets'] as string[] | undefined;
      for (const [j, n] of (names ?? []).entries())
        if (!known.has(n)) out.push({ path: `${section}[${i}].targets[${j}]`, message: `names no target` });
      for (const [window, suffix] of LIMIT_WINDOWS) {
        const limit = entry[`${kind}_${suffix}`];
        if (limit === undefined) continue;
        limits.push({
          name: entry['name'] ?? `${section}[${i}]`,
          targets: names ?? null,
          per: entry['per'] ?? 'user',
          kind,
          window,
          limit,
        });
      }
    });
  }
  return limits;
}
