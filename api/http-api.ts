// Chaperone's HTTP API server (default 127.0.0.1:8181). Small on purpose: a table of declared routes
// (api/routes/), JSON in and out, and in front of every handler the same gates in the same order —
// Host/Origin allow-list, route lookup, the caller the route declares (api/authenticate.ts), a bounded
// body. Slow or piled-up clients are cut off (header and request timeouts, a connection cap). Errors
// never echo request content back (it may hold tokens), and no CORS header is ever sent.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { ChaperoneError } from '../contracts/errors.ts';
import { authenticate, type CallerAuth } from './authenticate.ts';
import { ApiError } from './errors.ts';
import type { HostAllowList } from './host-allow-list.ts';
import { type ApiResponse, declarationProblem, isSessionCaller, type Route, routeKey } from './route.ts';

export { ApiError } from './errors.ts';
export type { ApiHandler, ApiRequest, ApiResponse, Route } from './route.ts';

/** Bounds on what one client can make the API hold. Each has a reason. */
export const API_LIMITS = {
  /** Request bodies are small JSON or form posts (an id, a token exchange). */
  maxBodyBytes: 64 * 1024,
  /** A client must send its headers within this time (slowloris). */
  headersTimeoutMs: 10_000,
  /** …and its whole request, body included. */
  requestTimeoutMs: 30_000,
  /** An idle keep-alive connection is closed after this. */
  keepAliveTimeoutMs: 5_000,
  /** Connections beyond this are refused: the API is for operators and a few pollers, not traffic. */
  maxConnections: 256,
} as const;

export type ApiLimits = { -readonly [K in keyof typeof API_LIMITS]: number };

export interface HttpApiOptions {
  host: string;
  port: number;
  routes: readonly Route[];
  auth: CallerAuth;
  hosts: HostAllowList;
  logger: Logger;
  limits?: Partial<ApiLimits>;
  /** How console routes answer a refusal (a sign-in redirect, an error page) instead of JSON. */
  consoleError?: (err: ApiError, req: { method: string; url: URL }) => ApiResponse;
}

export interface HttpApi {
  url: string;
  port: number;
  server: Server;
  close(): Promise<void>;
}

async function readBody(req: IncomingMessage, limit: number): Promise<unknown> {
  if (Number(req.headers['content-length'] ?? 0) > limit)
    throw new ApiError(413, 'body_too_large', `request body exceeds ${limit} bytes`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new ApiError(413, 'body_too_large', `request body exceeds ${limit} bytes`);
    chunks.push(chunk as Buffer);
  }
  if (size === 0) return null;
  const text = Buffer.concat(chunks).toString('utf8');
  const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
  if (type === 'application/x-www-form-urlencoded') return Object.fromEntries(new URLSearchParams(text));
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new ApiError(400, 'invalid_json', 'request body is not valid JSON');
  }
}

/** Streams a server-sent-events answer until it ends or the client leaves. */
function sendStream(res: ServerResponse, r: ApiResponse, stream: NonNullable<ApiResponse['stream']>): void {
  const closed = new AbortController();
  res.on('close', () => closed.abort());
  res.writeHead(r.status, { 'cache-control': 'no-store', 'x-content-type-options': 'nosniff', ...r.headers });
  res.flushHeaders();
  stream({ write: (chunk) => void res.write(chunk), closed: closed.signal }).then(
    () => res.end(),
    () => res.destroy(),
  );
}

function send(res: ServerResponse, r: ApiResponse): void {
  if (r.stream) {
    sendStream(res, r, r.stream);
    return;
  }
  // A string body with its own content type (JSONL exports) goes out as is.
  const raw = typeof r.body === 'string' && r.headers?.['content-type'] !== undefined;
  res.writeHead(r.status, {
    'content-type': 'application/json',
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    ...r.headers,
  });
  res.end(raw ? (r.body as string) : JSON.stringify(r.body));
}

/** A browser navigating to a route (not a client with a token): it prefers HTML over JSON. */
function wantsPage(req: IncomingMessage): boolean {
  const accept = req.headers.accept ?? '';
  return req.method === 'GET' && !req.headers.authorization && /\btext\/html\b/.test(accept);
}

const isLoopbackPeer = (a: string | undefined) =>
  a !== undefined && (a === '::1' || /^(::ffff:)?127\./.test(a));

/** The route table, refusing a route without a valid caller declaration or declared twice. */
export function routeTable(routes: readonly Route[]): Map<string, Route> {
  const table = new Map<string, Route>();
  for (const r of routes) {
    const problem = declarationProblem(r);
    if (problem) throw new ChaperoneError('ERR_GATEWAY_START', `HTTP API route ${routeKey(r)} ${problem}`);
    if (table.has(routeKey(r)))
      throw new ChaperoneError('ERR_GATEWAY_START', `HTTP API route ${routeKey(r)} is declared twice`);
    table.set(routeKey(r), r);
  }
  return table;
}

/** Host gate → route → caller → body → handler. Throws ApiError for every refusal. */
async function handle(o: HttpApiOptions, table: Map<string, Route>, req: IncomingMessage) {
  if (!o.hosts.host(req.headers.host))
    throw new ApiError(421, 'host_not_allowed', 'this API answers only to its own host names');
  if (!o.hosts.origin(req.headers.origin))
    throw new ApiError(403, 'origin_not_allowed', 'cross-origin requests are not served');
  const url = new URL(req.url ?? '/', 'http://chaperone.local');
  const route = table.get(`${req.method ?? 'GET'} ${url.pathname}`);
  if (!route) {
    const pathKnown = [...table.values()].some((r) => r.path === url.pathname);
    throw pathKnown
      ? new ApiError(405, 'method_not_allowed', 'method not allowed')
      : new ApiError(404, 'not_found', 'no such route');
  }
  if (route.loopbackOnly && !isLoopbackPeer(req.socket.remoteAddress))
    throw new ApiError(403, 'loopback_only', 'this route is served to loopback clients only');
  if (route.browserPage && wantsPage(req))
    return { status: 303, headers: { location: route.browserPage(url) }, body: null };
  const limit = o.limits?.maxBodyBytes ?? API_LIMITS.maxBodyBytes;
  try {
    const { caller, roles, body, session } = await authenticate(
      route.caller,
      req.headers,
      () => readBody(req, limit),
      o.auth,
      route.method,
    );
    return await route.handle({
      method: route.method,
      url,
      headers: req.headers,
      body,
      caller,
      roles,
      ...(session ? { session } : {}),
    });
  } catch (err) {
    // Console routes answer people in a browser: a sign-in redirect or an error page, not JSON.
    if (err instanceof ApiError && o.consoleError && isSessionCaller(route.caller))
      return o.consoleError(err, { method: route.method, url });
    throw err;
  }
}

export async function startHttpApi(o: HttpApiOptions): Promise<HttpApi> {
  const table = routeTable(o.routes);
  const limits: ApiLimits = { ...API_LIMITS, ...o.limits };
  const server = createServer(
    {
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: limits.requestTimeoutMs,
      keepAliveTimeout: limits.keepAliveTimeoutMs,
      // Node checks the two timeouts above on this interval (default 30 s, too coarse for them).
      connectionsCheckingInterval: Math.min(1000, limits.headersTimeoutMs),
    },
    (req, res) => {
      handle(o, table, req).then(
        (r) => send(res, r),
        (err: unknown) => {
          if (err instanceof ApiError)
            return send(res, { status: err.status, body: { error: err.error, reason: err.publicMessage } });
          o.logger.error(
            {
              route: `${req.method} ${req.url?.split('?')[0]}`,
              err: err instanceof Error ? err.message : String(err),
            },
            'api handler failed',
          );
          send(res, { status: 500, body: { error: 'internal_error' } });
        },
      );
    },
  );
  server.maxConnections = limits.maxConnections;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const host = o.host.includes(':') ? `[${o.host}]` : o.host;
  return {
    url: `http://${host}:${port}`,
    port,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
