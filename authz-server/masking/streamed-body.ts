// A response body read chunk by chunk as Envoy streams it (ext_proc STREAMED mode): a server-sent
// event stream is split into events, each metered and, when the decision filters an MCP listing,
// rewritten (only whole events go out, so a chunk's answer may hold less or more than it brought); a
// JSON answer that is only metered is copied aside, bounded, and read at its end. Without a filter
// nothing is changed: each chunk goes on as it came.
import type { McpFilterInstruction } from '../pipeline/response-instructions.ts';
import { addHidden, filterListingMessage, type Hidden, UnfilterableListingError } from './mcp-listing.ts';
import { SseSplitter, withSseData } from './sse.ts';
import type { UsageMeter } from './usage-meter.ts';

/** An event under way may not grow beyond this while its listing is filtered (a listing is small). */
const MAX_FILTERED_EVENT_CHARS = 8 * 1024 * 1024;

export interface StreamedBodyOptions {
  sse: boolean;
  filter: McpFilterInstruction | null;
  meter: UsageMeter | null;
  maxJsonBytes: number;
}

export class StreamedBody {
  private readonly splitter: SseSplitter | null;
  private json: Buffer[] | null = [];
  private jsonBytes = 0;
  private finished = false;

  constructor(private readonly o: StreamedBodyOptions) {
    this.splitter = o.sse ? new SseSplitter() : null;
  }

  /** One chunk: what to send in its place (null: the chunk unchanged) and what a listing hid. */
  push(chunk: Uint8Array, end: boolean): { body: string | null; hidden: Hidden | null } {
    if (!this.splitter) {
      this.copyJson(chunk);
      return { body: null, hidden: null };
    }
    const events = this.splitter.push(chunk);
    if (end) events.push(...this.splitter.end());
    if (this.o.filter && this.splitter.pending > MAX_FILTERED_EVENT_CHARS)
      throw new UnfilterableListingError('an event of the stream is too large to filter');
    const hidden: Hidden = {};
    let out = '';
    for (const event of events) {
      if (event.data !== null) this.o.meter?.observeEventData(event.data);
      out += this.o.filter ? this.filtered(event.raw, event.data, this.o.filter, hidden) : '';
    }
    return { body: this.o.filter ? out : null, hidden: Object.keys(hidden).length > 0 ? hidden : null };
  }

  /** The tokens the body reported (read once the body ended), or null. */
  finish(): number | null {
    if (!this.finished && this.json !== null && this.json.length > 0)
      this.o.meter?.observeJsonText(Buffer.concat(this.json).toString('utf8'));
    this.finished = true;
    this.json = null;
    return this.o.meter?.tokens() ?? null;
  }

  private filtered(raw: string, data: string | null, filter: McpFilterInstruction, hidden: Hidden): string {
    if (data === null) return raw;
    let message: unknown;
    try {
      message = JSON.parse(data);
    } catch {
      // Not a JSON-RPC message (a keep-alive, a priming event): nothing to filter in it.
      return raw;
    }
    if (Array.isArray(message)) throw new UnfilterableListingError('a JSON-RPC batch cannot be filtered');
    const out = filterListingMessage(message, filter);
    addHidden(hidden, out.hidden);
    // Written anew as parsed, like a JSON answer (mcp-listing.ts): no second reading of duplicate keys.
    return withSseData(raw, JSON.stringify(out.message));
  }

  private copyJson(chunk: Uint8Array): void {
    if (this.json === null || !this.o.meter) return;
    this.jsonBytes += chunk.length;
    // Too large to read for usage: passed on uncounted (the meter reports nothing).
    if (this.jsonBytes > this.o.maxJsonBytes) this.json = null;
    else this.json.push(Buffer.from(chunk));
  }
}
