// Errors of IR → Envoy translation. Reaching one is a bug or an IR the translator cannot express;
// either way the resources are not published (the last good snapshot keeps serving).
import { ChaperoneError } from '../../contracts/errors.ts';

export interface ResourceIssue {
  /** e.g. `Listener[egress]`, `Cluster[target/demo]`. */
  resource: string;
  /** Field path inside the resource (proto field names). */
  path: string;
  message: string;
}

export class TranslateError extends ChaperoneError {
  constructor(readonly issues: readonly ResourceIssue[]) {
    const lines = issues.map((i) => `${i.resource}${i.path ? ` ${i.path}` : ''}: ${i.message}`);
    super(
      'ERR_TRANSLATE',
      lines.length === 1
        ? `cannot translate to Envoy resources: ${lines[0]}`
        : `cannot translate to Envoy resources (${lines.length} problems):\n${lines.map((l) => `  ${l}`).join('\n')}`,
    );
  }
}
