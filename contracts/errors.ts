// Typed errors of the authz server. Every deny the server produces on its own (not by policy) carries
// one of these codes; docs/errors.md documents each (a test checks that). `publicMessage` is what a
// denied client may see; `message`/`cause` are for the log only and never hold tokens or secrets.

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

export class ChaperoneError extends Error {
  readonly code: AuthzErrorCode;
  /** Safe to return to the client in a deny body. */
  readonly publicMessage: string;

  constructor(code: AuthzErrorCode, publicMessage: string, options?: { cause?: unknown; detail?: string }) {
    super(options?.detail ? `${publicMessage}: ${options.detail}` : publicMessage, { cause: options?.cause });
    this.name = 'ChaperoneError';
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
    this.name = 'BundleError';
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
