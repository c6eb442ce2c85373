// What a config edit changes in a running gateway: targets, listeners, Envoy's CA file and the authz
// cluster's circuit breaker are applied; every other section waits for a restart, is named with its
// line, and keeps its running value.
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../config/load-config.ts';
import { describeRestartNeeded, HOT_KEYS, RESTART_ONLY, reloadPlan } from '../../config/reload-plan.ts';

const base = `listeners: [{ name: egress, port: 10000 }]
identity:
  issuers:
    - issuer: https://idp.example.com
      audiences: [chaperone]
access:
  admins: [security]
targets:
  - name: a
    upstream: https://a.example.com
authz:
  address: 127.0.0.1:9191
`;

const running = parseConfig(base, '/etc/chaperone/chaperone.yaml');

describe('reloadPlan', () => {
  it('classifies every section of a Config as applied on reload or at restart only', () => {
    const classified = new Set<string>([
      ...HOT_KEYS,
      'identity',
      'access',
      'policy',
      'audit',
      'authz',
      'controlPlane',
      'telemetry',
      'dataPlane',
      'console',
      'notifications',
      'approvals',
      'limits',
    ]);
    expect(Object.keys(running).filter((k) => !classified.has(k))).toEqual([]);
    expect(RESTART_ONLY.map((s) => s.section)).toContain('identity');
  });

  it('applies target and listener edits with nothing waiting for a restart', () => {
    const edited = parseConfig(
      base.replace('port: 10000', 'port: 10001').replace('name: a', 'name: b'),
      '/etc/chaperone/chaperone.yaml',
    );
    const plan = reloadPlan(running, edited);
    expect(plan.restartNeeded).toEqual([]);
    expect(plan.apply.targets[0]?.name).toBe('b');
    expect(plan.apply.listeners[0]?.port).toBe(10001);
  });

  it("applies the authz cluster's circuit breaker (an xDS push) and keeps the running addresses", () => {
    const edited = parseConfig(
      base.replace('address: 127.0.0.1:9191', 'address: 127.0.0.1:9191\n  max_outstanding: 64'),
      '/etc/chaperone/chaperone.yaml',
    );
    const plan = reloadPlan(running, edited);
    expect(plan.restartNeeded).toEqual([]);
    expect(plan.apply.authz).toEqual({ addresses: ['127.0.0.1:9191'], maxOutstanding: 64 });
    // With an address edit in the same change, the bound applies and the address waits.
    const both = parseConfig(
      base.replace('address: 127.0.0.1:9191', 'address: 127.0.0.1:9192\n  max_outstanding: 64'),
      '/etc/chaperone/chaperone.yaml',
    );
    const plan2 = reloadPlan(running, both);
    expect(plan2.restartNeeded).toEqual([{ section: 'authz', line: 11 }]);
    expect(plan2.apply.authz).toEqual({ addresses: ['127.0.0.1:9191'], maxOutstanding: 64 });
  });

  it('names restart-only edits with their line and keeps the running values', () => {
    const edited = parseConfig(
      base
        .replace('https://idp.example.com', 'https://other.example.com')
        .replace('127.0.0.1:9191', '127.0.0.1:9192')
        .replace('name: a', 'name: b'),
      '/etc/chaperone/chaperone.yaml',
    );
    const plan = reloadPlan(running, edited);
    expect(plan.restartNeeded).toEqual([
      { section: 'identity', line: 2 },
      { section: 'authz', line: 11 },
    ]);
    expect(describeRestartNeeded(plan.restartNeeded)).toBe('identity (line 2), authz (line 11)');
    expect(plan.apply.identity).toEqual(running.identity);
    expect(plan.apply.authz).toEqual(running.authz);
    expect(plan.apply.targets[0]?.name).toBe('b');
  });
});
