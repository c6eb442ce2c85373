// The local, append-only decision spool: a decision is durable (written and fsynced) before the authz
// server returns ALLOW. Group commit: appends that arrive while a write is in flight are batched into
// the next single write + fsync, so throughput scales with load instead of paying one fsync each.
// Layout: <dir>/<segment>.jsonl files (one JSON record per line) and <dir>/ack.json, the position up
// to which the shipper has stored records. A torn last line (crash mid-write) is cut off at open.
import {
  type FileHandle,
  mkdir,
  open,
  readdir,
  readFile,
  rename,
  rm,
  stat,
  truncate,
  writeFile,
} from 'node:fs/promises';
import { join } from 'node:path';

export interface SpoolPosition {
  segment: number;
  offset: number;
}

export interface SpoolOptions {
  dir: string;
  /** Start a new segment beyond this size. Default 8 MiB. */
  segmentBytes?: number;
  /** Test hook: called once per fsync with the number of records it made durable. */
  onFsync?: (records: number) => void;
}

interface Pending {
  line: string;
  resolve: () => void;
  reject: (err: Error) => void;
}

const segName = (n: number) => `${String(n).padStart(10, '0')}.jsonl`;

export class Spool {
  private fh: FileHandle | null = null;
  private segment = 1;
  private size = 0;
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
    await mkdir(this.o.dir, { recursive: true });
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
    this.fh = await open(path, 'a');
  }

  async segments(): Promise<number[]> {
    return (await readdir(this.o.dir))
      .filter((f) => /^\d{10}\.jsonl$/.test(f))
      .map((f) => Number(f.slice(0, 10)))
      .sort((a, b) => a - b);
  }

  /** Resolves once the record is on disk (fsynced). */
  append(record: unknown): Promise<void> {
    if (this.closed) return Promise.reject(new Error('audit spool is closed'));
    const line = `${JSON.stringify(record)}\n`;
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
    try {
      if (this.fh === null) throw new Error('audit spool is not open');
      const buf = Buffer.from(batch.map((p) => p.line).join(''));
      // Async write + datasync: the event loop keeps accepting Checks, which queue for the next batch.
      let written = 0;
      while (written < buf.length) written += (await this.fh.write(buf, written)).bytesWritten;
      await this.fh.datasync();
      this.size += buf.length;
      this.appended += batch.length;
      this.o.onFsync?.(batch.length);
      for (const p of batch) p.resolve();
      for (const l of this.listeners) l();
      if (this.size >= (this.o.segmentBytes ?? 8 * 1024 * 1024)) await this.rotate();
    } catch (err) {
      const e = err instanceof Error ? err : new Error(String(err));
      for (const p of batch) p.reject(e);
    }
    if (this.queue.length > 0) void this.flush();
    else this.flushing = false;
  }

  private async rotate(): Promise<void> {
    await this.fh?.close();
    this.segment += 1;
    this.size = 0;
    this.fh = await open(join(this.o.dir, segName(this.segment)), 'a');
  }

  /** Called after every durable batch (the shipper wakes up on it). */
  onAppend(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  stats(): { appended: number; segment: number } {
    return { appended: this.appended, segment: this.segment };
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
        const { size } = await fh.stat();
        if (size <= pos.offset) continue;
        const buf = Buffer.alloc(Math.min(size - pos.offset, 16 * 1024 * 1024));
        await fh.read(buf, 0, buf.length, pos.offset);
        let start = 0;
        for (;;) {
          const nl = buf.indexOf(0x0a, start);
          if (nl === -1 || records.length >= max) break;
          const text = buf.subarray(start, nl).toString('utf8');
          try {
            records.push(JSON.parse(text));
          } catch {
            bad++;
          }
          start = nl + 1;
        }
        pos = { segment: seg, offset: pos.offset + start };
      } finally {
        await fh.close();
      }
      if (records.length >= max) break;
    }
    return { records, next: pos, bad };
  }

  /** Marks everything before `pos` as stored; deletes segments that are entirely behind it. */
  async ack(pos: SpoolPosition): Promise<void> {
    const tmp = join(this.o.dir, 'ack.json.tmp');
    await writeFile(tmp, JSON.stringify(pos));
    await rename(tmp, join(this.o.dir, 'ack.json'));
    for (const seg of await this.segments()) {
      if (seg < pos.segment && seg !== this.segment)
        await rm(join(this.o.dir, segName(seg)), { force: true });
    }
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
