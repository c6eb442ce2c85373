// The page shell every console page shares: document head, a skip link, the navigation (only the
// sections the viewer's roles open), the sign-out form and the security headers of an HTML answer —
// a Content-Security-Policy that allows only this origin's own stylesheet and script, no framing, no
// referrer beyond the origin.
import type { ApiResponse, Role } from '../route.ts';
import { html, type SafeHtml } from './html.ts';

export interface Viewer {
  subject: string;
  name: string | null;
  roles: ReadonlySet<Role>;
  csrf: string;
}

interface NavItem {
  href: string;
  label: string;
  /** Any of these roles opens it; empty: every signed-in person. */
  roles: readonly Role[];
}

export const NAV: readonly NavItem[] = [
  { href: '/console/decisions', label: 'Decisions', roles: ['auditor'] },
  { href: '/console/decisions/live', label: 'Live tail', roles: ['auditor'] },
  { href: '/console/approvals', label: 'Approvals', roles: ['reviewer'] },
  { href: '/console/agents', label: 'Agents', roles: [] },
  { href: '/console/fleet', label: 'Fleet & policy', roles: ['admin', 'auditor'] },
  { href: '/console/notifications', label: 'Notifications', roles: ['admin'] },
];

export const mayOpen = (item: Pick<NavItem, 'roles'>, roles: ReadonlySet<Role>) =>
  item.roles.length === 0 || item.roles.some((r) => roles.has(r));

export const PAGE_HEADERS: Record<string, string> = {
  'content-type': 'text/html; charset=utf-8',
  'content-security-policy':
    "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'x-frame-options': 'DENY',
  'referrer-policy': 'same-origin',
};

/** A hidden field with the session's synchronizer token: every console form carries one. */
export const csrfField = (v: Viewer) => html`<input type="hidden" name="csrf" value="${v.csrf}">`;

function nav(viewer: Viewer | null, active: string | undefined): SafeHtml {
  if (!viewer) return html``;
  const items = NAV.filter((i) => mayOpen(i, viewer.roles));
  return html`<nav aria-label="Console sections"><ul>
    ${items.map(
      (i) =>
        html`<li><a href="${i.href}"${i.href === active ? html` aria-current="page"` : ''}>${i.label}</a></li>`,
    )}
  </ul>
  <form method="post" action="/console/logout" class="signout">${csrfField(viewer)}
    <span class="who">${viewer.name ?? viewer.subject} <span class="roles">(${[...viewer.roles].sort().join(', ') || 'no role'})</span></span>
    <button type="submit">Sign out</button>
  </form></nav>`;
}

export interface PageOptions {
  title: string;
  viewer: Viewer | null;
  body: SafeHtml;
  active?: string;
  status?: number;
  headers?: Record<string, string | string[]>;
  /** Extra `<head>` content (a meta refresh). */
  head?: SafeHtml;
}

export function page(o: PageOptions): ApiResponse {
  const doc = html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${o.title} · Chaperone</title>
<link rel="stylesheet" href="/console/assets/console.css">
<script src="/console/assets/console.js" defer></script>
${o.head ?? ''}
</head>
<body>
<a class="skip" href="#main">Skip to content</a>
<header class="top"><a class="brand" href="/console/">Chaperone</a>${nav(o.viewer, o.active)}</header>
<main id="main" tabindex="-1">
<h1>${o.title}</h1>
${o.body}
</main>
</body>
</html>
`;
  return { status: o.status ?? 200, headers: { ...PAGE_HEADERS, ...o.headers }, body: doc.text };
}

/** A 303 to another console page (after a form, or to sign in). */
export const redirect = (location: string, headers: Record<string, string | string[]> = {}): ApiResponse => ({
  status: 303,
  headers: { location, ...headers },
  body: null,
});

export function viewerOf(req: {
  caller: { subject: string; name: string | null } | null;
  roles: ReadonlySet<Role>;
  session?: { csrf: string };
}): Viewer {
  return {
    subject: req.caller!.subject,
    name: req.caller!.name,
    roles: req.roles,
    csrf: req.session!.csrf,
  };
}

/** `2026-12-03 14:05:09Z`: short, sortable, unambiguous. */
export const when = (v: string | null | undefined) =>
  v
    ? new Date(v)
        .toISOString()
        .replace('T', ' ')
        .replace(/\.\d+Z$/, 'Z')
    : '—';
