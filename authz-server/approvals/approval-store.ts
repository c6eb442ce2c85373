// Human approval of risky requests. A policy answers `{allowed: false, approval: {reviewers, ttl,
// reason}}`; the authz server records a pending request keyed by the request's fingerprint (who, acting
// as whom, which target, method, path, query and body hash) and denies with an approval id. A reviewer in
// one of the named groups — never the requester — approves or denies it; the grant then matches only
// the same fingerprint, once (default) or until it expires. In memory, bounded: the audit trail keeps
// the history (the request, the approval id and approver in the retried decision's input).
import { createHash, randomUUID } from 'node:crypto';

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

export class ApprovalStore {
  private readonly byId = new Map<string, ApprovalRequest>();
  private readonly pendingByFingerprint = new Map<string, string>();

  constructor(private readonly o: { maxEntries?: number; now?: () => number } = {}) {}

  private now(): number {
    return this.o.now?.() ?? Date.now();
  }

  /** The existing pending request for this fingerprint, or a new one. */
  request(p: {
    fingerprint: string;
    subject: string;
    actor: unknown;
    target: string | null;
    method: string;
    path: string;
    bodySha256: string | null;
    spec: ApprovalSpec;
  }): ApprovalRequest {
    const existing = this.pendingByFingerprint.get(p.fingerprint);
    const found = existing ? this.byId.get(existing) : undefined;
    if (found && found.status === 'pending') return found;
    this.evict();
    const req: ApprovalRequest = {
      id: randomUUID(),
      fingerprint: p.fingerprint,
      status: 'pending',
      requester: { subject: p.subject, actor: p.actor ?? null },
      target: p.target,
      method: p.method,
      path: p.path,
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
    this.byId.set(req.id, req);
    this.pendingByFingerprint.set(p.fingerprint, req.id);
    return req;
  }

  /** A usable grant for this fingerprint (approved, unexpired, unused when one-time). */
  grantFor(fingerprint: string): ApprovalRequest | null {
    for (const r of this.byId.values()) {
      if (r.fingerprint !== fingerprint || r.status !== 'approved') continue;
      if (r.expires_at && Date.parse(r.expires_at) < this.now()) {
        r.status = 'expired';
        continue;
      }
      return r;
    }
    return null;
  }

  /** Marks one use of a grant; a one-time grant is spent. */
  use(id: string): void {
    const r = this.byId.get(id);
    if (!r) return;
    r.uses++;
    if (r.mode === 'once') r.status = 'used';
  }

  get(id: string): ApprovalRequest | null {
    return this.byId.get(id) ?? null;
  }

  list(filter: { status?: ApprovalStatus; reviewerGroups?: string[] } = {}): ApprovalRequest[] {
    return [...this.byId.values()]
      .filter((r) => !filter.status || r.status === filter.status)
      .filter((r) => !filter.reviewerGroups || r.reviewers.some((g) => filter.reviewerGroups!.includes(g)))
      .sort((a, b) => (a.created_at < b.created_at ? 1 : -1));
  }

  decide(
    id: string,
    reviewer: { subject: string; groups: string[] },
    verdict: 'approve' | 'deny',
    opts: { mode?: 'once' | 'window'; ttl?: string } = {},
  ): ApprovalRequest {
    const r = this.byId.get(id);
    if (!r) throw new ApprovalError('not_found', `no approval request ${id}`);
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
    r.status = verdict === 'approve' ? 'approved' : 'denied';
    r.decided_at = new Date(this.now()).toISOString();
    r.decided_by = reviewer.subject;
    if (verdict === 'approve') {
      r.mode = opts.mode ?? 'once';
      r.expires_at = new Date(this.now() + (opts.ttl ? parseTtl(opts.ttl) : r.ttl_ms)).toISOString();
    }
    this.pendingByFingerprint.delete(r.fingerprint);
    return r;
  }

  private evict(): void {
    const max = this.o.maxEntries ?? 10_000;
    if (this.byId.size < max) return;
    // Oldest decided entries go first; pending ones are kept as long as possible.
    const decided = [...this.byId.values()].filter((r) => r.status !== 'pending' && r.status !== 'approved');
    for (const r of decided.slice(0, Math.max(1, this.byId.size - max + 1))) this.byId.delete(r.id);
  }
}
