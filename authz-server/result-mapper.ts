// Maps a policy result (OPA-Envoy semantics: a boolean, or an object with `allowed` and optional
// header/status/body fields) to the ext_authz v3 CheckResponse, and builds the responses the server
// produces on its own (errors, identity failures). Everything here is pure.

import type { Verdict } from '../contracts/decision.ts';
import { denyOf, type ServerDenyCode } from '../contracts/errors.ts';
import {
  CHAPERONE_HEADER_PREFIX,
  CLIENT_IDENTITY_HEADERS,
  DECISION_ID_HEADER,
  MASK_HEADER,
  MASK_HEADER_VALUE,
} from '../contracts/ext-authz.ts';
import { type StructMessage, toStruct } from '../lib/proto-struct.ts';

// google.rpc.Code values used in CheckResponse.status.
const RPC_OK = 0;
const RPC_PERMISSION_DENIED = 7;
const RPC_UNAUTHENTICATED = 16;

interface HeaderValueOption {
  header: { key: string; value: string };
  appendAction: 'APPEND_IF_EXISTS_OR_ADD' | 'OVERWRITE_IF_EXISTS_OR_ADD';
}

export interface CheckResponseMessage {
  status: { code: number; message?: string };
  okResponse?: {
    headers: HeaderValueOption[];
    headersToRemove: string[];
    responseHeadersToAdd: HeaderValueOption[];
    queryParametersToSet: { key: string; value: string }[];
    queryParametersToRemove: string[];
  };
  deniedResponse?: { status: { code: number }; headers: HeaderValueOption[]; body: string };
  dynamicMetadata?: StructMessage;
}

export type { Verdict };

export type MapOutcome =
  | { ok: true; response: CheckResponseMessage; verdict: Verdict }
  | { ok: false; code: 'ERR_POLICY_RESULT_INVALID'; detail: string };

export interface MapContext {
  decisionId: string;
  policyRevision: string;
  /** Lower-case header names the client sent (to strip identity headers it must not assert). */
  requestHeaderNames: Iterable<string>;
}

// --- result parsing ---
interface PolicyResultObject {
  allowed: boolean;
  headers?: Record<string, unknown>;
  request_headers_to_remove?: unknown;
  response_headers_to_add?: Record<string, unknown>;
  query_parameters_to_set?: Record<string, unknown>;
  query_parameters_to_remove?: unknown;
  http_status?: unknown;
  body?: unknown;
  dynamic_metadata?: unknown;
  reason?: unknown;
  /** Chaperone: response masking (JSON paths, detectors), carried to the ext_proc server in metadata. */
  masks?: unknown;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Header maps: OPA-Envoy accepts a string or an array of strings per header. */
function headerOptions(
  field: string,
  map: unknown,
  append: boolean,
): { ok: true; options: HeaderValueOption[] } | { ok: false; detail: string } {
  if (map === undefined) return { ok: true, options: [] };
  if (!isPlainObject(map))
    return { ok: false, detail: `"${field}" must be an object of header name → value(s)` };
  const options: HeaderValueOption[] = [];
  for (const [key, raw] of Object.entries(map)) {
    const values = Array.isArray(raw) ? raw : [raw];
    for (const [i, value] of values.entries()) {
      if (typeof value !== 'string') {
        return { ok: false, detail: `"${field}.${key}" must be a string or an array of strings` };
      }
      // Several values for one header: the first replaces what the client sent, the rest append.
      const appendAction = append || i > 0 ? 'APPEND_IF_EXISTS_OR_ADD' : 'OVERWRITE_IF_EXISTS_OR_ADD';
      options.push({ header: { key: key.toLowerCase(), value }, appendAction });
    }
  }
  return { ok: true, options };
}

function stringList(field: string, v: unknown): { ok: true; list: string[] } | { ok: false; detail: string } {
  if (v === undefined) return { ok: true, list: [] };
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) {
    return { ok: false, detail: `"${field}" must be an array of strings` };
  }
  return { ok: true, list: (v as string[]).map((s) => s.toLowerCase()) };
}

function parseStatus(v: unknown, fallback: number): number | null {
  if (v === undefined) return fallback;
  if (typeof v === 'number' && Number.isInteger(v) && v >= 200 && v <= 599) return v;
  return null;
}

function decisionHeader(decisionId: string): HeaderValueOption {
  return {
    header: { key: DECISION_ID_HEADER, value: decisionId },
    appendAction: 'OVERWRITE_IF_EXISTS_OR_ADD',
  };
}

/** Tells Envoy to run the mask processor on this response (contracts/ext-authz.ts MASK_HEADER). */
const MASK_ON: HeaderValueOption = {
  header: { key: MASK_HEADER, value: MASK_HEADER_VALUE },
  appendAction: 'OVERWRITE_IF_EXISTS_OR_ADD',
};

/**
 * Routes this allowed response through the response processor (masking/), for work other than masks
 * (an MCP listing filter, a usage meter): without MASK_HEADER Envoy's composite filter opens no
 * ext_proc stream and the instruction in the metadata would be silently ignored.
 */
export function requestResponseProcessing(ok: NonNullable<CheckResponseMessage['okResponse']>): void {
  if (!ok.headers.some((h) => h.header.key === MASK_HEADER)) ok.headers.push(MASK_ON);
  const i = ok.headersToRemove.indexOf(MASK_HEADER);
  if (i >= 0) ok.headersToRemove.splice(i, 1);
}

function metadata(ctx: MapContext, extra: unknown, verdict: Verdict, masks?: unknown): StructMessage {
  const base: Record<string, unknown> = isPlainObject(extra) ? { ...extra } : {};
  if (isPlainObject(masks)) base['masks'] = masks;
  base['decision_id'] = ctx.decisionId;
  base['policy_revision'] = ctx.policyRevision;
  base['decision'] = verdict.decision;
  base['reason_code'] = verdict.reasonCode;
  return toStruct(base);
}

type FieldCheck<T> = { ok: true; value: T } | { ok: false; detail: string };

function invalid(detail: string): MapOutcome {
  return { ok: false, code: 'ERR_POLICY_RESULT_INVALID', detail };
}

/** `query_parameters_to_set`: an object of name → string or array of strings. */
function queryParameters(v: unknown): FieldCheck<{ key: string; value: string }[]> {
  if (v === undefined) return { ok: true, value: [] };
  if (!isPlainObject(v)) return { ok: false, detail: '"query_parameters_to_set" must be an object' };
  const out: { key: string; value: string }[] = [];
  for (const [key, value] of Object.entries(v)) {
    for (const one of Array.isArray(value) ? value : [value]) {
      if (typeof one !== 'string') {
        return { ok: false, detail: `"query_parameters_to_set.${key}" must be a string` };
      }
      out.push({ key, value: one });
    }
  }
  return { ok: true, value: out };
}

/**
 * Identity headers the client sent are removed unless the policy itself sets them (then the policy's
 * value overwrites the client's).
 */
function headersToRemove(
  policyRemoves: string[],
  setByPolicy: HeaderValueOption[],
  requestHeaderNames: Iterable<string>,
): string[] {
  const set = new Set(setByPolicy.map((h) => h.header.key));
  const toRemove = new Set(policyRemoves);
  for (const name of requestHeaderNames) {
    if (set.has(name)) continue;
    if (name.startsWith(CHAPERONE_HEADER_PREFIX) || CLIENT_IDENTITY_HEADERS.includes(name))
      toRemove.add(name);
  }
  return [...toRemove];
}

function allowOf(obj: PolicyResultObject, reason: string, ctx: MapContext): MapOutcome {
  const headers = headerOptions('headers', obj.headers, false);
  if (!headers.ok) return invalid(headers.detail);
  const respHeaders = headerOptions('response_headers_to_add', obj.response_headers_to_add, true);
  if (!respHeaders.ok) return invalid(respHeaders.detail);
  const remove = stringList('request_headers_to_remove', obj.request_headers_to_remove);
  if (!remove.ok) return invalid(remove.detail);
  const qRemove = stringList('query_parameters_to_remove', obj.query_parameters_to_remove);
  if (!qRemove.ok) return invalid(qRemove.detail);
  const qSet = queryParameters(obj.query_parameters_to_set);
  if (!qSet.ok) return invalid(qSet.detail);
  const verdict: Verdict = { decision: 'allow', httpStatus: 200, reason, reasonCode: 'ALLOWED' };
  const masked = isPlainObject(obj.masks);
  return {
    ok: true,
    verdict,
    response: {
      status: { code: RPC_OK },
      okResponse: {
        headers: [
          ...headers.options,
          decisionHeader(ctx.decisionId),
          // The same test as the metadata's: masks in the metadata ⇔ the processor runs.
          ...(masked ? [MASK_ON] : []),
        ],
        // A result that both masks and removes the mask header must not switch its own masking off.
        headersToRemove: headersToRemove(remove.list, headers.options, ctx.requestHeaderNames).filter(
          (h) => !(masked && h === MASK_HEADER),
        ),
        responseHeadersToAdd: [...respHeaders.options, decisionHeader(ctx.decisionId)],
        queryParametersToSet: qSet.value,
        queryParametersToRemove: qRemove.list,
      },
      dynamicMetadata: metadata(ctx, obj.dynamic_metadata, verdict, obj.masks),
    },
  };
}

/** The deny body: a string as is; an object (our extension) as JSON, with its content type. */
function denyBody(body: unknown, headers: HeaderValueOption[]): string {
  if (typeof body === 'string') return body;
  if (body === undefined) return '';
  if (!headers.some((h) => h.header.key === 'content-type')) {
    headers.push({
      header: { key: 'content-type', value: 'application/json' },
      appendAction: 'OVERWRITE_IF_EXISTS_OR_ADD',
    });
  }
  return JSON.stringify(body);
}

function denyOfResult(obj: PolicyResultObject, reason: string, ctx: MapContext): MapOutcome {
  const status = parseStatus(obj.http_status, 403);
  if (status === null) return invalid('"http_status" must be an integer from 200 to 599');
  const headers = headerOptions('headers', obj.headers, false);
  if (!headers.ok) return invalid(headers.detail);
  const body = denyBody(obj.body, headers.options);
  const verdict: Verdict = {
    decision: 'deny',
    httpStatus: status,
    reason,
    reasonCode: status === 401 ? 'DENIED_UNAUTHENTICATED' : 'DENIED_BY_POLICY',
  };
  return {
    ok: true,
    verdict,
    response: {
      status: { code: status === 401 ? RPC_UNAUTHENTICATED : RPC_PERMISSION_DENIED },
      deniedResponse: {
        status: { code: status },
        headers: [...headers.options, decisionHeader(ctx.decisionId)],
        body,
      },
      dynamicMetadata: metadata(ctx, obj.dynamic_metadata, verdict),
    },
  };
}

/** Maps a policy result to a CheckResponse; an ill-formed result is an error (→ deny upstream). */
export function mapPolicyResult(result: unknown, ctx: MapContext): MapOutcome {
  let obj: PolicyResultObject;
  if (typeof result === 'boolean') obj = { allowed: result };
  else if (isPlainObject(result) && typeof result['allowed'] === 'boolean')
    obj = result as unknown as PolicyResultObject;
  else return invalid('policy result must be a boolean or an object with a boolean "allowed"');
  const reason =
    typeof obj.reason === 'string' ? obj.reason : obj.allowed ? 'allowed by policy' : 'denied by policy';
  return obj.allowed ? allowOf(obj, reason, ctx) : denyOfResult(obj, reason, ctx);
}

/** A response the server decides on its own, with its verdict. */
export interface Decided {
  response: CheckResponseMessage;
  verdict: Verdict;
}

/**
 * A deny the server makes on its own (bad path, policy error, …): JSON body with the code. Status,
 * verdict and public reason come from the deny catalog (contracts/errors.ts); `detail` reaches the
 * client only for the codes whose catalog entry says it describes the client's own request.
 */
export function serverDeny(
  code: ServerDenyCode,
  ctx: Pick<MapContext, 'decisionId' | 'policyRevision'>,
  detail?: string,
): Decided {
  const { status: httpStatus, verdict: decision, publicReason } = denyOf(code, detail);
  const verdict: Verdict = { decision, httpStatus, reason: publicReason, reasonCode: code };
  const body = JSON.stringify({ error: code, reason: publicReason, decision_id: ctx.decisionId });
  return {
    verdict,
    response: {
      status: { code: httpStatus === 401 ? RPC_UNAUTHENTICATED : RPC_PERMISSION_DENIED },
      deniedResponse: {
        status: { code: httpStatus },
        headers: [
          {
            header: { key: 'content-type', value: 'application/json' },
            appendAction: 'OVERWRITE_IF_EXISTS_OR_ADD',
          },
          decisionHeader(ctx.decisionId),
        ],
        body,
      },
      dynamicMetadata: toStruct({
        decision_id: ctx.decisionId,
        policy_revision: ctx.policyRevision,
        decision,
        reason_code: code,
      }),
    },
  };
}
