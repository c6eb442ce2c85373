// Chaperone's own signing keys for agent tokens: ES256, generated on first start and kept in the state
// directory (private key file mode 0600), rotated by `rotate()` with the previous public keys still
// published so tokens already issued keep verifying until they expire.
import { randomUUID } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, importJWK, type JWK } from 'jose';

type KeyLike = Awaited<ReturnType<typeof importJWK>>;

interface StoredKeys {
  current: JWK;
  previous: JWK[];
}

export class AgentKeys {
  private constructor(
    private readonly file: string | null,
    private current: { jwk: JWK; key: KeyLike | Uint8Array },
    private previous: JWK[],
  ) {}

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

  private async save(): Promise<void> {
    if (!this.file) return;
    await mkdir(join(this.file, '..'), { recursive: true, mode: 0o700 });
    await writeFile(
      this.file,
      JSON.stringify({ current: this.current.jwk, previous: this.previous } satisfies StoredKeys),
      {
        mode: 0o600,
      },
    );
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

  async rotate(keep = 2): Promise<void> {
    this.previous = [this.current.jwk, ...this.previous].slice(0, keep);
    this.current = await AgentKeys.generate();
    await this.save();
  }
}
