// The values one Check carries from step to step, and the shape every step answers in: a value to go
// on with, or a deny to record and return (failures are values here; nothing on this path throws on
// purpose).
import type { Identity } from '../../identity/verifier.ts';
import type { CheckTrace } from '../../telemetry/tracing.ts';
import type { RequestHeaders } from '../input/request-headers.ts';
import type { Decided } from '../result-mapper.ts';

export type { Decided };

/** The HTTP attributes of the CheckRequest the pipeline reads itself (the input builder reads the rest). */
export interface HttpAttrs {
  id?: string;
  method?: string;
  path?: string;
  host?: string;
  rawBody?: Uint8Array;
  body?: string;
}

/** What resolveRoute learns before anything can fail. */
export interface CheckState {
  decisionId: string;
  started: bigint;
  http: HttpAttrs;
  headers: RequestHeaders;
  routeId: string | null;
  target: string | null;
  /** The MCP target's RFC 8707 resource, when its route publishes RFC 9728 metadata. */
  resource: string | null;
  /** This Check's span when traces are on (its trace id is recorded with the decision). */
  trace?: CheckTrace;
}

/** What the decision is recorded with; each step fills in what it learned. */
export interface Trail {
  identity: Identity | null;
  input: unknown;
  result: unknown;
  policyRevision: string;
}

/** Decision id and policy revision: what every response carries. */
export interface DecisionContext {
  decisionId: string;
  policyRevision: string;
}

export type Step<T> = { ok: true; value: T } | { ok: false; deny: Decided };
