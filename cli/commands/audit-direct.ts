// Audit commands that work on the store and a node's state directory directly, not through a
// gateway's API: `audit verify` with trust from files, `audit checkpoint export` (the newest signed
// checkpoint, for a system that keeps it elsewhere) and `audit trust export` (a node's public keys,
// for `--trust` elsewhere or another node's keys/trusted.jwks). Exit codes: 0 ok, 1 the trail is
// broken (or a checkpoint cannot be vouched for), 2 usage or configuration error.
import { writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import type { Command } from 'commander';
import { ANCHOR_FILE, readCheckpointFile } from '../../audit/anchor.ts';
import {
  CHAINS,
  CHECKPOINT_FORMAT,
  type CheckpointFile,
  openCheckpoint,
  type TrustedKeys,
} from '../../audit/checkpoints.ts';
import { type AuditStore, openAuditStore } from '../../audit/store.ts';
import { loadTrustedKeys, verifyWithTrust } from '../../audit/trust.ts';
import { loadConfig } from '../../config/load-config.ts';
import { AgentKeys } from '../../fleet/agent-keys.ts';
import { resolveStoreUrl } from '../../gateway/audit-runtime.ts';

interface Where {
  config?: string;
  store?: string;
  stateDir?: string;
}

class UsageError extends Error {}

/** The store to open and the node state directory, from --config / --store / --state-dir. */
async function locate(
  o: Where,
): Promise<{ store: { url?: string; dataDir?: string } | null; stateDir: string | null }> {
  let stateDir = o.stateDir ? resolve(o.stateDir) : null;
  let store: { url?: string; dataDir?: string } | null = null;
  if (o.config) {
    const config = await loadConfig(o.config);
    const configStateDir = dirname(config.audit.spoolDir);
    stateDir ??= configStateDir;
    const url = resolveStoreUrl(config);
    store = url ? { url } : { dataDir: join(configStateDir, 'audit') };
  }
  if (o.store) {
    if (o.store.startsWith('env:')) {
      const url = process.env[o.store.slice(4)];
      if (!url)
        throw new UsageError(`--store refers to environment variable ${o.store.slice(4)}, which is not set`);
      store = { url };
    } else if (/^postgres(ql)?:\/\//.test(o.store)) store = { url: o.store };
    else store = { dataDir: resolve(o.store) };
  }
  return { store, stateDir };
}

/** Opens the store read as it is: a verifier changes nothing, not even the schema. */
async function openStore(where: { url?: string; dataDir?: string }): Promise<AuditStore> {
  const store = await openAuditStore(where);
  try {
    const versions = await store.sql
      .query<{ version: string }>('SELECT version FROM schema_migrations')
      .catch(() => [] as { version: string }[]);
    if (!versions.some((v) => v.version >= '0005'))
      throw new UsageError(
        `${store.description} has no audit trail of this version (start the gateway on it once to migrate)`,
      );
  } catch (err) {
    await store.close().catch(() => undefined);
    throw err;
  }
  return store;
}

function fail(prefix: string, err: unknown): number {
  process.stderr.write(`${prefix}: ${err instanceof Error ? err.message : String(err)}\n`);
  return 2;
}

export async function verifyDirect(
  o: Where & { trust: string[]; checkpoint: string[]; json: boolean },
): Promise<number> {
  let store: AuditStore | null = null;
  try {
    const where = await locate(o);
    if (!where.store)
      throw new UsageError(
        'give the store to verify: --config <chaperone.yaml> or --store <postgres URL | embedded data dir>',
      );
    store = await openStore(where.store);
    const verdict = await verifyWithTrust(store, {
      stateDir: where.stateDir,
      trustFiles: o.trust,
      checkpointFiles: o.checkpoint,
    });
    if (o.json) process.stdout.write(`${JSON.stringify(verdict)}\n`);
    else if (verdict.ok)
      process.stdout.write(
        `audit trail intact: ${verdict.count} records (${verdict.checkpoints} signed checkpoints), ` +
          `${verdict.access_log.count} access-log records (${verdict.access_log.checkpoints} signed checkpoints), ` +
          `${verdict.anchors} exported checkpoints held; trusted keys ${verdict.trusted_keys.join(', ')}\n`,
      );
    else process.stdout.write(`audit trail BROKEN ${brokenAt(verdict)}: ${verdict.reason}\n`);
    return verdict.ok ? 0 : 1;
  } catch (err) {
    return fail('chaperone audit verify', err);
  } finally {
    await store?.close().catch(() => undefined);
  }
}

/** "at record 7", "at access-log record 7", or "(access log)" when no one record is to blame. */
export function brokenAt(v: { chain?: string; firstBadSeq?: number }): string {
  const chain = v.chain === 'access_log' ? 'access-log record' : 'record';
  return v.firstBadSeq
    ? `at ${chain} ${v.firstBadSeq}`
    : `(${v.chain === 'access_log' ? 'access log' : 'decisions'})`;
}

/** Each checkpoint of `file` vouched for by `trust`; the reason why not otherwise. */
async function vouch(file: CheckpointFile, trust: TrustedKeys, source: string): Promise<string | null> {
  for (const chain of CHAINS) {
    const cp = file[chain];
    if (!cp) continue;
    const opened = await openCheckpoint(cp, chain, trust, `the ${chain} checkpoint of ${source}`);
    if (!opened.ok) return opened.reason;
  }
  return null;
}

async function exportCheckpoint(o: Where & { trust: string[]; out?: string }): Promise<number> {
  let store: AuditStore | null = null;
  try {
    const where = await locate(o);
    const trust = await loadTrustedKeys({ stateDir: where.stateDir, trustFiles: o.trust });
    if (trust.size === 0)
      throw new UsageError('no key to vouch for the checkpoint: give --config, --state-dir or --trust');
    let file: CheckpointFile | null = null;
    let source = '';
    // A node's anchor first: it is there while the gateway runs (the embedded store is not).
    if (where.stateDir && !o.store) {
      source = join(where.stateDir, ANCHOR_FILE);
      file = await readCheckpointFile(source);
    }
    if (!file) {
      if (!where.store)
        throw new UsageError(
          `no checkpoint anchored in ${where.stateDir ?? 'a state directory'} yet: give the store (--config, --store)`,
        );
      store = await openStore(where.store);
      file = { format: CHECKPOINT_FORMAT, written_at: '' };
      for (const chain of CHAINS) file[chain] = await store.lastCheckpoint(chain);
      source = 'the store';
      if (!file.decisions && !file.access_log)
        throw new UsageError('the store holds no signed checkpoint yet');
    }
    // Only a checkpoint a trusted key signed is worth keeping elsewhere.
    const bad = await vouch(file, trust, source);
    if (bad) {
      process.stderr.write(`chaperone audit checkpoint export: ${bad}\n`);
      return 1;
    }
    const out: CheckpointFile = { ...file, format: CHECKPOINT_FORMAT, written_at: new Date().toISOString() };
    const text = `${JSON.stringify(out, null, 2)}\n`;
    if (o.out) await writeFile(o.out, text);
    else process.stdout.write(text);
    return 0;
  } catch (err) {
    return fail('chaperone audit checkpoint export', err);
  } finally {
    await store?.close().catch(() => undefined);
  }
}

async function exportTrust(o: Where & { out?: string }): Promise<number> {
  try {
    const where = await locate(o);
    if (!where.stateDir)
      throw new UsageError('give the node: --config <chaperone.yaml> or --state-dir <dir>');
    const pinned = await AgentKeys.pinned(where.stateDir);
    if (!pinned) throw new UsageError(`no key store in ${where.stateDir}`);
    const text = `${JSON.stringify(pinned, null, 2)}\n`;
    if (o.out) await writeFile(o.out, text);
    else process.stdout.write(text);
    return 0;
  } catch (err) {
    return fail('chaperone audit trust export', err);
  }
}

const collect = (value: string, previous: string[]) => [...previous, value];

export function registerDirectAuditCommands(audit: Command): void {
  const checkpoint = audit.command('checkpoint').description('signed checkpoints of the audit trail');
  checkpoint
    .command('export')
    .description(
      'the newest signed checkpoint of each chain (head, sequence, time, signature, key id) as JSON, ' +
        'for a system that keeps it outside the database; `audit verify --checkpoint <file>` checks the ' +
        'trail still holds it. Reads the node anchor in the state directory (works while the gateway runs), ' +
        'or the store',
    )
    .option('--config <file>', 'chaperone.yaml: the node whose anchor (or store) to read')
    .option('--state-dir <dir>', "a node's state directory")
    .option('--store <url|dir>', 'read the newest checkpoint from this store instead of the anchor')
    .option('--trust <jwks>', 'more public keys that may vouch for it (repeatable)', collect, [])
    .option('-o, --out <file>', 'write to this file instead of stdout')
    .action(async (o: Where & { trust: string[]; out?: string }) => {
      process.exitCode = await exportCheckpoint(o);
    });

  const trust = audit.command('trust').description('the keys audit checkpoints are verified with');
  trust
    .command('export')
    .description(
      "a node's public signing keys (every one it ever used, and those pinned in keys/trusted.jwks) as a " +
        "JWKS: for `audit verify --trust` on another machine, or another node's keys/trusted.jwks",
    )
    .option('--config <file>', 'chaperone.yaml: the node whose key store to read')
    .option('--state-dir <dir>', "a node's state directory")
    .option('-o, --out <file>', 'write to this file instead of stdout')
    .action(async (o: Where & { out?: string }) => {
      process.exitCode = await exportTrust(o);
    });
}
