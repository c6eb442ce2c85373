// One Check, as a pipeline of named steps: resolveRoute → authenticate → buildInput → evaluate →
// mapResult → record → respond. Each step is a small function; the pipeline never throws — any
// failure becomes a deny with its own reason code (fail closed), distinct from a policy deny.
import { createHash, randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { DecisionEvent, DecisionRecorder, ShadowOutcome } from '../contracts/decision.ts';
import type { AuthzErrorCode } from '../contracts/errors.ts';
import { describeThrown } from '../contracts/errors.ts';
import { decodeRouteContext } from '../contracts/ext-authz.ts';
import { type ApprovalRequest, type ApprovalStore, fingerprintOf } from '../fleet/approval-store.ts';
import type { Identity, IdentityVerifier } from '../identity/verifier.ts';
import type { CredentialStore } from './credentials/credential-store.ts';
import { buildInput } from './input/build-input.ts';
import type { PolicyStore } from './policy/policy-store.ts';
import { protocolHook } from './protocols/index.ts';
import { mcpApprovalError } from './protocols/mcp.ts';
import { type CheckResponseMessage, mapPolicyResult, serverDeny, type Verdict } from './result-mapper.ts';

export type { DecisionEvent, DecisionRecorder, ShadowOutcome };

export interface CheckMetrics {
  total: number;
  allowed: number;
  denied: number;
  /** Denies the server made itself, by reason code (policy errors are not policy denies). */
  errors: Partial<Record<AuthzErrorCode, number>>;
  /** Shadow mode: decisions the candidate also evaluated, and how many it would have decided otherwise. */
  shadow?: { evaluated: number; differences: number; errors: number };
}

export interface CheckDeps {
  policy: PolicyStore;
  identity: IdentityVerifier | null;
  logger: Logger;
  recorder?: DecisionRecorder;
  metrics: CheckMetrics;
  requireCompleteBody?: boolean;
  maxBodyBytes?: number;
  /** Upstream credentials injected into allowed requests, per target. */
  credentials?: CredentialStore;
  /** The header the caller's token travels in; removed from allowed requests. Default authorization. */
  tokenHeader?: string;
  /** Revoked agent tokens (the kill switch): a revoked identity is treated as unauthenticated. */
  revocation?: { revoked(identity: Identity): string | null };
  /** Called with every decision after it is recorded (agent inventory, metrics). Must not throw. */
  onDecision?: (event: DecisionEvent) => void;
  /** A candidate policy evaluated beside the enforcing one on live traffic; its answer is recorded, never enforced. */
  shadow?: PolicyStore;
  /** Human approval of requests the policy marks `approval`; without it such requests are plain denies. */
  approvals?: { store: ApprovalStore; statusUrl: (id: string) => string };
}

interface HttpAttrs {
  id?: string;
  method?: string;
  path?: string;
  host?: string;
  headers?: Record<string, string>;
}

interface CheckState {
  decisionId: string;
  started: bigint;
  http: HttpAttrs;
  headers: Record<string, string>;
  routeId: string | null;
  target: string | null;
}

const STATUS_FOR_CODE: Partial<Record<AuthzErrorCode, number>> = {
  ERR_PATH_NONCANONICAL: 400,
  ERR_REQUEST_MALFORMED: 400,
  ERR_BODY_UNPARSABLE: 400,
  ERR_BODY_TRUNCATED: 413,
  ERR_AUDIT_UNAVAILABLE: 503,
  ERR_POLICY_MISSING: 503,
};

function resolveRoute(req: unknown): CheckState {
  const attrs = (req as { attributes?: Record<string, any> } | null)?.attributes ?? {};
  const http: HttpAttrs = attrs['request']?.['http'] ?? {};
  const route = decodeRouteContext(attrs['contextExtensions']);
  return {
    decisionId: randomUUID(),
    started: process.hrtime.bigint(),
    http,
    headers: http.headers ?? {},
    routeId: route.routeId,
    target: route.target,
  };
}

function approvalSpec(result: unknown): { reviewers: string[]; ttl?: string; reason?: string } | null {
  if (!result || typeof result !== 'object') return null;
  const a = (result as { approval?: unknown }).approval;
  if (!a || typeof a !== 'object') return null;
  const { reviewers, ttl, reason } = a as Record<string, unknown>;
  if (!Array.isArray(reviewers) || reviewers.length === 0 || !reviewers.every((g) => typeof g === 'string'))
    return null;
  return {
    reviewers: reviewers as string[],
    ...(typeof ttl === 'string' ? { ttl } : {}),
    ...(typeof reason === 'string' ? { reason } : {}),
  };
}

/** The JSON-RPC id of an MCP request (for answering in JSON-RPC), or null for other traffic. */
function mcpRequestId(input: unknown): { id: string | number | null } | null {
  const p = (input as { protocol?: { name?: string; method?: string | null; id?: string | number | null } })
    .protocol;
  return p?.name === 'mcp' && p.method ? { id: p.id ?? null } : null;
}

function bodyHash(http: HttpAttrs): string | null {
  const h = http as HttpAttrs & { rawBody?: Buffer; body?: string };
  const bytes = h.rawBody && h.rawBody.length > 0 ? h.rawBody : h.body ? Buffer.from(h.body) : null;
  return bytes ? createHash('sha256').update(bytes).digest('hex') : null;
}

function pathOnly(raw: string | undefined): string {
  if (!raw) return '';
  const q = raw.indexOf('?');
  return q === -1 ? raw : raw.slice(0, q);
}

export class CheckPipeline {
  constructor(private readonly deps: CheckDeps) {}

  async check(req: unknown): Promise<CheckResponseMessage> {
    let state: CheckState | null = null;
    try {
      state = resolveRoute(req);
      return await this.run(req, state);
    } catch (err) {
      // Last line of defence: a bug must deny, never allow or crash the server.
      const decisionId = state?.decisionId ?? randomUUID();
      this.deps.logger.error(
        { decision_id: decisionId, err: describeThrown(err) },
        'check failed unexpectedly',
      );
      this.count('ERR_INTERNAL');
      return serverDeny('ERR_INTERNAL', 'internal error in the authorization server', 500, {
        decisionId,
        policyRevision: this.deps.policy.current()?.revision ?? 'none',
      }).response;
    }
  }

  private async run(req: unknown, state: CheckState): Promise<CheckResponseMessage> {
    const snapshot = this.deps.policy.current();
    const policyRevision = snapshot?.revision ?? 'none';
    const ctx = { decisionId: state.decisionId, policyRevision };

    // authenticate
    let identity = null;
    let identityError: { code: string; reason: string } | null = null;
    if (this.deps.identity) {
      const res = await this.deps.identity.verify(state.headers);
      if (res.ok) {
        const revoked = this.deps.revocation?.revoked(res.identity) ?? null;
        if (revoked) identityError = { code: 'ERR_TOKEN_REVOKED', reason: revoked };
        else identity = res.identity;
      } else identityError = { code: res.code, reason: res.reason };
    } else {
      identityError = { code: 'ERR_TOKEN_MISSING', reason: 'no identity issuer is configured' };
    }

    // buildInput
    const built = buildInput(
      req,
      { identity, identityError },
      {
        protocol: protocolHook,
        requireCompleteBody: this.deps.requireCompleteBody ?? true,
        ...(this.deps.maxBodyBytes ? { maxBodyBytes: this.deps.maxBodyBytes } : {}),
      },
    );
    if (!built.ok) {
      return this.finish(
        state,
        serverDeny(built.code, built.reason, STATUS_FOR_CODE[built.code] ?? 400, ctx),
        {
          identity,
          input: null,
          result: null,
          policyRevision,
        },
      );
    }

    // evaluate
    if (!snapshot) {
      return this.finish(state, serverDeny('ERR_POLICY_MISSING', 'no policy is loaded', 503, ctx), {
        identity,
        input: built.input,
        result: null,
        policyRevision,
      });
    }
    // A granted approval for exactly this request is part of what the policy decides on.
    const approvals = this.deps.approvals;
    let fingerprint: string | null = null;
    let grant: ApprovalRequest | null = null;
    let requestParts: Parameters<typeof fingerprintOf>[0] | null = null;
    if (approvals && identity) {
      // What identifies "this request" for an approval: who, as whom, where, what, with which body.
      requestParts = {
        subject: identity.subject,
        actor: identity.actor,
        target: state.target,
        method: state.http.method ?? '',
        path: state.http.path ?? '',
        bodySha256: bodyHash(state.http),
      };
      fingerprint = fingerprintOf(requestParts);
      grant = approvals.store.grantFor(fingerprint);
    }
    const offerGrant = (g: ApprovalRequest | null) => {
      if (g)
        (built.input as { approval?: unknown }).approval = {
          id: g.id,
          granted: true,
          approved_by: g.decided_by,
        };
    };
    offerGrant(grant);
    // Evaluated once, or twice when the policy wants an approval this node's memory has not seen yet
    // but the store has (decided on another node a moment ago).
    for (let pass = 0; ; pass++) {
      const outcome = snapshot.engine.evaluate(built.input);
      if (!outcome.ok) {
        this.deps.logger.warn(
          { decision_id: state.decisionId, code: outcome.code, detail: outcome.detail },
          'policy failed',
        );
        const reason =
          outcome.code === 'ERR_POLICY_UNDEFINED'
            ? 'policy decision is undefined'
            : 'policy evaluation failed';
        return this.finish(state, serverDeny(outcome.code, reason, 403, ctx, 'error'), {
          identity,
          input: built.input,
          result: null,
          policyRevision,
        });
      }

      // mapResult
      const mapped = mapPolicyResult(outcome.result, {
        ...ctx,
        requestHeaderNames: Object.keys(state.headers),
      });
      if (!mapped.ok) {
        this.deps.logger.warn(
          { decision_id: state.decisionId, code: mapped.code, detail: mapped.detail },
          'bad policy result',
        );
        return this.finish(state, serverDeny(mapped.code, 'policy result is invalid', 403, ctx, 'error'), {
          identity,
          input: built.input,
          result: outcome.result,
          policyRevision,
        });
      }
      if (approvals && identity && fingerprint && requestParts && mapped.verdict.decision !== 'allow') {
        const spec = approvalSpec(outcome.result);
        if (spec && pass === 0 && !grant) {
          grant = await approvals.store.freshGrantFor(fingerprint);
          if (grant) {
            offerGrant(grant);
            continue;
          }
        }
        if (spec) {
          const req = await approvals.store.request({ fingerprint, ...requestParts, spec });
          const gated = mapPolicyResult(
            {
              ...(outcome.result as Record<string, unknown>),
              allowed: false,
              http_status: 403,
              // An MCP client gets a JSON-RPC error it can show (with the approval URL), not a bare 403.
              body: mcpRequestId(built.input)
                ? mcpApprovalError(
                    mcpRequestId(built.input)!.id,
                    req.id,
                    approvals.statusUrl(req.id),
                    req.reason,
                  )
                : {
                    error: 'approval_required',
                    approval_id: req.id,
                    status_url: approvals.statusUrl(req.id),
                    reviewers: req.reviewers,
                    reason: req.reason,
                  },
              ...(mcpRequestId(built.input) ? { headers: { 'content-type': 'application/json' } } : {}),
            },
            { ...ctx, requestHeaderNames: Object.keys(state.headers) },
          );
          if (gated.ok) {
            gated.verdict.decision = 'approval_required';
            gated.verdict.reasonCode = 'APPROVAL_REQUIRED';
            return this.finish(state, gated, {
              identity,
              input: built.input,
              result: outcome.result,
              policyRevision,
            });
          }
        }
      }
      if (
        mapped.verdict.decision === 'allow' &&
        grant &&
        !(await this.deps.approvals!.store.claim(grant.id))
      ) {
        // Another authz server spent this one-time grant first (or it lapsed): the request needs a new one.
        return this.finish(
          state,
          serverDeny('ERR_APPROVAL_SPENT', `approval ${grant.id} was already used or has expired`, 403, ctx),
          { identity, input: built.input, result: outcome.result, policyRevision },
        );
      }
      if (mapped.verdict.decision === 'allow') {
        const injected = this.injectCredentials(state, mapped.response);
        if (injected) {
          this.deps.logger.error(
            { decision_id: state.decisionId, target: state.target, detail: injected },
            'credential unavailable',
          );
          return this.finish(
            state,
            serverDeny('ERR_CREDENTIAL_UNAVAILABLE', 'upstream credential is unavailable', 503, ctx, 'error'),
            { identity, input: built.input, result: outcome.result, policyRevision },
          );
        }
      }
      return this.finish(state, mapped, {
        identity,
        input: built.input,
        result: outcome.result,
        policyRevision,
      });
    }
  }

  /** Shadow mode: the candidate's answer on the same input (only where the enforcing policy ran). */
  private shadowOf(input: unknown, verdict: Verdict): ShadowOutcome | null {
    const snapshot = this.deps.shadow?.current();
    if (!snapshot || input === null || verdict.reasonCode.startsWith('ERR_')) return null;
    const m = this.deps.metrics;
    m.shadow ??= { evaluated: 0, differences: 0, errors: 0 };
    m.shadow.evaluated++;
    const out = snapshot.engine.evaluate(input);
    let decision: ShadowOutcome['decision'] = 'error';
    if (out.ok) {
      const r = out.result;
      decision =
        r === true || (!!r && typeof r === 'object' && (r as { allowed?: unknown }).allowed === true)
          ? 'allow'
          : 'deny';
    } else m.shadow.errors++;
    const differs = decision !== (verdict.decision === 'allow' ? 'allow' : 'deny');
    if (differs) m.shadow.differences++;
    return { revision: snapshot.revision, decision, differs };
  }

  /**
   * Sets the target's upstream credentials and removes the caller's own token, so the upstream sees
   * the edge's secret and never the agent's token. Returns a problem description, or null when done.
   */
  private injectCredentials(state: CheckState, response: CheckResponseMessage): string | null {
    const ok = response.okResponse;
    if (!ok) return null;
    const set = new Set(ok.headers.map((h) => h.header.key));
    const creds = this.deps.credentials;
    if (creds?.hasTarget(state.target)) {
      const injected = creds.headersFor(state.target);
      if (!injected.ok) return injected.reason;
      for (const h of injected.headers) {
        // The edge's credential wins over anything the policy or the client put in that header.
        ok.headers = ok.headers.filter((o) => o.header.key !== h.key);
        ok.headers.push({ header: h, appendAction: 'OVERWRITE_IF_EXISTS_OR_ADD' });
        set.add(h.key);
      }
    }
    const tokenHeader = (this.deps.tokenHeader ?? 'authorization').toLowerCase();
    // Only a token meant for Chaperone (an issuer is configured) is stripped; without identity
    // verification the header may be the upstream's own credential, as under OPA-Envoy.
    const callerToken = this.deps.identity !== null && state.headers[tokenHeader] !== undefined;
    if (callerToken && !set.has(tokenHeader) && !ok.headersToRemove.includes(tokenHeader)) {
      ok.headersToRemove.push(tokenHeader);
    }
    ok.headersToRemove = ok.headersToRemove.filter((name) => !set.has(name));
    return null;
  }

  /** record → respond. An allow that cannot be recorded durably becomes a deny. */
  private async finish(
    state: CheckState,
    decided: { response: CheckResponseMessage; verdict: Verdict },
    extra: {
      identity: { subject: string; issuer: string; actor: unknown } | null;
      input: unknown;
      result: unknown;
      policyRevision: string;
    },
  ): Promise<CheckResponseMessage> {
    const { verdict } = decided;
    const event: DecisionEvent = {
      decisionId: state.decisionId,
      // Envoy's x-request-id (generated at the edge) is what its access log carries; `http.id` is a
      // stream id only ext_authz sees, so the decision keeps the header to join on.
      requestId: state.headers['x-request-id'] ?? state.http.id ?? '',
      time: new Date(),
      routeId: state.routeId,
      target: state.target,
      method: state.http.method ?? '',
      host: state.http.host ?? '',
      path: pathOnly(state.http.path),
      subject: extra.identity?.subject ?? null,
      issuer: extra.identity?.issuer ?? null,
      actor: extra.identity?.actor ?? null,
      verdict,
      policyRevision: extra.policyRevision,
      latencyUs: Number(process.hrtime.bigint() - state.started) / 1000,
      input: extra.input,
      result: extra.result,
    };
    const shadow = this.shadowOf(extra.input, verdict);
    if (shadow) event.shadow = shadow;
    let response = decided.response;
    if (this.deps.recorder) {
      try {
        await this.deps.recorder.record(event);
      } catch (err) {
        this.deps.logger.error(
          { decision_id: state.decisionId, err: describeThrown(err) },
          'decision not recorded',
        );
        if (verdict.decision === 'allow') {
          const denied = serverDeny('ERR_AUDIT_UNAVAILABLE', 'decision could not be recorded', 503, {
            decisionId: state.decisionId,
            policyRevision: extra.policyRevision,
          });
          event.verdict = denied.verdict;
          response = denied.response;
        }
      }
    }
    this.logDecision(event);
    if (this.deps.onDecision) {
      try {
        this.deps.onDecision(event);
      } catch (err) {
        this.deps.logger.error(
          { decision_id: state.decisionId, err: describeThrown(err) },
          'decision observer failed',
        );
      }
    }
    return response;
  }

  private count(code: AuthzErrorCode | null, allowed = false): void {
    const m = this.deps.metrics;
    m.total++;
    if (allowed) m.allowed++;
    else m.denied++;
    if (code) m.errors[code] = (m.errors[code] ?? 0) + 1;
  }

  private logDecision(event: DecisionEvent): void {
    const { verdict } = event;
    const isServerCode = verdict.reasonCode.startsWith('ERR_');
    this.count(isServerCode ? (verdict.reasonCode as AuthzErrorCode) : null, verdict.decision === 'allow');
    this.deps.logger.info(
      {
        decision_id: event.decisionId,
        request_id: event.requestId,
        route_id: event.routeId,
        target: event.target,
        method: event.method,
        host: event.host,
        path: event.path,
        sub: event.subject,
        decision: verdict.decision,
        status: verdict.httpStatus,
        reason: verdict.reason,
        reason_code: verdict.reasonCode,
        policy_revision: event.policyRevision,
        latency_us: Math.round(event.latencyUs),
      },
      'decision',
    );
  }
}
