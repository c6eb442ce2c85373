// The CLI's client for the gateway HTTP API: the user's token (--token, CHAPERONE_TOKEN or the
// `chaperone login` cache), JSON or form bodies, and errors turned into exit codes (2: no gateway or no
// token, 1: the API refused).
import { resolveUserToken } from './token-cache.ts';

export interface ApiOptions {
  api: string;
  token?: string;
}

export async function requireUserToken(o: ApiOptions): Promise<string> {
  const t = await resolveUserToken(o.token);
  if (!t) {
    process.stderr.write(
      'chaperone: run `chaperone login`, or give your token with --token or CHAPERONE_TOKEN\n',
    );
    process.exit(2);
  }
  return t;
}

export async function callApi(
  o: ApiOptions,
  method: 'GET' | 'POST',
  path: string,
  body?: Record<string, unknown>,
  opts: { form?: boolean; anonymous?: boolean } = {},
): Promise<any> {
  const headers: Record<string, string> = {};
  if (!opts.anonymous) headers['authorization'] = `Bearer ${await requireUserToken(o)}`;
  if (body) headers['content-type'] = opts.form ? 'application/x-www-form-urlencoded' : 'application/json';
  let res: Response;
  try {
    res = await fetch(`${o.api}${path}`, {
      method,
      headers,
      ...(body
        ? {
            body: opts.form
              ? new URLSearchParams(body as Record<string, string>).toString()
              : JSON.stringify(body),
          }
        : {}),
    });
  } catch {
    process.stderr.write(
      `chaperone: no gateway API at ${o.api} (is \`chaperone up\` running? --api sets the address)\n`,
    );
    process.exit(2);
  }
  const json = (await res.json().catch(() => ({}))) as { error?: string; reason?: string };
  if (!res.ok) {
    process.stderr.write(
      `chaperone: ${json.error ?? `HTTP ${res.status}`}${json.reason ? `: ${json.reason}` : ''}\n`,
    );
    process.exit(1);
  }
  return json;
}
