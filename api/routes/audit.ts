// The audit trail on the HTTP API: query, tail, verify, export (JSONL or OPA decision-log events) and
// the access-log rows of one request. Every route needs the auditor role: the trail holds every
// recorded request, the identity claims behind it and (masked) bodies.
import { toOpaDecisionLog } from '../../audit/opa-decision-log.ts';
import type { AuditStore, DecisionQuery } from '../../audit/store.ts';
import { ApiError } from '../errors.ts';
import type { Route } from '../route.ts';

/** The part of the audit store the API reads. */
export type AuditTrail = Pick<
  AuditStore,
  'queryDecisions' | 'decisionsAfter' | 'lastSeq' | 'verifyChain' | 'accessLogsFor'
>;

const AUDITOR = { role: ['auditor'] } as const;

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

function decisionQuery(p: URLSearchParams): DecisionQuery {
  const since = p.get('since');
  const limit = p.get('limit');
  return {
    ...(p.get('user') ? { subject: p.get('user')! } : {}),
    ...(p.get('agent') ? { agent: p.get('agent')! } : {}),
    ...(p.get('target') ? { target: p.get('target')! } : {}),
    ...(p.get('decision') ? { decision: p.get('decision')! } : {}),
    ...(p.get('shadow') === 'differs' ? { shadowDiffers: true } : {}),
    ...(p.get('trace') ? { traceId: p.get('trace')! } : {}),
    ...(since ? { since: parseSince(since) } : {}),
    ...(limit ? { limit: Number(limit) } : {}),
    ...(p.get('cursor') ? { cursor: p.get('cursor')! } : {}),
  };
}

async function exportLines(trail: AuditTrail, since: Date, opa: string | null): Promise<string> {
  const lines: string[] = [];
  let cursor: string | undefined;
  do {
    const page = await trail.queryDecisions({ since, limit: 1000, ...(cursor ? { cursor } : {}) });
    for (const r of page.rows) lines.push(JSON.stringify(opa ? toOpaDecisionLog(r, opa) : r));
    cursor = page.nextCursor ?? undefined;
  } while (cursor && lines.length < 1_000_000);
  // Oldest first, as a log reads.
  return `${lines.reverse().join('\n')}\n`;
}

export function auditRoutes(
  trail: AuditTrail,
  o: { entrypoint: string; verify?: () => Promise<unknown> },
): Route[] {
  return [
    {
      method: 'GET',
      path: '/audit/decisions',
      caller: AUDITOR,
      handle: async ({ url }) => {
        try {
          return { status: 200, body: await trail.queryDecisions(decisionQuery(url.searchParams)) };
        } catch (err) {
          if (err instanceof Error && err.message === 'invalid cursor')
            throw new ApiError(400, 'invalid_cursor', 'cursor is not valid');
          throw err;
        }
      },
    },
    {
      method: 'GET',
      path: '/audit/tail',
      caller: AUDITOR,
      handle: async ({ url }) => {
        const after = url.searchParams.get('after');
        const from =
          after === null || after === 'latest' ? Math.max(0, (await trail.lastSeq()) - 10) : Number(after);
        if (!Number.isInteger(from) || from < 0)
          throw new ApiError(400, 'invalid_after', 'after must be a sequence number');
        const rows = await trail.decisionsAfter(from, 500);
        return { status: 200, body: { rows, lastSeq: rows.at(-1)?.seq ?? from } };
      },
    },
    {
      method: 'GET',
      path: '/audit/verify',
      caller: AUDITOR,
      // Against keys pinned outside the database when the gateway provides them (audit/trust.ts).
      handle: async () => ({
        status: 200,
        body: o.verify ? await o.verify() : await trail.verifyChain(),
      }),
    },
    {
      method: 'GET',
      path: '/audit/export',
      caller: AUDITOR,
      handle: async ({ url }) => {
        const format = url.searchParams.get('format') ?? 'jsonl';
        if (format !== 'jsonl' && format !== 'opa')
          throw new ApiError(400, 'invalid_format', 'format is jsonl or opa');
        const since = parseSince(url.searchParams.get('since') ?? '24h');
        return {
          status: 200,
          headers: { 'content-type': 'application/x-ndjson' },
          body: await exportLines(trail, since, format === 'opa' ? o.entrypoint : null),
        };
      },
    },
    {
      method: 'GET',
      path: '/audit/access-logs',
      caller: AUDITOR,
      handle: async ({ url }) => {
        const requestId = url.searchParams.get('request_id');
        if (!requestId) throw new ApiError(400, 'missing_request_id', 'request_id is required');
        return { status: 200, body: { rows: await trail.accessLogsFor(requestId) } };
      },
    },
  ];
}
