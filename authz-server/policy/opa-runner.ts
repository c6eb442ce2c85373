// The OPA CLI, driven with argument arrays (never a shell) and bounded time, its output turned into
// structured results: errors with file, line and column; test cases; coverage. `chaperone policy …`,
// the authz server's directory source and the test suites all build and test Rego through here.
import { execFile } from 'node:child_process';
import { stat } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { locateTool, PROJECT_ROOT } from '../../lib/tools.ts';

export const DEFAULT_CAPABILITIES = join(PROJECT_ROOT, 'policies', 'capabilities.json');
/** Never part of a policy bundle: tests, the capabilities file, and request fixtures. */
/**
 * Never part of a policy: tests, the capabilities file, fixtures, and dot-names — a Kubernetes
 * ConfigMap mount holds every file twice more under `..data/` and `..<timestamp>/`, which would
 * redeclare every rule; `.git` and editor swap files are not policy either.
 */
export const BUILD_IGNORES = ['*_test.rego', 'capabilities.json', 'fixtures', '.*'];

export interface PolicyIssue {
  file?: string;
  line?: number;
  column?: number;
  code?: string;
  message: string;
}

export type BuildResult = { ok: true; bundlePath: string } | { ok: false; errors: PolicyIssue[] };

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

const TIMEOUT_MS = 120_000;

function runOpa(args: string[], cwd?: string): Promise<RunResult> {
  const opa = locateTool('opa');
  return new Promise((resolvePromise) => {
    execFile(
      opa,
      args,
      {
        cwd,
        timeout: TIMEOUT_MS,
        maxBuffer: 64 * 1024 * 1024,
        env: { ...process.env, OPA_TELEMETRY: 'false' },
      },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        const timedOut = err && (err as { killed?: boolean }).killed;
        resolvePromise({
          code,
          stdout,
          stderr: timedOut ? `opa ${args[0]} timed out after ${TIMEOUT_MS} ms` : stderr,
        });
      },
    );
  });
}

/** `file:row:col: message` and `file:row: message` lines in OPA's text output. */
export function parseOpaText(text: string): PolicyIssue[] {
  const issues: PolicyIssue[] = [];
  const re = /([^\s:]+\.(?:rego|json|yaml|yml)):(\d+)(?::(\d+))?: (?:(rego_[a-z_]+): )?([^\n]+)/g;
  for (const m of text.matchAll(re)) {
    issues.push({
      file: m[1]!,
      line: Number(m[2]),
      ...(m[3] ? { column: Number(m[3]) } : {}),
      ...(m[4] ? { code: m[4] } : {}),
      message: m[5]!.trim(),
    });
  }
  if (issues.length === 0 && text.trim()) issues.push({ message: text.trim().replace(/^error: /, '') });
  return issues;
}

interface OpaJsonError {
  message: string;
  code?: string;
  location?: { file?: string; row?: number; col?: number };
}

function fromJsonErrors(list: OpaJsonError[], base: string): PolicyIssue[] {
  return list.map((e) => ({
    ...(e.location?.file ? { file: relativeTo(base, e.location.file) } : {}),
    ...(e.location?.row ? { line: e.location.row } : {}),
    ...(e.location?.col ? { column: e.location.col } : {}),
    ...(e.code ? { code: e.code } : {}),
    message: e.message,
  }));
}

function relativeTo(base: string, file: string): string {
  const abs = resolve(base, file);
  const rel = relative(process.cwd(), abs);
  return rel.startsWith('..') ? abs : rel;
}

export function formatIssue(i: PolicyIssue): string {
  const where = i.file ? `${i.file}:${i.line ?? 0}${i.column ? `:${i.column}` : ''}: ` : '';
  return `${where}${i.code ? `${i.code}: ` : ''}${i.message}`;
}

function ignoreArgs(extra: string[] = []): string[] {
  return [...BUILD_IGNORES, ...extra].flatMap((p) => ['--ignore', p]);
}

/** `opa check` with Chaperone's capabilities (and optionally a schema dir), as structured issues. */
export async function runOpaCheck(o: {
  dir: string;
  strict?: boolean;
  capabilities?: string;
  schemaDir?: string;
  ignore?: string[];
}): Promise<{ ok: boolean; errors: PolicyIssue[] }> {
  const dir = resolve(o.dir);
  const args = ['check', '--format', 'json', '--capabilities', o.capabilities ?? DEFAULT_CAPABILITIES];
  if (o.strict) args.push('--strict');
  if (o.schemaDir) args.push('--schema', o.schemaDir);
  args.push(...ignoreArgs(['*.yaml', '*.yml', ...(o.ignore ?? [])]), '.');
  const res = await runOpa(args, dir);
  if (res.code === 0) return { ok: true, errors: [] };
  // OPA writes the JSON error report to stderr (stdout in some versions): try both.
  for (const text of [res.stderr, res.stdout]) {
    try {
      const parsed = JSON.parse(text) as { errors?: OpaJsonError[] };
      if (parsed.errors?.length) return { ok: false, errors: fromJsonErrors(parsed.errors, dir) };
    } catch {
      // not JSON: try the other stream, then the text parser
    }
  }
  return { ok: false, errors: parseOpaText(`${res.stdout}\n${res.stderr}`) };
}

/** `opa build -t wasm` into `out`; on failure the errors come from `opa check` (exact positions). */
export async function buildWasmBundle(o: {
  dir: string;
  entrypoints: string[];
  out: string;
  capabilities?: string;
  ignore?: string[];
}): Promise<BuildResult> {
  const dir = resolve(o.dir);
  try {
    if (!(await stat(dir)).isDirectory())
      return { ok: false, errors: [{ message: `${o.dir} is not a directory` }] };
  } catch {
    return { ok: false, errors: [{ message: `policy directory ${o.dir} does not exist` }] };
  }
  const capabilities = o.capabilities ?? DEFAULT_CAPABILITIES;
  const args = ['build', '-t', 'wasm', '--capabilities', capabilities, '-o', resolve(o.out)];
  for (const e of o.entrypoints) args.push('-e', e);
  args.push(...ignoreArgs(['*.yaml', '*.yml', ...(o.ignore ?? [])]), '.');
  const res = await runOpa(args, dir);
  if (res.code === 0) return { ok: true, bundlePath: resolve(o.out) };
  const checked = await runOpaCheck({ dir, capabilities, ...(o.ignore ? { ignore: o.ignore } : {}) });
  if (!checked.ok && checked.errors.length > 0) return { ok: false, errors: checked.errors };
  const errors = parseOpaText(res.stderr || res.stdout).map((e) =>
    e.file ? { ...e, file: relativeTo(dir, e.file) } : e,
  );
  return { ok: false, errors };
}

export interface OpaTestCase {
  name: string;
  pkg: string;
  file: string;
  line: number;
  outcome: 'pass' | 'fail' | 'error' | 'skip';
  durationMs: number;
  error?: string;
  output?: string;
}

export interface OpaTestReport {
  ok: boolean;
  cases: OpaTestCase[];
  /** Percentage of Rego lines covered (null when coverage was not run or tests failed). */
  coverage: number | null;
  /** Files below the threshold or with uncovered lines, worst first. */
  uncovered: { file: string; coverage: number; lines: number[] }[];
  errors: PolicyIssue[];
}

interface OpaTestJson {
  location?: { file?: string; row?: number };
  package?: string;
  name?: string;
  fail?: boolean;
  skip?: boolean;
  error?: { message?: string } | string;
  duration?: number;
  output?: string;
}

interface CoverageJson {
  coverage?: number;
  files?: Record<
    string,
    { coverage?: number; not_covered?: { start: { row: number }; end: { row: number } }[] }
  >;
}

/** `opa test` (then `--coverage` when everything passed), as structured results. */
export async function runOpaTest(o: {
  dir: string;
  coverage?: boolean;
  run?: string;
  ignore?: string[];
}): Promise<OpaTestReport> {
  const dir = resolve(o.dir);
  // Tests need the *_test.rego files the build ignores.
  const ignores = [
    ...BUILD_IGNORES.filter((p) => p !== '*_test.rego'),
    '*.yaml',
    '*.yml',
    ...(o.ignore ?? []),
  ];
  const base = ['test', '--format', 'json', ...ignores.flatMap((p) => ['--ignore', p])];
  if (o.run) base.push('--run', o.run);
  const res = await runOpa([...base, '.'], dir);
  let raw: OpaTestJson[];
  try {
    raw = JSON.parse(res.stdout || '[]') as OpaTestJson[];
  } catch {
    return {
      ok: false,
      cases: [],
      coverage: null,
      uncovered: [],
      errors: parseOpaText(`${res.stdout}\n${res.stderr}`),
    };
  }
  if (!Array.isArray(raw)) raw = [];
  const cases: OpaTestCase[] = raw.map((t) => {
    const outcome = t.error ? 'error' : t.fail ? 'fail' : t.skip ? 'skip' : 'pass';
    const error = typeof t.error === 'string' ? t.error : t.error?.message;
    return {
      name: t.name ?? '?',
      pkg: (t.package ?? '').replace(/^data\./, ''),
      file: t.location?.file ? relativeTo(dir, t.location.file) : '?',
      line: t.location?.row ?? 0,
      outcome,
      durationMs: (t.duration ?? 0) / 1e6,
      ...(error ? { error } : {}),
      ...(t.output ? { output: t.output } : {}),
    };
  });
  const errors = res.code !== 0 && cases.length === 0 ? parseOpaText(`${res.stdout}\n${res.stderr}`) : [];
  const ok = res.code === 0 && cases.every((c) => c.outcome !== 'fail' && c.outcome !== 'error');
  let coverage: number | null = null;
  const uncovered: OpaTestReport['uncovered'] = [];
  if (ok && o.coverage && cases.length > 0) {
    const cov = await runOpa([...base, '--coverage', '.'], dir);
    try {
      const parsed = JSON.parse(cov.stdout) as CoverageJson;
      coverage = parsed.coverage ?? null;
      for (const [file, f] of Object.entries(parsed.files ?? {})) {
        if (file.endsWith('_test.rego')) continue;
        const lines = (f.not_covered ?? []).flatMap((r) =>
          Array.from({ length: r.end.row - r.start.row + 1 }, (_, i) => r.start.row + i),
        );
        if (lines.length > 0)
          uncovered.push({ file: relativeTo(dir, file), coverage: f.coverage ?? 0, lines });
      }
      uncovered.sort((a, b) => a.coverage - b.coverage);
    } catch {
      errors.push({ message: `coverage report unreadable: ${cov.stderr.trim() || 'no output'}` });
    }
  }
  return { ok: ok && errors.length === 0, cases, coverage, uncovered, errors };
}

/** `opa fmt --list`: the files whose formatting differs from `opa fmt`. */
export async function runOpaFmtCheck(
  dir: string,
): Promise<{ ok: boolean; files: string[]; errors: PolicyIssue[] }> {
  const res = await runOpa(['fmt', '--list', '.'], resolve(dir));
  const files = res.stdout
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  if (res.code !== 0 && files.length === 0) return { ok: false, files, errors: parseOpaText(res.stderr) };
  return { ok: files.length === 0, files, errors: [] };
}

export interface LintViolation {
  rule: string;
  category: string;
  level: string;
  description: string;
  file: string;
  line: number;
  column: number;
}

/** Regal (the Rego linter) with the directory's `.regal/config.yaml` when there is one. */
export async function runRegalLint(
  dir: string,
): Promise<{ ok: boolean; violations: LintViolation[]; errors: PolicyIssue[] }> {
  const abs = resolve(dir);
  const regal = locateTool('regal');
  const config = join(abs, '.regal', 'config.yaml');
  const args = [
    'lint',
    '--format',
    'json',
    ...((await stat(config).catch(() => null)) ? ['--config-file', config] : []),
    abs,
  ];
  const res = await new Promise<RunResult>((done) =>
    execFile(regal, args, { timeout: TIMEOUT_MS, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) =>
      done({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
    ),
  );
  try {
    const report = JSON.parse(res.stdout) as {
      violations?: {
        title: string;
        category: string;
        level: string;
        description: string;
        location: { file: string; row: number; col: number };
      }[];
      errors?: string[];
    };
    const violations = (report.violations ?? []).map((v) => ({
      rule: v.title,
      category: v.category,
      level: v.level,
      description: v.description,
      file: relativeTo(abs, v.location.file),
      line: v.location.row,
      column: v.location.col,
    }));
    const errors = (report.errors ?? []).map((message) => ({ message }));
    return { ok: violations.every((v) => v.level !== 'error') && errors.length === 0, violations, errors };
  } catch {
    return { ok: false, violations: [], errors: parseOpaText(`${res.stdout}\n${res.stderr}`) };
  }
}
