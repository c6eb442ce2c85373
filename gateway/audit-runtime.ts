// The audit pipeline of a running gateway: store (PGlite or PostgreSQL) + spool + shipper + the
// recorder the authz server awaits, the access-log sink for the ALS, and the store's read side that
// the HTTP API's audit routes (api/routes/audit.ts) query.
import { randomUUID } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { BatchingAccessLogSink } from '../audit/access-log-sink.ts';
import { SpoolRecorder } from '../audit/recorder.ts';
import type { DecisionRecord } from '../audit/records.ts';
import { Shipper } from '../audit/shipper.ts';
import { Spool } from '../audit/spool.ts';
import { type AuditStore, openAuditStore } from '../audit/store.ts';
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

export interface OpenedAudit extends AuditRuntime {
  store: AuditStore;
  shipper: Shipper;
}

/** This node's name in the shared state: host and API address tell nodes of one machine apart. */
export function nodeName(config: Config): string {
  return `${hostname()}/${config.controlPlane.httpAddress}`;
}

/** Administrative actions (approvals decided, agents revoked, keys rotated) as rows of the same chain. */
function adminRecorder(spool: Spool): NonNullable<AuditRuntime['recordAdmin']> {
  return (a) =>
    spool.append({
      decision_id: randomUUID(),
      request_id: '',
      time: new Date().toISOString(),
      route_id: null,
      target: a.target ?? null,
      method: a.action,
      host: 'chaperone-api',
      path: `/admin/${a.action.toLowerCase()}`,
      subject: a.subject,
      issuer: a.issuer ?? null,
      actor: null,
      decision: 'admin',
      http_status: 200,
      reason: a.reason,
      reason_code: 'ADMIN',
      policy_revision: '',
      latency_us: 0,
      input: a.detail ?? null,
      result: null,
    } satisfies DecisionRecord);
}

export async function openAuditRuntime(o: {
  config: Config;
  stateDir: string;
  logger: Logger;
}): Promise<OpenedAudit> {
  const url = resolveStoreUrl(o.config);
  if (!url) await mkdir(join(o.stateDir, 'audit'), { recursive: true });
  const store = await openAuditStore(url ? { url } : { dataDir: join(o.stateDir, 'audit') });
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
  // Checkpoints are signed with Chaperone's key (the same one that signs agent tokens).
  const signer = await AgentKeys.open(o.stateDir);
  const keys = await FleetKeys.open(state, signer);
  const shipper = new Shipper(spool, store, o.logger, { signer });
  shipper.start();
  const accessLogs = new BatchingAccessLogSink(store, o.logger);
  return {
    store,
    shipper,
    state,
    keys,
    // Headers that carry a caller token or an injected credential are masked in stored inputs too.
    recorder: new SpoolRecorder(spool, {
      extraSecretHeaders: [
        ...(o.config.identity ? [o.config.identity.tokenHeader] : []),
        ...o.config.targets.flatMap((t) => t.credentials.map((c) => c.header)),
      ],
    }),
    recordAdmin: adminRecorder(spool),
    accessLogs,
    trail: store,
    trailJwks: () => keys.allJwks(),
    status: () => ({
      store: store.description,
      spool: { dir: spool.dir, ...spool.stats() },
      shipper: shipper.stats(),
      access_logs: {
        ...accessLogs.stats(),
      },
    }),
    close: async () => {
      const flushed = await shipper.flush(10_000).catch(() => false);
      if (!flushed) o.logger.warn('audit spool not fully shipped; it will be shipped at the next start');
      await accessLogs.close();
      await shipper.stop();
      await spool.close();
      await state.close();
      await store.close();
    },
  };
}
