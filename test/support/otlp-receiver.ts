// A small OTLP/HTTP trace receiver for tests: POST /v1/traces in protobuf (`application/x-protobuf`, the
// spec's default) or JSON (`application/json`), decoded into plain spans. The protobuf side reads the
// OTLP trace messages from a subset of opentelemetry-proto's trace.proto and common.proto (field numbers
// as published; fields a test does not read are left out and skipped as unknown).
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import protobuf from 'protobufjs';

const OTLP_TRACE_PROTO = `
syntax = "proto3";
package otlp;
message ExportTraceServiceRequest { repeated ResourceSpans resource_spans = 1; }
message ResourceSpans { Resource resource = 1; repeated ScopeSpans scope_spans = 2; }
message Resource { repeated KeyValue attributes = 1; }
message ScopeSpans { InstrumentationScope scope = 1; repeated Span spans = 2; }
message InstrumentationScope { string name = 1; string version = 2; }
message Span {
  bytes trace_id = 1;
  bytes span_id = 2;
  string trace_state = 3;
  bytes parent_span_id = 4;
  string name = 5;
  int32 kind = 6;
  fixed64 start_time_unix_nano = 7;
  fixed64 end_time_unix_nano = 8;
  repeated KeyValue attributes = 9;
  Status status = 15;
}
message Status { string message = 2; int32 code = 3; }
message KeyValue { string key = 1; AnyValue value = 2; }
message AnyValue {
  oneof value { string string_value = 1; bool bool_value = 2; int64 int_value = 3; double double_value = 4; }
}
`;

const Request = protobuf
  .parse(OTLP_TRACE_PROTO, { keepCase: false })
  .root.lookupType('otlp.ExportTraceServiceRequest');

export interface ReceivedSpan {
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  kind: number;
  attributes: Record<string, string | number | boolean>;
  resource: Record<string, string | number | boolean>;
  statusCode: number;
  /** How it arrived. */
  encoding: 'protobuf' | 'json';
}

type Obj = Record<string, any>;

const hex = (v: unknown) => (v instanceof Uint8Array ? Buffer.from(v).toString('hex') : String(v ?? ''));

function attributesOf(list: Obj[] | undefined): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (const kv of list ?? []) {
    const v = kv['value'] ?? {};
    // int64 arrives as a string (proto3 JSON, and protobufjs with longs as String).
    out[kv['key']] =
      v['intValue'] !== undefined
        ? Number(v['intValue'])
        : (v['stringValue'] ?? v['boolValue'] ?? v['doubleValue']);
  }
  return out;
}

/** OTLP JSON and the protobuf decoded as an object share one shape (lowerCamelCase fields). */
function spansOf(req: Obj, encoding: ReceivedSpan['encoding']): ReceivedSpan[] {
  const out: ReceivedSpan[] = [];
  for (const rs of req['resourceSpans'] ?? []) {
    const resource = attributesOf(rs['resource']?.['attributes']);
    for (const ss of rs['scopeSpans'] ?? [])
      for (const s of ss['spans'] ?? [])
        out.push({
          traceId: hex(s['traceId']),
          spanId: hex(s['spanId']),
          parentSpanId: hex(s['parentSpanId']),
          name: s['name'],
          kind: Number(s['kind'] ?? 0),
          attributes: attributesOf(s['attributes']),
          resource,
          statusCode: Number(s['status']?.['code'] ?? 0),
          encoding,
        });
  }
  return out;
}

export interface OtlpReceiver {
  /** The base URL to give as OTEL_EXPORTER_OTLP_ENDPOINT. */
  url: string;
  spans: ReceivedSpan[];
  close(): Promise<void>;
}

export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const spans: ReceivedSpan[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const json = (req.headers['content-type'] ?? '').startsWith('application/json');
      if (req.method !== 'POST' || req.url !== '/v1/traces') {
        res.writeHead(404).end();
        return;
      }
      const decoded = json
        ? (JSON.parse(body.toString('utf8')) as Obj)
        : (Request.toObject(Request.decode(body), { longs: String, bytes: Buffer }) as Obj);
      spans.push(...spansOf(decoded, json ? 'json' : 'protobuf'));
      res.writeHead(200, { 'content-type': json ? 'application/json' : 'application/x-protobuf' });
      res.end(json ? '{}' : Buffer.alloc(0));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    spans,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
