// Load shedding in front of the Check pipeline, for either transport. Past capacity a Check answered
// late is worse than one answered "no" at once: Envoy gives up after its ext_authz timeout and answers
// 503 anyway, while the late Check still costs a full evaluation, an audit record of an ALLOW nobody
// received, and delays every Check behind it. So:
// - at most `maxInFlight` Checks run at once; one more is answered at once with 503 ERR_OVERLOADED,
//   before any work (no evaluation, no record: nothing was decided);
// - while the event loop runs late by more than `maxLagMs`, a turn of the loop admits only a few Checks
//   and sheds the rest the same way: a late loop with many Checks to read means they queued where no
//   counter sees them (in the socket, in the gRPC library), already spending their deadline, and
//   answering them cheaply is what lets the loop catch up. (One slow turn with a Check or two — a GC
//   pause, a busy machine — sheds nothing.)
// - while the loop is behind, a Check that waited more than `maxLagMs` before this process read it is
//   shed too. Its wait is its age on Envoy's clock (`attributes.request.time`, when Envoy received the
//   request) less the smallest age seen while the loop was keeping up, so that the network and any
//   offset between the two hosts' clocks cancel out. A saturated loop leaves Checks in the socket,
//   where neither counter above sees them; this does.
// - a Check whose caller has gone (cancelled, or past its `grpc-timeout`) is dropped by the pipeline at
//   its next step — never evaluated, never recorded — and counted as abandoned (CallState below).
// No state outlives a Check, so recovery is immediate when load drops.
import { denyOf } from '../../contracts/errors.ts';
import { toStruct } from '../../lib/proto-struct.ts';
import type { CheckResponseMessage } from '../result-mapper.ts';

/** What the transport knows of one call while the pipeline works on it. */
export interface CallState {
  /** True once nobody waits for the answer: the client cancelled, or the call's deadline passed. */
  readonly abandoned: boolean;
  /** Envoy's ext_authz span context, when the transport carried one in the call's metadata. */
  readonly traceparent?: string;
}

/** A call no transport tracks (tests, direct callers): never abandoned. */
export const UNTRACKED_CALL: CallState = { abandoned: false };

/** A call that ends at `deadlineMs` (Date.now() clock; Infinity for none) or when `cancelled()` says so. */
export function callState(cancelled: () => boolean, deadlineMs: number): CallState {
  return {
    get abandoned() {
      return cancelled() || Date.now() >= deadlineMs;
    },
  };
}

export interface AdmissionOptions {
  /** Checks allowed to run at once; beyond it, ERR_OVERLOADED. */
  maxInFlight: number;
  /** Event-loop lag beyond which new Checks are shed (0: never). */
  maxLagMs: number;
  /** Called for each shed Check (metrics). */
  onShed?: () => void;
}

export interface AdmissionStats {
  inFlight: number;
  maxInFlight: number;
  /** Shed because `maxInFlight` Checks were running. */
  shed: number;
  /** Shed because the event loop was late (a backlog in one turn, or a Check that waited too long). */
  shedLate: number;
  /** How late the event loop ran at its last turn, in ms. */
  lagMs: number;
  maxLagMs: number;
}

/**
 * How long Checks wait before this process reads them, estimated from Envoy's request timestamps:
 * age (now − attributes.request.time) less the baseline, the smallest age seen while the loop kept up
 * (kept over two windows of BASELINE_WINDOW_MS, so it follows clock drift but survives an overload).
 */
export class QueueDelay {
  private current = Number.POSITIVE_INFINITY;
  private previous = Number.POSITIVE_INFINITY;
  private windowEnds = 0;

  /** The Check's estimated wait in ms (0 while there is no baseline yet). */
  observe(requestTimeMs: number, nowMs: number, calm: boolean): number {
    const age = nowMs - requestTimeMs;
    if (nowMs >= this.windowEnds) {
      this.previous = this.current;
      this.current = Number.POSITIVE_INFINITY;
      this.windowEnds = nowMs + BASELINE_WINDOW_MS;
    }
    if (calm && age < this.current) this.current = age;
    const baseline = Math.min(this.current, this.previous);
    return Number.isFinite(baseline) ? Math.max(0, age - baseline) : 0;
  }
}

const BASELINE_WINDOW_MS = 30_000;

/** Envoy's `attributes.request.time` of a CheckRequest in epoch ms, or null. */
export function requestTimeMs(request: unknown): number | null {
  const t = (request as { attributes?: { request?: { time?: { seconds?: unknown; nanos?: unknown } } } })
    ?.attributes?.request?.time;
  const seconds = Number(t?.seconds);
  if (!t || !Number.isFinite(seconds) || seconds <= 0) return null;
  return seconds * 1000 + (Number(t.nanos) || 0) / 1e6;
}

/** How often the loop's lateness is measured. */
const LAG_TICK_MS = 20;
/** Checks a turn of the loop still admits while the loop is late. */
const LATE_TURN_QUOTA = 8;

const RETRY_AFTER_SECONDS = '1';

/**
 * The answer to a shed Check: 503 with the catalog's reason and `retry-after`. No decision id: no policy
 * ran and nothing is recorded (the access log keeps the 503 and this reason code from the metadata).
 */
export function overloadedResponse(): CheckResponseMessage {
  const { status, publicReason } = denyOf('ERR_OVERLOADED');
  const header = (key: string, value: string) => ({
    header: { key, value },
    appendAction: 'OVERWRITE_IF_EXISTS_OR_ADD' as const,
  });
  return {
    // google.rpc.Code UNAVAILABLE: Envoy sends the denied response as given.
    status: { code: 14 },
    deniedResponse: {
      status: { code: status },
      headers: [header('content-type', 'application/json'), header('retry-after', RETRY_AFTER_SECONDS)],
      body: JSON.stringify({ error: 'ERR_OVERLOADED', reason: publicReason }),
    },
    dynamicMetadata: toStruct({ decision: 'deny', reason_code: 'ERR_OVERLOADED' }),
  };
}

export class Admission {
  private running = 0;
  private shedCount = 0;
  private shedLateCount = 0;
  private lag = 0;
  private timer: NodeJS.Timeout | null = null;
  /** Checks admitted in this turn of the loop while it was late (reset after the turn's I/O). */
  private lateTurn = 0;
  private turnEnds = false;
  private readonly queueDelay = new QueueDelay();

  constructor(private readonly o: AdmissionOptions) {
    if (o.maxLagMs > 0) this.measureLag(performance.now() + LAG_TICK_MS);
  }

  /**
   * A timer that notes how late it fires. After a long turn the timers run before the I/O of the next
   * one, so the Checks read from that backlog already see the lag.
   */
  private measureLag(due: number): void {
    this.timer = setTimeout(() => {
      const now = performance.now();
      this.lag = Math.max(0, now - due);
      this.measureLag(now + LAG_TICK_MS);
    }, LAG_TICK_MS);
    this.timer.unref();
  }

  /**
   * Runs `check` if there is room, else answers ERR_OVERLOADED at once. `requestTime`: Envoy's
   * timestamp of the request (requestTimeMs), for the wait estimate.
   */
  async run(
    check: () => Promise<CheckResponseMessage>,
    requestTime: number | null = null,
  ): Promise<CheckResponseMessage> {
    if (this.running >= this.o.maxInFlight) return this.shed(false);
    if (this.o.maxLagMs > 0 && this.late(requestTime)) return this.shed(true);
    this.running++;
    try {
      return await check();
    } finally {
      this.running--;
    }
  }

  /** The loop is behind and this Check waited too long, or its turn's quota is spent. */
  private late(requestTime: number | null): boolean {
    const behind = this.lag > LAG_TICK_MS;
    if (requestTime !== null) {
      const waited = this.queueDelay.observe(requestTime, Date.now(), !behind);
      if (behind && waited > this.o.maxLagMs) return true;
    }
    return this.lag > this.o.maxLagMs && this.lateQuotaSpent();
  }

  private shed(late: boolean): CheckResponseMessage {
    if (late) this.shedLateCount++;
    else this.shedCount++;
    this.o.onShed?.();
    return overloadedResponse();
  }

  /** Counts this turn's Checks while the loop is late; true once the turn's quota is used up. */
  private lateQuotaSpent(): boolean {
    if (!this.turnEnds) {
      this.turnEnds = true;
      setImmediate(() => {
        this.turnEnds = false;
        this.lateTurn = 0;
      });
    }
    return ++this.lateTurn > LATE_TURN_QUOTA;
  }

  stats(): AdmissionStats {
    return {
      inFlight: this.running,
      maxInFlight: this.o.maxInFlight,
      shed: this.shedCount,
      shedLate: this.shedLateCount,
      lagMs: Math.round(this.lag),
      maxLagMs: this.o.maxLagMs,
    };
  }

  /** Stops measuring the loop. */
  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}
