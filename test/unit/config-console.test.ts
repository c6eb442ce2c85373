// chaperone.yaml's `console:`, `notifications:` and `approvals:` sections: defaults, normalisation, and
// every rejection with its path, line and message (secrets only as references, never echoed).
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, type ConfigIssue } from '../../config/errors.ts';
import { loadConfig, parseConfig } from '../../config/load-config.ts';

const ISSUER = `identity:
  issuers:
    - issuer: https://login.example.com
      audiences: [chaperone]
`;

function issuesOf(text: string): ConfigIssue[] {
  try {
    parseConfig(text, 'c.yaml');
  } catch (err) {
    if (err instanceof ConfigError) return [...err.issues];
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('console, notifications and approvals in chaperone.yaml', () => {
  it('turns the console on with an issuer, with a public client and a working-day session', () => {
    const c = parseConfig(ISSUER);
    expect(c.console).toEqual({
      enabled: true,
      issuer: null,
      clientId: 'chaperone-console',
      clientSecret: null,
      scopes: ['openid', 'email', 'profile'],
      resource: null,
      sessionTtlMs: 8 * 3.6e6,
      sessionIdleMs: 3.6e6,
    });
    expect(c.notifications).toEqual({ sinks: [], maxAttempts: 8 });
    expect(c.approvals).toEqual({ pendingTtlMs: 24 * 3.6e6 });
  });

  it('reads every key of the example', async () => {
    const c = await loadConfig(resolve('examples/chaperone.yaml'));
    expect(c.console).toMatchObject({
      enabled: true,
      clientId: 'chaperone-console',
      sessionTtlMs: 8 * 3.6e6,
    });
    expect(c.notifications.sinks).toEqual([
      {
        name: 'security-webhook',
        type: 'webhook',
        url: 'https://hooks.example.com/chaperone',
        secret: 'env:CHAPERONE_WEBHOOK_SECRET',
        events: ['approval.requested', 'approval.decided', 'approval.expired', 'approval.revoked'],
      },
      {
        name: 'security-slack',
        type: 'slack',
        url: 'env:SLACK_WEBHOOK_URL',
        secret: null,
        events: ['approval.requested', 'approval.expired'],
      },
    ]);
    expect(c.approvals.pendingTtlMs).toBe(24 * 3.6e6);
  });

  it('normalises durations and the sign-in settings', () => {
    const c = parseConfig(`${ISSUER}console:
  issuer: https://login.example.com
  client_secret: file:/run/secrets/console
  scopes: [openid, groups]
  resource: https://chaperone.internal
  session_ttl: 2d
  session_idle: 90s
approvals:
  pending_ttl: 30m
`);
    expect(c.console).toMatchObject({
      issuer: 'https://login.example.com',
      clientSecret: 'file:/run/secrets/console',
      scopes: ['openid', 'groups'],
      resource: 'https://chaperone.internal',
      sessionTtlMs: 2 * 8.64e7,
      sessionIdleMs: 90_000,
    });
    expect(c.approvals.pendingTtlMs).toBe(30 * 60_000);
    expect(parseConfig(`${ISSUER}console:\n  enabled: false\n`).console.enabled).toBe(false);
  });

  it.each([
    [
      `${ISSUER}console:\n  issuer: https://other.example.com\n`,
      { path: 'console.issuer', line: 6, message: 'must be one of identity.issuers' },
    ],
    [
      `${ISSUER}console:\n  client_secret: s3cr3t-inline\n`,
      {
        path: 'console.client_secret',
        line: 6,
        message: 'must be a reference "env:NAME" or "file:/path" (inline secrets are refused)',
      },
    ],
    [
      `${ISSUER}console:\n  scopes: [email]\n`,
      { path: 'console.scopes', line: 6, message: 'must include openid' },
    ],
    [
      `${ISSUER}console:\n  session_ttl: 8 hours\n`,
      { path: 'console.session_ttl', line: 6, message: 'must be a duration like 90s, 30m, 8h or 2d' },
    ],
    [
      `approvals:\n  pending_ttl: forever\n`,
      { path: 'approvals.pending_ttl', line: 2, message: 'must be a duration like 90s, 30m, 8h or 2d' },
    ],
    [
      `notifications:\n  sinks:\n    - name: hook\n      type: webhook\n      url: https://hooks.example.com/x\n`,
      { path: 'notifications.sinks[0]', line: 3, message: 'missing required key "secret"' },
    ],
    [
      `notifications:\n  sinks:\n    - name: hook\n      type: email\n      url: https://x.example\n`,
      { path: 'notifications.sinks[0].type', line: 4, message: 'must be one of "webhook", "slack"' },
    ],
    [
      `notifications:\n  sinks:\n    - name: s\n      type: slack\n      url: hooks.slack.com/services/T000/B000/XXXX\n`,
      {
        path: 'notifications.sinks[0].url',
        line: 5,
        message: 'must be an http(s) URL or a reference "env:NAME" / "file:/path"',
      },
    ],
    [
      `notifications:\n  sinks:\n    - name: s\n      type: slack\n      url: env:A\n      events: [approval.used]\n`,
      {
        path: 'notifications.sinks[0].events[0]',
        line: 6,
        message:
          'must be one of "approval.requested", "approval.decided", "approval.expired", "approval.revoked"',
      },
    ],
    [
      `notifications:\n  sinks:\n    - name: s\n      type: slack\n      url: env:A\n    - name: s\n      type: slack\n      url: env:B\n`,
      {
        path: 'notifications.sinks[1].name',
        line: 6,
        message: 'duplicate name (also notifications.sinks[0].name)',
      },
    ],
  ])('rejects %j', (text, issue) => {
    expect(issuesOf(text)).toEqual([issue]);
  });

  it('never echoes an inline secret', () => {
    const text = `${ISSUER}console:\n  client_secret: hunter2-very-secret\n`;
    expect(JSON.stringify(issuesOf(text))).not.toContain('hunter2');
  });
});
