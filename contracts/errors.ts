// One error catalog for all of Chaperone. Two kinds of code:
// - deny codes: a Check the authz server denies on its own (not because a policy said no). Each has its
//   HTTP status and the public reason a denied client sees in DENY_CATALOG, here and nowhere else;
// - operational codes: start-up, configuration, store, CLI and API failures.
// docs/errors.md documents every code (test/unit/error-codes.test.ts checks). `publicMessage` is what a
// client may see; `message`/`cause` are for the log only and never hold tokens or secrets.

/** Why the authz server denied a Check by itself. */
export type AuthzErrorCode =
  | 'ERR_TOKEN_MISSING'
  | 'ERR_TOKEN_MALFORMED'
  | 'ERR_TOKEN_EXPIRED'
  | 'ERR_TOKEN_NOT_YET_VALID'
  | 'ERR_TOKEN_SIGNATURE'
  | 'ERR_TOKEN_ALG'
  | 'ERR_TOKEN_ISSUER'
  | 'ERR_TOKEN_AUDIENCE'
  | 'ERR_TOKEN_CLAIMS'
  | 'ERR_TOKEN_REVOKED'
  | 'ERR_JWKS_UNAVAILABLE'
  | 'ERR_PATH_NONCANONICAL'
  | 'ERR_REQUEST_MALFORMED'
  | 'ERR_BODY_UNPARSABLE'
  | 'ERR_BODY_TRUNCATED'
  | 'ERR_BODY_TOO_LARGE'
  | 'ERR_BODY_CONTENT_TYPE'
  | 'ERR_POLICY_MISSING'
  | 'ERR_POLICY_UNDEFINED'
  | 'ERR_POLICY_EVAL'
  | 'ERR_POLICY_RESULT_INVALID'
  | 'ERR_AUDIT_UNAVAILABLE'
  | 'ERR_CREDENTIAL_UNAVAILABLE'
  | 'ERR_APPROVAL_SPENT'
  | 'ERR_PROTOCOL_INVALID'
  | 'ERR_PROTOCOL_AMBIGUOUS'
  | 'ERR_PROTOCOL_LIMIT'
  | 'ERR_MASKING_FAILED'
  | 'ERR_STREAM_NOT_MASKABLE'
  | 'ERR_RESPONSE_NOT_MASKABLE'
  | 'ERR_OVERLOADED'
  | 'ERR_AUTHZ_UNAVAILABLE'
  | 'ERR_LISTING_NOT_FILTERABLE'
  | 'ERR_INTERNAL';

/** Failures outside a Check: start-up, configuration, the store, the CLI, the HTTP API. */
export type OperationalErrorCode =
  | 'ERR_CONFIG_INVALID'
  | 'ERR_BUNDLE_INVALID'
  | 'ERR_BUNDLE_SIGNATURE'
  | 'ERR_BUNDLE_SOURCE'
  | 'ERR_POLICY_REVISION'
  | 'ERR_TRANSLATE'
  | 'ERR_PORT_IN_USE'
  | 'ERR_TOOL_NOT_FOUND'
  | 'ERR_ENVOY_START'
  | 'ERR_DATA_PLANE_TLS'
  | 'ERR_AUDIT_STORE'
  | 'ERR_AUDIT_TRUST'
  | 'ERR_STATE_DIR'
  | 'ERR_SPOOL_IO'
  | 'ERR_API_REQUEST'
  | 'ERR_API_UNAUTHENTICATED'
  | 'ERR_API_FORBIDDEN'
  | 'ERR_API_HOST'
  | 'ERR_API_UNREACHABLE'
  | 'ERR_CLI_USAGE'
  | 'ERR_GATEWAY_START'
  | 'ERR_APPROVAL'
  | 'ERR_MASK_SPEC_INVALID'
  | 'ERR_BUILTIN'
  | 'ERR_GRPC_CALL';

export type ErrorCode = AuthzErrorCode | OperationalErrorCode;

/** Identity failures: the verifier's (and the kill switch's) codes, handed to the policy, not denied by the server. */
export type TokenErrorCode = Extract<AuthzErrorCode, `ERR_TOKEN_${string}` | 'ERR_JWKS_UNAVAILABLE'>;

/** Codes the authz server denies with on its own. */
export type ServerDenyCode = Exclude<AuthzErrorCode, TokenErrorCode>;

/** How a deny code reaches a client. */
export type DenyRule =
  | {
      /**
       * The policy decides: it sees `input.identity == null` and `input.identity_error {code, reason}`;
       * the shipped library answers `libraryStatus` with that code. The server never denies with it.
       */
      decidedBy: 'policy';
      libraryStatus: 401;
    }
  | {
      decidedBy: 'server';
      status: number;
      /** The verdict's `decision`: `error` for a failure of the policy or of what an allow needs. */
      verdict: 'deny' | 'error';
      /** What a denied client reads when the step gives no public detail. */
      publicReason: string;
      /**
       * Only for codes whose detail describes the client's own request (which part of the path, body or
       * protocol is wrong; its own approval id) and so can never hold a secret: the public reason built
       * from the step's detail. Other codes keep their detail for the log.
       */
      publicDetail?: (detail: string) => string;
    };

const byPolicy = { decidedBy: 'policy', libraryStatus: 401 } as const;
/** The input builder's and protocol decoders' reasons name what is wrong with the client's request. */
const requestDetail = (detail: string) => detail;

/** Every deny code: who decides, the HTTP status and what the client reads (docs/errors.md lists the same). */
export const DENY_CATALOG: { readonly [C in AuthzErrorCode]: DenyRule } = {
  ERR_TOKEN_MISSING: byPolicy,
  ERR_TOKEN_MALFORMED: byPolicy,
  ERR_TOKEN_EXPIRED: byPolicy,
  ERR_TOKEN_NOT_YET_VALID: byPolicy,
  ERR_TOKEN_SIGNATURE: byPolicy,
  ERR_TOKEN_ALG: byPolicy,
  ERR_TOKEN_ISSUER: byPolicy,
  ERR_TOKEN_AUDIENCE: byPolicy,
  ERR_TOKEN_CLAIMS: byPolicy,
  ERR_TOKEN_REVOKED: byPolicy,
  ERR_JWKS_UNAVAILABLE: byPolicy,
  ERR_PATH_NONCANONICAL: server(400, 'deny', 'non-canonical path', requestDetail),
  ERR_REQUEST_MALFORMED: server(400, 'deny', 'the request could not be read', requestDetail),
  ERR_BODY_UNPARSABLE: server(400, 'deny', 'the request body does not parse', requestDetail),
  ERR_BODY_TRUNCATED: server(413, 'deny', 'the request body is incomplete', requestDetail),
  ERR_BODY_TOO_LARGE: server(
    413,
    'deny',
    'the request body is larger than this route accepts',
    requestDetail,
  ),
  ERR_PROTOCOL_INVALID: server(400, 'deny', 'the request is not a valid protocol message', requestDetail),
  ERR_PROTOCOL_AMBIGUOUS: server(400, 'deny', 'the request can be read more than one way', requestDetail),
  ERR_PROTOCOL_LIMIT: server(400, 'deny', 'the request exceeds a protocol limit', requestDetail),
  ERR_BODY_CONTENT_TYPE: server(
    400,
    'deny',
    'the request body has an unacceptable content type',
    requestDetail,
  ),
  ERR_POLICY_MISSING: server(503, 'deny', 'no policy is loaded'),
  ERR_POLICY_UNDEFINED: server(403, 'error', 'policy decision is undefined'),
  ERR_POLICY_EVAL: server(403, 'error', 'policy evaluation failed'),
  ERR_POLICY_RESULT_INVALID: server(403, 'error', 'policy result is invalid'),
  ERR_AUDIT_UNAVAILABLE: server(503, 'deny', 'decision could not be recorded'),
  ERR_CREDENTIAL_UNAVAILABLE: server(503, 'error', 'upstream credential is unavailable'),
  ERR_APPROVAL_SPENT: server(
    403,
    'deny',
    'the approval was already used or has expired',
    (approvalId) => `approval ${approvalId} was already used or has expired`,
  ),
  // The response path (ext_proc mask processor): the body is refused, never sent unmasked.
  ERR_MASKING_FAILED: server(502, 'error', 'the response could not be masked'),
  ERR_STREAM_NOT_MASKABLE: server(502, 'deny', 'streaming responses are refused on a masked route'),
  ERR_RESPONSE_NOT_MASKABLE: server(
    502,
    'deny',
    'the response cannot be masked as the policy declared',
    (why) => `the response cannot be masked as the policy declared: ${why}`,
  ),
  // Load shedding: answered at once, before any evaluation, instead of an ext_authz timeout later.
  ERR_OVERLOADED: server(503, 'deny', 'the gateway is over capacity; retry shortly'),
  // Envoy's, never the server's: no answer from the authz server (over the authz cluster's circuit breaker,
  // past the ext_authz deadline, unreachable). The connection manager's local reply carries it
  // (xds/translate/local-replies.ts), so a client reads a code instead of an empty 503.
  ERR_AUTHZ_UNAVAILABLE: server(503, 'error', 'no authorization decision could be made; retry shortly'),
  // An MCP listing the policy filters (mcp_visible) that cannot be read: never passed on unfiltered.
  ERR_LISTING_NOT_FILTERABLE: server(
    502,
    'deny',
    'the MCP listing cannot be filtered as the policy declared',
    (why) => `the MCP listing cannot be filtered as the policy declared: ${why}`,
  ),
  ERR_INTERNAL: server(500, 'deny', 'internal error in the authorization server'),
};

function server(
  status: number,
  verdict: 'deny' | 'error',
  publicReason: string,
  publicDetail?: (detail: string) => string,
): DenyRule {
  return { decidedBy: 'server', status, verdict, publicReason, ...(publicDetail ? { publicDetail } : {}) };
}

/** The status, verdict and public reason of a server deny; `detail` is shown only where the catalog allows. */
export function denyOf(
  code: ServerDenyCode,
  detail?: string,
): { status: number; verdict: 'deny' | 'error'; publicReason: string } {
  const rule = DENY_CATALOG[code];
  // The types keep token codes out; this keeps a cast-in code from denying with a made-up status.
  if (rule.decidedBy !== 'server') return denyOf('ERR_INTERNAL');
  const publicReason =
    detail !== undefined && rule.publicDetail ? rule.publicDetail(detail) : rule.publicReason;
  return { status: rule.status, verdict: rule.verdict, publicReason };
}

export class ChaperoneError extends Error {
  readonly code: ErrorCode;
  /** Safe to return to the client (or print to a CLI user): never holds tokens or secrets. */
  readonly publicMessage: string;

  constructor(code: ErrorCode, publicMessage: string, options?: { cause?: unknown; detail?: string }) {
    super(options?.detail ? `${publicMessage}: ${options.detail}` : publicMessage, { cause: options?.cause });
    this.name = new.target.name;
    this.code = code;
    this.publicMessage = publicMessage;
  }
}

/** A Rego bundle or source that failed to build/load, with the position that broke it. */
export class BundleError extends ChaperoneError {
  constructor(
    message: string,
    readonly location: { file?: string; line?: number; column?: number } = {},
    options?: { cause?: unknown },
  ) {
    super('ERR_BUNDLE_INVALID', message, options);
  }
}

/** A bundle refused by signature verification (unsigned, tampered, wrong key or scope). */
export class BundleSignatureError extends ChaperoneError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_BUNDLE_SIGNATURE', message, options);
  }
}

/** opa-wasm throws strings and plain objects; normalise anything thrown into a short message. */
export function describeThrown(err: unknown): string {
  if (err instanceof Error) return err.message;
  if (typeof err === 'string') return err;
  if (err && typeof err === 'object' && 'message' in err)
    return String((err as { message: unknown }).message);
  return String(err);
}
