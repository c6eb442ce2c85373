// Where `chaperone login` keeps the user's token, and how every command finds a token: --token, then
// CHAPERONE_TOKEN, then the cache (when not expired). The cache file is private to the user (0600) after
// every write: the token goes to a new 0600 file renamed over the old one, so a cache file that existed
// with wider permissions does not keep them.
import { chmod, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';

export interface CachedToken {
  issuer: string;
  subject: string;
  access_token: string;
  expires_at: number;
}

export const TOKEN_CACHE_MODE = 0o600;

export function tokenCachePath(env: NodeJS.ProcessEnv = process.env): string {
  if (env['CHAPERONE_TOKEN_CACHE']) return env['CHAPERONE_TOKEN_CACHE'];
  const base = env['XDG_CONFIG_HOME'] ?? join(homedir(), '.config');
  return join(base, 'chaperone', 'token.json');
}

export async function saveToken(t: CachedToken, path = tokenCachePath()): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.tmp`;
  try {
    await writeFile(tmp, `${JSON.stringify(t, null, 2)}\n`, { mode: TOKEN_CACHE_MODE, flag: 'wx' });
    await chmod(tmp, TOKEN_CACHE_MODE);
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  // The rename replaced the file, but be explicit: the mode is part of the promise, on every write.
  await chmod(path, TOKEN_CACHE_MODE);
}

export async function loadToken(path = tokenCachePath()): Promise<CachedToken | null> {
  try {
    const t = JSON.parse(await readFile(path, 'utf8')) as CachedToken;
    return typeof t.access_token === 'string' && t.expires_at * 1000 > Date.now() + 5000 ? t : null;
  } catch {
    return null;
  }
}

/** --token, CHAPERONE_TOKEN, or the `chaperone login` cache; null when none is usable (empty is none). */
export async function resolveUserToken(explicit: string | undefined): Promise<string | null> {
  return explicit || process.env['CHAPERONE_TOKEN'] || (await loadToken())?.access_token || null;
}
