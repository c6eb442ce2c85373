// Upstream credentials injected at the edge: per target, a list of headers whose values come from
// `env:NAME` or `file:/path` references. Values are resolved off the hot path (at load, and when a
// referenced file changes) and kept in memory; Check only reads the cache. A value never appears in
// an error, a log line or a status object: those name the target, the header and the reference.
import { unwatchFile, watchFile } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { ChaperoneError } from '../../contracts/errors.ts';

export interface CredentialSpec {
  /** Header to set on the upstream request, e.g. `authorization` or `x-api-key`. */
  header: string;
  /** `env:NAME` or `file:/absolute/or/relative/path`. */
  value: string;
  /** Template with `{}` for the secret, e.g. `Bearer {}`; default `{}`. */
  format?: string;
}

export type CredentialRef = { kind: 'env'; name: string } | { kind: 'file'; path: string };

/**
 * A credential entry of the configuration that cannot be used (an inline secret, a format without `{}`).
 * A reference that does not resolve at run time is not an error but a deny (ERR_CREDENTIAL_UNAVAILABLE).
 */
export class CredentialError extends ChaperoneError {
  constructor(message: string) {
    super('ERR_CONFIG_INVALID', message);
  }
}

export function parseCredentialRef(value: string): CredentialRef {
  if (value.startsWith('env:') && /^[A-Za-z_][A-Za-z0-9_]*$/.test(value.slice(4))) {
    return { kind: 'env', name: value.slice(4) };
  }
  if (value.startsWith('file:') && value.length > 5) return { kind: 'file', path: value.slice(5) };
  // The reference itself is not secret, but an inline value would be: never echo it.
  throw new CredentialError(
    'a credential value must be a reference: "env:NAME" or "file:/path" (inline secrets are refused)',
  );
}

function describeRef(ref: CredentialRef): string {
  return ref.kind === 'env' ? `env:${ref.name}` : `file:${ref.path}`;
}

interface Slot {
  target: string;
  header: string;
  ref: CredentialRef;
  format: string;
  /** The formatted header value, or null while unresolvable. */
  value: string | null;
  problem: string | null;
}

export interface CredentialStatus {
  target: string;
  header: string;
  ref: string;
  ready: boolean;
  problem: string | null;
}

export type InjectedHeaders =
  | { ok: true; headers: { key: string; value: string }[] }
  | { ok: false; reason: string };

const FILE_POLL_MS = 500;

export class CredentialStore {
  private slots: Slot[] = [];
  private byTarget = new Map<string, Slot[]>();
  private readonly watched = new Set<string>();

  constructor(
    specs: Record<string, CredentialSpec[]>,
    private readonly opts: { env?: NodeJS.ProcessEnv; onChange?: (s: CredentialStatus) => void } = {},
  ) {
    this.slots = CredentialStore.slotsFor(specs);
    this.byTarget = CredentialStore.index(this.slots);
  }

  private static slotsFor(specs: Record<string, CredentialSpec[]>): Slot[] {
    const slots: Slot[] = [];
    for (const [target, list] of Object.entries(specs)) {
      for (const spec of list) {
        const format = spec.format ?? '{}';
        if (!format.includes('{}'))
          throw new CredentialError(`credential ${target}/${spec.header}: format must contain {}`);
        slots.push({
          target,
          header: spec.header.toLowerCase(),
          ref: parseCredentialRef(spec.value),
          format,
          value: null,
          problem: 'not loaded yet',
        });
      }
    }
    return slots;
  }

  private static index(slots: Slot[]): Map<string, Slot[]> {
    const byTarget = new Map<string, Slot[]>();
    for (const slot of slots) byTarget.set(slot.target, [...(byTarget.get(slot.target) ?? []), slot]);
    return byTarget;
  }

  /**
   * The targets changed (a config edit, a fleet revision): resolves the new set off to the side and
   * swaps it in whole, so a Check sees either the old credentials or the new ones, never a mix.
   */
  async replace(specs: Record<string, CredentialSpec[]>): Promise<CredentialStatus[]> {
    const slots = CredentialStore.slotsFor(specs);
    await Promise.all(slots.map((s) => this.resolve(s)));
    this.slots = slots;
    this.byTarget = CredentialStore.index(slots);
    const files = new Set(slots.flatMap((s) => (s.ref.kind === 'file' ? [s.ref.path] : [])));
    for (const path of this.watched) {
      if (files.has(path)) continue;
      unwatchFile(path);
      this.watched.delete(path);
    }
    this.watch();
    return this.status();
  }

  /** Resolves every reference; returns the status of each (unresolvable ones deny their target). */
  async load(): Promise<CredentialStatus[]> {
    await Promise.all(this.slots.map((s) => this.resolve(s)));
    return this.status();
  }

  /** Re-reads file references when the file changes (rotation without restart). */
  watch(): void {
    for (const slot of this.slots) {
      if (slot.ref.kind !== 'file' || this.watched.has(slot.ref.path)) continue;
      const path = slot.ref.path;
      this.watched.add(path);
      // Polling stat survives atomic replace (rename/symlink swap, as Kubernetes secret volumes do),
      // which an inotify watch on the old inode would miss.
      watchFile(path, { interval: FILE_POLL_MS, persistent: false }, () => {
        for (const s of this.slots)
          if (s.ref.kind === 'file' && s.ref.path === path) void this.resolve(s, true);
      });
    }
  }

  close(): void {
    for (const path of this.watched) unwatchFile(path);
    this.watched.clear();
  }

  hasTarget(target: string | null): boolean {
    return target !== null && this.byTarget.has(target);
  }

  /** Hot path: the headers to set for an allowed request to `target`, from memory only. */
  headersFor(target: string | null): InjectedHeaders {
    if (target === null) return { ok: true, headers: [] };
    const slots = this.byTarget.get(target);
    if (!slots) return { ok: true, headers: [] };
    const headers: { key: string; value: string }[] = [];
    for (const s of slots) {
      if (s.value === null)
        return { ok: false, reason: `credential ${s.header} for target ${target} is unavailable` };
      headers.push({ key: s.header, value: s.value });
    }
    return { ok: true, headers };
  }

  status(): CredentialStatus[] {
    return this.slots.map((s) => ({
      target: s.target,
      header: s.header,
      ref: describeRef(s.ref),
      ready: s.value !== null,
      problem: s.problem,
    }));
  }

  private async resolve(slot: Slot, notify = false): Promise<void> {
    let secret: string | null = null;
    let problem: string | null = null;
    if (slot.ref.kind === 'env') {
      const v = (this.opts.env ?? process.env)[slot.ref.name];
      if (v === undefined || v === '') problem = `environment variable ${slot.ref.name} is not set`;
      else secret = v;
    } else {
      try {
        // A trailing newline is an artefact of `echo > file`, never part of a token.
        secret = (await readFile(slot.ref.path, 'utf8')).replace(/\r?\n$/, '');
        if (secret === '') problem = `file ${slot.ref.path} is empty`;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? 'error';
        problem = `file ${slot.ref.path} cannot be read (${code})`;
      }
    }
    if (secret !== null && /[\r\n\0]/.test(secret)) {
      secret = null;
      problem = `${describeRef(slot.ref)} holds a line break or NUL, which cannot go into a header`;
    }
    const before = slot.value;
    // A replacer function: a string replacement would expand `$&`, `$'`, `` $` `` inside the secret.
    slot.value = secret !== null && problem === null ? slot.format.replace('{}', () => secret) : null;
    slot.problem = slot.value === null ? problem : null;
    if (notify && before !== slot.value) {
      this.opts.onChange?.({
        target: slot.target,
        header: slot.header,
        ref: describeRef(slot.ref),
        ready: slot.value !== null,
        problem: slot.problem,
      });
    }
  }
}
