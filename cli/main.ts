#!/usr/bin/env node
// The `chaperone` command line. Each command group lives in cli/commands/<group>.ts and registers
// itself here. Every command ends the same way (cli/exit.ts, docs/cli.md): 0 ok, 1 failed, 2 usage or
// environment, 3 not authenticated or not allowed.
import { Command } from 'commander';
import { unsoundRuntime } from '../lib/runtime-check.ts';
import { EXIT } from './exit.ts';

// Fail closed on a runtime whose JSON.parse misreads keys (lib/runtime-check.ts).
const unsound = unsoundRuntime();
if (unsound) {
  process.stderr.write(`chaperone: ${unsound}\n`);
  process.exit(EXIT.usage);
}

const program = new Command();
program
  .name('chaperone')
  .description('Identity-aware, policy-as-code gateway for AI-agent egress')
  .version('0.1.0')
  // Commander's own errors (unknown option, missing argument) are usage errors: exit 2, not its 1.
  // Subcommands inherit this, so it is set before any command group registers.
  .exitOverride((err) => process.exit(err.exitCode === 0 ? EXIT.ok : EXIT.usage));

const registrations = [
  import('./commands/policy.ts').then((m) => m.registerPolicyCommands(program)),
  import('./commands/authz.ts').then((m) => m.registerAuthzCommands(program)),
  import('./commands/up.ts').then((m) => m.registerUpCommand(program)),
  import('./commands/dev.ts').then((m) => m.registerDevCommands(program)),
  import('./commands/envoy.ts').then((m) => m.registerEnvoyCommands(program)),
  import('./commands/audit.ts').then((m) => m.registerAuditCommands(program)),
  import('./commands/approvals.ts').then((m) => m.registerApprovalCommands(program)),
  import('./commands/agents.ts').then((m) => m.registerAgentCommands(program)),
  import('./commands/login.ts').then((m) => m.registerLoginCommand(program)),
  import('./commands/config.ts').then((m) => m.registerConfigCommands(program)),
];

for (const r of await Promise.allSettled(registrations)) {
  // A command module that fails to load is a bug: say so instead of silently missing the command.
  if (r.status === 'rejected') {
    process.stderr.write(
      `chaperone: a command group failed to load: ${r.reason instanceof Error ? r.reason.stack : String(r.reason)}\n`,
    );
    process.exitCode = EXIT.failed;
  }
}
await program.parseAsync(process.argv);
