// Step 6, injectCredentials: on an allow, the target's upstream credential is set and the caller's own
// token removed, so the upstream sees the edge's secret and never the agent's token. A credential that
// cannot be resolved turns the allow into ERR_CREDENTIAL_UNAVAILABLE: never send a request without it.
import type { Logger } from 'pino';
import { serverDeny } from '../result-mapper.ts';
import type { CheckState, Decided, DecisionContext, Step } from './check-state.ts';
import type { CheckDeps } from './deps.ts';

type OkResponse = NonNullable<Decided['response']['okResponse']>;

/** Sets the target's headers on `ok`; a problem description when one cannot be resolved. */
function setCredentials(
  ok: OkResponse,
  credentials: CheckDeps['credentials'],
  target: string | null,
): string | null {
  if (!credentials?.hasTarget(target)) return null;
  const injected = credentials.headersFor(target);
  if (!injected.ok) return injected.reason;
  for (const h of injected.headers) {
    // The edge's credential wins over anything the policy or the client put in that header.
    ok.headers = ok.headers.filter((o) => o.header.key !== h.key);
    ok.headers.push({ header: h, appendAction: 'OVERWRITE_IF_EXISTS_OR_ADD' });
  }
  return null;
}

export function injectCredentials(
  deps: Pick<CheckDeps, 'credentials' | 'identity' | 'tokenHeader'>,
  state: CheckState,
  decided: Decided,
  env: { ctx: DecisionContext; logger: Logger },
): Step<Decided> {
  const ok = decided.response.okResponse;
  if (!ok) return { ok: true, value: decided };
  const problem = setCredentials(ok, deps.credentials, state.target);
  if (problem) {
    env.logger.error(
      { decision_id: env.ctx.decisionId, target: state.target, detail: problem },
      'credential unavailable',
    );
    return { ok: false, deny: serverDeny('ERR_CREDENTIAL_UNAVAILABLE', env.ctx) };
  }
  const set = new Set(ok.headers.map((h) => h.header.key));
  const tokenHeader = (deps.tokenHeader ?? 'authorization').toLowerCase();
  // Only a token meant for Chaperone (an issuer is configured) is stripped; without identity
  // verification the header may be the upstream's own credential, as under OPA-Envoy.
  const callerToken = deps.identity !== null && state.headers.get(tokenHeader) !== undefined;
  if (callerToken && !set.has(tokenHeader) && !ok.headersToRemove.includes(tokenHeader)) {
    ok.headersToRemove.push(tokenHeader);
  }
  ok.headersToRemove = ok.headersToRemove.filter((name) => !set.has(name));
  return { ok: true, value: decided };
}
