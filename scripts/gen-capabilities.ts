// Writes policies/capabilities.json: OPA v1.22.2's capabilities narrowed to the builtins a policy
// compiled to WebAssembly can actually call here — those the wasm module implements itself, those
// the @open-policy-agent/opa-wasm SDK implements, and our host builtins (createHostBuiltins). With
// it, `opa build -t wasm --capabilities policies/capabilities.json` rejects a policy that would
// otherwise fail only at evaluation time ("not implemented: built-in function …").
//
// Which builtins the module implements is measured, not copied from a table: one probe policy calls
// every builtin, OPA compiles it to wasm, and the module's `builtins` export lists the ones it
// imports from the host. Usage: npx tsx scripts/gen-capabilities.ts [--check]
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { createHostBuiltins } from '../authz-server/policy/host-builtins.ts';
import { locateTool, PROJECT_ROOT } from '../lib/tools.ts';

const run = promisify(execFile);

export const OPA_CAPABILITIES_VERSION = 'v1.22.2';
export const CAPABILITIES_PATH = join(PROJECT_ROOT, 'policies', 'capabilities.json');

interface Builtin {
  name: string;
  decl: { args?: unknown[]; result?: unknown; type: string };
  [key: string]: unknown;
}

interface Capabilities {
  builtins: Builtin[];
  [key: string]: unknown;
}

// Builtins that are syntax rather than calls; the second probe module exercises them (v1 syntax).
const SYNTAX_PROBE = `package syntax

member_2 if input.x in input.y
member_3 if some k, v in input.y
template := $"x={input.x}"
metadata_rule := rego.metadata.rule()
metadata_chain := rego.metadata.chain()
printed if print("p", input.x)
unified if input.x = input.y
`;
const SYNTAX_BUILTINS = new Set([
  'eq',
  'assign',
  'internal.member_2',
  'internal.member_3',
  'internal.template_string',
  'rego.metadata.chain',
  'rego.metadata.rule',
  'print',
  'internal.print',
]);
// Exists only inside `opa test`; never part of a compiled policy.
const EXCLUDED = new Set(['internal.test_case']);

async function opa(args: string[], cwd?: string): Promise<string> {
  const { stdout } = await run(locateTool('opa'), args, { cwd, maxBuffer: 64 * 1024 * 1024 });
  return stdout;
}

// tsconfig has no DOM lib, so the WebAssembly API used here is declared by hand.
interface WasmApi {
  compile(bytes: Uint8Array): Promise<object>;
  instantiate(module: object, imports: object): Promise<{ exports: Record<string, unknown> }>;
  Module: { imports(module: object): { module: string; name: string; kind: string }[] };
  Memory: new (descriptor: { initial: number }) => { buffer: ArrayBuffer };
}
const wasmApi = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

/** Names the compiled module imports from its host (its `builtins` export). */
async function hostImportsOf(wasm: Buffer): Promise<Set<string>> {
  const module = await wasmApi.compile(wasm);
  const memory = new wasmApi.Memory({ initial: 5 });
  const env: Record<string, unknown> = {};
  for (const imp of wasmApi.Module.imports(module)) {
    env[imp.name] =
      imp.kind === 'memory'
        ? memory
        : () => {
            throw new Error(`probe module called ${imp.name}`);
          };
  }
  const instance = await wasmApi.instantiate(module, { env });
  const exports = instance.exports as Record<string, (...a: number[]) => number>;
  const addr = exports['opa_json_dump']!(exports['builtins']!());
  const bytes = new Uint8Array(memory.buffer);
  let end = addr;
  while (bytes[end] !== 0) end++;
  return new Set(Object.keys(JSON.parse(new TextDecoder().decode(bytes.subarray(addr, end)))));
}

async function buildProbe(
  dir: string,
  name: string,
  text: string,
  extraArgs: string[],
): Promise<Set<string>> {
  const sub = join(dir, name);
  await run('mkdir', ['-p', sub]);
  await writeFile(join(sub, 'probe.rego'), text);
  const bundle = join(sub, 'bundle.tar.gz');
  await opa(['build', '-t', 'wasm', ...extraArgs, '-o', bundle, join(sub, 'probe.rego')]);
  await run('tar', ['-xzf', bundle, '-C', sub, '/policy.wasm']);
  return hostImportsOf(await readFile(join(sub, 'policy.wasm')));
}

/** Builtins the wasm module needs from its host, measured with the OPA CLI. */
async function measureHostImports(all: Builtin[]): Promise<Set<string>> {
  const dir = await mkdtemp(join(tmpdir(), 'chaperone-capabilities-'));
  try {
    // Each builtin is called with `input` operands (type any), so the type checker accepts any
    // signature. v0 mode keeps the deprecated builtins (all, any, re_match, …) callable.
    const calls = all
      .filter((b) => !SYNTAX_BUILTINS.has(b.name) && !EXCLUDED.has(b.name))
      .map((b, i) => {
        const args = (b.decl.args ?? []).map((_, k) => `input.a${k}`).join(', ');
        return `r${i} := ${b.name}(${args})`;
      });
    const [calls_, syntax] = await Promise.all([
      buildProbe(dir, 'calls', `package probe\n\n${calls.join('\n')}\n`, ['--v0-compatible', '-e', 'probe']),
      buildProbe(dir, 'syntax', SYNTAX_PROBE, ['--wasm-include-print', '-e', 'syntax']),
    ]);
    return new Set([...calls_, ...syntax]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The SDK's own builtins, read from its source (the module opa.js dispatches to first). */
function sdkBuiltinNames(): Set<string> {
  const require = createRequire(import.meta.url);
  const entry = require.resolve('@open-policy-agent/opa-wasm');
  const sdk = require(join(dirname(entry), 'builtins', 'index.js')) as Record<string, unknown>;
  return new Set(Object.keys(sdk));
}

function sortDeep(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortDeep);
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.keys(value)
        .sort()
        .map((k) => [k, sortDeep((value as Record<string, unknown>)[k])]),
    );
  }
  return value;
}

export async function generateCapabilities(): Promise<string> {
  const caps = JSON.parse(await opa(['capabilities', '--version', OPA_CAPABILITIES_VERSION])) as Capabilities;
  const hostImports = await measureHostImports(caps.builtins);
  const provided = new Set([
    ...sdkBuiltinNames(),
    ...Object.keys(createHostBuiltins({ evalTimeNs: () => 0 })),
  ]);
  const unknownHost = [...provided].filter((n) => !caps.builtins.some((b) => b.name === n));
  if (unknownHost.length > 0)
    throw new Error(`not OPA ${OPA_CAPABILITIES_VERSION} builtins: ${unknownHost.join(', ')}`);
  const allowed = (name: string) => !EXCLUDED.has(name) && (!hostImports.has(name) || provided.has(name));
  // `print(…)` compiles to internal.print: offer it only if internal.print is callable.
  const builtins = caps.builtins
    .filter((b) => allowed(b.name) && (b.name !== 'print' || allowed('internal.print')))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const out: Record<string, unknown> = { ...caps, builtins };
  for (const [k, v] of Object.entries(out)) {
    if (k !== 'builtins' && Array.isArray(v) && v.every((x) => typeof x === 'string')) out[k] = [...v].sort();
  }
  return JSON.stringify(sortDeep(out), null, 2) + '\n';
}

async function main(): Promise<void> {
  const check = process.argv.includes('--check');
  const text = await generateCapabilities();
  if (check) {
    const current = await readFile(CAPABILITIES_PATH, 'utf8').catch(() => '');
    if (current !== text) {
      console.error(`${CAPABILITIES_PATH} is stale: run npx tsx scripts/gen-capabilities.ts`);
      process.exit(1);
    }
    console.log(`${CAPABILITIES_PATH} is up to date`);
    return;
  }
  await writeFile(CAPABILITIES_PATH, text);
  const names = (JSON.parse(text) as Capabilities).builtins.map((b) => b.name);
  console.log(`wrote ${CAPABILITIES_PATH}: ${names.length} builtins`);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(2);
  });
}
