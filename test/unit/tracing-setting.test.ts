// When traces are on (the OTEL_* environment), and how a W3C traceparent is read.
import { describe, expect, it } from 'vitest';
import { parseTraceparent, traceIdOf } from '../../telemetry/traceparent.ts';
import { tracingSetting } from '../../telemetry/tracing.ts';

describe('tracingSetting', () => {
  it.each([
    [{}, { on: false, reason: 'no OTLP endpoint (OTEL_EXPORTER_OTLP_ENDPOINT) configured' }],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' }, { on: true, protocol: 'http/protobuf' }],
    [
      { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://c:4318/v1/traces' },
      { on: true, protocol: 'http/protobuf' },
    ],
    [{ OTEL_TRACES_EXPORTER: 'otlp' }, { on: true, protocol: 'http/protobuf' }],
    [
      { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' },
      { on: true, protocol: 'http/json' },
    ],
    [
      {
        OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318',
        OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
        OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/protobuf',
      },
      { on: true, protocol: 'http/protobuf' },
    ],
    [
      { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4317', OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' },
      { on: false, reason: 'OTLP protocol grpc is not supported (use http/protobuf or http/json)' },
    ],
    [
      { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_SDK_DISABLED: 'true' },
      { on: false, reason: 'OTEL_SDK_DISABLED=true' },
    ],
    [
      { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_TRACES_EXPORTER: 'none' },
      { on: false, reason: 'OTEL_TRACES_EXPORTER=none' },
    ],
    [
      { OTEL_TRACES_EXPORTER: 'console' },
      { on: false, reason: 'OTEL_TRACES_EXPORTER=console: only otlp is supported' },
    ],
    [
      { OTEL_TRACES_EXPORTER: 'otlp,zipkin' },
      { on: false, reason: 'OTEL_TRACES_EXPORTER=otlp,zipkin: only otlp is supported' },
    ],
  ])('%j → %j', (env, expected) => {
    expect(tracingSetting(env)).toEqual(expected);
  });
});

describe('parseTraceparent', () => {
  const T = '4bf92f3577b34da6a3ce929d0e0e4736';
  const P = '00f067aa0ba902b7';
  it.each([
    [`00-${T}-${P}-01`, { traceId: T, parentId: P, sampled: true }],
    [`00-${T}-${P}-00`, { traceId: T, parentId: P, sampled: false }],
    [` 00-${T}-${P}-01 `, { traceId: T, parentId: P, sampled: true }],
    // A later version may append fields.
    [`01-${T}-${P}-01-extra`, { traceId: T, parentId: P, sampled: true }],
  ])('%s is read', (value, expected) => {
    expect(parseTraceparent(value)).toEqual(expected);
    expect(traceIdOf(value)).toBe(T);
  });

  it.each([
    undefined,
    '',
    'garbage',
    `00-${T}-${P}-01-extra`, // version 00 has exactly four fields
    `ff-${T}-${P}-01`,
    `00-${'0'.repeat(32)}-${P}-01`,
    `00-${T}-${'0'.repeat(16)}-01`,
    `00-${T.toUpperCase()}-${P}-01`,
    `00-${T}-${P}`,
    `00-${T}-${P}-01${'x'.repeat(600)}`,
  ])('%j is ignored', (value) => {
    expect(parseTraceparent(value)).toBeNull();
    expect(traceIdOf(value)).toBeNull();
  });
});
