// Envoy's external processing (envoy.service.ext_proc.v3) on the response path. Envoy sends each
// response's headers with the ext_authz dynamic metadata; the decision's instructions there
// (response-plan.ts) say what to do with the body:
//   masks      — buffer it, rewrite it (masker.ts) and report counts per detector;
//   mcp_filter — drop from an MCP listing what the caller may not use (mcp-listing.ts): a JSON answer is
//                buffered, a text/event-stream answer is rewritten event by event as it streams;
//   usage      — count the tokens an LLM upstream reports (usage-meter.ts), reading the body as it
//                streams through unchanged (JSON or server-sent events);
// and without any of them the body streams through untouched (never sent to this processor). Fail
// closed: a masked or filtered response that cannot be handled as declared is replaced by a 502,
// never passed through — a stream on a masked route, a partial or encoded body, a listing that does
// not parse. Token counting never blocks a response: a body that reports no usage is logged.
import type * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { denyOf } from '../../contracts/errors.ts';
import type { UsageKey } from '../../fleet/usage-counters.ts';
import { loadEnvoyProtos, lookup } from '../../lib/envoy-proto.ts';
import { type MaskSpec, maskBody, UnmaskableResponseError, unmaskableReason } from './masker.ts';
import { addHidden, filterListingJson, type Hidden, UnfilterableListingError } from './mcp-listing.ts';
import { planIsEmpty, type ResponsePlan, responsePlanOf } from './response-plan.ts';
import { StreamedBody } from './streamed-body.ts';
import { UsageMeter } from './usage-meter.ts';

export const EXT_PROC_PROTO = 'envoy/service/ext_proc/v3/external_processor.proto';

export interface MaskEvent {
  decisionId: string | null;
  counts: Record<string, number>;
  contentType: string | null;
}

/** What a filtered MCP listing hid (names and URIs), for the audit trail. */
export interface ListingFilteredEvent {
  decisionId: string | null;
  method: string | null;
  hidden: Hidden;
}

export interface ProcessorOptions {
  logger: Logger;
  onMasked?: (e: MaskEvent) => void;
  onFiltered?: (e: ListingFilteredEvent) => void;
  /** Where reported LLM tokens are counted (fleet/usage-counters.ts); absent: not counted. */
  usage?: { countTokens(key: UsageKey, tokens: number): void };
}

function headerValue(headers: any, name: string): string | undefined {
  for (const h of headers?.headers?.headers ?? []) {
    if (String(h.key).toLowerCase() !== name) continue;
    if (typeof h.value === 'string' && h.value !== '') return h.value;
    if (h.rawValue) return Buffer.from(h.rawValue).toString('utf8');
  }
  return undefined;
}

type RefusalCode =
  | 'ERR_STREAM_NOT_MASKABLE'
  | 'ERR_MASKING_FAILED'
  | 'ERR_RESPONSE_NOT_MASKABLE'
  | 'ERR_LISTING_NOT_FILTERABLE';

/** The response that replaces one that cannot be handled: status and reason from the deny catalog. */
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

const SSE = /^text\/event-stream/i;
const JSON_TYPE = /^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i;
/** A metered JSON answer is copied up to this size; a larger one is passed on uncounted. */
const METERED_JSON_MAX_BYTES = 8 * 1024 * 1024;
const DROP_LENGTH = { response: { headerMutation: { removeHeaders: ['content-length'] } } };

interface Head {
  status: number | null;
  contentType: string | undefined;
  contentEncoding: string | undefined;
  contentRange: string | undefined;
}

function headOf(msg: any): Head {
  const status = Number(headerValue(msg.responseHeaders, ':status'));
  return {
    status: Number.isInteger(status) ? status : null,
    contentType: headerValue(msg.responseHeaders, 'content-type'),
    contentEncoding: headerValue(msg.responseHeaders, 'content-encoding'),
    contentRange: headerValue(msg.responseHeaders, 'content-range'),
  };
}

const encoded = (h: Head) => {
  const e = h.contentEncoding?.trim().toLowerCase();
  return e !== undefined && e !== '' && e !== 'identity';
};

/** One response's exchange with Envoy: its headers decide whether the body is read, and how. */
class ResponseExchange {
  private plan: ResponsePlan = { decisionId: null, masks: null, filter: null, usage: null };
  private contentType: string | undefined;
  /** `buffered`: one body message; `streamed`: chunk by chunk; `pass`: nothing asked for. */
  private mode: 'pass' | 'buffered' | 'streamed' = 'pass';
  private streamed: StreamedBody | null = null;
  private reported = false;

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

  /** The stream closed (the response ended, or the client went away): count what was reported. */
  ended(): void {
    if (this.streamed) this.report(this.streamed.finish());
  }

  private headers(msg: any): void {
    this.plan = responsePlanOf(msg.metadataContext);
    const head = headOf(msg);
    this.contentType = head.contentType;
    if (planIsEmpty(this.plan)) this.pass();
    else if (this.plan.masks) this.maskHeaders(head, this.plan.masks);
    else if (this.plan.filter) this.listingHeaders(head);
    else this.meterHeaders(head);
  }

  private pass(): void {
    this.mode = 'pass';
    this.call.write({ responseHeaders: {}, modeOverride: { responseBodyMode: 'NONE' } });
  }

  private buffer(): void {
    this.mode = 'buffered';
    this.call.write({ responseHeaders: DROP_LENGTH, modeOverride: { responseBodyMode: 'BUFFERED' } });
  }

  private stream(rewrites: boolean): void {
    this.mode = 'streamed';
    this.streamed = new StreamedBody({
      sse: SSE.test(this.contentType ?? ''),
      filter: this.plan.filter,
      meter: this.plan.usage ? new UsageMeter() : null,
      maxJsonBytes: METERED_JSON_MAX_BYTES,
    });
    this.call.write({
      responseHeaders: rewrites ? DROP_LENGTH : {},
      modeOverride: { responseBodyMode: 'STREAMED' },
    });
  }

  /** Masks (and whatever else the plan asks) on one buffered body; streams are refused. */
  private maskHeaders(head: Head, masks: MaskSpec): void {
    if (SSE.test(head.contentType ?? '')) {
      this.call.write(refusal('ERR_STREAM_NOT_MASKABLE', 'chaperone_masking_refused_stream'));
      return;
    }
    const why = unmaskableReason(head, masks);
    if (why) {
      this.refuse('ERR_RESPONSE_NOT_MASKABLE', 'chaperone_masking_refused_response', why);
      return;
    }
    this.buffer();
  }

  /** An MCP listing: JSON buffered, an event stream rewritten as it goes, anything else refused. */
  private listingHeaders(head: Head): void {
    // Errors and empty answers (202 for a notification) carry no listing.
    if (head.status !== 200) {
      this.pass();
      return;
    }
    const why = encoded(head)
      ? 'an encoded response cannot be filtered'
      : head.contentRange !== undefined
        ? 'a partial response cannot be filtered'
        : SSE.test(head.contentType ?? '') || JSON_TYPE.test(head.contentType ?? '')
          ? null
          : `a ${head.contentType ? 'response of another type' : 'response without a content type'} cannot be filtered (JSON or text/event-stream)`;
    if (why) {
      this.refuse('ERR_LISTING_NOT_FILTERABLE', 'chaperone_listing_refused', why);
      return;
    }
    if (SSE.test(head.contentType ?? '')) {
      this.stream(true);
      return;
    }
    this.buffer();
  }

  /** Token counting reads the body as it passes, and never holds or refuses it. */
  private meterHeaders(head: Head): void {
    if (head.status !== 200) {
      this.pass();
      return;
    }
    if (encoded(head) || !(SSE.test(head.contentType ?? '') || JSON_TYPE.test(head.contentType ?? ''))) {
      this.o.logger.warn(
        { decision_id: this.plan.decisionId, content_type: head.contentType, encoding: head.contentEncoding },
        'LLM response tokens not counted: the body cannot be read',
      );
      this.pass();
      return;
    }
    this.stream(false);
  }

  private body(responseBody: { body?: Uint8Array; endOfStream?: boolean }): void {
    if (this.mode === 'streamed' && this.streamed) {
      const out = this.streamed.push(
        responseBody.body ?? new Uint8Array(),
        responseBody.endOfStream === true,
      );
      if (out.hidden) this.reportHidden(out.hidden);
      this.call.write({
        responseBody:
          out.body === null ? {} : { response: { bodyMutation: { body: Buffer.from(out.body) } } },
      });
      if (responseBody.endOfStream) this.report(this.streamed.finish());
      return;
    }
    if (this.mode !== 'buffered') {
      this.call.write({ responseBody: {} });
      return;
    }
    this.call.write({
      responseBody: {
        response: { bodyMutation: { body: Buffer.from(this.bufferedBody(responseBody.body)) } },
      },
    });
  }

  /** The whole body, metered, then filtered, then masked. */
  private bufferedBody(bytes: Uint8Array | undefined): string {
    let text = Buffer.from(bytes ?? []).toString('utf8');
    if (this.plan.usage) {
      const meter = new UsageMeter();
      meter.observeJsonText(text);
      this.report(meter.tokens());
    }
    if (this.plan.filter) {
      const filtered = filterListingJson(text, this.plan.filter);
      this.reportHidden(filtered.hidden);
      text = filtered.body;
    }
    if (this.plan.masks) {
      const masked = maskBody(text, this.contentType, this.plan.masks);
      this.o.onMasked?.({
        decisionId: this.plan.decisionId,
        counts: masked.counts,
        contentType: this.contentType ?? null,
      });
      text = masked.body;
    }
    return text;
  }

  private reportHidden(hidden: Hidden): void {
    const all: Hidden = {};
    addHidden(all, hidden);
    if (Object.keys(all).length === 0) return;
    this.o.onFiltered?.({
      decisionId: this.plan.decisionId,
      method: this.plan.filter?.method ?? null,
      hidden: all,
    });
  }

  /** The tokens of this response, once. */
  private report(tokens: number | null): void {
    if (this.reported || !this.plan.usage) return;
    this.reported = true;
    if (tokens === null) {
      this.o.logger.warn(
        { decision_id: this.plan.decisionId, target: this.plan.usage.target },
        'LLM response reported no usage: its tokens are not counted',
      );
      return;
    }
    const { provider: _p, api: _a, ...key } = this.plan.usage;
    this.o.usage?.countTokens(key, tokens);
  }

  private refuse(code: RefusalCode, details: string, why: string): void {
    this.o.logger.warn({ decision_id: this.plan.decisionId, reason: why }, 'response refused');
    this.call.write(refusal(code, details, why));
  }

  /** Fail closed: a body that cannot be handled as declared is not sent. */
  private failed(err: unknown): void {
    if (err instanceof UnmaskableResponseError) {
      this.refuse('ERR_RESPONSE_NOT_MASKABLE', 'chaperone_masking_refused_response', err.message);
      return;
    }
    if (err instanceof UnfilterableListingError) {
      this.refuse('ERR_LISTING_NOT_FILTERABLE', 'chaperone_listing_refused', err.message);
      return;
    }
    this.o.logger.error(
      { decision_id: this.plan.decisionId, err: err instanceof Error ? err.message : String(err) },
      'response processing failed',
    );
    this.call.write(refusal('ERR_MASKING_FAILED', 'chaperone_masking_failed'));
  }
}

export function addMaskProcessor(server: grpc.Server, o: ProcessorOptions): void {
  const root = loadEnvoyProtos([EXT_PROC_PROTO]);
  const svc = lookup<grpc.ServiceClientConstructor>(root, 'envoy.service.ext_proc.v3.ExternalProcessor');
  server.addService(svc.service, {
    Process: (call: grpc.ServerDuplexStream<any, any>) => {
      const exchange = new ResponseExchange(call, o);
      call.on('data', (msg: unknown) => exchange.receive(msg));
      call.on('end', () => {
        exchange.ended();
        call.end();
      });
      call.on('error', () => exchange.ended());
    },
  });
}
