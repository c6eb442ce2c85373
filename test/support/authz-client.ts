// A real gRPC client for envoy.service.auth.v3.Authorization/Check, and a builder for the
// CheckRequests Envoy sends, so component tests speak to the server exactly as Envoy does.
import * as grpc from '@grpc/grpc-js';
import { EXT_AUTHZ_PROTO, loadEnvoyProtos, lookup } from '../../lib/envoy-proto.ts';

export interface RequestSpec {
  method?: string;
  path?: string;
  host?: string;
  headers?: Record<string, string>;
  body?: string;
  rawBody?: Buffer;
  contextExtensions?: Record<string, string>;
  id?: string;
}

export function checkRequest(spec: RequestSpec): Record<string, unknown> {
  const headers: Record<string, string> = {
    ':authority': spec.host ?? 'api.example.test',
    ':method': spec.method ?? 'GET',
    ':path': spec.path ?? '/',
    ...(spec.headers ?? {}),
  };
  const bodyBytes = spec.rawBody ?? (spec.body !== undefined ? Buffer.from(spec.body) : undefined);
  return {
    attributes: {
      source: { address: { socketAddress: { address: '127.0.0.1', portValue: 50000 } } },
      destination: { address: { socketAddress: { address: '127.0.0.1', portValue: 10000 } } },
      request: {
        // As Envoy stamps it: when the request arrived, to the nanosecond (the server estimates waits from it).
        time: { seconds: Math.floor(Date.now() / 1000), nanos: (Date.now() % 1000) * 1_000_000 },
        http: {
          id: spec.id ?? String(Math.floor(Math.random() * 1e12)),
          method: spec.method ?? 'GET',
          headers,
          path: spec.path ?? '/',
          host: spec.host ?? 'api.example.test',
          scheme: 'http',
          protocol: 'HTTP/1.1',
          ...(bodyBytes ? { size: bodyBytes.length, rawBody: bodyBytes } : {}),
        },
      },
      contextExtensions: spec.contextExtensions ?? {},
    },
  };
}

export interface HeaderOption {
  header: { key: string; value: string };
  appendAction?: string;
}
export interface CheckResponse {
  status: { code: number };
  okResponse?: {
    headers?: HeaderOption[];
    headersToRemove?: string[];
    responseHeadersToAdd?: HeaderOption[];
    queryParametersToSet?: { key: string; value: string }[];
    queryParametersToRemove?: string[];
  };
  deniedResponse?: { status: { code: string | number }; headers?: HeaderOption[]; body?: string };
  dynamicMetadata?: { fields: Record<string, { stringValue?: string }> };
}

export interface AuthzClient {
  check(spec: RequestSpec): Promise<CheckResponse>;
  /** `metadata`: gRPC request metadata (Envoy sends `traceparent` there when it traces). */
  checkRaw(request: unknown, metadata?: Record<string, string>): Promise<CheckResponse>;
  close(): void;
}

/** `credentials`: TLS (a client certificate) for a server on TCP; plaintext by default. */
export function authzClient(
  address: string,
  credentials: grpc.ChannelCredentials = grpc.credentials.createInsecure(),
): AuthzClient {
  const root = loadEnvoyProtos([EXT_AUTHZ_PROTO]);
  const Ctor = lookup<grpc.ServiceClientConstructor>(root, 'envoy.service.auth.v3.Authorization');
  const client = new Ctor(address, credentials);
  const checkRaw = (request: unknown, metadata: Record<string, string> = {}) =>
    new Promise<CheckResponse>((resolve, reject) => {
      const md = new grpc.Metadata();
      for (const [k, v] of Object.entries(metadata)) md.set(k, v);
      client['Check'](
        request,
        md,
        { deadline: Date.now() + 10_000 },
        (err: Error | null, res: CheckResponse) => (err ? reject(err) : resolve(res)),
      );
    });
  return { checkRaw, check: (spec) => checkRaw(checkRequest(spec)), close: () => client.close() };
}

/** Header value from a response's header options, by lower-case name. */
export function headerOf(options: HeaderOption[] | undefined, name: string): string | undefined {
  return options?.find((h) => h.header.key === name)?.header.value;
}

/** HTTP status of a denied response (proto enum decoded as a name or number). */
export function deniedStatus(res: CheckResponse): number {
  const code = res.deniedResponse?.status.code;
  if (typeof code === 'number') return code;
  const names: Record<string, number> = {
    BadRequest: 400,
    Unauthorized: 401,
    Forbidden: 403,
    NotFound: 404,
    PayloadTooLarge: 413,
    TooManyRequests: 429,
    Conflict: 409,
    MethodNotAllowed: 405,
    NotImplemented: 501,
    BadGateway: 502,
    GatewayTimeout: 504,
    InternalServerError: 500,
    ServiceUnavailable: 503,
  };
  return names[String(code)] ?? Number(code);
}

/** A Check for GET /demo/items on the demo route with a bearer token (a standalone server's view). */
export function checkDemoWith(client: AuthzClient, token: string): Promise<CheckResponse> {
  return client.check({
    path: '/demo/items',
    headers: { authorization: `Bearer ${token}` },
    contextExtensions: { route_id: 'demo/0', target: 'demo' },
  });
}
