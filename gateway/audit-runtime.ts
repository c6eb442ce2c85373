// The audit pipeline of a running gateway: store (PGlite or PostgreSQL) + spool + shipper + the
// recorder the authz server awaits, the access-log sink for the ALS, and the HTTP API's audit routes.
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { ApiError, type ApiHandler } from '../api/http-api.ts';
import { BatchingAccessLogSink } from '../audit/access-log-sink.ts';
import { signAndAnchor } from '../audit/anchor.ts';
import { secureNodeState } from '../audit/node-state.ts';
import { SpoolRecorder } from '../audit/recorder.ts';
import type { StoredDecision } from '../audit/records.ts';
import { Shipper } from '../audit/shipper.ts';
import { Spool } from '../audit/spool.ts';
import { type AuditStore, openAuditStore } from '../audit/store.ts';
import { verifyWithTrust } from '../audit/trust.ts';
import type { Config } from '../config/types.ts';
import { AgentKeys } from '../fleet/agent-keys.ts';
import { FleetKeys } from '../fleet/fleet-keys.ts';
import { SharedState } from '../fleet/shared-state.ts';
import type { AuditRuntime } from './gateway.ts';

export class AuditConfigError extends Error {
  readonly code = 'ERR_AUDIT_CONFIG';
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

export async function openAuditRuntime(o: {
  config: Config;
  stateDir: string;
  logger: Logger;
}): Promise<OpenedAudit> {
  const url = resolveStoreUrl(o.config);
  // The state directory (keys, embedded database, spool, anchor) is this user's alone (docs/audit.md).
  await secureNodeState(o.stateDir, o.config.audit.spoolDir, o.logger);
  const store = await openAuditStore(url ? { url } : { dataDir: join(o.stateDir, 'audit') });
  try {
    await store.migrate();
  } catch (err) {
    await store.close().catch(() => undefined);
    throw new AuditConfigError(
      `audit store ${store.description}: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
  // Fleet state (approvals, revocations, config revisions, public keys) lives in the same database.
  const state = await SharedState.open(store.sql, nodeName(o.config), o.logger.child({ component: 'state' }));
  const spool = await Spool.open({ dir: o.config.audit.spoolDir });
  // Every batch is committed with a checkpoint signed with Chaperone's key (the one that signs agent
  // tokens); the newest is anchored in the state directory, outside the database.
  const keys = await FleetKeys.open(state, await AgentKeys.open(o.stateDir));
  const anchor = await signAndAnchor(store, o.stateDir, o.logger);
  const shipper = new Shipper(spool, store, o.logger);
  shipper.start();
  const accessLogs = new BatchingAccessLogSink(store, o.logger);
  // Headers that carry a caller token or an injected credential are masked in stored inputs too.
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
    routes: auditApiRoutes(store, { entrypoint: o.config.policy.entrypoint, stateDir: o.stateDir }),
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

/** `24h`, `30m`, `7d`, `90s` or an ISO date. */
export function parseSince(text: string, now = Date.now()): Date {
  const m = /^(\d+)\s*([smhd])$/.exec(text.trim());
  if (m)
    return new Date(
      now - Number(m[1]) * { s: 1e3, m: 6e4, h: 3.6e6, d: 8.64e7 }[m[2] as 's' | 'm' | 'h' | 'd'],
    );
  const d = new Date(text);
  if (Number.isNaN(d.getTime()))
    throw new ApiError(400, 'invalid_since', 'since must look like 24h, 30m, 7d or an ISO time');
  return d;
}

/** One decision as an OPA decision-log event, so OPA tooling can read the trail. */
export function toOpaDecisionLog(r: StoredDecision, entrypoint: string): Record<string, unknown> {
  return {
    decision_id: r.decision_id,
    path: entrypoint,
    input: r.input,
    result: r.result,
    timestamp: r.time,
    labels: { app: 'chaperone', policy_revision: r.policy_revision },
    requested_by: r.host,
    metrics: { timer_server_handler_ns: Math.round(r.latency_us * 1000) },
    chaperone: {
      seq: r.seq,
      hash: r.hash,
      decision: r.decision,
      http_status: r.http_status,
      reason: r.reason,
      subject: r.subject,
      actor: r.actor,
    },
  };
}

export function auditApiRoutes(
  store: AuditStore,
  o: { entrypoint: string; stateDir?: string } = { entrypoint: 'chaperone/authz/decision' },
): Record<string, ApiHandler> {
  return {
    'GET /audit/decisions': async ({ url }) => {
      const p = url.searchParams;
      const since = p.get('since');
      const limit = p.get('limit');
      let page: Awaited<ReturnType<AuditStore['queryDecisions']>>;
      try {
        page = await store.queryDecisions({
          ...(p.get('user') ? { subject: p.get('user')! } : {}),
          ...(p.get('agent') ? { agent: p.get('agent')! } : {}),
          ...(p.get('target') ? { target: p.get('target')! } : {}),
          ...(p.get('decision') ? { decision: p.get('decision')! } : {}),
          ...(p.get('shadow') === 'differs' ? { shadowDiffers: true } : {}),
          ...(since ? { since: parseSince(since) } : {}),
          ...(limit ? { limit: Number(limit) } : {}),
          ...(p.get('cursor') ? { cursor: p.get('cursor')! } : {}),
        });
      } catch (err) {
        if (err instanceof ApiError) throw err;
        if (err instanceof Error && err.message === 'invalid cursor')
          throw new ApiError(400, 'invalid_cursor', 'cursor is not valid');
        throw err;
      }
      return { status: 200, body: page };
    },
    'GET /audit/tail': async ({ url }) => {
      const after = url.searchParams.get('after');
      const from =
        after === null || after === 'latest' ? Math.max(0, (await store.lastSeq()) - 10) : Number(after);
      if (!Number.isInteger(from) || from < 0)
        throw new ApiError(400, 'invalid_after', 'after must be a sequence number');
      const rows = await store.decisionsAfter(from, 500);
      return { status: 200, body: { rows, lastSeq: rows.at(-1)?.seq ?? from } };
    },
    // Against this node's key store and anchor, never keys read from the database.
    'GET /audit/verify': async () => ({
      status: 200,
      body: o.stateDir ? await verifyWithTrust(store, { stateDir: o.stateDir }) : await store.verifyChain(),
    }),
    'GET /audit/export': async ({ url }) => {
      const format = url.searchParams.get('format') ?? 'jsonl';
      if (format !== 'jsonl' && format !== 'opa')
        throw new ApiError(400, 'invalid_format', 'format is jsonl or opa');
      const since = parseSince(url.searchParams.get('since') ?? '24h');
      const lines: string[] = [];
      let cursor: string | undefined;
      do {
        const page = await store.queryDecisions({ since, limit: 1000, ...(cursor ? { cursor } : {}) });
        for (const r of page.rows)
          lines.push(JSON.stringify(format === 'opa' ? toOpaDecisionLog(r, o.entrypoint) : r));
        cursor = page.nextCursor ?? undefined;
      } while (cursor && lines.length < 1_000_000);
      // Oldest first, as a log reads.
      return {
        status: 200,
        headers: { 'content-type': 'application/x-ndjson' },
        body: `${lines.reverse().join('\n')}\n`,
      };
    },
    'GET /audit/access-logs': async ({ url }) => {
      const requestId = url.searchParams.get('request_id');
      if (!requestId) throw new ApiError(400, 'missing_request_id', 'request_id is required');
      return { status: 200, body: { rows: await store.accessLogsFor(requestId) } };
    },
  };
}
