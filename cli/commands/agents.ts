// `chaperone agent token` (a short-lived agent token for the user, by RFC 8693 token exchange) and
// `chaperone agents` (the inventory) / `chaperone agents revoke` (one token, an agent, or a user's agents).
import type { Command } from 'commander';
import { type ApiOptions, callApi as call, requireUserToken } from '../auth/api-client.ts';

type Common = ApiOptions;

const withCommon = (c: Command) =>
  c
    .option('--api <url>', 'the gateway HTTP API', 'http://127.0.0.1:8181')
    .option('--token <jwt>', 'your OIDC access token (default: $CHAPERONE_TOKEN)');

export function registerAgentCommands(program: Command): void {
  const agent = program.command('agent').description('agent identities');
  withCommon(
    agent.command('token').description('exchange your token for a short-lived agent token (RFC 8693)'),
  )
    .requiredOption('--name <agent>', 'the agent name (shown in the inventory and the audit trail)')
    .option('--ttl <d>', 'lifetime, e.g. 15m or 1h (max 24h)', '1h')
    .option('--targets <a,b>', 'the only targets the agent may reach')
    .option('--json', 'print the whole token response', false)
    .action(async (o: Common & { name: string; ttl: string; targets?: string; json: boolean }) => {
      const res = await call(
        o,
        'POST',
        '/oauth/token',
        {
          grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
          subject_token: await requireUserToken(o),
          subject_token_type: 'urn:ietf:params:oauth:token-type:access_token',
          agent_name: o.name,
          ttl: o.ttl,
          ...(o.targets ? { targets: o.targets } : {}),
        },
        // RFC 8693 is a form post and authenticates by the subject token itself.
        { form: true, anonymous: true },
      );
      process.stdout.write(o.json ? `${JSON.stringify(res, null, 2)}\n` : `${res.access_token}\n`);
    });

  const agents = program.command('agents').description('the agent inventory and the kill switch');
  withCommon(
    agents
      .command('list', { isDefault: true })
      .description('every agent token: who launched it, last seen, counts'),
  )
    .option('--user <sub>', "only this user's agents")
    .option('--json', 'JSON output', false)
    .action(async (o: Common & { user?: string; json: boolean }) => {
      const { rows } = (await call(
        o,
        'GET',
        `/agents${o.user ? `?user=${encodeURIComponent(o.user)}` : ''}`,
      )) as { rows: any[] };
      if (o.json) {
        process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
        return;
      }
      process.stdout.write(
        'AGENT            USER       ISSUED               LAST SEEN            REQ  DENY  TARGETS        STATE\n',
      );
      for (const r of rows) {
        const state = r.revoked_at
          ? `revoked by ${r.revoked_by}`
          : Date.parse(r.expires_at) < Date.now()
            ? 'expired'
            : 'active';
        process.stdout.write(
          `${r.agent.padEnd(16)} ${r.user.padEnd(10)} ${r.issued_at.slice(0, 19)}  ${(r.last_seen ?? '-').slice(0, 19).padEnd(19)}  ${String(r.requests).padStart(3)}  ${String(r.denied).padStart(4)}  ${(r.targets_used.join(',') || '-').padEnd(14)} ${state}\n`,
        );
      }
    });
  const keys = program
    .command('keys')
    .description("Chaperone's signing keys (agent tokens, audit checkpoints)");
  withCommon(
    keys
      .command('rotate')
      .description('sign with a new key from now on (security group); old keys stay published'),
  ).action(async (o: Common) => {
    const res = await call(o, 'POST', '/admin/keys/rotate', {});
    process.stdout.write(
      `active key ${res.active}; retired ${res.retired} (still published for verification)\n`,
    );
  });

  withCommon(
    agents.command('revoke').description('revoke one token, an agent name, or every agent of a user'),
  )
    .option('--id <token-id>', 'one agent token')
    .option('--agent <name>', "every token of this agent (yours, or --user's)")
    .option(
      '--user <sub>',
      "every agent of this user (the kill switch; others' agents need the security group)",
    )
    .action(async (o: Common & { id?: string; agent?: string; user?: string }) => {
      const res = await call(o, 'POST', '/agents/revoke', {
        ...(o.id ? { token_id: o.id } : {}),
        ...(o.agent ? { agent: o.agent } : {}),
        ...(o.user ? { user: o.user } : {}),
      });
      process.stdout.write(`revoked ${res.revoked.length} token(s)\n`);
    });
}
