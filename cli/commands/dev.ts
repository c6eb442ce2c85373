// `chaperone dev token <user>`: a token for one of the demo users of a running `chaperone up --dev`,
// fetched from its HTTP API (the dev issuer mints it through a real authorization-code flow). The API
// serves it only in dev mode and only to loopback clients.
import type { Command } from 'commander';
import { API_OPTION, ApiClient } from '../auth/api-client.ts';
import { action, CliError, EXIT } from '../exit.ts';

export function registerDevCommands(program: Command): void {
  const dev = program.command('dev').description('helpers for `chaperone up --dev`');
  dev
    .command('token <user>')
    .description('print an access token for a demo user (alice, bob, carol)')
    .option(...API_OPTION)
    .option('--ttl <seconds>', 'token lifetime', '3600')
    .action(
      action('dev token', async (user: string, o: { api: string; ttl: string }) => {
        const path = `/dev/token?user=${encodeURIComponent(user)}&ttl=${encodeURIComponent(o.ttl)}`;
        let body: { token: string };
        try {
          body = await new ApiClient({ api: o.api }).get(path, { anonymous: true });
        } catch (err) {
          // No such route: the gateway runs without --dev (or its API is not on loopback).
          if (err instanceof CliError && err.message.startsWith('not_found'))
            throw new CliError(
              'ERR_API_REQUEST',
              `no dev tokens at ${o.api}: is the gateway running with --dev, its API on loopback?`,
              EXIT.failed,
            );
          throw err;
        }
        process.stdout.write(`${body.token}\n`);
      }),
    );
}
