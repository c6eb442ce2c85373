// GraphQL requests as policy input: the operation that will run (type and name) and its top-level
// fields, so a policy can refuse mutations or a field without parsing GraphQL in Rego. A small lexer
// and a parser for the executable subset a decision needs: operations, selection sets, aliases,
// arguments (skipped), directives (skipped), fragments (top-level spreads resolved). Several operations
// without an operationName is ambiguous; anything unparsable is refused.
import type { ProtocolContext, ProtocolOutcome } from '../input/policy-input.ts';

export interface GraphqlView {
  name: 'graphql';
  operation_type: 'query' | 'mutation' | 'subscription';
  operation_name: string | null;
  fields: string[];
}

type Tok = { k: 'name' | 'punct' | 'string' | 'number'; v: string };

class GraphqlSyntaxError extends Error {}

function lex(src: string): Tok[] {
  const toks: Tok[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i]!;
    if (c === '#') {
      while (i < src.length && src[i] !== '\n') i++;
    } else if (/[\s,\ufeff]/.test(c)) i++;
    else if (src.startsWith('"""', i)) {
      const end = src.indexOf('"""', i + 3);
      if (end === -1) throw new GraphqlSyntaxError('unterminated block string');
      toks.push({ k: 'string', v: src.slice(i + 3, end) });
      i = end + 3;
    } else if (c === '"') {
      let j = i + 1;
      while (j < src.length && src[j] !== '"') j += src[j] === '\\' ? 2 : 1;
      if (j >= src.length) throw new GraphqlSyntaxError('unterminated string');
      toks.push({ k: 'string', v: src.slice(i + 1, j) });
      i = j + 1;
    } else if (src.startsWith('...', i)) {
      toks.push({ k: 'punct', v: '...' });
      i += 3;
    } else if ('{}()[]:=@$!|&'.includes(c)) {
      toks.push({ k: 'punct', v: c });
      i++;
    } else if (/[A-Za-z_]/.test(c)) {
      const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(src.slice(i))!;
      toks.push({ k: 'name', v: m[0] });
      i += m[0].length;
    } else if (/[-0-9]/.test(c)) {
      const m = /^-?\d+(\.\d+)?([eE][+-]?\d+)?/.exec(src.slice(i));
      if (!m) throw new GraphqlSyntaxError('bad number');
      toks.push({ k: 'number', v: m[0] });
      i += m[0].length;
    } else throw new GraphqlSyntaxError(`unexpected character ${JSON.stringify(c)}`);
  }
  return toks;
}

interface Selection {
  field?: string;
  spread?: string;
  inline?: Selection[];
}

interface Operation {
  type: GraphqlView['operation_type'];
  name: string | null;
  selections: Selection[];
}

function parse(toks: Tok[]): { ops: Operation[]; fragments: Map<string, Selection[]> } {
  let p = 0;
  const peek = () => toks[p];
  const next = () => {
    const t = toks[p++];
    if (!t) throw new GraphqlSyntaxError('unexpected end of document');
    return t;
  };
  const expect = (v: string) => {
    const t = next();
    if (t.v !== v || t.k === 'string') throw new GraphqlSyntaxError(`expected "${v}"`);
  };
  // Skips a balanced (...) or [...] group, e.g. arguments or variable definitions.
  const skipGroup = (open: string, close: string) => {
    expect(open);
    let depth = 1;
    while (depth > 0) {
      const t = next();
      if (t.k === 'punct' && t.v === open) depth++;
      else if (t.k === 'punct' && t.v === close) depth--;
    }
  };
  const directives = () => {
    while (peek()?.v === '@') {
      next();
      next();
      if (peek()?.v === '(') skipGroup('(', ')');
    }
  };
  const selectionSet = (): Selection[] => {
    expect('{');
    const out: Selection[] = [];
    while (peek()?.v !== '}') {
      if (peek()?.v === '...') {
        next();
        if (peek()?.k === 'name' && peek()?.v !== 'on') {
          out.push({ spread: next().v });
          directives();
        } else {
          if (peek()?.v === 'on') {
            next();
            next();
          }
          directives();
          out.push({ inline: selectionSet() });
        }
        continue;
      }
      const first = next();
      if (first.k !== 'name') throw new GraphqlSyntaxError('expected a field');
      let field = first.v;
      if (peek()?.v === ':') {
        next(); // alias: the field is what follows
        const real = next();
        if (real.k !== 'name') throw new GraphqlSyntaxError('expected a field after an alias');
        field = real.v;
      }
      if (peek()?.v === '(') skipGroup('(', ')');
      directives();
      if (peek()?.v === '{') selectionSet();
      out.push({ field });
    }
    expect('}');
    return out;
  };
  const ops: Operation[] = [];
  const fragments = new Map<string, Selection[]>();
  while (p < toks.length) {
    const t = peek()!;
    if (t.v === '{') {
      ops.push({ type: 'query', name: null, selections: selectionSet() });
    } else if (t.k === 'name' && (t.v === 'query' || t.v === 'mutation' || t.v === 'subscription')) {
      next();
      const name = peek()?.k === 'name' ? next().v : null;
      if (peek()?.v === '(') skipGroup('(', ')');
      directives();
      ops.push({ type: t.v, name, selections: selectionSet() });
    } else if (t.k === 'name' && t.v === 'fragment') {
      next();
      const name = next().v;
      expect('on');
      next();
      directives();
      fragments.set(name, selectionSet());
    } else throw new GraphqlSyntaxError(`unexpected "${t.v}"`);
  }
  return { ops, fragments };
}

function topFields(
  sel: Selection[],
  fragments: Map<string, Selection[]>,
  seen = new Set<string>(),
): string[] {
  const out: string[] = [];
  for (const s of sel) {
    if (s.field) out.push(s.field);
    else if (s.inline) out.push(...topFields(s.inline, fragments, seen));
    else if (s.spread) {
      if (seen.has(s.spread)) throw new GraphqlSyntaxError(`fragment cycle through ${s.spread}`);
      const f = fragments.get(s.spread);
      if (!f) throw new GraphqlSyntaxError(`unknown fragment ${s.spread}`);
      out.push(...topFields(f, fragments, new Set([...seen, s.spread])));
    }
  }
  return [...new Set(out)];
}

export function parseGraphql(ctx: ProtocolContext): ProtocolOutcome {
  const invalid = (reason: string): ProtocolOutcome => ({
    ok: false,
    code: 'ERR_PROTOCOL_INVALID',
    reason: `GraphQL: ${reason}`,
  });
  let query: unknown;
  let operationName: unknown;
  if (ctx.method === 'GET') {
    query = ctx.parsedQuery['query']?.[0];
    operationName = ctx.parsedQuery['operationName']?.[0];
  } else if (ctx.method === 'POST') {
    const body = ctx.parsedBody as Record<string, unknown> | undefined;
    if (!body || typeof body !== 'object' || Array.isArray(body))
      return invalid('a POST needs a JSON object body (batches are refused)');
    query = body['query'];
    operationName = body['operationName'] ?? undefined;
  } else return invalid(`HTTP method ${ctx.method} is not used by GraphQL`);
  if (typeof query !== 'string' || query.trim() === '') return invalid('query is required');
  if (operationName !== undefined && operationName !== null && typeof operationName !== 'string')
    return invalid('operationName must be a string');
  try {
    const { ops, fragments } = parse(lex(query));
    if (ops.length === 0) return invalid('the document has no operation');
    let op: Operation | undefined;
    if (typeof operationName === 'string') {
      op = ops.find((o) => o.name === operationName);
      if (!op) return invalid(`no operation named ${operationName}`);
    } else if (ops.length > 1) {
      return {
        ok: false,
        code: 'ERR_PROTOCOL_AMBIGUOUS',
        reason: 'GraphQL: several operations and no operationName',
      };
    } else op = ops[0]!;
    // A GET must not run a mutation (GraphQL over HTTP): refuse rather than let a cached link mutate.
    if (ctx.method === 'GET' && op.type !== 'query') return invalid(`a ${op.type} cannot be sent with GET`);
    return {
      ok: true,
      value: {
        name: 'graphql',
        operation_type: op.type,
        operation_name: op.name,
        fields: topFields(op.selections, fragments),
      } satisfies GraphqlView,
    };
  } catch (err) {
    if (err instanceof GraphqlSyntaxError) return invalid(err.message);
    throw err;
  }
}
