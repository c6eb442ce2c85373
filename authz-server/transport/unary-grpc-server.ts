// A minimal gRPC server for unary methods on node:http2: Envoy's ext_authz Check and the
// grpc.health.v1 Check, nothing else. It exists because the transport sets the Check ceiling on this
// machine kind: an empty @grpc/grpc-js server answers ~13 k Check/s where node:http2 carrying the same
// frames answers ~25 k/s. @connectrpc/connect-node was measured as the library alternative and served
// about a ninth of what this server does under the same ghz run (docs/performance.md, "Check
// transport"), far from the 15 % that would have made the library the choice, so this is hand-written.
//
// What it implements of the gRPC HTTP/2 protocol: POST with `content-type: application/grpc*`
// (anything else: HTTP 415), one length-prefixed request message (none, a second one or a truncated
// frame: an error status), `grpc-timeout` (DEADLINE_EXCEEDED when the handler is later), identity,
// gzip and deflate request compression (responses are not compressed), a receive-size limit checked
// on the frame's declared length (RESOURCE_EXHAUSTED), UNIMPLEMENTED for unknown methods, and the
// response as headers + one DATA frame + `grpc-status` trailers (errors as trailers-only responses).
// Status codes and messages follow what @grpc/grpc-js answers in the same situations.
import {
  createSecureServer,
  createServer,
  type Http2SecureServer,
  type Http2Server,
  type Http2Session,
  constants as h2,
  type IncomingHttpHeaders,
  type ServerHttp2Stream,
} from 'node:http2';
import type { AddressInfo } from 'node:net';
import { promisify } from 'node:util';
import { gunzip, inflate } from 'node:zlib';
import { tlsServerOptions } from '../../pki/data-plane-listen.ts';
import type { CertificateSource } from '../../pki/rotating-certificate.ts';
import type { CallState } from './admission.ts';
import {
  encodeFrame,
  encodeGrpcMessage,
  GrpcStatus,
  type GrpcStatusCode,
  GrpcStatusError,
  parseGrpcTimeout,
  UnaryFrameReader,
} from './grpc-framing.ts';

const gunzipAsync = promisify(gunzip);
const inflateAsync = promisify(inflate);

/** One unary method: its HTTP/2 path, its codecs and its handler. */
export interface UnaryMethod<Req = unknown, Res = unknown> {
  /** `/package.Service/Method` */
  path: string;
  decode(message: Buffer): Req;
  encode(response: Res): Uint8Array;
  /** `call.abandoned` turns true once the client cancelled or the deadline passed. */
  handle(request: Req, call: CallState): Res | Promise<Res>;
}

export interface UnaryGrpcServerOptions {
  methods: UnaryMethod[];
  /** Largest request message accepted (after decompression). Default 4 MiB, as @grpc/grpc-js. */
  maxReceiveMessageBytes?: number;
  /** Called with a handler's unexpected error (the client gets INTERNAL without its text). */
  onHandlerError?: (err: unknown, path: string) => void;
  /**
   * TLS requiring a client certificate from the data-plane CA (pki/data-plane-listen.ts decides it for
   * every transport), renewed in place; absent: plaintext (a Unix socket, or tests).
   */
  tls?: CertificateSource | null;
}

export interface UnaryGrpcServer {
  /** Resolves with the bound port (0 picks a free one). */
  listen(host: string, port: number): Promise<number>;
  /** Listens on a Unix socket (the caller claims the path and restricts its mode). */
  listenPath(path: string): Promise<void>;
  /** Stops accepting, lets calls in flight finish for up to `graceMs`, then drops what is left. */
  close(graceMs?: number): Promise<void>;
}

const DEFAULT_MAX_RECEIVE_BYTES = 4 * 1024 * 1024;
const ACCEPT_ENCODING = 'identity,deflate,gzip';

// Per connection. Envoy multiplexes every Check of a worker thread over one HTTP/2 connection, and
// its cluster circuit breaker allows 1,024 requests in flight, so the stream limit sits above that;
// session memory bounds what one peer can make us buffer (node's default of 10 MB refuses streams
// under a burst of large bodies, which Envoy would see as errors).
const MAX_CONCURRENT_STREAMS = 4096;
const MAX_SESSION_MEMORY_MB = 64;

function trailersOnly(stream: ServerHttp2Stream, code: GrpcStatusCode, details: string): void {
  if (stream.destroyed || stream.closed) return;
  try {
    if (stream.headersSent) {
      // Not reached for unary calls (headers go out with the response), kept for safety.
      stream.close(h2.NGHTTP2_INTERNAL_ERROR);
      return;
    }
    stream.respond(
      {
        [h2.HTTP2_HEADER_STATUS]: 200,
        [h2.HTTP2_HEADER_CONTENT_TYPE]: 'application/grpc+proto',
        'grpc-status': String(code),
        'grpc-message': encodeGrpcMessage(details),
      },
      { endStream: true },
    );
  } catch {
    // The peer reset the stream between the check and the write: nobody is listening any more.
  }
}

function respondMessage(stream: ServerHttp2Stream, payload: Uint8Array): void {
  if (stream.destroyed || stream.closed) return;
  try {
    stream.respond(
      {
        [h2.HTTP2_HEADER_STATUS]: 200,
        [h2.HTTP2_HEADER_CONTENT_TYPE]: 'application/grpc+proto',
        'grpc-accept-encoding': ACCEPT_ENCODING,
      },
      { waitForTrailers: true },
    );
    stream.once('wantTrailers', () => {
      try {
        stream.sendTrailers({ 'grpc-status': '0' });
      } catch {
        // reset by the peer meanwhile
      }
    });
    stream.end(encodeFrame(payload));
  } catch {
    // reset by the peer meanwhile
  }
}

async function decompress(encoding: string, compressed: Buffer, max: number): Promise<Buffer> {
  const opts = { maxOutputLength: max };
  try {
    if (encoding === 'gzip') return await gunzipAsync(compressed, opts);
    if (encoding === 'deflate') return await inflateAsync(compressed, opts);
  } catch (err) {
    if ((err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') {
      throw new GrpcStatusError(
        GrpcStatus.RESOURCE_EXHAUSTED,
        `Received message that decompresses to a size larger than ${max}`,
      );
    }
    throw new GrpcStatusError(GrpcStatus.INTERNAL, 'Failed to decompress message');
  }
  throw new GrpcStatusError(
    GrpcStatus.UNIMPLEMENTED,
    `Received message compressed with unsupported encoding "${encoding}"`,
  );
}

/** Reports an error status for the call, or INTERNAL (without internals) for anything unexpected. */
function fail(
  stream: ServerHttp2Stream,
  err: unknown,
  path: string,
  onHandlerError: UnaryGrpcServerOptions['onHandlerError'],
): void {
  if (err instanceof GrpcStatusError) trailersOnly(stream, err.grpcCode, err.details);
  else {
    onHandlerError?.(err, path);
    trailersOnly(stream, GrpcStatus.INTERNAL, 'Internal server error');
  }
}

/** Not gRPC at all: plain HTTP 415, as the gRPC spec and @grpc/grpc-js answer. */
function unsupportedMediaType(stream: ServerHttp2Stream): void {
  try {
    stream.respond({ [h2.HTTP2_HEADER_STATUS]: h2.HTTP_STATUS_UNSUPPORTED_MEDIA_TYPE }, { endStream: true });
  } catch {
    // reset by the peer meanwhile
  }
}

/** Reads the one request message, runs the method and answers (or reports the error status). */
async function runCall(
  stream: ServerHttp2Stream,
  headers: IncomingHttpHeaders,
  call: { method: UnaryMethod; reader: UnaryFrameReader; state: CallState; settle: () => boolean },
  o: UnaryGrpcServerOptions,
  maxReceive: number,
): Promise<void> {
  const { method, reader, state, settle } = call;
  try {
    const frame = reader.finish();
    const encoding = frame.compressed ? String(headers['grpc-encoding'] ?? 'identity') : 'identity';
    const bytes =
      encoding === 'identity' ? frame.message : await decompress(encoding, frame.message, maxReceive);
    let request: unknown;
    try {
      request = method.decode(bytes);
    } catch {
      throw new GrpcStatusError(GrpcStatus.INTERNAL, 'Error deserializing request');
    }
    const response = await method.handle(request, state);
    const payload = method.encode(response);
    if (settle()) respondMessage(stream, payload);
  } catch (err) {
    if (settle()) fail(stream, err, method.path, o.onHandlerError);
  }
}

/** One HTTP/2 stream: checks it is a known gRPC method, arms its deadline, reads it and answers once. */
function serveStream(
  stream: ServerHttp2Stream,
  headers: IncomingHttpHeaders,
  methods: Map<string, UnaryMethod>,
  o: UnaryGrpcServerOptions,
  maxReceive: number,
): void {
  // A reset from the peer arrives as an error on the stream; nothing to answer then.
  stream.on('error', () => undefined);
  const contentType = headers[h2.HTTP2_HEADER_CONTENT_TYPE];
  if (typeof contentType !== 'string' || !contentType.startsWith('application/grpc')) {
    unsupportedMediaType(stream);
    return;
  }
  const path = headers[h2.HTTP2_HEADER_PATH] as string;
  const method = methods.get(path);
  if (!method) {
    trailersOnly(stream, GrpcStatus.UNIMPLEMENTED, `The server does not implement the method ${path}`);
    return;
  }
  // Settled once: the first of response, error status or deadline wins.
  let settled = false;
  let deadline: NodeJS.Timeout | undefined;
  const settle = (): boolean => {
    if (settled) return false;
    settled = true;
    if (deadline) clearTimeout(deadline);
    return true;
  };
  try {
    const timeoutMs = parseGrpcTimeout(headers['grpc-timeout']);
    if (timeoutMs !== null) {
      deadline = setTimeout(() => {
        if (settle()) trailersOnly(stream, GrpcStatus.DEADLINE_EXCEEDED, 'Deadline exceeded');
      }, timeoutMs);
    }
  } catch (err) {
    settle();
    fail(stream, err, path, o.onHandlerError);
    return;
  }
  stream.once('close', () => settle());
  // Settled before the handler answers: the deadline passed or the peer reset the stream.
  const traceparent = headers['traceparent'];
  const state: CallState = {
    get abandoned() {
      return settled;
    },
    ...(typeof traceparent === 'string' ? { traceparent } : {}),
  };
  const reader = new UnaryFrameReader(maxReceive);
  stream.on('data', (chunk: Buffer) => {
    if (settled) return;
    try {
      reader.push(chunk);
    } catch (err) {
      if (settle()) fail(stream, err, path, o.onHandlerError);
    }
  });
  stream.once('end', () => {
    if (!settled) void runCall(stream, headers, { method, reader, state, settle }, o, maxReceive);
  });
}

export function createUnaryGrpcServer(o: UnaryGrpcServerOptions): UnaryGrpcServer {
  const methods = new Map(o.methods.map((m) => [m.path, m]));
  const maxReceive = o.maxReceiveMessageBytes ?? DEFAULT_MAX_RECEIVE_BYTES;
  const sessions = new Set<Http2Session>();

  const limits = {
    maxSessionMemory: MAX_SESSION_MEMORY_MB,
    settings: { maxConcurrentStreams: MAX_CONCURRENT_STREAMS },
  };
  const tls = o.tls ?? null;
  const server: Http2Server | Http2SecureServer = tls
    ? createSecureServer({ ...limits, ...tlsServerOptions(tls) })
    : createServer(limits);
  // A renewed certificate applies to new connections at once.
  const unsubscribe = tls?.subscribe(() =>
    (server as Http2SecureServer).setSecureContext(tlsServerOptions(tls)),
  );
  server.on('session', (session) => {
    sessions.add(session);
    session.once('close', () => sessions.delete(session));
    // A broken connection is the peer's problem; without a listener it would throw in this process.
    session.on('error', () => undefined);
  });
  server.on('stream', (stream, headers) => serveStream(stream, headers, methods, o, maxReceive));

  return {
    listen: (host, port) =>
      new Promise<number>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          resolve((server.address() as AddressInfo).port);
        });
      }),
    listenPath: (path) =>
      new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(path, () => {
          server.off('error', reject);
          resolve();
        });
      }),
    close: (graceMs = 2000) =>
      new Promise<void>((resolve) => {
        unsubscribe?.();
        if (!server.listening) {
          resolve();
          return;
        }
        // GOAWAY to every peer: calls in flight finish, new ones go elsewhere.
        for (const s of sessions) s.close();
        const force = setTimeout(() => {
          for (const s of sessions) s.destroy();
        }, graceMs);
        force.unref();
        server.close(() => {
          clearTimeout(force);
          resolve();
        });
      }),
  };
}
