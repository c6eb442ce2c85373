// Two ways to evaluate Rego for differential tests: `opaEval` runs the real OPA CLI (the oracle), and
// `wasmEval`/`loadWasmPolicy` compile to WebAssembly with policies/capabilities.json and evaluate
// with @open-policy-agent/opa-wasm plus our host builtins (what the authz server runs). Builds are
// cached per module text and entrypoint set: building takes ~0.5 s, so tests put many rules in one
// module and build it once.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { loadPolicy } from '@open-policy-agent/opa-wasm';
import { createHostBuiltins, type HostBuiltinContext } from '../../authz-server/policy/host-builtins.ts';
import { locateTool, PROJECT_ROOT } from '../../lib/tools.ts';

const run = promisify(execFile);

export const CAPABILITIES_FILE = join(PROJECT_ROOT, 'policies', 'capabilities.json');

export class OpaCommandError extends Error {
  readonly code = 'ERR_OPA_COMMAND';
  constructor(
    readonly command: string,
    readonly output: string,
  ) {
    super(`${command} failed: ${output}`);
    this.name = 'OpaCommandError';
  }
}

async function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'chaperone-opa-'));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function writeModules(dir: string, modules: Record<string, string>): Promise<string[]> {
  const paths: string[] = [];
  for (const [i, [name, text]] of Object.entries(modules).entries()) {
    const path = join(dir, `${i}-${name.replace(/[^A-Za-z0-9_.-]/g, '_')}`.replace(/(\.rego)?$/, '.rego'));
    await writeFile(path, text);
    paths.push(path);
  }
  return paths;
}

/**
 * `opa eval --format json` of one query; the value of its first expression, or undefined when the
 * query has no result. Throws OpaCommandError when OPA reports an error.
 */
export async function opaEval(
  query: string,
  input?: unknown,
  opts: { modules?: Record<string, string> } = {},
): Promise<unknown> {
  return withTempDir(async (dir) => {
    const args = ['eval', '--format', 'json'];
    for (const path of await writeModules(dir, opts.modules ?? {})) args.push('--data', path);
    if (input !== undefined) {
      const inputPath = join(dir, 'input.json');
      await writeFile(inputPath, JSON.stringify(input));
      args.push('--input', inputPath);
    }
    args.push(query);
    let stdout: string;
    try {
      ({ stdout } = await run(locateTool('opa'), args, { maxBuffer: 64 * 1024 * 1024 }));
    } catch (err) {
      const e = err as { stdout?: string; stderr?: string; message: string };
      throw new OpaCommandError(`opa eval ${query}`, e.stdout || e.stderr || e.message);
    }
    const out = JSON.parse(stdout) as { result?: { expressions: { value: unknown }[] }[] };
    return out.result?.[0]?.expressions[0]?.value;
  });
}

/** `opa build -t wasm` with the project's capabilities; resolves to policy.wasm's bytes. */
export async function buildWasm(
  modules: Record<string, string>,
  entrypoints: string[],
  opts: { capabilities?: string } = {},
): Promise<Buffer> {
  return withTempDir(async (dir) => {
    const paths = await writeModules(dir, modules);
    const bundle = join(dir, 'bundle.tar.gz');
    const args = [
      'build',
      '-t',
      'wasm',
      '--capabilities',
      opts.capabilities ?? CAPABILITIES_FILE,
      '-o',
      bundle,
    ];
    for (const e of entrypoints) args.push('-e', e);
    try {
      await run(locateTool('opa'), [...args, ...paths]);
    } catch (err) {
      const e = err as { stdout?: string; stderr?: string; message: string };
      throw new OpaCommandError('opa build -t wasm', `${e.stderr ?? ''}${e.stdout ?? ''}` || e.message);
    }
    await run('tar', ['-xzf', bundle, '-C', dir, '/policy.wasm']);
    return readFile(join(dir, 'policy.wasm'));
  });
}

export interface WasmPolicy {
  /** The entrypoint's value, or undefined when it is undefined for this input. */
  evaluate(entrypoint: string, input?: unknown): unknown;
}

export interface WasmEvalOptions {
  /** Entrypoints to compile in; default: only the one evaluated. */
  entrypoints?: string[];
  /** The clock for time.now_ns; default: the wall clock at each evaluate. */
  evalTimeNs?: () => bigint | number;
}

const builds = new Map<string, Promise<Buffer>>();

/** Compile (cached) and load a module with the host builtins. */
export async function loadWasmPolicy(regoModule: string, opts: WasmEvalOptions = {}): Promise<WasmPolicy> {
  const entrypoints = [...new Set(opts.entrypoints ?? [])].sort();
  const key = JSON.stringify([regoModule, entrypoints]);
  let wasm = builds.get(key);
  if (!wasm) {
    wasm = buildWasm({ 'policy.rego': regoModule }, entrypoints);
    builds.set(key, wasm);
    wasm.catch(() => builds.delete(key));
  }
  let now: bigint | number = 0;
  const ctx: HostBuiltinContext = { evalTimeNs: () => now };
  const policy = await loadPolicy(await wasm, undefined, createHostBuiltins(ctx));
  return {
    evaluate(entrypoint, input) {
      now = opts.evalTimeNs ? opts.evalTimeNs() : BigInt(Date.now()) * 1_000_000n;
      const rs = policy.evaluate(input, entrypoint) as { result: unknown }[];
      return rs.length === 0 ? undefined : rs[0]!.result;
    },
  };
}

/** Build (cached), load and evaluate one entrypoint: undefined when the entrypoint is undefined. */
export async function wasmEval(
  regoModule: string,
  entrypoint: string,
  input?: unknown,
  opts: WasmEvalOptions = {},
): Promise<unknown> {
  const policy = await loadWasmPolicy(regoModule, {
    ...opts,
    entrypoints: [...(opts.entrypoints ?? []), entrypoint],
  });
  return policy.evaluate(entrypoint, input);
}
