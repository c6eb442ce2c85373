// Request fixtures: policy tests written as requests. Each case is a CheckRequest built the way Envoy
// sends it, run through the production input builder, the compiled WASM policy and the result mapper —
// the code the authz server runs — and compared with what the case expects.
import { readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { buildInput } from '../../authz-server/input/build-input.ts';
import type { PolicyEngine } from '../../authz-server/policy/policy-engine.ts';
import { protocolHook } from '../../authz-server/protocols/index.ts';
import { type CheckResponseMessage, mapPolicyResult, serverDeny } from '../../authz-server/result-mapper.ts';
import { parseYamlSource } from '../../config/yaml-source.ts';
import { PROJECT_ROOT } from '../../lib/tools.ts';

export interface FixtureCase {
  name: string;
  identity?: {
    sub: string;
    groups?: string[];
    email?: string;
    actor?: Record<string, string> | null;
    claims?: Record<string, unknown>;
  } | null;
  identity_error?: { code: string; reason: string };
  approval?: { approved_by: string };
  request: {
    target?: string;
    method: string;
    path: string;
    host?: string;
    headers?: Record<string, string>;
    body?: unknown;
  };
  expect: {
    allowed?: boolean;
    status?: number;
    headers_set?: Record<string, string>;
    headers_removed?: string[];
    reason?: string;
    error?: string;
    approval?: { reviewers?: string[] };
  };
}

export interface FixtureOutcome {
  file: string;
  line: number;
  name: string;
  ok: boolean;
  /** Expected vs actual for each field that differs. */
  diffs: { field: string; expected: unknown; actual: unknown }[];
  durationMs: number;
}

export interface FixtureLoadError {
  file: string;
  line?: number;
  message: string;
}

interface Actual {
  allowed: boolean;
  status: number;
  headers_set: Record<string, string>;
  headers_removed: string[];
  reason: string;
  error: string | null;
  approval: { reviewers?: string[] } | null;
}

const schema = JSON.parse(await readFile(join(PROJECT_ROOT, 'schemas', 'fixture.schema.json'), 'utf8'));
const validate = new Ajv2020({ allErrors: true, strict: false }).compile(schema);

export async function loadFixtures(
  dir: string,
): Promise<{ cases: { file: string; line: number; c: FixtureCase }[]; errors: FixtureLoadError[] }> {
  const files = (await readdir(dir, { recursive: true }))
    .map(String)
    .filter((f) => f.endsWith('.yaml') || f.endsWith('.yml'))
    .sort();
  const cases: { file: string; line: number; c: FixtureCase }[] = [];
  const errors: FixtureLoadError[] = [];
  for (const f of files) {
    const file = relative(process.cwd(), join(dir, f));
    let source: ReturnType<typeof parseYamlSource>;
    try {
      source = parseYamlSource(await readFile(join(dir, f), 'utf8'));
    } catch (err) {
      errors.push({ file, message: err instanceof Error ? err.message : String(err) });
      continue;
    }
    if (!validate(source.data)) {
      for (const e of validate.errors ?? []) {
        const path = e.instancePath
          .replace(/^\//, '')
          .replace(/\/(\d+)/g, '[$1]')
          .replace(/\//g, '.');
        const line = source.lineOf(path);
        errors.push({
          file,
          ...(line ? { line } : {}),
          message: `${path || '(root)'}: ${e.message ?? 'invalid'}`,
        });
      }
      continue;
    }
    for (const [i, c] of (source.data as { cases: FixtureCase[] }).cases.entries()) {
      cases.push({ file, line: source.lineOf(`cases[${i}]`) ?? 0, c });
    }
  }
  return { cases, errors };
}

/** The CheckRequest Envoy would send for this fixture (decoded as the server's loader decodes it). */
function checkRequestOf(c: FixtureCase): Record<string, unknown> {
  const r = c.request;
  const body =
    r.body === undefined ? undefined : typeof r.body === 'string' ? r.body : JSON.stringify(r.body);
  const headers: Record<string, string> = {
    ':authority': r.host ?? 'gateway.local',
    ':method': r.method,
    ':path': r.path,
    ...(body !== undefined && typeof r.body !== 'string' ? { 'content-type': 'application/json' } : {}),
    ...(body !== undefined ? { 'content-length': String(Buffer.byteLength(body)) } : {}),
    ...Object.fromEntries(Object.entries(r.headers ?? {}).map(([k, v]) => [k.toLowerCase(), v])),
  };
  return {
    attributes: {
      request: {
        time: { seconds: Math.floor(Date.now() / 1000), nanos: 0 },
        http: {
          id: 'fixture',
          method: r.method,
          path: r.path,
          host: r.host ?? 'gateway.local',
          scheme: 'http',
          protocol: 'HTTP/1.1',
          headers,
          ...(body !== undefined ? { body, size: Buffer.byteLength(body) } : {}),
        },
      },
      contextExtensions: r.target ? { route_id: `${r.target}/0`, target: r.target } : {},
    },
  };
}

function identityOf(c: FixtureCase) {
  if (!c.identity) return null;
  return {
    issuer: 'fixture',
    subject: c.identity.sub,
    subject_issuer: 'fixture',
    audience: ['chaperone'],
    email: c.identity.email ?? null,
    name: null,
    groups: c.identity.groups ?? [],
    actor: (c.identity.actor as { sub: string } | null | undefined) ?? null,
    token_id: null,
    expires_at: Math.floor(Date.now() / 1000) + 3600,
    claims: { sub: c.identity.sub, ...(c.identity.claims ?? {}) },
  };
}

function actualOf(res: CheckResponseMessage, reason: string, result: unknown): Actual {
  const approval =
    result && typeof result === 'object' && 'approval' in result
      ? ((result as { approval: { reviewers?: string[] } }).approval ?? null)
      : null;
  if (res.okResponse) {
    return {
      allowed: true,
      status: 200,
      headers_set: Object.fromEntries(res.okResponse.headers.map((h) => [h.header.key, h.header.value])),
      headers_removed: res.okResponse.headersToRemove,
      reason,
      error: null,
      approval,
    };
  }
  let error: string | null = null;
  try {
    error = (JSON.parse(res.deniedResponse?.body ?? '') as { error?: string }).error ?? null;
  } catch {
    // a plain-text deny body
  }
  return {
    allowed: false,
    status: res.deniedResponse?.status.code ?? 403,
    headers_set: Object.fromEntries(
      (res.deniedResponse?.headers ?? []).map((h) => [h.header.key, h.header.value]),
    ),
    headers_removed: [],
    reason,
    error,
    approval,
  };
}

function reasonMatches(expected: string, actual: string): boolean {
  const re = /^\/(.*)\/([a-z]*)$/.exec(expected);
  return re ? new RegExp(re[1]!, re[2]).test(actual) : actual.includes(expected);
}

export function runFixture(
  engine: PolicyEngine,
  revision: string,
  c: FixtureCase,
): { actual: Actual; diffs: FixtureOutcome['diffs'] } {
  const req = checkRequestOf(c);
  const identity = identityOf(c);
  const identityError = identity
    ? null
    : (c.identity_error ?? { code: 'ERR_TOKEN_MISSING', reason: 'no token in the authorization header' });
  const ctx = { decisionId: 'fixture', policyRevision: revision };
  let actual: Actual;
  const built = buildInput(
    req,
    { identity, identityError },
    { requireCompleteBody: true, protocol: protocolHook },
  );
  if (!built.ok) {
    const d = serverDeny(built.code, ctx, built.reason);
    actual = actualOf(d.response, d.verdict.reason, null);
  } else {
    if (c.approval)
      (built.input as { approval?: unknown }).approval = {
        id: 'fixture',
        granted: true,
        approved_by: c.approval.approved_by,
      };
    const out = engine.evaluate(built.input);
    if (!out.ok) {
      // A policy author reads the evaluation detail, which a client never sees.
      const d = serverDeny(out.code, ctx);
      actual = actualOf(d.response, out.detail, null);
    } else {
      const mapped = mapPolicyResult(out.result, {
        ...ctx,
        requestHeaderNames: Object.keys((req as any).attributes.request.http.headers),
      });
      if (!mapped.ok) {
        const d = serverDeny(mapped.code, ctx);
        actual = actualOf(d.response, mapped.detail, out.result);
      } else actual = actualOf(mapped.response, mapped.verdict.reason, out.result);
    }
  }
  const e = c.expect;
  const diffs: FixtureOutcome['diffs'] = [];
  const check = (field: string, ok: boolean, expected: unknown, got: unknown) => {
    if (!ok) diffs.push({ field, expected, actual: got });
  };
  if (e.allowed !== undefined) check('allowed', e.allowed === actual.allowed, e.allowed, actual.allowed);
  if (e.status !== undefined) check('status', e.status === actual.status, e.status, actual.status);
  for (const [k, v] of Object.entries(e.headers_set ?? {})) {
    check(
      `headers_set.${k}`,
      actual.headers_set[k.toLowerCase()] === v,
      v,
      actual.headers_set[k.toLowerCase()] ?? null,
    );
  }
  for (const h of e.headers_removed ?? [])
    check(`headers_removed`, actual.headers_removed.includes(h.toLowerCase()), h, actual.headers_removed);
  if (e.reason !== undefined)
    check('reason', reasonMatches(e.reason, actual.reason), e.reason, actual.reason);
  if (e.error !== undefined) check('error', e.error === actual.error, e.error, actual.error);
  if (e.approval?.reviewers) {
    const got = actual.approval?.reviewers ?? null;
    check(
      'approval.reviewers',
      JSON.stringify(got) === JSON.stringify(e.approval.reviewers),
      e.approval.reviewers,
      got,
    );
  }
  return { actual, diffs };
}

export function runFixtures(
  engine: PolicyEngine,
  revision: string,
  cases: { file: string; line: number; c: FixtureCase }[],
): FixtureOutcome[] {
  return cases.map(({ file, line, c }) => {
    const started = process.hrtime.bigint();
    const { diffs } = runFixture(engine, revision, c);
    return {
      file,
      line,
      name: c.name,
      ok: diffs.length === 0,
      diffs,
      durationMs: Number(process.hrtime.bigint() - started) / 1e6,
    };
  });
}
