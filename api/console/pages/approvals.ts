// The approvals inbox (reviewer role) and one request's page. The page shows exactly what is asked —
// method, path, target, the MCP tool and arguments as the authz server recorded them, the body's
// SHA-256, the person and the agent behind it, the policy's reviewers and reason — and lets a reviewer
// of the request approve it once or for a window, deny it with a reason, or revoke a grant. The same
// visibility as GET /approvals/status: the requester sees their own request (no decision buttons), a
// reviewer the requests of their groups, anyone else a 404. The store enforces the rest (reviewer
// groups, never one's own request), as for the JSON API.

import type { StoredDecision } from '../../../audit/records.ts';
import type { Identity } from '../../../contracts/identity.ts';
import type { ApprovalRequest } from '../../../fleet/approval-store.ts';
import { ApiError } from '../../errors.ts';
import type { ApiHandler, ApiRequest } from '../../route.ts';
import { revokeApprovalGrant } from '../../routes/approval-grants.ts';
import { decideApproval, maySee } from '../../routes/approvals.ts';
import type { ConsoleDeps } from '../deps.ts';
import { href, html, json, type SafeHtml } from '../html.ts';
import { csrfField, page, redirect, type Viewer, viewerOf, when } from '../layout.ts';
import { deliveriesTable } from './fleet.ts';

const TABS = [
  { status: 'pending', label: 'Waiting' },
  { status: 'approved', label: 'Granted' },
  { status: 'denied', label: 'Denied' },
  { status: 'expired', label: 'Expired' },
  { status: 'revoked', label: 'Revoked' },
  { status: 'used', label: 'Used' },
] as const;

const WINDOWS = ['15m', '1h', '4h', '1d'];

const agentOf = (r: ApprovalRequest) => {
  const a = r.requester.actor as { agent?: string; sub?: string } | null;
  return a?.agent ?? a?.sub ?? null;
};

const mayDecide = (r: ApprovalRequest, who: Identity, roles: ReadonlySet<string>) =>
  roles.has('reviewer') &&
  r.reviewers.some((g) => who.groups.includes(g)) &&
  r.requester.subject !== who.subject;

function inboxRow(r: ApprovalRequest): SafeHtml {
  return html`<tr data-approval-id="${r.id}">
  <td>${when(r.created_at)}</td><td>${r.requester.subject}</td><td>${agentOf(r) ?? '—'}</td>
  <td class="mono">${r.method} ${r.path}</td><td>${r.target ?? '—'}</td><td>${r.reason}</td>
  <td class="status-${r.status}">${r.status}</td>
  <td><a href="${href('/console/approval', { id: r.id })}">Review<span class="skip"> ${r.method} ${r.path}</span></a></td>
</tr>`;
}

export function approvalsPage(d: ConsoleDeps): ApiHandler {
  return async (req) => {
    const wanted = req.url.searchParams.get('status') ?? 'pending';
    const tab = TABS.find((t) => t.status === wanted) ?? TABS[0];
    const rows = await d.approvals.list({
      status: tab.status,
      reviewerGroups: req.caller!.groups,
      limit: 200,
    });
    return page({
      title: 'Approvals',
      viewer: viewerOf(req),
      active: '/console/approvals',
      body: html`<nav aria-label="Approval status"><ul class="tabs">${TABS.map(
        (t) =>
          html`<li><a href="${href('/console/approvals', { status: t.status })}"${t === tab ? html` aria-current="page"` : ''}>${t.label}</a></li>`,
      )}</ul></nav>
<div class="scroll"><table><caption>${rows.length} request(s) for your reviewer groups (${req.caller!.groups.join(', ') || 'none'})</caption>
<thead><tr><th scope="col">Asked</th><th scope="col">Person</th><th scope="col">Agent</th><th scope="col">Request</th><th scope="col">Target</th><th scope="col">Reason</th><th scope="col">Status</th><th scope="col"><span class="muted">Action</span></th></tr></thead>
<tbody>${rows.map(inboxRow)}</tbody></table></div>`,
    });
  };
}

/** The decision that raised the request (its recorded input shows the MCP call), when the trail has it. */
async function raisedBy(d: ConsoleDeps, r: ApprovalRequest): Promise<StoredDecision | null> {
  if (!d.trail) return null;
  const created = Date.parse(r.created_at);
  const page = await d.trail.queryDecisions({
    subject: r.requester.subject,
    decision: 'approval_required',
    since: new Date(created - 10_000),
    until: new Date(created + 60_000),
    limit: 50,
  });
  const same = page.rows.filter((x) => x.method === r.method && x.path === r.path && x.target === r.target);
  return same.at(-1) ?? null;
}

function protocolFacts(decision: StoredDecision | null): SafeHtml {
  const p = (decision?.input as { protocol?: Record<string, unknown> } | null)?.protocol;
  if (!p)
    return html`<dt>Protocol</dt><dd class="muted">${decision ? 'plain HTTP' : 'not found in the audit trail'}</dd>`;
  return html`<dt>Protocol</dt><dd>${String(p['name'])}${p['method'] ? html` <span class="mono">${String(p['method'])}</span>` : ''}</dd>
${p['tool'] ? html`<dt>MCP tool</dt><dd class="mono">${String(p['tool'])}</dd>` : ''}
${p['arguments'] ? html`<dt>Arguments</dt><dd><pre>${json(p['arguments'])}</pre></dd>` : ''}`;
}

function requestFacts(r: ApprovalRequest, decision: StoredDecision | null): SafeHtml {
  return html`<dl class="facts">
  <dt>Status</dt><dd class="status-${r.status}">${r.status}</dd>
  <dt>Request</dt><dd class="mono">${r.method} ${r.path}</dd>
  <dt>Target</dt><dd>${r.target ?? '—'}</dd>
  ${protocolFacts(decision)}
  <dt>Body SHA-256</dt><dd class="mono">${r.body_sha256 ?? 'no body'}</dd>
  <dt>Person</dt><dd>${r.requester.subject}</dd>
  <dt>Agent</dt><dd>${agentOf(r) ?? '— (the person directly)'}</dd>
  <dt>Reviewers</dt><dd>${r.reviewers.join(', ')}</dd>
  <dt>Reason (policy)</dt><dd>${r.reason}</dd>
  ${decision ? html`<dt>Rule</dt><dd>${decision.reason} <a href="${href('/console/decision', { id: decision.decision_id })}">decision</a></dd>` : ''}
  <dt>Asked</dt><dd>${when(r.created_at)}</dd>
  <dt>Decided</dt><dd>${when(r.decided_at)} ${r.decided_by ? html`by ${r.decided_by}` : ''}</dd>
  ${r.decision_reason ? html`<dt>Note</dt><dd>${r.decision_reason}</dd>` : ''}
  ${r.status === 'approved' || r.status === 'used' ? html`<dt>Grant</dt><dd>${r.mode === 'window' ? 'window' : 'once'}, until ${when(r.expires_at)}, used ${r.uses}×</dd>` : ''}
  ${r.revoked_by ? html`<dt>Revoked</dt><dd>${when(r.revoked_at)} by ${r.revoked_by}</dd>` : ''}
</dl>`;
}

function decideForms(r: ApprovalRequest, v: Viewer): SafeHtml {
  const id = html`${csrfField(v)}<input type="hidden" name="id" value="${r.id}">`;
  return html`<h2>Decide</h2><div class="decide">
<form method="post" action="/console/approvals/decide">${id}<input type="hidden" name="verdict" value="approve"><input type="hidden" name="mode" value="once">
  <p>Allow this exact request once (same person, agent, method, path and body).</p>
  <button type="submit">Approve once</button></form>
<form method="post" action="/console/approvals/decide">${id}<input type="hidden" name="verdict" value="approve"><input type="hidden" name="mode" value="window">
  <div class="field"><label for="ttl">Allow it again for</label><select id="ttl" name="ttl">${WINDOWS.map((w) => html`<option value="${w}">${w}</option>`)}</select></div>
  <button type="submit">Approve for a window</button></form>
<form method="post" action="/console/approvals/decide">${id}<input type="hidden" name="verdict" value="deny">
  <div class="field"><label for="deny-reason">Reason (the requester sees it)</label><textarea id="deny-reason" name="reason" rows="2" cols="30" required maxlength="500"></textarea></div>
  <button type="submit" class="danger">Deny</button></form>
</div>`;
}

function revokeForm(r: ApprovalRequest, v: Viewer): SafeHtml {
  return html`<h2>Withdraw the grant</h2><form method="post" action="/console/approvals/revoke">${csrfField(v)}<input type="hidden" name="id" value="${r.id}">
  <div class="field"><label for="revoke-reason">Reason</label><input id="revoke-reason" name="reason" size="40" maxlength="500"></div>
  <button type="submit" class="danger">Revoke now</button></form>`;
}

async function visible(d: ConsoleDeps, req: ApiRequest): Promise<ApprovalRequest> {
  const r = await d.approvals.get(req.url.searchParams.get('id') ?? '');
  // Someone else's request is as invisible as a missing one (as on the JSON API).
  if (!r || !maySee(r, req.caller!, req.roles))
    throw new ApiError(404, 'not_found', 'no such approval request');
  return r;
}

export function approvalPage(d: ConsoleDeps): ApiHandler {
  return async (req) => {
    const r = await visible(d, req);
    const v = viewerOf(req);
    const reviewer = mayDecide(r, req.caller!, req.roles);
    const [decision, events, deliveries] = await Promise.all([
      raisedBy(d, r),
      d.approvals.events(r.id),
      d.outbox && reviewer ? d.outbox.list({ approvalId: r.id }) : Promise.resolve([]),
    ]);
    return page({
      title: `Approval: ${r.method} ${r.path}`,
      viewer: v,
      active: '/console/approvals',
      body: html`${requestFacts(r, decision)}
${reviewer && r.status === 'pending' ? decideForms(r, v) : ''}
${r.status === 'approved' && (req.roles.has('admin') || (req.roles.has('reviewer') && r.reviewers.some((g) => req.caller!.groups.includes(g)))) ? revokeForm(r, v) : ''}
<h2>History</h2><ol>${events.map((e) => html`<li>${when(e.created_at)} <span class="mono">${e.kind}</span> ${String(e.approval['decided_by'] ?? e.approval['revoked_by'] ?? '')}</li>`)}</ol>
${reviewer ? html`<h2>Notifications</h2>${deliveriesTable(deliveries)}` : ''}`,
    });
  };
}

const field = (req: ApiRequest, name: string) => {
  const v = (req.body as Record<string, unknown> | null)?.[name];
  return typeof v === 'string' && v.trim() !== '' ? v.trim() : undefined;
};

export function decideAction(d: ConsoleDeps): ApiHandler {
  return async (req) => {
    const id = field(req, 'id') ?? '';
    const verdict = field(req, 'verdict');
    const mode = field(req, 'mode');
    const ttl = field(req, 'ttl');
    const reason = field(req, 'reason')?.slice(0, 500);
    if (verdict !== 'approve' && verdict !== 'deny')
      throw new ApiError(400, 'invalid_verdict', 'approve or deny');
    if (mode !== undefined && mode !== 'once' && mode !== 'window')
      throw new ApiError(400, 'invalid_mode', 'once or window');
    if (ttl !== undefined && !WINDOWS.includes(ttl))
      throw new ApiError(400, 'invalid_ttl', `one of ${WINDOWS.join(', ')}`);
    if (verdict === 'deny' && !reason) throw new ApiError(400, 'missing_reason', 'a denial needs a reason');
    const r = await decideApproval(
      d.approvals,
      d.recordAdmin,
      req.caller!,
      id,
      verdict,
      {
        ...(mode ? { mode } : {}),
        ...(ttl && mode === 'window' ? { ttl } : {}),
        ...(reason ? { reason } : {}),
      },
      'console',
    );
    return redirect(href('/console/approval', { id: r.id }));
  };
}

export function revokeAction(d: ConsoleDeps): ApiHandler {
  return async (req) => {
    const reason = field(req, 'reason')?.slice(0, 500);
    const r = await revokeApprovalGrant(
      d.approvals,
      d.recordAdmin,
      req.caller!,
      req.roles,
      field(req, 'id') ?? '',
      reason,
      'console',
    );
    return redirect(href('/console/approval', { id: r.id }));
  };
}
