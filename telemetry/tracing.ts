// OpenTelemetry traces of the Check path: one span per Check, a child of the request's trace (the
// `traceparent` Envoy sends in the gRPC metadata when it traces, else the one the client sent with the
// request), carrying the decision's attributes — decision id, verdict, reason code, target, route and
// policy revision; never a token, a header value or a body.
//
// Off unless the standard environment asks for it (OTEL_EXPORTER_OTLP_ENDPOINT,
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, or OTEL_TRACES_EXPORTER=otlp) and OTEL_SDK_DISABLED is not true.
// Off means free: the SDK is not even imported, and the Check path tests one undefined. Exported with
// OTLP over HTTP, protobuf (the spec's default) or JSON per OTEL_EXPORTER_OTLP[_TRACES]_PROTOCOL; the
// endpoint comes from OTEL_EXPORTER_OTLP[_TRACES]_ENDPOINT; the exporter reads the headers, timeout and
// TLS variables itself; the sampler follows OTEL_TRACES_SAMPLER[_ARG]; OTEL_SERVICE_NAME and
// OTEL_RESOURCE_ATTRIBUTES name the resource; OTEL_BSP_* tune the batching.
import type { Logger } from 'pino';
import type { DecisionEvent } from '../contracts/decision.ts';
import { parseTraceparent } from './traceparent.ts';

/** One Check's span: its trace id is recorded with the decision; `end` closes it with the decision. */
export interface CheckTrace {
  readonly traceId: string;
  /** The decision (null: the Check failed before deciding, an internal error). */
  end(event: DecisionEvent | null): void;
}

export interface CheckTracer {
  /** Starts a Check's span under `traceparent` (a root span when it is absent or malformed). */
  begin(traceparent: string | undefined): CheckTrace;
  /** Exports what is buffered and stops. */
  shutdown(): Promise<void>;
}

type Env = Readonly<Record<string, string | undefined>>;

export type TracingSetting =
  | { on: false; reason: string }
  | { on: true; protocol: 'http/protobuf' | 'http/json' };

/** Whether the environment asks for traces, and how they are sent. */
export function tracingSetting(env: Env = process.env): TracingSetting {
  if ((env['OTEL_SDK_DISABLED'] ?? '').trim().toLowerCase() === 'true')
    return { on: false, reason: 'OTEL_SDK_DISABLED=true' };
  const exporters = (env['OTEL_TRACES_EXPORTER'] ?? '')
    .split(',')
    .map((s) => s.trim().toLowerCase())
    .filter(Boolean);
  if (exporters.includes('none')) return { on: false, reason: 'OTEL_TRACES_EXPORTER=none' };
  if (exporters.some((e) => e !== 'otlp'))
    return {
      on: false,
      reason: `OTEL_TRACES_EXPORTER=${env['OTEL_TRACES_EXPORTER']}: only otlp is supported`,
    };
  const endpoint = env['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT'] ?? env['OTEL_EXPORTER_OTLP_ENDPOINT'];
  if (!exporters.includes('otlp') && !endpoint)
    return { on: false, reason: 'no OTLP endpoint (OTEL_EXPORTER_OTLP_ENDPOINT) configured' };
  const protocol = (
    env['OTEL_EXPORTER_OTLP_TRACES_PROTOCOL'] ??
    env['OTEL_EXPORTER_OTLP_PROTOCOL'] ??
    'http/protobuf'
  ).trim();
  if (protocol !== 'http/protobuf' && protocol !== 'http/json')
    return {
      on: false,
      reason: `OTLP protocol ${protocol} is not supported (use http/protobuf or http/json)`,
    };
  return { on: true, protocol };
}

/** OTEL_TRACES_SAMPLER (default parentbased_always_on) as the SDK's sampler. */
async function samplerFrom(env: Env) {
  const sdk = await import('@opentelemetry/sdk-trace');
  const ratio = Number(env['OTEL_TRACES_SAMPLER_ARG'] ?? '1');
  const ratioSampler = () => new sdk.TraceIdRatioBasedSampler(Number.isFinite(ratio) ? ratio : 1);
  switch ((env['OTEL_TRACES_SAMPLER'] ?? 'parentbased_always_on').trim().toLowerCase()) {
    case 'always_on':
      return new sdk.AlwaysOnSampler();
    case 'always_off':
      return new sdk.AlwaysOffSampler();
    case 'traceidratio':
      return ratioSampler();
    case 'parentbased_always_off':
      return new sdk.ParentBasedSampler({ root: new sdk.AlwaysOffSampler() });
    case 'parentbased_traceidratio':
      return new sdk.ParentBasedSampler({ root: ratioSampler() });
    default:
      return new sdk.ParentBasedSampler({ root: new sdk.AlwaysOnSampler() });
  }
}

/** OTEL_BSP_* as BatchSpanProcessor options (the SDK reads none of them itself). */
function batchOptions(env: Env): Record<string, number> {
  const out: Record<string, number> = {};
  const map: [string, string][] = [
    ['OTEL_BSP_SCHEDULE_DELAY', 'scheduledDelayMillis'],
    ['OTEL_BSP_EXPORT_TIMEOUT', 'exportTimeoutMillis'],
    ['OTEL_BSP_MAX_QUEUE_SIZE', 'maxQueueSize'],
    ['OTEL_BSP_MAX_EXPORT_BATCH_SIZE', 'maxExportBatchSize'],
  ];
  for (const [name, option] of map) {
    const v = Number(env[name]);
    if (env[name] !== undefined && Number.isFinite(v) && v > 0) out[option] = v;
  }
  return out;
}

/**
 * The traces endpoint as the spec derives it: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT as is, else
 * OTEL_EXPORTER_OTLP_ENDPOINT + `/v1/traces`; undefined leaves the exporter's default (localhost:4318).
 */
export function tracesUrl(env: Env): string | undefined {
  const signal = env['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT']?.trim();
  if (signal) return signal;
  const base = env['OTEL_EXPORTER_OTLP_ENDPOINT']?.trim();
  return base ? `${base.replace(/\/+$/, '')}/v1/traces` : undefined;
}

/** The endpoint from `env`; headers, timeout, compression and TLS the exporter reads from the process. */
function exporterConfig(env: Env): { url?: string } {
  const url = tracesUrl(env);
  return url ? { url } : {};
}

/** The decision's attributes on the span: identifiers and codes, nothing a request could carry. */
function decisionAttributes(e: DecisionEvent): Record<string, string | number> {
  return {
    'chaperone.decision_id': e.decisionId,
    'chaperone.decision': e.verdict.decision,
    'chaperone.reason_code': e.verdict.reasonCode,
    'chaperone.target': e.target ?? '',
    'chaperone.route_id': e.routeId ?? '',
    'chaperone.policy_revision': e.policyRevision,
    'http.request.method': e.method,
    'http.response.status_code': e.verdict.httpStatus,
  };
}

/**
 * The Check tracer the environment asks for, or null (traces off; `logger` says why at debug level,
 * or as a warning when the environment asked for something unsupported).
 */
export async function startTracing(o: {
  serviceName: string;
  logger: Logger;
  env?: Env;
}): Promise<CheckTracer | null> {
  const env = o.env ?? process.env;
  const setting = tracingSetting(env);
  if (!setting.on) {
    const asked = env['OTEL_TRACES_EXPORTER'] || env['OTEL_EXPORTER_OTLP_PROTOCOL'];
    if (asked && !setting.reason.startsWith('no OTLP')) o.logger.warn(`traces are off: ${setting.reason}`);
    else o.logger.debug(`traces are off: ${setting.reason}`);
    return null;
  }
  const [api, sdk, resources] = await Promise.all([
    import('@opentelemetry/api'),
    import('@opentelemetry/sdk-trace'),
    import('@opentelemetry/resources'),
  ]);
  const { OTLPTraceExporter } =
    setting.protocol === 'http/json'
      ? await import('@opentelemetry/exporter-trace-otlp-http')
      : await import('@opentelemetry/exporter-trace-otlp-proto');
  const resource = resources
    .resourceFromAttributes({ 'service.name': o.serviceName })
    .merge(resources.detectResources({ detectors: [resources.envDetector] }));
  const provider = new sdk.TracerProvider({
    resource,
    sampler: await samplerFrom(env),
    spanProcessors: [
      new sdk.BatchSpanProcessor({
        exporter: new OTLPTraceExporter(exporterConfig(env)),
        ...batchOptions(env),
      }),
    ],
  });
  const tracer = provider.getTracer('chaperone.authz');
  o.logger.info({ protocol: setting.protocol }, 'traces on: a span per Check, exported over OTLP');
  return {
    begin(traceparent) {
      const parent = parseTraceparent(traceparent);
      const ctx = parent
        ? api.trace.setSpanContext(api.ROOT_CONTEXT, {
            traceId: parent.traceId,
            spanId: parent.parentId,
            traceFlags: parent.sampled ? api.TraceFlags.SAMPLED : api.TraceFlags.NONE,
            isRemote: true,
          })
        : api.ROOT_CONTEXT;
      const span = tracer.startSpan('chaperone.check', { kind: api.SpanKind.SERVER }, ctx);
      return {
        traceId: span.spanContext().traceId,
        end(event) {
          if (event) {
            span.setAttributes(decisionAttributes(event));
            if (event.verdict.decision === 'error')
              span.setStatus({ code: api.SpanStatusCode.ERROR, message: event.verdict.reasonCode });
          } else span.setStatus({ code: api.SpanStatusCode.ERROR, message: 'ERR_INTERNAL' });
          span.end();
        },
      };
    },
    shutdown: () => provider.shutdown(),
  };
}
