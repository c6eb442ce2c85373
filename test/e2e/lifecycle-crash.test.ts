// The gateway survives crashes, as an operator would see them (issue 14): a SIGKILLed `chaperone up`
// takes its Envoy with it (no orphan holding the listener, admin socket or ports) and starts again at
// once in the same directory on the same ports; an Envoy killed under a running gateway is noticed,
// `/readyz` turns false and the status line says so, no request reaches the upstream while it is down,
// and a new Envoy is started and serves again — every 200 seen carries an authz decision.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  apiFetch,
  devToken,
  type GatewayProcess,
  gatewaySockets,
  startGatewayProcess,
} from '../support/gateway-process.ts';
import { waitFor } from '../support/wait.ts';

let gw: GatewayProcess;
const tokens: Record<string, string> = {};

async function envoyStatus(
  g: GatewayProcess,
): Promise<{ pid: number | null; state: string; restarts: number }> {
  const res = await apiFetch(g, tokens['carol']!, '/status');
  return ((await res.json()) as { envoy: { pid: number | null; state: string; restarts: number } }).envoy;
}

/** Alive and not a zombie: a killed child of a dead parent may linger as a zombie, holding nothing. */
async function running(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => null);
  return stat !== null && !/^\S+ \(.*\) [ZX] /.test(stat);
}

async function demo(g: GatewayProcess, token = tokens['alice']): Promise<Response> {
  return fetch(`${g.egress}/demo/items`, { headers: { authorization: `Bearer ${token}` } });
}

beforeAll(async () => {
  gw = await startGatewayProcess();
  for (const u of ['alice', 'carol']) tokens[u] = await devToken(gw, u);
}, 120_000);

afterAll(async () => {
  await gw?.cleanup();
});

describe('Envoy killed under a running gateway', () => {
  it('is restarted; readyz is false and no request passes meanwhile; then it serves again', async () => {
    expect((await demo(gw)).status).toBe(200);
    const before = await envoyStatus(gw);
    expect(before).toMatchObject({ state: 'running', restarts: 0 });
    const outcomes: { status: number | null; decision: string | null }[] = [];
    let readyzFalse = false;
    process.kill(before.pid!, 'SIGKILL');
    // Poll the egress listener and /readyz until a new Envoy serves: every request is recorded.
    await waitFor(
      async () => {
        if ((await fetch(`${gw.api}/readyz`)).status === 503) readyzFalse = true;
        const res = await demo(gw).catch(() => null);
        outcomes.push({
          status: res?.status ?? null,
          decision: res?.headers.get('x-chaperone-decision-id') ?? null,
        });
        await res?.body?.cancel();
        if (!readyzFalse || res?.status !== 200) return false;
        // The new Envoy may serve a moment before its supervisor has seen it ready: wait for both.
        const now = await envoyStatus(gw);
        return now.state === 'running' && now.pid !== before.pid;
      },
      { what: 'a restarted Envoy serving again', timeoutMs: 30_000, intervalMs: 20 },
    );
    expect(readyzFalse).toBe(true);
    // While Envoy was down the listener was closed: requests failed to connect (null), none was served
    // without a decision.
    expect(outcomes.some((o) => o.status === null)).toBe(true);
    for (const o of outcomes.filter((x) => x.status === 200)) expect(o.decision).toMatch(/^[0-9a-f-]{36}$/);
    const after = await envoyStatus(gw);
    expect(after).toMatchObject({ state: 'running', restarts: 1 });
    expect(after.pid).not.toBe(before.pid);
    expect(await running(before.pid!)).toBe(false);
    expect(gw.output()).toMatch(/✗ envoy\s+exited \(signal SIGKILL\); restarting in \d+ ms/);
    expect(gw.output()).toMatch(/✓ envoy\s+restarted \(pid \d+, restart 1\); ready again/);
    expect((await fetch(`${gw.api}/readyz`)).status).toBe(200);
  });
});

describe('chaperone up SIGKILLed', () => {
  it('takes its Envoy with it, and starts again at once on the same ports and sockets', async () => {
    const { pid: envoyPid } = await envoyStatus(gw);
    gw.signal('SIGKILL');
    await gw.exited;
    // The parent-death signal ends Envoy with the gateway: no orphan holds the listener port.
    await waitFor(async () => !(await running(envoyPid!)), {
      what: 'the orphaned Envoy to die',
      timeoutMs: 5_000,
    });
    const again = await startGatewayProcess({ dir: gw.dir, ports: gw.ports });
    try {
      expect(again.output()).toContain('chaperone is up');
      // The dev issuer is new too: a fresh token.
      const res = await demo(again, await devToken(again, 'alice'));
      expect(res.status).toBe(200);
      const pidFile = JSON.parse(await readFile(join(gw.dir, 'envoy', 'chaperone-local.pid'), 'utf8')) as {
        pid: number;
      };
      expect(pidFile.pid).not.toBe(envoyPid);
      // Same socket paths as before (the stale files of the killed run were replaced).
      expect(again.output()).toContain(`unix sockets in ${join(gw.dir, 'sockets')}`);
      expect(gatewaySockets(again)).toEqual(gatewaySockets(gw));
    } finally {
      await again.stop();
    }
  }, 120_000);
});
