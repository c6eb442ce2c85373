// The audit pipeline of a running gateway: store (PGlite or PostgreSQL) + spool + shipper + the
// recorder the authz server awaits, the access-log sink for the ALS, and the HTTP API's audit routes.
import { randomUUID } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { JWK } from 'jose';
import type { Logger } from 'pino';
import { ApiError, type ApiHandler } from '../api/http-api.ts';
import { BatchingAccessLogSink } from '../audit/access-log-sink.ts';
import { toOpaDecisionLog } from '../audit/opa-decision-log.ts';
import { SpoolRecorder } from '../audit/recorder.ts';
import type { DecisionRecord } from '../audit/records.ts';
import { Shipper } from '../audit/shipper.ts';
import { Spool } from '../audit/spool.ts';
import { type AuditStore, openAuditStore } from '../audit/store.ts';
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
  if (!url) await mkdir(join(o.stateDir, 'audit'), { recursive: true });
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
    recordAdmin: (a) =>
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
        issuer: null,
        actor: null,
        decision: 'admin',
        http_status: 200,
        reason: a.reason,
        reason_code: 'ADMIN',
        policy_revision: '',
        latency_us: 0,
        input: a.detail ?? null,
        result: null,
      } satisfies DecisionRecord),
    accessLogs,
    routes: auditApiRoutes(store, { entrypoint: o.config.policy.entrypoint, jwks: () => keys.allJwks() }),
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

/** The mapping lives with the audit trail; re-exported for existing importers. */
export { toOpaDecisionLog };

export function auditApiRoutes(
  store: AuditStore,
  o: { entrypoint: string; jwks?: () => { keys: JWK[] } } = { entrypoint: 'chaperone/authz/decision' },
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
    'GET /audit/verify': async () => ({
      status: 200,
      body: await store.verifyChain(o.jwks ? { jwks: o.jwks() } : {}),
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
