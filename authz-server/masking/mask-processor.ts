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

function headerValue(headers: any, name: string): string | undefined {
  for (const h of headers?.headers?.headers ?? []) {
    if (String(h.key).toLowerCase() !== name) continue;
    if (typeof h.value === 'string' && h.value !== '') return h.value;
    if (h.rawValue) return Buffer.from(h.rawValue).toString('utf8');
  }
  return undefined;
}

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

interface ProcessorOptions {
  logger: Logger;
  onMasked?: (e: MaskEvent) => void;
}

/** One response's exchange with Envoy: its headers decide whether the body is buffered and masked. */
class MaskExchange {
  private masks: MaskSpec | null = null;
  private decisionId: string | null = null;
  private contentType: string | undefined;

  constructor(
    private readonly call: grpc.ServerDuplexStream<any, any>,
    private readonly o: ProcessorOptions,
  ) {}

  /** One ProcessingRequest; never throws (a failure replaces the response, fail closed). */
  receive(msg: any): void {
    try {
      if (msg.responseHeaders) this.headers(msg);
      else if (msg.responseBody) this.body(msg.responseBody);
      // Anything else this processor did not ask for: continue unchanged.
      else if (msg.requestHeaders) this.call.write({ requestHeaders: {} });
      else if (msg.requestBody) this.call.write({ requestBody: {} });
      else if (msg.responseTrailers) this.call.write({ responseTrailers: {} });
      else if (msg.requestTrailers) this.call.write({ requestTrailers: {} });
    } catch (err) {
      this.failed(err);
    }
  }

  /** The decision's masks (ext_authz metadata) and the headers: stream through, buffer, or refuse. */
  private headers(msg: any): void {
    const md = fromStruct(msg.metadataContext?.filterMetadata?.[AUTHZ_NAMESPACE]);
    this.decisionId = typeof md['decision_id'] === 'string' ? md['decision_id'] : null;
    this.masks = md['masks'] && typeof md['masks'] === 'object' ? (md['masks'] as MaskSpec) : null;
    this.contentType = headerValue(msg.responseHeaders, 'content-type');
    if (!this.masks) {
      this.call.write({ responseHeaders: {}, modeOverride: { responseBodyMode: 'NONE' } });
      return;
    }
    if (/^text\/event-stream/i.test(this.contentType ?? '')) {
      this.call.write(refusal('ERR_STREAM_NOT_MASKABLE', 'chaperone_masking_refused_stream'));
      return;
    }
    const status = Number(headerValue(msg.responseHeaders, ':status'));
    const why = unmaskableReason(
      {
        status: Number.isInteger(status) ? status : null,
        contentType: this.contentType,
        contentEncoding: headerValue(msg.responseHeaders, 'content-encoding'),
        contentRange: headerValue(msg.responseHeaders, 'content-range'),
      },
      this.masks,
    );
    if (why) {
      this.refuseUnmaskable(why);
      return;
    }
    this.call.write({
      responseHeaders: { response: { headerMutation: { removeHeaders: ['content-length'] } } },
      modeOverride: { responseBodyMode: 'BUFFERED' },
    });
  }

  private body(responseBody: { body?: Uint8Array }): void {
    if (!this.masks) {
      this.call.write({ responseBody: {} });
      return;
    }
    const text = Buffer.from(responseBody.body ?? []).toString('utf8');
    const masked = maskBody(text, this.contentType, this.masks);
    this.o.onMasked?.({
      decisionId: this.decisionId,
      counts: masked.counts,
      contentType: this.contentType ?? null,
    });
    this.call.write({ responseBody: { response: { bodyMutation: { body: Buffer.from(masked.body) } } } });
  }

  private refuseUnmaskable(why: string): void {
    this.o.logger.warn({ decision_id: this.decisionId, reason: why }, 'masked response refused');
    this.call.write(refusal('ERR_RESPONSE_NOT_MASKABLE', 'chaperone_masking_refused_response', why));
  }

  /** Fail closed: a body that cannot be masked is not sent. */
  private failed(err: unknown): void {
    if (err instanceof UnmaskableResponseError) {
      this.refuseUnmaskable(err.message);
      return;
    }
    this.o.logger.error(
      { decision_id: this.decisionId, err: err instanceof Error ? err.message : String(err) },
      'masking failed',
    );
    this.call.write(refusal('ERR_MASKING_FAILED', 'chaperone_masking_failed'));
  }
}

export function addMaskProcessor(server: grpc.Server, o: ProcessorOptions): void {
  const root = loadEnvoyProtos([EXT_PROC_PROTO]);
  const svc = lookup<grpc.ServiceClientConstructor>(root, 'envoy.service.ext_proc.v3.ExternalProcessor');
  server.addService(svc.service, {
    Process: (call: grpc.ServerDuplexStream<any, any>) => {
      const exchange = new MaskExchange(call, o);
      call.on('data', (msg: unknown) => exchange.receive(msg));
      call.on('end', () => call.end());
      call.on('error', () => undefined);
    },
  });
}
