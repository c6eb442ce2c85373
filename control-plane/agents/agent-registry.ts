// The agent inventory and kill switch. Every agent token Chaperone issues is registered here (who
// launched it, when, for which targets); every decision made with one updates its last-seen time and
// counters. Revocation — one token, every token of an agent name, or every agent of a user — is checked
// on each Check, in memory, so it takes effect on the next request.
import type { DecisionEvent } from '../../authz-server/check-pipeline.ts';

export interface AgentTokenRecord {
  token_id: string;
  agent: string;
  run_id: string;
  user: string;
  targets: string[] | null;
  issued_at: string;
  expires_at: string;
  revoked_at: string | null;
  revoked_by: string | null;
  last_seen: string | null;
  requests: number;
  denied: number;
  targets_used: string[];
}

export interface RevocationCheck {
  /** A reason when the identity's token is revoked, else null. */
  revoked(identity: {
    token_id: string | null;
    subject: string;
    actor: { agent?: string } | null;
    claims: Record<string, unknown>;
  }): string | null;
}

/** What an authz server needs to enforce revocations, as the control plane publishes it. */
export interface RevocationList {
  token_ids: string[];
  /** user → epoch ms: agent tokens of the user issued at or before it are revoked. */
  users: Record<string, number>;
  /** `${user} ${agent}` → epoch ms. */
  agents: Record<string, number>;
}

/** Applies a RevocationList to an identity (shared by the in-process registry and remote pollers). */
export function revokedBy(
  list: RevocationList,
  identity: Parameters<RevocationCheck['revoked']>[0],
): string | null {
  const agent = identity.actor?.agent;
  if (!agent) return null;
  // `iat` has one-second resolution: a cutoff covers tokens from earlier seconds; tokens of the same
  // second are covered by the explicit token id list (this registry issued and listed every one).
  const issuedSec = typeof identity.claims['iat'] === 'number' ? identity.claims['iat'] : 0;
  if (identity.token_id && list.token_ids.includes(identity.token_id))
    return `agent token ${identity.token_id} was revoked`;
  const user = list.users[identity.subject];
  if (user !== undefined && issuedSec < Math.floor(user / 1000))
    return `every agent of ${identity.subject} was revoked`;
  const a = list.agents[`${identity.subject} ${agent}`];
  if (a !== undefined && issuedSec < Math.floor(a / 1000)) return `agent ${agent} was revoked`;
  return null;
}

export class AgentRegistry implements RevocationCheck {
  private readonly tokens = new Map<string, AgentTokenRecord>();
  /** user → time before which every agent token of that user is revoked (the kill switch). */
  private readonly userCutoff = new Map<string, { at: number; by: string }>();
  /** `${user}\0${agent}` → cutoff for one agent name. */
  private readonly agentCutoff = new Map<string, { at: number; by: string }>();

  constructor(private readonly now: () => number = Date.now) {}

  register(
    r: Omit<
      AgentTokenRecord,
      'revoked_at' | 'revoked_by' | 'last_seen' | 'requests' | 'denied' | 'targets_used'
    >,
  ): AgentTokenRecord {
    const rec: AgentTokenRecord = {
      ...r,
      revoked_at: null,
      revoked_by: null,
      last_seen: null,
      requests: 0,
      denied: 0,
      targets_used: [],
    };
    this.tokens.set(r.token_id, rec);
    return rec;
  }

  private cachedList: RevocationList | null = null;

  revoked(identity: Parameters<RevocationCheck['revoked']>[0]): string | null {
    if (!identity.actor?.agent) return null;
    this.cachedList ??= this.revocations();
    return revokedBy(this.cachedList, identity);
  }

  revocations(): RevocationList {
    const users: Record<string, number> = {};
    for (const [u, c] of this.userCutoff) users[u] = c.at;
    const agents: Record<string, number> = {};
    for (const [k, c] of this.agentCutoff) agents[k.replace('\0', ' ')] = c.at;
    return {
      token_ids: [...this.tokens.values()].filter((r) => r.revoked_at).map((r) => r.token_id),
      users,
      agents,
    };
  }

  observe(e: DecisionEvent): void {
    const actor = e.actor as { agent?: string } | null;
    if (!actor?.agent) return;
    const tokenId = (e.input as { identity?: { token_id?: string } } | null)?.identity?.token_id;
    const rec = tokenId ? this.tokens.get(tokenId) : undefined;
    if (!rec) return;
    rec.last_seen = e.time.toISOString();
    rec.requests++;
    if (e.verdict.decision !== 'allow') rec.denied++;
    if (e.target && !rec.targets_used.includes(e.target)) rec.targets_used.push(e.target);
  }

  list(filter: { user?: string; agent?: string } = {}): AgentTokenRecord[] {
    return [...this.tokens.values()]
      .filter((r) => (!filter.user || r.user === filter.user) && (!filter.agent || r.agent === filter.agent))
      .sort((a, b) => (a.issued_at < b.issued_at ? 1 : -1));
  }

  /** Revokes by token id, by agent name (of a user), or every agent of a user. Returns what it hit. */
  revoke(by: string, what: { tokenId?: string; agent?: string; user?: string }): AgentTokenRecord[] {
    this.cachedList = null;
    const at = this.now();
    const stamp = new Date(at).toISOString();
    let hit: AgentTokenRecord[] = [];
    if (what.tokenId) {
      const r = this.tokens.get(what.tokenId);
      hit = r ? [r] : [];
    } else if (what.agent) {
      hit = this.list({ agent: what.agent, ...(what.user ? { user: what.user } : {}) });
      for (const u of new Set(hit.map((r) => r.user).concat(what.user ? [what.user] : []))) {
        this.agentCutoff.set(`${u}\0${what.agent}`, { at, by });
      }
    } else if (what.user) {
      hit = this.list({ user: what.user });
      this.userCutoff.set(what.user, { at, by });
    }
    for (const r of hit) {
      if (!r.revoked_at) {
        r.revoked_at = stamp;
        r.revoked_by = by;
      }
    }
    return hit;
  }
}
