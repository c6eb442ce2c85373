// Checks, before anything starts, that every address `chaperone up` will bind is free, so a taken
// port fails with the component's name and the flag that moves it instead of a half-started gateway.
import { randomInt } from 'node:crypto';
import { createServer } from 'node:net';

export interface PlannedBind {
  component: string;
  host: string;
  port: number;
  /** The flag or config key that changes it, for the error message. */
  override: string;
}

// lib/ sits below contracts/ (the layering test), so these errors cannot extend ChaperoneError; they
// carry its shape — a catalog code (docs/errors.md) and a public message — and callers dispatch on code.

export class PortInUseError extends Error {
  readonly code = 'ERR_PORT_IN_USE' as const;
  readonly publicMessage: string;
  /** `problem`: what is wrong instead of "already in use" (a socket path that is not a socket). */
  constructor(
    readonly bind: PlannedBind,
    problem = 'is already in use (another chaperone or program?)',
  ) {
    // port 0 with a path: a Unix socket.
    const where = bind.port === 0 ? `unix:${bind.host}` : `${bind.host}:${bind.port}`;
    super(`${bind.component}: ${where} ${problem}; stop it or choose another address with ${bind.override}`);
    this.name = 'PortInUseError';
    this.publicMessage = this.message;
  }
}

/** An address that is not `host:port` (a config or flag mistake). */
export class InvalidAddressError extends Error {
  readonly code = 'ERR_CONFIG_INVALID' as const;
  readonly publicMessage: string;
  constructor(readonly address: string) {
    super(`invalid address "${address}": expected host:port`);
    this.name = 'InvalidAddressError';
    this.publicMessage = this.message;
  }
}

function probe(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen({ host, port, exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

export async function assertPortsFree(binds: PlannedBind[]): Promise<void> {
  for (const b of binds) {
    if (b.port === 0) continue;
    if (!(await probe(b.host, b.port))) throw new PortInUseError(b);
  }
}

/** Splits `host:port` (IPv6 in brackets) into its parts; port must be 0–65535. */
export function splitHostPort(address: string): { host: string; port: number } {
  const m = /^\[?([^\]]*?)\]?:(\d{1,5})$/.exec(address);
  const port = m ? Number(m[2]) : Number.NaN;
  const host = m?.[1];
  if (!host || port > 65535) throw new InvalidAddressError(address);
  return { host, port };
}

/**
 * A TCP port on 127.0.0.1 that was free a moment ago (suites and benchmarks never use fixed ports).
 * Picked at random below Linux's ephemeral range (32768–60999): outgoing connections take their local
 * port from that range, so under load one of them could take a port between this check and the bind
 * (seen as EADDRINUSE in busy suite runs). Falls back to a kernel-assigned port if none is found.
 */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = 20_000 + randomInt(12_000);
    if (await probe('127.0.0.1', port)) return port;
  }
  return kernelPort();
}

function kernelPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0, exclusive: true }, () => {
      const address = server.address();
      if (address === null || typeof address === 'string') {
        server.close();
        reject(new Error('could not read the bound port'));
        return;
      }
      server.close((err) => (err ? reject(err) : resolve(address.port)));
    });
  });
}
