// The login cache is the user's bearer token: private (0600) after every write, whatever the file's
// mode was before and whatever the umask; an empty CHAPERONE_TOKEN is no token.
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadToken, saveToken } from '../../cli/auth/token-cache.ts';

let dir: string;
const token = { issuer: 'http://idp', subject: 'alice', access_token: 'a.b.c', expires_at: 4102444800 };

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'chaperone-cache-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const modeOf = async (p: string) => (await stat(p)).mode & 0o777;

describe('the token cache', () => {
  it('is created 0600, even under a permissive umask', async () => {
    const path = join(dir, 'new', 'token.json');
    const before = process.umask(0o000);
    try {
      await saveToken(token, path);
    } finally {
      process.umask(before);
    }
    expect(await modeOf(path)).toBe(0o600);
    expect(await loadToken(path)).toEqual(token);
  });

  it('an existing world-readable cache file is 0600 after the next write', async () => {
    const path = join(dir, 'old.json');
    await writeFile(path, '{}');
    await chmod(path, 0o644);
    await saveToken(token, path);
    expect(await modeOf(path)).toBe(0o600);
    expect(JSON.parse(await readFile(path, 'utf8'))).toEqual(token);
  });
});
