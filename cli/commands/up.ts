// `chaperone up [--config chaperone.yaml] [--dev]`: runs the gateway in the foreground with a status
// line per component. `--dev` adds the dev OIDC issuer (users alice, bob, carol), the demo upstream
// under /demo and a config for them; `npm start` runs exactly that.
import { dirname, resolve } from 'node:path';
import type { Command } from 'commander';
import pino from 'pino';
import { ConfigError } from '../../config/errors.ts';
import { loadConfig } from '../../config/load-config.ts';
import type { Config } from '../../config/types.ts';
import { openAuditRuntime } from '../../gateway/audit-runtime.ts';
import { type Gateway, startGateway } from '../../gateway/gateway.ts';
import { assertPortsFree, PortInUseError } from '../../lib/ports.ts';
import { startDemoUpstream } from '../dev/demo-upstream.ts';
import { DEV_DEFAULTS, devConfig } from '../dev/dev-config.ts';
import { startDevIdp } from '../dev/dev-idp.ts';

interface UpOptions {
  config?: string;
  dev: boolean;
  logLevel: string;
  devIdpPort: string;
  demoPort: string;
  shadowPolicy?: string;
}

const line = (component: string, detail: string) =>
  process.stderr.write(`  ✓ ${component.padEnd(15)} ${detail}\n`);

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
      '--shadow-policy <dir|bundle.tar.gz|rN>',
      'shadow mode: evaluate this candidate policy too; record differences, never enforce',
    )
    .action(async (o: UpOptions) => {
      const code = await runUp(o);
      if (code !== 0) process.exit(code);
    });
}

async function runUp(o: UpOptions): Promise<number> {
  const logger = pino({ name: 'chaperone', level: o.logLevel }, pino.destination(2));
  const cleanups: (() => Promise<void>)[] = [];
  let gateway: Gateway | null = null;
  const started = Date.now();
  try {
    let config: Config;
    let configPath: string | null = null;
    const extraRoutes: NonNullable<Parameters<typeof startGateway>[0]['apiRoutes']> = {};
    if (!o.config && !o.dev) {
      process.stderr.write('chaperone up: give --config <chaperone.yaml>, or --dev for the demo set-up\n');
      return 2;
    }
    process.stderr.write(`chaperone up${o.dev ? ' --dev' : ''}: starting\n`);
    if (o.dev) {
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
      extraRoutes['GET /dev/token'] = async (req) => {
        const user = req.url.searchParams.get('user') ?? '';
        if (!DEV_DEFAULTS.users.some((u) => u.sub === user)) {
          return {
            status: 404,
            body: { error: 'unknown_user', users: DEV_DEFAULTS.users.map((u) => u.sub) },
          };
        }
        const ttl = Number(req.url.searchParams.get('ttl') ?? 3600);
        return {
          status: 200,
          body: { user, token: await idp.tokenFor(user, { ttlSec: ttl }), expires_in: ttl },
        };
      };
      config = o.config
        ? await loadConfig(o.config)
        : devConfig({ issuer: idp.issuer, demoUpstreamPort: demo.port });
      if (o.config) configPath = resolve(o.config);
    } else {
      configPath = resolve(o.config as string);
      config = await loadConfig(configPath);
    }
    const stateDir = dirname(config.audit.spoolDir);
    gateway = await startGateway({
      config,
      configPath,
      stateDir,
      logger,
      apiRoutes: extraRoutes,
      ...(o.shadowPolicy
        ? {
            shadowPolicy: /^r[0-9]+$/.test(o.shadowPolicy)
              ? { revision: o.shadowPolicy }
              : o.shadowPolicy.endsWith('.tar.gz')
                ? { bundle: resolve(o.shadowPolicy) }
                : { dir: resolve(o.shadowPolicy) },
          }
        : {}),
      openAudit: () => openAuditRuntime({ config, stateDir, logger: logger.child({ component: 'audit' }) }),
      onStatus: line,
    });
    const listener = config.listeners[0];
    process.stderr.write(
      `chaperone is up in ${((Date.now() - started) / 1000).toFixed(1)} s; Ctrl-C stops it.\n`,
    );
    if (o.dev && listener) {
      const api = config.controlPlane.httpAddress;
      process.stderr.write(
        `\n  TOKEN=$(./chaperone dev token alice)\n` +
          `  curl -H "Authorization: Bearer $TOKEN" http://${listener.address}:${listener.port}/demo/items\n` +
          `  (bob is denied; no token is 401; status: curl http://${api}/status)\n\n`,
      );
    }
  } catch (err) {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
    if (err instanceof PortInUseError || err instanceof ConfigError) {
      process.stderr.write(`chaperone up: ${err.message}\n`);
      return 2;
    }
    process.stderr.write(`chaperone up: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }

  await new Promise<void>((resolveStop) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      process.stderr.write(`chaperone: ${signal}, stopping (flushing the audit spool)…\n`);
      void (async () => {
        await gateway?.stop();
        for (const c of cleanups.reverse()) await c().catch(() => undefined);
        process.stderr.write('chaperone: stopped\n');
        resolveStop();
      })();
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
  return 0;
}
