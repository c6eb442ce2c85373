// YAML parsing that remembers where each value came from. js-yaml has no positions API, but its
// loader reports every node it composes ('open' before, 'close' after, with `state.line`); nodes
// nest, so a stack rebuilds the node tree, and walking it alongside the parsed value gives a
// field path → line table (`targets[1].upstream` → 14). A mapping's child nodes alternate key,
// value; a sequence's children are its items. Shapes the pairing cannot follow (explicit `?` keys
// without values, flow pairs inside sequences) fall back to the nearest ancestor's line.
import yaml from 'js-yaml';
import { ChaperoneError } from '../contracts/errors.ts';

interface YamlNode {
  line: number;
  children: YamlNode[];
  result: unknown;
}

interface LoaderState {
  line: number;
  result: unknown;
}

export interface YamlSource {
  data: unknown;
  /** 1-based line of the value at `path` (or of its nearest ancestor that has one). */
  lineOf(path: string): number | undefined;
}

/** The file is not YAML; the loader turns it into a ConfigError with its position. */
export class YamlSyntaxError extends ChaperoneError {
  constructor(
    readonly reason: string,
    /** 1-based. */
    readonly line: number | undefined,
    readonly column: number | undefined,
  ) {
    super('ERR_CONFIG_INVALID', reason);
  }
}

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** Appends a key to a field path: `a.b`, `a[0]`. */
export function childPath(parent: string, key: string | number): string {
  if (typeof key === 'number') return `${parent}[${key}]`;
  return parent === '' ? key : `${parent}.${key}`;
}

/** The parent of a field path (`targets[1].match` → `targets[1]` → `targets` → ''). */
export function parentPath(path: string): string {
  const m = /^(.*?)(?:\.[^.[\]]+|\[\d+\])$/.exec(path);
  return m ? m[1]! : '';
}

function index(node: YamlNode, value: unknown, path: string, lines: Map<string, number>): void {
  lines.set(path, node.line + 1);
  if (Array.isArray(value)) {
    const items = node.children;
    if (items.length !== value.length) return;
    for (const [i, item] of value.entries()) index(items[i]!, item, childPath(path, i), lines);
    return;
  }
  if (isPlainObject(value)) {
    const kids = node.children;
    for (let i = 0; i + 1 < kids.length; i += 2) {
      const key = kids[i]!.result;
      if (typeof key !== 'string' && typeof key !== 'number') return;
      const name = String(key);
      if (!Object.hasOwn(value, name)) return;
      index(kids[i + 1]!, value[name], childPath(path, name), lines);
    }
  }
}

/**
 * Parses one YAML document with the core schema (YAML 1.2 scalars: no timestamps, no `<<` merges,
 * `yes`/`no` stay strings). Anchors/aliases that would share a collection are refused: they make
 * a small file expand into a huge tree for every later walk, and a config has no need for them.
 */
export function parseYamlSource(text: string): YamlSource {
  const root: YamlNode = { line: 0, children: [], result: undefined };
  const stack: YamlNode[] = [root];
  let data: unknown;
  try {
    data = yaml.load(text, {
      schema: yaml.CORE_SCHEMA,
      listener(this: unknown, event: 'open' | 'close', state: LoaderState) {
        if (event === 'open') {
          const node: YamlNode = { line: state.line, children: [], result: undefined };
          stack[stack.length - 1]!.children.push(node);
          stack.push(node);
        } else {
          const node = stack.pop();
          if (node) node.result = state.result;
        }
      },
    } as yaml.LoadOptions);
  } catch (err) {
    if (err instanceof yaml.YAMLException) {
      // Only the reason and position: the exception's own message quotes source lines, which may
      // hold a secret someone pasted inline.
      const mark = (err as yaml.YAMLException & { mark?: { line: number; column: number } }).mark;
      throw new YamlSyntaxError(
        err.reason,
        mark ? mark.line + 1 : undefined,
        mark ? mark.column + 1 : undefined,
      );
    }
    throw err;
  }
  const shared = findSharedCollection(data);
  if (shared !== null)
    throw new YamlSyntaxError(
      `anchors/aliases of collections are not supported (at ${shared || 'the document'})`,
      undefined,
      undefined,
    );
  const lines = new Map<string, number>();
  const top = root.children[0];
  if (top) index(top, data, '', lines);
  return {
    data,
    lineOf(path: string) {
      for (let p = path; ; p = parentPath(p)) {
        const line = lines.get(p);
        if (line !== undefined) return line;
        if (p === '') return undefined;
      }
    },
  };
}

/** Path of the first collection reached twice, or null. Linear: stops at the first revisit. */
function findSharedCollection(data: unknown): string | null {
  const seen = new Set<object>();
  const walk = (v: unknown, path: string): string | null => {
    if (typeof v !== 'object' || v === null) return null;
    if (seen.has(v)) return path;
    seen.add(v);
    const entries: [string | number, unknown][] = Array.isArray(v)
      ? v.map((x, i) => [i, x])
      : Object.entries(v);
    for (const [k, x] of entries) {
      const hit = walk(x, childPath(path, k));
      if (hit !== null) return hit;
    }
    return null;
  };
  return walk(data, '');
}
