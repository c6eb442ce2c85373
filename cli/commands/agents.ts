// `chaperone agent token` (a short-lived agent token for the user, by RFC 8693 token exchange),
// `chaperone agents` (the inventory: your own agents; everyone's with the admin or auditor role),
// `chaperone agents revoke` (one token, an agent, or a user's agents — others' need the admin role)
// and `chaperone keys rotate` (admin role).
import type { Command } from 'commander';
import { API_OPTION, ApiClient, type ApiOptions, TOKEN_OPTION } from '../auth/api-client.ts';
import { action, usage } from '../exit.ts';

const withApi = (c: Command) => c.option(...API_OPTION).option(...TOKEN_OPTION);

interface AgentRow {
  agent: string;
  user: string;
  issued_at: string;
  expires_at: string;
  last_seen: string | null;
  requests: number;
  denied: number;
  targets_used: string[];
  revoked_at: string | null;
  revoked_by: string | null;
  /** This agent name's use today (UTC), fleet-wide, all its tokens: rate limits and token budgets. */
  today?: { requests: number; tokens: number };
}

function inventoryTable(rows: AgentRow[]): string {
  const head =
    'AGENT            USER       ISSUED               LAST SEEN            REQ  DENY  TARGETS        TODAY REQ/TOKENS  STATE\n';
  return (
    head +
    rows
      .map((r) => {
        const state = r.revoked_at
          ? `revoked by ${r.revoked_by}`
          : Date.parse(r.expires_at) < Date.now()
            ? 'expired'
            : 'active';
        return `${r.agent.padEnd(16)} ${r.user.padEnd(10)} ${r.issued_at.slice(0, 19)}  ${(r.last_seen ?? '-').slice(0, 19).padEnd(19)}  ${String(r.requests).padStart(3)}  ${String(r.denied).padStart(4)}  ${(r.targets_used.join(',') || '-').padEnd(14)} ${(r.today ? `${r.today.requests}/${r.today.tokens}` : '-').padEnd(17)} ${state}\n`;
      })
      .join('')
  );
}

function registerAgentToken(program: Command): void {
  const agent = program.command('agent').description('agent identities');
  withApi(agent.command('token').description('exchange your token for a short-lived agent token (RFC 8693)'))
    .requiredOption('--name <agent>', 'the agent name (shown in the inventory and the audit trail)')
    .option('--ttl <d>', 'lifetime, e.g. 15m or 1h (max 24h)', '1h')
    .option('--targets <a,b>', 'the only targets the agent may reach')
    .option('--json', 'print the whole token response', false)
    .action(
      action(
        'agent token',
        async (o: ApiOptions & { name: string; ttl: string; targets?: string; json: boolean }) => {
          const api = new ApiClient(o);
          const res = await api.post(
            '/oauth/token',
            {
              grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
              subject_token: await api.token(),
              subject_token_type: 'urn:ietf:params:oauth:token-type:access_token',
              agent_name: o.name,
              ttl: o.ttl,
              ...(o.targets ? { targets: o.targets } : {}),
            },
            // RFC 8693 is a form post, authenticated by the subject token in it.
            { form: true, anonymous: true },
          );
          process.stdout.write(o.json ? `${JSON.stringify(res, null, 2)}\n` : `${res.access_token}\n`);
        },
      ),
    );
}

export function registerAgentCommands(program: Command): void {
  registerAgentToken(program);
  const agents = program.command('agents').description('the agent inventory and the kill switch');
  withApi(
    agents
      .command('list', { isDefault: true })
      .description('agent tokens (yours; everyone’s with the admin or auditor role): last seen, counts'),
  )
    .option('--user <sub>', "only this user's agents")
    .option('--issuer <url>', "only users of this issuer (a user's `sub` is unique within its issuer only)")
    .option('--json', 'JSON output', false)
    .action(
      action('agents', async (o: ApiOptions & { user?: string; issuer?: string; json: boolean }) => {
        const query = new URLSearchParams({
          ...(o.user ? { user: o.user } : {}),
          ...(o.issuer ? { issuer: o.issuer } : {}),
        }).toString();
        const { rows } = await new ApiClient(o).get<{ rows: AgentRow[] }>(
          `/agents${query ? `?${query}` : ''}`,
        );
        process.stdout.write(o.json ? `${JSON.stringify(rows, null, 2)}\n` : inventoryTable(rows));
      }),
    );

  withApi(agents.command('revoke').description('revoke one token, an agent name, or every agent of a user'))
    .option('--id <token-id>', 'one agent token')
    .option('--agent <name>', "every token of this agent (yours, or --user's)")
    .option('--user <sub>', "every agent of this user (the kill switch; others' agents need the admin role)")
    .option(
      '--issuer <url>',
      "--user's issuer (default: your own; alice of another issuer is another person)",
    )
    .action(
      action(
        'agents revoke',
        async (o: ApiOptions & { id?: string; agent?: string; user?: string; issuer?: string }) => {
          if (!o.id && !o.agent && !o.user) throw usage('give --id, --agent or --user');
          const res = await new ApiClient(o).post('/agents/revoke', {
            ...(o.id ? { token_id: o.id } : {}),
            ...(o.agent ? { agent: o.agent } : {}),
            ...(o.user ? { user: o.user } : {}),
            ...(o.issuer ? { issuer: o.issuer } : {}),
          });
          process.stdout.write(`revoked ${res.revoked.length} token(s)\n`);
        },
      ),
    );

  const keys = program
    .command('keys')
    .description("Chaperone's signing keys (agent tokens, audit checkpoints)");
  withApi(
    keys
      .command('rotate')
      .description('sign with a new key from now on (admin role); old keys stay published'),
  ).action(
    action('keys rotate', async (o: ApiOptions) => {
      const res = await new ApiClient(o).post('/admin/keys/rotate', {});
      process.stdout.write(
        `active key ${res.active}; retired ${res.retired} (still published for verification)\n`,
      );
    }),
  );
}
