// One Check, as a pipeline of named steps (each in authz-server/pipeline/, each answering a value or
// a deny): resolveRoute → authenticate (with the RFC 8707 resource check) → buildInput (with
// input.usage) → evaluate (with the approval gate) → injectCredentials → responseInstructions (what
// the response path must do) → shadow → record → respond (an allowed request is counted). The pipeline
// never throws: any failure becomes a deny with its own reason code (fail closed), distinct from a
// policy deny.
import { randomUUID } from 'node:crypto';
import type { DecisionEvent, DecisionRecorder, ShadowOutcome } from '../contracts/decision.ts';
import { describeThrown } from '../contracts/errors.ts';
import type { UsageKey } from '../fleet/usage-counters.ts';
import { applyApproval, evaluateWithGrant, openGate } from './pipeline/approval-gate.ts';
import { authenticate } from './pipeline/authenticate.ts';
import type { CheckState, Decided, DecisionContext, Trail } from './pipeline/check-state.ts';
import type { CheckDeps } from './pipeline/deps.ts';
import { evaluate } from './pipeline/evaluate.ts';
import { injectCredentials } from './pipeline/inject-credentials.ts';
import { prepareInput } from './pipeline/prepare-input.ts';
import { decisionEvent, recordDecision } from './pipeline/record.ts';
import { resolveRoute } from './pipeline/resolve-route.ts';
import { countDecision, respond } from './pipeline/respond.ts';
import { responseInstructions } from './pipeline/response-instructions.ts';
import { shadowOutcome } from './pipeline/shadow.ts';
import { addUsageToInput, TargetLimits, usageKeyOf } from './pipeline/usage.ts';
import { type CheckResponseMessage, serverDeny } from './result-mapper.ts';

export type { CheckDeps, CheckMetrics } from './pipeline/deps.ts';
export type { DecisionEvent, DecisionRecorder, ShadowOutcome };

export class CheckPipeline {
  private readonly limits: TargetLimits;

  constructor(private readonly deps: CheckDeps) {
    this.limits = new TargetLimits(deps.usage?.limits ?? []);
  }

  /** `traceparent`: Envoy's, from the gRPC metadata (else the request's own header is used). */
  async check(req: unknown, traceparent?: string): Promise<CheckResponseMessage> {
    let state: CheckState | null = null;
    try {
      state = resolveRoute(req);
      if (this.deps.tracer)
        state.trace = this.deps.tracer.begin(traceparent ?? state.headers.get('traceparent'));
      return await this.run(req, state);
    } catch (err) {
      state?.trace?.end(null);
      // Last line of defence: a bug must deny, never allow or crash the server.
      const decisionId = state?.decisionId ?? randomUUID();
      this.deps.logger.error(
        { decision_id: decisionId, err: describeThrown(err) },
        'check failed unexpectedly',
      );
      countDecision(this.deps.metrics, 'ERR_INTERNAL', false);
      const policyRevision = this.deps.policy.current()?.revision ?? 'none';
      return serverDeny('ERR_INTERNAL', { decisionId, policyRevision }).response;
    }
  }

  private async run(req: unknown, state: CheckState): Promise<CheckResponseMessage> {
    const { deps } = this;
    const snapshot = deps.policy.current();
    const ctx: DecisionContext = {
      decisionId: state.decisionId,
      policyRevision: snapshot?.revision ?? 'none',
    };
    const trail: Trail = { identity: null, input: null, result: null, policyRevision: ctx.policyRevision };
    const auth = await authenticate(deps, state.headers, state.resource);
    trail.identity = auth.identity;
    const input = prepareInput(req, auth, deps, ctx);
    if (!input.ok) return this.finish(state, trail, input.deny);
    trail.input = input.value;
    if (!snapshot) return this.finish(state, trail, serverDeny('ERR_POLICY_MISSING', ctx));
    const usageKey = deps.usage ? usageKeyOf(auth.identity, state.target) : null;
    if (deps.usage) addUsageToInput(input.value, deps.usage.counters, this.limits, usageKey);

    const gate = openGate(deps.approvals, auth.identity, state, input.value);
    const env = { ctx, headers: state.headers, logger: deps.logger };
    const evaluation = await evaluateWithGrant(gate, input.value, (i) => evaluate(snapshot.engine, i, env));
    trail.result = evaluation.result;
    if (!evaluation.ok) return this.finish(state, trail, evaluation.deny);
    const requestHeaderNames = Object.keys(state.headers.all);
    const gated = await applyApproval(gate, evaluation, input.value, { ctx, requestHeaderNames });
    if (!gated.ok) return this.finish(state, trail, gated.deny);
    const injected = injectCredentials(deps, state, gated.value, env);
    if (!injected.ok) return this.finish(state, trail, injected.deny);
    const protocol = input.value.protocol;
    const instructed = responseInstructions(
      injected.value,
      { result: evaluation.result, protocol, usageKey },
      ctx,
    );
    return this.finish(state, trail, instructed.ok ? instructed.value : instructed.deny, usageKey);
  }

  /** shadow → record → respond; an allowed request counts toward its rate limits once recorded. */
  private async finish(
    state: CheckState,
    trail: Trail,
    decided: Decided,
    usageKey: UsageKey | null = null,
  ): Promise<CheckResponseMessage> {
    const event = decisionEvent(state, trail, decided.verdict);
    const shadow = shadowOutcome(this.deps, trail.input, decided.verdict);
    if (shadow) event.shadow = shadow;
    const answer = await recordDecision(this.deps, event, decided);
    event.verdict = answer.verdict;
    if (usageKey && answer.verdict.decision === 'allow') this.deps.usage?.counters.countRequest(usageKey);
    const response = respond(this.deps, event, answer.response);
    state.trace?.end(event);
    return response;
  }
}
