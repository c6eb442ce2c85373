// W3C Trace Context (https://www.w3.org/TR/trace-context/) `traceparent`, read without the OpenTelemetry
// SDK: the decision record keeps the trace id of the request even when Chaperone itself does not trace.
// The header is client-controlled: it is a correlation hint, validated for shape, never trusted further.

/** `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>` (a later version may append fields). */
const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;
const ZERO_TRACE = '0'.repeat(32);
const ZERO_SPAN = '0'.repeat(16);

export interface TraceParent {
  traceId: string;
  parentId: string;
  sampled: boolean;
}

/** The parsed header, or null when it is absent or malformed (then it is ignored, as the spec says). */
export function parseTraceparent(value: string | undefined | null): TraceParent | null {
  if (!value || value.length > 512) return null;
  const m = TRACEPARENT.exec(value.trim());
  if (!m) return null;
  const [, version, traceId, parentId, flags, rest] = m as unknown as [
    string,
    string,
    string,
    string,
    string,
    string?,
  ];
  // Version ff is invalid; version 00 has exactly four fields.
  if (version === 'ff' || (version === '00' && rest !== undefined)) return null;
  if (traceId === ZERO_TRACE || parentId === ZERO_SPAN) return null;
  return { traceId, parentId, sampled: (Number.parseInt(flags, 16) & 1) === 1 };
}

/** The trace id of a valid `traceparent`, else null. */
export function traceIdOf(value: string | undefined | null): string | null {
  return parseTraceparent(value)?.traceId ?? null;
}
