// Incremental (delta) ADS: per stream and type, the server keeps what the client holds — name →
// resource version, seeded from `initial_resource_versions` when Envoy reconnects — and sends only the
// resources that changed and the names that went away. Versions are the resources' content hashes, so
// a resource that did not change is never re-sent, whichever control plane of a fleet the Envoy is on.
// The same ordering rule as state of the world: additions clusters → endpoints → listeners → routes,
// then removals in reverse. A NACKed response is rolled back in the server's view of the client, its
// resource versions are never resent, and the error is logged and shown in status.
import { randomUUID } from 'node:crypto';
import type * as grpc from '@grpc/grpc-js';
import { ADD_ORDER, REMOVE_ORDER, SHORT_NAME, type TypeUrl, WILDCARD_TYPES } from './resource-types.ts';
import type { EncodedResource } from './snapshot.ts';
import {
  CONTROL_PLANE_ID,
  type NackRecord,
  type StreamHost,
  type StreamStatus,
  streamStatus,
  type XdsStream,
} from './stream.ts';

export interface DeltaDiscoveryRequest {
  node?: { id?: string; cluster?: string };
  typeUrl?: string;
  resourceNamesSubscribe?: string[];
  resourceNamesUnsubscribe?: string[];
  initialResourceVersions?: Record<string, string>;
  responseNonce?: string;
  errorDetail?: { code?: number; message?: string };
}

export interface DeltaDiscoveryResponse {
  systemVersionInfo: string;
  resources: { name: string; version: string; resource: { type_url: string; value: Uint8Array } }[];
  typeUrl: string;
  removedResources: string[];
  nonce: string;
  controlPlane: { identifier: string };
}

interface Sent {
  /** The client's versions before this response, to restore if it is rejected. */
  before: Map<string, string | undefined>;
  systemVersion: string;
}

interface DeltaTypeState {
  wildcard: boolean;
  names: Set<string>;
  subscribed: boolean;
  /** name → version the client holds (or was sent and has not rejected). */
  known: Map<string, string>;
  inFlight: Map<string, Sent>;
  /** `name\0version` pairs the client rejected: not sent again. */
  rejected: Set<string>;
  ackedVersion: string | null;
}

export class DeltaAdsStream implements XdsStream {
  readonly id = randomUUID();
  readonly connectedAt = new Date();
  readonly mode = 'delta' as const;
  nodeId = '';
  lastNack: NackRecord | null = null;
  private readonly types = new Map<string, DeltaTypeState>();
  private closed = false;

  constructor(
    private readonly call: grpc.ServerDuplexStream<DeltaDiscoveryRequest, DeltaDiscoveryResponse>,
    private readonly server: StreamHost,
  ) {}

  onRequest(req: DeltaDiscoveryRequest): void {
    if (!this.nodeId) this.nodeId = req.node?.id || 'unknown';
    const typeUrl = req.typeUrl ?? '';
    if (!(ADD_ORDER as string[]).includes(typeUrl)) {
      this.server.log.debug(
        { node: this.nodeId, typeUrl },
        'xds: delta request for an unserved type ignored',
      );
      return;
    }
    let st = this.types.get(typeUrl);
    const first = !st;
    if (!st) {
      st = {
        wildcard: false,
        names: new Set(),
        subscribed: true,
        known: new Map(Object.entries(req.initialResourceVersions ?? {})),
        inFlight: new Map(),
        rejected: new Set(),
        ackedVersion: null,
      };
      this.types.set(typeUrl, st);
    }
    if (req.responseNonce) this.settle(typeUrl as TypeUrl, st, req);

    const subscribe = req.resourceNamesSubscribe ?? [];
    // Legacy wildcard: the first request of LDS/CDS naming nothing asks for everything.
    if (first && subscribe.length === 0 && WILDCARD_TYPES.has(typeUrl)) st.wildcard = true;
    for (const n of subscribe) {
      if (n === '*') st.wildcard = true;
      else st.names.add(n);
    }
    for (const n of req.resourceNamesUnsubscribe ?? []) {
      if (n === '*') st.wildcard = false;
      else st.names.delete(n);
      // The client drops what it unsubscribed from; sending it again later must be a full update.
      if (!st.wildcard) st.known.delete(n);
    }
    this.push([typeUrl as TypeUrl], 'both');
  }

  /** An ACK or NACK of one of our responses. */
  private settle(typeUrl: TypeUrl, st: DeltaTypeState, req: DeltaDiscoveryRequest): void {
    const nonce = req.responseNonce!;
    const sent = st.inFlight.get(nonce);
    if (!sent) return; // answers a response from before a reconnect
    st.inFlight.delete(nonce);
    if (req.errorDetail && (req.errorDetail.message || req.errorDetail.code)) {
      for (const [name, before] of sent.before) {
        const rejectedVersion = st.known.get(name);
        if (rejectedVersion !== undefined) st.rejected.add(`${name}\0${rejectedVersion}`);
        if (before === undefined) st.known.delete(name);
        else st.known.set(name, before);
      }
      this.lastNack = {
        typeUrl,
        version: sent.systemVersion,
        message: req.errorDetail.message ?? `code ${req.errorDetail.code}`,
        at: new Date(),
      };
      this.server.log.warn(
        {
          node: this.nodeId,
          type: SHORT_NAME[typeUrl],
          version: sent.systemVersion,
          error: this.lastNack.message,
        },
        'xds: delta update rejected by Envoy (NACK); keeping its last good config',
      );
      this.server.emit('nack', { nodeId: this.nodeId, ...this.lastNack });
      return;
    }
    st.ackedVersion = sent.systemVersion;
    this.server.emit('ack', { nodeId: this.nodeId, typeUrl, version: sent.systemVersion });
  }

  private desired(typeUrl: TypeUrl, st: DeltaTypeState): Map<string, EncodedResource> {
    const all = this.server.snapshotFor(this.nodeId)?.get(typeUrl) ?? new Map<string, EncodedResource>();
    if (st.wildcard) return new Map(all);
    const out = new Map<string, EncodedResource>();
    for (const n of st.names) {
      const r = all.get(n);
      if (r) out.set(n, r);
    }
    return out;
  }

  sync(): void {
    const removals = ADD_ORDER.some((t) => {
      const st = this.types.get(t);
      if (!st) return false;
      const want = this.desired(t, st);
      return [...st.known.keys()].some((n) => !want.has(n));
    });
    if (removals) {
      this.push(ADD_ORDER, 'upsert');
      this.push(REMOVE_ORDER, 'remove');
    } else this.push(ADD_ORDER, 'both');
  }

  private push(order: TypeUrl[], phase: 'upsert' | 'remove' | 'both'): void {
    const snapshot = this.server.snapshotFor(this.nodeId);
    if (!snapshot || this.closed) return;
    for (const typeUrl of order) {
      const st = this.types.get(typeUrl);
      if (!st) continue;
      const want = this.desired(typeUrl, st);
      const upserts =
        phase === 'remove'
          ? []
          : [...want.values()].filter(
              (r) => st.known.get(r.name) !== r.hash && !st.rejected.has(`${r.name}\0${r.hash}`),
            );
      const removed = phase === 'upsert' ? [] : [...st.known.keys()].filter((n) => !want.has(n));
      if (upserts.length === 0 && removed.length === 0) continue;
      const before = new Map<string, string | undefined>();
      for (const r of upserts) {
        before.set(r.name, st.known.get(r.name));
        st.known.set(r.name, r.hash);
      }
      for (const n of removed) {
        before.set(n, st.known.get(n));
        st.known.delete(n);
      }
      const nonce = randomUUID();
      st.inFlight.set(nonce, { before, systemVersion: snapshot.version });
      this.call.write({
        systemVersionInfo: snapshot.version,
        typeUrl,
        nonce,
        resources: upserts.map((r) => ({
          name: r.name,
          version: r.hash,
          resource: { type_url: typeUrl, value: r.bytes },
        })),
        removedResources: removed,
        controlPlane: { identifier: CONTROL_PLANE_ID },
      });
      this.server.emit('push', { nodeId: this.nodeId, typeUrl, version: snapshot.version });
    }
  }

  close(): void {
    this.closed = true;
  }

  status(): StreamStatus {
    return streamStatus(this, this.mode, this.types);
  }

  /** Nothing unacknowledged, and the client holds exactly what the snapshot has for it. */
  isCurrent(): boolean {
    if (!this.server.snapshotFor(this.nodeId) || this.types.size === 0) return false;
    for (const [t, st] of this.types) {
      if (st.inFlight.size > 0) return false;
      const want = this.desired(t as TypeUrl, st);
      if (want.size !== st.known.size) return false;
      for (const [name, r] of want) if (st.known.get(name) !== r.hash) return false;
    }
    return true;
  }
}
