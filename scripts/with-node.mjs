#!/usr/bin/env node
// Runs a command on Node.js 22 LTS (the line Chaperone supports; 24's V8 misreads escaped JSON keys,
// scripts/runtime-check.mjs): the machine's Node when it is new enough and sound, otherwise the one scripts/install-tools.mjs put into .tools/node. The command finds that
// node first on PATH, so `#!/usr/bin/env node` tools (vitest, tsx, npm) and any `node` the command
// starts run on it too. This keeps the README's `npm ci && npm start` / `npm ci && npm test` working
// as written on a machine whose Node is older: `npm ci` runs on the machine's Node, the product and
// the tests on 22. Usage: node scripts/with-node.mjs <command> [args…]
import { spawn } from 'node:child_process';
import { existsSync, realpathSync } from 'node:fs';
import { delimiter, dirname } from 'node:path';
import { machineNodeUsable, NODE_MAJOR, TOOLS_NODE } from './install-tools.mjs';

const [command, ...args] = process.argv.slice(2);
if (!command) {
  process.stderr.write('usage: node scripts/with-node.mjs <command> [args…]\n');
  process.exit(2);
}

function nodeBinDir() {
  // Already running on the .tools node (its folder was put on PATH by hand): use the folder that holds
  // only `node`, not the wheel's own bin/ whose `npm` script cannot run from there.
  if (existsSync(TOOLS_NODE) && realpathSync(TOOLS_NODE) === realpathSync(process.execPath)) {
    return dirname(TOOLS_NODE);
  }
  if (machineNodeUsable()) return dirname(process.execPath);
  if (existsSync(TOOLS_NODE)) return dirname(TOOLS_NODE);
  process.stderr.write(
    `Chaperone runs on Node.js ${NODE_MAJOR} LTS (or newer, once its JSON.parse is sound: scripts/runtime-check.mjs); ` +
      `this is Node.js ${process.versions.node} (${process.execPath}) ` +
      `and ${TOOLS_NODE} is missing. Run \`npm run tools\` (installs Node.js ${NODE_MAJOR} there through pip), ` +
      `or install Node.js ${NODE_MAJOR}.\n`,
  );
  process.exit(1);
}

const binDir = nodeBinDir();
const child = spawn(command, args, {
  stdio: 'inherit',
  env: {
    ...process.env,
    PATH: [binDir, process.env.PATH].filter(Boolean).join(delimiter),
    // npm hands this to lifecycle scripts and tools that re-spawn "the node that runs npm".
    npm_node_execpath: `${binDir}/node`,
    NODE: `${binDir}/node`,
  },
});
child.on('error', (err) => {
  process.stderr.write(`with-node: ${command} could not start: ${err.message}\n`);
  process.exit(127);
});
// A terminal's Ctrl-C reaches the whole foreground process group, the child included; signals sent to
// this process alone (a supervisor's SIGTERM) are passed on.
process.on('SIGINT', () => {});
for (const sig of ['SIGTERM', 'SIGHUP']) process.on(sig, () => child.kill(sig));
child.on('exit', (code, signal) => {
  if (signal) {
    process.removeAllListeners(signal);
    process.kill(process.pid, signal);
  } else process.exit(code ?? 1);
});
