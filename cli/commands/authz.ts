// `chaperone authz serve`: runs the ext_authz gRPC server on its own (the way OPA-Envoy runs beside
// Envoy). `chaperone up` starts it together with the rest of the gateway.
import type { Command } from 'commander';
import pino from 'pino';
import { AUTHZ_DEFAULTS } from '../../authz-server/defaults.ts';
import { RemoteRevocations } from '../../authz-server/identity/remote-revocations.ts';
import { startAuthzServer } from '../../authz-server/server.ts';

interface ServeOptions {
  addr: string;
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
}

const collect = (value: string, previous: string[]) => [...previous, value];

export function registerAuthzCommands(program: Command): void {
  const authz = program.command('authz').description('the ext_authz decision server');
  authz
    .command('serve')
    .description('serve envoy.service.auth.v3.Authorization/Check')
    .option('--addr <host:port>', 'listen address', AUTHZ_DEFAULTS.address)
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
      'the gateway HTTP API: trust its agent tokens and apply its revocations (polled every 2 s)',
    )
    .action(async (o: ServeOptions) => {
      const logger = pino({ name: 'chaperone-authz', level: o.logLevel });
      if (o.issuer.length > 0 && o.audience.length === 0) {
        process.stderr.write('error: --issuer needs at least one --audience\n');
        process.exit(2);
      }
      const revocations = o.controlPlane
        ? new RemoteRevocations(o.controlPlane.replace(/\/$/, ''), logger)
        : null;
      revocations?.start();
      try {
        const server = await startAuthzServer({
          address: o.addr,
          policy: {
            ...(o.bundle ? { bundle: o.bundle } : { dir: o.policyDir }),
            entrypoint: o.entrypoint,
            watch: o.watch,
          },
          identity: {
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
                    },
                  ]
                : []),
            ],
          },
          logger,
          ...(revocations ? { revocation: revocations } : {}),
          ...(o.shadowDir || o.shadowBundle
            ? {
                shadow: {
                  ...(o.shadowBundle ? { bundle: o.shadowBundle } : { dir: o.shadowDir as string }),
                  entrypoint: o.entrypoint,
                },
              }
            : {}),
        });
        process.stderr.write(`chaperone authz: listening on ${server.address}\n`);
        const stop = () => void server.close().then(() => process.exit(0));
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      } catch (err) {
        process.stderr.write(`error: ${err instanceof Error ? err.message : String(err)}\n`);
        process.exit(2);
      }
    });
}
