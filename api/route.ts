// What a route of the HTTP API is: method, path, the caller it requires and its handler. The caller is
// declared next to the handler (api/routes/<area>.ts) and enforced by one hook (api/authenticate.ts)
// before the handler runs, so a handler never sees a request its declaration does not allow.
import type { IncomingHttpHeaders } from 'node:http';
import type { Identity } from '../contracts/identity.ts';

/** Roles come from the IdP groups listed under `access:` in chaperone.yaml. */
export type Role = 'admin' | 'auditor' | 'reviewer';
export const ROLES: readonly Role[] = ['admin', 'auditor', 'reviewer'];

/**
 * Who may call a route:
 * - `anonymous`: anyone who can reach the API; only for answers that are public by nature (health
 *   without detail, public keys, discovery) — each such route says why next to its declaration;
 * - `subject_token`: the RFC 8693 token endpoint: the human's own token travels in the body as
 *   `subject_token` and is verified like a bearer token (a human, never an agent);
 * - `human`: a verified person (an OIDC token from a configured issuer, no `act` claim);
 * - `human_or_agent`: also an unrevoked agent token; the handler narrows what an agent sees to its own;
 * - `{ role: [...] }`: a verified person holding one of these roles;
 * - `scraper`: a metrics scraper on the metrics listener only (api/metrics-listener.ts): the bearer
 *   token of `telemetry.metrics.token_file` when one is configured, else anyone who reaches the
 *   listener (which then binds loopback only). Refused on every other listener.
 * - `session`: a person signed in to the web console (its session cookie; never a bearer token), with
 *   the console's CSRF checks on POST (api/authenticate.ts);
 * - `{ session: [...] }`: such a person holding one of these roles.
 */
export type Caller =
  | 'anonymous'
  | 'subject_token'
  | 'human'
  | 'human_or_agent'
  | 'scraper'
  | 'session'
  | { role: readonly Role[] }
  | { session: readonly Role[] };

/** A signed-in console session, as a handler sees it (the cookie value never reaches handlers). */
export interface SessionInfo {
  /** The synchronizer token every console form posts back. */
  csrf: string;
  expiresAt: string;
}

/** A console route: the caller comes from a session cookie, and errors answer as pages. */
export const isSessionCaller = (c: Caller): c is 'session' | { session: readonly Role[] } =>
  c === 'session' || (typeof c === 'object' && 'session' in c);

/** The roles a declaration requires (empty: none). */
export function requiredRoles(c: Caller): readonly Role[] {
  if (typeof c !== 'object') return [];
  return 'role' in c ? c.role : c.session;
}

export interface ApiResponse {
  status: number;
  body: unknown;
  headers?: Record<string, string | string[]>;
  /**
   * A streamed answer (server-sent events): written after the headers until it resolves or the client
   * goes away (`closed` aborts). `body` is ignored then.
   */
  stream?: (out: { write(chunk: string): void; closed: AbortSignal }) => Promise<void>;
}

export interface ApiRequest {
  method: string;
  url: URL;
  headers: IncomingHttpHeaders;
  /** Parsed JSON or form body; null when there is none. */
  body: unknown;
  /** The verified caller (null only on anonymous routes). */
  caller: Identity | null;
  /** The caller's roles (empty for agents and anonymous callers). */
  roles: ReadonlySet<Role>;
  /** On session routes: the console session. */
  session?: SessionInfo;
}

export type ApiHandler = (req: ApiRequest) => Promise<ApiResponse> | ApiResponse;

export interface Route {
  method: 'GET' | 'POST';
  path: string;
  caller: Caller;
  /** Served only to a peer on a loopback address (dev tokens). */
  loopbackOnly?: boolean;
  /**
   * A browser asking for this route (a GET that prefers text/html and carries no Authorization) is
   * sent to this console page instead (303): the approval `status_url` an agent relays to a person.
   */
  browserPage?: (url: URL) => string;
  handle: ApiHandler;
}

/** Why a route's declaration is unusable, or null when it is fine (the API refuses to start otherwise). */
export function declarationProblem(r: Partial<Route>): string | null {
  const c = r.caller as unknown;
  if (c === undefined || c === null) return 'declares no caller';
  if (typeof c === 'string')
    return ['anonymous', 'subject_token', 'human', 'human_or_agent', 'scraper', 'session'].includes(c)
      ? null
      : `declares an unknown caller "${c}"`;
  const o = c as { role?: unknown; session?: unknown };
  if ((o.role === undefined) === (o.session === undefined)) return 'declares a role caller without roles';
  const roles = o.role ?? o.session;
  if (!Array.isArray(roles) || roles.length === 0) return 'declares a role caller without roles';
  const unknown = roles.find((x) => !ROLES.includes(x as Role));
  return unknown === undefined ? null : `declares an unknown role "${String(unknown)}"`;
}

/** `GET /approvals` */
export const routeKey = (r: Pick<Route, 'method' | 'path'>) => `${r.method} ${r.path}`;

/** The caller a route requires, as words (docs, error messages). */
export function describeCaller(c: Caller): string {
  if (typeof c !== 'string') {
    const who = `a person with the ${requiredRoles(c).join(' or ')} role`;
    return 'session' in c ? `${who}, signed in to the console` : who;
  }
  return {
    anonymous: 'anyone',
    subject_token: 'a person, by their token in `subject_token`',
    human: 'a person (no agent token)',
    human_or_agent: 'a person or an agent (for its own requests)',
    scraper: 'a metrics scraper (the metrics bearer token, if one is configured)',
    session: 'a person signed in to the console',
  }[c];
}
