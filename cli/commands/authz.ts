// `chaperone authz serve`: runs the ext_authz gRPC server on its own (the way OPA-Envoy runs beside
// Envoy). `chaperone up` starts it together with the rest of the gateway. It listens on a Unix socket
// (0600: only its user, i.e. its Envoy, can call Check) or, for a pool Envoys reach over the network, on
// TCP with mutual TLS: a server certificate it issues itself from the data-plane CA (`--tls-dir`, the
// gateway's `data_plane.tls.dir`, or `--tls-ca`/`--tls-ca-key`), renewed while it runs, and a client
// certificate from that CA required of every caller.
import { hostname } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import type { Command } from 'commander';
import pino, { type Logger } from 'pino';
import { startMetricsListener } from '../../api/metrics-listener.ts';
import { signAndAnchor } from '../../audit/anchor.ts';
import { type DecisionLogPush, decisionLogPush } from '../../audit/decision-log-push.ts';
import { secureNodeState } from '../../audit/node-state.ts';
import { SpoolRecorder } from '../../audit/recorder.ts';
import { Shipper } from '../../audit/shipper.ts';
import { Spool } from '../../audit/spool.ts';
import { openAuditStore } from '../../audit/store.ts';
import { type AuthzServerOptions, startAuthzServer } from '../../authz-server/server.ts';
import { AUTHZ_DEFAULTS } from '../../config/authz-defaults.ts';
import { CONFIG_DEFAULTS } from '../../config/defaults.ts';
import { AgentRegistry } from '../../fleet/agent-registry.ts';
import { ApprovalStore } from '../../fleet/approval-store.ts';
import { SharedState } from '../../fleet/shared-state.ts';
import { RemoteRevocations } from '../../identity/remote-revocations.ts';
import { parseDataPlaneAddress } from '../../lib/data-plane-address.ts';
import { CA_FILES, CertificateAuthority } from '../../pki/certificate-authority.ts';
import { RotatingCertificate } from '../../pki/rotating-certificate.ts';
import { Metrics } from '../../telemetry/metrics.ts';
import { startTracing } from '../../telemetry/tracing.ts';
import { action, usage } from '../exit.ts';
import {
  addFleetPolicyFlags,
  bundleServiceFromFlags,
  decisionLogsFromFlags,
  type FleetPolicyFlags,
  signingFromFlags,
} from '../policy/serve-flags.ts';

interface ServeOptions extends FleetPolicyFlags {
  addr: string;
  tlsDir?: string;
  tlsCa?: string;
  tlsCaKey?: string;
  tlsName: string[];
  plaintextTcp: boolean;
  bundle?: string;
  policyDir: string;
  entrypoint: string;
  issuer: string[];
  audience: string[];
  groupsClaim?: string;
  watch: boolean;
  logLevel: string;
  controlPlane?: string;
  shadowDir?: string;
  shadowBundle?: string;
  store?: string;
  spoolDir: string;
  transport?: 'grpc-js' | 'http2';
  metricsAddr?: string;
  metricsTokenFile?: string;
}

const LOOPBACK_ADDR = /^(127\.\d+\.\d+\.\d+|\[::1\]|localhost):\d+$/;

/** `--metrics-addr`: Prometheus metrics of this authz server on their own listener (docs/observability.md). */
async function serveMetrics(o: ServeOptions, logger: Logger) {
  if (!o.metricsAddr) return null;
  if (!o.metricsTokenFile && !LOOPBACK_ADDR.test(o.metricsAddr))
    throw usage('--metrics-addr is not a loopback address: give --metrics-token-file too');
  const metrics = new Metrics().withProcessMetrics();
  const listener = await startMetricsListener({
    address: o.metricsAddr,
    tokenFile: o.metricsTokenFile ?? null,
    logger: logger.child({ component: 'metrics' }),
    render: async () => ({ contentType: metrics.contentType, text: await metrics.render() }),
  });
  process.stderr.write(`chaperone authz: metrics at ${listener.url}/metrics\n`);
  return { metrics, listener };
}

/**
 * `--store`: this authz server joins a fleet. Revocations and approvals come from the shared
 * PostgreSQL (changes announced by NOTIFY, applied on the next Check), and its decisions are spooled
 * locally and shipped into the same audit trail as every other node's.
 */
async function joinFleet(o: ServeOptions, logger: Logger) {
  const url = o.store!.startsWith('env:') ? process.env[o.store!.slice(4)] : o.store!;
  if (!url) throw usage(`--store refers to environment variable ${o.store!.slice(4)}, which is not set`);
  const store = await openAuditStore({ url });
  await store.migrate();
  const state = await SharedState.open(
    store.sql,
    `${hostname()}/authz ${o.addr}`,
    logger.child({ component: 'state' }),
  );
  const agents = await AgentRegistry.open(state);
  const approvals = o.controlPlane ? await ApprovalStore.open(state) : null;
  // Its state directory (the spool's parent: signing key, anchor) is private; its batches are signed.
  const stateDir = dirname(o.spoolDir);
  await secureNodeState(stateDir, o.spoolDir, logger);
  const anchor = await signAndAnchor(store, stateDir, logger.child({ component: 'audit' }));
  const spool = await Spool.open({ dir: o.spoolDir });
  const shipper = new Shipper(spool, store, logger.child({ component: 'shipper' }));
  shipper.start();
  const base = o.controlPlane?.replace(/\/$/, '');
  return {
    options: {
      sharedState: state,
      revocation: agents,
      onDecision: (e) => agents.observe(e),
      recorder: new SpoolRecorder(spool),
      ...(approvals && base
        ? { approvals: { store: approvals, statusUrl: (id: string) => `${base}/approvals/status?id=${id}` } }
        : {}),
    } satisfies Partial<AuthzServerOptions>,
    close: async () => {
      await shipper.flush(10_000).catch(() => false);
      await shipper.stop();
      await anchor.flush();
      await spool.close();
      await agents.close();
      await state.close();
      await store.close();
    },
  };
}

const collect = (value: string, previous: string[]) => [...previous, value];

/** The configured issuers, plus the control plane's agent issuer when one is given. */
function identityOf(o: ServeOptions): NonNullable<AuthzServerOptions['identity']> {
  return {
    issuers: [
      ...o.issuer.map((issuer) => ({
        issuer,
        audiences: o.audience,
        ...(o.groupsClaim ? { groupsClaim: o.groupsClaim } : {}),
      })),
      ...(o.controlPlane
        ? [
            {
              issuer: o.controlPlane,
              audiences: ['chaperone'],
              jwksUri: `${o.controlPlane}/.well-known/jwks.json`,
              algorithms: ['ES256'],
              agentIssuer: true,
            },
          ]
        : []),
    ],
  };
}

/** `unix:relative` → absolute (the socket directory is created 0700 at bind). */
function listenAddress(addr: string): string {
  if (!addr.startsWith('unix:')) return addr;
  return `unix:${resolve(addr.slice('unix:'.length))}`;
}

/** TCP needs mutual TLS: this server's certificate from the data-plane CA, renewed; null on a socket. */
async function serverTls(
  o: ServeOptions,
  address: string,
  logger: Logger,
): Promise<RotatingCertificate | null> {
  let parsed: ReturnType<typeof parseDataPlaneAddress>;
  try {
    parsed = parseDataPlaneAddress(address);
  } catch (err) {
    throw usage(err instanceof Error ? err.message : String(err));
  }
  if (parsed.kind === 'unix') return null;
  if (o.plaintextTcp) {
    if (o.tlsDir || o.tlsCa) throw usage('--plaintext-tcp and --tls-* exclude each other');
    process.stderr.write(
      `chaperone authz: WARNING --plaintext-tcp: any process that reaches ${address} gets Check answers, upstream credentials included\n`,
    );
    return null;
  }
  if (!o.tlsDir && !(o.tlsCa && o.tlsCaKey))
    throw usage(
      `--addr ${address} is TCP, which needs mutual TLS: give --tls-dir <the gateway's data_plane.tls.dir> or --tls-ca and --tls-ca-key (or listen on a unix: socket)`,
    );
  if (!!o.tlsCa !== !!o.tlsCaKey) throw usage('--tls-ca and --tls-ca-key go together');
  const ca = await CertificateAuthority.open({
    dir: resolve(o.tlsDir ?? '.'),
    caCert: o.tlsCa ? resolve(o.tlsCa) : o.tlsDir ? join(resolve(o.tlsDir), CA_FILES.cert) : null,
    caKey: o.tlsCaKey ? resolve(o.tlsCaKey) : o.tlsDir ? join(resolve(o.tlsDir), CA_FILES.key) : null,
    warn: (m) => logger.warn(m),
  });
  const names = [...new Set(['localhost', '127.0.0.1', '::1', hostname(), parsed.host, ...o.tlsName])].filter(
    (n) => n !== '0.0.0.0' && n !== '::',
  );
  return RotatingCertificate.start(
    () =>
      ca.issue({
        role: 'server',
        commonName: `chaperone authz ${hostname()}`,
        names,
        validitySec: CONFIG_DEFAULTS.certValiditySec,
      }),
    {
      onRenewed: (c) =>
        logger.info({ serial: c.serial, not_after: c.notAfter }, 'server certificate renewed'),
      onError: (err) =>
        logger.error(
          { err: err instanceof Error ? err.message : String(err) },
          'server certificate renewal failed',
        ),
    },
  );
}

async function serve(o: ServeOptions): Promise<void> {
  const logger = pino({ name: 'chaperone-authz', level: o.logLevel });
  if (o.issuer.length > 0 && o.audience.length === 0) throw usage('--issuer needs at least one --audience');
  const address = listenAddress(o.addr);
  const tls = await serverTls(o, address, logger);
  let fleet: Awaited<ReturnType<typeof joinFleet>> | null = null;
  let logs: DecisionLogPush | null = null;
  const revocations =
    o.controlPlane && !o.store ? new RemoteRevocations(o.controlPlane.replace(/\/$/, ''), logger) : null;
  revocations?.start();
  const tracer = await startTracing({ serviceName: 'chaperone-authz', logger });
  let metrics: Awaited<ReturnType<typeof serveMetrics>> = null;
  try {
    metrics = await serveMetrics(o, logger);
    if (o.store) fleet = await joinFleet(o, logger);
    const logsConfig = decisionLogsFromFlags(o);
    logs = logsConfig ? decisionLogPush(logsConfig, { entrypoint: o.entrypoint, logger }) : null;
    logs?.start();
    const server = await startAuthzServer({
      address,
      tls,
      policy: {
        ...(o.bundle ? { bundle: o.bundle } : { dir: o.policyDir }),
        entrypoint: o.entrypoint,
        watch: o.watch,
        signing: signingFromFlags(o),
        bundleService: bundleServiceFromFlags(o),
      },
      identity: identityOf(o),
      logger,
      ...(o.transport ? { transport: o.transport } : {}),
      ...(revocations ? { revocation: revocations } : {}),
      ...fleet?.options,
      onDecision: (e) => {
        fleet?.options.onDecision(e);
        logs?.add(e);
      },
      telemetry: { ...(metrics ? { metrics: metrics.metrics } : {}), tracer },
      ...(o.shadowDir || o.shadowBundle || o.shadowRevision
        ? {
            shadow: {
              ...(o.shadowRevision
                ? { revision: o.shadowRevision }
                : o.shadowBundle
                  ? { bundle: o.shadowBundle }
                  : { dir: o.shadowDir as string }),
              entrypoint: o.entrypoint,
            },
          }
        : {}),
    });
    process.stderr.write(
      `chaperone authz: listening on ${server.address}${tls ? ' (mutual TLS: a client certificate from the data-plane CA is required)' : ''}${o.store ? ' (fleet member: shared store)' : ''}\n`,
    );
    const stop = () =>
      void server
        .close()
        .then(() => logs?.stop())
        .then(() => tls?.close())
        .then(() => fleet?.close())
        .then(() => metrics?.listener.close())
        .then(() => tracer?.shutdown())
        .finally(() => process.exit(0));
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  } catch (err) {
    tls?.close();
    revocations?.stop();
    logs?.stop();
    await fleet?.close().catch(() => undefined);
    await metrics?.listener.close();
    await tracer?.shutdown().catch(() => undefined);
    throw err;
  }
}

export function registerAuthzCommands(program: Command): void {
  const authz = program.command('authz').description('the ext_authz decision server');
  addFleetPolicyFlags(authz.command('serve'))
    .description('serve envoy.service.auth.v3.Authorization/Check')
    .option(
      '--addr <unix:/path|host:port>',
      'listen address: a Unix socket (0600), or TCP with mutual TLS (--tls-dir or --tls-ca/--tls-ca-key)',
      AUTHZ_DEFAULTS.socket,
    )
    .option(
      '--tls-dir <dir>',
      "TCP: the data-plane CA's directory (the gateway's data_plane.tls.dir: ca.pem, ca-key.pem)",
    )
    .option('--tls-ca <file>', "TCP: the data-plane CA certificate (the operator's; with --tls-ca-key)")
    .option('--tls-ca-key <file>', 'TCP: the data-plane CA key')
    .option(
      '--tls-name <name>',
      'TCP: a DNS name or IP Envoys use to reach this server (repeatable)',
      collect,
      [],
    )
    .option(
      '--plaintext-tcp',
      'serve TCP without TLS, for benchmarks on an isolated host only: any process that reaches the port gets answers',
      false,
    )
    .option('--bundle <file>', 'a built WASM bundle (.tar.gz from `chaperone policy build`)')
    .option('--policy-dir <dir>', 'a Rego directory compiled to WASM at start-up', AUTHZ_DEFAULTS.policyDir)
    .option('--entrypoint <path>', 'policy decision path', AUTHZ_DEFAULTS.entrypoint)
    .option('--issuer <url>', 'trusted OIDC issuer (repeatable)', collect, [])
    .option('--audience <aud>', 'accepted token audience (repeatable)', collect, [])
    .option('--groups-claim <path>', 'claim path holding the groups')
    .option('--watch', 'reload the policy when the bundle or directory changes', false)
    .option('--log-level <level>', 'pino log level (decision lines are info)', 'info')
    .option('--shadow-dir <dir>', 'shadow mode: a candidate Rego directory evaluated too, never enforced')
    .option('--shadow-bundle <file>', 'shadow mode: a candidate bundle evaluated too, never enforced')
    .option(
      '--control-plane <url>',
      'the control plane (its agent issuer URL): trust its agent tokens; without --store, poll its revocations every 2 s',
    )
    .option(
      '--store <url>',
      'join a fleet: the shared PostgreSQL (postgres://… or env:NAME) for revocations, approvals and the audit trail',
    )
    .option('--spool-dir <dir>', 'with --store: the local audit spool', '.chaperone/authz-spool')
    .option('--transport <grpc-js|http2>', 'Check transport: @grpc/grpc-js, or the lean node:http2 server')
    .option('--metrics-addr <host:port>', 'serve Prometheus metrics at http://<host:port>/metrics')
    .option(
      '--metrics-token-file <file>',
      "scrapers must send this file's content as a bearer token (required off loopback)",
    )
    .action(action('authz serve', serve));
}
