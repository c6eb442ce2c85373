// The agent inventory and kill switch. Every agent token Chaperone issues is registered in the store
// (who launched it — their issuer and subject —, when, for which targets); decisions made with one add
// to its counters. Revocation — one token, every token of an agent name, or every agent of a person —
// is written to the store and announced, and every authz server of the fleet checks it on each Check
// from its in-memory copy, so it takes effect on the next request. A person is (issuer, subject)
// throughout: revoking alice of one issuer leaves alice of another alone.
import type { DecisionEvent } from '../contracts/decision.ts';
import type { Person } from '../contracts/identity.ts';
import { isoTime, isoTimeOrNull, jsonColumn } from '../store/sql.ts';
import { Mirror } from './mirror.ts';
import type { SharedState } from './shared-state.ts';

export interface AgentTokenRecord {
  token_id: string;
  agent: string;
  run_id: string;
  /** The person it acts for: `user` of `user_issuer`. */
  user: string;
  user_issuer: string;
  targets: string[] | null;
  issued_at: string;
  expires_at: string;
  revoked_at: string | null;
  revoked_by: string | null;
  revoked_by_issuer: string | null;
  last_seen: string | null;
  requests: number;
  denied: number;
  targets_used: string[];
}

/** What a revocation check reads of a verified identity. */
export interface RevocableIdentity {
  token_id: string | null;
  subject: string;
  subject_issuer: string;
  actor: { agent?: string } | null;
  claims: Record<string, unknown>;
}

export interface RevocationCheck {
  /** A reason when the identity's agent token is revoked, else null. */
  revoked(identity: RevocableIdentity): string | null;
  /**
   * A reason when this person's token may not be exchanged for an agent token: every agent of the
   * person was revoked after it was issued (sign in again to get a newer one), else null.
   */
  exchangeRefused(identity: RevocableIdentity): string | null;
}

/** What an authz server needs to enforce revocations, as the control plane publishes it. */
export interface RevocationList {
  token_ids: string[];
  /** Agent tokens of the person issued before `cutoff` (epoch ms) are revoked. */
  users: { issuer: string; subject: string; cutoff: number }[];
  /** The same, for one agent name of the person. */
  agents: { issuer: string; subject: string; agent: string; cutoff: number }[];
}

// JSON arrays as keys: no separator a subject or an issuer URL could contain makes two people one.
const personKey = (issuer: string, subject: string) => JSON.stringify([issuer, subject]);
const agentKey = (issuer: string, subject: string, agent: string) => JSON.stringify([issuer, subject, agent]);

const issuedSecOf = (identity: RevocableIdentity) =>
  typeof identity.claims['iat'] === 'number' ? identity.claims['iat'] : 0;

/** A RevocationList prepared for the Check path (shared by the registry and remote pollers): lookups, no scans. */
export class RevocationIndex implements RevocationCheck {
  private readonly tokenIds: Set<string>;
  private readonly users = new Map<string, number>();
  private readonly agents = new Map<string, number>();

  constructor(readonly list: RevocationList = { token_ids: [], users: [], agents: [] }) {
    this.tokenIds = new Set(list.token_ids);
    for (const u of list.users) this.users.set(personKey(u.issuer, u.subject), u.cutoff);
    for (const a of list.agents) this.agents.set(agentKey(a.issuer, a.subject, a.agent), a.cutoff);
  }

  revoked(identity: RevocableIdentity): string | null {
    const agent = identity.actor?.agent;
    if (!agent) return null;
    // `iat` has one-second resolution: a cutoff covers tokens from earlier seconds; tokens of the same
    // second are covered by the explicit token id list (the registry lists every one it revoked).
    const issuedSec = issuedSecOf(identity);
    if (identity.token_id && this.tokenIds.has(identity.token_id))
      return `agent token ${identity.token_id} was revoked`;
    const user = this.users.get(personKey(identity.subject_issuer, identity.subject));
    if (user !== undefined && issuedSec < Math.floor(user / 1000))
      return `every agent of ${identity.subject} was revoked`;
    const a = this.agents.get(agentKey(identity.subject_issuer, identity.subject, agent));
    if (a !== undefined && issuedSec < Math.floor(a / 1000)) return `agent ${agent} was revoked`;
    return null;
  }

  exchangeRefused(identity: RevocableIdentity): string | null {
    const cutoff = this.users.get(personKey(identity.subject_issuer, identity.subject));
    // Same second as the cutoff counts as before it: a person's token is not registered, so no id
    // list covers that second, and refusing a fresh sign-in for under a second is the safe side.
    if (cutoff === undefined || issuedSecOf(identity) > Math.floor(cutoff / 1000)) return null;
    return `every agent of ${identity.subject} was revoked after this token was issued; sign in again`;
  }
}

interface Usage {
  requests: number;
  denied: number;
  lastSeen: string;
  targets: Set<string>;
}

function recordOf(r: Record<string, unknown>): AgentTokenRecord {
  return {
    token_id: String(r['token_id']),
    agent: String(r['agent']),
    run_id: String(r['run_id']),
    user: String(r['user_subject']),
    user_issuer: String(r['user_issuer']),
    targets: (jsonColumn(r['targets']) as string[] | null) ?? null,
    issued_at: isoTime(r['issued_at']),
    expires_at: isoTime(r['expires_at']),
    revoked_at: isoTimeOrNull(r['revoked_at']),
    revoked_by: (r['revoked_by'] as string | null) ?? null,
    revoked_by_issuer: (r['revoked_by_issuer'] as string | null) ?? null,
    last_seen: isoTimeOrNull(r['last_seen']),
    requests: Number(r['requests']),
    denied: Number(r['denied']),
    targets_used: (jsonColumn(r['targets_used']) as string[]) ?? [],
  };
}

const NO_REVOCATIONS = new RevocationIndex();

export class AgentRegistry implements RevocationCheck {
  /** The fleet's revocations as one record: rebuilt from the store whenever they change. */
  private readonly revocationsMirror = new Mirror<'revocations', RevocationIndex>({
    loadAll: async () => [['revocations', await this.readRevocations()]],
  });
  /** Usage seen by this node since the last flush, added to the store's counters in one go. */
  private usage = new Map<string, Usage>();
  private flushTimer: NodeJS.Timeout | null = null;
  private flushing: Promise<void> = Promise.resolve();

  private constructor(
    private readonly state: SharedState,
    private readonly now: () => number,
  ) {}

  static async open(
    state: SharedState,
    o: { now?: () => number; flushMs?: number } = {},
  ): Promise<AgentRegistry> {
    const registry = new AgentRegistry(state, o.now ?? Date.now);
    state.follow('revocations', registry.revocationsMirror);
    await registry.reload();
    registry.flushTimer = setInterval(() => void registry.flush(), o.flushMs ?? 1000);
    registry.flushTimer.unref();
    return registry;
  }

  private get sql() {
    return this.state.sql;
  }

  /** Rebuilds the in-memory revocation list from the store. */
  reload(): Promise<void> {
    return this.revocationsMirror.reloadAll();
  }

  private async readRevocations(): Promise<RevocationIndex> {
    const [tokens, cutoffs] = await Promise.all([
      this.sql.query<{ token_id: string }>(
        'SELECT token_id FROM agent_tokens WHERE revoked_at IS NOT NULL AND expires_at > now()',
      ),
      this.sql.query<{ user_issuer: string; user_subject: string; agent: string; cutoff: unknown }>(
        'SELECT user_issuer, user_subject, agent, cutoff FROM agent_cutoffs',
      ),
    ]);
    const next: RevocationList = { token_ids: tokens.map((t) => t.token_id), users: [], agents: [] };
    for (const c of cutoffs) {
      const person = {
        issuer: c.user_issuer,
        subject: c.user_subject,
        cutoff: Date.parse(isoTime(c.cutoff)),
      };
      if (c.agent === '') next.users.push(person);
      else next.agents.push({ ...person, agent: c.agent });
    }
    return new RevocationIndex(next);
  }

  async register(
    r: Omit<
      AgentTokenRecord,
      'revoked_at' | 'revoked_by' | 'revoked_by_issuer' | 'last_seen' | 'requests' | 'denied' | 'targets_used'
    >,
  ): Promise<void> {
    await this.sql.query(
      `INSERT INTO agent_tokens (token_id, agent, run_id, user_issuer, user_subject, targets, issued_at, expires_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
      [
        r.token_id,
        r.agent,
        r.run_id,
        r.user_issuer,
        r.user,
        JSON.stringify(r.targets),
        r.issued_at,
        r.expires_at,
      ],
    );
  }

  private get index(): RevocationIndex {
    return this.revocationsMirror.get('revocations') ?? NO_REVOCATIONS;
  }

  revoked(identity: RevocableIdentity): string | null {
    return this.index.revoked(identity);
  }

  exchangeRefused(identity: RevocableIdentity): string | null {
    return this.index.exchangeRefused(identity);
  }

  revocations(): RevocationList {
    return this.index.list;
  }

  observe(e: DecisionEvent): void {
    const actor = e.actor as { agent?: string } | null;
    if (!actor?.agent) return;
    const tokenId = (e.input as { identity?: { token_id?: string } } | null)?.identity?.token_id;
    if (!tokenId) return;
    let u = this.usage.get(tokenId);
    if (!u) {
      u = { requests: 0, denied: 0, lastSeen: '', targets: new Set() };
      this.usage.set(tokenId, u);
    }
    u.requests++;
    if (e.verdict.decision !== 'allow') u.denied++;
    u.lastSeen = e.time.toISOString();
    if (e.target) u.targets.add(e.target);
  }

  /** Adds this node's usage counts to the store (one transaction); kept for the next try on failure. */
  flush(): Promise<void> {
    this.flushing = this.flushing.then(async () => {
      if (this.usage.size === 0) return;
      const batch = this.usage;
      this.usage = new Map();
      try {
        await this.sql.transaction(async (tx) => {
          for (const [id, u] of batch) {
            await tx.query(
              `UPDATE agent_tokens SET requests = requests + $2, denied = denied + $3,
                 last_seen = GREATEST(last_seen, $4::timestamptz),
                 targets_used = (SELECT coalesce(jsonb_agg(DISTINCT t), '[]'::jsonb)
                                 FROM jsonb_array_elements_text(targets_used || $5::jsonb) AS t)
               WHERE token_id = $1`,
              [id, u.requests, u.denied, u.lastSeen, JSON.stringify([...u.targets])],
            );
          }
        });
      } catch {
        for (const [id, u] of batch) {
          const now = this.usage.get(id);
          if (!now) this.usage.set(id, u);
          else {
            now.requests += u.requests;
            now.denied += u.denied;
            for (const t of u.targets) now.targets.add(t);
          }
        }
      }
    });
    return this.flushing;
  }

  /** The inventory, newest first; `user` names a person only together with `issuer`. */
  async list(
    filter: { issuer?: string; user?: string; agent?: string; tokenId?: string } = {},
  ): Promise<AgentTokenRecord[]> {
    await this.flush();
    const rows = await this.sql.query<Record<string, unknown>>(
      `SELECT * FROM agent_tokens
       WHERE ($1::text IS NULL OR user_issuer = $1) AND ($2::text IS NULL OR user_subject = $2)
         AND ($3::text IS NULL OR agent = $3) AND ($4::text IS NULL OR token_id = $4)
       ORDER BY issued_at DESC LIMIT 1000`,
      [filter.issuer ?? null, filter.user ?? null, filter.agent ?? null, filter.tokenId ?? null],
    );
    return rows.map(recordOf);
  }

  /** Agent tokens issued, not expired and not revoked, fleet-wide (a count query: for metrics). */
  async activeCount(): Promise<number> {
    const [row] = await this.sql.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM agent_tokens WHERE revoked_at IS NULL AND expires_at > $1',
      [new Date(this.now()).toISOString()],
    );
    return Number(row?.n ?? 0);
  }

  /**
   * Revokes by token id, by agent name of a person, or every agent of a person (the kill switch, which
   * also covers tokens minted later from a person's token issued before it). Returns what it hit.
   */
  async revoke(
    by: Person,
    what: { tokenId?: string; agent?: string; user?: Person },
  ): Promise<AgentTokenRecord[]> {
    const at = new Date(this.now()).toISOString();
    const hit = await this.sql.transaction(async (tx) => {
      let rows: Record<string, unknown>[] = [];
      const mark = `UPDATE agent_tokens SET revoked_at = coalesce(revoked_at, $1),
        revoked_by = coalesce(revoked_by, $2), revoked_by_issuer = coalesce(revoked_by_issuer, $3)`;
      const marks = [at, by.subject, by.issuer];
      const owner = `user_issuer = $4 AND user_subject = $5`;
      if (what.tokenId) {
        rows = await tx.query(`${mark} WHERE token_id = $4 RETURNING *`, [...marks, what.tokenId]);
      } else if (what.agent && what.user) {
        rows = await tx.query(`${mark} WHERE ${owner} AND agent = $6 RETURNING *`, [
          ...marks,
          what.user.issuer,
          what.user.subject,
          what.agent,
        ]);
        await this.cutoff(tx, what.user, what.agent, at, by);
      } else if (what.user) {
        rows = await tx.query(`${mark} WHERE ${owner} RETURNING *`, [
          ...marks,
          what.user.issuer,
          what.user.subject,
        ]);
        await this.cutoff(tx, what.user, '', at, by);
      }
      await this.state.notify(tx, 'revocations');
      return rows.map(recordOf);
    });
    // This node applies it before answering, not when its own notice comes back.
    await this.reload();
    return hit;
  }

  private async cutoff(
    tx: Pick<SharedState['sql'], 'query'>,
    user: Person,
    agent: string,
    at: string,
    by: Person,
  ): Promise<void> {
    await tx.query(
      `INSERT INTO agent_cutoffs (user_issuer, user_subject, agent, cutoff, revoked_by, revoked_by_issuer)
       VALUES ($1, $2, $3, $4, $5, $6)
       ON CONFLICT (user_issuer, user_subject, agent) DO UPDATE SET cutoff = EXCLUDED.cutoff,
         revoked_by = EXCLUDED.revoked_by, revoked_by_issuer = EXCLUDED.revoked_by_issuer`,
      [user.issuer, user.subject, agent, at, by.subject, by.issuer],
    );
  }

  async close(): Promise<void> {
    if (this.flushTimer) clearInterval(this.flushTimer);
    await this.flush();
  }
}
