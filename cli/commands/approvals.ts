// `chaperone approvals list|approve|deny`: the reviewer's side of human approval, through the gateway's
// HTTP API, authenticated with the reviewer's own OIDC token (--token or CHAPERONE_TOKEN).
import type { Command } from 'commander';
import { type ApiOptions, callApi as call } from '../auth/api-client.ts';

type Common = ApiOptions;

export function registerApprovalCommands(program: Command): void {
  const approvals = program.command('approvals').description('review requests that need a human approval');
  const common = (c: Command) =>
    c
      .option('--api <url>', 'the gateway HTTP API', 'http://127.0.0.1:8181')
      .option('--token <jwt>', 'your OIDC access token (default: $CHAPERONE_TOKEN)');

  common(approvals.command('list').description('pending requests you may decide'))
    .option('--status <s>', 'pending, approved, denied, used or expired', 'pending')
    .option('--json', 'JSON output', false)
    .action(async (o: Common & { status: string; json: boolean }) => {
      const { rows } = (await call(o, 'GET', `/approvals?status=${encodeURIComponent(o.status)}`)) as {
        rows: any[];
      };
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
    });

  common(approvals.command('approve <id>').description('approve a pending request'))
    .option('--window', 'allow repeats of the same request until the grant expires (default: once)', false)
    .option('--ttl <d>', "how long the grant lasts, e.g. 15m (default: the policy's ttl)")
    .action(async (id: string, o: Common & { window: boolean; ttl?: string }) => {
      const r = await call(o, 'POST', '/approvals/approve', {
        id,
        mode: o.window ? 'window' : 'once',
        ...(o.ttl ? { ttl: o.ttl } : {}),
      });
      process.stdout.write(`approved ${r.id} (${r.mode}, until ${r.expires_at})\n`);
    });

  common(approvals.command('deny <id>').description('deny a pending request')).action(
    async (id: string, o: Common) => {
      const r = await call(o, 'POST', '/approvals/deny', { id });
      process.stdout.write(`denied ${r.id}\n`);
    },
  );
}
