// One error catalog for all of Chaperone. Two kinds of code:
// - deny codes: a Check the authz server denies on its own (not because a policy said no). Each has its
//   HTTP status and the public reason a denied client sees, here and nowhere else;
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
  | 'ERR_POLICY_MISSING'
  | 'ERR_POLICY_UNDEFINED'
  | 'ERR_POLICY_EVAL'
  | 'ERR_POLICY_RESULT_INVALID'
  | 'ERR_BUNDLE_INVALID'
  | 'ERR_AUDIT_UNAVAILABLE'
  | 'ERR_CREDENTIAL_UNAVAILABLE'
  | 'ERR_APPROVAL_SPENT'
  | 'ERR_PROTOCOL_INVALID'
  | 'ERR_PROTOCOL_AMBIGUOUS'
  | 'ERR_INTERNAL';

/** Failures outside a Check: start-up, configuration, the store, the CLI, the HTTP API. */
export type OperationalErrorCode =
  | 'ERR_CONFIG_INVALID'
  | 'ERR_TRANSLATE'
  | 'ERR_PORT_IN_USE'
  | 'ERR_TOOL_NOT_FOUND'
  | 'ERR_ENVOY_START'
  | 'ERR_AUDIT_STORE'
  | 'ERR_AUDIT_TRUST'
  | 'ERR_STATE_DIR'
  | 'ERR_SPOOL_IO'
  | 'ERR_API_REQUEST'
  | 'ERR_APPROVAL'
  | 'ERR_MASK_SPEC_INVALID'
  | 'ERR_BUILTIN';

export type ErrorCode = AuthzErrorCode | OperationalErrorCode;

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

/** opa-wasm throws strings and plain objects; normalise anything thrown into a short message. */
export function describeThrown(err: unknown): string {
  if (err instanceof Error) return err.message;
  if (typeof err === 'string') return err;
  if (err && typeof err === 'object' && 'message' in err)
    return String((err as { message: unknown }).message);
  return String(err);
}
