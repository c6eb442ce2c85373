// Filtered MCP listings: the answer to tools/list, resources/list, resources/templates/list or
// prompts/list keeps only the items the decision's `mcp_filter` lets the caller see (the policy's
// `mcp_visible`, computed from the same rules that decide tools/call, resources/read, prompts/get).
// Pure: one JSON-RPC message in, the filtered message and what was hidden out. Fail closed: a listing
// whose items cannot be read (the list is not an array, an item has no name) is refused by the caller
// rather than passed on, and an item without a readable name is hidden, never shown.
import { ChaperoneError } from '../../contracts/errors.ts';
import type { McpFilterInstruction, McpVisible } from '../pipeline/response-instructions.ts';

/** Which result field each listing method fills, which item field names the item, which visible list. */
const LISTINGS = {
  'tools/list': { field: 'tools', key: 'name', kind: 'tools' },
  'resources/list': { field: 'resources', key: 'uri', kind: 'resources' },
  'resources/templates/list': { field: 'resourceTemplates', key: 'uriTemplate', kind: 'resources' },
  'prompts/list': { field: 'prompts', key: 'name', kind: 'prompts' },
} as const;

type Listing = (typeof LISTINGS)[keyof typeof LISTINGS];

/** What was hidden, per result field (names and URIs: never secret, what an auditor needs). */
export type Hidden = Partial<Record<Listing['field'], string[]>>;

/** A listing that cannot be read to filter it: it must not be sent at all. */
export class UnfilterableListingError extends ChaperoneError {
  constructor(message: string) {
    super('ERR_LISTING_NOT_FILTERABLE', message);
  }
}

type Obj = Record<string, unknown>;
const isObject = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** `*` for all; a trailing `*` (URIs) for every value that starts with the rest; else the value itself. */
export function visibleMatch(patterns: readonly string[], value: string): boolean {
  for (const p of patterns) {
    if (p === '*' || p === value) return true;
    if (p.endsWith('*') && value.startsWith(p.slice(0, -1))) return true;
  }
  return false;
}

function filterItems(result: Obj, l: Listing, visible: McpVisible, hidden: Hidden): Obj {
  const patterns = visible[l.kind];
  const items = result[l.field];
  if (patterns === undefined || items === undefined) return result;
  if (!Array.isArray(items)) throw new UnfilterableListingError(`result.${l.field} is not an array`);
  const kept: unknown[] = [];
  for (const item of items) {
    const name = isObject(item) ? item[l.key] : undefined;
    if (typeof name === 'string' && visibleMatch(patterns, name)) kept.push(item);
    else hidden[l.field] = [...(hidden[l.field] ?? []), typeof name === 'string' ? name : '(unnamed)'];
  }
  return { ...result, [l.field]: kept };
}

/**
 * One JSON-RPC message from the server: filtered when it is the answer to the filtered request (by
 * method and id; on the GET stream, any result that holds a listing), else returned as it was.
 */
export function filterListingMessage(
  message: unknown,
  filter: McpFilterInstruction,
): { message: unknown; hidden: Hidden; changed: boolean } {
  const hidden: Hidden = {};
  if (!isObject(message) || !isObject(message['result'])) return { message, hidden, changed: false };
  let listings: Listing[];
  if (filter.method !== null) {
    const l = LISTINGS[filter.method as keyof typeof LISTINGS];
    // Only the answer to this request: server requests and notifications on the stream pass.
    if (!l || !('id' in message) || message['id'] !== filter.id) return { message, hidden, changed: false };
    listings = [l];
  } else listings = Object.values(LISTINGS);
  let result = message['result'];
  for (const l of listings) result = filterItems(result, l, filter.visible, hidden);
  const changed = result !== message['result'];
  return { message: changed ? { ...message, result } : message, hidden, changed };
}

/**
 * A JSON response body (one JSON-RPC message) filtered; unparsable JSON cannot be filtered. The body
 * goes on as this parser read it (written anew): a client that reads duplicate keys another way (the
 * first `id`, the first `result`) sees what was filtered, not the upstream's other reading.
 */
export function filterListingJson(
  body: string,
  filter: McpFilterInstruction,
): { body: string; hidden: Hidden } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    throw new UnfilterableListingError('the response is not valid JSON');
  }
  if (Array.isArray(parsed)) throw new UnfilterableListingError('a JSON-RPC batch answer cannot be filtered');
  const out = filterListingMessage(parsed, filter);
  return { body: JSON.stringify(out.message), hidden: out.hidden };
}

/** Merges what several messages hid. */
export function addHidden(into: Hidden, more: Hidden): void {
  for (const [field, names] of Object.entries(more) as [keyof Hidden, string[]][])
    into[field] = [...(into[field] ?? []), ...names];
}
