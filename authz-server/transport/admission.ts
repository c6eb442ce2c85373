// Load shedding in front of the Check pipeline, for either transport. Past capacity a Check answered
// late is worse than one answered "no" at once: Envoy gives up after its ext_authz timeout and answers
// 503 anyway, while the late Check still costs a full evaluation, an audit record of an ALLOW nobody
// received, and delays every Check behind it. So:
// - at most `maxInFlight` Checks run at once; one more is answered at once with 503 ERR_OVERLOADED,
//   before any work (no evaluation, no record: nothing was decided);
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
  /** Called for each shed Check (metrics). */
  onShed?: () => void;
}

export interface AdmissionStats {
  inFlight: number;
  maxInFlight: number;
  shed: number;
}

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

  constructor(private readonly o: AdmissionOptions) {}

  /** Runs `check` if there is room, else answers ERR_OVERLOADED at once. */
  async run(check: () => Promise<CheckResponseMessage>): Promise<CheckResponseMessage> {
    if (this.running >= this.o.maxInFlight) {
      this.shedCount++;
      this.o.onShed?.();
      return overloadedResponse();
    }
    this.running++;
    try {
      return await check();
    } finally {
      this.running--;
    }
  }

  stats(): AdmissionStats {
    return { inFlight: this.running, maxInFlight: this.o.maxInFlight, shed: this.shedCount };
  }
}
