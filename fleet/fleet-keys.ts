// Every node signs agent tokens and audit checkpoints with its own key (kept in its state directory);
// the public halves are registered in the store, so any node's JWKS verifies what any other signed and
// an agent token issued through one control plane is accepted by every authz server of the fleet.
import type { JWK } from 'jose';
import { jsonColumn } from '../store/sql.ts';
import type { AgentKeys } from './agent-keys.ts';
import { Mirror } from './mirror.ts';
import type { SharedState } from './shared-state.ts';

/** Tokens live at most 24 h; a retired key is published that long so they verify until they expire. */
const RETIRED_PUBLISHED_MS = 24 * 3.6e6;

interface FleetKey {
  jwk: JWK;
  retiredAt: number | null;
}

export class FleetKeys {
  /** Every node's public keys by kid, newest first when loaded. */
  private readonly fleet = new Mirror<string, FleetKey>({ loadAll: () => this.read() });

  private constructor(
    private readonly state: SharedState,
    private readonly local: AgentKeys,
  ) {}

  static async open(state: SharedState, local: AgentKeys): Promise<FleetKeys> {
    const keys = new FleetKeys(state, local);
    state.follow('keys', keys.fleet);
    await keys.register();
    await keys.fleet.reloadAll();
    return keys;
  }

  get kid(): string {
    return this.local.kid;
  }

  get signingKey(): AgentKeys['signingKey'] {
    return this.local.signingKey;
  }

  /** Keys that verify live tokens: every node's active key and keys retired within a day. */
  jwks(): { keys: JWK[] } {
    const cutoff = Date.now() - RETIRED_PUBLISHED_MS;
    return this.merged([...this.fleet.values()].filter((k) => k.retiredAt === null || k.retiredAt > cutoff));
  }

  /**
   * This node's own public keys, retired ones included. Audit checkpoints are verified against these
   * and the operator's pins (AgentKeys.pinned), never against `signing_keys`: a key anyone with write
   * access to the database can add must not make a rewritten trail verify.
   */
  pinnedJwks(): { keys: JWK[] } {
    return this.local.pinnedJwks();
  }

  private merged(from: FleetKey[]): { keys: JWK[] } {
    const seen = new Set<string>();
    const out: JWK[] = [];
    for (const k of [...this.local.jwks().keys, ...from.map((f) => f.jwk)]) {
      if (seen.has(k.kid as string)) continue;
      seen.add(k.kid as string);
      out.push(k);
    }
    return { keys: out };
  }

  async rotate(): Promise<void> {
    const before = this.local.kid;
    await this.local.rotate();
    await this.register(before);
    await this.fleet.reloadAll();
  }

  /** Registers this node's public keys (the current one active, earlier ones retired). */
  private async register(retired?: string): Promise<void> {
    const [current, ...previous] = this.local.jwks().keys;
    await this.state.sql.transaction(async (tx) => {
      const insert = `INSERT INTO signing_keys (kid, node, public_jwk, retired_at) VALUES ($1, $2, $3, $4)
                      ON CONFLICT (kid) DO NOTHING`;
      await tx.query(insert, [current!.kid, this.state.node, JSON.stringify(current), null]);
      for (const k of previous)
        await tx.query(insert, [k.kid, this.state.node, JSON.stringify(k), new Date().toISOString()]);
      if (retired)
        await tx.query('UPDATE signing_keys SET retired_at = now() WHERE kid = $1 AND retired_at IS NULL', [
          retired,
        ]);
      await this.state.notify(tx, 'keys');
    });
  }

  private async read(): Promise<[string, FleetKey][]> {
    const rows = await this.state.sql.query<{ kid: string; public_jwk: unknown; retired_at: unknown }>(
      'SELECT kid, public_jwk, retired_at FROM signing_keys ORDER BY created_at DESC',
    );
    return rows.map((r) => [
      r.kid,
      {
        jwk: jsonColumn<JWK>(r.public_jwk),
        retiredAt:
          r.retired_at === null
            ? null
            : Date.parse(String(r.retired_at instanceof Date ? r.retired_at.toISOString() : r.retired_at)),
      },
    ]);
  }
}
