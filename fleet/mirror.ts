// One way every piece of fleet state is held in memory (the idea of Pomerium's databroker syncer: load
// everything, apply changes as they are announced, load everything again when changes may have been
// missed). A component names where its records come from — all of them, or some by key — and reads
// them back with no I/O on its hot path. The mirror:
// - loads everything on `reloadAll()` (at start, after a lost LISTEN connection, on a notice that names
//   nothing) and the named records on `reload(keys)` (a notice that names one);
// - coalesces bursts: reads never overlap, and every call made while a read runs is served by one more
//   read, started after the current one ends, that covers all their keys (or everything);
// - never lets a late read win: reads run one at a time, so each sees the store no earlier than the
//   previous one, and a record this process wrote (`set`) while a read was in flight keeps the written
//   value — the read began before the write and holds the older one;
// - after a failed read, loads everything on the next call, since the failed read's changes are unknown.
import { coalesced } from '../lib/coalesce.ts';

export interface MirrorSource<K, V> {
  /** Every record to hold. */
  loadAll(): Promise<Iterable<readonly [K, V]>>;
  /**
   * The named records as they are now; a key missing from the answer is no longer held. Without it,
   * a reload of some keys loads everything.
   */
  loadSome?(keys: readonly K[]): Promise<Iterable<readonly [K, V]>>;
}

/** Told of every record that changed: `value` undefined when it is gone. */
export type MirrorChange<K, V> = (key: K, value: V | undefined, previous: V | undefined) => void;

export class Mirror<K, V> {
  private readonly records = new Map<K, V>();
  private wantAll = false;
  private readonly wanted = new Set<K>();
  private reading = false;
  /** Keys set by this process during the read in flight: that read's answer for them is older. */
  private readonly writtenDuringRead = new Set<K>();
  private readonly drain = coalesced(() => this.readWanted());
  private readsDone = 0;

  constructor(
    private readonly source: MirrorSource<K, V>,
    private readonly onChange?: MirrorChange<K, V>,
  ) {}

  get(key: K): V | undefined {
    return this.records.get(key);
  }

  values(): IterableIterator<V> {
    return this.records.values();
  }

  get size(): number {
    return this.records.size;
  }

  /** Reads the store completed so far (for status and tests). */
  get reads(): number {
    return this.readsDone;
  }

  /** Loads everything; resolves once a read that began after this call is applied. */
  reloadAll(): Promise<void> {
    this.wantAll = true;
    return this.drain();
  }

  /** Loads these records; resolves once a read that began after this call is applied. */
  reload(keys: Iterable<K>): Promise<void> {
    if (!this.source.loadSome) return this.reloadAll();
    for (const k of keys) this.wanted.add(k);
    return this.drain();
  }

  /** A record as this process just committed it (undefined: no longer held), applied at once. */
  set(key: K, value: V | undefined): void {
    if (this.reading) this.writtenDuringRead.add(key);
    this.put(key, value);
  }

  private async readWanted(): Promise<void> {
    const all = this.wantAll || !this.source.loadSome;
    const keys = [...this.wanted];
    this.wantAll = false;
    this.wanted.clear();
    if (!all && keys.length === 0) return;
    this.reading = true;
    this.writtenDuringRead.clear();
    try {
      const rows = new Map(all ? await this.source.loadAll() : await this.source.loadSome!(keys));
      this.apply(rows, all ? [...this.records.keys()] : keys);
      this.readsDone++;
    } catch (err) {
      this.wantAll = true;
      throw err;
    } finally {
      this.reading = false;
      this.writtenDuringRead.clear();
    }
  }

  /** `rows` as read; `covered`: held keys the read answered for (gone unless in `rows`). */
  private apply(rows: Map<K, V>, covered: K[]): void {
    const fresh = (k: K) => !this.writtenDuringRead.has(k);
    for (const k of covered) if (!rows.has(k) && fresh(k)) this.put(k, undefined);
    for (const [k, v] of rows) if (fresh(k)) this.put(k, v);
  }

  private put(key: K, value: V | undefined): void {
    const previous = this.records.get(key);
    if (value === undefined) {
      if (!this.records.delete(key)) return;
    } else this.records.set(key, value);
    this.onChange?.(key, value, previous);
  }
}
