// `chaperone up [--config chaperone.yaml] [--dev]`: runs the gateway in the foreground with a status
// line per component. `--dev` adds the dev OIDC issuer (users alice, bob, carol — carol holds every
// role), the demo upstream under /demo, dev tokens on the loopback API and a config for them;
// `npm start` runs exactly that.
import { dirname, resolve } from 'node:path';
import type { Command } from 'commander';
import pino from 'pino';
import { loadConfig } from '../../config/load-config.ts';
import type { Config } from '../../config/types.ts';
import { openAuditRuntime } from '../../gateway/audit-runtime.ts';
import { type DevTokens, type Gateway, type GatewayOptions, startGateway } from '../../gateway/gateway.ts';
import { assertPortsFree } from '../../lib/ports.ts';
import { startDemoUpstream } from '../dev/demo-upstream.ts';
import { DEV_DEFAULTS, devConfig } from '../dev/dev-config.ts';
import { startDevIdp } from '../dev/dev-idp.ts';
import { action, usage } from '../exit.ts';

interface UpOptions {
  config?: string;
  dev: boolean;
  logLevel: string;
  devIdpPort: string;
  demoPort: string;
  shadowPolicy?: string;
  envoy: string;
}

type Cleanup = () => Promise<void>;

const line = (component: string, detail: string, state: 'up' | 'down' = 'up') =>
  process.stderr.write(`  ${state === 'up' ? '✓' : '✗'} ${component.padEnd(15)} ${detail}\n`);

export function registerUpCommand(program: Command): void {
  program
    .command('up')
    .description('run the gateway: control plane, authz server, Envoy and the audit trail')
    .option('-c, --config <file>', 'chaperone.yaml (default with --dev: a built-in demo config)')
    .option(
      '--dev',
      'add a dev OIDC issuer with demo users, a demo upstream under /demo and dev tokens',
      false,
    )
    .option('--dev-idp-port <port>', 'port of the dev OIDC issuer', String(DEV_DEFAULTS.idpPort))
    .option('--demo-port <port>', 'port of the demo upstream', String(DEV_DEFAULTS.demoUpstreamPort))
    .option('--log-level <level>', 'log level (decision lines are info)', 'warn')
    .option(
      '--envoy <managed|external>',
      'managed: run Envoy as a supervised child; external: serve xDS to an Envoy that systemd or Kubernetes runs (`chaperone envoy bootstrap --config …`)',
      'managed',
    )
    .option(
      '--shadow-policy <dir|bundle.tar.gz|rN>',
      'shadow mode: evaluate this candidate policy too; record differences, never enforce',
    )
    .action(action('up', runUp));
}

/** The dev issuer and demo upstream, and the config for them unless one was given. */
async function startDev(
  o: UpOptions,
  cleanups: Cleanup[],
): Promise<{ config: Config; configPath: string | null; devTokens: DevTokens }> {
  const idpPort = Number(o.devIdpPort);
  const demoPort = Number(o.demoPort);
  await assertPortsFree([
    { component: 'dev OIDC issuer', host: '127.0.0.1', port: idpPort, override: '--dev-idp-port' },
    { component: 'demo upstream', host: '127.0.0.1', port: demoPort, override: '--demo-port' },
  ]);
  const idp = await startDevIdp({
    port: idpPort,
    users: [...DEV_DEFAULTS.users].map((u) => ({ ...u, groups: [...u.groups] })),
    audience: DEV_DEFAULTS.audience,
  });
  cleanups.push(() => idp.close());
  line(
    'dev issuer',
    `${idp.issuer}  users ${DEV_DEFAULTS.users.map((u) => `${u.sub} (${u.groups.join(',')})`).join(', ')}`,
  );
  const demo = await startDemoUpstream('127.0.0.1', demoPort);
  cleanups.push(() => demo.close());
  line('demo upstream', demo.url);
  const devTokens: DevTokens = {
    users: DEV_DEFAULTS.users.map((u) => u.sub),
    tokenFor: (user, ttlSec) => idp.tokenFor(user, { ttlSec }),
  };
  if (o.config) return { config: await loadConfig(o.config), configPath: resolve(o.config), devTokens };
  return {
    config: devConfig({ issuer: idp.issuer, demoUpstreamPort: demo.port }),
    configPath: null,
    devTokens,
  };
}

function printDevHints(config: Config): void {
  const listener = config.listeners[0];
  if (!listener) return;
  const api = config.controlPlane.httpAddress;
  process.stderr.write(
    `\n  TOKEN=$(./chaperone dev token alice)\n` +
      `  curl -H "Authorization: Bearer $TOKEN" http://${listener.address}:${listener.port}/demo/items\n` +
      `  (bob is denied; no token is 401; status, as carol who holds every role:\n` +
      `   curl -H "Authorization: Bearer $(./chaperone dev token carol)" http://${api}/status)\n` +
      (config.console.enabled
        ? `  console: ${config.controlPlane.issuer}/console/ (sign in as carol)\n\n`
        : '\n'),
  );
}

function shadowOption(o: UpOptions): Pick<GatewayOptions, 'shadowPolicy'> {
  if (!o.shadowPolicy) return {};
  // `r7`: a revision published to the shared store (`chaperone policy revisions`).
  if (/^r[0-9]+$/.test(o.shadowPolicy)) return { shadowPolicy: { revision: o.shadowPolicy } };
  const p = resolve(o.shadowPolicy);
  return { shadowPolicy: o.shadowPolicy.endsWith('.tar.gz') ? { bundle: p } : { dir: p } };
}

/** Resolves on SIGINT/SIGTERM once everything is stopped (the audit spool flushed first). */
function untilSignal(gateway: Gateway, cleanups: Cleanup[]): Promise<void> {
  return new Promise<void>((resolveStop) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      process.stderr.write(`chaperone: ${signal}, stopping (flushing the audit spool)…\n`);
      void (async () => {
        await gateway.stop();
        for (const c of cleanups.reverse()) await c().catch(() => undefined);
        process.stderr.write('chaperone: stopped\n');
        resolveStop();
      })();
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
}

async function runUp(o: UpOptions): Promise<void> {
  if (!o.config && !o.dev) throw usage('give --config <chaperone.yaml>, or --dev for the demo set-up');
  if (o.envoy !== 'managed' && o.envoy !== 'external') throw usage('--envoy must be managed or external');
  const logger = pino({ name: 'chaperone', level: o.logLevel }, pino.destination(2));
  const cleanups: Cleanup[] = [];
  const started = Date.now();
  let gateway: Gateway;
  let config: Config;
  try {
    process.stderr.write(`chaperone up${o.dev ? ' --dev' : ''}: starting\n`);
    const dev = o.dev ? await startDev(o, cleanups) : null;
    const configPath = dev ? dev.configPath : resolve(o.config as string);
    config = dev ? dev.config : await loadConfig(configPath as string);
    const stateDir = dirname(config.audit.spoolDir);
    const cfg = config;
    gateway = await startGateway({
      config,
      configPath,
      stateDir,
      logger,
      ...(dev ? { devTokens: dev.devTokens } : {}),
      ...shadowOption(o),
      envoy: o.envoy === 'external' ? 'external' : 'managed',
      openAudit: () =>
        openAuditRuntime({ config: cfg, stateDir, logger: logger.child({ component: 'audit' }) }),
      onStatus: line,
    });
  } catch (err) {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
    throw err;
  }
  process.stderr.write(
    `chaperone is up in ${((Date.now() - started) / 1000).toFixed(1)} s; Ctrl-C stops it.\n`,
  );
  if (o.dev) printDevHints(config);
  await untilSignal(gateway, cleanups);
}
