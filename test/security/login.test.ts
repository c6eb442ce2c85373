// `chaperone login` (the real CLI) against the product's dev OpenID provider: another local process
// racing the browser to the loopback callback — with a wrong state, or none — gets 400 and does not end
// the login; the real callback still completes it, and the token cache is 0600 although it existed
// world-readable before.
import { type ChildProcess, spawn } from 'node:child_process';
import { chmod, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHAPERONE_BIN } from '../support/cli.ts';
import { type OidcProvider, startOidcProvider } from '../support/oidc-provider.ts';
import { waitFor } from '../support/wait.ts';

let idp: OidcProvider;
let dir: string;

beforeAll(async () => {
  idp = await startOidcProvider({
    audience: 'chaperone',
    users: [{ sub: 'alice', groups: ['engineering'] }],
  });
  dir = await mkdtemp(join(tmpdir(), 'chaperone-login-'));
}, 60_000);

afterAll(async () => {
  await idp?.close();
  await rm(dir, { recursive: true, force: true });
});

/** The browser: follows the provider's redirects (with its cookies) up to the CLI's callback URL. */
async function browse(start: URL): Promise<URL> {
  let url = start;
  const cookies = new Map<string, string>();
  for (let hop = 0; hop < 12 && url.pathname !== '/callback'; hop++) {
    const res = await fetch(url, {
      redirect: 'manual',
      headers: { cookie: [...cookies].map(([k, v]) => `${k}=${v}`).join('; ') },
    });
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const i = pair!.indexOf('=');
      cookies.set(pair!.slice(0, i), pair!.slice(i + 1));
    }
    url = new URL(res.headers.get('location')!, url);
  }
  return url;
}

describe('chaperone login', () => {
  it('ignores callbacks with a wrong or missing state, then completes with its own; the cache is 0600', async () => {
    const cache = join(dir, 'token.json');
    await writeFile(cache, '{}\n');
    await chmod(cache, 0o644);
    const env: NodeJS.ProcessEnv = { ...process.env, CHAPERONE_TOKEN_CACHE: cache };
    delete env['CHAPERONE_TOKEN'];
    const child: ChildProcess = spawn(
      process.execPath,
      [CHAPERONE_BIN, 'login', '--issuer', idp.issuer, '--login-hint', 'alice', '--no-browser'],
      { env, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let err = '';
    child.stderr!.on('data', (b: Buffer) => {
      err += b.toString();
    });
    const exited = new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
    try {
      await waitFor(() => /Sign in at:\n\s+(\S+)/.test(err), { what: 'the sign-in URL', timeoutMs: 60_000 });
      const signIn = new URL(/Sign in at:\n\s+(\S+)/.exec(err)![1]!);
      const callback = new URL(signIn.searchParams.get('redirect_uri')!);

      // Another local process gets there first.
      const forged = new URL(callback);
      forged.searchParams.set('code', 'attacker-code');
      forged.searchParams.set('state', 'not-the-state');
      expect((await fetch(forged)).status).toBe(400);
      forged.searchParams.delete('state');
      expect((await fetch(forged)).status).toBe(400);
      expect(child.exitCode).toBeNull();

      const real = await browse(signIn);
      expect(real.searchParams.get('state')).toBe(signIn.searchParams.get('state'));
      expect((await fetch(real)).status).toBe(200);
      expect(await exited, err).toBe(0);
      expect(err).toContain('logged in as alice');
      expect((await stat(cache)).mode & 0o777).toBe(0o600);
    } finally {
      child.kill();
    }
  });
});
