// `chaperone dev token <user>`: a token for one of the demo users of a running `chaperone up --dev`,
// fetched from its HTTP API (the dev issuer mints it through a real authorization-code flow).
import type { Command } from 'commander';

export function registerDevCommands(program: Command): void {
  const dev = program.command('dev').description('helpers for `chaperone up --dev`');
  dev
    .command('token <user>')
    .description('print an access token for a demo user (alice, bob, carol)')
    .option('--api <url>', 'the running gateway HTTP API', 'http://127.0.0.1:8181')
    .option('--ttl <seconds>', 'token lifetime', '3600')
    .action(async (user: string, o: { api: string; ttl: string }) => {
      const url = `${o.api}/dev/token?user=${encodeURIComponent(user)}&ttl=${encodeURIComponent(o.ttl)}`;
      let res: Response;
      try {
        res = await fetch(url);
      } catch {
        process.stderr.write(`chaperone dev token: no gateway at ${o.api}; start one with \`npm start\`\n`);
        process.exit(2);
      }
      const body = (await res.json().catch(() => ({}))) as {
        token?: string;
        error?: string;
        users?: string[];
      };
      if (!res.ok || !body.token) {
        const hint = body.users
          ? ` (demo users: ${body.users.join(', ')})`
          : res.status === 404
            ? ' (is the gateway running with --dev?)'
            : '';
        process.stderr.write(`chaperone dev token: ${body.error ?? `HTTP ${res.status}`}${hint}\n`);
        process.exit(1);
      }
      process.stdout.write(`${body.token}\n`);
    });
}
