// `chaperone config validate [--config chaperone.yaml] [--json]`: what `chaperone up` would refuse or
// report, checked before deploying — the file against the schema (every problem with its line), its
// translation to Envoy resources (validated as they would be published), and the policy it names, built
// and loaded with the real OPA. Exit 0 valid, 1 invalid, 2 the file cannot be read or OPA is missing
// (docs/cli.md).
import { access, constants } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { PolicyStore } from '../../authz-server/policy/policy-store.ts';
import { loadConfig } from '../../config/load-config.ts';
import type { Config } from '../../config/types.ts';
import { snapshotFor } from '../../gateway/xds-publisher.ts';
import { locateTool } from '../../lib/tools.ts';
import { action, EXIT, usage } from '../exit.ts';

export interface CheckResult {
  ok: boolean;
  /** What passed (a summary), or null when the check did not run. */
  detail: string | null;
  /** Every problem, `file:line: path: message` where known. */
  errors: string[];
}

export interface Validation {
  file: string;
  valid: boolean;
  checks: { schema: CheckResult; envoy: CheckResult; policy: CheckResult };
}

const skipped: CheckResult = { ok: false, detail: null, errors: ['not checked: the config did not load'] };

function translation(config: Config): CheckResult {
  const built = snapshotFor(config);
  if (!built.ok) return { ok: false, detail: null, errors: built.errors };
  const resources = [...built.snapshot.resources.values()].reduce((n, r) => n + r.size, 0);
  return {
    ok: true,
    detail: `${resources} resources, version ${built.snapshot.version.slice(0, 12)}`,
    errors: [],
  };
}

async function policy(config: Config): Promise<CheckResult> {
  const { source, entrypoint } = config.policy;
  const store = new PolicyStore({ ...source, entrypoint });
  const loaded = await store.reload();
  store.close();
  if (loaded)
    return {
      ok: true,
      detail: `${source.path} → revision ${store.current()!.revision} (${entrypoint})`,
      errors: [],
    };
  const err = store.lastError()!;
  const located = err.errors
    .filter((e) => e.file)
    .map((e) => `${e.file}:${e.line ?? 0}${e.column ? `:${e.column}` : ''}: ${e.message}`);
  return { ok: false, detail: null, errors: located.length > 0 ? located : [err.message] };
}

export async function validateConfig(file: string): Promise<Validation> {
  let config: Config;
  try {
    config = await loadConfig(file);
  } catch (err) {
    const schema = { ok: false, detail: null, errors: [err instanceof Error ? err.message : String(err)] };
    return { file, valid: false, checks: { schema, envoy: skipped, policy: skipped } };
  }
  const schema = { ok: true, detail: 'schema and semantics', errors: [] };
  const envoy = translation(config);
  const pol = await policy(config);
  return { file, valid: envoy.ok && pol.ok, checks: { schema, envoy, policy: pol } };
}

function render(v: Validation): string {
  const lines = [v.file];
  for (const [name, c] of Object.entries(v.checks)) {
    lines.push(`  ${c.ok ? '✓' : '✗'} ${name.padEnd(7)} ${c.ok ? c.detail : ''}`.trimEnd());
    for (const e of c.errors) lines.push(`      ${e.split('\n').join('\n      ')}`);
  }
  lines.push(v.valid ? 'valid' : 'invalid');
  return `${lines.join('\n')}\n`;
}

async function validate(o: { config: string; json: boolean }): Promise<number> {
  const file = resolve(o.config);
  // Environment, not validity: a file that is not there, or no OPA to build the policy with.
  await access(file, constants.R_OK).catch(() => {
    throw usage(`cannot read ${o.config}`);
  });
  locateTool('opa');
  const v = await validateConfig(file);
  process.stdout.write(o.json ? `${JSON.stringify(v)}\n` : render(v));
  return v.valid ? EXIT.ok : EXIT.failed;
}

export function registerConfigCommands(program: Command): void {
  const config = program.command('config').description('chaperone.yaml');
  config
    .command('validate')
    .description(
      'check a config: schema, translation to Envoy resources, policy build (exit 0 valid, 1 invalid)',
    )
    .option('-c, --config <file>', 'the config to check', 'chaperone.yaml')
    .option('--json', 'the result as one JSON object', false)
    .action(action('config validate', validate));
}
