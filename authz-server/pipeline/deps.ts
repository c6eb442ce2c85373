// What a Check depends on, as the narrow ports the pipeline's steps use. The server passes the real
// parts (PolicyStore, IdentityVerifier, CredentialStore, ApprovalStore); unit tests pass small fakes.
import type { Logger } from 'pino';
import type { DecisionEvent, DecisionRecorder } from '../../contracts/decision.ts';
import type { AuthzErrorCode } from '../../contracts/errors.ts';
import type { ApprovalRequest, ApprovalRequestParts, ApprovalSpec } from '../../fleet/approval-store.ts';
import type { Identity, IdentityResult } from '../../identity/verifier.ts';

import type { Metrics } from '../../telemetry/metrics.ts';
import type { CheckTracer } from '../../telemetry/tracing.ts';
import type { InjectedHeaders } from '../credentials/credential-store.ts';
import type { EvalOutcome } from '../policy/policy-engine.ts';
import type { ConfiguredAudiences } from './resource-audience.ts';
import type { UsageDeps } from './usage.ts';

export interface CheckMetrics {
  total: number;
  allowed: number;
  denied: number;
  /** Denies the server made itself, by reason code (policy errors are not policy denies). */
  errors: Partial<Record<AuthzErrorCode, number>>;
  /** Checks dropped unanswered because their caller had gone (cancelled, past its deadline). */
  abandoned?: number;
  /** Shadow mode: decisions the candidate also evaluated, and how many it would have decided otherwise. */
  shadow?: { evaluated: number; differences: number; errors: number };
}

/** A policy to evaluate with and its revision, read once per Check (PolicyStore.current()). */
export interface PolicySnapshotPort {
  engine: { evaluate(input: unknown): EvalOutcome };
  revision: string;
}

export interface PolicyPort {
  current(): PolicySnapshotPort | null;
}

export interface IdentityPort {
  verify(headers: Readonly<Record<string, string>>): Promise<IdentityResult>;
}

export interface CredentialsPort {
  hasTarget(target: string | null): boolean;
  headersFor(target: string | null): InjectedHeaders;
}

/** The part of ApprovalStore the Check path uses. */
export interface ApprovalPort {
  /** From memory: a usable grant for this fingerprint. */
  grantFor(fingerprint: string): ApprovalRequest | null;
  /** From the store: a grant decided on another node that has not reached this node's memory yet. */
  freshGrantFor(fingerprint: string): Promise<ApprovalRequest | null>;
  /** Spends one use, atomically across the fleet; false when another node spent it first. */
  claim(id: string): Promise<boolean>;
  request(p: ApprovalRequestParts & { fingerprint: string; spec: ApprovalSpec }): Promise<ApprovalRequest>;
}

export interface CheckDeps {
  policy: PolicyPort;
  identity: IdentityPort | null;
  logger: Logger;
  recorder?: DecisionRecorder;
  metrics: CheckMetrics;
  requireCompleteBody?: boolean;
  maxBodyBytes?: number;
  /** Upstream credentials injected into allowed requests, per target. */
  credentials?: CredentialsPort;
  /** The header the caller's token travels in; removed from allowed requests. Default authorization. */
  tokenHeader?: string;
  /** Revoked agent tokens (the kill switch): a revoked identity is treated as unauthenticated. */
  revocation?: { revoked(identity: Identity): string | null };
  /** Called with every decision after it is recorded (agent inventory, metrics). Must not throw. */
  onDecision?: (event: DecisionEvent) => void;
  /** A candidate policy evaluated beside the enforcing one on live traffic; its answer is recorded, never enforced. */
  shadow?: PolicyPort;
  /** Prometheus metrics (telemetry/metrics.ts), when a metrics listener is configured. */
  telemetry?: Pick<Metrics, 'decided'>;
  /** A span per Check (telemetry/tracing.ts), when the OTEL_* environment turns traces on. */
  tracer?: CheckTracer;
  /**
   * Each person-issuer's configured audiences (RFC 8707 check, pipeline/resource-audience.ts): on an MCP
   * target with a resource, a token must name the resource or one of these; elsewhere one of these.
   */
  audiences?: ConfiguredAudiences;
  /**
   * Rate limits and token budgets: the fleet's counters (memory reads only) and the configured limits,
   * given to the policy as input.usage; absent: no input.usage, nothing counted.
   */
  usage?: UsageDeps;
  /** Human approval of requests the policy marks `approval`; without it such requests are plain denies. */
  approvals?: { store: ApprovalPort; statusUrl: (id: string) => string };
}
