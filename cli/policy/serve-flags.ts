// The fleet-policy flags of `chaperone authz serve`, named as `opa run` names them where OPA has one
// (`--verification-key`, `--verification-key-id`, `--signing-alg`, `--scope`, `--exclude-files-verify`),
// turned into the same settings `policy.signing`, `policy.bundle_url` and `decision_logs` give
// `chaperone up` in chaperone.yaml.
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { DEFAULT_BUNDLE_ALGORITHM } from '../../authz-server/policy/bundle-keys.ts';
import { CONFIG_DEFAULTS } from '../../config/defaults.ts';
import type { BundleServiceConfig, BundleSigningConfig, DecisionLogsConfig } from '../../config/types.ts';

export interface FleetPolicyFlags {
  verificationKey?: string;
  verificationKeyId: string;
  signingAlg: string;
  scope?: string;
  excludeFilesVerify: string[];
  bundleUrl?: string;
  bundleToken?: string;
  bundlePolling?: string;
  decisionLogsUrl?: string;
  decisionLogsToken?: string;
  decisionLogsDelay?: string;
  shadowRevision?: string;
}

const collect = (value: string, previous: string[]) => [...previous, value];
/** A plain path is a file; `env:NAME`, `file:/path` (and for public keys an inline PEM) as given. */
const ref = (v: string) => (/^(env|file):|^-----BEGIN /.test(v) ? v : `file:${resolve(v)}`);

export function addFleetPolicyFlags(cmd: Command): Command {
  return cmd
    .option(
      '--verification-key <file|env:NAME>',
      'verify bundle signatures: PEM public key (RS*/PS*/ES*) or HMAC secret',
    )
    .option('--verification-key-id <id>', 'id of the verification key (the signature names it)', 'default')
    .option('--signing-alg <alg>', 'algorithm of the verification key', DEFAULT_BUNDLE_ALGORITHM)
    .option('--scope <scope>', 'scope the bundle signature must carry')
    .option(
      '--exclude-files-verify <glob>',
      'bundle file not covered by the signature (repeatable)',
      collect,
      [],
    )
    .option('--bundle-url <url>', 'follow a bundle server (OPA bundle protocol: ETag polling)')
    .option('--bundle-token <env:NAME|file:/path>', 'bearer token for --bundle-url')
    .option('--bundle-polling <min:max>', 'seconds between two polls of --bundle-url (default 60:120)')
    .option('--shadow-revision <rN>', 'shadow mode: a revision published to the store (with --store)')
    .option('--decision-logs-url <url>', 'push OPA decision logs (gzip JSON batches) to this endpoint')
    .option('--decision-logs-token <env:NAME|file:/path>', 'bearer token for --decision-logs-url')
    .option('--decision-logs-delay <min:max>', 'seconds between two uploads (default 5:10)');
}

function delays(text: string | undefined, flag: string, d: { min: number; max: number }) {
  if (!text) return { minDelaySec: d.min, maxDelaySec: d.max };
  const [min, max = min] = text.split(':').map(Number) as [number, number?];
  if (!(min > 0) || !(max! >= min))
    throw new Error(`${flag} must be <min>:<max> seconds, min > 0, max ≥ min`);
  return { minDelaySec: min, maxDelaySec: max! };
}

export function signingFromFlags(o: FleetPolicyFlags): BundleSigningConfig | null {
  if (!o.verificationKey) return null;
  return {
    keyid: null,
    scope: o.scope ?? null,
    excludeFiles: o.excludeFilesVerify,
    keys: { [o.verificationKeyId]: { algorithm: o.signingAlg, key: ref(o.verificationKey), scope: null } },
  };
}

export function bundleServiceFromFlags(o: FleetPolicyFlags): BundleServiceConfig | null {
  if (!o.bundleUrl) return null;
  return {
    url: o.bundleUrl,
    token: o.bundleToken ? ref(o.bundleToken) : null,
    ...delays(o.bundlePolling, '--bundle-polling', CONFIG_DEFAULTS.bundlePolling),
  };
}

export function decisionLogsFromFlags(o: FleetPolicyFlags): DecisionLogsConfig | null {
  if (!o.decisionLogsUrl) return null;
  const d = CONFIG_DEFAULTS.decisionLogs;
  return {
    url: o.decisionLogsUrl,
    token: o.decisionLogsToken ? ref(o.decisionLogsToken) : null,
    ...delays(o.decisionLogsDelay, '--decision-logs-delay', d.delays),
    bufferSizeLimitBytes: d.bufferSizeLimitBytes,
    uploadSizeLimitBytes: d.uploadSizeLimitBytes,
  };
}
