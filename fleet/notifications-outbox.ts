// The notification outbox: one row per (approval event, sink) in the shared database. A control plane's
// worker fans new events out to its sinks, claims due rows, delivers them and marks the outcome. Claims
// use FOR UPDATE SKIP LOCKED and a lease (owner + deadline): nodes racing for the same rows each get
// different ones, and only the holder of a row's current lease can mark it delivered — so a delivery
// that succeeded is never sent again by another node. A row whose holder died is claimable again once
// its lease ends (the one case a receiver can see an event twice; it carries the event id to dedupe).
import { randomUUID } from 'node:crypto';
import type { NotificationEventKind } from '../config/types.ts';
import { isoTime, isoTimeOrNull, type Sql } from '../store/sql.ts';
import { type ApprovalEvent, eventOf } from './approval-events.ts';

export type DeliveryStatus = 'pending' | 'delivered' | 'failed';

export interface DeliveryRecord {
  event_id: string;
  sink: string;
  status: DeliveryStatus;
  attempts: number;
  next_attempt_at: string;
  last_error: string | null;
  last_status: number | null;
  created_at: string;
  delivered_at: string | null;
  kind: NotificationEventKind;
  approval_id: string;
}

/** A row this node holds the lease of, with its event. */
export interface ClaimedDelivery {
  sink: string;
  lease: string;
  attempts: number;
  event: ApprovalEvent;
}

export const OUTBOX_LIMITS = {
  /** Events older than this when a worker first sees them are not sent (a sink added later gets no backlog). */
  fanOutWindowMs: 3.6e6,
  /** Longer than a delivery can take (its HTTP timeout), so a live holder never loses its lease. */
  leaseMs: 60_000,
  /** First retry after 5 s, doubling, at most 10 min apart. */
  backoffBaseMs: 5_000,
  backoffMaxMs: 600_000,
  /** Delivered and failed rows (and their events) are kept this long for the console, then pruned. */
  retentionMs: 30 * 8.64e7,
} as const;

function recordOf(r: Record<string, unknown>): DeliveryRecord {
  return {
    event_id: String(r['event_id']),
    sink: String(r['sink']),
    status: r['status'] as DeliveryStatus,
    attempts: Number(r['attempts']),
    next_attempt_at: isoTime(r['next_attempt_at']),
    last_error: (r['last_error'] as string | null) ?? null,
    last_status: r['last_status'] === null ? null : Number(r['last_status']),
    created_at: isoTime(r['created_at']),
    delivered_at: isoTimeOrNull(r['delivered_at']),
    kind: r['kind'] as NotificationEventKind,
    approval_id: String(r['approval_id']),
  };
}

export function backoffMs(attempts: number): number {
  return Math.min(OUTBOX_LIMITS.backoffBaseMs * 2 ** Math.max(0, attempts - 1), OUTBOX_LIMITS.backoffMaxMs);
}

export class NotificationOutbox {
  constructor(
    private readonly sql: Sql,
    /** This node's name, the prefix of its leases (shown in the console). */
    private readonly node: string,
    private readonly now: () => number = Date.now,
  ) {}

  private at(offsetMs = 0): string {
    return new Date(this.now() + offsetMs).toISOString();
  }

  /** Adds a row for every recent event a sink takes and does not have yet. Returns how many. */
  async fanOut(sinks: readonly { name: string; events: readonly string[] }[]): Promise<number> {
    let added = 0;
    for (const s of sinks) {
      const rows = await this.sql.query(
        `INSERT INTO notification_deliveries (event_id, sink, status, next_attempt_at, created_at)
         SELECT e.id, $1, 'pending', $3, $3 FROM approval_events e
         WHERE e.kind = ANY($2) AND e.created_at > $4
         ON CONFLICT (event_id, sink) DO NOTHING RETURNING event_id`,
        [s.name, [...s.events], this.at(), this.at(-OUTBOX_LIMITS.fanOutWindowMs)],
      );
      added += rows.length;
    }
    return added;
  }

  /** Leases up to `limit` due rows of these sinks to this node (rows leased by others are skipped). */
  async claim(sinks: readonly string[], limit = 20): Promise<ClaimedDelivery[]> {
    if (sinks.length === 0) return [];
    const lease = `${this.node}/${randomUUID()}`;
    const rows = await this.sql.query<Record<string, unknown>>(
      `WITH due AS (
         SELECT event_id, sink FROM notification_deliveries
         WHERE status = 'pending' AND sink = ANY($1) AND next_attempt_at <= $2
           AND (lease_until IS NULL OR lease_until < $2)
         ORDER BY next_attempt_at, created_at LIMIT $3 FOR UPDATE SKIP LOCKED)
       UPDATE notification_deliveries d SET lease_owner = $4, lease_until = $5, attempts = d.attempts + 1
       FROM due, approval_events e
       WHERE d.event_id = due.event_id AND d.sink = due.sink AND e.id = d.event_id
       RETURNING d.sink, d.attempts, e.id, e.kind, e.approval_id, e.approval, e.created_at`,
      [[...sinks], this.at(), limit, lease, this.at(OUTBOX_LIMITS.leaseMs)],
    );
    return rows.map((r) => ({
      sink: String(r['sink']),
      lease,
      attempts: Number(r['attempts']),
      event: eventOf(r),
    }));
  }

  /** Marks a delivery done; false when this node no longer holds its lease (nothing changes then). */
  async delivered(c: ClaimedDelivery, httpStatus: number): Promise<boolean> {
    const rows = await this.sql.query(
      `UPDATE notification_deliveries SET status = 'delivered', delivered_at = $4, last_status = $5,
         last_error = NULL, lease_owner = NULL, lease_until = NULL
       WHERE event_id = $1 AND sink = $2 AND lease_owner = $3 AND status = 'pending' RETURNING event_id`,
      [c.event.id, c.sink, c.lease, this.at(), httpStatus],
    );
    return rows.length === 1;
  }

  /** Records a failed attempt: retried after a backoff, or given up after `maxAttempts`. */
  async failed(
    c: ClaimedDelivery,
    error: string,
    httpStatus: number | null,
    maxAttempts: number,
  ): Promise<DeliveryStatus> {
    const status: DeliveryStatus = c.attempts >= maxAttempts ? 'failed' : 'pending';
    await this.sql.query(
      `UPDATE notification_deliveries SET status = $4, next_attempt_at = $5, last_error = $6, last_status = $7,
         lease_owner = NULL, lease_until = NULL
       WHERE event_id = $1 AND sink = $2 AND lease_owner = $3 AND status = 'pending'`,
      [c.event.id, c.sink, c.lease, status, this.at(backoffMs(c.attempts)), error.slice(0, 500), httpStatus],
    );
    return status;
  }

  /** Newest first: every delivery, or those of one approval request. */
  async list(filter: { approvalId?: string; limit?: number } = {}): Promise<DeliveryRecord[]> {
    const rows = await this.sql.query<Record<string, unknown>>(
      `SELECT d.*, e.kind, e.approval_id FROM notification_deliveries d JOIN approval_events e ON e.id = d.event_id
       WHERE ($1::text IS NULL OR e.approval_id = $1)
       ORDER BY d.created_at DESC, e.seq DESC LIMIT $2`,
      [filter.approvalId ?? null, Math.min(Math.max(filter.limit ?? 100, 1), 1000)],
    );
    return rows.map(recordOf);
  }

  /** Counts by status (the console's summary and /status). */
  async counts(): Promise<Record<DeliveryStatus, number>> {
    const rows = await this.sql.query<{ status: DeliveryStatus; n: string | number }>(
      'SELECT status, count(*) AS n FROM notification_deliveries GROUP BY status',
    );
    const out: Record<DeliveryStatus, number> = { pending: 0, delivered: 0, failed: 0 };
    for (const r of rows) out[r.status] = Number(r.n);
    return out;
  }

  /** Removes finished deliveries and events past the retention time. */
  async prune(): Promise<void> {
    const before = this.at(-OUTBOX_LIMITS.retentionMs);
    await this.sql.query(
      "DELETE FROM notification_deliveries WHERE status <> 'pending' AND created_at < $1",
      [before],
    );
    await this.sql.query(
      `DELETE FROM approval_events e WHERE e.created_at < $1
       AND NOT EXISTS (SELECT 1 FROM notification_deliveries d WHERE d.event_id = e.id)`,
      [before],
    );
  }
}
