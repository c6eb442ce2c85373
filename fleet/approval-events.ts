// Approval events: one row per change of an approval request (requested, decided, expired, revoked),
// written by the approval store inside the transaction that makes the change. Any process that changes
// approvals writes them (an authz server raising a request included), with no notion of where they go:
// the notification workers of the control planes fan them out to the configured sinks
// (notifications-outbox.ts). The console shows them on a request's page.
import { randomUUID } from 'node:crypto';
import type { NotificationEventKind } from '../config/types.ts';
import { isoTime, jsonColumn, type Sql } from '../store/sql.ts';

export type ApprovalEventKind = NotificationEventKind;

export interface ApprovalEvent {
  id: string;
  kind: ApprovalEventKind;
  approval_id: string;
  /** The request as it was right after the change (without its fingerprint). */
  approval: Record<string, unknown>;
  created_at: string;
}

type Tx = Pick<Sql, 'query'>;

/** Adds the event of a change; call inside the transaction that made it. */
export async function recordApprovalEvent(
  tx: Tx,
  kind: ApprovalEventKind,
  approval: { id: string; fingerprint?: string },
  at: Date,
): Promise<void> {
  const { fingerprint: _f, ...doc } = approval;
  await tx.query(
    'INSERT INTO approval_events (id, kind, approval_id, approval, created_at) VALUES ($1, $2, $3, $4, $5)',
    [randomUUID(), kind, approval.id, JSON.stringify(doc), at.toISOString()],
  );
}

export function eventOf(r: Record<string, unknown>): ApprovalEvent {
  const doc = r['approval'];
  return {
    id: String(r['id']),
    kind: r['kind'] as ApprovalEventKind,
    approval_id: String(r['approval_id']),
    approval: jsonColumn<Record<string, unknown>>(doc),
    created_at: isoTime(r['created_at']),
  };
}

/** The events of one request, oldest first. */
export async function approvalEventsOf(sql: Tx, approvalId: string): Promise<ApprovalEvent[]> {
  const rows = await sql.query<Record<string, unknown>>(
    'SELECT * FROM approval_events WHERE approval_id = $1 ORDER BY seq',
    [approvalId],
  );
  return rows.map(eventOf);
}
