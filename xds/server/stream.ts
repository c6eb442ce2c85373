// What both ADS variants share: a stream's status shape, the events the server emits, the one
// interface the server drives a stream through, and what a stream may ask of its server. Kept apart
// from the server so the stream variants and the server do not import each other.
import type { Logger } from 'pino';
import { SHORT_NAME, type TypeUrl } from './resource-types.ts';
import type { XdsSnapshot } from './snapshot.ts';

/** Sent as `control_plane.identifier` in every discovery response. */
export const CONTROL_PLANE_ID = 'chaperone';

export interface NackRecord {
  typeUrl: string;
  version: string;
  message: string;
  at: Date;
}

export interface StreamStatus {
  streamId: string;
  nodeId: string;
  mode: 'sotw' | 'delta';
  connectedAt: Date;
  acked: Record<string, string | null>;
  lastNack: NackRecord | null;
}

export interface AdsEvents {
  /** A discovery response written to a client (metrics count them per node). */
  push: [{ nodeId: string; typeUrl: string; version: string }];
  ack: [{ nodeId: string; typeUrl: string; version: string }];
  nack: [{ nodeId: string } & NackRecord];
}

/** One ADS stream, either protocol variant, as the server drives it. */
export interface XdsStream {
  readonly id: string;
  readonly nodeId: string;
  sync(): void;
  close(): void;
  status(): StreamStatus;
  isCurrent(): boolean;
}

/** A stream's status, whichever variant: what each type's client last acknowledged, the last NACK. */
export function streamStatus(
  s: { id: string; nodeId: string; connectedAt: Date; lastNack: NackRecord | null },
  mode: StreamStatus['mode'],
  types: ReadonlyMap<string, { ackedVersion: string | null }>,
): StreamStatus {
  const acked: Record<string, string | null> = {};
  for (const [t, st] of types) acked[SHORT_NAME[t as TypeUrl] ?? t] = st.ackedVersion;
  return { streamId: s.id, nodeId: s.nodeId, mode, connectedAt: s.connectedAt, acked, lastNack: s.lastNack };
}

/** What a stream needs from the server that owns it. */
export interface StreamHost {
  readonly log: Logger;
  snapshotFor(nodeId: string): XdsSnapshot | null;
  emit<K extends keyof AdsEvents>(event: K, ...args: AdsEvents[K]): boolean;
}
