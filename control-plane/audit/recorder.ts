// The authz server's DecisionRecorder: masks secrets out of the policy input, then spools the decision
// durably. The input is copied, never changed in place (it shares objects with the live request).
import type { DecisionEvent, DecisionRecorder } from '../../authz-server/check-pipeline.ts';
import { toDecisionRecord } from './records.ts';
import type { Spool } from './spool.ts';

/** Headers whose values are credentials; removed from stored inputs. */
export const SECRET_HEADERS = [
  'authorization',
  'proxy-authorization',
  'cookie',
  'set-cookie',
  'x-api-key',
  'api-key',
  'x-auth-token',
  'x-amz-security-token',
  'x-goog-api-key',
];
const SECRET_QUERY =
  /^(access_token|id_token|refresh_token|token|api_key|apikey|key|password|secret|client_secret|sig|signature)$/i;
const REDACTED = '[redacted]';

export function maskInput(input: unknown, extraHeaders: string[] = []): unknown {
  if (!input || typeof input !== 'object') return input ?? null;
  const secret = new Set([...SECRET_HEADERS, ...extraHeaders.map((h) => h.toLowerCase())]);
  const src = input as Record<string, any>;
  const out: Record<string, unknown> = { ...src };
  const http = src['attributes']?.request?.http;
  if (http) {
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries((http.headers ?? {}) as Record<string, string>)) {
      headers[k] = secret.has(k) ? REDACTED : v;
    }
    const { rawBody: _raw, body: _body, headerMap: _hm, ...rest } = http;
    const path = typeof rest.path === 'string' ? rest.path.split('?')[0] : rest.path;
    out['attributes'] = {
      ...src['attributes'],
      request: { ...src['attributes'].request, http: { ...rest, path, headers } },
    };
  }
  if (src['parsed_query'] && typeof src['parsed_query'] === 'object') {
    const q: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(src['parsed_query'] as Record<string, unknown>))
      q[k] = SECRET_QUERY.test(k) ? [REDACTED] : v;
    out['parsed_query'] = q;
  }
  return out;
}

export class SpoolRecorder implements DecisionRecorder {
  constructor(
    private readonly spool: Spool,
    private readonly o: { extraSecretHeaders?: string[] } = {},
  ) {}

  record(event: DecisionEvent): Promise<void> {
    return this.spool.append(toDecisionRecord(event, maskInput(event.input, this.o.extraSecretHeaders)));
  }
}
