// The gateway's component runner: components start in the listed order, a failed start rolls back
// the ones already running in reverse (the failed one included, for what it half-started), /status is
// composed from what is running, and stop goes in reverse even when one stop fails.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { type GatewayComponent, runComponents } from '../../gateway/component.ts';
import { START_ORDER, startOrderNames } from '../../gateway/gateway.ts';
import { PROJECT_ROOT } from '../../lib/tools.ts';
import { waitFor } from '../support/wait.ts';

const silent = pino({ level: 'silent' });

function fake(name: string, log: string[], o: { failStart?: boolean; failStop?: boolean } = {}) {
  let up = false;
  const c: GatewayComponent<{ seen: string[] }> = {
    name,
    async start(ctx) {
      log.push(`start ${name} after [${ctx.seen.join(',')}]`);
      if (o.failStart) throw new Error(`${name} cannot start`);
      up = true;
      ctx.seen.push(name);
    },
    async stop() {
      log.push(`stop ${name}`);
      if (o.failStop) throw new Error(`${name} cannot stop`);
      up = false;
    },
    status: () => (up ? { [name]: { up } } : null),
  };
  return c;
}

describe('runComponents', () => {
  it('starts in order, each seeing what the earlier ones made, and stops in reverse', async () => {
    const log: string[] = [];
    const { running, started } = runComponents(
      [fake('a', log), fake('b', log), fake('c', log)],
      { seen: [] },
      silent,
    );
    await started;
    expect(running.names()).toEqual(['a', 'b', 'c']);
    expect(running.status()).toEqual({ a: { up: true }, b: { up: true }, c: { up: true } });
    await running.stop();
    expect(log).toEqual([
      'start a after []',
      'start b after [a]',
      'start c after [a,b]',
      'stop c',
      'stop b',
      'stop a',
    ]);
    expect(running.names()).toEqual([]);
  });

  it('rolls back in reverse when a start fails, and rethrows that failure', async () => {
    const log: string[] = [];
    const { running, started } = runComponents(
      [fake('a', log), fake('b', log), fake('c', log, { failStart: true }), fake('d', log)],
      { seen: [] },
      silent,
    );
    await expect(started).rejects.toThrow('c cannot start');
    expect(log).toEqual([
      'start a after []',
      'start b after [a]',
      'start c after [a,b]',
      'stop c',
      'stop b',
      'stop a',
    ]);
    expect(running.names()).toEqual([]);
  });

  it('goes on stopping the others when one stop fails', async () => {
    const log: string[] = [];
    const { running, started } = runComponents(
      [fake('a', log), fake('b', log, { failStop: true }), fake('c', log)],
      { seen: [] },
      silent,
    );
    await started;
    await running.stop();
    expect(log.filter((l) => l.startsWith('stop'))).toEqual(['stop c', 'stop b', 'stop a']);
  });

  it('composes status from the running components only, while starting', async () => {
    const log: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const slow: GatewayComponent<{ seen: string[] }> = { ...fake('slow', log), start: () => gate };
    const { running, started } = runComponents([fake('a', log), slow], { seen: [] }, silent);
    await waitFor(() => running.names().length === 1, { what: 'a to be running' });
    expect(running.status()).toEqual({ a: { up: true } });
    release();
    await started;
    await running.stop();
  });
});

describe('START_ORDER', () => {
  it('is the documented order of `chaperone up`', () => {
    expect(startOrderNames()).toEqual([
      'telemetry',
      'audit',
      'fleet state',
      'notifications',
      'http api',
      'data plane',
      'authz server',
      'control plane',
      'envoy',
    ]);
    expect(new Set(START_ORDER.map((make) => make().name)).size).toBe(START_ORDER.length);
  });

  it('is quoted by docs/architecture.md', () => {
    const doc = readFileSync(join(PROJECT_ROOT, 'docs/architecture.md'), 'utf8').replace(/\s+/g, ' ');
    expect(doc).toContain(
      startOrderNames()
        .map((n) => `\`${n}\``)
        .join(' → '),
    );
  });
});
