// Chaperone's HTTP API (default 127.0.0.1:8181): health, status and, in dev mode, demo tokens.
// Small on purpose: a route table of `METHOD /path` → handler, JSON in and out, a bounded body, and
// errors that never echo request content back (it may hold tokens).
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';

export interface ApiResponse {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
}

export interface ApiRequest {
  method: string;
  url: URL;
  headers: IncomingMessage['headers'];
  /** Parsed JSON or form body; null when there is none. */
  body: unknown;
}

export type ApiHandler = (req: ApiRequest) => Promise<ApiResponse> | ApiResponse;

export interface HttpApiOptions {
  host: string;
  port: number;
  routes: Record<string, ApiHandler>;
  logger: Logger;
  maxBodyBytes?: number;
}

export interface HttpApi {
  url: string;
  port: number;
  server: Server;
  close(): Promise<void>;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

async function readBody(req: IncomingMessage, limit: number): Promise<unknown> {
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

export async function startHttpApi(o: HttpApiOptions): Promise<HttpApi> {
  const limit = o.maxBodyBytes ?? 64 * 1024;
  const server = createServer((req, res) => {
    const send = (r: ApiResponse) => {
      // A string body with its own content type (JSONL exports) goes out as is.
      const raw = typeof r.body === 'string' && r.headers?.['content-type'] !== undefined;
      const payload = raw ? (r.body as string) : JSON.stringify(r.body);
      res.writeHead(r.status, {
        'content-type': 'application/json',
        'cache-control': 'no-store',
        ...r.headers,
      });
      res.end(payload);
    };
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://chaperone.local');
      const key = `${req.method ?? 'GET'} ${url.pathname}`;
      const handler = o.routes[key];
      if (!handler) {
        const pathKnown = Object.keys(o.routes).some((k) => k.split(' ')[1] === url.pathname);
        return send({
          status: pathKnown ? 405 : 404,
          body: { error: pathKnown ? 'method_not_allowed' : 'not_found' },
        });
      }
      try {
        const body = await readBody(req, limit);
        send(await handler({ method: req.method ?? 'GET', url, headers: req.headers, body }));
      } catch (err) {
        if (err instanceof ApiError)
          return send({ status: err.status, body: { error: err.code, reason: err.message } });
        o.logger.error(
          { route: key, err: err instanceof Error ? err.message : String(err) },
          'api handler failed',
        );
        send({ status: 500, body: { error: 'internal_error' } });
      }
    })();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://${o.host}:${port}`,
    port,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
