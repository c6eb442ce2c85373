// The CLI's one client for the gateway HTTP API. It sends the caller's token on every call (--token,
// then CHAPERONE_TOKEN, then the `chaperone login` cache), JSON or form bodies, and turns every
// failure into a CliError with the exit code docs/cli.md documents: 2 when no API answers, 3 when the
// token is missing or the API refused it or its role (401/403), 1 for any other refusal.
import { CliError, EXIT } from '../exit.ts';
import { resolveUserToken } from './token-cache.ts';

export interface ApiOptions {
  api: string;
  token?: string;
}

const NO_TOKEN =
  'no token: run `chaperone login`, or give your token with --token or CHAPERONE_TOKEN' +
  ' (dev mode: --token "$(./chaperone dev token carol)")';

export class ApiClient {
  constructor(private readonly o: ApiOptions) {}

  get base(): string {
    return this.o.api.replace(/\/$/, '');
  }

  /** The caller's token; a CliError (exit 3) when there is none. */
  async token(): Promise<string> {
    const t = await resolveUserToken(this.o.token);
    if (!t) throw new CliError('ERR_API_UNAUTHENTICATED', NO_TOKEN, EXIT.auth);
    return t;
  }

  get<T = any>(path: string, o: { anonymous?: boolean } = {}): Promise<T> {
    return this.call('GET', path, undefined, o).then((r) => r.json() as Promise<T>);
  }

  post<T = any>(
    path: string,
    body: Record<string, unknown>,
    o: { form?: boolean; anonymous?: boolean } = {},
  ): Promise<T> {
    return this.call('POST', path, body, o).then((r) => r.json() as Promise<T>);
  }

  /** A non-JSON answer (the JSONL export), as text. */
  text(path: string): Promise<string> {
    return this.call('GET', path, undefined, {}).then((r) => r.text());
  }

  private async call(
    method: 'GET' | 'POST',
    path: string,
    body: Record<string, unknown> | undefined,
    o: { form?: boolean; anonymous?: boolean },
  ): Promise<Response> {
    const headers: Record<string, string> = {};
    if (!o.anonymous) headers['authorization'] = `Bearer ${await this.token()}`;
    let payload: string | undefined;
    if (body) {
      headers['content-type'] = o.form ? 'application/x-www-form-urlencoded' : 'application/json';
      payload = o.form
        ? new URLSearchParams(body as Record<string, string>).toString()
        : JSON.stringify(body);
    }
    let res: Response;
    try {
      res = await fetch(`${this.base}${path}`, { method, headers, ...(payload ? { body: payload } : {}) });
    } catch (err) {
      throw new CliError(
        'ERR_API_UNREACHABLE',
        `no gateway API at ${this.base} (is \`chaperone up\` running? --api sets the address)`,
        EXIT.usage,
        { cause: err },
      );
    }
    if (!res.ok) throw await refusal(res, Boolean(o.anonymous));
    return res;
  }
}

/** The API's `{error, reason}` as a CliError with the right exit code and a hint where one helps. */
async function refusal(res: Response, anonymous: boolean): Promise<CliError> {
  const json = (await res.json().catch(() => ({}))) as { error?: string; reason?: string; users?: string[] };
  const what = `${json.error ?? `HTTP ${res.status}`}${json.reason ? `: ${json.reason}` : ''}`;
  if (res.status === 401)
    return new CliError(
      'ERR_API_UNAUTHENTICATED',
      `${what}${anonymous ? '' : ' (your token was not accepted: `chaperone login`, --token or CHAPERONE_TOKEN)'}`,
      EXIT.auth,
    );
  if (res.status === 403) return new CliError('ERR_API_FORBIDDEN', what, EXIT.auth);
  if (res.status === 421)
    return new CliError('ERR_API_HOST', `${what} (use the API's own address with --api)`, EXIT.usage);
  return new CliError(
    'ERR_API_REQUEST',
    `${what}${json.users ? ` (known: ${json.users.join(', ')})` : ''}`,
    EXIT.failed,
  );
}

/** `--api` and `--token`, the options every command that calls the API takes. */
export const API_OPTION = ['--api <url>', 'the gateway HTTP API', 'http://127.0.0.1:8181'] as const;
export const TOKEN_OPTION = [
  '--token <jwt>',
  'your OIDC access token (default: $CHAPERONE_TOKEN, then the `chaperone login` cache)',
] as const;
