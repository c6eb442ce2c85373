// Human approval of risky requests. A policy answers `{allowed: false, approval: {reviewers, ttl,
// reason}}`; the authz server records a pending request keyed by the request's fingerprint (who —
// issuer and subject —, acting as whom, which target, and what the request does:
// authz-server/pipeline/approval-action.ts) and denies with an approval id. A reviewer in one of the
// named groups — never the requester — approves or denies it; the grant then matches only the same
// fingerprint, once (default) or until it expires. Requests live in the store's `approvals` table, so
// every authz server and control plane of a fleet sees the same ones; the approved grants — all the
// Check path reads — are held in a Mirror and reloaded on each change notice.
import { createHash, randomUUID } from 'node:crypto';
import { ChaperoneError } from '../contracts/errors.ts';
import { type Person, samePerson } from '../contracts/identity.ts';
import { redactText } from '../lib/secret-text.ts';
import { jsonColumn } from '../store/sql.ts';
import { type ApprovalEvent, approvalEventsOf, recordApprovalEvent } from './approval-events.ts';
import { Mirror } from './mirror.ts';
import type { SharedState } from './shared-state.ts';

export type ApprovalStatus = 'pending' | 'approved' | 'denied' | 'expired' | 'used' | 'revoked';

export interface ApprovalRequest {
  id: string;
  fingerprint: string;
  status: ApprovalStatus;
  /** The person (their issuer and subject) and the agent acting for them, if any. */
  requester: { subject: string; issuer: string; actor: unknown };
  target: string | null;
  method: string;
  path: string;
  body_sha256: string | null;
  reviewers: string[];
  reason: string;
  /** How long a grant stays usable once approved (ms). */
  ttl_ms: number;
  mode: 'once' | 'window';
  created_at: string;
  decided_at: string | null;
  decided_by: string | null;
  decided_by_issuer?: string | null;
  expires_at: string | null;
  uses: number;
  /** What the reviewer said with the decision (a deny's reason), when anything. */
  decision_reason?: string | null;
  /** A grant withdrawn before it lapsed: when and by whom. */
  revoked_at?: string | null;
  revoked_by?: string | null;
  revoked_by_issuer?: string | null;
}

export interface ApprovalSpec {
  reviewers: string[];
  ttl?: string;
  reason?: string;
}

/** Why a decision was refused; the HTTP API answers with it as its error code. */
export type ApprovalRefusal = 'not_found' | 'forbidden' | 'self_approval' | 'not_pending' | 'invalid';

export class ApprovalError extends ChaperoneError {
  constructor(
    readonly kind: ApprovalRefusal,
    message: string,
  ) {
    super('ERR_APPROVAL', message);
  }
}

/**
 * Who asks (subject and agent), where (target) and what is done (`action`: the digest of the action
 * the request performs, computed by the authz server's approval gate — not its envelope, so a client's
 * retry with a new JSON-RPC id or reordered JSON keys matches, a different action does not).
 */
export function fingerprintOf(p: {
  subject: string;
  issuer: string;
  actor: unknown;
  target: string | null;
  action: string;
}): string {
  const actor = p.actor && typeof p.actor === 'object' ? (p.actor as Record<string, unknown>) : null;
  return createHash('sha256')
    .update(
      JSON.stringify([p.issuer, p.subject, actor?.['agent'] ?? actor?.['sub'] ?? null, p.target, p.action]),
    )
    .digest('hex');
}

/** `30s`, `15m`, `1h`, `2d`; default 1 h, capped at 7 days. */
export function parseTtl(text: string | undefined): number {
  const m = /^(\d+)\s*(s|m|h|d)$/.exec(text ?? '1h');
  const ms = m
    ? Number(m[1]) * { s: 1e3, m: 6e4, h: 3.6e6, d: 8.64e7 }[m[2] as 's' | 'm' | 'h' | 'd']
    : 3.6e6;
  return Math.min(ms, 7 * 8.64e7);
}

type Reader = { query<T>(text: string, params?: unknown[]): Promise<T[]> };

function docOf(row: { doc: unknown }): ApprovalRequest {
  return jsonColumn<ApprovalRequest>(row.doc);
}

/**
 * What a pending approval request records for its reviewers: who, as whom, where, what, with which raw
 * body. The grant matches by fingerprint (the person, the agent, the target and what the request does),
 * not by these fields.
 */
export interface ApprovalRequestParts {
  subject: string;
  /** The issuer that vouches for `subject` (the person's own issuer, also behind an agent token). */
  issuer: string;
  actor: unknown;
  target: string | null;
  method: string;
  path: string;
  bodySha256: string | null;
}

export class ApprovalStore {
  /** Approved, unexpired grants by approval id, as the store has them. */
  private readonly grants: Mirror<string, ApprovalRequest>;
  /** The same grants by fingerprint: what `grantFor` answers from, with no I/O. */
  private readonly byFingerprint = new Map<string, ApprovalRequest>();

  private constructor(
    private readonly state: SharedState,
    private readonly now: () => number,
  ) {
    const grantsOf = (rows: { doc: unknown }[]) =>
      rows.map(docOf).flatMap((r) => (this.isGrant(r) ? [[r.id, r] as const] : []));
    this.grants = new Mirror(
      {
        loadAll: async () =>
          grantsOf(await this.sql.query("SELECT doc FROM approvals WHERE status = 'approved'")),
        loadSome: async (ids) =>
          grantsOf(
            await this.sql.query("SELECT doc FROM approvals WHERE id = ANY($1) AND status = 'approved'", [
              ids,
            ]),
          ),
      },
      (_id, grant, previous) => {
        if (previous && this.byFingerprint.get(previous.fingerprint)?.id === previous.id)
          this.byFingerprint.delete(previous.fingerprint);
        if (grant) this.byFingerprint.set(grant.fingerprint, grant);
      },
    );
  }

  static async open(state: SharedState, o: { now?: () => number } = {}): Promise<ApprovalStore> {
    const store = new ApprovalStore(state, o.now ?? Date.now);
    state.follow('approval', store.grants);
    await store.grants.reloadAll();
    return store;
  }

  private get sql() {
    return this.state.sql;
  }

  private isGrant(r: ApprovalRequest): boolean {
    return r.status === 'approved' && !this.expired(r);
  }

  /** A request as this process just committed (or read under lock) it: held when it is a grant. */
  private hold(r: ApprovalRequest): void {
    this.grants.set(r.id, this.isGrant(r) ? r : undefined);
  }

  private expired(r: ApprovalRequest): boolean {
    return r.expires_at !== null && Date.parse(r.expires_at) < this.now();
  }

  /** As stored, with a lapsed grant shown as expired. */
  private view(r: ApprovalRequest): ApprovalRequest {
    return r.status === 'approved' && this.expired(r) ? { ...r, status: 'expired' } : r;
  }

  /** Writes a request and announces it (inside the caller's transaction); returns it. */
  private async write(tx: Reader, r: ApprovalRequest): Promise<ApprovalRequest> {
    await tx.query('UPDATE approvals SET status = $2, doc = $3 WHERE id = $1', [
      r.id,
      r.status,
      JSON.stringify(r),
    ]);
    await this.state.notify(tx, 'approval', r.id);
    return r;
  }

  private async pendingFor(tx: Reader, fingerprint: string): Promise<ApprovalRequest | null> {
    const [row] = await tx.query<{ doc: unknown }>(
      "SELECT doc FROM approvals WHERE fingerprint = $1 AND status = 'pending'",
      [fingerprint],
    );
    return row ? docOf(row) : null;
  }

  /** The existing pending request for this fingerprint (fleet-wide), or a new one. */
  async request(
    p: ApprovalRequestParts & { fingerprint: string; spec: ApprovalSpec },
  ): Promise<ApprovalRequest> {
    const found = await this.pendingFor(this.sql, p.fingerprint);
    if (found) return found;
    const req: ApprovalRequest = {
      id: randomUUID(),
      fingerprint: p.fingerprint,
      status: 'pending',
      requester: { subject: p.subject, issuer: p.issuer, actor: p.actor ?? null },
      target: p.target,
      method: p.method,
      // What reviewers and the requester see: the query with secret-named values redacted (the
      // fingerprint, computed from the exact path, is what a grant matches).
      path: redactText(p.path),
      body_sha256: p.bodySha256,
      reviewers: [...p.spec.reviewers],
      reason: p.spec.reason ?? 'approval required',
      ttl_ms: parseTtl(p.spec.ttl),
      mode: 'once',
      created_at: new Date(this.now()).toISOString(),
      decided_at: null,
      decided_by: null,
      expires_at: null,
      uses: 0,
    };
    return this.sql.transaction(async (tx) => {
      const inserted = await tx.query(
        `INSERT INTO approvals (id, fingerprint, status, created_at, doc) VALUES ($1, $2, 'pending', $3, $4)
         ON CONFLICT (fingerprint) WHERE status = 'pending' DO NOTHING RETURNING id`,
        [req.id, req.fingerprint, req.created_at, JSON.stringify(req)],
      );
      if (inserted.length === 0) {
        // Another authz server asked for the same request a moment ago: that one is the request.
        const other = await this.pendingFor(tx, p.fingerprint);
        if (other) return other;
      }
      await this.state.notify(tx, 'approval', req.id);
      await recordApprovalEvent(tx, 'approval.requested', req, new Date(this.now()));
      return req;
    });
  }

  /** A usable grant for this fingerprint, from memory (approved, unexpired, unused when one-time). */
  grantFor(fingerprint: string): ApprovalRequest | null {
    const r = this.byFingerprint.get(fingerprint);
    if (!r) return null;
    if (this.expired(r)) {
      this.grants.set(r.id, undefined);
      return null;
    }
    return r;
  }

  /**
   * A grant decided on another node a moment ago may not have reached this node's memory yet; the
   * approval-required path (never the common one) asks the store before creating a new request.
   */
  async freshGrantFor(fingerprint: string): Promise<ApprovalRequest | null> {
    const rows = await this.sql.query<{ id: string }>(
      "SELECT id FROM approvals WHERE fingerprint = $1 AND status = 'approved'",
      [fingerprint],
    );
    // Through the mirror, so this read is ordered with the reloads notices start.
    if (rows.length > 0) await this.grants.reload(rows.map((r) => r.id));
    return this.grantFor(fingerprint);
  }

  /**
   * Spends one use of a grant, atomically across the fleet. False when it is no longer usable (a
   * one-time grant another authz server used first, a grant that expired or was withdrawn).
   */
  async claim(id: string): Promise<boolean> {
    const { claimed, latest } = await this.sql.transaction(async (tx) => {
      const [row] = await tx.query<{ doc: unknown }>('SELECT doc FROM approvals WHERE id = $1 FOR UPDATE', [
        id,
      ]);
      if (!row) return { claimed: false, latest: null };
      const r = docOf(row);
      // Not a grant any more (spent, withdrawn): what the lock read is the newest state.
      if (r.status !== 'approved') return { claimed: false, latest: r };
      if (this.expired(r))
        return { claimed: false, latest: await this.write(tx, { ...r, status: 'expired' }) };
      const spent = { ...r, uses: r.uses + 1, status: r.mode === 'once' ? ('used' as const) : r.status };
      return { claimed: true, latest: await this.write(tx, spent) };
    });
    // After the commit: a reload started before it must not bring the grant back.
    if (latest) this.hold(latest);
    return claimed;
  }

  /** Requests waiting for a reviewer, fleet-wide (one count query: for metrics, not the Check path). */
  async pendingCount(): Promise<number> {
    const [row] = await this.sql.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM approvals WHERE status = 'pending'",
    );
    return Number(row?.n ?? 0);
  }

  async get(id: string): Promise<ApprovalRequest | null> {
    const [row] = await this.sql.query<{ doc: unknown }>('SELECT doc FROM approvals WHERE id = $1', [id]);
    return row ? this.view(docOf(row)) : null;
  }

  /** Newest first, at most `limit` (default 500). */
  async list(
    filter: { status?: ApprovalStatus; reviewerGroups?: string[]; limit?: number } = {},
  ): Promise<ApprovalRequest[]> {
    // A lapsed grant is still 'approved' in its row; it is listed under 'expired'.
    const stored =
      filter.status === 'expired' ? ['expired', 'approved'] : filter.status ? [filter.status] : null;
    const rows = await this.sql.query<{ doc: unknown }>(
      `SELECT doc FROM approvals ${stored ? 'WHERE status = ANY($2)' : 'WHERE $2::text[] IS NULL'}
       ORDER BY created_at DESC LIMIT $1`,
      [Math.min(Math.max(filter.limit ?? 500, 1), 5000), stored],
    );
    return rows
      .map((row) => this.view(docOf(row)))
      .filter((r) => !filter.status || r.status === filter.status)
      .filter((r) => !filter.reviewerGroups || r.reviewers.some((g) => filter.reviewerGroups!.includes(g)));
  }

  async decide(
    id: string,
    reviewer: Person & { groups: string[] },
    verdict: 'approve' | 'deny',
    opts: { mode?: 'once' | 'window'; ttl?: string; reason?: string } = {},
  ): Promise<ApprovalRequest> {
    const decided = await this.sql.transaction(async (tx) => {
      const [row] = await tx.query<{ doc: unknown }>('SELECT doc FROM approvals WHERE id = $1 FOR UPDATE', [
        id,
      ]);
      if (!row) throw new ApprovalError('not_found', `no approval request ${id}`);
      const r = docOf(row);
      if (!r.reviewers.some((g) => reviewer.groups.includes(g))) {
        throw new ApprovalError(
          'forbidden',
          `only members of ${r.reviewers.join(', ')} may decide this request`,
        );
      }
      // Fail closed on a request stored without its issuer: the same sub may be the same person.
      const requester = { issuer: r.requester.issuer ?? reviewer.issuer, subject: r.requester.subject };
      if (samePerson(reviewer, requester)) {
        throw new ApprovalError('self_approval', 'a reviewer cannot decide their own request');
      }
      if (r.status !== 'pending') throw new ApprovalError('not_pending', `request ${id} is ${r.status}`);
      const next: ApprovalRequest = {
        ...r,
        status: verdict === 'approve' ? 'approved' : 'denied',
        decided_at: new Date(this.now()).toISOString(),
        decided_by: reviewer.subject,
        decided_by_issuer: reviewer.issuer,
      };
      if (opts.reason) next.decision_reason = opts.reason;
      if (verdict === 'approve') {
        next.mode = opts.mode ?? 'once';
        next.expires_at = new Date(this.now() + (opts.ttl ? parseTtl(opts.ttl) : r.ttl_ms)).toISOString();
      }
      await recordApprovalEvent(tx, 'approval.decided', next, new Date(this.now()));
      return this.write(tx, next);
    });
    this.hold(decided);
    return decided;
  }

  /** The request's history (requested, decided, expired, revoked), oldest first. */
  events(id: string): Promise<ApprovalEvent[]> {
    return approvalEventsOf(this.sql, id);
  }

  /**
   * Expires requests pending for longer than `ttlMs` (oldest first, at most `limit` per call): each
   * becomes `expired`, with its event, in one transaction; rows another node is expiring are skipped.
   */
  async expirePending(ttlMs: number, limit = 100): Promise<ApprovalRequest[]> {
    const cutoff = new Date(this.now() - ttlMs).toISOString();
    return this.sql.transaction(async (tx) => {
      const rows = await tx.query<{ doc: unknown }>(
        `SELECT doc FROM approvals WHERE status = 'pending' AND created_at < $1
         ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED`,
        [cutoff, limit],
      );
      const out: ApprovalRequest[] = [];
      for (const row of rows) {
        const next: ApprovalRequest = {
          ...docOf(row),
          status: 'expired',
          decided_at: new Date(this.now()).toISOString(),
          decided_by: null,
          decision_reason: `nobody decided within ${Math.round(ttlMs / 60_000)} min`,
        };
        await recordApprovalEvent(tx, 'approval.expired', next, new Date(this.now()));
        out.push(await this.write(tx, next));
      }
      return out;
    });
  }

  /**
   * Withdraws a grant before it lapses (a window, or a one-time grant not used yet). A reviewer of the
   * request may, and so may whoever the caller says may revoke any (the admin role); never the
   * requester alone. Every node drops the grant on the change notice.
   */
  async revokeGrant(
    id: string,
    by: Person & { groups: string[]; anyRequest?: boolean },
    reason?: string,
  ): Promise<ApprovalRequest> {
    const revoked = await this.sql.transaction(async (tx) => {
      const [row] = await tx.query<{ doc: unknown }>('SELECT doc FROM approvals WHERE id = $1 FOR UPDATE', [
        id,
      ]);
      if (!row) throw new ApprovalError('not_found', `no approval request ${id}`);
      const r = docOf(row);
      if (!by.anyRequest && !r.reviewers.some((g) => by.groups.includes(g)))
        throw new ApprovalError(
          'forbidden',
          `only members of ${r.reviewers.join(', ')} may revoke this grant`,
        );
      if (r.status !== 'approved' || this.expired(r))
        throw new ApprovalError(
          'not_pending',
          `request ${id} is not an active grant (${this.view(r).status})`,
        );
      const at = new Date(this.now()).toISOString();
      const next: ApprovalRequest = {
        ...r,
        status: 'revoked',
        revoked_at: at,
        revoked_by: by.subject,
        revoked_by_issuer: by.issuer,
        ...(reason ? { decision_reason: reason } : {}),
      };
      await recordApprovalEvent(tx, 'approval.revoked', next, new Date(this.now()));
      return this.write(tx, next);
    });
    this.hold(revoked);
    return revoked;
  }
}
