// Policy replay: re-evaluate recorded decision inputs (from the audit store) against a candidate
// bundle, and report what would change — allow→deny and deny→allow — grouped by user, agent, target
// and path, with example requests. The recorded inputs were masked before storage (no tokens), and the
// identity in them is the verified one, so replay needs no credentials.

import type { StoredDecision } from '../../audit/records.ts';
import type { AuditStore } from '../../audit/store.ts';
import type { PolicyEngine } from '../../authz-server/policy/policy-engine.ts';

export interface ReplayChange {
  decision_id: string;
  time: string;
  subject: string | null;
  agent: string | null;
  target: string | null;
  method: string;
  path: string;
  was: 'allow' | 'deny';
  now: 'allow' | 'deny' | 'error';
}

export interface ReplayReport {
  replayed: number;
  skipped: number;
  unchanged: number;
  changes: ReplayChange[];
  /** Counts of changes per group key, e.g. by.user["bob"] = 3. */
  by: {
    user: Record<string, number>;
    agent: Record<string, number>;
    target: Record<string, number>;
    path: Record<string, number>;
  };
}

/** Decisions whose input was judged by the policy (not server-made denies, not admin records). */
function replayable(d: StoredDecision): boolean {
  return (
    d.input !== null &&
    (d.decision === 'allow' || d.decision === 'deny' || d.decision === 'approval_required') &&
    !d.reason_code.startsWith('ERR_')
  );
}

function allowedOf(result: unknown): boolean {
  if (typeof result === 'boolean') return result;
  return !!result && typeof result === 'object' && (result as { allowed?: unknown }).allowed === true;
}

export async function replay(
  store: AuditStore,
  engine: PolicyEngine,
  o: { since: Date; onProgress?: (n: number) => void; pageSize?: number },
): Promise<ReplayReport> {
  const report: ReplayReport = {
    replayed: 0,
    skipped: 0,
    unchanged: 0,
    changes: [],
    by: { user: {}, agent: {}, target: {}, path: {} },
  };
  let cursor: string | undefined;
  do {
    const page = await store.queryDecisions({
      since: o.since,
      limit: o.pageSize ?? 500,
      ...(cursor ? { cursor } : {}),
    });
    for (const d of page.rows) {
      if (!replayable(d)) {
        report.skipped++;
        continue;
      }
      report.replayed++;
      if (report.replayed % 500 === 0) o.onProgress?.(report.replayed);
      const was = d.decision === 'allow' ? 'allow' : 'deny';
      const out = engine.evaluate(d.input);
      const now = out.ok ? (allowedOf(out.result) ? 'allow' : 'deny') : 'error';
      if (now === was) {
        report.unchanged++;
        continue;
      }
      const agent = (d.actor as { agent?: string } | null)?.agent ?? null;
      const change: ReplayChange = {
        decision_id: d.decision_id,
        time: d.time,
        subject: d.subject,
        agent,
        target: d.target,
        method: d.method,
        path: d.path,
        was,
        now,
      };
      report.changes.push(change);
      const bump = (m: Record<string, number>, k: string | null) => {
        m[k ?? '-'] = (m[k ?? '-'] ?? 0) + 1;
      };
      bump(report.by.user, d.subject);
      bump(report.by.agent, agent);
      bump(report.by.target, d.target);
      bump(report.by.path, `${d.method} ${d.path}`);
    }
    cursor = page.nextCursor ?? undefined;
  } while (cursor);
  return report;
}
