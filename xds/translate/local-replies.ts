// The connection manager's `local_reply_config`: the answers Envoy gives on its own, before or instead of
// a decision, get a JSON body with a Chaperone code like the authz server's denies. A mapper only ever
// matches replies the authz server did not write: whatever it answered keeps its own body.
import { denyOf } from '../../contracts/errors.ts';
import { CEL_FILTER, CEL_FILTER_TYPE } from './envoy-names.ts';
import { ROUTE_METADATA_NAMESPACE } from './request-body.ts';

/** The ext_authz filter's response code details: it answered with the server's deny, or failed closed. */
const AUTHZ_DENIED = 'ext_authz_denied';
const AUTHZ_ERROR = 'ext_authz_error';

/** What a client should wait before retrying Envoy's 503 for a missing decision. */
const RETRY_AFTER_SECONDS = '1';

export function localReplyConfig(): Record<string, unknown> {
  return { mappers: [bodyTooLargeMapper(), authzUnavailableMapper()] };
}

/**
 * Envoy's own 413 (a body over the route's limit, refused before any check): names the limit. A 413 the
 * authz server answered (ERR_BODY_TRUNCATED, a policy's own 413) is `ext_authz_denied` and keeps its body.
 */
function bodyTooLargeMapper(): Record<string, unknown> {
  const limit = `%METADATA(ROUTE:${ROUTE_METADATA_NAMESPACE}:max_request_bytes)%`;
  return {
    filter: {
      and_filter: {
        filters: [statusIs(413, 'chaperone.body_too_large'), codeDetails(`!= '${AUTHZ_DENIED}'`)],
      },
    },
    body_format_override: jsonBody(
      'ERR_BODY_TOO_LARGE',
      `the request body is larger than this route accepts (max_request_bytes ${limit})`,
    ),
  };
}

/**
 * ext_authz failed closed without an answer (`status_on_error`): over the authz cluster's circuit
 * breaker, past the deadline, or the server unreachable. Envoy marks a deny and a failure alike (UAEX)
 * and keeps a denied answer's metadata off the stream, so only the response code details tell them
 * apart: `ext_authz_error` here, `ext_authz_denied` for every answer of the authz server (the shed
 * ERR_OVERLOADED and a policy's own 503 included). An upstream's 503 keeps Envoy's text.
 */
function authzUnavailableMapper(): Record<string, unknown> {
  return {
    filter: {
      and_filter: {
        filters: [statusIs(503, 'chaperone.authz_unavailable'), codeDetails(`== '${AUTHZ_ERROR}'`)],
      },
    },
    headers_to_add: [
      {
        header: { key: 'retry-after', value: RETRY_AFTER_SECONDS },
        append_action: 'OVERWRITE_IF_EXISTS_OR_ADD',
      },
    ],
    body_format_override: jsonBody('ERR_AUTHZ_UNAVAILABLE', denyOf('ERR_AUTHZ_UNAVAILABLE').publicReason),
  };
}

/** The deny body's shape; no decision id (there was no decision), Envoy's request id instead. */
function jsonBody(error: string, reason: string): Record<string, unknown> {
  return {
    json_format: { error, reason, request_id: '%REQ(X-REQUEST-ID)%' },
    content_type: 'application/json',
  };
}

/** An access-log filter: the response status is `status` (Envoy requires a runtime key). */
function statusIs(status: number, runtimeKey: string): Record<string, unknown> {
  return {
    status_code_filter: {
      comparison: { op: 'EQ', value: { default_value: status, runtime_key: runtimeKey } },
    },
  };
}

/** An access-log filter on Envoy's response code details (`%RESPONSE_CODE_DETAILS%`), e.g. `== 'x'`. */
function codeDetails(comparison: string): Record<string, unknown> {
  return {
    extension_filter: {
      name: CEL_FILTER,
      typed_config: { '@type': CEL_FILTER_TYPE, expression: `response.code_details ${comparison}` },
    },
  };
}
