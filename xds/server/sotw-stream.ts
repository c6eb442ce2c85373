// State-of-the-world ADS stream: per type, what the client has been sent, acknowledged and rejected.
// One ADS stream is processed in order by Envoy, so sending clusters → endpoints → listeners → routes
// back to back applies them in that order; when a change removes resources, a first pass keeps the
// old ones alongside the new and a second pass, in reverse order, drops them, so nothing ever points at
// a missing cluster or route. A NACKed version is never resent.
import { createHash, randomUUID } from 'node:crypto';
import type * as grpc from '@grpc/grpc-js';
import { ADD_ORDER, REMOVE_ORDER, SHORT_NAME, type TypeUrl, WILDCARD_TYPES } from './resource-types.ts';
import type { EncodedResource, XdsSnapshot } from './snapshot.ts';
import {
  CONTROL_PLANE_ID,
  type NackRecord,
  type StreamHost,
  type StreamStatus,
  streamStatus,
  type XdsStream,
} from './stream.ts';

export interface DiscoveryRequest {
  versionInfo?: string;
  node?: { id?: string; cluster?: string };
  resourceNames?: string[];
  typeUrl?: string;
  responseNonce?: string;
  errorDetail?: { code?: number; message?: string };
}

export interface DiscoveryResponse {
  versionInfo: string;
  resources: { type_url: string; value: Uint8Array }[];
  typeUrl: string;
  nonce: string;
  controlPlane: { identifier: string };
}

interface TypeState {
  /** null: wildcard (everything); otherwise the names the client asked for. */
  names: Set<string> | null;
  subscribed: boolean;
  sentVersion: string | null;
  sentNonce: string | null;
  sent: Map<string, EncodedResource>;
  ackedVersion: string | null;
  nackedVersion: string | null;
}

function versionOf(resources: Iterable<EncodedResource>): string {
  const h = createHash('sha256');
  for (const r of [...resources].sort((a, b) => (a.name < b.name ? -1 : 1)))
    h.update(`${r.name}\0${r.hash}\n`);
  return h.digest('hex').slice(0, 16);
}

export class SotwAdsStream implements XdsStream {
  readonly id = randomUUID();
  readonly connectedAt = new Date();
  nodeId = '';
  lastNack: NackRecord | null = null;
  private readonly types = new Map<string, TypeState>();
  private closed = false;

  constructor(
    private readonly call: grpc.ServerDuplexStream<DiscoveryRequest, DiscoveryResponse>,
    private readonly server: StreamHost,
  ) {}

  private state(typeUrl: string): TypeState {
    let st = this.types.get(typeUrl);
    if (!st) {
      st = {
        names: null,
        subscribed: false,
        sentVersion: null,
        sentNonce: null,
        sent: new Map(),
        ackedVersion: null,
        nackedVersion: null,
      };
      this.types.set(typeUrl, st);
    }
    return st;
  }

  onRequest(req: DiscoveryRequest): void {
    if (!this.nodeId) this.nodeId = req.node?.id || 'unknown';
    const typeUrl = req.typeUrl ?? '';
    if (!(ADD_ORDER as string[]).includes(typeUrl)) {
      this.server.log.debug({ node: this.nodeId, typeUrl }, 'xds: request for an unserved type ignored');
      return;
    }
    const st = this.state(typeUrl);
    const nonce = req.responseNonce ?? '';
    if (nonce && nonce !== st.sentNonce) return; // stale: answers an older response
    if (nonce) {
      if (req.errorDetail && (req.errorDetail.message || req.errorDetail.code)) {
        st.nackedVersion = st.sentVersion;
        this.lastNack = {
          typeUrl,
          version: st.sentVersion ?? '',
          message: req.errorDetail.message ?? `code ${req.errorDetail.code}`,
          at: new Date(),
        };
        this.server.log.warn(
          {
            node: this.nodeId,
            type: SHORT_NAME[typeUrl as TypeUrl],
            version: st.sentVersion,
            error: this.lastNack.message,
          },
          'xds: config rejected by Envoy (NACK); keeping its last good config',
        );
        this.server.emit('nack', { nodeId: this.nodeId, ...this.lastNack });
      } else if (req.versionInfo) {
        st.ackedVersion = req.versionInfo;
        this.server.emit('ack', { nodeId: this.nodeId, typeUrl, version: req.versionInfo });
      }
    }
    const names = req.resourceNames ?? [];
    const newNames = WILDCARD_TYPES.has(typeUrl) && names.length === 0 ? null : new Set(names);
    const changed =
      !st.subscribed ||
      (newNames === null) !== (st.names === null) ||
      (newNames !== null &&
        st.names !== null &&
        (newNames.size !== st.names.size || [...newNames].some((n) => !st.names!.has(n))));
    st.subscribed = true;
    st.names = newNames;
    if (changed) this.push([typeUrl as TypeUrl], 'exact');
  }

  /** Brings the client to the current snapshot, in safe order. */
  sync(): void {
    const snapshot = this.server.snapshotFor(this.nodeId);
    if (!snapshot) return;
    const hasRemovals = ADD_ORDER.some((t) => {
      const st = this.types.get(t);
      if (!st?.subscribed) return false;
      const desired = this.desired(snapshot, t, st);
      return [...st.sent.keys()].some((n) => !desired.has(n) && (st.names === null || st.names.has(n)));
    });
    if (hasRemovals) {
      this.push(ADD_ORDER, 'union');
      this.push(REMOVE_ORDER, 'exact');
    } else this.push(ADD_ORDER, 'exact');
  }

  private desired(snapshot: XdsSnapshot, typeUrl: TypeUrl, st: TypeState): Map<string, EncodedResource> {
    const all = snapshot.get(typeUrl);
    if (st.names === null) return new Map(all);
    const out = new Map<string, EncodedResource>();
    for (const name of st.names) {
      const r = all.get(name);
      if (r) out.set(name, r);
    }
    return out;
  }

  private push(order: TypeUrl[], mode: 'exact' | 'union'): void {
    const snapshot = this.server.snapshotFor(this.nodeId);
    if (!snapshot || this.closed) return;
    for (const typeUrl of order) {
      const st = this.types.get(typeUrl);
      if (!st?.subscribed) continue;
      const content = this.desired(snapshot, typeUrl, st);
      if (mode === 'union') {
        for (const [name, r] of st.sent)
          if (!content.has(name) && (st.names === null || st.names.has(name))) content.set(name, r);
      }
      const version = versionOf(content.values());
      if (version === st.sentVersion || version === st.nackedVersion) continue;
      const nonce = randomUUID();
      st.sentVersion = version;
      st.sentNonce = nonce;
      st.sent = content;
      this.call.write({
        versionInfo: version,
        typeUrl,
        nonce,
        // google.protobuf.Any comes from protobufjs' built-in descriptors, which keep proto names.
        resources: [...content.values()].map((r) => ({ type_url: typeUrl, value: r.bytes })),
        controlPlane: { identifier: CONTROL_PLANE_ID },
      });
      this.server.emit('push', { nodeId: this.nodeId, typeUrl, version });
    }
  }

  close(): void {
    this.closed = true;
  }

  status(): StreamStatus {
    return streamStatus(this, 'sotw', this.types);
  }

  /** True when the client acknowledged exactly what the current snapshot holds for it. */
  isCurrent(): boolean {
    const snapshot = this.server.snapshotFor(this.nodeId);
    if (!snapshot) return false;
    for (const [t, st] of this.types) {
      if (!st.subscribed) continue;
      const want = versionOf(this.desired(snapshot, t as TypeUrl, st).values());
      if (st.ackedVersion !== want) return false;
    }
    return this.types.size > 0;
  }
}
