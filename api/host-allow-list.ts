// DNS-rebinding defence for the HTTP API: a web page whose name an attacker points at 127.0.0.1 still
// sends its own name in `Host`, so only the API's own names are served — loopback names, the address
// it binds, and the public URL(s) it is known by (`control_plane.issuer`). A browser's `Origin`, when
// sent, must name one of them too; the API sends no CORS headers, so no other origin can read it.
import { isIP } from 'node:net';

const LOOPBACK_NAMES = ['localhost', '127.0.0.1', '::1'];

/** The host name of a `Host` header or an origin, lower-cased, IPv6 without brackets; null if unparsable. */
export function hostnameOf(hostOrUrl: string): string | null {
  try {
    const url = new URL(hostOrUrl.includes('://') ? hostOrUrl : `http://${hostOrUrl}`);
    return url.hostname.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  } catch {
    return null;
  }
}

export interface HostAllowList {
  /** `Host` of a request: true when it names the API. */
  host(value: string | undefined): boolean;
  /** `Origin` of a request: true when absent (not a browser) or one of the API's names. */
  origin(value: string | undefined): boolean;
  names: readonly string[];
}

export function hostAllowList(o: { bindHost: string; publicUrls: readonly string[] }): HostAllowList {
  const names = new Set(LOOPBACK_NAMES);
  const bind = o.bindHost.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  // A wildcard bind says nothing about the names clients use: only loopback and the public URL.
  if (bind !== '0.0.0.0' && bind !== '::' && bind !== '') names.add(bind);
  for (const u of o.publicUrls) {
    const h = hostnameOf(u);
    if (h) names.add(h);
  }
  const known = (value: string | undefined) => {
    const h = value === undefined ? null : hostnameOf(value);
    // Any 127.0.0.0/8 address is this machine; a name must be listed.
    return h !== null && (names.has(h) || (isIP(h) === 4 && h.startsWith('127.')));
  };
  return {
    host: known,
    origin: (value) => value === undefined || (value !== 'null' && known(value)),
    names: [...names],
  };
}
