// The metrics listener (`telemetry.metrics.address`, `authz serve --metrics-addr`): its own port, apart
// from the HTTP API, because Prometheus carries no OIDC token. It serves api/routes/metrics.ts through
// the same gates as the API (Host allow-list, timeouts, connection cap, the declared caller): with
// `token_file` a scraper must send that bearer token; without one the config allows loopback only.
import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import { IdentityVerifier } from '../identity/verifier.ts';
import { splitHostPort } from '../lib/ports.ts';
import { type HostAllowList, hostAllowList } from './host-allow-list.ts';
import { type HttpApi, startHttpApi } from './http-api.ts';
import { type MetricsRouteDeps, metricsRoutes } from './routes/metrics.ts';

export interface MetricsListenerOptions extends MetricsRouteDeps {
  /** host:port (port 0: any free port). */
  address: string;
  /** A file holding the bearer token scrapers send; null: no token (loopback only, checked by config). */
  tokenFile: string | null;
  logger: Logger;
}

const ANY_HOST: HostAllowList = { host: () => true, origin: (v) => v === undefined, names: [] };

/** The token file's content, trimmed; an empty file is an error (it would accept an empty token). */
async function readToken(file: string): Promise<string> {
  const token = (await readFile(file, 'utf8')).trim();
  if (!token) throw new Error(`${file} is empty`);
  return token;
}

export function startMetricsListener(o: MetricsListenerOptions): Promise<HttpApi> {
  const bind = splitHostPort(o.address);
  const routeDeps: MetricsRouteDeps = {
    render: o.render,
    ...(o.envoyAdminUrl ? { envoyAdminUrl: o.envoyAdminUrl } : {}),
  };
  const { tokenFile } = o;
  return startHttpApi({
    ...bind,
    routes: metricsRoutes(routeDeps),
    logger: o.logger,
    // With a token, any Host: Prometheus names a pod by its IP; a page rebinding a name cannot send
    // the token. Without one (loopback only), the API's DNS-rebinding defence applies. No browser
    // origin is ever served.
    hosts: tokenFile ? ANY_HOST : hostAllowList({ bindHost: bind.host, publicUrls: [] }),
    // No person signs in here: no issuer is trusted, no role is held; only `scraper` routes exist.
    auth: {
      verifier: new IdentityVerifier({ issuers: [] }),
      agentIssuer: '',
      revocation: { revoked: () => null, exchangeRefused: () => null },
      access: { admins: [], auditors: [], reviewers: [] },
      scraper: { token: () => (tokenFile ? readToken(tokenFile) : Promise.resolve(null)) },
    },
    limits: { maxConnections: 32 },
  });
}
