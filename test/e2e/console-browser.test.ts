// The web console in a real browser (Chromium through playwright-core) against `chaperone up --dev` run
// by the CLI: alice's agent is held for approval on a DELETE; carol follows the `status_url` the agent
// got, signs in through the dev issuer, sees exactly what is asked and approves it once; the agent's
// retry passes and appears in carol's live tail; a webhook receiver gets the signed events (checked with
// the Standard Webhooks reference library) and a Slack-compatible one the messages; bob, who holds no
// role, sees none of the audit pages. Screenshots of every page are taken (UPDATE_SCREENSHOTS=1 writes
// them to docs/console/ for docs/console.md).
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Locator, Page } from 'playwright-core';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../lib/tools.ts';
import { type Browser, launchBrowser } from '../support/browser.ts';
import {
  devGatewayYaml,
  devToken,
  type GatewayProcess,
  startGatewayProcess,
} from '../support/gateway-process.ts';
import { waitFor } from '../support/wait.ts';

interface Received {
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
}

const SECRET = `whsec_${randomBytes(24).toString('base64')}`;
const received: Received[] = [];
let receiver: Server;
let gw: GatewayProcess;
let shots: string;
const browsers: Browser[] = [];
const state: { agent?: string; approvalId?: string; statusUrl?: string } = {};

async function startReceiver(): Promise<number> {
  receiver = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push({
        path: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
      });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', () => resolve()));
  return (receiver.address() as AddressInfo).port;
}

/** An agent token for alice (RFC 8693 exchange at the HTTP API). */
async function agentToken(): Promise<string> {
  const res = await fetch(`${gw.api}/oauth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
      subject_token: await devToken(gw, 'alice'),
      agent_name: 'cleanup-bot',
      targets: 'demo',
    }).toString(),
  });
  expect(res.status).toBe(200);
  return ((await res.json()) as { access_token: string }).access_token;
}

const deleteItem = () =>
  fetch(`${gw.egress}/demo/items/7`, {
    method: 'DELETE',
    headers: { authorization: `Bearer ${state.agent}` },
  });

/** Waits (with a deadline) until the element contains `text`. */
async function sees(loc: Locator, text: string, timeout = 10_000): Promise<void> {
  await loc.filter({ hasText: text }).first().waitFor({ timeout });
}

async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(shots, `${name}.png`) });
}

/** Form controls a screen reader would announce without a name (should be none). */
const unlabelled = (page: Page) =>
  page.evaluate<
    string[]
  >(`[...document.querySelectorAll('input:not([type=hidden]), select, textarea, button')]
    .filter((e) => !(e.labels && e.labels.length > 0) && !e.getAttribute('aria-label') && !(e.textContent || '').trim())
    .map((e) => e.outerHTML)`);

async function signIn(user: string, start: string): Promise<Page> {
  const b = await launchBrowser();
  browsers.push(b);
  const page = await b.context.newPage();
  await page.goto(start);
  expect(await page.title()).toMatch(/Sign in/);
  await page.getByRole('link', { name: `Sign in as ${user}` }).click();
  await page.waitForURL(
    (u) => u.pathname.startsWith('/console/') && !u.pathname.startsWith('/console/callback'),
  );
  return page;
}

beforeAll(async () => {
  shots = process.env['UPDATE_SCREENSHOTS']
    ? join(PROJECT_ROOT, 'docs', 'console')
    : await mkdtemp(join(tmpdir(), 'console-shots-'));
  await mkdir(shots, { recursive: true });
  const hook = await startReceiver();
  gw = await startGatewayProcess({
    yaml: (p) => `${devGatewayYaml(p)}notifications:
  sinks:
    - name: security-webhook
      type: webhook
      url: http://127.0.0.1:${hook}/hooks/chaperone
      secret: env:CONSOLE_E2E_WEBHOOK_SECRET
    - name: team-slack
      type: slack
      url: env:CONSOLE_E2E_SLACK_URL
`,
    env: { CONSOLE_E2E_WEBHOOK_SECRET: SECRET, CONSOLE_E2E_SLACK_URL: `http://127.0.0.1:${hook}/slack` },
  });
  state.agent = await agentToken();
}, 180_000);

afterAll(async () => {
  for (const b of browsers) await b.close();
  await gw?.cleanup();
  receiver?.close();
  if (!process.env['UPDATE_SCREENSHOTS'] && shots) await rm(shots, { recursive: true, force: true });
});

describe('the web console in Chromium', () => {
  it('announces the console at start-up', () => {
    expect(gw.output()).toMatch(
      /✓ console\s+http:\/\/127\.0\.0\.1:\d+\/console\/ {2}sign in with http:\/\/127\.0\.0\.1:\d+/,
    );
  });

  it("holds alice's agent's DELETE for approval, with a status URL", async () => {
    const res = await deleteItem();
    expect(res.status).toBe(403);
    const body = (await res.json()) as { error: string; approval_id: string; status_url: string };
    expect(body.error).toBe('approval_required');
    state.approvalId = body.approval_id;
    state.statusUrl = body.status_url;
    // A client (no text/html, or a token) gets the JSON API as before; only a browser is sent to the page.
    const json = await fetch(body.status_url, {
      headers: { accept: 'application/json' },
      redirect: 'manual',
    });
    expect(json.status).toBe(401);
    expect(json.headers.get('content-type')).toContain('application/json');
    const asAgent = await fetch(body.status_url, {
      headers: { accept: 'text/html', authorization: `Bearer ${state.agent}` },
      redirect: 'manual',
    });
    expect(((await asAgent.json()) as { status: string }).status).toBe('pending');
  });

  it('opens the status URL in a browser as the console page, after carol signs in through the dev issuer', async () => {
    const page = await signIn('carol', state.statusUrl!);
    expect(new URL(page.url()).pathname + new URL(page.url()).search).toBe(
      `/console/approval?id=${state.approvalId}`,
    );
    const facts = page.locator('dl.facts');
    await sees(facts, 'DELETE /demo/items/7');
    await sees(facts, 'alice');
    await sees(facts, 'cleanup-bot');
    await sees(facts, 'deleting demo data needs a security review');
    await sees(facts, 'pending');
    expect(await unlabelled(page)).toEqual([]);
    await shot(page, 'approval');
    await page.keyboard.press('Tab');
    expect(await page.evaluate<string>('document.activeElement.textContent')).toBe('Skip to content');
    await page.goto(`${gw.api}/console/approvals`);
    await sees(page.locator(`tr[data-approval-id="${state.approvalId}"]`), 'DELETE /demo/items/7');
    await shot(page, 'approvals');
    await page.locator(`tr[data-approval-id="${state.approvalId}"] a`).click();
    await page.getByRole('button', { name: 'Approve once' }).click();
    await page.waitForURL(/\/console\/approval\?id=/);
    await sees(page.locator('dl.facts'), 'approved');
    await sees(page.locator('dl.facts'), 'by carol');
  }, 120_000);

  it("lets the agent's retry through, and carol's live tail shows it", async () => {
    const page = browsers[0]!.context.pages()[0]!;
    await page.goto(`${gw.api}/console/decisions/live`);
    await sees(page.locator('#tail-state'), 'Live');
    const res = await deleteItem();
    expect(res.status).toBe(200);
    const decisionId = res.headers.get('x-chaperone-decision-id')!;
    const row = page.locator(`table[data-live-tail] tr[data-decision-id="${decisionId}"]`);
    await sees(row, 'allow', 20_000);
    await sees(row, 'cleanup-bot');
    await shot(page, 'live-tail');
    await row.getByRole('link', { name: 'details' }).click();
    await sees(page.locator('h1'), 'Decision');
    await sees(page.locator('main'), 'Chain position');
    await sees(page.locator('main'), 'Access-log outcome');
    await shot(page, 'decision');
    expect((await deleteItem()).status).toBe(403); // approved once: the next try asks again
  }, 60_000);

  it('grants a window in the console and withdraws it there and through the API', async () => {
    const page = browsers[0]!.context.pages()[0]!;
    const held = async (path: string) => {
      const res = await fetch(`${gw.egress}${path}`, {
        method: 'DELETE',
        headers: { authorization: `Bearer ${state.agent}` },
      });
      return { status: res.status, body: (await res.json().catch(() => ({}))) as { approval_id?: string } };
    };
    // The console: approve for a window, used twice, then revoked.
    const first = await held('/demo/items/8');
    await page.goto(`${gw.api}/console/approval?id=${first.body.approval_id}`);
    await page.getByLabel('Allow it again for').selectOption('1h');
    await page.getByRole('button', { name: 'Approve for a window' }).click();
    await sees(page.locator('dl.facts'), 'window, until');
    expect((await held('/demo/items/8')).status).toBe(200);
    expect((await held('/demo/items/8')).status).toBe(200);
    await page.getByLabel('Reason').fill('clean-up finished');
    await page.getByRole('button', { name: 'Revoke now' }).click();
    await sees(page.locator('dl.facts'), 'revoked');
    const after = await held('/demo/items/8');
    expect(after.status).toBe(403);
    expect(after.body.approval_id).not.toBe(first.body.approval_id);
    // The API: the same for a reviewer's token.
    const carol = await devToken(gw, 'carol');
    const api = (path: string, body: unknown) =>
      fetch(`${gw.api}${path}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${carol}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    expect(
      (await api('/approvals/approve', { id: after.body.approval_id, mode: 'window', ttl: '1h' })).status,
    ).toBe(200);
    expect((await held('/demo/items/8')).status).toBe(200);
    const revoked = await api('/approvals/revoke', { id: after.body.approval_id, reason: 'done' });
    expect(revoked.status).toBe(200);
    expect(((await revoked.json()) as { status: string }).status).toBe('revoked');
    expect((await api('/approvals/revoke', { id: after.body.approval_id })).status).toBe(409);
    expect((await held('/demo/items/8')).status).toBe(403);
    await waitFor(
      () =>
        received.some(
          (r) =>
            r.path === '/hooks/chaperone' &&
            r.body.includes('"approval.revoked"') &&
            r.body.includes(after.body.approval_id!),
        ),
      {
        what: 'approval.revoked at the webhook',
        timeoutMs: 20_000,
      },
    );
  }, 90_000);

  it('sends signed webhook events and Slack messages for the request and the decision', async () => {
    const hooks = () => received.filter((r) => r.path === '/hooks/chaperone');
    await waitFor(() => hooks().filter((r) => r.body.includes(state.approvalId!)).length >= 2, {
      what: 'approval.requested and approval.decided at the webhook',
      timeoutMs: 20_000,
    });
    const wh = new Webhook(SECRET);
    const events = hooks().map(
      (r) =>
        wh.verify(r.body, r.headers as Record<string, string>) as {
          type: string;
          data: { approval: { id: string; status: string }; console_url: string };
        },
    );
    const mine = events.filter((e) => e.data.approval.id === state.approvalId);
    expect(mine.map((e) => e.type).slice(0, 2)).toEqual(['approval.requested', 'approval.decided']);
    expect(mine[1]!.data.approval.status).toBe('approved');
    expect(mine[0]!.data.console_url).toBe(`${gw.api}/console/approval?id=${state.approvalId}`);
    // A forged body does not verify.
    const first = hooks()[0]!;
    expect(() =>
      wh.verify(first.body.replace('approval', 'approva1'), first.headers as Record<string, string>),
    ).toThrow();
    const slackFor7 = () => received.filter((r) => r.path === '/slack' && r.body.includes('/demo/items/7'));
    await waitFor(() => slackFor7().length >= 2, {
      what: 'Slack messages',
      timeoutMs: 20_000,
    });
    const slack = slackFor7().map((r) => JSON.parse(r.body) as { text: string });
    expect(slack[0]!.text).toContain(
      'Approval requested: `DELETE /demo/items/7` on demo for alice via cleanup-bot',
    );
    expect(slack[1]!.text).toContain('Approval approved by carol');
  }, 60_000);

  it('shows every other page to carol (screenshots for docs/console.md)', async () => {
    const page = browsers[0]!.context.pages()[0]!;
    for (const [path, name, heading] of [
      ['/console/', 'home', 'Chaperone console'],
      ['/console/decisions?verdict=approval_required', 'decisions', 'Decisions'],
      ['/console/agents', 'agents', 'Agents'],
      ['/console/fleet', 'fleet', 'Fleet & policy'],
      ['/console/notifications', 'notifications', 'Notifications'],
    ] as const) {
      const res = await page.goto(`${gw.api}${path}`);
      expect(res?.status(), path).toBe(200);
      expect(await page.locator('h1').textContent()).toBe(heading);
      expect(await unlabelled(page), path).toEqual([]);
      await shot(page, name);
    }
    await sees(page.locator('main'), 'security-webhook');
    await page.goto(`${gw.api}/console/fleet`);
    await page.getByRole('button', { name: 'Verify the hash chain now' }).click();
    await sees(page.locator('#verify + p'), 'Intact');
  }, 60_000);

  it('shows bob, who holds no role, none of the audit pages', async () => {
    const page = await signIn('bob', `${gw.api}/console/login`);
    await shot(page, 'home-no-role');
    const nav = page.getByRole('navigation', { name: 'Console sections' });
    await sees(nav, 'Agents');
    for (const label of ['Decisions', 'Live tail', 'Approvals', 'Fleet & policy', 'Notifications'])
      expect(await nav.getByRole('link', { name: label, exact: true }).count()).toBe(0);
    for (const path of [
      '/console/decisions',
      '/console/decisions/live',
      '/console/decisions/stream',
      `/console/decision?id=x`,
      '/console/approvals',
      '/console/fleet',
      '/console/notifications',
    ]) {
      const res = await page.goto(`${gw.api}${path}`);
      expect(res?.status(), path).toBe(403);
    }
    // The approval is neither his nor his to review: as invisible as a missing one.
    expect((await page.goto(`${gw.api}/console/approval?id=${state.approvalId}`))?.status()).toBe(404);
  }, 90_000);

  it('signs out: the session ends on the server, not only in the browser', async () => {
    const page = browsers[0]!.context.pages()[0]!;
    const cookie = (await browsers[0]!.context.cookies()).find((c) => c.name === 'chaperone_console')!;
    await page.goto(`${gw.api}/console/`);
    await page.getByRole('button', { name: 'Sign out' }).click();
    await sees(page.locator('main'), 'You are signed out.');
    await shot(page, 'login');
    const replay = await fetch(`${gw.api}/console/decisions`, {
      headers: { cookie: `chaperone_console=${cookie.value}` },
      redirect: 'manual',
    });
    expect(replay.status).toBe(303);
    expect(replay.headers.get('location')).toMatch(/^\/console\/login/);
  }, 30_000);
});
