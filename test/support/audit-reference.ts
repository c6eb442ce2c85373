// The audit chain's canonical JSON and hash exactly as first shipped: every existing store was hashed
// with these, so the production code is compared against them (never changed).
import { createHash } from 'node:crypto';
import type { DecisionRecord } from '../../audit/records.ts';

export function referenceCanonicalJson(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v ?? null);
  if (Array.isArray(v)) return `[${v.map(referenceCanonicalJson).join(',')}]`;
  const keys = Object.keys(v as Record<string, unknown>)
    .filter((k) => (v as Record<string, unknown>)[k] !== undefined)
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${referenceCanonicalJson((v as Record<string, unknown>)[k])}`).join(',')}}`;
}

export function referenceChainHash(prevHash: string, seq: number, r: DecisionRecord): string {
  const covered = {
    seq,
    decision_id: r.decision_id,
    request_id: r.request_id,
    time: new Date(r.time).toISOString(),
    route_id: r.route_id,
    target: r.target,
    method: r.method,
    host: r.host,
    path: r.path,
    subject: r.subject,
    issuer: r.issuer,
    actor: r.actor ?? null,
    decision: r.decision,
    http_status: r.http_status,
    reason: r.reason,
    reason_code: r.reason_code,
    policy_revision: r.policy_revision,
    input: r.input ?? null,
    result: r.result ?? null,
    ...(r.shadow ? { shadow: r.shadow } : {}),
  };
  return createHash('sha256').update(prevHash).update(referenceCanonicalJson(covered)).digest('hex');
}
