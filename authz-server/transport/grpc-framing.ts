// gRPC's wire pieces that sit on top of HTTP/2 (PROTOCOL-HTTP2.md in the grpc repository): the
// length-prefixed message (1 byte compressed flag, 4 bytes big-endian length, the message), the
// `grpc-timeout` header and the percent-encoding of `grpc-message`. No I/O: unary-grpc-server.ts
// feeds it bytes and headers.
import { ChaperoneError } from '../../contracts/errors.ts';

/** Canonical status codes (google.rpc.Code), the ones this transport sends. */
export const GrpcStatus = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  RESOURCE_EXHAUSTED: 8,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
} as const;
export type GrpcStatusCode = (typeof GrpcStatus)[keyof typeof GrpcStatus];

/** A call that ends with this status instead of a response message. */
export class GrpcStatusError extends ChaperoneError {
  constructor(
    readonly grpcCode: GrpcStatusCode,
    /** Sent to the client as `grpc-message`: keep internals out of it. */
    readonly details: string,
  ) {
    super('ERR_GRPC_CALL', details);
  }
}

export const FRAME_HEADER_BYTES = 5;

/** One message in gRPC framing, uncompressed. */
export function encodeFrame(message: Uint8Array): Buffer {
  const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + message.length);
  frame[0] = 0;
  frame.writeUInt32BE(message.length, 1);
  frame.set(message, FRAME_HEADER_BYTES);
  return frame;
}

export interface RequestFrame {
  compressed: boolean;
  message: Buffer;
}

/**
 * Collects the request body of a unary call and cuts it into exactly one framed message. The size
 * limit is checked on the declared length as soon as the 5-byte prefix has arrived, so an oversized
 * message is refused before it is buffered.
 */
export class UnaryFrameReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private declared = -1;

  constructor(private readonly maxMessageBytes: number) {}

  /** Throws RESOURCE_EXHAUSTED when the declared message is over the limit. */
  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    if (this.declared === -1 && this.buffered >= FRAME_HEADER_BYTES) {
      const head = this.chunks.length === 1 ? chunk : Buffer.concat(this.chunks);
      this.declared = head.readUInt32BE(1);
      if (this.declared > this.maxMessageBytes) {
        throw new GrpcStatusError(
          GrpcStatus.RESOURCE_EXHAUSTED,
          `Received message larger than max (${this.declared} vs. ${this.maxMessageBytes})`,
        );
      }
    }
    // A unary request holds one message: bytes past it are a second one, refused at once (as
    // @grpc/grpc-js does) so a client cannot make us buffer an unbounded body behind a small frame.
    if (this.declared !== -1 && this.buffered > FRAME_HEADER_BYTES + this.declared) {
      throw new GrpcStatusError(GrpcStatus.UNIMPLEMENTED, 'Received a second request message for unary call');
    }
  }

  /** The one message of the request, once the body has ended. */
  finish(): RequestFrame {
    if (this.buffered === 0) {
      // What @grpc/grpc-js answers when a unary request has no message.
      throw new GrpcStatusError(GrpcStatus.UNIMPLEMENTED, 'Received no request message for unary call');
    }
    const body = this.chunks.length === 1 ? (this.chunks[0] as Buffer) : Buffer.concat(this.chunks);
    this.chunks = [];
    if (body.length < FRAME_HEADER_BYTES || body.length < FRAME_HEADER_BYTES + this.declared) {
      throw new GrpcStatusError(GrpcStatus.INTERNAL, 'Malformed request: truncated gRPC frame');
    }
    const flag = body[0];
    if (flag !== 0 && flag !== 1) {
      throw new GrpcStatusError(GrpcStatus.INTERNAL, `Malformed request: invalid frame flag ${flag}`);
    }
    const end = FRAME_HEADER_BYTES + this.declared;
    return { compressed: flag === 1, message: body.subarray(FRAME_HEADER_BYTES, end) };
  }
}

const TIMEOUT_UNITS_MS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 1e-3, n: 1e-6 };

/**
 * `grpc-timeout` (1–8 digits and a unit) in milliseconds; null when absent. A malformed value throws
 * INTERNAL, as @grpc/grpc-js does.
 */
export function parseGrpcTimeout(value: string | string[] | undefined): number | null {
  if (value === undefined) return null;
  const raw = Array.isArray(value) ? value[0] : value;
  const m = /^(\d{1,8})([HMSmun])$/.exec(raw ?? '');
  if (!m) throw new GrpcStatusError(GrpcStatus.INTERNAL, `Invalid grpc-timeout value "${raw}"`);
  return Number(m[1]) * (TIMEOUT_UNITS_MS[m[2] as string] as number);
}

/** Percent-encodes a status message as the gRPC spec asks (bytes outside 0x20–0x7E, and `%`). */
export function encodeGrpcMessage(text: string): string {
  let plain = true;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x25) {
      plain = false;
      break;
    }
  }
  if (plain) return text;
  let out = '';
  for (const byte of Buffer.from(text, 'utf8')) {
    out +=
      byte < 0x20 || byte > 0x7e || byte === 0x25
        ? `%${byte.toString(16).toUpperCase().padStart(2, '0')}`
        : String.fromCharCode(byte);
  }
  return out;
}
