// A snapshot's resources are encoded once, when the snapshot is built, whatever the number of streams
// and nodes: every response of every stream — state of the world and delta, the default snapshot and a
// node's own — carries the very byte arrays the snapshot holds, and the encoder runs once per resource.
// The ADS server is driven through its real gRPC handlers; only the transport is a recording stand-in
// (bytes that crossed a real connection could not be compared by identity).
import { EventEmitter } from 'node:events';
import type * as grpc from '@grpc/grpc-js';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../config/load-config.ts';
import { buildIr } from '../../xds/ir/build-ir.ts';
import { AdsServer } from '../../xds/server/ads-server.ts';
import { TYPE, type TypeUrl } from '../../xds/server/resource-types.ts';
import { encodeEnvoyResource, type ResourceEncoder, type XdsSnapshot } from '../../xds/server/snapshot.ts';
import { translate } from '../../xds/translate/translate.ts';

let encodings = 0;
const countingEncoder: ResourceEncoder = (messageName, resource) => {
  encodings++;
  return encodeEnvoyResource(messageName, resource);
};

function snapshotOf(upstreamPort: number): XdsSnapshot {
  const config = parseConfig(`
targets:
  - { name: demo, upstream: "http://127.0.0.1:${upstreamPort}" }
  - { name: api, upstream: "https://api.example.com", match: { path_prefix: /api/ } }
`);
  return translate(buildIr(config), countingEncoder).snapshot;
}

function size(s: XdsSnapshot): number {
  let n = 0;
  for (const byName of s.resources.values()) n += byName.size;
  return n;
}

/** A server-side duplex call that records what the server writes. */
class RecordedCall extends EventEmitter {
  readonly written: Record<string, any>[] = [];
  write(message: Record<string, any>): boolean {
    this.written.push(message);
    return true;
  }
  end(): void {}
}

type Handler = (call: RecordedCall) => void;

function adsHandlers(ads: AdsServer): { sotw: Handler; delta: Handler } {
  let handlers: Record<string, Handler> = {};
  ads.addToServer({
    addService: (_service: unknown, impl: Record<string, Handler>) => {
      handlers = impl;
    },
  } as unknown as grpc.Server);
  return { sotw: handlers['StreamAggregatedResources']!, delta: handlers['DeltaAggregatedResources']! };
}

const NAMED: Partial<Record<TypeUrl, string[]>> = {
  [TYPE.endpoint]: ['target/demo'],
  [TYPE.route]: ['egress'],
};
const ALL_TYPES: TypeUrl[] = [TYPE.cluster, TYPE.endpoint, TYPE.listener, TYPE.route];

function openSotw(handler: Handler, nodeId: string): RecordedCall {
  const call = new RecordedCall();
  handler(call);
  for (const typeUrl of ALL_TYPES)
    call.emit('data', { node: { id: nodeId }, typeUrl, resourceNames: NAMED[typeUrl] ?? [] });
  return call;
}

function openDelta(handler: Handler, nodeId: string): RecordedCall {
  const call = new RecordedCall();
  handler(call);
  for (const typeUrl of ALL_TYPES)
    call.emit('data', { node: { id: nodeId }, typeUrl, resourceNamesSubscribe: NAMED[typeUrl] ?? [] });
  return call;
}

/** Every resource byte array a call received, from either protocol variant. */
function receivedBytes(call: RecordedCall, from = 0): Uint8Array[] {
  return call.written
    .slice(from)
    .flatMap((m) => (m['resources'] as any[]).map((r) => (r.resource ? r.resource.value : r.value)));
}

function snapshotBytes(s: XdsSnapshot): Set<Uint8Array> {
  return new Set([...s.resources.values()].flatMap((byName) => [...byName.values()].map((r) => r.bytes)));
}

describe('each snapshot is encoded once', () => {
  it('for every stream and node, in both ADS variants, initially and after an update', () => {
    const ads = new AdsServer(pino({ level: 'silent' }));
    const { sotw, delta } = adsHandlers(ads);
    encodings = 0;
    const shared = snapshotOf(8080);
    const own = snapshotOf(8081);
    expect(size(shared)).toBeGreaterThanOrEqual(5);
    expect(encodings).toBe(size(shared) + size(own));
    ads.setSnapshot(shared);
    ads.setSnapshot(own, 'node-b');

    const streams = [
      { node: 'node-a', snapshot: shared, call: openSotw(sotw, 'node-a') },
      { node: 'node-a', snapshot: shared, call: openSotw(sotw, 'node-a') },
      { node: 'node-a', snapshot: shared, call: openDelta(delta, 'node-a') },
      { node: 'node-c', snapshot: shared, call: openDelta(delta, 'node-c') },
      { node: 'node-b', snapshot: own, call: openSotw(sotw, 'node-b') },
      { node: 'node-b', snapshot: own, call: openDelta(delta, 'node-b') },
    ];
    for (const s of streams) {
      const got = receivedBytes(s.call);
      // Every resource of its snapshot arrived, as the snapshot's own byte array (identity, not equality).
      expect(new Set(got)).toEqual(snapshotBytes(s.snapshot));
    }
    expect(encodings).toBe(size(shared) + size(own));

    const before = streams.map((s) => s.call.written.length);
    const next = snapshotOf(9090);
    const afterBuild = encodings;
    ads.setSnapshot(next);
    const nextBytes = snapshotBytes(next);
    for (const [i, s] of streams.entries()) {
      const got = receivedBytes(s.call, before[i]);
      if (s.node === 'node-b') expect(got).toEqual([]);
      else {
        expect(got.length).toBeGreaterThan(0);
        for (const bytes of got) expect(nextBytes.has(bytes)).toBe(true);
      }
    }
    expect(encodings).toBe(afterBuild);
  });
});
