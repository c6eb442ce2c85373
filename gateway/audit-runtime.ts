// The audit pipeline of a running gateway: store (PGlite or PostgreSQL) + spool + shipper + the
// recorder the authz server awaits, the access-log sink for the ALS, and the store's read side that
// the HTTP API's audit routes (api/routes/audit.ts) query.
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { BatchingAccessLogSink } from '../audit/access-log-sink.ts';
import { signAndAnchor } from '../audit/anchor.ts';
import { secureNodeState } from '../audit/node-state.ts';
import { SpoolRecorder } from '../audit/recorder.ts';
import { Shipper } from '../audit/shipper.ts';
import { Spool } from '../audit/spool.ts';
import { type AuditStore, openAuditStore } from '../audit/store.ts';
import { verifyWithTrust } from '../audit/trust.ts';
import type { Config } from '../config/types.ts';
import { ChaperoneError } from '../contracts/errors.ts';
import { AgentKeys } from '../fleet/agent-keys.ts';
import { FleetKeys } from '../fleet/fleet-keys.ts';
import { SharedState } from '../fleet/shared-state.ts';
import type { AuditRuntime } from './context.ts';

/** The audit store cannot be reached as configured (a missing env variable, a failed migration). */
export class AuditConfigError extends ChaperoneError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_AUDIT_STORE', message, options);
  }
}

export function resolveStoreUrl(config: Config, env: NodeJS.ProcessEnv = process.env): string | null {
  const store = config.audit.store;
  if (store.kind === 'embedded') return null;
  if (store.connection.startsWith('env:')) {
    const name = store.connection.slice(4);
    const url = env[name];
    if (!url)
      throw new AuditConfigError(`audit.store refers to environment variable ${name}, which is not set`);
    return url;
  }
  return store.connection;
}

/**
 * How long a spooled decision may wait for others to join its batch into the store (Shipper lingerMs):
 * it is durable from the moment its Check was answered, and only becomes queryable this much later, while
 * batches of tens instead of ones divide the per-batch work (spool read, transaction, signed checkpoint,
 * fsynced acknowledgement and anchor) by as much. The access-log sink waits as long (its own default).
 */
export const SHIP_LINGER_MS = 200;

export interface OpenedAudit extends AuditRuntime {
  store: AuditStore;
  shipper: Shipper;
}

/** This node's name in the shared state: host and API address tell nodes of one machine apart. */
export function nodeName(config: Config): string {
  return `${hostname()}/${config.controlPlane.httpAddress}`;
}

export async function openAuditRuntime(o: {
  config: Config;
  stateDir: string;
  logger: Logger;
}): Promise<OpenedAudit> {
  const url = resolveStoreUrl(o.config);
  // The state directory (keys, embedded database, spool, anchor) is this user's alone (docs/audit.md).
  await secureNodeState(o.stateDir, o.config.audit.spoolDir, o.logger);
  // The embedded database in a thread of its own: its batches never hold up a Check.
  const store = await openAuditStore(url ? { url } : { dataDir: join(o.stateDir, 'audit'), thread: true });
  try {
    await store.migrate();
  } catch (err) {
    await store.close().catch(() => undefined);
    throw new AuditConfigError(
      `audit store ${store.description}: ${err instanceof Error ? err.message : String(err)}`,
      { cause: err },
    );
  }
  // Fleet state (approvals, revocations, config revisions, public keys) lives in the same database.
  const state = await SharedState.open(store.sql, nodeName(o.config), o.logger.child({ component: 'state' }));
  const spool = await Spool.open({ dir: o.config.audit.spoolDir });
  // Every batch is committed with a checkpoint signed with Chaperone's key (the one that signs agent
  // tokens); the newest is anchored in the state directory, outside the database.
  const keys = await FleetKeys.open(state, await AgentKeys.open(o.stateDir));
  const anchor = await signAndAnchor(store, o.stateDir, o.logger);
  const shipper = new Shipper(spool, store, o.logger, { lingerMs: SHIP_LINGER_MS });
  shipper.start();
  const accessLogs = new BatchingAccessLogSink(store, o.logger);
  // Headers that carry a caller token or an injected credential are removed from stored inputs too.
  const recorder = new SpoolRecorder(spool, {
    extraSecretHeaders: [
      ...(o.config.identity ? [o.config.identity.tokenHeader] : []),
      ...o.config.targets.flatMap((t) => t.credentials.map((c) => c.header)),
      ...(o.config.audit.redactHeaders ?? []),
    ],
  });
  return {
    store,
    shipper,
    state,
    keys,
    recorder,
    recordAdmin: (a) => recorder.recordAdmin(a),
    accessLogs,
    trail: store,
    // Against this node's key store and anchor, never keys read from the database.
    verifyTrail: () => verifyWithTrust(store, { stateDir: o.stateDir }),
    status: () => ({
      store: store.description,
      spool: { dir: spool.dir, ...spool.stats() },
      shipper: shipper.stats(),
      access_logs: {
        ...accessLogs.stats(),
      },
      anchor: anchor.status(),
    }),
    close: async () => {
      const flushed = await shipper.flush(10_000).catch(() => false);
      if (!flushed) o.logger.warn('audit spool not fully shipped; it will be shipped at the next start');
      await accessLogs.close();
      await shipper.stop();
      await anchor.flush();
      await spool.close();
      await state.close();
      await store.close();
    },
  };
}
