// The web console's routes (docs/console.md), declared like every other route: pages and forms take
// the console session (`session` callers: a cookie, CSRF-checked on POST) with the same roles as their
// JSON counterparts — decisions as /audit/* (auditor), approvals as /approvals (reviewer), fleet as
// /status (admin or auditor), agents as /agents (any person, narrowed to their own) — and only the
// sign-in itself and the stylesheet/script are public.
import { CONSOLE_CSS, CONSOLE_JS } from '../console/assets.ts';
import type { ConsoleDeps } from '../console/deps.ts';
import { redirect } from '../console/layout.ts';
import { agentsPage, revokeAgentsAction } from '../console/pages/agents.ts';
import { approvalPage, approvalsPage, decideAction, revokeAction } from '../console/pages/approvals.ts';
import { callback, homePage, loginPage, loginStart, logout } from '../console/pages/auth.ts';
import { decisionPage, decisionStream, decisionsPage, livePage } from '../console/pages/decisions.ts';
import { fleetPage, notificationsPage, verifyAction } from '../console/pages/fleet.ts';
import type { Route } from '../route.ts';

export type { ConsoleDeps } from '../console/deps.ts';

const AUDITOR = { session: ['auditor'] } as const;
const REVIEWER = { session: ['reviewer'] } as const;

const asset = (text: string, type: string) => () => ({
  status: 200,
  headers: { 'content-type': type, 'cache-control': 'public, max-age=300' },
  body: text,
});

export function consoleRoutes(d: ConsoleDeps): Route[] {
  return [
    { method: 'GET', path: '/console', caller: 'session', handle: () => redirect('/console/') },
    { method: 'GET', path: '/console/', caller: 'session', handle: homePage(d) },
    // Anonymous: the way to sign in. It names the issuer and starts a flow; it reads no session.
    { method: 'GET', path: '/console/login', caller: 'anonymous', handle: loginPage(d) },
    // Anonymous: starts an authorization-code flow (state, nonce, PKCE) bound to this browser.
    { method: 'GET', path: '/console/login/start', caller: 'anonymous', handle: loginStart(d) },
    // Anonymous: the IdP's redirect back; it accepts only the flow its one-time cookie names.
    { method: 'GET', path: '/console/callback', caller: 'anonymous', handle: callback(d) },
    { method: 'POST', path: '/console/logout', caller: 'session', handle: logout(d) },
    // Anonymous: the console's stylesheet and script, the same for everyone.
    {
      method: 'GET',
      path: '/console/assets/console.css',
      caller: 'anonymous',
      handle: asset(CONSOLE_CSS, 'text/css; charset=utf-8'),
    },
    {
      method: 'GET',
      path: '/console/assets/console.js',
      caller: 'anonymous',
      handle: asset(CONSOLE_JS, 'text/javascript; charset=utf-8'),
    },
    { method: 'GET', path: '/console/decisions', caller: AUDITOR, handle: decisionsPage(d) },
    { method: 'GET', path: '/console/decisions/live', caller: AUDITOR, handle: livePage(d) },
    { method: 'GET', path: '/console/decisions/stream', caller: AUDITOR, handle: decisionStream(d) },
    { method: 'GET', path: '/console/decision', caller: AUDITOR, handle: decisionPage(d) },
    { method: 'GET', path: '/console/approvals', caller: REVIEWER, handle: approvalsPage(d) },
    // Any person: the requester follows their own request here (status_url); the page shows a request
    // only to the people GET /approvals/status shows it to.
    { method: 'GET', path: '/console/approval', caller: 'session', handle: approvalPage(d) },
    { method: 'POST', path: '/console/approvals/decide', caller: REVIEWER, handle: decideAction(d) },
    {
      method: 'POST',
      path: '/console/approvals/revoke',
      caller: { session: ['reviewer', 'admin'] },
      handle: revokeAction(d),
    },
    { method: 'GET', path: '/console/agents', caller: 'session', handle: agentsPage(d) },
    { method: 'POST', path: '/console/agents/revoke', caller: 'session', handle: revokeAgentsAction(d) },
    {
      method: 'GET',
      path: '/console/fleet',
      caller: { session: ['admin', 'auditor'] },
      handle: fleetPage(d),
    },
    { method: 'POST', path: '/console/fleet/verify', caller: AUDITOR, handle: verifyAction(d) },
    {
      method: 'GET',
      path: '/console/notifications',
      caller: { session: ['admin'] },
      handle: notificationsPage(d),
    },
  ];
}
