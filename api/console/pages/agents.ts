// The agent inventory and the kill switch, on the JSON API's rules (GET /agents, POST /agents/revoke):
// every person sees and revokes their own agents; admins and auditors see everyone's; only an admin
// revokes another person's — one token, every token of an agent name, or every agent of a user.
import { type Person, personOf, samePerson } from '../../../contracts/identity.ts';
import type { AgentTokenRecord } from '../../../fleet/agent-registry.ts';
import type { ApiHandler } from '../../route.ts';
import { revocationAsked, revokeAgents } from '../../routes/agents.ts';
import type { ConsoleDeps } from '../deps.ts';
import { href, html, type SafeHtml } from '../html.ts';
import { csrfField, page, redirect, type Viewer, viewerOf, when } from '../layout.ts';

function revokeButton(v: Viewer, fields: Record<string, string>, label: string, described: string): SafeHtml {
  return html`<form method="post" action="/console/agents/revoke" class="inline">${csrfField(v)}${Object.entries(
    fields,
  ).map(
    ([k, val]) => html`<input type="hidden" name="${k}" value="${val}">`,
  )}<button type="submit" class="secondary" aria-label="${described}">${label}</button></form>`;
}

function agentRow(a: AgentTokenRecord, v: Viewer, mayRevoke: boolean): SafeHtml {
  const live = !a.revoked_at && Date.parse(a.expires_at) > Date.now();
  return html`<tr data-token-id="${a.token_id}">
  <td>${a.agent}</td><td>${a.user}</td><td class="mono" title="${a.token_id}">${a.token_id.slice(0, 8)}</td>
  <td>${a.targets?.join(', ') ?? 'any'}</td><td>${when(a.issued_at)}</td><td>${when(a.expires_at)}</td>
  <td>${when(a.last_seen)}</td><td>${a.requests}</td><td>${a.denied}</td><td>${a.targets_used.join(', ') || '—'}</td>
  <td class="${a.revoked_at ? 'status-revoked' : ''}">${a.revoked_at ? html`revoked ${when(a.revoked_at)} by ${a.revoked_by ?? '?'}` : live ? 'active' : 'expired'}</td>
  <td>${
    mayRevoke && live
      ? html`${revokeButton(v, { token_id: a.token_id }, 'Revoke token', `Revoke token ${a.token_id.slice(0, 8)} of ${a.agent}`)}
    ${revokeButton(v, { agent: a.agent, user: a.user, issuer: a.user_issuer }, 'Revoke agent', `Revoke every token of agent ${a.agent} of ${a.user}`)}`
      : ''
  }</td>
</tr>`;
}

export function agentsPage(d: ConsoleDeps): ApiHandler {
  return async (req) => {
    const v = viewerOf(req);
    const seesAll = req.roles.has('admin') || req.roles.has('auditor');
    const wanted = req.url.searchParams.get('user')?.trim() || null;
    const me = personOf(req.caller!);
    // A person sees their own agents (issuer and subject); admins and auditors see everyone's.
    const rows = await d.agents.list(
      seesAll ? (wanted ? { user: wanted } : {}) : { ...me, user: me.subject },
    );
    const mayRevoke = (a: AgentTokenRecord) =>
      samePerson({ issuer: a.user_issuer, subject: a.user }, me) || req.roles.has('admin');
    // The kill switch names people (issuer and subject): alice of another issuer is someone else.
    const people = new Map<string, Person>();
    for (const r of req.roles.has('admin') ? rows : []) {
      const p = { issuer: r.user_issuer, subject: r.user };
      people.set(JSON.stringify([p.subject, p.issuer]), p);
    }
    if (!req.roles.has('admin')) people.set('', me);
    const issuers = new Set([...people.values()].map((p) => p.issuer));
    const named = (p: Person) => (issuers.size > 1 ? `${p.subject} (${p.issuer})` : p.subject);
    return page({
      title: 'Agents',
      viewer: v,
      active: '/console/agents',
      body: html`${
        seesAll
          ? html`<form class="filters" method="get" action="/console/agents" role="search" aria-label="Filter agents"><div><label for="a-user">User</label><input id="a-user" name="user" value="${wanted ?? ''}" placeholder="everyone"></div><div><button type="submit">Show</button></div></form>`
          : html`<p class="muted">Your own agents. Admins and auditors see everyone's.</p>`
      }
<div class="scroll"><table><caption>${rows.length} agent token(s)</caption>
<thead><tr><th scope="col">Agent</th><th scope="col">Launched by</th><th scope="col">Token</th><th scope="col">May reach</th><th scope="col">Issued</th><th scope="col">Expires</th><th scope="col">Last seen</th><th scope="col">Requests</th><th scope="col">Denied</th><th scope="col">Targets used</th><th scope="col">State</th><th scope="col"><span class="muted">Revoke</span></th></tr></thead>
<tbody>${rows.map((a) => agentRow(a, v, mayRevoke(a)))}</tbody></table></div>
<h2>Kill switch</h2>
<p>Revoking every agent of a person stops each of their agent tokens on every authz server within a second.</p>
${[...people.entries()]
  .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
  .map(([, p]) =>
    revokeButton(
      v,
      { user: p.subject, issuer: p.issuer },
      `Revoke every agent of ${named(p)}`,
      `Revoke every agent of ${named(p)}`,
    ),
  )}`,
    });
  };
}

export function revokeAgentsAction(d: ConsoleDeps): ApiHandler {
  return async (req) => {
    const asked = revocationAsked(req);
    await revokeAgents(d.agents, d.recordAdmin, personOf(req.caller!), req.roles, asked, 'console');
    const { user } = asked;
    return redirect(
      href('/console/agents', {
        user: req.roles.has('admin') || req.roles.has('auditor') ? (user ?? null) : null,
      }),
    );
  };
}
