// How every `chaperone` command ends. An action returns normally (exit 0, or the code it returns) or
// throws; `action()` turns what was thrown into one line on stderr and one of these exit codes
// (docs/cli.md lists them):
//   0 ok · 1 failed (a check, a test, a refusal by the API other than 401/403) · 2 usage or
//   environment (bad options, invalid config, a port in use, a tool or the gateway API missing) ·
//   3 not authenticated or not allowed (no token, a token the API refused, a missing role).
import { ChaperoneError, type ErrorCode } from '../contracts/errors.ts';

export const EXIT = { ok: 0, failed: 1, usage: 2, auth: 3 } as const;
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** A failure the CLI reports in words and an exit code; the message is for the user, never a token. */
export class CliError extends ChaperoneError {
  constructor(
    code: ErrorCode,
    message: string,
    readonly exitCode: ExitCode,
    options?: { cause?: unknown },
  ) {
    super(code, message, options);
  }
}

/** Errors from lower layers that mean "fix your input or environment", not "it failed". */
const USAGE_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'ERR_CONFIG_INVALID',
  'ERR_PORT_IN_USE',
  'ERR_TOOL_NOT_FOUND',
  'ERR_CLI_USAGE',
  'ERR_API_UNREACHABLE',
  'ERR_DATA_PLANE_TLS',
]);

export function exitCodeOf(err: unknown): ExitCode {
  if (err instanceof CliError) return err.exitCode;
  // By code, not class: some layers' errors carry a catalog code without extending ChaperoneError.
  const code = (err as { code?: unknown } | null)?.code as ErrorCode | undefined;
  if (code !== undefined && USAGE_CODES.has(code)) return EXIT.usage;
  if (code === 'ERR_API_UNAUTHENTICATED' || code === 'ERR_API_FORBIDDEN') return EXIT.auth;
  return EXIT.failed;
}

/**
 * Wraps a commander action: `command` prefixes the error line (`chaperone audit: …`). A returned number
 * is the exit code; a thrown error is printed (its message only: no stack for expected failures) and
 * ends the process with its exit code.
 */
export function action<A extends unknown[]>(
  command: string,
  fn: (...args: A) => unknown,
): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      const code = await fn(...args);
      process.exitCode = typeof code === 'number' ? code : EXIT.ok;
    } catch (err) {
      const known = err instanceof ChaperoneError;
      const text = err instanceof Error ? err.message : String(err);
      process.stderr.write(`chaperone ${command}: ${text}\n`);
      if (!known && err instanceof Error && process.env['CHAPERONE_DEBUG'])
        process.stderr.write(`${err.stack}\n`);
      process.exit(exitCodeOf(err));
    }
  };
}

/** A usage error: wrong or missing options (exit 2). */
export function usage(message: string): CliError {
  return new CliError('ERR_CLI_USAGE', message, EXIT.usage);
}
