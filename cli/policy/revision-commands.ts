// `chaperone policy publish <dir|bundle>`, `policy revisions [--json]`, `policy rollback <rev>`:
// the fleet's policy in the shared store. Exit codes as the other policy commands: 0 done, 1 refused
// (build failed, no such revision), 2 usage error.
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { DEFAULT_BUNDLE_ALGORITHM } from '../../authz-server/policy/bundle-keys.ts';
import { DEFAULT_CAPABILITIES } from '../../authz-server/policy/opa-runner.ts';
import { AUTHZ_DEFAULTS } from '../../config/authz-defaults.ts';
import {
  type PolicyActivation,
  type PolicyRevision,
  PolicyRevisionError,
  parseRevisionId,
} from '../../fleet/policy-revisions.ts';
import {
  type PrepareOptions,
  preparePublish,
  type StoreOptions,
  storeUrlOf,
  withRevisions,
} from './publish.ts';

const out = (s: string) => process.stdout.write(`${s}\n`);
const err = (s: string) => process.stderr.write(`${s}\n`);

type Guarded = (fn: (...args: any[]) => Promise<number>) => (...args: unknown[]) => Promise<void>;

/** A key given as a plain path is a file; `env:NAME` and `file:/path` are taken as they are. */
const keyRef = (v: string) => (/^(env|file):/.test(v) ? v : `file:${resolve(v)}`);

function storeOptions(cmd: Command): Command {
  return cmd
    .option('--store <url>', 'the shared PostgreSQL (postgres://…, or env:NAME)')
    .option('--data-dir <dir>', 'or the embedded (PGlite) store of a stopped gateway', '.chaperone/audit');
}

const storeOf = (o: { store?: string; dataDir: string }): StoreOptions => ({
  ...(o.store ? { store: o.store } : {}),
  dataDir: resolve(o.dataDir),
});

function describeRevision(r: PolicyRevision, active: PolicyActivation | null): string {
  const mark = active?.revision === r.revision ? '* ' : '  ';
  return `${mark}${r.id.padEnd(6)} ${r.createdAt}  sha256 ${r.sha256.slice(0, 16)}  ${
    r.signedBy ? `signed (${r.signedBy})` : 'UNSIGNED'
  }  ${(r.sizeBytes / 1024).toFixed(1)} KiB  by ${r.publishedBy}  from ${r.source}${r.note ? `  — ${r.note}` : ''}`;
}

/** `policy publish`'s flags: what preparePublish takes (the key as given), and where and how to publish. */
interface PublishFlags extends Omit<PrepareOptions, 'input'> {
  note?: string;
  json: boolean;
  store?: string;
  dataDir: string;
}

async function publish(input: string, o: PublishFlags): Promise<number> {
  storeUrlOf(storeOf(o)); // before a build that may take a while
  const prepared = await preparePublish({
    input,
    entrypoint: o.entrypoint,
    capabilities: o.capabilities,
    signingAlg: o.signingAlg,
    keyId: o.keyId,
    ...(o.signingKey ? { signingKey: keyRef(o.signingKey) } : {}),
    ...(o.scope ? { scope: o.scope } : {}),
  });
  if (!prepared.signedBy)
    err('warning: publishing an UNSIGNED bundle; nodes with policy.signing keys will refuse it');
  const result = await withRevisions(storeOf(o), async (revisions) => {
    const active = await revisions.active();
    const current = active ? await revisions.get(active.revision) : null;
    if (current?.sha256 === prepared.bundle.sha256)
      return { revision: current, activation: active, unchanged: true };
    const published = await revisions.publish({
      bundle: prepared.bytes,
      sha256: prepared.bundle.sha256,
      entrypoints: prepared.bundle.entrypoints,
      signedBy: prepared.signedBy,
      manifestRevision: prepared.bundle.manifestRevision,
      source: input,
      note: o.note ?? null,
    });
    return { ...published, unchanged: false };
  });
  if (o.json) out(JSON.stringify(result, null, 2));
  else if (result.unchanged)
    out(`${result.revision.id} already is the fleet's policy (same bundle); nothing published`);
  else
    out(
      `published ${result.revision.id} (sha256 ${result.revision.sha256.slice(0, 16)}, ${
        result.revision.signedBy ? `signed by ${result.revision.signedBy}` : 'unsigned'
      }): the fleet's authz servers load it now`,
    );
  return 0;
}

async function listRevisions(o: {
  json: boolean;
  limit: string;
  store?: string;
  dataDir: string;
}): Promise<number> {
  const limit = Number(o.limit);
  const { active, revisions, activations } = await withRevisions(storeOf(o), async (r) => ({
    active: await r.active(),
    revisions: await r.list(limit),
    activations: await r.activations(limit),
  }));
  if (o.json) {
    out(JSON.stringify({ active: active?.id ?? null, revisions, activations }, null, 2));
    return 0;
  }
  if (revisions.length === 0) {
    out('no policy revision published yet (nodes serve their own policy)');
    return 0;
  }
  for (const r of revisions) out(describeRevision(r, active));
  if (active)
    out(`active: ${active.id} (${active.reason} by ${active.activatedBy} at ${active.activatedAt})`);
  return 0;
}

async function rollback(rev: string, o: { store?: string; dataDir: string }): Promise<number> {
  const n = parseRevisionId(rev);
  if (n === null) {
    err(`error: ${JSON.stringify(rev)} is not a revision id like r7 (see \`chaperone policy revisions\`)`);
    return 2;
  }
  try {
    const a = await withRevisions(storeOf(o), (r) => r.rollback(n));
    out(`${a.id} is the fleet's policy again (rollback by ${a.activatedBy}); the authz servers load it now`);
    return 0;
  } catch (e) {
    if (!(e instanceof PolicyRevisionError)) throw e;
    err(`error: ${e.message}`);
    return 1;
  }
}

export function registerRevisionCommands(policy: Command, guarded: Guarded): void {
  storeOptions(
    policy
      .command('publish <dir|bundle>')
      .description(
        "build (Chaperone's capabilities), sign and publish a policy revision to the fleet's store",
      )
      .option('-e, --entrypoint <path>', 'decision path the fleet evaluates', AUTHZ_DEFAULTS.entrypoint)
      .option('--capabilities <file>', 'capabilities file for building a directory', DEFAULT_CAPABILITIES)
      .option(
        '--signing-key <file|env:NAME>',
        'PEM private key (RS*/PS*/ES*) or HMAC secret (HS*): sign the bundle',
      )
      .option('--signing-alg <alg>', 'signature algorithm', DEFAULT_BUNDLE_ALGORITHM)
      .option('--key-id <id>', 'key id in the signature (what nodes look the key up by)', 'default')
      .option('--scope <scope>', 'scope claim of the signature')
      .option('--note <text>', 'a note kept with the revision (a commit id, a ticket)')
      .option('--json', 'print the result as JSON', false),
  ).action(guarded(publish));

  storeOptions(
    policy
      .command('revisions')
      .description('list the policy revisions published to the store, the active one marked *')
      .option('--limit <n>', 'how many', '50')
      .option('--json', 'as JSON', false),
  ).action(guarded(listRevisions));

  storeOptions(
    policy.command('rollback <rev>').description('make an earlier revision (r7) the fleet policy again'),
  ).action(guarded(rollback));
}
