// Signing in and out of the console, its home page, and how console routes answer a refusal. The
// sign-in is started by a link (GET), bound to the browser by a one-time sign-in cookie, and finished
// at /console/callback; the session cookie is set there, on a page that then moves on with a
// same-origin navigation (a redirect chain that began at the IdP would not carry a SameSite=Strict
// cookie to the next page).

import { ApiError } from '../../errors.ts';
import type { ApiHandler, ApiResponse } from '../../route.ts';
import { readCookie } from '../cookies.ts';
import type { ConsoleDeps } from '../deps.ts';
import { href, html } from '../html.ts';
import { mayOpen, NAV, page, redirect, viewerOf } from '../layout.ts';
import { ConsoleSignIn } from '../sign-in.ts';

const HOME = '/console/';

/** Where to go after sign-in: a console path of ours, never another origin (`//host`, `/\\host`). */
export function safeReturn(value: string | null | undefined): string {
  if (!value || !/^\/console(\/[A-Za-z0-9\-._~%!$&'()*+,;=:@/?]*)?$/.test(value) || value.includes('//'))
    return HOME;
  return value;
}

const LOGIN_HINT = /^[A-Za-z0-9._@+-]{1,128}$/;

export function loginPage(d: ConsoleDeps): ApiHandler {
  return async (req) => {
    const returnTo = safeReturn(req.url.searchParams.get('return_to'));
    const signedOut = req.url.searchParams.has('signed_out');
    const issuerHost = new URL(d.signIn.issuer).host;
    return page({
      title: 'Sign in',
      viewer: null,
      body: html`${signedOut ? html`<p class="notice" role="status">You are signed out.</p>` : ''}
<p>Chaperone's console is for the people who answer for agents: auditors see decisions, reviewers answer approval requests, admins run the fleet. Agents cannot sign in.</p>
<p><a class="button" href="${href('/console/login/start', { return_to: returnTo })}">Sign in with ${issuerHost}</a></p>
${
  d.devUsers && d.devUsers.length > 0
    ? html`<h2>Dev issuer</h2><p class="muted">chaperone up --dev signs a demo user in without a password:</p>
<ul>${d.devUsers.map((u) => html`<li><a href="${href('/console/login/start', { return_to: returnTo, login_hint: u })}">Sign in as ${u}</a></li>`)}</ul>`
    : ''
}`,
    });
  };
}

export function loginStart(d: ConsoleDeps): ApiHandler {
  return async (req) => {
    const hint = req.url.searchParams.get('login_hint') ?? '';
    const checks = ConsoleSignIn.newChecks();
    const url = await d.signIn.authorizationUrl(checks, LOGIN_HINT.test(hint) ? hint : undefined);
    const cookie = await d.sessions.startLogin({
      ...checks,
      returnTo: safeReturn(req.url.searchParams.get('return_to')),
      issuer: d.signIn.issuer,
    });
    return { status: 302, headers: { location: url.href, 'set-cookie': cookie }, body: null };
  };
}

function signInFailed(err: unknown): ApiResponse {
  const e =
    err instanceof ApiError ? err : new ApiError(401, 'sign_in_failed', 'the sign-in could not be completed');
  return page({
    title: 'Not signed in',
    viewer: null,
    status: e.status,
    body: html`<p class="notice error" role="alert">${e.publicMessage}</p><p><a href="/console/login">Sign in again</a></p>`,
  });
}

export function callback(d: ConsoleDeps): ApiHandler {
  return async (req) => {
    try {
      const value = readCookie(req.headers.cookie, d.sessions.loginCookieName);
      const attempt = value ? await d.sessions.takeLogin(value) : null;
      if (!attempt || attempt.issuer !== d.signIn.issuer)
        throw new ApiError(400, 'sign_in_failed', 'this sign-in expired or was not started in this browser');
      const person = await d.signIn.finish(req.url, attempt);
      // Whatever session cookie the browser had (planted or stale) ends here: the new one is fresh.
      await d.sessions.end(readCookie(req.headers.cookie, d.sessions.cookieName));
      const cookies = await d.sessions.create(person);
      return page({
        title: 'Signed in',
        viewer: null,
        headers: { 'set-cookie': cookies },
        head: html`<meta http-equiv="refresh" content="0;url=${attempt.returnTo}">`,
        body: html`<p>Signed in as ${person.name ?? person.subject}. <a href="${attempt.returnTo}">Continue</a></p>`,
      });
    } catch (err) {
      return signInFailed(err);
    }
  };
}

export function logout(d: ConsoleDeps): ApiHandler {
  return async (req) => {
    const cleared = await d.sessions.end(readCookie(req.headers.cookie, d.sessions.cookieName));
    return redirect('/console/login?signed_out=1', { 'set-cookie': cleared });
  };
}

export function homePage(d: ConsoleDeps): ApiHandler {
  return async (req) => {
    const v = viewerOf(req);
    const pending = req.roles.has('reviewer')
      ? (await d.approvals.list({ status: 'pending', reviewerGroups: req.caller!.groups })).length
      : null;
    const open = NAV.filter((i) => mayOpen(i, req.roles));
    return page({
      title: 'Chaperone console',
      viewer: v,
      body: html`<p>Signed in as <strong>${v.name ?? v.subject}</strong> (${v.subject}); roles: ${[...v.roles].sort().join(', ') || 'none'}.
Session until ${req.session!.expiresAt}.</p>
${pending !== null ? html`<p class="notice"><a href="/console/approvals">${pending} approval request(s)</a> wait for your groups.</p>` : ''}
${v.roles.size === 0 ? html`<p class="notice">You hold no console role: you see your own agents only. The roles come from your groups, listed under <code>access:</code> in chaperone.yaml.</p>` : ''}
<div class="cards">${open.map((i) => html`<div class="card"><h2><a href="${i.href}">${i.label}</a></h2></div>`)}</div>`,
    });
  };
}

/** A refused console request: sign in first (GET), or an error page with the reason. */
export function consoleError(err: ApiError, req: { method: string; url: URL }): ApiResponse {
  if (err.status === 401 && req.method === 'GET')
    return redirect(href('/console/login', { return_to: safeReturn(req.url.pathname + req.url.search) }));
  const title = err.status === 403 ? 'Not allowed' : err.status === 404 ? 'Not found' : 'Cannot do that';
  return page({
    title,
    viewer: null,
    status: err.status,
    body: html`<p class="notice error" role="alert">${err.publicMessage}</p><p><a href="${HOME}">Back to the console</a></p>`,
  });
}
