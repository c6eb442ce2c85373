// What recording one decision costs the Check's thread before it waits for the spool's fsync: the
// decision record built from the event, the one redaction pass (audit/redaction.ts) and the JSON line
// the spool writes. The input is the one the pipeline builds for bench:gateway's request (GET
// /demo/items with alice's verified token, 12 headers) and the shipped policy's result for it.
//
//   npx tsx bench/audit/recording.ts [--iterations 50000]
import { parseArgs } from 'node:util';
import { toDecisionRecord } from '../../audit/records.ts';
import { Redactor } from '../../audit/redaction.ts';
import { buildInput } from '../../authz-server/input/build-input.ts';
import type { DecisionEvent } from '../../contracts/decision.ts';

const TOKEN =
  'eyJhbGciOiJSUzI1NiIsImtpZCI6ImRldi0xIn0.eyJpc3MiOiJodHRwOi8vMTI3LjAuMC4xOjU1NTYiLCJzdWIiOiJhbGljZSIsImF1ZCI6ImNoYXBlcm9uZSIsImdyb3VwcyI6WyJlbmdpbmVlcmluZyJdLCJleHAiOjQxMDI0NDQ4MDB9.c2lnbmF0dXJlLWJ5dGVzLWFyZS1ub3QtY2hlY2tlZC1oZXJlLWJ1dC1rZXB0LWxvbmctZW5vdWdo';

function request() {
  const headers: Record<string, string> = {
    ':authority': '127.0.0.1:10000',
    ':method': 'GET',
    ':path': '/demo/items',
    ':scheme': 'http',
    'user-agent': 'Go-http-client/1.1',
    'accept-encoding': 'gzip',
    authorization: `Bearer ${TOKEN}`,
    'x-forwarded-proto': 'http',
    'x-forwarded-for': '127.0.0.1',
    'x-envoy-internal': 'true',
    'x-request-id': '6f1c2a8e-3d4b-4f5a-9b7c-0d1e2f3a4b5c',
    'x-envoy-expected-rq-timeout-ms': '15000',
  };
  return {
    attributes: {
      source: { address: { socketAddress: { address: '127.0.0.1', portValue: 41234 } } },
      destination: { address: { socketAddress: { address: '127.0.0.1', portValue: 10000 } } },
      request: {
        time: { seconds: 1796000000, nanos: 1000 },
        http: {
          id: '12037596382759927458',
          method: 'GET',
          headers,
          path: '/demo/items',
          host: '127.0.0.1:10000',
          scheme: 'http',
          protocol: 'HTTP/1.1',
        },
      },
      contextExtensions: {
        route_id: 'demo/0',
        target: 'demo',
        checksum: 'd42ff562e45b43c0',
        protocol: 'http',
      },
      metadataContext: {},
    },
  };
}

function event(): DecisionEvent {
  const identity = {
    issuer: 'http://127.0.0.1:5556',
    subject_issuer: 'http://127.0.0.1:5556',
    subject: 'alice',
    audience: ['chaperone'],
    email: 'alice@example.test',
    name: 'Alice Engineer',
    groups: ['engineering'],
    actor: null,
    token_id: null,
    expires_at: 4102444800,
    claims: {
      iss: 'http://127.0.0.1:5556',
      sub: 'alice',
      aud: 'chaperone',
      groups: ['engineering'],
      email: 'alice@example.test',
      name: 'Alice Engineer',
      exp: 4102444800,
      iat: 1796000000,
    },
  };
  const built = buildInput(request(), { identity, identityError: null }, { requireCompleteBody: true });
  if (!built.ok) throw new Error(`input: ${built.reason}`);
  return {
    decisionId: '0b1f7c1e-7d43-4f6e-8a7e-5d7f3b0a9c21',
    requestId: '6f1c2a8e-3d4b-4f5a-9b7c-0d1e2f3a4b5c',
    time: new Date(),
    routeId: 'demo/0',
    target: 'demo',
    method: 'GET',
    host: '127.0.0.1:10000',
    path: '/demo/items',
    subject: 'alice',
    issuer: 'http://127.0.0.1:5556',
    actor: null,
    verdict: {
      decision: 'allow',
      httpStatus: 200,
      reason: 'rule demo-read (engineering)',
      reasonCode: 'ALLOWED',
    },
    policyRevision: 'a57f6b564c396bcf',
    latencyUs: 412.5,
    input: built.input,
    result: {
      allowed: true,
      reason: 'rule demo-read (engineering)',
      headers: { 'x-chaperone-user': 'alice', 'x-chaperone-groups': 'engineering' },
      rule: 'demo-read',
    },
  };
}

function time(label: string, n: number, fn: () => unknown): number {
  for (let i = 0; i < Math.min(n, 5000); i++) fn(); // warm-up (JIT)
  const start = process.hrtime.bigint();
  for (let i = 0; i < n; i++) fn();
  const us = Number(process.hrtime.bigint() - start) / 1000 / n;
  process.stdout.write(`${label.padEnd(52)} ${us.toFixed(2).padStart(7)} µs\n`);
  return us;
}

const { values } = parseArgs({ options: { iterations: { type: 'string', default: '50000' } } });
const n = Number(values.iterations);
const e = event();
const redactor = new Redactor(['authorization']);
process.stdout.write(`recording one decision, ${n} iterations, node ${process.version}\n`);
const record = () => toDecisionRecord(e, e.input);
time('toDecisionRecord', n, record);
time('Redactor.decision', n, () => redactor.decision(record()));
time('JSON line (JSON.stringify)', n, () => JSON.stringify(redactor.decision(record())));
const line = JSON.stringify(redactor.decision(record()));
process.stdout.write(`record size: ${line.length} bytes\n`);
