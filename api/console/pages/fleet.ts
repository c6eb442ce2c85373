// Fleet & policy (admin or auditor, like /status): the policy revision and its last error, shadow-mode
// differences (auditors: they are decisions), the xDS streams with what each Envoy acknowledged or
// rejected (NACK), the audit spool and shipper, every other component's status, and `audit verify` on
// demand (auditors). Notifications (admin): every delivery of the outbox with its attempts and errors.
import type { DeliveryRecord } from '../../../fleet/notifications-outbox.ts';
import type { ApiHandler, ApiRequest } from '../../route.ts';
import type { ConsoleDeps } from '../deps.ts';
import { href, html, type SafeHtml } from '../html.ts';
import { csrfField, page, viewerOf, when } from '../layout.ts';
import { decisionRow, decisionTable } from './decisions.ts';

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Obj) : {});

/** `a.b.c → value` for every leaf (arrays of scalars joined), so any component's status can be shown. */
export function flatten(v: unknown, prefix = '', out: [string, string][] = []): [string, string][] {
  if (v && typeof v === 'object' && !Array.isArray(v)) {
    for (const [k, x] of Object.entries(v as Obj)) flatten(x, prefix ? `${prefix}.${k}` : k, out);
  } else if (Array.isArray(v) && v.some((x) => x && typeof x === 'object')) {
    for (const [i, x] of v.entries()) flatten(x, `${prefix}[${i}]`, out);
  } else
    out.push([prefix, Array.isArray(v) ? v.join(', ') : v === null || v === undefined ? '—' : String(v)]);
  return out;
}

const facts = (pairs: [string, string][]) =>
  html`<dl class="facts">${pairs.map(([k, v]) => html`<dt>${k}</dt><dd class="mono">${v}</dd>`)}</dl>`;

function streamsTable(xds: Obj): SafeHtml {
  const streams = (Array.isArray(xds['streams']) ? xds['streams'] : []) as Obj[];
  return html`<p>Snapshot <span class="mono">${String(xds['version'] ?? '—')}</span>; ${String(xds['current_streams'] ?? 0)} Envoy(s) current.</p>
<div class="scroll"><table><caption>xDS streams</caption>
<thead><tr><th scope="col">Node</th><th scope="col">Mode</th><th scope="col">Connected</th><th scope="col">Acknowledged</th><th scope="col">Last NACK</th></tr></thead>
<tbody>${streams.map((s) => {
    const nack = s['lastNack'] as Obj | null;
    return html`<tr><td>${String(s['nodeId'])}</td><td>${String(s['mode'])}</td><td>${when(String(s['connectedAt']))}</td>
<td class="mono">${Object.entries(obj(s['acked'])).map(([t, ver]) => html`${t.split('.').at(-1)}: ${String(ver ?? '—').slice(0, 12)} `)}</td>
<td>${nack ? html`<span class="status-failed">${String(nack['typeUrl']).split('.').at(-1)} ${String(nack['version']).slice(0, 12)}</span>: ${String(nack['message'])}` : 'none'}</td></tr>`;
  })}</tbody></table></div>`;
}

async function verifySection(d: ConsoleDeps, req: ApiRequest, verdict: unknown): Promise<SafeHtml> {
  if (!req.roles.has('auditor') || !d.trail) return html``;
  const v = verdict as {
    ok: boolean;
    count: number;
    checkpoints?: number;
    firstBadSeq?: number;
    reason?: string;
  } | null;
  return html`<h2 id="verify">Audit chain</h2>
${v ? html`<p class="notice ${v.ok ? '' : 'error'}" role="status">${v.ok ? `Intact: ${v.count} record(s) verified${v.checkpoints !== undefined ? `, ${v.checkpoints} signed checkpoint(s)` : ''}.` : `Broken at record ${v.firstBadSeq}: ${v.reason} (${v.count} read).`}</p>` : ''}
<form method="post" action="/console/fleet/verify">${csrfField(viewerOf(req))}<button type="submit">Verify the hash chain now</button></form>`;
}

async function fleetBody(d: ConsoleDeps, req: ApiRequest, verdict: unknown): Promise<SafeHtml> {
  const status = d.status();
  const authz = obj(status['authz']);
  const audit = obj(status['audit']);
  const shadow =
    req.roles.has('auditor') && d.trail
      ? (await d.trail.queryDecisions({ shadowDiffers: true, limit: 20 })).rows
      : null;
  return html`${await verifySection(d, req, verdict)}
<h2>Policy</h2>${facts([
    ['revision', String(authz['policy_revision'] ?? '—')],
    ['last error', String(authz['policy_error'] ?? 'none')],
  ])}
${shadow ? html`<h2>Shadow differences</h2>${decisionTable(`${shadow.length} recent decision(s) a shadow policy would have decided otherwise`, html`${shadow.map(decisionRow)}`)}` : ''}
<h2>Envoy configuration (xDS)</h2>${streamsTable(obj(status['xds']))}
<h2>Audit spool and shipper</h2>${facts(flatten({ store: audit['store'], spool: audit['spool'], shipper: audit['shipper'] }))}
<h2>Every component</h2><details><summary>All status fields</summary>${facts(flatten(status))}</details>`;
}

export function fleetPage(d: ConsoleDeps): ApiHandler {
  return async (req) =>
    page({
      title: 'Fleet & policy',
      viewer: viewerOf(req),
      active: '/console/fleet',
      body: await fleetBody(d, req, null),
    });
}

export function verifyAction(d: ConsoleDeps): ApiHandler {
  return async (req) => {
    // Against keys pinned outside the database when the gateway provides them (audit/trust.ts).
    const verdict = d.verifyTrail ? await d.verifyTrail() : d.trail ? await d.trail.verifyChain() : null;
    return page({
      title: 'Fleet & policy',
      viewer: viewerOf(req),
      active: '/console/fleet',
      body: await fleetBody(d, req, verdict),
    });
  };
}

export function deliveriesTable(rows: DeliveryRecord[]): SafeHtml {
  if (rows.length === 0) return html`<p class="muted">No notification deliveries.</p>`;
  return html`<div class="scroll"><table><caption>Newest first</caption>
<thead><tr><th scope="col">Event</th><th scope="col">Request</th><th scope="col">Sink</th><th scope="col">Status</th><th scope="col">Attempts</th><th scope="col">Last answer</th><th scope="col">Queued</th><th scope="col">Delivered / next try</th></tr></thead>
<tbody>${rows.map(
    (
      r,
    ) => html`<tr><td class="mono">${r.kind}</td><td><a href="${href('/console/approval', { id: r.approval_id })}">${r.approval_id.slice(0, 8)}</a></td>
<td>${r.sink}</td><td class="status-${r.status}">${r.status}</td><td>${r.attempts}</td>
<td>${r.last_status ?? ''} ${r.last_error ?? ''}</td><td>${when(r.created_at)}</td>
<td>${r.status === 'delivered' ? when(r.delivered_at) : r.status === 'pending' ? when(r.next_attempt_at) : '—'}</td></tr>`,
  )}</tbody></table></div>`;
}

export function notificationsPage(d: ConsoleDeps): ApiHandler {
  return async (req) => {
    const [rows, counts] = d.outbox
      ? await Promise.all([d.outbox.list({ limit: 200 }), d.outbox.counts()])
      : [[], null];
    const sinks = obj(d.status()['notifications'])['sinks'];
    return page({
      title: 'Notifications',
      viewer: viewerOf(req),
      active: '/console/notifications',
      body: html`<p>Sinks: ${Array.isArray(sinks) && sinks.length > 0 ? sinks.join(', ') : 'none configured (notifications.sinks in chaperone.yaml)'}.
${counts ? html` Pending ${counts.pending}, delivered ${counts.delivered}, failed ${counts.failed}.` : ''}</p>
${deliveriesTable(rows)}`,
    });
  };
}
