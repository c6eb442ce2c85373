// Where a data-plane service (ext_authz, ext_proc, ADS + access logs, Envoy's admin) listens: a Unix
// domain socket (`unix:/abs/path`, the single-node default: only the gateway's user can connect) or a
// TCP `host:port` (a fleet: the services then require a client certificate, see pki/). One parser for
// the config, the CLI, the bootstrap and the servers, so they cannot read an address differently.
import { isAbsolute } from 'node:path';
import { InvalidAddressError, splitHostPort } from './ports.ts';

export type DataPlaneAddress = { kind: 'unix'; path: string } | { kind: 'tcp'; host: string; port: number };

export const UNIX_PREFIX = 'unix:';

/** Linux's sun_path holds 108 bytes with the terminating NUL. */
export const UNIX_PATH_MAX_BYTES = 107;

/** `unix:/abs/path` or `host:port` (IPv6 in brackets). */
export function parseDataPlaneAddress(text: string): DataPlaneAddress {
  if (text.startsWith(UNIX_PREFIX)) {
    const path = text.slice(UNIX_PREFIX.length);
    if (!isAbsolute(path) || path.includes('\0')) throw new InvalidAddressError(text);
    return { kind: 'unix', path };
  }
  return { kind: 'tcp', ...splitHostPort(text) };
}

export function formatDataPlaneAddress(a: DataPlaneAddress): string {
  if (a.kind === 'unix') return `${UNIX_PREFIX}${a.path}`;
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

export const isUnixAddress = (text: string): boolean => text.startsWith(UNIX_PREFIX);

/** True for an address only this machine can reach (127.0.0.0/8, ::1, localhost). */
export function isLoopbackHost(host: string): boolean {
  return /^127\./.test(host) || host === '::1' || host === 'localhost';
}

/** A socket path longer than the kernel accepts fails at bind with an unhelpful error: say so early. */
export function unixPathTooLong(path: string): boolean {
  return Buffer.byteLength(path, 'utf8') > UNIX_PATH_MAX_BYTES;
}
