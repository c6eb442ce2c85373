// One Check, as a pipeline of named steps (each in authz-server/pipeline/, each answering a value or
// a deny): resolveRoute → authenticate (with the RFC 8707 resource check) → buildInput (with
// input.usage) → evaluate (with the approval gate) → injectCredentials → responseInstructions (what
// the response path must do) → shadow → record → respond (an allowed request is counted). The pipeline
// never throws: any failure becomes a deny with its own reason code (fail closed), distinct from a
// policy deny. A Check whose caller has gone (cancelled, or past its deadline: transport/admission.ts)
// stops at its next step: it is neither evaluated nor recorded, since nobody receives its answer.
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
import { type CallState, overloadedResponse, UNTRACKED_CALL } from './transport/admission.ts';

export type { CheckDeps, CheckMetrics } from './pipeline/deps.ts';
export type { DecisionEvent, DecisionRecorder, ShadowOutcome };

export class CheckPipeline {
  private readonly limits: TargetLimits;

  constructor(private readonly deps: CheckDeps) {
    this.limits = new TargetLimits(deps.usage?.limits ?? []);
  }

  /** `call`: the transport's view of the call (abandoned; Envoy's `traceparent` from gRPC metadata). */
  async check(req: unknown, call: CallState = UNTRACKED_CALL): Promise<CheckResponseMessage> {
    let state: CheckState | null = null;
    try {
      state = resolveRoute(req);
      if (this.deps.tracer)
        state.trace = this.deps.tracer.begin(call.traceparent ?? state.headers.get('traceparent'));
      return await this.run(req, state, call);
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

  /** Nobody waits for this Check any more: no evaluation, no record. */
  private abandon(): CheckResponseMessage {
    this.deps.metrics.abandoned = (this.deps.metrics.abandoned ?? 0) + 1;
    return overloadedResponse();
  }

  private async run(req: unknown, state: CheckState, call: CallState): Promise<CheckResponseMessage> {
    if (call.abandoned) return this.abandon();
    const { deps } = this;
    const snapshot = deps.policy.current();
    const ctx: DecisionContext = {
      decisionId: state.decisionId,
      policyRevision: snapshot?.revision ?? 'none',
    };
    const trail: Trail = { identity: null, input: null, result: null, policyRevision: ctx.policyRevision };
    const finish = (decided: Decided, usageKey: UsageKey | null = null) =>
      this.finish(state, trail, decided, call, usageKey);
    const auth = await authenticate(deps, state.headers, state.resource);
    if (call.abandoned) return this.abandon();
    trail.identity = auth.identity;
    const input = prepareInput(req, auth, deps, ctx);
    if (!input.ok) return finish(input.deny);
    trail.input = input.value;
    if (!snapshot) return finish(serverDeny('ERR_POLICY_MISSING', ctx));
    const usageKey = deps.usage ? usageKeyOf(auth.identity, state.target) : null;
    if (deps.usage) addUsageToInput(input.value, deps.usage.counters, this.limits, usageKey);

    const gate = openGate(deps.approvals, auth.identity, state, input.value);
    const env = { ctx, headers: state.headers, logger: deps.logger };
    const evaluation = await evaluateWithGrant(gate, input.value, (i) => evaluate(snapshot.engine, i, env));
    trail.result = evaluation.result;
    if (!evaluation.ok) return finish(evaluation.deny);
    const requestHeaderNames = Object.keys(state.headers.all);
    const gated = await applyApproval(gate, evaluation, input.value, { ctx, requestHeaderNames });
    if (!gated.ok) return finish(gated.deny);
    const injected = injectCredentials(deps, state, gated.value, env);
    if (!injected.ok) return finish(injected.deny);
    const protocol = input.value.protocol;
    const instructed = responseInstructions(
      injected.value,
      { result: evaluation.result, protocol, usageKey },
      ctx,
    );
    return finish(instructed.ok ? instructed.value : instructed.deny, usageKey);
  }

  /** shadow → record → respond; an allowed request counts toward its rate limits once recorded. */
  private async finish(
    state: CheckState,
    trail: Trail,
    decided: Decided,
    call: CallState,
    usageKey: UsageKey | null,
  ): Promise<CheckResponseMessage> {
    // The last moment to drop it: once recorded, a decision is answered.
    if (call.abandoned) return this.abandon();
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
