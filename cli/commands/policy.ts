// `chaperone policy build|test|check`: the OPA CLI behind readable output and CI exit codes
// (0 ok, 1 a check or test failed, 2 usage error or a tool missing).

import { existsSync, statSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { parseSince } from '../../api/routes/audit.ts';
import { openAuditStore } from '../../audit/store.ts';
import { readBundle } from '../../authz-server/policy/bundle-reader.ts';
import {
  buildWasmBundle,
  formatIssue,
  runOpaCheck,
  runOpaFmtCheck,
  runOpaTest,
  runRegalLint,
} from '../../authz-server/policy/opa-runner.ts';
import { PolicyEngine } from '../../authz-server/policy/policy-engine.ts';
import { AUTHZ_DEFAULTS } from '../../config/authz-defaults.ts';
import { parseRevisionId } from '../../fleet/policy-revisions.ts';
import { PROJECT_ROOT } from '../../lib/tools.ts';
import { action } from '../exit.ts';
import { type FixtureOutcome, loadFixtures, runFixtures } from '../policy/fixtures.ts';
import { junitXml } from '../policy/junit.ts';
import { type StoreOptions, withRevisions } from '../policy/publish.ts';
import { replay } from '../policy/replay.ts';
import { registerRevisionCommands } from '../policy/revision-commands.ts';

const out = (s: string) => process.stdout.write(`${s}\n`);
const err = (s: string) => process.stderr.write(`${s}\n`);

/** Runs an action through the one CLI ending (cli/exit.ts): a missing tool is exit 2, a failure exit 1. */
function guarded(fn: (...args: any[]) => Promise<number>) {
  return action('policy', fn);
}

function requireDir(dir: string): boolean {
  if (existsSync(dir) && statSync(dir).isDirectory()) return true;
  err(`error: policy directory ${dir} does not exist`);
  return false;
}

function diffLine(d: FixtureOutcome['diffs'][number]): string {
  return `${d.field}: expected ${JSON.stringify(d.expected)}, got ${JSON.stringify(d.actual)}`;
}

async function candidateEngine(
  bundlePath: string | undefined,
  dir: string | undefined,
  entrypoint: string,
): Promise<PolicyEngine | null> {
  const tmp = await mkdtemp(join(tmpdir(), 'chaperone-candidate-'));
  try {
    let path = bundlePath;
    if (dir) {
      const built = await buildWasmBundle({
        dir,
        entrypoints: [entrypoint],
        out: join(tmp, 'bundle.tar.gz'),
      });
      if (!built.ok) {
        for (const e of built.errors) err(formatIssue(e));
        return null;
      }
      path = built.bundlePath;
    }
    const bytes = await readFile(path as string);
    return await PolicyEngine.load(readBundle(bytes, path as string), entrypoint);
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/** A published revision as the candidate (`--revision r7`), read from the same store as the decisions. */
async function revisionEngine(
  o: StoreOptions,
  text: string,
  entrypoint: string,
): Promise<PolicyEngine | null> {
  const n = parseRevisionId(text);
  if (n === null) {
    err(`error: ${JSON.stringify(text)} is not a revision id like r7`);
    return null;
  }
  const bytes = await withRevisions(o, (revisions) => revisions.bundle(n));
  if (!bytes) {
    err(`error: there is no policy revision r${n} in the store`);
    return null;
  }
  const bundle = readBundle(bytes, `r${n}`);
  bundle.revision = `r${n}`;
  return PolicyEngine.load(bundle, entrypoint);
}

/** Builds the bundle once and runs every fixture through the production path. */
async function fixtureReport(dir: string, fixtureDir: string, entrypoint: string) {
  const { cases, errors } = await loadFixtures(fixtureDir);
  const tmp = await mkdtemp(join(tmpdir(), 'chaperone-fixtures-'));
  try {
    const built = await buildWasmBundle({ dir, entrypoints: [entrypoint], out: join(tmp, 'bundle.tar.gz') });
    if (!built.ok)
      return {
        outcomes: [],
        errors: [
          ...errors,
          ...built.errors.map((e) => ({
            file: e.file ?? dir,
            ...(e.line ? { line: e.line } : {}),
            message: e.message,
          })),
        ],
      };
    const bundle = readBundle(await readFile(built.bundlePath), built.bundlePath);
    const engine = await PolicyEngine.load(bundle, entrypoint);
    return { outcomes: runFixtures(engine, bundle.revision, cases), errors };
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

export function registerPolicyCommands(program: Command): void {
  const policy = program.command('policy').description('build, test and check Rego policies');

  policy
    .command('build')
    .description(
      "compile a Rego directory to a WASM bundle (opa build -t wasm with Chaperone's capabilities)",
    )
    .option('-d, --dir <dir>', 'policy directory', AUTHZ_DEFAULTS.policyDir)
    .option(
      '-e, --entrypoint <path>',
      'decision path (repeatable)',
      (v: string, p: string[]) => [...p, v],
      [] as string[],
    )
    .option('-o, --out <file>', 'bundle file', 'bundle.tar.gz')
    .option('--capabilities <file>', 'capabilities file', join(PROJECT_ROOT, 'policies', 'capabilities.json'))
    .action(
      guarded(async (o: { dir: string; entrypoint: string[]; out: string; capabilities: string }) => {
        if (!requireDir(o.dir)) return 2;
        const entrypoints = o.entrypoint.length > 0 ? o.entrypoint : [AUTHZ_DEFAULTS.entrypoint];
        const started = Date.now();
        const res = await buildWasmBundle({
          dir: o.dir,
          entrypoints,
          out: o.out,
          capabilities: o.capabilities,
        });
        if (!res.ok) {
          for (const e of res.errors) err(formatIssue(e));
          err(`policy build failed (${res.errors.length} error${res.errors.length === 1 ? '' : 's'})`);
          return 1;
        }
        const bytes = await readFile(res.bundlePath);
        const bundle = readBundle(bytes, res.bundlePath);
        out(
          `built ${o.out}: revision ${bundle.revision}, ${(bytes.length / 1024).toFixed(1)} KiB, entrypoints ${entrypoints.join(', ')} (${Date.now() - started} ms)`,
        );
        return 0;
      }),
    );

  policy
    .command('test')
    .description('run the Rego unit tests (opa test) with coverage')
    .option('-d, --dir <dir>', 'policy directory', AUTHZ_DEFAULTS.policyDir)
    .option('--coverage-threshold <pct>', 'fail below this line coverage (0 disables)', '90')
    .option('--run <regex>', 'only tests whose name matches')
    .option('--format <fmt>', 'text or json', 'text')
    .option('--junit <file>', 'also write a JUnit XML report')
    .option('-v, --verbose', 'print passing tests too', false)
    .option(
      '--fixtures <dir>',
      'request fixtures (YAML) run through the production path (default: <dir>/fixtures)',
    )
    .option('-e, --entrypoint <path>', 'decision the fixtures evaluate', AUTHZ_DEFAULTS.entrypoint)
    .action(
      guarded(
        async (o: {
          dir: string;
          coverageThreshold: string;
          run?: string;
          format: string;
          junit?: string;
          verbose: boolean;
          fixtures?: string;
          entrypoint: string;
        }) => {
          if (!requireDir(o.dir)) return 2;
          const threshold = Number(o.coverageThreshold);
          if (!Number.isFinite(threshold) || threshold < 0 || threshold > 100) {
            err('error: --coverage-threshold must be a number from 0 to 100');
            return 2;
          }
          if (o.format === 'text')
            err(
              `chaperone policy test: ${o.dir} (opa test${threshold > 0 ? `, coverage ≥ ${threshold}%` : ''})`,
            );
          const report = await runOpaTest({
            dir: o.dir,
            coverage: threshold > 0,
            ...(o.run ? { run: o.run } : {}),
          });
          const failed = report.cases.filter((c) => c.outcome === 'fail' || c.outcome === 'error');
          const belowThreshold = report.coverage !== null && report.coverage < threshold;
          const fixtureDir = o.fixtures ?? join(o.dir, 'fixtures');
          const fixtures =
            o.fixtures || existsSync(fixtureDir)
              ? await fixtureReport(o.dir, fixtureDir, o.entrypoint)
              : null;
          const fixturesOk =
            fixtures === null || (fixtures.errors.length === 0 && fixtures.outcomes.every((f) => f.ok));
          if (o.junit) {
            await writeFile(
              o.junit,
              junitXml(
                'chaperone policy test',
                report.cases
                  .map((c) => ({
                    suite: c.pkg,
                    name: c.name,
                    file: `${c.file}:${c.line}`,
                    timeMs: c.durationMs,
                    ...(c.outcome === 'fail' || c.outcome === 'error'
                      ? { failure: c.error ?? `${c.name} failed${c.output ? `\n${c.output}` : ''}` }
                      : {}),
                    ...(c.outcome === 'skip' ? { skipped: true } : {}),
                  }))
                  .concat(
                    (fixtures?.outcomes ?? []).map((f) => ({
                      suite: `fixtures.${f.file}`,
                      name: f.name,
                      file: `${f.file}:${f.line}`,
                      timeMs: f.durationMs,
                      ...(f.ok ? {} : { failure: f.diffs.map(diffLine).join('\n') }),
                    })),
                  ),
              ),
            );
          }
          if (o.format === 'json') {
            out(
              JSON.stringify(
                { ...report, fixtures, threshold, ok: report.ok && !belowThreshold && fixturesOk },
                null,
                2,
              ),
            );
          } else {
            for (const e of report.errors) err(formatIssue(e));
            for (const c of report.cases) {
              if (c.outcome === 'pass' && !o.verbose) continue;
              const mark = c.outcome === 'pass' ? '✓' : c.outcome === 'skip' ? '-' : '✗';
              const where = c.outcome === 'pass' ? '' : `  ${c.file}:${c.line}`;
              out(`  ${mark} ${c.pkg}.${c.name}${where}${c.error ? `\n      ${c.error}` : ''}`);
            }
            if (report.coverage !== null) {
              out(
                `coverage ${report.coverage.toFixed(1)}%${threshold > 0 ? ` (threshold ${threshold}%)` : ''}`,
              );
              if (belowThreshold) {
                for (const u of report.uncovered.slice(0, 10)) {
                  out(
                    `  ${u.file}: ${u.coverage.toFixed(1)}%, not covered: lines ${u.lines.slice(0, 12).join(', ')}${u.lines.length > 12 ? ', …' : ''}`,
                  );
                }
              }
            }
            const passed = report.cases.filter((c) => c.outcome === 'pass').length;
            out(
              `${passed} passed, ${failed.length} failed${report.cases.length === 0 ? ' (no tests found)' : ''}`,
            );
            if (fixtures) {
              out(`request fixtures (${fixtureDir}, through the input builder and the compiled WASM):`);
              for (const e of fixtures.errors)
                out(`  ✗ ${e.file}${e.line ? `:${e.line}` : ''}: ${e.message}`);
              for (const f of fixtures.outcomes) {
                if (f.ok && !o.verbose) continue;
                out(`  ${f.ok ? '✓' : '✗'} ${f.name}  ${f.file}:${f.line}`);
                for (const d of f.diffs) out(`      ${diffLine(d)}`);
              }
              const fp = fixtures.outcomes.filter((f) => f.ok).length;
              out(
                `${fp} passed, ${fixtures.outcomes.length - fp} failed${fixtures.errors.length ? `, ${fixtures.errors.length} invalid` : ''}`,
              );
            }
          }
          return report.ok && !belowThreshold && report.cases.length > 0 && fixturesOk ? 0 : 1;
        },
      ),
    );

  policy
    .command('replay')
    .description('re-evaluate recorded decisions against a candidate policy and report what would change')
    .option('--since <when>', 'e.g. 24h, 7d or an ISO time', '24h')
    .option('--bundle <file>', 'the candidate bundle (from `chaperone policy build`)')
    .option('--candidate-dir <dir>', 'or a candidate Rego directory, built here')
    .option('--revision <rN>', 'or a revision published to the store (`chaperone policy revisions`)')
    .option('-e, --entrypoint <path>', 'decision path', AUTHZ_DEFAULTS.entrypoint)
    .option('--store <url>', 'PostgreSQL audit store (postgres://…, or env:NAME)')
    .option('--data-dir <dir>', 'embedded (PGlite) audit store of a stopped gateway', '.chaperone/audit')
    .option('--max-changes <n>', 'exit 1 when more decisions would change (CI gate)')
    .option('--examples <n>', 'example requests per group', '3')
    .option('--format <fmt>', 'text or json', 'text')
    .action(
      guarded(
        async (o: {
          since: string;
          bundle?: string;
          candidateDir?: string;
          revision?: string;
          entrypoint: string;
          store?: string;
          dataDir: string;
          maxChanges?: string;
          examples: string;
          format: string;
        }) => {
          if ([o.bundle, o.candidateDir, o.revision].filter(Boolean).length !== 1) {
            err('error: give the candidate as --bundle <file>, --candidate-dir <dir> or --revision <rN>');
            return 2;
          }
          const since = parseSince(o.since);
          let url = o.store;
          if (url?.startsWith('env:')) {
            url = process.env[url.slice(4)];
            if (!url) {
              err(`error: --store refers to ${o.store}, which is not set`);
              return 2;
            }
          }
          const engine = o.revision
            ? await revisionEngine({ store: url, dataDir: resolve(o.dataDir) }, o.revision, o.entrypoint)
            : await candidateEngine(o.bundle, o.candidateDir, o.entrypoint);
          if (!engine) return 1;
          const store = await openAuditStore(url ? { url } : { dataDir: resolve(o.dataDir) });
          try {
            if (o.format === 'text')
              err(
                `chaperone policy replay: decisions since ${since.toISOString()} from ${store.description}`,
              );
            const report = await replay(store, engine, {
              since,
              onProgress: (n) => err(`  replayed ${n} decisions…`),
            });
            const limit = o.maxChanges === undefined ? Number.POSITIVE_INFINITY : Number(o.maxChanges);
            const failed = report.changes.length > limit;
            if (o.format === 'json') {
              out(JSON.stringify({ ...report, max_changes: o.maxChanges ?? null, ok: !failed }, null, 2));
              return failed ? 1 : 0;
            }
            out(
              `replayed ${report.replayed} decisions (${report.skipped} skipped: no input or not decided by the policy)`,
            );
            const allowToDeny = report.changes.filter((c) => c.was === 'allow').length;
            out(
              `  ${report.unchanged} unchanged, ${allowToDeny} allow→deny, ${report.changes.length - allowToDeny} deny→allow`,
            );
            for (const [label, map] of Object.entries(report.by)) {
              const rows = Object.entries(map).sort((a, b) => b[1] - a[1]);
              if (rows.length === 0) continue;
              out(`  by ${label}: ${rows.map(([k, n]) => `${k} ${n}`).join(', ')}`);
            }
            const perGroup = new Map<string, number>();
            for (const c of report.changes) {
              const key = `${c.was}→${c.now} ${c.subject ?? '-'} ${c.target ?? '-'}`;
              const n = perGroup.get(key) ?? 0;
              if (n >= Number(o.examples)) continue;
              perGroup.set(key, n + 1);
              out(
                `    ${c.was}→${c.now}  ${c.subject ?? '-'}${c.agent ? ` via ${c.agent}` : ''}  ${c.method} ${c.path}  (${c.target ?? '-'}, ${c.decision_id})`,
              );
            }
            if (failed)
              out(`policy replay failed: ${report.changes.length} changes > --max-changes ${o.maxChanges}`);
            return failed ? 1 : 0;
          } finally {
            await store.close();
          }
        },
      ),
    );

  registerRevisionCommands(policy, guarded);

  policy
    .command('check')
    .description("opa fmt check + opa check --strict with Chaperone's capabilities and the input schema")
    .option('-d, --dir <dir>', 'policy directory', AUTHZ_DEFAULTS.policyDir)
    .option('--schema <file>', 'input JSON Schema', join(PROJECT_ROOT, 'schemas', 'input.schema.json'))
    .action(
      guarded(async (o: { dir: string; schema: string }) => {
        if (!requireDir(o.dir)) return 2;
        let failed = false;
        const fmt = await runOpaFmtCheck(o.dir);
        if (!fmt.ok) {
          failed = true;
          for (const f of fmt.files)
            out(`  ✗ fmt: ${join(o.dir, f)} is not formatted (run: opa fmt -w ${join(o.dir, f)})`);
          for (const e of fmt.errors) out(`  ✗ fmt: ${formatIssue(e)}`);
        } else out('  ✓ opa fmt');
        const check = await runOpaCheck({
          dir: o.dir,
          strict: true,
          ...(existsSync(o.schema) ? { schemaDir: resolve(o.schema) } : {}),
        });
        if (!check.ok) {
          failed = true;
          for (const e of check.errors) out(`  ✗ ${formatIssue(e)}`);
        } else out(`  ✓ opa check --strict (capabilities, input schema)`);
        const lint = await runRegalLint(o.dir);
        if (!lint.ok) failed = true;
        for (const v of lint.violations)
          out(
            `  ${v.level === 'error' ? '✗' : '!'} ${v.file}:${v.line}:${v.column}: regal ${v.category}/${v.rule}: ${v.description}`,
          );
        for (const e of lint.errors) out(`  ✗ regal: ${formatIssue(e)}`);
        if (lint.ok) out('  ✓ regal lint');
        out(failed ? 'policy check failed' : 'policy check passed');
        return failed ? 1 : 0;
      }),
    );
}
