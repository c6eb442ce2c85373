// Envoy's external processing (envoy.service.ext_proc.v3) for response masking. Envoy sends each
// response's headers with the ext_authz dynamic metadata; when the decision carried `masks`, the
// processor asks for the buffered body, rewrites it (authz-server/masking) and reports counts per
// detector — otherwise it lets the body stream through untouched. A masked response that cannot be
// masked as declared is replaced by a 502, never passed through: a stream (text/event-stream), a
// partial response (206, Content-Range), an encoded body, or a path mask on a body that is not JSON.
import type * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { denyOf } from '../../contracts/errors.ts';
import { loadEnvoyProtos, lookup } from '../../lib/envoy-proto.ts';
import { fromStruct } from '../../lib/proto-struct.ts';
import { type MaskSpec, maskBody, UnmaskableResponseError, unmaskableReason } from './masker.ts';

export const EXT_PROC_PROTO = 'envoy/service/ext_proc/v3/external_processor.proto';
const AUTHZ_NAMESPACE = 'envoy.filters.http.ext_authz';

export interface MaskEvent {
  decisionId: string | null;
  counts: Record<string, number>;
  contentType: string | null;
}

/** The error response that replaces a body that must not be sent. */

function headerValue(headers: any, name: string): string | undefined {
  for (const h of headers?.headers?.headers ?? []) {
    if (String(h.key).toLowerCase() !== name) continue;
    if (typeof h.value === 'string' && h.value !== '') return h.value;
    if (h.rawValue) return Buffer.from(h.rawValue).toString('utf8');
  }
  return undefined;
}

/** An immediate response in place of a body that must not reach the client; status and reason from the deny catalog. */
type RefusalCode = 'ERR_STREAM_NOT_MASKABLE' | 'ERR_MASKING_FAILED' | 'ERR_RESPONSE_NOT_MASKABLE';

/** The response that replaces one that cannot be masked: status and reason from the deny catalog. */
function refusal(code: RefusalCode, details: string, why?: string) {
  const { status, publicReason: reason } = denyOf(code, why);
  return {
    immediateResponse: {
      status: { code: status },
      headers: {
        setHeaders: [{ header: { key: 'content-type', rawValue: Buffer.from('application/json') } }],
      },
      body: Buffer.from(JSON.stringify({ error: code, reason })),
      details,
    },
  };
}

/** What one response's stream has learned from its headers. */
interface StreamState {
  masks: MaskSpec | null;
  decisionId: string | null;
  contentType: string | undefined;
}

type Reply = Record<string, unknown>;

/** The response headers: no masks → stream the body untouched; masks → refuse or ask for the body. */
function onResponseHeaders(msg: any, st: StreamState, o: ProcessorOptions): Reply {
  const md = fromStruct(msg.metadataContext?.filterMetadata?.[AUTHZ_NAMESPACE]);
  st.decisionId = typeof md['decision_id'] === 'string' ? md['decision_id'] : null;
  st.masks = md['masks'] && typeof md['masks'] === 'object' ? (md['masks'] as MaskSpec) : null;
  st.contentType = headerValue(msg.responseHeaders, 'content-type');
  if (!st.masks) return { responseHeaders: {}, modeOverride: { responseBodyMode: 'NONE' } };
  if (/^text\/event-stream/i.test(st.contentType ?? ''))
    return refusal('ERR_STREAM_NOT_MASKABLE', 'chaperone_masking_refused_stream');
  const status = Number(headerValue(msg.responseHeaders, ':status'));
  const why = unmaskableReason(
    {
      status: Number.isInteger(status) ? status : null,
      contentType: st.contentType,
      contentEncoding: headerValue(msg.responseHeaders, 'content-encoding'),
      contentRange: headerValue(msg.responseHeaders, 'content-range'),
    },
    st.masks,
  );
  if (why) {
    o.logger.warn({ decision_id: st.decisionId, reason: why }, 'masked response refused');
    return refusal('ERR_RESPONSE_NOT_MASKABLE', 'chaperone_masking_refused_response', why);
  }
  return {
    responseHeaders: { response: { headerMutation: { removeHeaders: ['content-length'] } } },
    modeOverride: { responseBodyMode: 'BUFFERED' },
  };
}

/** The buffered body of a masked response, masked. */
function onResponseBody(msg: any, st: StreamState, o: ProcessorOptions): Reply {
  if (!st.masks) return { responseBody: {} };
  const text = Buffer.from(msg.responseBody.body ?? []).toString('utf8');
  const masked = maskBody(text, st.contentType, st.masks);
  o.onMasked?.({ decisionId: st.decisionId, counts: masked.counts, contentType: st.contentType ?? null });
  return { responseBody: { response: { bodyMutation: { body: Buffer.from(masked.body) } } } };
}

/** Anything else this processor did not ask for: continue unchanged. */
function passThrough(msg: any): Reply | null {
  if (msg.requestHeaders) return { requestHeaders: {} };
  if (msg.requestBody) return { requestBody: {} };
  if (msg.responseTrailers) return { responseTrailers: {} };
  if (msg.requestTrailers) return { requestTrailers: {} };
  return null;
}

/** Fail closed: a body that cannot be masked is not sent. */
function onFailure(err: unknown, st: StreamState, o: ProcessorOptions): Reply {
  if (err instanceof UnmaskableResponseError) {
    o.logger.warn({ decision_id: st.decisionId, reason: err.message }, 'masked response refused');
    return refusal('ERR_RESPONSE_NOT_MASKABLE', 'chaperone_masking_refused_response', err.message);
  }
  o.logger.error(
    { decision_id: st.decisionId, err: err instanceof Error ? err.message : String(err) },
    'masking failed',
  );
  return refusal('ERR_MASKING_FAILED', 'chaperone_masking_failed');
}

interface ProcessorOptions {
  logger: Logger;
  onMasked?: (e: MaskEvent) => void;
}

export function addMaskProcessor(server: grpc.Server, o: ProcessorOptions): void {
  const root = loadEnvoyProtos([EXT_PROC_PROTO]);
  const svc = lookup<grpc.ServiceClientConstructor>(root, 'envoy.service.ext_proc.v3.ExternalProcessor');
  server.addService(svc.service, {
    Process: (call: grpc.ServerDuplexStream<any, any>) => {
      const st: StreamState = { masks: null, decisionId: null, contentType: undefined };
      call.on('data', (msg: any) => {
        let reply: Reply | null;
        try {
          if (msg.responseHeaders) reply = onResponseHeaders(msg, st, o);
          else if (msg.responseBody) reply = onResponseBody(msg, st, o);
          else reply = passThrough(msg);
        } catch (err) {
          reply = onFailure(err, st, o);
        }
        if (reply) call.write(reply);
      });
      call.on('end', () => call.end());
      call.on('error', () => undefined);
    },
  });
}
