// The authz server's DecisionRecorder and the gateway's administrative recorder: every record passes
// the one redaction pass (redaction.ts), then is spooled durably. The input is copied, never changed
// in place (it shares objects with the live request).
import { randomUUID } from 'node:crypto';
import type { DecisionEvent, DecisionRecorder } from '../contracts/decision.ts';
import { type DecisionRecord, toDecisionRecord } from './records.ts';
import { Redactor } from './redaction.ts';
import type { Spool } from './spool.ts';

export { maskInput, maskResult, REDACTED, SECRET_HEADERS } from './redaction.ts';

export interface SpoolRecorderOptions {
  /**
   * More header names whose values are secret: the configured token header, upstream credential
   * headers and `audit.redact_headers`.
   */
  extraSecretHeaders?: string[];
}

/** An administrative action (approval decided, agents revoked, keys rotated, a response masked). */
export interface AdminAction {
  /** Who acted: a person's subject and its issuer (none for Chaperone's own actions). */
  subject: string;
  issuer?: string;
  action: string;
  target?: string | null;
  reason: string;
  detail?: unknown;
}

export class SpoolRecorder implements DecisionRecorder {
  private readonly redactor: Redactor;

  constructor(
    private readonly spool: Spool,
    o: SpoolRecorderOptions = {},
  ) {
    this.redactor = new Redactor(o.extraSecretHeaders ?? []);
  }

  /** Resolves once the decision is fsynced in the spool; rejects (→ the ALLOW becomes a 503) otherwise. */
  record(event: DecisionEvent): Promise<void> {
    return this.spool.append(this.redactor.decision(toDecisionRecord(event, event.input)));
  }

  /** Records an administrative action in the same chained trail, through the same redaction. */
  recordAdmin(a: AdminAction): Promise<void> {
    const record: DecisionRecord = {
      decision_id: randomUUID(),
      request_id: '',
      time: new Date().toISOString(),
      route_id: null,
      target: a.target ?? null,
      method: a.action,
      host: 'chaperone-api',
      path: `/admin/${a.action.toLowerCase()}`,
      subject: a.subject,
      issuer: a.issuer ?? null,
      actor: null,
      decision: 'admin',
      http_status: 200,
      reason: a.reason,
      reason_code: 'ADMIN',
      policy_revision: '',
      latency_us: 0,
      input: a.detail ?? null,
      result: null,
    };
    return this.spool.append(this.redactor.decision(record));
  }
}
