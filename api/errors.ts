// Errors of the HTTP API. A handler (or the authentication hook) throws an ApiError; the server turns
// it into `{error, reason}` with its HTTP status. `error` is the stable wire code clients and the CLI
// read (OAuth 2.0 codes on the OAuth routes), `code` the catalog code (docs/errors.md); the reason is
// public, so it never quotes a token or a request body.
import { ChaperoneError, type OperationalErrorCode } from '../contracts/errors.ts';

function codeFor(status: number): OperationalErrorCode {
  if (status === 401) return 'ERR_API_UNAUTHENTICATED';
  if (status === 403) return 'ERR_API_FORBIDDEN';
  if (status === 421) return 'ERR_API_HOST';
  return 'ERR_API_REQUEST';
}

export class ApiError extends ChaperoneError {
  constructor(
    readonly status: number,
    /** The wire code in the response body (`not_found`, `forbidden`, `invalid_request`, …). */
    readonly error: string,
    reason: string,
  ) {
    super(codeFor(status), reason);
  }
}
