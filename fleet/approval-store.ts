// Human approval of risky requests. A policy answers `{allowed: false, approval: {reviewers, ttl,
// reason}}`; the authz server records a pending request keyed by the request's fingerprint (who, acting
// as whom, which target, method, path, query and body hash) and denies with an approval id. A reviewer in
// one of the named groups — never the requester — approves or denies it; the grant then matches only
// the same fingerprint, once (default) or until it expires. Requests live in the store's `approvals`
// table, so every authz server and control plane of a fleet sees the same ones; the approved grants —
// all the Check path reads — are mirrored in memory and reloaded on each change notice.
import { createHash, randomUUID } from 'node:crypto';
import { coalesced } from '../lib/coalesce.ts';
import { redactText } from '../lib/secret-text.ts';
import type { SharedState } from './shared-state.ts';

export type ApprovalStatus = 'pending' | 'approved' | 'denied' | 'expired' | 'used';

export interface ApprovalRequest {
  id: string;
  fingerprint: string;
  status: ApprovalStatus;
  requester: { subject: string; actor: unknown };
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
  expires_at: string | null;
  uses: number;
}

export interface ApprovalSpec {
  reviewers: string[];
  ttl?: string;
  reason?: string;
}

export class ApprovalError extends Error {
  constructor(
    readonly code: 'not_found' | 'forbidden' | 'self_approval' | 'not_pending' | 'invalid',
    message: string,
  ) {
    super(message);
    this.name = 'ApprovalError';
  }
}

export function fingerprintOf(p: {
  subject: string;
  actor: unknown;
  target: string | null;
  method: string;
  path: string;
  bodySha256: string | null;
}): string {
  const actor = p.actor && typeof p.actor === 'object' ? (p.actor as Record<string, unknown>) : null;
  return createHash('sha256')
    .update(
      JSON.stringify([
        p.subject,
        actor?.['agent'] ?? actor?.['sub'] ?? null,
        p.target,
        p.method,
        p.path,
        p.bodySha256,
      ]),
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
  return (typeof row.doc === 'string' ? JSON.parse(row.doc) : row.doc) as ApprovalRequest;
}

export class ApprovalStore {
  /** Approved grants by fingerprint: what `grantFor` answers from, with no I/O. */
  private readonly grants = new Map<string, ApprovalRequest>();

  private constructor(
    private readonly state: SharedState,
    private readonly now: () => number,
  ) {}

  static async open(state: SharedState, o: { now?: () => number } = {}): Promise<ApprovalStore> {
    const store = new ApprovalStore(state, o.now ?? Date.now);
    // One read at a time: a late answer to an earlier read must not overwrite a newer state.
    const reloadAll = coalesced(() => store.reloadAll());
    state.on('approval', (n) => (n.id ? store.reloadOne(n.id) : reloadAll()));
    state.onResync(reloadAll);
    await store.reloadAll();
    return store;
  }

  private get sql() {
    return this.state.sql;
  }

  private mirror(r: ApprovalRequest): void {
    const held = this.grants.get(r.fingerprint);
    if (r.status === 'approved' && !this.expired(r)) this.grants.set(r.fingerprint, r);
    else if (held?.id === r.id) this.grants.delete(r.fingerprint);
  }

  private readonly reloads = new Map<string, Promise<void>>();

  /** Reloads one request; reads of the same id run one after another (different ids are independent). */
  private reloadOne(id: string): Promise<void> {
    const next = (this.reloads.get(id) ?? Promise.resolve())
      .catch(() => undefined)
      .then(() => this.reload(id));
    this.reloads.set(id, next);
    void next
      .finally(() => {
        if (this.reloads.get(id) === next) this.reloads.delete(id);
      })
      .catch(() => undefined);
    return next;
  }

  private async reload(id: string): Promise<void> {
    const [row] = await this.sql.query<{ doc: unknown }>('SELECT doc FROM approvals WHERE id = $1', [id]);
    if (row) this.mirror(docOf(row));
  }

  private async reloadAll(): Promise<void> {
    const rows = await this.sql.query<{ doc: unknown }>(
      "SELECT doc FROM approvals WHERE status = 'approved'",
    );
    this.grants.clear();
    for (const row of rows) this.mirror(docOf(row));
  }

  private expired(r: ApprovalRequest): boolean {
    return r.expires_at !== null && Date.parse(r.expires_at) < this.now();
  }

  /** As stored, with a lapsed grant shown as expired. */
  private view(r: ApprovalRequest): ApprovalRequest {
    return r.status === 'approved' && this.expired(r) ? { ...r, status: 'expired' } : r;
  }

  private async write(tx: Reader, r: ApprovalRequest): Promise<void> {
    await tx.query('UPDATE approvals SET status = $2, doc = $3 WHERE id = $1', [
      r.id,
      r.status,
      JSON.stringify(r),
    ]);
    await this.state.notify(tx, 'approval', r.id);
    this.mirror(r);
  }

  private async pendingFor(tx: Reader, fingerprint: string): Promise<ApprovalRequest | null> {
    const [row] = await tx.query<{ doc: unknown }>(
      "SELECT doc FROM approvals WHERE fingerprint = $1 AND status = 'pending'",
      [fingerprint],
    );
    return row ? docOf(row) : null;
  }

  /** The existing pending request for this fingerprint (fleet-wide), or a new one. */
  async request(p: {
    fingerprint: string;
    subject: string;
    actor: unknown;
    target: string | null;
    method: string;
    path: string;
    bodySha256: string | null;
    spec: ApprovalSpec;
  }): Promise<ApprovalRequest> {
    const found = await this.pendingFor(this.sql, p.fingerprint);
    if (found) return found;
    const req: ApprovalRequest = {
      id: randomUUID(),
      fingerprint: p.fingerprint,
      status: 'pending',
      requester: { subject: p.subject, actor: p.actor ?? null },
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
      return req;
    });
  }

  /** A usable grant for this fingerprint, from memory (approved, unexpired, unused when one-time). */
  grantFor(fingerprint: string): ApprovalRequest | null {
    const r = this.grants.get(fingerprint);
    if (!r) return null;
    if (this.expired(r)) {
      this.grants.delete(fingerprint);
      return null;
    }
    return r;
  }

  /**
   * A grant decided on another node a moment ago may not have reached this node's memory yet; the
   * approval-required path (never the common one) asks the store before creating a new request.
   */
  async freshGrantFor(fingerprint: string): Promise<ApprovalRequest | null> {
    const rows = await this.sql.query<{ doc: unknown }>(
      "SELECT doc FROM approvals WHERE fingerprint = $1 AND status = 'approved'",
      [fingerprint],
    );
    for (const row of rows) this.mirror(docOf(row));
    return this.grantFor(fingerprint);
  }

  /**
   * Spends one use of a grant, atomically across the fleet. False when it is no longer usable (a
   * one-time grant another authz server used first, a grant that expired or was withdrawn).
   */
  async claim(id: string): Promise<boolean> {
    return this.sql.transaction(async (tx) => {
      const [row] = await tx.query<{ doc: unknown }>('SELECT doc FROM approvals WHERE id = $1 FOR UPDATE', [
        id,
      ]);
      if (!row) return false;
      const r = docOf(row);
      if (r.status !== 'approved') {
        this.mirror(r);
        return false;
      }
      if (this.expired(r)) {
        await this.write(tx, { ...r, status: 'expired' });
        return false;
      }
      await this.write(tx, { ...r, uses: r.uses + 1, status: r.mode === 'once' ? 'used' : r.status });
      return true;
    });
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
    reviewer: { subject: string; groups: string[] },
    verdict: 'approve' | 'deny',
    opts: { mode?: 'once' | 'window'; ttl?: string } = {},
  ): Promise<ApprovalRequest> {
    return this.sql.transaction(async (tx) => {
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
      if (reviewer.subject === r.requester.subject) {
        throw new ApprovalError('self_approval', 'a reviewer cannot decide their own request');
      }
      if (r.status !== 'pending') throw new ApprovalError('not_pending', `request ${id} is ${r.status}`);
      const decided: ApprovalRequest = {
        ...r,
        status: verdict === 'approve' ? 'approved' : 'denied',
        decided_at: new Date(this.now()).toISOString(),
        decided_by: reviewer.subject,
      };
      if (verdict === 'approve') {
        decided.mode = opts.mode ?? 'once';
        decided.expires_at = new Date(this.now() + (opts.ttl ? parseTtl(opts.ttl) : r.ttl_ms)).toISOString();
      }
      await this.write(tx, decided);
      return decided;
    });
  }
}
