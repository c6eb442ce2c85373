// The local, append-only decision spool: a decision is durable (written and fsynced) before the authz
// server returns ALLOW. Group commit: appends that arrive while a write is in flight are batched into
// the next single write + fsync, so throughput scales with load instead of paying one fsync each.
// Layout: <dir>/<segment>.jsonl files (one JSON record per line) and <dir>/ack.json, the position up
// to which the shipper has stored records. A torn last line (crash mid-write) is cut off at open.
// Every file is created owner-only (0600) in an owner-only directory (0700), and the directory itself
// is fsynced after a file is created, renamed or deleted: fsyncing a new segment makes its bytes
// durable, not its name, and a record in a segment whose directory entry was lost is lost with it.
import {
  chmod,
  type FileHandle,
  mkdir,
  open,
  readdir,
  readFile,
  rename,
  rm,
  stat,
  truncate,
} from 'node:fs/promises';
import { join } from 'node:path';
import { ChaperoneError } from '../contracts/errors.ts';

export interface SpoolPosition {
  segment: number;
  offset: number;
}

/** The calls the append path makes on a segment file (a node:fs FileHandle has them all). */
export type AppendHandle = Pick<FileHandle, 'write' | 'datasync' | 'truncate' | 'close'>;

export interface SpoolOptions {
  dir: string;
  /** Start a new segment beyond this size. Default 8 MiB. */
  segmentBytes?: number;
  /** Called once per fsync with the number of records it made durable (metrics, tests). */
  onFsync?: (records: number) => void;
  /** Opens a segment for appending; default node:fs `open(path, 'a', 0o600)`. Tests inject failing disks here. */
  openForAppend?: (path: string) => Promise<AppendHandle>;
  /**
   * Makes the directory's entries durable (creations, renames, deletions); default `syncDirectory`.
   * Tests observe or fail it here.
   */
  syncDir?: (dir: string) => Promise<void>;
}

/** fsync of a directory: what makes a file's creation, rename or removal survive a power cut. */
export async function syncDirectory(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export class SpoolError extends ChaperoneError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_SPOOL_IO', message, options);
  }
}

interface Pending {
  line: string;
  resolve: () => void;
  reject: (err: Error) => void;
}

/** Smallest read when shipping; grown to fit the batch size, doubled for an oversized record. */
const READ_CHUNK_MIN = 1024 * 1024;

const segName = (n: number) => `${String(n).padStart(10, '0')}.jsonl`;

export class Spool {
  private fh: AppendHandle | null = null;
  private segment = 1;
  /** Bytes of the current segment known to be on disk (fsynced); readers never go beyond. */
  private size = 0;
  /** Set when a failed write could not be undone: the spool refuses appends (fail closed). */
  private broken: Error | null = null;
  /** Durable records not yet acknowledged by the shipper. */
  private unacked = 0;
  /** Since when records have waited without the spool emptying (shipper lag), or null when none wait. */
  private pendingSince: number | null = null;
  private queue: Pending[] = [];
  private flushing = false;
  private closed = false;
  private appended = 0;
  private listeners = new Set<() => void>();

  private constructor(private readonly o: SpoolOptions) {}

  static async open(o: SpoolOptions): Promise<Spool> {
    const spool = new Spool(o);
    await spool.init();
    return spool;
  }

  get dir(): string {
    return this.o.dir;
  }

  private async init(): Promise<void> {
    await mkdir(this.o.dir, { recursive: true, mode: 0o700 });
    await chmod(this.o.dir, 0o700);
    const segments = await this.segments();
    this.segment = segments.at(-1) ?? 1;
    const path = join(this.o.dir, segName(this.segment));
    try {
      const text = await readFile(path);
      const end = text.lastIndexOf(0x0a) + 1;
      if (end !== text.length) await truncate(path, end); // a torn line from a crash: never acknowledged
      this.size = end;
    } catch {
      this.size = 0;
    }
    this.fh = await this.openSegment(path);
    this.unacked = await this.countFrom(await this.readAck());
    if (this.unacked > 0) this.pendingSince = Date.now();
  }

  /** Opens (creating if need be) a segment, and makes its name durable before anything is appended. */
  private async openSegment(path: string): Promise<AppendHandle> {
    const fh = this.o.openForAppend ? await this.o.openForAppend(path) : await open(path, 'a', 0o600);
    try {
      await this.syncDir();
    } catch (err) {
      await fh.close().catch(() => undefined);
      throw err;
    }
    return fh;
  }

  private syncDir(): Promise<void> {
    return (this.o.syncDir ?? syncDirectory)(this.o.dir);
  }

  /** Complete lines from `pos` to the end of the spool. */
  private async countFrom(pos: SpoolPosition): Promise<number> {
    let lines = 0;
    for (const seg of await this.segments()) {
      if (seg < pos.segment) continue;
      const buf = await readFile(join(this.o.dir, segName(seg))).catch(() => Buffer.alloc(0));
      const end = seg === this.segment ? Math.min(buf.length, this.size) : buf.length;
      for (let i = seg === pos.segment ? pos.offset : 0; i < end; i++) if (buf[i] === 0x0a) lines++;
    }
    return lines;
  }

  async segments(): Promise<number[]> {
    return (await readdir(this.o.dir))
      .filter((f) => /^\d{10}\.jsonl$/.test(f))
      .map((f) => Number(f.slice(0, 10)))
      .sort((a, b) => a - b);
  }

  /** Resolves once the record is on disk (fsynced). */
  append(record: unknown): Promise<void> {
    if (this.closed) return Promise.reject(new SpoolError('audit spool is closed'));
    if (this.broken) return Promise.reject(new SpoolError('audit spool is unusable', { cause: this.broken }));
    let line: string;
    try {
      line = `${JSON.stringify(record)}\n`;
    } catch (err) {
      return Promise.reject(new SpoolError('audit record is not serialisable', { cause: err }));
    }
    return new Promise((resolve, reject) => {
      this.queue.push({ line, resolve, reject });
      if (!this.flushing) {
        this.flushing = true;
        // Let the appends of the current event-loop turn join this batch.
        setImmediate(() => void this.flush());
      }
    });
  }

  private async flush(): Promise<void> {
    const batch = this.queue;
    this.queue = [];
    const fh = this.fh;
    const buf = Buffer.from(batch.map((p) => p.line).join(''));
    try {
      if (fh === null || this.broken) throw this.broken ?? new SpoolError('audit spool is not open');
      // Async write + datasync: the event loop keeps accepting Checks, which queue for the next batch.
      let written = 0;
      while (written < buf.length) written += (await fh.write(buf, written)).bytesWritten;
      await fh.datasync();
    } catch (err) {
      const e = new SpoolError('audit spool write failed', { cause: err });
      // A half-written batch must not stay in front of the next one: that record would be glued to
      // garbage and lost. Cut the file back to what was durable; if even that fails, stop appending.
      if (fh && !this.broken)
        await fh.truncate(this.size).catch((cause: unknown) => (this.broken = cause as Error));
      for (const p of batch) p.reject(e);
      this.next();
      return;
    }
    this.size += buf.length;
    this.appended += batch.length;
    this.unacked += batch.length;
    this.pendingSince ??= Date.now();
    this.o.onFsync?.(batch.length);
    for (const p of batch) p.resolve();
    for (const l of this.listeners) l();
    if (this.size >= (this.o.segmentBytes ?? 8 * 1024 * 1024)) {
      await this.rotate().catch((cause: unknown) => (this.broken = cause as Error));
    }
    this.next();
  }

  private next(): void {
    if (this.queue.length > 0) void this.flush();
    else this.flushing = false;
  }

  private async rotate(): Promise<void> {
    await this.fh?.close();
    this.fh = null;
    const fh = await this.openSegment(join(this.o.dir, segName(this.segment + 1)));
    this.segment += 1;
    this.size = 0;
    this.fh = fh;
  }

  /** Called after every durable batch (the shipper wakes up on it). */
  onAppend(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** `appended`: records made durable since open; `pending`: durable records not yet acknowledged. */
  stats(): {
    appended: number;
    pending: number;
    pendingSince: string | null;
    segment: number;
    broken: boolean;
  } {
    return {
      appended: this.appended,
      pending: this.unacked,
      pendingSince: this.pendingSince === null ? null : new Date(this.pendingSince).toISOString(),
      segment: this.segment,
      broken: this.broken !== null,
    };
  }

  async readAck(): Promise<SpoolPosition> {
    try {
      const ack = JSON.parse(await readFile(join(this.o.dir, 'ack.json'), 'utf8')) as SpoolPosition;
      if (Number.isInteger(ack.segment) && Number.isInteger(ack.offset)) return ack;
    } catch {
      // no ack yet: everything is pending
    }
    const first = (await this.segments())[0] ?? 1;
    return { segment: first, offset: 0 };
  }

  /** Records from `from` on, up to `max`, with the position after each; complete lines only. */
  async read(
    from: SpoolPosition,
    max: number,
  ): Promise<{ records: unknown[]; next: SpoolPosition; bad: number }> {
    const records: unknown[] = [];
    let bad = 0;
    let pos = { ...from };
    for (const seg of await this.segments()) {
      if (seg < pos.segment) continue;
      if (seg > pos.segment) pos = { segment: seg, offset: 0 };
      const fh = await open(join(this.o.dir, segName(seg)), 'r');
      try {
        // The segment being appended to is read only up to its durable size: bytes of a batch still
        // in flight (or lost with the page cache in a power cut) must never be shipped and acknowledged.
        const { size: fileSize } = await fh.stat();
        const size = seg === this.segment ? Math.min(fileSize, this.size) : fileSize;
        if (size <= pos.offset) continue;
        // Read about what `max` records need; a chunk without one complete line (a record larger than
        // the chunk) is read again twice as large rather than stalling the shipper.
        let chunk = Math.max(READ_CHUNK_MIN, max * 4096);
        while (records.length < max && pos.offset < size) {
          const buf = Buffer.alloc(Math.min(size - pos.offset, chunk));
          await fh.read(buf, 0, buf.length, pos.offset);
          let start = 0;
          for (;;) {
            const nl = buf.indexOf(0x0a, start);
            if (nl === -1 || records.length >= max) break;
            try {
              records.push(JSON.parse(buf.subarray(start, nl).toString('utf8')));
            } catch {
              bad++;
            }
            start = nl + 1;
          }
          if (start === 0) {
            if (buf.length === size - pos.offset) break; // no newline up to the durable end: nothing complete
            chunk *= 2;
            continue;
          }
          pos = { segment: seg, offset: pos.offset + start };
        }
      } finally {
        await fh.close();
      }
      if (records.length >= max) break;
    }
    return { records, next: pos, bad };
  }

  /**
   * Marks everything before `pos` as stored (`records`: how many lines that covers, for `stats().pending`);
   * deletes segments that are entirely behind it.
   */
  async ack(pos: SpoolPosition, records = 0): Promise<void> {
    const tmp = join(this.o.dir, 'ack.json.tmp');
    const fh = await open(tmp, 'w', 0o600);
    try {
      await fh.writeFile(JSON.stringify(pos));
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, join(this.o.dir, 'ack.json'));
    // Durable before any segment behind it goes: an ack lost in a crash only resends stored records,
    // but a deleted segment under a lost ack would be read as missing.
    await this.syncDir();
    this.unacked = Math.max(0, this.unacked - records);
    if (this.unacked === 0) this.pendingSince = null;
    let removed = false;
    for (const seg of await this.segments()) {
      if (seg < pos.segment && seg !== this.segment) {
        await rm(join(this.o.dir, segName(seg)), { force: true });
        removed = true;
      }
    }
    if (removed) await this.syncDir();
  }

  /** Bytes not yet acknowledged (approximate: counts whole later segments). */
  async pendingBytes(): Promise<number> {
    const ack = await this.readAck();
    let total = 0;
    for (const seg of await this.segments()) {
      if (seg < ack.segment) continue;
      const s = await stat(join(this.o.dir, segName(seg))).catch(() => null);
      if (s) total += s.size - (seg === ack.segment ? ack.offset : 0);
    }
    return total;
  }

  async close(): Promise<void> {
    this.closed = true;
    while (this.flushing) await new Promise((r) => setImmediate(r));
    await this.fh?.close();
    this.fh = null;
  }
}
