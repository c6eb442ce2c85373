// GraphQL requests as policy input: the operation that will run (type and name) and every field it
// selects as a full path (`viewer.repository.deployKeys`), fragments expanded, aliases resolved to the
// field they call. The document is read by graphql-js, the reference implementation most servers run,
// so comments, block strings and escapes are tokenised exactly as the server will; the operation is
// picked as graphql-js's executor picks it.
//
// Order matters: bounds first (query size, then tokens inside graphql-js's parser, then depth, aliases
// and fragment expansion while walking), so a small hostile document costs microseconds, not the event
// loop. Request parameters are read as GraphQL-over-HTTP defines (GET: URL query; POST: JSON body),
// and anything two servers could read differently is refused as ambiguous: parameters in the URL of a
// POST, repeated or case-variant parameter names, a GET with a body, several operations without
// `operationName`, two operations of the same name.
import {
  type DocumentNode,
  type FragmentDefinitionNode,
  GraphQLError,
  Kind,
  type OperationDefinitionNode,
  parse,
  type SelectionSetNode,
} from 'graphql';
import { ChaperoneError } from '../../contracts/errors.ts';
import type { ProtocolContext, ProtocolOutcome } from '../input/policy-input.ts';
import { foldKey, parseStrictJson } from '../input/strict-json.ts';
import { GRAPHQL_LIMITS, type GraphqlLimits } from './limits.ts';

export type OperationType = 'query' | 'mutation' | 'subscription';

export interface GraphqlView {
  name: 'graphql';
  operation_type: OperationType;
  operation_name: string | null;
  /** Every selected field as a dotted path of field names (not aliases), sorted, each once. */
  fields: string[];
  /** The top-level fields of the operation. */
  root_fields: string[];
  /** Every field name selected anywhere in the operation, sorted, each once. */
  field_names: string[];
  /** Every operation of the document (only `operation_*` runs). */
  operations: { operation_type: OperationType; operation_name: string | null }[];
  /** Deepest field nesting, fragments expanded (root fields are depth 1). */
  depth: number;
  /** Aliased fields, fragments expanded. */
  aliases: number;
}

/** The GraphQL-over-HTTP request parameters. */
const PARAMS = ['query', 'operationName', 'variables', 'extensions'] as const;
const FOLDED_PARAMS = new Map(PARAMS.map((p) => [foldKey(p), p]));

type Outcome<T> = { ok: true; value: T } | { ok: false; code: Refusal['code']; reason: string };
type Refusal = Extract<ProtocolOutcome, { ok: false }>;

const refuse = (
  code: Refusal['code'],
  reason: string,
): { ok: false; code: Refusal['code']; reason: string } => ({
  ok: false,
  code,
  reason: `GraphQL: ${reason}`,
});

interface Params {
  query: unknown;
  operationName: unknown;
  variables: unknown;
  extensions: unknown;
}

/** A parameter name spelled another way than the spec's (case-insensitive servers would read it). */
function variantOfParam(key: string): string | undefined {
  const param = FOLDED_PARAMS.get(foldKey(key));
  return param !== undefined && param !== key ? param : undefined;
}

function readParams(ctx: ProtocolContext): Outcome<Params> {
  const urlKeys = Object.keys(ctx.parsedQuery).filter((k) => FOLDED_PARAMS.has(foldKey(k)));
  if (ctx.method === 'GET') {
    if (ctx.bodyPresent) return refuse('ERR_PROTOCOL_AMBIGUOUS', 'a GET request carries a body');
    const out: Params = {
      query: undefined,
      operationName: undefined,
      variables: undefined,
      extensions: undefined,
    };
    for (const key of urlKeys) {
      const variant = variantOfParam(key);
      if (variant)
        return refuse('ERR_PROTOCOL_AMBIGUOUS', `URL parameter "${key}" is a variant of "${variant}"`);
      const values = ctx.parsedQuery[key]!;
      if (values.length !== 1) return refuse('ERR_PROTOCOL_AMBIGUOUS', `URL parameter "${key}" is repeated`);
      out[key as keyof Params] = values[0];
    }
    // GET carries variables and extensions as JSON text, read as strictly as a body.
    for (const k of ['variables', 'extensions'] as const) {
      if (typeof out[k] !== 'string') continue;
      const json = parseStrictJson(out[k] as string);
      if (!json.ok) return refuse('ERR_PROTOCOL_INVALID', `${k} is not valid JSON: ${json.message}`);
      out[k] = json.value;
    }
    return { ok: true, value: out };
  }
  if (ctx.method === 'POST') {
    if (urlKeys.length > 0)
      return refuse(
        'ERR_PROTOCOL_AMBIGUOUS',
        `a POST carries "${urlKeys[0]}" in the URL (servers differ on which wins)`,
      );
    const body = ctx.parsedBody;
    if (Array.isArray(body)) return refuse('ERR_PROTOCOL_INVALID', 'batched requests are not accepted');
    if (typeof body !== 'object' || body === null)
      return refuse('ERR_PROTOCOL_INVALID', 'a POST needs a JSON object body');
    const o = body as Record<string, unknown>;
    for (const key of Object.keys(o)) {
      const variant = variantOfParam(key);
      if (variant) return refuse('ERR_PROTOCOL_AMBIGUOUS', `body key "${key}" is a variant of "${variant}"`);
    }
    return {
      ok: true,
      value: {
        query: o['query'],
        operationName: o['operationName'],
        variables: o['variables'],
        extensions: o['extensions'],
      },
    };
  }
  return refuse('ERR_PROTOCOL_INVALID', `HTTP method ${ctx.method} is not used by GraphQL over HTTP`);
}

/** A bound or rule broken deep inside the walk: thrown there, returned by graphqlView as a refusal. */
class WalkRefusal extends ChaperoneError {
  constructor(
    readonly refusal: Refusal['code'],
    readonly reason: string,
  ) {
    super(refusal, reason);
  }
}

interface Walk {
  fragments: Map<string, FragmentDefinitionNode>;
  used: Set<string>;
  limits: GraphqlLimits;
  /** Selections visited so far over the whole document: the expansion budget. */
  visited: number;
  aliases: number;
}

interface Collected {
  paths: Set<string>;
  depth: number;
}

/** Walks a selection set with fragments expanded, enforcing the bounds on every step. */
function walk(
  w: Walk,
  set: SelectionSetNode,
  prefix: string,
  depth: number,
  onPath: string[],
  into: Collected,
) {
  for (const sel of set.selections) {
    if (++w.visited > w.limits.maxExpandedFields)
      throw new WalkRefusal(
        'ERR_PROTOCOL_LIMIT',
        `more than ${w.limits.maxExpandedFields} selections once fragments are expanded`,
      );
    if (sel.kind === Kind.FIELD) {
      if (depth > w.limits.maxDepth)
        throw new WalkRefusal(
          'ERR_PROTOCOL_LIMIT',
          `selections nest deeper than ${w.limits.maxDepth} levels`,
        );
      if (sel.alias && ++w.aliases > w.limits.maxAliases)
        throw new WalkRefusal('ERR_PROTOCOL_LIMIT', `more than ${w.limits.maxAliases} aliases`);
      const path = prefix === '' ? sel.name.value : `${prefix}.${sel.name.value}`;
      into.paths.add(path);
      if (depth > into.depth) into.depth = depth;
      if (sel.selectionSet) walk(w, sel.selectionSet, path, depth + 1, onPath, into);
    } else if (sel.kind === Kind.INLINE_FRAGMENT) {
      walk(w, sel.selectionSet, prefix, depth, onPath, into);
    } else {
      const name = sel.name.value;
      const def = w.fragments.get(name);
      if (!def) throw new WalkRefusal('ERR_PROTOCOL_INVALID', `unknown fragment "${name}"`);
      if (onPath.includes(name))
        throw new WalkRefusal('ERR_PROTOCOL_INVALID', `fragment "${name}" spreads itself`);
      w.used.add(name);
      onPath.push(name);
      walk(w, def.selectionSet, prefix, depth, onPath, into);
      onPath.pop();
    }
  }
}

/** graphql-js's executor's choice (getOperationAST + buildExecutionContext), as a typed outcome. */
function selectOperation(ops: OperationDefinitionNode[], operationName: string | null): Outcome<number> {
  if (operationName !== null) {
    const i = ops.findIndex((o) => o.name?.value === operationName);
    return i === -1
      ? refuse('ERR_PROTOCOL_INVALID', `no operation named "${operationName}"`)
      : { ok: true, value: i };
  }
  if (ops.length > 1) return refuse('ERR_PROTOCOL_AMBIGUOUS', 'several operations and no operationName');
  return { ok: true, value: 0 };
}

/** The document, parsed by graphql-js within the size and token bounds. */
function parseBounded(query: string, limits: GraphqlLimits): Outcome<DocumentNode> {
  if (Buffer.byteLength(query, 'utf8') > limits.maxQueryBytes)
    return refuse('ERR_PROTOCOL_LIMIT', `the query is larger than ${limits.maxQueryBytes} bytes`);
  try {
    return { ok: true, value: parse(query, { noLocation: true, maxTokens: limits.maxTokens }) };
  } catch (err) {
    if (!(err instanceof GraphQLError)) throw err;
    // graphql-js 16 words it "Document contains more that <n> tokens. Parsing aborted."
    if (/\d+ tokens\. Parsing aborted/.test(err.message))
      return refuse('ERR_PROTOCOL_LIMIT', `the query has more than ${limits.maxTokens} tokens`);
    return refuse('ERR_PROTOCOL_INVALID', err.message);
  }
}

interface Definitions {
  ops: OperationDefinitionNode[];
  fragments: Map<string, FragmentDefinitionNode>;
}

/** Operations and fragments of an executable document, named without clashes. */
function definitionsOf(doc: DocumentNode, limits: GraphqlLimits): Outcome<Definitions> {
  const ops: OperationDefinitionNode[] = [];
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const def of doc.definitions) {
    if (def.kind === Kind.OPERATION_DEFINITION) ops.push(def);
    else if (def.kind === Kind.FRAGMENT_DEFINITION) {
      if (fragments.has(def.name.value))
        return refuse('ERR_PROTOCOL_INVALID', `fragment "${def.name.value}" is defined twice`);
      fragments.set(def.name.value, def);
    } else return refuse('ERR_PROTOCOL_INVALID', `a ${def.kind} is not executable`);
  }
  if (ops.length === 0) return refuse('ERR_PROTOCOL_INVALID', 'the document has no operation');
  if (ops.length > limits.maxOperations)
    return refuse('ERR_PROTOCOL_LIMIT', `more than ${limits.maxOperations} operations in one document`);
  const names = new Set<string>();
  for (const op of ops) {
    const name = op.name?.value;
    if (name === undefined) continue;
    if (names.has(name)) return refuse('ERR_PROTOCOL_AMBIGUOUS', `two operations are named "${name}"`);
    names.add(name);
  }
  if (ops.length > 1 && ops.some((o) => !o.name))
    return refuse('ERR_PROTOCOL_INVALID', 'an anonymous operation must be alone in its document');
  return { ok: true, value: { ops, fragments } };
}

/**
 * Walks every operation (the server validates all of them) within the bounds; keeps the paths and
 * aliases of operation `chosen` (null: none chosen, only the bounds are checked).
 */
function walkOperations(
  defs: Definitions,
  chosen: number | null,
  limits: GraphqlLimits,
): Outcome<{ collected: Collected; aliases: number }> {
  const w: Walk = { fragments: defs.fragments, used: new Set(), limits, visited: 0, aliases: 0 };
  let collected: Collected = { paths: new Set(), depth: 0 };
  let aliases = 0;
  try {
    defs.ops.forEach((op, i) => {
      const into: Collected = { paths: new Set(), depth: 0 };
      const before = w.aliases;
      walk(w, op.selectionSet, '', 1, [], into);
      if (chosen === i) {
        collected = into;
        aliases = w.aliases - before;
      }
    });
  } catch (err) {
    if (err instanceof WalkRefusal) return refuse(err.refusal, err.reason);
    throw err;
  }
  for (const name of defs.fragments.keys()) {
    // graphql-js's validation refuses unused fragments too; refusing here keeps every fragment bounded.
    if (!w.used.has(name)) return refuse('ERR_PROTOCOL_INVALID', `fragment "${name}" is never used`);
  }
  return { ok: true, value: { collected, aliases } };
}

/** Parses and bounds one GraphQL document; the view of the operation `operationName` selects. */
export function graphqlView(
  query: string,
  operationName: string | null,
  limits: GraphqlLimits = GRAPHQL_LIMITS,
): Outcome<GraphqlView> {
  const doc = parseBounded(query, limits);
  if (!doc.ok) return doc;
  const defs = definitionsOf(doc.value, limits);
  if (!defs.ok) return defs;
  const { ops } = defs.value;
  const chosen = selectOperation(ops, operationName);
  // Bounds first: a document over a bound is refused as such even when no operation is selectable.
  const walked = walkOperations(defs.value, chosen.ok ? chosen.value : null, limits);
  if (!walked.ok) return walked;
  if (!chosen.ok) return chosen;
  const op = ops[chosen.value]!;
  const { collected, aliases } = walked.value;
  const fields = [...collected.paths].sort();
  return {
    ok: true,
    value: {
      name: 'graphql',
      operation_type: op.operation,
      operation_name: op.name?.value ?? null,
      fields,
      root_fields: fields.filter((f) => !f.includes('.')),
      field_names: [...new Set(fields.map((f) => f.slice(f.lastIndexOf('.') + 1)))].sort(),
      operations: ops.map((o) => ({ operation_type: o.operation, operation_name: o.name?.value ?? null })),
      depth: collected.depth,
      aliases,
    },
  };
}

export function parseGraphql(ctx: ProtocolContext, limits: GraphqlLimits = GRAPHQL_LIMITS): ProtocolOutcome {
  const params = readParams(ctx);
  if (!params.ok) return params;
  const { query, operationName, variables, extensions } = params.value;
  if (typeof query !== 'string' || query.trim() === '')
    return refuse('ERR_PROTOCOL_INVALID', 'query is required');
  if (operationName !== undefined && operationName !== null && typeof operationName !== 'string')
    return refuse('ERR_PROTOCOL_INVALID', 'operationName must be a string');
  for (const [k, v] of [
    ['variables', variables],
    ['extensions', extensions],
  ] as const) {
    if (v !== undefined && v !== null && (typeof v !== 'object' || Array.isArray(v)))
      return refuse('ERR_PROTOCOL_INVALID', `${k} must be an object`);
  }
  const view = graphqlView(query, typeof operationName === 'string' ? operationName : null, limits);
  if (!view.ok) return view;
  // A GET must not run a mutation (GraphQL over HTTP): refuse rather than let a cached link mutate.
  if (ctx.method === 'GET' && view.value.operation_type !== 'query')
    return refuse('ERR_PROTOCOL_INVALID', `a ${view.value.operation_type} cannot be sent with GET`);
  return view;
}
