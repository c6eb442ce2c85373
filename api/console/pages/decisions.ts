// Decision pages (auditor role, like /audit/*): search with filters, a live tail over server-sent
// events, and one decision in full — the recorded input and result as stored (masked at record time),
// Envoy's access-log outcome of the request, and its position in the hash chain.
import type { StoredDecision } from '../../../audit/records.ts';
import type { DecisionQuery } from '../../../audit/store.ts';
import { ApiError } from '../../errors.ts';
import type { ApiHandler, ApiRequest, ApiResponse } from '../../route.ts';
import { parseSince } from '../../routes/audit.ts';
import type { ConsoleDeps } from '../deps.ts';
import { href, html, json, type SafeHtml } from '../html.ts';
import { page, viewerOf, when } from '../layout.ts';

const FILTERS = ['user', 'agent', 'target', 'verdict', 'reason_code', 'since', 'until'] as const;
const VERDICTS = ['allow', 'deny', 'approval_required', 'error'];

const agentOf = (actor: unknown) => {
  const a = actor as { agent?: string; sub?: string } | null;
  return a?.agent ?? a?.sub ?? null;
};

function trailOf(d: ConsoleDeps) {
  if (!d.trail) throw new ApiError(503, 'no_audit_trail', 'this node has no audit store to read');
  return d.trail;
}

function queryOf(p: URLSearchParams): DecisionQuery {
  const get = (k: string) => p.get(k)?.trim() || undefined;
  const verdict = get('verdict');
  if (verdict && !VERDICTS.includes(verdict)) throw new ApiError(400, 'invalid_verdict', 'unknown verdict');
  const since = get('since');
  const until = get('until');
  return {
    ...(get('user') ? { subject: get('user')! } : {}),
    ...(get('agent') ? { agent: get('agent')! } : {}),
    ...(get('target') ? { target: get('target')! } : {}),
    ...(verdict ? { decision: verdict } : {}),
    ...(get('reason_code') ? { reasonCode: get('reason_code')! } : {}),
    ...(since ? { since: parseSince(since) } : {}),
    ...(until ? { until: parseSince(until) } : {}),
    ...(get('cursor') ? { cursor: get('cursor')! } : {}),
    limit: 50,
  };
}

function filterForm(p: URLSearchParams): SafeHtml {
  const text = (name: string, label: string, hint: string) =>
    html`<div><label for="f-${name}">${label}</label><input id="f-${name}" name="${name}" value="${p.get(name) ?? ''}" placeholder="${hint}" size="14"></div>`;
  return html`<form class="filters" method="get" action="/console/decisions" role="search" aria-label="Filter decisions">
  ${text('user', 'User', 'alice')}${text('agent', 'Agent', 'report-bot')}${text('target', 'Target', 'demo')}
  <div><label for="f-verdict">Verdict</label><select id="f-verdict" name="verdict">
    <option value="">any</option>
    ${VERDICTS.map((v) => html`<option value="${v}"${p.get('verdict') === v ? html` selected` : ''}>${v}</option>`)}
  </select></div>
  ${text('reason_code', 'Reason code', 'DENIED_BY_POLICY')}${text('since', 'Since', '24h or ISO time')}${text('until', 'Until', '1h or ISO time')}
  <div><button type="submit">Search</button> <a href="/console/decisions">Clear</a></div>
</form>`;
}

export function decisionRow(r: StoredDecision): SafeHtml {
  return html`<tr data-decision-id="${r.decision_id}">
  <td>${when(r.time)}</td><td>${r.subject ?? '—'}</td><td>${agentOf(r.actor) ?? '—'}</td><td>${r.target ?? '—'}</td>
  <td class="mono">${r.method} ${r.path}</td><td class="verdict-${r.decision}">${r.decision}</td>
  <td class="mono">${r.reason_code}</td><td><a href="${href('/console/decision', { id: r.decision_id })}">details</a></td>
</tr>`;
}

export const decisionTable = (caption: string, rows: SafeHtml, attrs: SafeHtml = html``) =>
  html`<div class="scroll"><table${attrs}><caption>${caption}</caption>
<thead><tr><th scope="col">Time</th><th scope="col">User</th><th scope="col">Agent</th><th scope="col">Target</th><th scope="col">Request</th><th scope="col">Verdict</th><th scope="col">Reason code</th><th scope="col"><span class="muted">Detail</span></th></tr></thead>
<tbody>${rows}</tbody></table></div>`;

export function decisionsPage(d: ConsoleDeps): ApiHandler {
  return async (req) => {
    const p = req.url.searchParams;
    let result: { rows: StoredDecision[]; nextCursor: string | null };
    try {
      result = await trailOf(d).queryDecisions(queryOf(p));
    } catch (err) {
      if (err instanceof Error && err.message === 'invalid cursor')
        throw new ApiError(400, 'invalid_cursor', 'cursor is not valid');
      throw err;
    }
    const next: Record<string, string> = { cursor: result.nextCursor ?? '' };
    for (const f of FILTERS) if (p.get(f)) next[f] = p.get(f)!;
    return page({
      title: 'Decisions',
      viewer: viewerOf(req),
      active: '/console/decisions',
      body: html`${filterForm(p)}
${decisionTable(`${result.rows.length} decision(s), newest first`, html`${result.rows.map(decisionRow)}`)}
${result.nextCursor ? html`<p><a href="${href('/console/decisions', next)}" rel="next">Older decisions →</a></p>` : ''}`,
    });
  };
}

function chainFacts(r: StoredDecision): SafeHtml {
  return html`<dl class="facts">
  <dt>Sequence</dt><dd>${r.seq}</dd>
  <dt>Previous hash</dt><dd class="mono">${r.prev_hash}</dd>
  <dt>Hash</dt><dd class="mono">${r.hash}</dd>
  <dt>Check</dt><dd><a href="/console/fleet#verify">Verify the whole chain</a></dd>
</dl>`;
}

function accessLogTable(rows: Record<string, unknown>[]): SafeHtml {
  if (rows.length === 0)
    return html`<p class="muted">No access-log entry for this request (yet): Envoy sends them in batches, and a denied request may have none.</p>`;
  return html`<div class="scroll"><table><caption>Envoy's record of the request</caption>
<thead><tr><th scope="col">Time</th><th scope="col">Response</th><th scope="col">Details</th><th scope="col">Duration</th><th scope="col">Upstream</th><th scope="col">Bytes in/out</th></tr></thead>
<tbody>${rows.map(
    (a) =>
      html`<tr><td>${when(String(a['time']))}</td><td>${String(a['response_code'])}</td><td class="mono">${String(a['response_code_details'])}</td><td>${Number(a['duration_ms']).toFixed(1)} ms</td><td class="mono">${String(a['upstream_cluster'] || '—')} ${String(a['upstream_host'] || '')}</td><td>${String(a['bytes_received'])} / ${String(a['bytes_sent'])}</td></tr>`,
  )}</tbody></table></div>`;
}

function decisionFacts(r: StoredDecision): SafeHtml {
  return html`<dl class="facts">
  <dt>Decision id</dt><dd class="mono">${r.decision_id}</dd>
  <dt>Request id</dt><dd class="mono">${r.request_id}</dd>
  <dt>Time</dt><dd>${when(r.time)}</dd>
  <dt>User</dt><dd>${r.subject ?? '—'} <span class="muted">${r.issuer ?? ''}</span></dd>
  <dt>Agent</dt><dd>${agentOf(r.actor) ?? '—'}</dd>
  <dt>Request</dt><dd class="mono">${r.method} ${r.host}${r.path}</dd>
  <dt>Target / route</dt><dd>${r.target ?? '—'} <span class="muted">${r.route_id ?? ''}</span></dd>
  <dt>Verdict</dt><dd class="verdict-${r.decision}">${r.decision} (HTTP ${r.http_status})</dd>
  <dt>Reason</dt><dd>${r.reason} <span class="mono">${r.reason_code}</span></dd>
  <dt>Policy revision</dt><dd class="mono">${r.policy_revision}</dd>
  <dt>Latency</dt><dd>${(r.latency_us / 1000).toFixed(2)} ms</dd>
</dl>`;
}

export function decisionPage(d: ConsoleDeps): ApiHandler {
  return async (req) => {
    const id = req.url.searchParams.get('id') ?? '';
    const trail = trailOf(d);
    const [r] = id ? (await trail.queryDecisions({ decisionId: id, limit: 1 })).rows : [];
    if (!r) throw new ApiError(404, 'not_found', 'no such decision');
    const logs = r.request_id ? await trail.accessLogsFor(r.request_id) : [];
    return page({
      title: `Decision ${r.decision_id.slice(0, 8)}`,
      viewer: viewerOf(req),
      active: '/console/decisions',
      body: html`${decisionFacts(r)}
<h2>Chain position</h2>${chainFacts(r)}
<h2>Access-log outcome</h2>${accessLogTable(logs)}
<h2>Recorded input <span class="muted">(as stored: credentials and masked fields removed at record time)</span></h2><pre>${json(r.input)}</pre>
<h2>Policy result</h2><pre>${json(r.result)}</pre>
${r.shadow ? html`<h2>Shadow policy</h2><pre>${json(r.shadow)}</pre>` : ''}`,
    });
  };
}

export function livePage(d: ConsoleDeps): ApiHandler {
  return async (req) => {
    const trail = trailOf(d);
    const last = await trail.lastSeq();
    const recent = (await trail.decisionsAfter(Math.max(0, last - 20), 20)).reverse();
    return page({
      title: 'Live tail',
      viewer: viewerOf(req),
      active: '/console/decisions/live',
      body: html`<p id="tail-state" class="notice" role="status" aria-live="polite">Connecting…</p>
${decisionTable('Newest first; the page adds decisions as they are recorded', html`${recent.map(decisionRow)}`, html` data-live-tail data-src="${href('/console/decisions/stream', { after: last })}"`)}`,
    });
  };
}

/** One decision as the live tail's event carries it (what a row shows, nothing more). */
function tailEvent(r: StoredDecision): string {
  const data = {
    seq: r.seq,
    decision_id: r.decision_id,
    time: when(r.time),
    subject: r.subject,
    agent: agentOf(r.actor),
    target: r.target,
    method: r.method,
    path: r.path,
    decision: r.decision,
    reason_code: r.reason_code,
  };
  return `id: ${r.seq}\nevent: decision\ndata: ${JSON.stringify(data)}\n\n`;
}

const pause = (ms: number, closed: AbortSignal) =>
  new Promise<void>((resolve) => {
    const t = setTimeout(resolve, ms);
    closed.addEventListener('abort', () => {
      clearTimeout(t);
      resolve();
    });
  });

/** The live tail's event stream: decisions after `after` (or Last-Event-ID), polled once a second. */
export function decisionStream(d: ConsoleDeps): ApiHandler {
  let open = 0;
  return async (req: ApiRequest): Promise<ApiResponse> => {
    const trail = trailOf(d);
    if (open >= (d.maxStreams ?? 16))
      throw new ApiError(429, 'too_many_streams', 'too many live tails are open');
    const resume = req.headers['last-event-id'] ?? req.url.searchParams.get('after');
    let after = Number(resume ?? (await trail.lastSeq()));
    if (!Number.isInteger(after) || after < 0)
      throw new ApiError(400, 'invalid_after', 'after must be a sequence number');
    return {
      status: 200,
      body: null,
      headers: { 'content-type': 'text/event-stream; charset=utf-8' },
      stream: async ({ write, closed }) => {
        open++;
        try {
          write('retry: 2000\n\n');
          for (let quiet = 0; !closed.aborted; ) {
            const rows = await trail.decisionsAfter(after, 200);
            for (const r of rows) write(tailEvent(r));
            after = rows.at(-1)?.seq ?? after;
            // A comment every 15 s keeps proxies from closing an idle stream.
            quiet = rows.length > 0 ? 0 : quiet + 1;
            if (quiet >= 15) {
              write(': keep-alive\n\n');
              quiet = 0;
            }
            if (rows.length < 200) await pause(1000, closed);
          }
        } finally {
          open--;
        }
      },
    };
  };
}
