// Sets up the connect-node evaluation (bench:authz --sides connect-floor): installs the pinned
// packages of this folder, links Envoy's protos from the project's @grpc/grpc-js-xds and generates
// the envoy.service.auth.v3 codecs with buf + protoc-gen-es into gen/. Idempotent.
// Usage: node bench/authz/connect-eval/setup.mjs
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, symlinkSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const DEPS = resolve(HERE, '..', '..', '..', 'node_modules', '@grpc', 'grpc-js-xds', 'deps');

function run(cmd, args) {
  const res = spawnSync(cmd, args, { cwd: HERE, stdio: 'inherit' });
  if (res.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited with ${res.status}`);
}

run('npm', ['install', '--no-audit', '--no-fund']);
mkdirSync(join(HERE, 'protos'), { recursive: true });
for (const d of ['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate']) {
  rmSync(join(HERE, 'protos', d), { force: true });
  symlinkSync(join(DEPS, d), join(HERE, 'protos', d));
}
rmSync(join(HERE, 'gen'), { recursive: true, force: true });
run(join(HERE, 'node_modules', '.bin', 'buf'), [
  'generate',
  '--path',
  'protos/envoy-api/envoy/service/auth/v3/external_auth.proto',
]);
process.stderr.write(
  'connect-eval ready: npx tsx bench/authz/run.ts --cases allow-all --sides node-floor,http2-floor,connect-floor\n',
);
