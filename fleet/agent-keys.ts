// Chaperone's own signing keys for agent tokens and audit checkpoints: ES256, generated on first start
// and kept in the state directory (<state dir>/keys, 0700; the key file 0600), rotated by `rotate()`
// with the previous public keys still published so tokens already issued keep verifying until they
// expire. The node's key store is also where audit verification finds the keys it trusts — outside
// the database: every public key this node ever signed with (kept for good, unlike the published
// ones) plus the keys an operator pinned in <state dir>/keys/trusted.jwks (other nodes of a fleet).
import { randomUUID } from 'node:crypto';
import { chmod, mkdir, open, readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, importJWK, type JWK } from 'jose';
import { ChaperoneError } from '../contracts/errors.ts';

type KeyLike = Awaited<ReturnType<typeof importJWK>>;

interface StoredKeys {
  current: JWK;
  previous: JWK[];
  /** Public halves of every key this node retired, oldest included: old checkpoints verify with them. */
  retired?: JWK[];
}

/** The file, under <state dir>/keys, where an operator pins other nodes' public keys (a JWKS). */
export const TRUSTED_KEYS_FILE = 'trusted.jwks';

const publicHalf = ({ d: _d, ...rest }: JWK): JWK => rest;

export class PinnedKeysError extends ChaperoneError {
  constructor(message: string) {
    super('ERR_AUDIT_TRUST', message);
  }
}

/**
 * A JWKS file's keys (public halves; anything else in it is refused with the file named). A missing
 * file is an error, or no keys when `optional`.
 */
export async function readJwksFile(path: string, o: { optional?: boolean } = {}): Promise<JWK[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if (o.optional && (err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new PinnedKeysError(`${path}: ${err instanceof Error ? err.message : String(err)}`);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new PinnedKeysError(`${path}: not JSON`);
  }
  const keys = (doc as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys) || keys.some((k) => !k || typeof k !== 'object' || typeof k.kid !== 'string'))
    throw new PinnedKeysError(`${path}: expected a JWKS ({"keys": [...]}, every key with a "kid")`);
  return (keys as JWK[]).map(publicHalf);
}

export class AgentKeys {
  private constructor(
    private readonly file: string | null,
    private current: { jwk: JWK; key: KeyLike | Uint8Array },
    private previous: JWK[],
    private retired: JWK[] = [],
  ) {}

  /**
   * The keys trusted to have signed this node's audit checkpoints, read from its key store without
   * creating anything: every public key of the node (current, published, retired) and the operator's
   * pins in keys/trusted.jwks. Null when the directory has no key store.
   */
  static async pinned(stateDir: string): Promise<{ keys: JWK[] } | null> {
    let stored: StoredKeys | null = null;
    try {
      stored = JSON.parse(await readFile(join(stateDir, 'keys', 'agent-signing.json'), 'utf8')) as StoredKeys;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    const pins = await readJwksFile(join(stateDir, 'keys', TRUSTED_KEYS_FILE), { optional: true });
    if (!stored && pins.length === 0) return null;
    const own = stored ? [stored.current, ...(stored.previous ?? []), ...(stored.retired ?? [])] : [];
    return { keys: dedupe([...own.map(publicHalf), ...pins]) };
  }

  /** One key set per state directory in a process (the API and the audit signer share it). */
  private static readonly opened = new Map<string, Promise<AgentKeys>>();

  static open(stateDir: string | null): Promise<AgentKeys> {
    if (!stateDir) return AgentKeys.load(null);
    let keys = AgentKeys.opened.get(stateDir);
    if (!keys) {
      keys = AgentKeys.load(stateDir);
      AgentKeys.opened.set(stateDir, keys);
    }
    return keys;
  }

  private static async load(stateDir: string | null): Promise<AgentKeys> {
    const file = stateDir ? join(stateDir, 'keys', 'agent-signing.json') : null;
    if (file) {
      try {
        const stored = JSON.parse(await readFile(file, 'utf8')) as StoredKeys;
        return new AgentKeys(
          file,
          { jwk: stored.current, key: await importJWK(stored.current, 'ES256') },
          stored.previous,
          stored.retired ?? [],
        );
      } catch {
        // no keys yet (or unreadable): make new ones below
      }
    }
    const keys = new AgentKeys(file, await AgentKeys.generate(), []);
    await keys.save();
    return keys;
  }

  private static async generate(): Promise<{ jwk: JWK; key: KeyLike | Uint8Array }> {
    const { privateKey } = await generateKeyPair('ES256', { extractable: true });
    const jwk = { ...(await exportJWK(privateKey)), kid: randomUUID(), alg: 'ES256', use: 'sig' };
    return { jwk, key: privateKey };
  }

  /** Written whole to a temporary file (0600, fsynced) and renamed: a crash never leaves half a key. */
  private async save(): Promise<void> {
    if (!this.file) return;
    const dir = join(this.file, '..');
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await chmod(dir, 0o700);
    const stored: StoredKeys = { current: this.current.jwk, previous: this.previous, retired: this.retired };
    const tmp = `${this.file}.tmp`;
    const fh = await open(tmp, 'w', 0o600);
    try {
      await fh.writeFile(JSON.stringify(stored));
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, this.file);
    const d = await open(dir, 'r');
    try {
      await d.sync();
    } finally {
      await d.close();
    }
  }

  get kid(): string {
    return this.current.jwk.kid as string;
  }

  get signingKey(): KeyLike | Uint8Array {
    return this.current.key;
  }

  /** Public keys only: the current one and the last few retired ones. */
  jwks(): { keys: JWK[] } {
    const pub = ({ d: _d, ...rest }: JWK) => rest;
    return { keys: [pub(this.current.jwk), ...this.previous.map(pub)] };
  }

  /** Every public key of this node, retired ones included: what its checkpoints verify with. */
  pinnedJwks(): { keys: JWK[] } {
    return { keys: dedupe([this.current.jwk, ...this.previous, ...this.retired].map(publicHalf)) };
  }

  async rotate(keep = 2): Promise<void> {
    this.retired = dedupe([publicHalf(this.current.jwk), ...this.retired]);
    this.previous = [this.current.jwk, ...this.previous].slice(0, keep);
    this.current = await AgentKeys.generate();
    await this.save();
  }
}

function dedupe(keys: JWK[]): JWK[] {
  const seen = new Set<string>();
  return keys.filter((k) => {
    const kid = String(k.kid);
    if (seen.has(kid)) return false;
    seen.add(kid);
    return true;
  });
}
