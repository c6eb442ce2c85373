// What the response path must do for an allowed request, written into the decision's dynamic metadata
// (where Envoy's ext_proc filter hands it to Chaperone's response processor, masking/):
//   mcp_filter — the policy's `mcp_visible` on an MCP route: which tools, resources and prompts a
//                listing may show, with the JSON-RPC method and id whose answer is filtered;
//   usage      — on an LLM route while usage is counted: whom to charge the tokens the upstream reports.
// Both are the server's to write: whatever a policy put under these keys in `dynamic_metadata` is
// replaced, so a policy cannot charge someone else's budget. An ill-formed `mcp_visible` is a policy
// error (fail closed), never an unfiltered listing. Either one removes the client's Accept-Encoding, so
// the upstream answers in a body the processor can read, and sets the header that makes Envoy run the
// processor at all (it runs only where a decision asks: xds/translate/listener.ts).
import type { UsageKey } from '../../fleet/usage-counters.ts';
import { type StructMessage, toStruct } from '../../lib/proto-struct.ts';
import { requestResponseProcessing, serverDeny } from '../result-mapper.ts';
import type { Decided, DecisionContext, Step } from './check-state.ts';

const MCP_KINDS = ['tools', 'resources', 'prompts'] as const;

export type McpVisible = Partial<Record<(typeof MCP_KINDS)[number], string[]>>;

/** `mcp_filter` as the processor reads it. */
export interface McpFilterInstruction {
  /** The listing method (tools/list, …), or null for the GET event stream (filtered by shape). */
  method: string | null;
  id: string | number | null;
  visible: McpVisible;
}

/** `usage` as the processor reads it. */
export interface UsageInstruction extends UsageKey {
  provider: string;
  api: string;
}

type Obj = Record<string, unknown>;
const isObject = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The policy's `mcp_visible`: undefined (none), the lists, or null when it is ill-formed. */
export function mcpVisibleOf(result: unknown): McpVisible | null | undefined {
  if (!isObject(result) || result['mcp_visible'] === undefined) return undefined;
  const v = result['mcp_visible'];
  if (!isObject(v)) return null;
  const out: McpVisible = {};
  for (const [kind, names] of Object.entries(v)) {
    if (!(MCP_KINDS as readonly string[]).includes(kind)) return null;
    if (!Array.isArray(names) || !names.every((n) => typeof n === 'string')) return null;
    out[kind as (typeof MCP_KINDS)[number]] = names as string[];
  }
  return out;
}

function setField(md: StructMessage, key: string, value: Obj | undefined): void {
  if (value === undefined) delete md.fields[key];
  else md.fields[key] = toStruct({ [key]: value }).fields[key]!;
}

export interface ResponseInstructionsInput {
  result: unknown;
  /** input.protocol, when the route declares one. */
  protocol: unknown;
  /** Set when usage is counted and the request is authenticated. */
  usageKey: UsageKey | null;
}

export function responseInstructions(
  decided: Decided,
  i: ResponseInstructionsInput,
  ctx: DecisionContext,
): Step<Decided> {
  const md = decided.response.dynamicMetadata;
  if (!md) return { ok: true, value: decided };
  const allowed = decided.response.okResponse !== undefined;
  const view = isObject(i.protocol) ? i.protocol : null;
  let filter: McpFilterInstruction | undefined;
  if (allowed && view?.['name'] === 'mcp') {
    const visible = mcpVisibleOf(i.result);
    if (visible === null)
      return {
        ok: false,
        deny: serverDeny('ERR_POLICY_RESULT_INVALID', ctx),
      };
    if (visible !== undefined && Object.keys(visible).length > 0)
      filter = {
        method: typeof view['method'] === 'string' ? view['method'] : null,
        id: typeof view['id'] === 'string' || typeof view['id'] === 'number' ? view['id'] : null,
        visible,
      };
  }
  setField(md, 'mcp_filter', filter as Obj | undefined);
  const charge =
    allowed && i.usageKey && view?.['name'] === 'llm'
      ? { ...i.usageKey, provider: String(view['provider']), api: String(view['api']) }
      : undefined;
  setField(md, 'usage', charge);
  // The processor reads the body: ask the upstream for it unencoded (an encoded listing is refused,
  // an encoded LLM answer goes uncounted).
  const ok = decided.response.okResponse;
  if (ok && (filter || charge)) {
    if (!ok.headersToRemove.includes('accept-encoding')) ok.headersToRemove.push('accept-encoding');
    requestResponseProcessing(ok);
  }
  return { ok: true, value: decided };
}
