// How a data-plane service (ext_authz, ext_proc, ADS + access logs) listens, decided in one place for
// every transport: on a Unix socket, a directory 0700 and a socket 0600 (the OS refuses every other
// local user); on TCP, TLS that requires a client certificate from the data-plane CA (the handshake
// fails without one, so a local process gets no Check answer, let alone a credential). `tlsServerOptions`
// is the same decision for a server built on node:tls/http2 directly; `bindGrpc` applies it to grpc-js.
import * as grpc from '@grpc/grpc-js';
import { ChaperoneError } from '../contracts/errors.ts';
import { type DataPlaneAddress, parseDataPlaneAddress } from '../lib/data-plane-address.ts';
import { claimSocketPath, releaseSocketPath, restrictSocket } from '../lib/unix-socket.ts';
import type { CertificateSource } from './rotating-certificate.ts';

export interface DataPlaneListen {
  /** `unix:/abs/path` or `host:port` (port 0 picks one). */
  address: string;
  /**
   * The server's certificate (renewed) and the CA its clients' certificates must come from. Required by
   * every product entry point for a TCP address; null there is plaintext, which only tests use.
   */
  tls: CertificateSource | null;
  /** For errors: which component, and the setting that moves it. */
  component: string;
  override: string;
}

export interface BoundDataPlane {
  /** What the server listens on, with the real port for port 0. */
  address: string;
  kind: DataPlaneAddress['kind'];
  tls: boolean;
  /** Removes what the bind left on disk (the socket file). Call after the server has shut down. */
  release(): Promise<void>;
}

/**
 * node:tls / node:http2 options for a TCP data-plane server: its certificate, the CA, and a client
 * certificate required and verified. Re-apply with `server.setSecureContext` when `tls` renews.
 */
export function tlsServerOptions(tls: CertificateSource): {
  key: string;
  cert: string;
  ca: string;
  requestCert: true;
  rejectUnauthorized: true;
} {
  const c = tls.current();
  return { key: c.key, cert: c.cert, ca: c.ca, requestCert: true, rejectUnauthorized: true };
}

/**
 * grpc-js credentials that follow `tls`: the CA and the current certificate, renewed in place. grpc-js
 * registers its watcher after asking for the current values, so they are handed over asynchronously.
 */
function grpcServerCredentials(tls: CertificateSource): grpc.ServerCredentials {
  const caListeners = new Set<grpc.experimental.CaCertificateUpdateListener>();
  const idListeners = new Set<grpc.experimental.IdentityCertificateUpdateListener>();
  const publish = () => {
    const c = tls.current();
    for (const l of caListeners) l({ caCertificate: Buffer.from(c.ca) });
    for (const l of idListeners) l({ certificate: Buffer.from(c.cert), privateKey: Buffer.from(c.key) });
  };
  // Subscribed once, for the life of the credentials (the server's).
  let subscribed = false;
  const follow = () => {
    if (!subscribed) tls.subscribe(publish);
    subscribed = true;
  };
  const provider: grpc.experimental.CertificateProvider = {
    addCaCertificateListener: (l) => {
      caListeners.add(l);
      const c = tls.current();
      setImmediate(() => l({ caCertificate: Buffer.from(c.ca) }));
      follow();
    },
    removeCaCertificateListener: (l) => void caListeners.delete(l),
    addIdentityCertificateListener: (l) => {
      idListeners.add(l);
      const c = tls.current();
      setImmediate(() => l({ certificate: Buffer.from(c.cert), privateKey: Buffer.from(c.key) }));
      follow();
    },
    removeIdentityCertificateListener: (l) => void idListeners.delete(l),
  };
  // One provider answers for both the CA and the identity (the two arguments' order differs between
  // grpc-js's declaration and its implementation; with one object it cannot matter). `true`: a client
  // certificate is required and verified against the CA.
  return grpc.experimental.createCertificateProviderServerCredentials(provider, provider, true);
}

function bindAsync(server: grpc.Server, target: string, creds: grpc.ServerCredentials): Promise<number> {
  return new Promise((resolve, reject) =>
    server.bindAsync(target, creds, (err, port) => (err ? reject(err) : resolve(port))),
  );
}

/** Binds `server` as the data-plane rules say; errors name the component and its setting. */
/** A failed bind as a start-up error naming the component and the setting that moves it. */
function startError(l: DataPlaneListen): (err: unknown) => never {
  return (err) => {
    if (err instanceof ChaperoneError || (err as { code?: string }).code === 'ERR_PORT_IN_USE') throw err;
    throw new ChaperoneError(
      'ERR_GATEWAY_START',
      `${l.component}: cannot listen on ${l.address}: ${err instanceof Error ? err.message : String(err)} (${l.override})`,
      { cause: err },
    );
  };
}

export async function bindGrpc(server: grpc.Server, l: DataPlaneListen): Promise<BoundDataPlane> {
  const address = parseDataPlaneAddress(l.address);
  const fail = startError(l);
  if (address.kind === 'unix') {
    await claimSocketPath(address.path, l.component, l.override).catch(fail);
    await bindAsync(server, `unix:${address.path}`, grpc.ServerCredentials.createInsecure()).catch(fail);
    await restrictSocket(address.path);
    return { address: l.address, kind: 'unix', tls: false, release: () => releaseSocketPath(address.path) };
  }
  const creds = l.tls ? grpcServerCredentials(l.tls) : grpc.ServerCredentials.createInsecure();
  const port = await bindAsync(server, l.address, creds).catch(fail);
  const host = address.host.includes(':') ? `[${address.host}]` : address.host;
  return { address: `${host}:${port}`, kind: 'tcp', tls: l.tls !== null, release: async () => undefined };
}

/** A server on node:http2 that listens itself (authz-server/transport/): TLS is given at its creation. */
export interface SelfListening {
  listen(host: string, port: number): Promise<number>;
  listenPath(path: string): Promise<void>;
}

/**
 * Binds a node:http2 server as the data-plane rules say (the caller created it with
 * `tlsServerOptions(l.tls)` for TCP); errors name the component and its setting.
 */
export async function bindUnary(server: SelfListening, l: DataPlaneListen): Promise<BoundDataPlane> {
  const address = parseDataPlaneAddress(l.address);
  const fail = startError(l);
  if (address.kind === 'unix') {
    await claimSocketPath(address.path, l.component, l.override).catch(fail);
    await server.listenPath(address.path).catch(fail);
    await restrictSocket(address.path);
    return { address: l.address, kind: 'unix', tls: false, release: () => releaseSocketPath(address.path) };
  }
  const port = await server.listen(address.host, address.port).catch(fail);
  const host = address.host.includes(':') ? `[${address.host}]` : address.host;
  return { address: `${host}:${port}`, kind: 'tcp', tls: l.tls !== null, release: async () => undefined };
}
