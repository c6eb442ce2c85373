// Where `chaperone login` keeps the user's token, and how every command finds a token: --token, then
// CHAPERONE_TOKEN, then the cache (when not expired). The cache file is private to the user (0600).
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';

export interface CachedToken {
  issuer: string;
  subject: string;
  access_token: string;
  expires_at: number;
}

export function tokenCachePath(env: NodeJS.ProcessEnv = process.env): string {
  if (env['CHAPERONE_TOKEN_CACHE']) return env['CHAPERONE_TOKEN_CACHE'];
  const base = env['XDG_CONFIG_HOME'] ?? join(homedir(), '.config');
  return join(base, 'chaperone', 'token.json');
}

export async function saveToken(t: CachedToken, path = tokenCachePath()): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  await writeFile(path, `${JSON.stringify(t, null, 2)}\n`, { mode: 0o600 });
}

export async function loadToken(path = tokenCachePath()): Promise<CachedToken | null> {
  try {
    const t = JSON.parse(await readFile(path, 'utf8')) as CachedToken;
    return typeof t.access_token === 'string' && t.expires_at * 1000 > Date.now() + 5000 ? t : null;
  } catch {
    return null;
  }
}

/** --token, CHAPERONE_TOKEN, or the `chaperone login` cache; null when none is usable. */
export async function resolveUserToken(explicit: string | undefined): Promise<string | null> {
  return explicit ?? process.env['CHAPERONE_TOKEN'] ?? (await loadToken())?.access_token ?? null;
}
