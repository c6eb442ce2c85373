// Delivers approval events to the configured sinks, from the outbox (notifications-outbox.ts):
// - `webhook`: the event as JSON, signed as Standard Webhooks specifies (standardwebhooks.com):
//   headers `webhook-id` (the event id), `webhook-timestamp` (Unix seconds) and `webhook-signature`
//   (`v1,` + base64 HMAC-SHA256 over `<id>.<timestamp>.<body>`, keyed with the secret: the bytes after
//   `whsec_` base64-decoded, or the secret's own bytes). docs/console.md shows how a receiver verifies.
// - `slack`: a Slack-compatible incoming webhook message (`text`, mrkdwn); the URL is the secret.
// Signing is a few lines of node:crypto, so no library: the spec's reference library verifies what we
// send in test/component/notifications-delivery.test.ts. A 2xx answer is a delivery; anything else,
// a redirect included (never followed), or no answer within 10 s is retried with backoff.
import { createHmac } from 'node:crypto';
import type { Logger } from 'pino';
import type { NotificationSinkConfig, NotificationsConfig } from '../config/types.ts';
import { resolveRef } from '../lib/secret-ref.ts';
import type { ApprovalEvent } from './approval-events.ts';
import type { ClaimedDelivery, NotificationOutbox } from './notifications-outbox.ts';

export const DELIVERY_TIMEOUT_MS = 10_000;

/** The HMAC key of a Standard Webhooks secret: `whsec_<base64>` decoded, else the text's bytes. */
export function signingKey(secret: string): Buffer {
  return secret.startsWith('whsec_') ? Buffer.from(secret.slice(6), 'base64') : Buffer.from(secret, 'utf8');
}

/** The three Standard Webhooks headers for `body`. */
export function signWebhook(secret: string, id: string, body: string, timestampSec: number) {
  const mac = createHmac('sha256', signingKey(secret))
    .update(`${id}.${timestampSec}.${body}`)
    .digest('base64');
  return {
    'webhook-id': id,
    'webhook-timestamp': String(timestampSec),
    'webhook-signature': `v1,${mac}`,
  };
}

/** What a webhook receives: `{type, timestamp, data: {approval, console_url}}`. */
export function webhookBody(event: ApprovalEvent, consoleUrl: string): string {
  return JSON.stringify({
    type: event.kind,
    timestamp: event.created_at,
    data: { event_id: event.id, approval: event.approval, console_url: consoleUrl },
  });
}

/** Slack mrkdwn treats &, < and > as control characters. */
const slackText = (s: unknown) =>
  String(s ?? '')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;');

export function slackBody(event: ApprovalEvent, consoleUrl: string): string {
  const a = event.approval as {
    method?: string;
    path?: string;
    target?: string | null;
    status?: string;
    reason?: string;
    decided_by?: string | null;
    revoked_by?: string | null;
    decision_reason?: string | null;
    requester?: { subject?: string; actor?: { agent?: string; sub?: string } | null };
  };
  const agent = a.requester?.actor?.agent ?? a.requester?.actor?.sub;
  const who = `${slackText(a.requester?.subject)}${agent ? ` via ${slackText(agent)}` : ''}`;
  const what = `\`${slackText(a.method)} ${slackText(a.path)}\`${a.target ? ` on ${slackText(a.target)}` : ''}`;
  const head = {
    'approval.requested': `Approval requested: ${what} for ${who} (${slackText(a.reason)})`,
    'approval.decided': `Approval ${slackText(a.status)} by ${slackText(a.decided_by)}: ${what} for ${who}`,
    'approval.expired': `Approval expired undecided: ${what} for ${who}`,
    'approval.revoked': `Approval revoked by ${slackText(a.revoked_by)}: ${what} for ${who}`,
  }[event.kind];
  const note = a.decision_reason ? ` Reason: ${slackText(a.decision_reason)}.` : '';
  return JSON.stringify({ text: `${head}.${note} <${consoleUrl}|Open in the Chaperone console>` });
}

export interface NotificationWorkerOptions {
  outbox: NotificationOutbox;
  config: NotificationsConfig;
  /** The console page of an approval request (the fleet's public URL). */
  consoleUrl: (approvalId: string) => string;
  logger: Logger;
  fetch?: typeof fetch;
  now?: () => number;
}

type Outcome = { ok: true; status: number } | { ok: false; status: number | null; error: string };

export class NotificationWorker {
  private readonly fetchImpl: typeof fetch;
  private readonly now: () => number;
  private running: Promise<void> | null = null;
  private again = false;
  private readonly totals = { delivered: 0, failed_attempts: 0, given_up: 0 };

  constructor(private readonly o: NotificationWorkerOptions) {
    this.fetchImpl = o.fetch ?? globalThis.fetch;
    this.now = o.now ?? Date.now;
  }

  /** One pass: fan out, claim what is due, deliver. Calls during a pass run one more pass after it. */
  tick(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      do {
        this.again = false;
        await this.pass();
      } while (this.again);
    })().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  private async pass(): Promise<void> {
    const sinks = this.o.config.sinks;
    if (sinks.length === 0) return;
    await this.o.outbox.fanOut(sinks);
    for (;;) {
      const claimed = await this.o.outbox.claim(sinks.map((s) => s.name));
      if (claimed.length === 0) return;
      await Promise.all(claimed.map((c) => this.deliverOne(c)));
    }
  }

  private async deliverOne(c: ClaimedDelivery): Promise<void> {
    const sink = this.o.config.sinks.find((s) => s.name === c.sink);
    const outcome: Outcome = sink
      ? await this.send(sink, c.event).catch((err: unknown) => ({
          ok: false as const,
          status: null,
          error: err instanceof Error ? err.message : String(err),
        }))
      : { ok: false, status: null, error: 'sink no longer configured' };
    const log = { sink: c.sink, event_id: c.event.id, kind: c.event.kind, attempt: c.attempts };
    if (outcome.ok) {
      if (await this.o.outbox.delivered(c, outcome.status)) this.totals.delivered++;
      return;
    }
    this.totals.failed_attempts++;
    const status = await this.o.outbox.failed(c, outcome.error, outcome.status, this.o.config.maxAttempts);
    if (status === 'failed') this.totals.given_up++;
    this.o.logger.warn(
      { ...log, error: outcome.error, gave_up: status === 'failed' },
      'notification not delivered',
    );
  }

  private async send(sink: NotificationSinkConfig, event: ApprovalEvent): Promise<Outcome> {
    const url = await resolveRef(sink.url);
    if (!url || !/^https?:\/\//.test(url))
      return {
        ok: false,
        status: null,
        error: `url of sink ${sink.name} does not resolve to an http(s) URL`,
      };
    const consoleUrl = this.o.consoleUrl(event.approval_id);
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'user-agent': 'chaperone-notifications',
    };
    let body: string;
    if (sink.type === 'webhook') {
      const secret = sink.secret ? await resolveRef(sink.secret) : null;
      if (!secret) return { ok: false, status: null, error: `secret of sink ${sink.name} does not resolve` };
      body = webhookBody(event, consoleUrl);
      Object.assign(headers, signWebhook(secret, event.id, body, Math.floor(this.now() / 1000)));
    } else body = slackBody(event, consoleUrl);
    const res = await this.fetchImpl(url, {
      method: 'POST',
      headers,
      body,
      redirect: 'manual',
      signal: AbortSignal.timeout(DELIVERY_TIMEOUT_MS),
    });
    await res.body?.cancel().catch(() => undefined);
    // The receiver's answer is not logged or stored beyond its status: it may echo what it got.
    return res.ok
      ? { ok: true, status: res.status }
      : { ok: false, status: res.status, error: `HTTP ${res.status}` };
  }

  status() {
    return { sinks: this.o.config.sinks.map((s) => `${s.name} (${s.type})`), ...this.totals };
  }
}
