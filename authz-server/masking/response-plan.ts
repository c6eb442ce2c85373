// What the response path must do for one response, read from the ext_authz dynamic metadata Envoy
// forwards with the response headers (pipeline/response-instructions.ts and the policy's `masks` wrote
// it): mask the body, filter an MCP listing, count the tokens an LLM upstream reports — or nothing, and
// the body streams through untouched. Only the authz server writes these keys (Envoy's metadata is not
// the client's), so they are trusted as they are read; a malformed one is ignored, except `masks`,
// which the masker validates and refuses on.
import { fromStruct } from '../../lib/proto-struct.ts';
import type { McpFilterInstruction, UsageInstruction } from '../pipeline/response-instructions.ts';
import type { MaskSpec } from './masker.ts';

export const AUTHZ_NAMESPACE = 'envoy.filters.http.ext_authz';

export interface ResponsePlan {
  decisionId: string | null;
  masks: MaskSpec | null;
  filter: McpFilterInstruction | null;
  usage: UsageInstruction | null;
}

type Obj = Record<string, unknown>;
const isObject = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

function filterOf(v: unknown): McpFilterInstruction | null {
  if (!isObject(v) || !isObject(v['visible'])) return null;
  const method = typeof v['method'] === 'string' ? v['method'] : null;
  const id = typeof v['id'] === 'string' || typeof v['id'] === 'number' ? v['id'] : null;
  return { method, id, visible: v['visible'] as McpFilterInstruction['visible'] };
}

function usageOf(v: unknown): UsageInstruction | null {
  if (!isObject(v)) return null;
  const { target, issuer, subject, agent, provider, api } = v;
  if (typeof target !== 'string' || typeof issuer !== 'string' || typeof subject !== 'string') return null;
  return {
    target,
    issuer,
    subject,
    agent: typeof agent === 'string' ? agent : null,
    provider: String(provider),
    api: String(api),
  };
}

/** The plan in a ProcessingRequest's metadata_context (absent namespace: nothing to do). */
export function responsePlanOf(metadataContext: unknown): ResponsePlan {
  const filterMetadata = (metadataContext as { filterMetadata?: Record<string, unknown> } | undefined)
    ?.filterMetadata;
  const md = fromStruct(filterMetadata?.[AUTHZ_NAMESPACE] as never);
  return {
    decisionId: typeof md['decision_id'] === 'string' ? md['decision_id'] : null,
    masks: isObject(md['masks']) ? (md['masks'] as MaskSpec) : null,
    filter: filterOf(md['mcp_filter']),
    usage: usageOf(md['usage']),
  };
}

export const planIsEmpty = (p: ResponsePlan) => !p.masks && !p.filter && !p.usage;
