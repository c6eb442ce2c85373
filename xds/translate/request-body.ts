// How a request body reaches the check, in Envoy's terms: the ext_authz buffer settings of each route,
// and the route metadata that names its limit (the reply when a body is over it: local-replies.ts).
// With `buffer` Envoy holds the whole body before calling the authz server, without partial messages:
// ext_authz raises the stream's buffer limit to `max_request_bytes` (so a limit above the listener's
// per-connection buffer works) and answers 413 itself above it, before any check. No check, and so no
// policy, ever sees part of a body. With `headers_only` the check runs on the headers and the body
// streams to the upstream, never buffered.
import type { IrListener, TargetBody } from '../ir/types.ts';

const MIB = 1024 * 1024;

/**
 * The check's deadline on a listener (ext_authz `grpc_service.timeout`, one per filter). 0.5 s covers a
 * decision on headers (Envoy's 200 ms default does not cover a cold JWKS fetch). A buffered body adds
 * a cost about linear in its size — it crosses gRPC, is parsed, and is copied into the WASM policy —
 * measured at ~0.25 s for 1 MiB end to end on a 2-core machine shared with a dozen busy processes: the
 * deadline grows by 0.5 s per MiB of the largest body a route of this listener buffers, in 0.1 s steps.
 * Fail closed either way: a late answer is a 503, never an allow.
 */
export function extAuthzTimeout(listener: IrListener): string {
  const largest = Math.max(
    0,
    ...listener.virtualHosts.flatMap((vh) =>
      vh.routes.map((r) => (r.body.mode === 'buffer' ? r.body.maxRequestBytes : 0)),
    ),
  );
  const tenths = 5 + Math.ceil((largest / MIB) * 5);
  return `${tenths / 10}s`;
}

/** Route metadata namespace of Chaperone's own settings, read back by Envoy's local replies. */
export const ROUTE_METADATA_NAMESPACE = 'chaperone';

/** ext_authz `BufferSettings` for a buffered body of at most `maxRequestBytes`. */
export function withRequestBody(maxRequestBytes: number): Record<string, unknown> {
  return { max_request_bytes: maxRequestBytes, allow_partial_message: false, pack_as_bytes: true };
}

/** The body part of a route's ext_authz `CheckSettings`. */
export function checkSettingsBody(body: TargetBody): Record<string, unknown> {
  return body.mode === 'headers_only'
    ? { disable_request_body_buffering: true }
    : { with_request_body: withRequestBody(body.maxRequestBytes) };
}

/** Route metadata: the limit, for the 413 reply below to name. */
export function routeBodyMetadata(body: TargetBody): Record<string, unknown> | null {
  if (body.mode !== 'buffer') return null;
  return { filter_metadata: { [ROUTE_METADATA_NAMESPACE]: { max_request_bytes: body.maxRequestBytes } } };
}
