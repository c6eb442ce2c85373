// Component `http api`: every route of api/routes/ behind the one authentication hook. It starts
// before the authz server because Chaperone's own issuer (discovery, JWKS) is served from it and the
// authz server fetches those keys at start; /readyz and /status read the components started after it.

import type { CallerAuth } from '../../api/authenticate.ts';
import { consoleError } from '../../api/console/pages/auth.ts';
import { SessionStore } from '../../api/console/sessions.ts';
import { ConsoleSignIn } from '../../api/console/sign-in.ts';
import { hostAllowList } from '../../api/host-allow-list.ts';
import { type HttpApi, startHttpApi } from '../../api/http-api.ts';
import type { ConsoleDeps } from '../../api/routes/console.ts';
import { apiRoutes } from '../../api/routes/index.ts';
import { IdentityVerifier } from '../../identity/verifier.ts';
import { splitHostPort } from '../../lib/ports.ts';
import type { GatewayComponent } from '../component.ts';
import { type GatewayContext, need } from '../context.ts';
import { apiIdentity } from '../identity.ts';

const LOOPBACK = /^(127\.|::1$|localhost$)/;

/** Envoy ready (not restarting), a policy loaded and at least one Envoy on the control plane. */
async function ready(ctx: GatewayContext): Promise<boolean> {
  const { envoy, authz, ads } = ctx;
  if (!envoy || !authz || !ads) return false;
  return authz.policy.current() !== null && ads.currentCount() > 0 && (await envoy.ready());
}

/** Dev tokens only in dev mode and only on a loopback API; otherwise the route does not exist. */
function devTokens(ctx: GatewayContext, bindHost: string) {
  const dev = ctx.options.devTokens;
  if (!dev) return { dev: undefined, note: '' };
  if (!LOOPBACK.test(bindHost)) {
    ctx.logger.warn({ bind: bindHost }, 'dev tokens are off: the HTTP API does not listen on loopback');
    return { dev: undefined, note: '  (dev tokens off: API not on loopback)' };
  }
  return { dev, note: '  dev tokens at /dev/token (loopback, --dev)' };
}

/** The web console, when enabled and an issuer is there to sign in with: sessions, sign-in, stores. */
function consoleDeps(
  ctx: GatewayContext,
  auth: CallerAuth,
  sessions: SessionStore | undefined,
  devUsers?: readonly string[],
): ConsoleDeps | undefined {
  const { config } = ctx;
  const c = config.console;
  const issuer = c.issuer ?? config.identity?.issuers[0]?.issuer;
  if (!c.enabled || !issuer || !sessions) return undefined;
  const audit = need(ctx, 'audit');
  const publicUrl = config.controlPlane.issuer;
  const signIn = new ConsoleSignIn({
    issuer,
    clientId: c.clientId,
    clientSecret: c.clientSecret,
    scopes: c.scopes,
    resource: c.resource,
    redirectUri: `${publicUrl}/console/callback`,
    auth,
    logger: ctx.logger.child({ component: 'console' }),
  });
  return {
    sessions,
    signIn,
    approvals: need(ctx, 'approvals'),
    agents: need(ctx, 'agents'),
    ...(audit.trail ? { trail: audit.trail } : {}),
    ...(audit.verifyTrail ? { verifyTrail: audit.verifyTrail } : {}),
    ...(ctx.outbox ? { outbox: ctx.outbox } : {}),
    status: () => ctx.running?.status() ?? {},
    ...(audit.recordAdmin ? { recordAdmin: audit.recordAdmin } : {}),
    ...(devUsers ? { devUsers } : {}),
  };
}

/** Sessions for the console (none when it is off); plain http beyond loopback is warned about once. */
function consoleSessions(ctx: GatewayContext): SessionStore | undefined {
  const { config } = ctx;
  if (!config.console.enabled || !config.identity) return undefined;
  const publicUrl = new URL(config.controlPlane.issuer);
  if (publicUrl.protocol === 'http:' && !LOOPBACK.test(publicUrl.hostname))
    ctx.logger.warn(
      { url: publicUrl.origin },
      'the console is served over plain http beyond loopback: its session cookie cannot be Secure; put TLS in front and set control_plane.issuer to the https URL',
    );
  return new SessionStore(need(ctx, 'audit').state.sql, {
    ttlMs: config.console.sessionTtlMs,
    idleMs: config.console.sessionIdleMs,
    publicUrl: config.controlPlane.issuer,
  });
}

function warnWithoutRoles(ctx: GatewayContext): void {
  const a = ctx.config.access;
  if (a.admins.length + a.auditors.length + a.reviewers.length === 0)
    ctx.logger.warn(
      'access: names no groups: the audit trail, approvals, /status and key rotation refuse everyone',
    );
}

export function httpApiComponent(): GatewayComponent<GatewayContext> {
  let api: HttpApi | null = null;
  return {
    name: 'http api',
    async start(ctx) {
      const { config } = ctx;
      const audit = need(ctx, 'audit');
      const bind = splitHostPort(config.controlPlane.httpAddress);
      const { dev, note } = devTokens(ctx, bind.host);
      warnWithoutRoles(ctx);
      const sessions = consoleSessions(ctx);
      const auth: CallerAuth = {
        verifier: new IdentityVerifier(apiIdentity(config)),
        agentIssuer: config.controlPlane.issuer,
        revocation: need(ctx, 'agents'),
        access: config.access,
        ...(sessions ? { sessions } : {}),
      };
      const consoleApp = consoleDeps(ctx, auth, sessions, dev?.users);
      const routes = apiRoutes({
        health: { ready: () => ready(ctx), status: () => ctx.running?.status() ?? {} },
        ...(audit.trail
          ? {
              audit: {
                trail: audit.trail,
                entrypoint: config.policy.entrypoint,
                ...(audit.verifyTrail ? { verify: audit.verifyTrail } : {}),
              },
            }
          : {}),
        approvals: need(ctx, 'approvals'),
        agents: {
          issuer: config.controlPlane.issuer,
          keys: audit.keys,
          registry: need(ctx, 'agents'),
          usage: need(ctx, 'usage'),
          ...(config.identity ? { maxTtlMs: config.identity.agentTokenMaxTtlMs } : {}),
        },
        ...(audit.recordAdmin ? { recordAdmin: audit.recordAdmin } : {}),
        ...(dev ? { dev } : {}),
        ...(consoleApp ? { console: consoleApp } : {}),
      });
      api = await startHttpApi({
        ...bind,
        logger: ctx.logger.child({ component: 'api' }),
        routes,
        auth,
        hosts: hostAllowList({ bindHost: bind.host, publicUrls: [config.controlPlane.issuer] }),
        consoleError,
      });
      ctx.api = api;
      ctx.say('http api', `${api.url}  /healthz /readyz /status /audit /approvals /agents${note}`);
      if (consoleApp)
        ctx.say(
          'console',
          `${config.controlPlane.issuer}/console/  sign in with ${consoleApp.signIn.issuer}`,
        );
    },
    async stop() {
      await api?.close();
    },
    status: () => null,
  };
}
