// `env:NAME` and `file:/path` references, the way chaperone.yaml names secrets: resolved when used,
// never copied into the config, logs or errors. A plain value (not a reference) is returned as is.
import { readFile } from 'node:fs/promises';

/** The reference's value (trimmed), or null when the variable is unset or the file unreadable/empty. */
export async function resolveRef(ref: string): Promise<string | null> {
  if (ref.startsWith('env:')) return process.env[ref.slice(4)]?.trim() || null;
  if (ref.startsWith('file:')) return (await readFile(ref.slice(5), 'utf8').catch(() => '')).trim() || null;
  return ref;
}
