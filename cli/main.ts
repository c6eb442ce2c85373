// The `chaperone` command line. Each command group lives in cli/commands/<group>.ts and registers
// itself here; exit codes: 0 ok, 1 a check failed (tests, policy), 2 usage or configuration error.
import { Command } from 'commander';

const program = new Command();
program.name('chaperone').description('Identity-aware, policy-as-code gateway for AI-agent egress').version('0.1.0');

const registrations = [
  import('./commands/policy.ts').then((m) => m.registerPolicyCommands(program)),
  import('./commands/authz.ts').then((m) => m.registerAuthzCommands(program)),
  import('./commands/up.ts').then((m) => m.registerUpCommand(program)),
  import('./commands/dev.ts').then((m) => m.registerDevCommands(program)),
  import('./commands/envoy.ts').then((m) => m.registerEnvoyCommands(program)),
];

for (const r of await Promise.allSettled(registrations)) {
  // A command group still being written must not break the others.
  if (r.status === 'rejected' && process.env['CHAPERONE_DEBUG']) console.error(r.reason);
}
await program.parseAsync(process.argv);
