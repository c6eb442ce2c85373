// Verified tokens remembered by their exact string, so an agent that sends the same bearer token on
// every call pays for one signature check, not one per request. Bounded (least recently used entry
// goes first) so a flood of distinct tokens cannot grow memory, and each entry expires at the
// earlier of the token's `exp` and the cache TTL. Only successes are stored: a rejected token is
// checked again next time, so nothing an attacker sends can pin a decision.

export interface TokenCacheOptions {
  maxEntries: number;
  ttlMs: number;
}

interface Entry<T> {
  value: T;
  /** Epoch ms after which the entry must be verified again. */
  staleAt: number;
}

export class TokenCache<T> {
  // A Map iterates in insertion order: re-inserting on a hit keeps the oldest entry first.
  private readonly entries = new Map<string, Entry<T>>();

  constructor(private readonly o: TokenCacheOptions) {}

  get size(): number {
    return this.entries.size;
  }

  /** The remembered value, or undefined when absent or stale at `now` (a stale entry is dropped). */
  get(token: string, now: number): T | undefined {
    const entry = this.entries.get(token);
    if (entry === undefined) return undefined;
    this.entries.delete(token);
    if (now >= entry.staleAt) return undefined;
    this.entries.set(token, entry);
    return entry.value;
  }

  /** Remembers `value` until `validUntil` (epoch ms) or the TTL, whichever comes first. */
  set(token: string, value: T, now: number, validUntil: number): void {
    if (this.o.maxEntries <= 0) return;
    const staleAt = Math.min(validUntil, now + this.o.ttlMs);
    if (staleAt <= now) return;
    this.entries.delete(token);
    while (this.entries.size >= this.o.maxEntries) {
      const oldest = this.entries.keys().next();
      if (oldest.done) break;
      this.entries.delete(oldest.value);
    }
    this.entries.set(token, { value, staleAt });
  }

  clear(): void {
    this.entries.clear();
  }
}
