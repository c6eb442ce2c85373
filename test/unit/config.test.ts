// chaperone.yaml loading and config → IR: defaults, normalisation, every rejection with its exact
// {code, path, line, message}, hostile inputs (secrets never echoed, alias bombs, huge files), and
// the IR's ordering, names and checksums.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, type ConfigIssue } from '../../config/errors.ts';
import { envoyDuration, loadConfig, parseConfig } from '../../config/load-config.ts';
import type { Config } from '../../config/types.ts';
import { buildIr } from '../../xds/ir/build-ir.ts';

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

const issuesOf = (text: string): ConfigIssue[] => [...configError(() => parseConfig(text, 'c.yaml')).issues];
const irIssuesOf = (text: string): ConfigIssue[] => [
  ...configError(() => buildIr(parseConfig(text, 'c.yaml'))).issues,
];

describe('parseConfig defaults', () => {
  it('an empty file is the all-defaults config', () => {
    const c = parseConfig('', '/etc/chaperone/chaperone.yaml');
    expect(c).toEqual({
      file: '/etc/chaperone/chaperone.yaml',
      listeners: [{ name: 'egress', address: '127.0.0.1', port: 10000 }],
      identity: null,
      targets: [],
      access: { admins: [], auditors: [], reviewers: [] },
      policy: {
        source: { kind: 'dir', path: '/etc/chaperone/policies' },
        entrypoint: 'chaperone/authz/decision',
      },
      audit: { store: { kind: 'embedded' }, spoolDir: '/etc/chaperone/.chaperone/spool' },
      // The data plane is Unix sockets in the state directory: only the gateway's user can connect.
      // Envoy keeps at most 256 Checks outstanding to it and fails the next at once.
      authz: { addresses: ['unix:/etc/chaperone/.chaperone/sockets/authz.sock'], maxOutstanding: 256 },
      controlPlane: {
        xdsAddress: 'unix:/etc/chaperone/.chaperone/sockets/xds.sock',
        httpAddress: '127.0.0.1:8181',
        issuer: 'http://127.0.0.1:8181',
      },
      envoy: {
        adminAddress: 'unix:/etc/chaperone/.chaperone/sockets/envoy-admin.sock',
        caFile: '/etc/ssl/certs/ca-certificates.crt',
        deltaXds: false,
      },
      dataPlane: {
        socketDir: '/etc/chaperone/.chaperone/sockets',
        tls: {
          dir: '/etc/chaperone/.chaperone/pki',
          caCert: null,
          caKey: null,
          serverNames: [],
          certValiditySec: 86400,
        },
      },
      telemetry: { metrics: null },
      // No issuer: nobody can sign in, so no console.
      console: {
        enabled: false,
        issuer: null,
        clientId: 'chaperone-console',
        clientSecret: null,
        scopes: ['openid', 'email', 'profile'],
        resource: null,
        sessionTtlMs: 8 * 3.6e6,
        sessionIdleMs: 3.6e6,
      },
      notifications: { sinks: [], maxAttempts: 8 },
      approvals: { pendingTtlMs: 24 * 3.6e6 },
    } satisfies Config);
  });

  it('normalises a full config (camelCase, defaults inside lists, paths relative to the file)', () => {
    const c = parseConfig(
      `
listeners: [{ name: a, port: 10001 }]
identity:
  issuers:
    - issuer: https://idp.example.com
      audiences: [chaperone]
      jwks_uri: https://idp.example.com/jwks
      groups_claim: realm.groups
      algorithms: [ES256]
  token_header: x-agent-token
  clock_tolerance: 5
  agent_token_max_ttl: 15m
access: { admins: [platform], auditors: [audit, security], reviewers: [security] }
targets:
  - name: t
    upstream: https://api.example.com
    tls: { sni: api.example.com }
    match: { hosts: [api.example.com], path_prefix: /v1/ }
    prefix_rewrite: /
    timeout: 250ms
    protocol: llm
    credentials:
      - { header: authorization, value: "env:API_KEY", format: "Bearer {}" }
      - { header: x-key, value: "file:secrets/key" }
policy: { bundle: build/bundle.tar.gz, entrypoint: envoy/authz/allow }
audit: { store: "env:DATABASE_URL", spool_dir: /var/spool/chaperone }
authz: { addresses: ["10.0.0.1:9191", "10.0.0.2:9191"], max_outstanding: 100 }
control_plane: { xds_address: "0.0.0.0:18000", http_address: "127.0.0.1:8282" }
envoy: { admin_port: 9902, ca_file: /etc/pki/ca.pem }
data_plane:
  socket_dir: run
  tls: { ca_cert: /etc/chaperone/ca.pem, ca_key: /etc/chaperone/ca-key.pem, server_names: [gw-1.internal, 10.0.0.1], cert_validity: 7d }
`,
      '/srv/gw/chaperone.yaml',
    );
    expect(c.listeners).toEqual([{ name: 'a', address: '127.0.0.1', port: 10001 }]);
    expect(c.identity).toEqual({
      issuers: [
        {
          issuer: 'https://idp.example.com',
          audiences: ['chaperone'],
          jwksUri: 'https://idp.example.com/jwks',
          groupsClaim: 'realm.groups',
          algorithms: ['ES256'],
        },
      ],
      tokenHeader: 'x-agent-token',
      clockToleranceSec: 5,
      agentTokenMaxTtlMs: 15 * 60_000,
    });
    expect(c.access).toEqual({
      admins: ['platform'],
      auditors: ['audit', 'security'],
      reviewers: ['security'],
    });
    expect(c.targets).toEqual([
      {
        name: 't',
        upstream: 'https://api.example.com',
        tls: { sni: 'api.example.com', caFile: null },
        match: { hosts: ['api.example.com'], pathPrefix: '/v1/' },
        prefixRewrite: '/',
        timeout: '0.25s',
        protocol: 'llm',
        body: { mode: 'buffer', maxRequestBytes: 1024 * 1024 },
        credentials: [
          { header: 'authorization', value: 'env:API_KEY', format: 'Bearer {}' },
          { header: 'x-key', value: 'file:/srv/gw/secrets/key', format: '{}' },
        ],
      },
    ]);
    expect(c.policy).toEqual({
      source: { kind: 'bundle', path: '/srv/gw/build/bundle.tar.gz' },
      entrypoint: 'envoy/authz/allow',
    });
    expect(c.audit).toEqual({
      store: { kind: 'postgres', connection: 'env:DATABASE_URL' },
      spoolDir: '/var/spool/chaperone',
    });
    expect(c.authz).toEqual({ addresses: ['10.0.0.1:9191', '10.0.0.2:9191'], maxOutstanding: 100 });
    expect(c.controlPlane).toEqual({
      xdsAddress: '0.0.0.0:18000',
      httpAddress: '127.0.0.1:8282',
      issuer: 'http://127.0.0.1:8282',
    });
    expect(c.envoy).toEqual({ adminAddress: '127.0.0.1:9902', caFile: '/etc/pki/ca.pem', deltaXds: false });
    expect(c.dataPlane).toEqual({
      socketDir: '/srv/gw/run',
      tls: {
        dir: '/var/spool/pki',
        caCert: '/etc/chaperone/ca.pem',
        caKey: '/etc/chaperone/ca-key.pem',
        serverNames: ['gw-1.internal', '10.0.0.1'],
        certValiditySec: 7 * 86400,
      },
    });
  });

  it('resolves relative unix: addresses against the file and refuses socket paths the kernel would', () => {
    const c = parseConfig('authz: {address: "unix:run/a.sock"}\n', '/srv/gw/chaperone.yaml');
    expect(c.authz.addresses).toEqual(['unix:/srv/gw/run/a.sock']);
    expect(c.controlPlane.xdsAddress).toBe('unix:/srv/gw/.chaperone/sockets/xds.sock');
    const long = `/${'d'.repeat(100)}`;
    expect(issuesOf(`data_plane: {socket_dir: "${long}"}\n`).map((i) => i.path)).toEqual([
      'data_plane.socket_dir',
      'data_plane.socket_dir',
      'data_plane.socket_dir',
    ]);
    expect(issuesOf('authz: {addresses: ["unix:/a.sock", "127.0.0.1:9191"]}\n')).toEqual([
      {
        path: 'authz.addresses',
        line: 1,
        message: 'must be all unix: sockets or all host:port addresses (one transport for the pool)',
      },
    ]);
    expect(issuesOf('data_plane: {tls: {ca_cert: /ca.pem}}\n').map((i) => i.path)).toEqual([
      'data_plane.tls',
    ]);
  });

  it('loads and translates the documented example', async () => {
    const c = await loadConfig(resolve('examples/chaperone.yaml'));
    expect(c.targets.map((t) => t.name)).toEqual(['openai', 'tools', 'demo', 'files']);
    expect(c.targets.map((t) => t.body)).toEqual([
      { mode: 'buffer', maxRequestBytes: 2097152 },
      { mode: 'buffer', maxRequestBytes: 1048576 },
      { mode: 'buffer', maxRequestBytes: 65536 },
      { mode: 'headers_only' },
    ]);
    expect(c.policy.source).toEqual({ kind: 'dir', path: resolve('policies') });
    const ir = buildIr(c);
    expect(ir.targets.map((t) => t.routeId)).toEqual(['demo/0', 'files/0', 'openai/0', 'tools/0']);
  });

  it.each([
    ['500ms', '0.5s'],
    ['0.5ms', '0.0005s'],
    ['1.5s', '1.5s'],
    ['2m', '120s'],
    ['0s', '0s'],
    ['1.25m', '75s'],
    ['100000ms', '100s'],
  ])('duration %s → %s', (input, expected) => {
    expect(envoyDuration(input)).toBe(expected);
  });
});

describe('MCP resource metadata and usage limits', () => {
  it('an MCP target publishes its canonical resource; the issuers are its authorization servers', () => {
    const c = parseConfig(
      'identity: {issuers: [{issuer: https://login.test, audiences: [chaperone]}]}\n' +
        'targets:\n  - name: t\n    upstream: http://x:1\n    protocol: mcp\n    mcp: {resource: HTTPS://GW.Test/mcp/}\n',
    );
    expect(c.targets[0]?.mcp).toEqual({
      resource: 'https://gw.test/mcp',
      authorizationServers: ['https://login.test'],
      scopes: [],
    });
    const noIssuer = configError(() =>
      parseConfig(
        'targets:\n  - name: t\n    upstream: http://x:1\n    protocol: mcp\n    mcp: {resource: https://g/}\n',
      ),
    );
    expect(noIssuer.issues).toEqual([
      {
        path: 'targets[0].mcp.authorization_servers',
        line: 5,
        message: 'must name an issuer (none is configured under identity.issuers)',
      },
    ]);
  });

  it('flattens rate_limits and budgets to one limit per window, and refuses unknown targets', () => {
    const c = parseConfig(
      'targets:\n  - name: llm\n    upstream: http://x:1\n' +
        'rate_limits:\n  - {per: agent, requests_per_minute: 60, requests_per_day: 1000}\n' +
        'budgets:\n  - {name: daily, targets: [llm], tokens_per_day: 5000}\n',
    );
    expect(c.limits).toEqual([
      { name: 'rate_limits[0]', targets: null, per: 'agent', kind: 'requests', window: 'minute', limit: 60 },
      { name: 'rate_limits[0]', targets: null, per: 'agent', kind: 'requests', window: 'day', limit: 1000 },
      { name: 'daily', targets: ['llm'], per: 'user', kind: 'tokens', window: 'day', limit: 5000 },
    ]);
    expect(parseConfig('targets: []\n').limits).toBeUndefined();
    const unknown = configError(() => parseConfig('budgets:\n  - {targets: [gone], tokens_per_day: 1}\n'));
    expect(unknown.issues).toEqual([{ path: 'budgets[0].targets[0]', line: 2, message: 'names no target' }]);
  });
});

describe('request bodies per target', () => {
  const bodyOf = (target: string) =>
    parseConfig(`targets:\n  - {name: a, upstream: "http://x:1", ${target}}\n`).targets[0]!.body;

  it.each([
    ['http', 64 * 1024],
    ['graphql', 64 * 1024],
    ['llm', 1024 * 1024],
    ['mcp', 1024 * 1024],
    ['kubernetes', 1536 * 1024],
  ])('buffers %s bodies up to %i bytes by default', (protocol, limit) => {
    expect(bodyOf(`protocol: ${protocol}`)).toEqual({ mode: 'buffer', maxRequestBytes: limit });
  });

  it('takes a target’s own limit, and headers_only without one', () => {
    expect(bodyOf('protocol: llm, max_request_bytes: 4194304')).toEqual({
      mode: 'buffer',
      maxRequestBytes: 4194304,
    });
    expect(bodyOf('body: buffer, max_request_bytes: 1')).toEqual({ mode: 'buffer', maxRequestBytes: 1 });
    expect(bodyOf('body: headers_only')).toEqual({ mode: 'headers_only' });
    expect(bodyOf('protocol: kubernetes, body: headers_only')).toEqual({ mode: 'headers_only' });
  });

  it.each([
    [
      'protocol: mcp, body: headers_only',
      'targets[0].body',
      'headers_only cannot be used with protocol mcp: its view reads the request body',
    ],
    [
      'protocol: llm, body: headers_only',
      'targets[0].body',
      'headers_only cannot be used with protocol llm: its view reads the request body',
    ],
    [
      'protocol: graphql, body: headers_only',
      'targets[0].body',
      'headers_only cannot be used with protocol graphql: its view reads the request body',
    ],
    [
      'body: headers_only, max_request_bytes: 10',
      'targets[0].max_request_bytes',
      'applies only with body: buffer (a headers_only body is never buffered)',
    ],
    ['max_request_bytes: 8388609', 'targets[0].max_request_bytes', 'must be <= 8388608'],
    ['max_request_bytes: 0', 'targets[0].max_request_bytes', 'must be >= 1'],
    ['max_request_bytes: 1.5', 'targets[0].max_request_bytes', 'must be an integer'],
    ['body: stream', 'targets[0].body', 'must be one of "buffer", "headers_only"'],
  ])('refuses %s', (target, path, message) => {
    expect(() => bodyOf(target)).toThrow(ConfigError);
    try {
      bodyOf(target);
    } catch (err) {
      expect((err as ConfigError).issues).toEqual([{ path, line: 2, message }]);
    }
  });

  it('the route checksum follows the body setting', () => {
    const sum = (target: string) =>
      buildIr(parseConfig(`targets:\n  - {name: a, upstream: "http://x:1", ${target}}\n`)).listeners[0]!
        .virtualHosts[0]!.routes[0]!.checksum;
    expect(sum('max_request_bytes: 1000')).not.toBe(sum('max_request_bytes: 2000'));
    expect(sum('body: headers_only')).not.toBe(sum('body: buffer'));
    expect(sum('body: buffer')).toBe(sum(''));
  });
});

describe('parseConfig rejections: exact path, line and message', () => {
  const cases: [string, string, ConfigIssue[]][] = [
    [
      'unknown top-level key',
      'listeners: []\nlisteners2: 1\n',
      [
        { path: 'listeners', line: 1, message: 'must NOT have fewer than 1 items' },
        { path: 'listeners2', line: 2, message: 'unknown key "listeners2"' },
      ],
    ],
    [
      'unknown nested key (block style)',
      'targets:\n  - name: a\n    upstream: http://x:1\n    match:\n      host: [a.b]\n',
      [{ path: 'targets[0].match.host', line: 5, message: 'unknown key "host"' }],
    ],
    [
      'wrong types (flow style)',
      'envoy: {admin_port: "9901"}\nidentity: {issuers: [{issuer: https://i, audiences: x}]}\n',
      [
        { path: 'envoy.admin_port', line: 1, message: 'must be an integer' },
        { path: 'identity.issuers[0].audiences', line: 2, message: 'must be an array' },
      ],
    ],
    [
      'missing required keys',
      'targets:\n  - name: a\n  - upstream: http://x:1\nidentity: {}\n',
      [
        { path: 'targets[0]', line: 2, message: 'missing required key "upstream"' },
        { path: 'targets[1]', line: 3, message: 'missing required key "name"' },
        { path: 'identity', line: 4, message: 'missing required key "issuers"' },
      ],
    ],
    [
      'access: roles are lists of group names, nothing else',
      'access:\n  admins: security\n  auditor: [x]\n  reviewers: [""]\n',
      [
        { path: 'access.admins', line: 2, message: 'must be an array' },
        { path: 'access.auditor', line: 3, message: 'unknown key "auditor"' },
        { path: 'access.reviewers[0]', line: 4, message: 'must NOT have fewer than 1 characters' },
      ],
    ],
    [
      'enum',
      'targets: [{name: a, upstream: "http://x:1", protocol: grpc}]\n',
      [
        {
          path: 'targets[0].protocol',
          line: 1,
          message: 'must be one of "http", "mcp", "llm", "kubernetes", "graphql"',
        },
      ],
    ],
    [
      'patterns with hints',
      'authz: {address: "nohostport"}\ncontrol_plane: {xds_address: ":1"}\nlisteners: [{name: "Bad Name"}]\n',
      [
        {
          path: 'authz.address',
          line: 1,
          message: 'must be unix:/path/to/socket or host:port (an IPv6 address in brackets)',
        },
        {
          path: 'control_plane.xds_address',
          line: 2,
          message: 'must be unix:/path/to/socket or host:port (an IPv6 address in brackets)',
        },
        {
          path: 'listeners[0].name',
          line: 3,
          message:
            "must be 1-63 lowercase letters, digits, '-' or '_', starting and ending with a letter or digit",
        },
      ],
    ],
    [
      'mutually exclusive keys',
      'authz: {address: "a:1", addresses: ["b:1"]}\n',
      [{ path: 'authz', line: 1, message: 'set either address or addresses, not both' }],
    ],
    [
      'bounds',
      'identity: {issuers: [{issuer: "https://i", audiences: [a]}], clock_tolerance: 61}\n',
      [{ path: 'identity.clock_tolerance', line: 1, message: 'must be <= 60' }],
    ],
    [
      'the authz circuit breaker is a whole number in a sane range',
      'authz:\n  max_outstanding: 8\n',
      [{ path: 'authz.max_outstanding', line: 2, message: 'must be >= 16' }],
    ],
    [
      'the authz circuit breaker has a ceiling',
      'authz: {max_outstanding: 5000}\n',
      [{ path: 'authz.max_outstanding', line: 1, message: 'must be <= 4096' }],
    ],
    [
      'the authz circuit breaker is an integer',
      'authz: {max_outstanding: 64.5}\n',
      [{ path: 'authz.max_outstanding', line: 1, message: 'must be an integer' }],
    ],
    [
      'agent tokens live at most a day',
      'identity: {issuers: [{issuer: "https://i", audiences: [a]}], agent_token_max_ttl: 25h}\n',
      [{ path: 'identity.agent_token_max_ttl', line: 1, message: 'must be at most 24h' }],
    ],
    [
      'agent token lifetime is a duration',
      'identity: {issuers: [{issuer: "https://i", audiences: [a]}], agent_token_max_ttl: 1d}\n',
      [
        {
          path: 'identity.agent_token_max_ttl',
          line: 1,
          message: 'must be a duration like 15m or 1h (at most 24h)',
        },
      ],
    ],
    [
      'credential format without {}',
      'targets: [{name: a, upstream: "http://x:1", credentials: [{header: x, value: "env:A", format: Bearer}]}]\n',
      [
        {
          path: 'targets[0].credentials[0].format',
          line: 1,
          message: 'must contain {} where the secret goes',
        },
      ],
    ],
    [
      'listener address is an IP',
      'listeners: [{name: a, address: "::g"}]\n',
      [{ path: 'listeners[0].address', line: 1, message: 'must be an IP address' }],
    ],
    [
      'duplicate names',
      'targets:\n  - {name: a, upstream: "http://x:1"}\n  - {name: a, upstream: "http://x:2"}\n',
      [{ path: 'targets[1].name', line: 3, message: 'duplicate name (also targets[0].name)' }],
    ],
    [
      'duplicate credential headers',
      'targets:\n  - name: a\n    upstream: "http://x:1"\n    credentials:\n      - {header: x, value: "env:A"}\n      - {header: x, value: "env:B"}\n',
      [
        {
          path: 'targets[0].credentials[1].header',
          line: 6,
          message: 'duplicate header (also targets[0].credentials[0].header)',
        },
      ],
    ],
    [
      'insecure_skip_verify',
      'targets:\n  - name: a\n    upstream: "https://x"\n    tls:\n      insecure_skip_verify: true\n',
      [
        {
          path: 'targets[0].tls.insecure_skip_verify',
          line: 5,
          message:
            'is not supported: upstream certificates are always verified (give tls.ca_file for a private CA)',
        },
      ],
    ],
    [
      'an unknown key that looks like a pasted token is not echoed',
      'envoy: {}\nSk-Pasted-Token-1234: 1\n',
      [{ path: '', line: 2, message: 'unknown key (name not shown: it does not look like a key name)' }],
    ],
    ['not a mapping', '- a\n- b\n', [{ path: '', line: 1, message: 'must be an object' }]],
    [
      'YAML syntax error',
      'targets:\n  - name: a\n   upstream: x\n',
      [{ path: '', line: 3, column: 4, message: 'YAML: bad indentation of a sequence entry' }],
    ],
    [
      'duplicate YAML key',
      'envoy: {}\nenvoy: {}\n',
      [{ path: '', line: 2, column: 1, message: 'YAML: duplicated mapping key' }],
    ],
    [
      'mcp: only on MCP targets, a URL without query or fragment, someone to issue tokens',
      'targets:\n  - name: a\n    upstream: http://x:1\n    mcp: {resource: https://g/a}\n' +
        '  - name: b\n    upstream: http://x:1\n    protocol: mcp\n    mcp: {resource: "https://g/b?x=1"}\n' +
        '  - name: c\n    upstream: http://x:1\n    protocol: mcp\n    mcp: {resource: https://g/c}\n',
      [
        {
          path: 'targets[1].mcp.resource',
          line: 8,
          message: 'must be an http(s) URL without query or fragment',
        },
      ],
    ],
    [
      'limits: a window is required, targets must exist, per is user, agent or target',
      'targets:\n  - name: llm\n    upstream: http://x:1\nbudgets:\n  - {targets: [llm]}\n' +
        'rate_limits:\n  - {targets: [nope], per: team, requests_per_minute: 0}\n',
      [
        { path: 'budgets[0]', line: 5, message: 'missing required key "tokens_per_minute"' },
        { path: 'budgets[0]', line: 5, message: 'missing required key "tokens_per_day"' },
        { path: 'rate_limits[0].per', line: 7, message: 'must be one of "user", "agent", "target"' },
        { path: 'rate_limits[0].requests_per_minute', line: 7, message: 'must be >= 1' },
      ],
    ],
  ];
  it.each(cases)('%s', (_name, text, expected) => {
    const err = configError(() => parseConfig(text, 'c.yaml'));
    expect(err.code).toBe('ERR_CONFIG_INVALID');
    expect(err.file).toBe('c.yaml');
    expect(err.issues).toEqual(expected);
  });

  it('the message names file, line and path of every problem', () => {
    const err = configError(() =>
      parseConfig('targets:\n  - name: a\n    upstream: ftp://x\n    extra: 1\n', 'conf/gw.yaml'),
    );
    expect(err.message).toBe(
      'invalid configuration (2 problems):\n' +
        '  conf/gw.yaml:3: targets[0].upstream: must be an http:// or https:// URL\n' +
        '  conf/gw.yaml:4: targets[0].extra: unknown key "extra"',
    );
  });

  it('refuses anchors/aliases of collections (an alias bomb would expand every later walk)', () => {
    const bomb = [
      'a: &a [x, x, x, x, x, x, x, x]',
      ...'bcdefghij'
        .split('')
        .map((k, i) => `${k}: &${k} [${Array(8).fill(`*${'abcdefghij'[i]}`).join(', ')}]`),
    ].join('\n');
    expect(issuesOf(bomb)).toEqual([
      { path: '', message: 'YAML: anchors/aliases of collections are not supported (at b[0])' },
    ]);
  });

  it('refuses a file over 1 MiB before parsing it', () => {
    expect(issuesOf(`# ${'x'.repeat(1024 * 1024)}\n`)).toEqual([
      { path: '', message: 'file is larger than 1048576 bytes' },
    ]);
  });

  it('loadConfig names the file it cannot read', async () => {
    const err = await loadConfig('/nonexistent/chaperone.yaml').then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).message).toBe(
      'invalid configuration: /nonexistent/chaperone.yaml: cannot read the file (ENOENT)',
    );
  });
});

describe('secrets never appear in errors', () => {
  const SECRET = 'sk-live-S3CRET-value';
  const hostile = [
    `targets: [{name: a, upstream: "http://x:1", credentials: [{header: authorization, value: "${SECRET}"}]}]`,
    `targets: [{name: a, upstream: "http://x:1", credentials: [{header: authorization, value: "Bearer ${SECRET}"}]}]`,
    `targets: [{name: a, upstream: "https://user:${SECRET}@api.example.com"}]`,
    `targets: [{name: a, upstream: "https://${SECRET}@api.example.com/path?token=${SECRET}"}]`,
    `targets: [{name: a, upstream: "ftp://u:${SECRET}@x"}]`,
    `audit: {store: "mysql://u:${SECRET}@db/x"}`,
    `targets:\n  - name: a\n    credentials:\n      - value: "${SECRET}\n`,
    `targets: [{name: a, upstream: "http://x:1", credentials: [{header: a, value: {secret: "${SECRET}"}}]}]`,
    `${SECRET}: 1`,
    `identity: {issuers: [{issuer: "https://i", audiences: [a]}], token_header: "${SECRET}"}`,
  ];
  for (const [i, text] of hostile.entries()) {
    it(`hostile document #${i}`, () => {
      const err = configError(() => buildIr(parseConfig(text, 'c.yaml')));
      expect(err.issues.length).toBeGreaterThan(0);
      expect(err.message).not.toContain('S3CRET');
      expect(JSON.stringify(err.issues)).not.toContain('S3CRET');
    });
  }
});

describe('buildIr', () => {
  it('rejects combinations it cannot serve, all at once, with lines', () => {
    expect(
      irIssuesOf(`targets:
  - name: a
    upstream: https://api.example.com/v1
  - name: b
    upstream: http://127.0.0.1:1
    tls: {sni: x.example.com}
    match: {path_prefix: /b/}
  - name: c
    upstream: http://127.0.0.1:1
    match: {path_prefix: "/c//d"}
    prefix_rewrite: /x/
  - name: d
    upstream: http://127.0.0.1:1
    match: {path_prefix: /v1/, hosts: [a.example.com]}
  - name: e
    upstream: http://127.0.0.1:2
    match: {hosts: [b.example.com, a.example.com], path_prefix: /v1/}
listeners:
  - {name: l1, port: 10000}
  - {name: l2, address: 0.0.0.0, port: 10000}
`),
    ).toEqual([
      {
        path: 'targets[0].upstream',
        line: 3,
        message: 'must not have a path: use match.path_prefix with prefix_rewrite',
      },
      { path: 'targets[1].tls', line: 6, message: 'is only valid with an https:// upstream' },
      {
        path: 'targets[2].match.path_prefix',
        line: 10,
        message: 'must be a canonical path (no //, dot segments, %, ?, #, \\, ; or spaces)',
      },
      {
        path: 'targets[2].prefix_rewrite',
        line: 11,
        message: 'must end with "/" exactly when match.path_prefix does (it does not)',
      },
      {
        path: 'targets[4].match',
        line: 17,
        message:
          'matches the same requests as targets[3] (host a.example.com, path prefix /v1/): it could never be reached',
      },
      {
        path: 'listeners[1].port',
        line: 20,
        message: 'conflicts with listeners[0] (same port on an overlapping address)',
      },
    ]);
  });

  it('accepts the same prefix for different hosts, and a host-specific route over an any-host one', () => {
    const ir = buildIr(
      parseConfig(`targets:
  - {name: any, upstream: "http://127.0.0.1:1", match: {path_prefix: /v1/}}
  - {name: a, upstream: "http://127.0.0.1:2", match: {path_prefix: /v1/, hosts: [a.example.com]}}
  - {name: b, upstream: "http://127.0.0.1:3", match: {path_prefix: /v1/, hosts: [b.example.com]}}
  - {name: long, upstream: "http://127.0.0.1:4", match: {path_prefix: /v1/long/}}
`),
    );
    const vhosts = ir.listeners[0]!.virtualHosts.map((v) => [
      v.name,
      v.domains,
      v.routes.map((r) => r.routeId),
    ]);
    expect(vhosts).toEqual([
      ['egress/a.example.com', ['a.example.com'], ['long/0', 'a/0', 'any/0']],
      ['egress/b.example.com', ['b.example.com'], ['long/0', 'b/0', 'any/0']],
      ['egress/*', ['*'], ['long/0', 'any/0']],
    ]);
  });

  it('picks discovery and TLS from the upstream URL', () => {
    const ir = buildIr(
      parseConfig(`targets:
  - {name: dns, upstream: "https://API.Example.com:8443", match: {path_prefix: /a/}}
  - {name: ip, upstream: "https://[2001:db8::1]", match: {path_prefix: /b/}}
  - {name: plain, upstream: "http://10.1.2.3", match: {path_prefix: /c/}}
authz: {addresses: ["10.0.0.1:9191", "authz.svc:9191"]}
`),
    );
    const byName = Object.fromEntries(ir.clusters.map((c) => [c.name, c]));
    expect(byName['target/dns']).toEqual({
      name: 'target/dns',
      discovery: 'logical_dns',
      endpoints: [{ host: 'api.example.com', port: 8443 }],
      tls: {
        sni: 'api.example.com',
        caFile: '/etc/ssl/certs/ca-certificates.crt',
        subjectAltName: { type: 'DNS', value: 'api.example.com' },
      },
      dataPlaneTls: null,
      http2: false,
      connectTimeout: '5s',
    });
    expect(byName['target/ip']!.discovery).toBe('eds');
    expect(byName['target/ip']!.endpoints).toEqual([{ host: '2001:db8::1', port: 443 }]);
    expect(byName['target/ip']!.tls).toMatchObject({
      sni: null,
      subjectAltName: { type: 'IP_ADDRESS', value: '2001:db8::1' },
    });
    expect(byName['target/plain']).toMatchObject({
      discovery: 'eds',
      tls: null,
      endpoints: [{ host: '10.1.2.3', port: 80 }],
    });
    // TCP authz servers are reached with mutual TLS, from the files the control plane keeps; Envoy keeps
    // at most the default 256 Checks outstanding to each of the two.
    expect(byName['chaperone_authz']).toMatchObject({
      discovery: 'strict_dns',
      http2: true,
      dataPlaneTls: { serverUri: 'urn:chaperone:data-plane:server' },
      circuitBreakers: { maxRequests: 512, maxPendingRequests: 512 },
    });
    // Upstream targets keep Envoy's own bounds.
    expect(byName['target/dns']!.circuitBreakers).toBeUndefined();
    const hostRewrites = ir.listeners[0]!.virtualHosts[0]!.routes.map((r) => [r.target, r.hostRewrite]);
    expect(hostRewrites).toEqual([
      ['dns', 'api.example.com:8443'],
      ['ip', '[2001:db8::1]'],
      ['plain', '10.1.2.3'],
    ]);
  });

  it('checksums change with what the route serves and nothing else; revision is order-independent', () => {
    const doc = (upstream: string, ref: string, order: 'ab' | 'ba') => {
      const a = `  - {name: a, upstream: "${upstream}", match: {path_prefix: /a/}, credentials: [{header: x, value: "${ref}"}]}`;
      const b = '  - {name: b, upstream: "http://127.0.0.1:2", match: {path_prefix: /b/}}';
      return `targets:\n${order === 'ab' ? `${a}\n${b}` : `${b}\n${a}`}\n`;
    };
    const sums = (text: string): Record<string, string> => {
      const ir = buildIr(parseConfig(text));
      return {
        ...Object.fromEntries(ir.listeners[0]!.virtualHosts[0]!.routes.map((r) => [r.target, r.checksum])),
        revision: ir.revision,
      };
    };
    const base = sums(doc('http://127.0.0.1:1', 'env:A', 'ab'));
    expect(base['a']).toMatch(/^[0-9a-f]{16}$/);
    expect(sums(doc('http://127.0.0.1:1', 'env:A', 'ba'))).toEqual(base);
    const moved = sums(doc('http://127.0.0.1:9', 'env:A', 'ab'));
    expect(moved['a']).not.toBe(base['a']);
    expect(moved['b']).toBe(base['b']);
    expect(moved['revision']).not.toBe(base['revision']);
    expect(sums(doc('http://127.0.0.1:1', 'env:B', 'ab'))['a']).not.toBe(base['a']);
  });

  it('keeps credential references, never values', () => {
    process.env['CHAPERONE_TEST_SECRET'] = 'sk-resolved-S3CRET';
    try {
      const ir = buildIr(
        parseConfig(
          'targets: [{name: a, upstream: "http://127.0.0.1:1", credentials: [{header: authorization, value: "env:CHAPERONE_TEST_SECRET", format: "Bearer {}"}]}]',
        ),
      );
      expect(ir.targets[0]!.credentials).toEqual([
        { header: 'authorization', ref: 'env:CHAPERONE_TEST_SECRET', format: 'Bearer {}' },
      ]);
      expect(JSON.stringify(ir)).not.toContain('S3CRET');
    } finally {
      delete process.env['CHAPERONE_TEST_SECRET'];
    }
  });
});

describe('loadConfig from disk', () => {
  let dir = '';
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'chaperone-config-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reports the path it was given and resolves relative paths against the file', async () => {
    const file = join(dir, 'chaperone.yaml');
    await writeFile(file, 'policy: {dir: rego}\naudit: {spool_dir: spool}\n');
    const c = await loadConfig(file);
    expect(c.policy.source).toEqual({ kind: 'dir', path: join(dir, 'rego') });
    expect(c.audit.spoolDir).toBe(join(dir, 'spool'));
    await writeFile(file, 'policy:\n  dir: rego\n  entrypoint: "a/../b"\n');
    const err = await loadConfig(file).then(
      () => null,
      (e: unknown) => e as ConfigError,
    );
    expect(err?.message).toBe(
      `invalid configuration: ${file}:3: policy.entrypoint: must be a rule path like chaperone/authz/decision`,
    );
  });
});
