// `chaperone audit query|tail|export|verify`: the audit trail of a running gateway, through its HTTP API
// (the embedded store belongs to the gateway process; PostgreSQL deployments use the same API). Every
// command needs the auditor role (`access.auditors`). `audit verify` with --trust/--checkpoint/--config/
// --store, `audit checkpoint export` and `audit trust export` work on the store and the state directory
// directly (audit-direct.ts): verification that must not depend on the database, nor on its writer.
import type { Command } from 'commander';
import { API_OPTION, ApiClient, type ApiOptions, TOKEN_OPTION } from '../auth/api-client.ts';
import { action, EXIT } from '../exit.ts';
import { brokenAt, registerDirectAuditCommands, verifyDirect } from './audit-direct.ts';

interface Row {
  seq?: number | string;
  time?: string;
  subject?: string | null;
  actor?: { agent?: string; sub?: string } | null;
  target?: string | null;
  method?: string;
  path?: string;
  decision?: string;
  http_status?: number;
  reason?: string;
  decision_id?: string;
  trace_id?: string | null;
}

const COLUMNS: [string, (r: Row) => string][] = [
  ['TIME', (r) => (r.time ? new Date(r.time).toISOString().replace('T', ' ').slice(0, 19) : '')],
  ['USER', (r) => r.subject ?? '-'],
  ['AGENT', (r) => r.actor?.agent ?? '-'],
  ['TARGET', (r) => r.target ?? '-'],
  ['REQUEST', (r) => `${r.method ?? ''} ${r.path ?? ''}`],
  ['DECISION', (r) => `${r.decision ?? ''} ${r.http_status ?? ''}`],
  ['TRACE', (r) => r.trace_id ?? '-'],
  ['REASON', (r) => r.reason ?? ''],
];

export function renderTable(rows: Row[]): string {
  const cells = rows.map((r) => COLUMNS.map(([, f]) => f(r)));
  const widths = COLUMNS.map(([h], i) => Math.min(48, Math.max(h.length, ...cells.map((c) => c[i]!.length))));
  const line = (cols: string[]) =>
    cols.map((c, i) => (i === cols.length - 1 ? c : c.slice(0, widths[i]).padEnd(widths[i]!))).join('  ');
  return [line(COLUMNS.map(([h]) => h)), ...cells.map(line)].join('\n');
}

function queryString(o: Record<string, string | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(o)) if (v !== undefined && v !== '') q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : '';
}

export function registerAuditCommands(program: Command): void {
  const audit = program.command('audit').description('the audit trail: decisions and access logs');

  audit
    .command('query')
    .description('decisions, newest first, filtered; a table by default, JSONL with --json')
    .option('--user <sub>', 'the human (token subject)')
    .option('--agent <name>', 'the agent acting for the user')
    .option('--target <name>', 'the target')
    .option('--decision <d>', 'allow, deny, approval_required, error or admin')
    .option('--shadow-differs', 'only decisions the shadow policy would have decided otherwise', false)
    .option('--trace <id>', 'the decisions of one trace (W3C trace id, as the TRACE column shows it)')
    .option('--since <when>', 'e.g. 24h, 30m, 7d or an ISO time', '24h')
    .option('--limit <n>', 'rows per page', '50')
    .option('--all', 'follow every page', false)
    .option('--json', 'one JSON object per line', false)
    .option(...API_OPTION)
    .option(...TOKEN_OPTION)
    .action(
      action(
        'audit query',
        async (
          o: ApiOptions & {
            user?: string;
            agent?: string;
            target?: string;
            decision?: string;
            shadowDiffers: boolean;
            trace?: string;
            since: string;
            limit: string;
            all: boolean;
            json: boolean;
          },
        ) => {
          const api = new ApiClient(o);
          let cursor: string | undefined;
          const all: Row[] = [];
          do {
            const page = await api.get<{ rows: Row[]; nextCursor?: string | null }>(
              `/audit/decisions${queryString({
                user: o.user,
                agent: o.agent,
                target: o.target,
                decision: o.decision,
                shadow: o.shadowDiffers ? 'differs' : undefined,
                trace: o.trace,
                since: o.since,
                limit: o.limit,
                cursor,
              })}`,
            );
            if (o.json) for (const r of page.rows) process.stdout.write(`${JSON.stringify(r)}\n`);
            else all.push(...page.rows);
            cursor = page.nextCursor ?? undefined;
          } while (o.all && cursor);
          if (!o.json) {
            process.stdout.write(`${renderTable(all)}\n`);
            if (cursor) process.stderr.write(`(more: --all, or narrow with --user/--target/--since)\n`);
          }
        },
      ),
    );

  audit
    .command('tail')
    .description('follow new decisions as they are recorded')
    .option('--json', 'one JSON object per line', false)
    .option('--interval <ms>', 'poll interval', '500')
    .option(...API_OPTION)
    .option(...TOKEN_OPTION)
    .action(
      action('audit tail', async (o: ApiOptions & { json: boolean; interval: string }) => {
        const api = new ApiClient(o);
        let after: string | number = 'latest';
        let header = !o.json;
        for (;;) {
          const page: { rows: Row[]; lastSeq: number | string | null } = await api.get(
            `/audit/tail?after=${after}`,
          );
          for (const r of page.rows) {
            if (o.json) process.stdout.write(`${JSON.stringify(r)}\n`);
            else {
              const table = renderTable([r]).split('\n');
              if (header) process.stdout.write(`${table[0]}\n`);
              header = false;
              process.stdout.write(`${table[1]}\n`);
            }
          }
          if (page.lastSeq !== null) after = page.lastSeq;
          await new Promise((r) => setTimeout(r, Number(o.interval)));
        }
      }),
    );

  audit
    .command('export')
    .description('the trail as JSONL, or as OPA decision-log events (--format opa), oldest first')
    .option('--format <f>', 'jsonl or opa', 'jsonl')
    .option('--since <when>', 'e.g. 24h, 7d or an ISO time', '24h')
    .option(...API_OPTION)
    .option(...TOKEN_OPTION)
    .action(
      action('audit export', async (o: ApiOptions & { format: string; since: string }) => {
        process.stdout.write(
          await new ApiClient(o).text(`/audit/export${queryString({ format: o.format, since: o.since })}`),
        );
      }),
    );

  audit
    .command('verify')
    .description(
      'check the audit trail: hash chains, signed checkpoints, coverage; names the first bad record. ' +
        'With --trust, --checkpoint, --config or --store it reads the store itself and trusts only keys ' +
        'and checkpoints from files, never from the database',
    )
    .option(...API_OPTION)
    .option(...TOKEN_OPTION)
    .option('--config <file>', 'chaperone.yaml: its store, and its state directory (key store, anchor)')
    .option('--store <url|dir>', 'a postgres:// URL, env:NAME, or an embedded (PGlite) data directory')
    .option('--state-dir <dir>', "a node's state directory: trust its key store, check its anchor")
    .option('--trust <jwks>', 'a JWKS file of public keys to trust (repeatable)', collect, [])
    .option(
      '--checkpoint <file>',
      'an exported checkpoint the trail must still hold (repeatable)',
      collect,
      [],
    )
    .option('--json', 'print the verdict as JSON', false)
    .action(
      action('audit verify', async (o: VerifyOptions) => {
        if (o.config || o.store || o.stateDir || o.trust.length > 0 || o.checkpoint.length > 0)
          return (await verifyDirect(o)) === 0 ? undefined : EXIT.failed;
        const res = await new ApiClient(o).get<{
          ok: boolean;
          count?: number;
          checkpoints?: number;
          firstBadSeq?: number;
          reason?: string;
          chain?: string;
        }>('/audit/verify');
        if (o.json) process.stdout.write(`${JSON.stringify(res)}\n`);
        else if (res.ok)
          process.stdout.write(
            `audit chain intact: ${res.count ?? 0} records, ${res.checkpoints ?? 0} signed checkpoints\n`,
          );
        else process.stdout.write(`audit chain BROKEN ${brokenAt(res)}: ${res.reason}\n`);
        return res.ok ? undefined : EXIT.failed;
      }),
    );

  registerDirectAuditCommands(audit);
}

const collect = (value: string, previous: string[]) => [...previous, value];

interface VerifyOptions extends ApiOptions {
  config?: string;
  store?: string;
  stateDir?: string;
  trust: string[];
  checkpoint: string[];
  json: boolean;
}
