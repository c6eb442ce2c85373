// `chaperone approvals list|approve|deny`: the reviewer's side of human approval, through the gateway's
// HTTP API, with the reviewer's own token (the reviewer role, `access.reviewers`, is required).
import type { Command } from 'commander';
import { API_OPTION, ApiClient, type ApiOptions, TOKEN_OPTION } from '../auth/api-client.ts';
import { action } from '../exit.ts';

const withApi = (c: Command) => c.option(...API_OPTION).option(...TOKEN_OPTION);

export function registerApprovalCommands(program: Command): void {
  const approvals = program.command('approvals').description('review requests that need a human approval');

  withApi(approvals.command('list').description('pending requests you may decide'))
    .option('--status <s>', 'pending, approved, denied, used or expired', 'pending')
    .option('--json', 'JSON output', false)
    .action(
      action('approvals list', async (o: ApiOptions & { status: string; json: boolean }) => {
        const { rows } = await new ApiClient(o).get<{ rows: any[] }>(
          `/approvals?status=${encodeURIComponent(o.status)}`,
        );
        if (o.json) {
          process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
          return;
        }
        if (rows.length === 0) {
          process.stdout.write(`no ${o.status} requests\n`);
          return;
        }
        for (const r of rows) {
          const actor = r.requester.actor?.agent ? ` via agent ${r.requester.actor.agent}` : '';
          process.stdout.write(
            `${r.id}  ${r.requester.subject}${actor}  ${r.method} ${r.path}  (${r.target ?? '-'})  ${r.reason}\n`,
          );
        }
      }),
    );

  withApi(approvals.command('approve <id>').description('approve a pending request'))
    .option('--window', 'allow repeats of the same request until the grant expires (default: once)', false)
    .option('--ttl <d>', "how long the grant lasts, e.g. 15m (default: the policy's ttl)")
    .action(
      action('approvals approve', async (id: string, o: ApiOptions & { window: boolean; ttl?: string }) => {
        const r = await new ApiClient(o).post('/approvals/approve', {
          id,
          mode: o.window ? 'window' : 'once',
          ...(o.ttl ? { ttl: o.ttl } : {}),
        });
        process.stdout.write(`approved ${r.id} (${r.mode}, until ${r.expires_at})\n`);
      }),
    );

  withApi(approvals.command('deny <id>').description('deny a pending request')).action(
    action('approvals deny', async (id: string, o: ApiOptions) => {
      const r = await new ApiClient(o).post('/approvals/deny', { id });
      process.stdout.write(`denied ${r.id}\n`);
    }),
  );
}
