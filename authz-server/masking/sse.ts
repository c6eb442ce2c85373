// Server-sent events (text/event-stream, WHATWG HTML "Server-sent events") split into whole events as
// chunks of a response arrive, so the response path can read and rewrite each event without buffering
// the stream. An event ends at a blank line; a line ends at CRLF, LF or CR (a CR at the end of a chunk
// waits for the next one: it may be half of a CRLF). Bytes are decoded as a stream, so a UTF-8
// character split across chunks is not broken. What remains when the stream ends is an event the
// client would not dispatch either (the format says an unterminated event is discarded).

/** One complete event as it was sent (its terminating blank line included), and its fields. */
export interface SseEvent {
  raw: string;
  /** The `data:` lines joined with "\n" (the event's payload), or null when it has none. */
  data: string | null;
}

const LINE_END = /\r\n|\r|\n/;

/** The fields of one event, as the format reads them. */
export function parseSseEvent(raw: string): SseEvent {
  const data: string[] = [];
  let hasData = false;
  for (const line of raw.split(LINE_END)) {
    if (line === '' || line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    if (field !== 'data') continue;
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    data.push(value);
    hasData = true;
  }
  return { raw, data: hasData ? data.join('\n') : null };
}

/**
 * The same event with its payload replaced: the other fields (`event`, `id`, `retry`, comments) stay
 * as they were, in order; the `data:` lines become one (JSON written without line breaks).
 */
export function withSseData(raw: string, data: string): string {
  const out: string[] = [];
  let placed = false;
  for (const line of raw.split(LINE_END)) {
    if (line === '') continue;
    const isData = line === 'data' || line.startsWith('data:');
    if (!isData) out.push(line);
    else if (!placed) {
      out.push(`data: ${data}`);
      placed = true;
    }
  }
  return `${out.join('\n')}\n\n`;
}

export class SseSplitter {
  private readonly decoder = new TextDecoder('utf-8');
  /** Text of the event under way (and whatever followed it in the last chunk). */
  private buffer = '';
  /** Where scanning resumes, and where the line under way began, both within `buffer`. */
  private scan = 0;
  private lineStart = 0;

  /** Whole events completed by this chunk, in order. */
  push(chunk: Uint8Array): SseEvent[] {
    this.buffer += this.decoder.decode(chunk, { stream: true });
    return this.take(false);
  }

  /** At the end of the stream: the events still complete (an unterminated one is dropped). */
  end(): SseEvent[] {
    this.buffer += this.decoder.decode();
    const events = this.take(true);
    this.buffer = '';
    this.scan = 0;
    this.lineStart = 0;
    return events;
  }

  /** Characters held for an event not yet complete (callers bound it). */
  get pending(): number {
    return this.buffer.length;
  }

  private take(final: boolean): SseEvent[] {
    const events: SseEvent[] = [];
    const text = this.buffer;
    let start = 0;
    let i = this.scan;
    while (i < text.length) {
      const end = lineEndAt(text, i, final);
      if (end === -2) break; // a CR at the end of what has arrived: it may be half of a CRLF
      if (end === -1) {
        i++;
        continue;
      }
      // The line [lineStart, i) ended; an empty one closes the event (a stray one closes nothing).
      if (i === this.lineStart) {
        if (i > start) events.push(parseSseEvent(text.slice(start, end)));
        start = end;
      }
      this.lineStart = end;
      i = end;
    }
    this.buffer = text.slice(start);
    this.scan = i - start;
    this.lineStart -= start;
    return events;
  }
}

/**
 * If a line end starts at `at`: the index after it; -1 when there is none at `at`; -2 when it is a CR
 * at the end of the text that may be the first half of a CRLF (unless the stream has ended).
 */
function lineEndAt(text: string, at: number, final: boolean): number {
  const c = text[at];
  if (c === '\n') return at + 1;
  if (c !== '\r') return -1;
  if (at + 1 < text.length) return text[at + 1] === '\n' ? at + 2 : at + 1;
  return final ? at + 1 : -2;
}
