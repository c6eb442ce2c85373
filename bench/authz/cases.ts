// The benchmark's cases: one Rego policy each (bench/authz/policies/<case>/, written for OPA-Envoy's
// conventions: `package envoy.authz`, rule `allow`), the request that is measured (it must be
// allowed) and a request that must be denied, both checked on each server before measuring.
import { cp, mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type CryptoKey, exportJWK, generateKeyPair, SignJWT } from 'jose';

const POLICIES_DIR = join(dirname(fileURLToPath(import.meta.url)), 'policies');

/** Both servers evaluate this rule: OPA-Envoy's `path` and our `--entrypoint`. */
export const ENTRYPOINT = 'envoy/authz/allow';

export interface PreparedCase {
  /** A directory holding the case's Rego and data (a copy with generated files added). */
  policyDir: string;
  /** The request measured; the policy must allow it. */
  measured: CheckRequest;
  /** Answers each server must give before it is measured (the measured request is checked too). */
  checks: { label: string; request: CheckRequest; expect: 'allow' | 'deny' }[];
}

export interface BenchCase {
  name: string;
  summary: string;
  prepare(workDir: string): Promise<PreparedCase>;
}

export type CheckRequest = { attributes: Record<string, unknown> };

interface HttpSpec {
  method: string;
  path: string;
  headers?: Record<string, string>;
  body?: string;
}

const HOST = 'api.llm.example.test';

/**
 * A CheckRequest as Envoy sends it for an HTTP/1.1 request, in the protojson shape (camelCase) that
 * both ghz (-D file) and @grpc/grpc-js (loader with keepCase: false) accept. The body travels in
 * `http.body` (string), as Envoy sends it without `pack_as_bytes`.
 */
export function checkRequest(spec: HttpSpec): CheckRequest {
  const body = spec.body;
  const size = body === undefined ? undefined : Buffer.byteLength(body);
  const headers: Record<string, string> = {
    ':authority': HOST,
    ':method': spec.method,
    ':path': spec.path,
    ':scheme': 'http',
    'user-agent': 'chaperone-bench/1.0',
    accept: 'application/json',
    'x-forwarded-proto': 'http',
    'x-request-id': '6f1c2a8e-3d4b-4f5a-9b7c-0d1e2f3a4b5c',
    ...(size === undefined ? {} : { 'content-type': 'application/json', 'content-length': String(size) }),
    ...(spec.headers ?? {}),
  };
  return {
    attributes: {
      source: { address: { socketAddress: { address: '10.0.0.7', portValue: 41234 } } },
      destination: { address: { socketAddress: { address: '10.0.0.1', portValue: 10000 } } },
      request: {
        http: {
          id: '12037596382759927458',
          method: spec.method,
          headers,
          path: spec.path,
          host: HOST,
          scheme: 'http',
          protocol: 'HTTP/1.1',
          ...(size === undefined ? {} : { size, body }),
        },
      },
    },
  };
}

async function copyPolicy(name: string, workDir: string): Promise<string> {
  const dir = join(workDir, name);
  await cp(join(POLICIES_DIR, name), dir, { recursive: true });
  return dir;
}

const allowAll: BenchCase = {
  name: 'allow-all',
  summary: 'allow := true (the cost of the Check path itself)',
  async prepare(workDir) {
    const policyDir = await copyPolicy('allow-all', workDir);
    const measured = checkRequest({ method: 'GET', path: '/v1/models' });
    return { policyDir, measured, checks: [] };
  },
};

const ISSUER = 'https://idp.bench.example.test';
const AUDIENCE = 'chaperone-egress';

const jwtRbac: BenchCase = {
  name: 'jwt-rbac',
  summary: 'RS256 JWT verified in Rego (io.jwt.decode_verify, JWKS in data) + RBAC by group',
  async prepare(workDir) {
    const policyDir = await copyPolicy('jwt-rbac', workDir);
    const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
    const jwk = { ...(await exportJWK(publicKey)), kid: 'bench-1', alg: 'RS256', use: 'sig' };
    // io.jwt.decode_verify takes the key set as a JSON string in `cert`.
    const keys = { jwks: JSON.stringify({ keys: [jwk] }), issuer: ISSUER, audience: AUDIENCE };
    await mkdir(join(policyDir, 'keys'), { recursive: true });
    await writeFile(join(policyDir, 'keys', 'data.json'), `${JSON.stringify(keys, null, 2)}\n`);
    const token = (groups: string[], key: CryptoKey = privateKey) =>
      new SignJWT({ groups, email: 'agent-7@example.test' })
        .setProtectedHeader({ alg: 'RS256', kid: 'bench-1', typ: 'JWT' })
        .setIssuer(ISSUER)
        .setAudience(AUDIENCE)
        .setSubject('agent-7')
        .setIssuedAt()
        .setExpirationTime('2h')
        .sign(key);
    const request = async (groups: string[]) =>
      checkRequest({
        method: 'POST',
        path: '/v1/chat/completions',
        headers: { authorization: `Bearer ${await token(groups)}` },
      });
    const forged = await request(['agents']);
    const http = (forged.attributes['request'] as { http: { headers: Record<string, string> } }).http;
    // Same claims, signature of another key: proves the signature is really checked.
    const other = await generateKeyPair('RS256');
    http.headers['authorization'] = `Bearer ${await token(['agents'], other.privateKey)}`;
    return {
      policyDir,
      measured: await request(['researchers', 'agents']),
      checks: [
        { label: 'groups without a grant', request: await request(['researchers']), expect: 'deny' },
        { label: 'signed by an unknown key', request: forged, expect: 'deny' },
        {
          label: 'no token',
          request: checkRequest({ method: 'POST', path: '/v1/chat/completions' }),
          expect: 'deny',
        },
      ],
    };
  },
};

const completion = (model: string, maxTokens: number) =>
  JSON.stringify({
    model,
    max_tokens: maxTokens,
    temperature: 0.2,
    messages: [
      { role: 'system', content: 'You are a careful assistant. Answer in one paragraph.' },
      { role: 'user', content: 'Summarise the open incidents for the payments service this week.' },
    ],
    metadata: { run_id: 'run-2026-11-24-0042', agent: 'ops-summariser' },
  });

const jsonBody: BenchCase = {
  name: 'json-body',
  summary: 'POST with a JSON body; rule on parsed_body.model and parsed_body.max_tokens',
  async prepare(workDir) {
    const policyDir = await copyPolicy('json-body', workDir);
    const post = (body: string) => checkRequest({ method: 'POST', path: '/v1/chat/completions', body });
    return {
      policyDir,
      measured: post(completion('gpt-4o-mini', 512)),
      checks: [
        {
          label: 'max_tokens over the limit',
          request: post(completion('gpt-4o-mini', 8192)),
          expect: 'deny',
        },
        { label: 'model not allowed', request: post(completion('gpt-4.5-preview', 512)), expect: 'deny' },
      ],
    };
  },
};

export const CASES: readonly BenchCase[] = [allowAll, jwtRbac, jsonBody];
