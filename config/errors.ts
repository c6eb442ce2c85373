// Typed errors of configuration loading. A ConfigError carries every problem found (not just the
// first), each with the file, line and field path, so one run of `chaperone up` lists them all.
// Messages quote field paths and schema rules, never a field's value: a value may be a secret (an
// inline token where a reference was expected, a postgres URL with a password), so the whole message is
// safe to show a CLI user.
import { ChaperoneError } from '../contracts/errors.ts';

export interface ConfigIssue {
  /** Field path in the YAML document, e.g. `targets[1].match.path_prefix`; '' for the document. */
  path: string;
  /** 1-based line in the file, when known. */
  line?: number;
  column?: number;
  message: string;
}

function describeIssue(file: string | null, issue: ConfigIssue): string {
  const where = [file ?? '<config>', issue.line, issue.line !== undefined ? issue.column : undefined]
    .filter((p) => p !== undefined)
    .join(':');
  return `${where}: ${issue.path === '' ? '' : `${issue.path}: `}${issue.message}`;
}

export class ConfigError extends ChaperoneError {
  constructor(
    /** The file the configuration came from (as given to the loader), or null. */
    readonly file: string | null,
    readonly issues: readonly ConfigIssue[],
    options?: { cause?: unknown },
  ) {
    const lines = issues.map((i) => describeIssue(file, i));
    super(
      'ERR_CONFIG_INVALID',
      lines.length === 1
        ? `invalid configuration: ${lines[0]}`
        : `invalid configuration (${lines.length} problems):\n${lines.map((l) => `  ${l}`).join('\n')}`,
      options,
    );
  }
}
