// A client for Envoy's admin interface wherever it listens: a Unix socket (`unix:/path`, the default:
// only the gateway's user can reach it) or loopback TCP (`http://127.0.0.1:9901`). fetch() cannot speak
// over a Unix socket, so this uses node:http, which can.
import { request } from 'node:http';

export interface AdminResponse {
  status: number;
  body: string;
}

/** GET `path` (e.g. `/ready`, `/config_dump`) from the admin interface at `adminUrl`. */
export function adminGet(adminUrl: string, path: string, timeoutMs = 2000): Promise<AdminResponse> {
  const target = adminUrl.startsWith('unix:')
    ? { socketPath: adminUrl.slice('unix:'.length), path }
    : (() => {
        const u = new URL(adminUrl);
        return { host: u.hostname.replace(/^\[|\]$/g, ''), port: Number(u.port), path };
      })();
  return new Promise((resolve, reject) => {
    const req = request({ ...target, method: 'GET', timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }),
      );
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`envoy admin ${path}: no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

/** The admin interface answers /ready with 200 (Envoy initialised, not draining). */
export async function adminReady(adminUrl: string): Promise<boolean> {
  try {
    return (await adminGet(adminUrl, '/ready')).status === 200;
  } catch {
    return false; // not listening (yet, or any more)
  }
}
