// The lean transport's wire pieces (authz-server/transport/grpc-framing.ts), table-driven: the
// length-prefixed frame, `grpc-timeout` and the percent-encoding of `grpc-message`, with hostile inputs.
import { describe, expect, it } from 'vitest';
import {
  encodeFrame,
  encodeGrpcMessage,
  GrpcStatus,
  GrpcStatusError,
  parseGrpcTimeout,
  UnaryFrameReader,
} from '../../authz-server/transport/grpc-framing.ts';

function statusOf(fn: () => unknown): { code: number; details: string } | null {
  try {
    fn();
    return null;
  } catch (err) {
    if (err instanceof GrpcStatusError) return { code: err.grpcCode, details: err.details };
    throw err;
  }
}

function frame(message: Buffer, declared = message.length, flag = 0): Buffer {
  const head = Buffer.alloc(5);
  head[0] = flag;
  head.writeUInt32BE(declared, 1);
  return Buffer.concat([head, message]);
}

/** Feeds `bytes` in pieces of `size` and finishes the body. */
function read(bytes: Buffer, size: number, max = 1024) {
  const reader = new UnaryFrameReader(max);
  for (let i = 0; i < bytes.length; i += size) reader.push(bytes.subarray(i, i + size));
  return reader.finish();
}

describe('gRPC framing', () => {
  it('encodeFrame writes flag 0 and the big-endian length', () => {
    const f = encodeFrame(Buffer.from('abc'));
    expect([...f]).toEqual([0, 0, 0, 0, 3, 0x61, 0x62, 0x63]);
    expect([...encodeFrame(new Uint8Array(0))]).toEqual([0, 0, 0, 0, 0]);
  });

  it.each([1, 2, 3, 5, 7, 64])('reads one message whatever the chunking (%i-byte chunks)', (size) => {
    const message = Buffer.from('a message of some length, long enough to be split');
    const got = read(frame(message), size);
    expect(got.compressed).toBe(false);
    expect(got.message.equals(message)).toBe(true);
  });

  it('reads an empty message and a compressed flag', () => {
    expect(read(frame(Buffer.alloc(0)), 5).message.length).toBe(0);
    expect(read(frame(Buffer.from('x'), 1, 1), 2).compressed).toBe(true);
  });

  it.each([
    { name: 'no body at all', bytes: Buffer.alloc(0), code: GrpcStatus.UNIMPLEMENTED },
    { name: 'a partial prefix', bytes: Buffer.from([0, 0, 0]), code: GrpcStatus.INTERNAL },
    { name: 'a truncated message', bytes: frame(Buffer.from('abc'), 10), code: GrpcStatus.INTERNAL },
    { name: 'an invalid flag', bytes: frame(Buffer.from('abc'), 3, 2), code: GrpcStatus.INTERNAL },
  ])('finish() refuses $name', ({ bytes, code }) => {
    expect(statusOf(() => read(bytes, 4))?.code).toBe(code);
  });

  it('refuses an oversized message from its declared length, before the bytes arrive', () => {
    const reader = new UnaryFrameReader(100);
    expect(statusOf(() => reader.push(frame(Buffer.alloc(0), 101)))).toEqual({
      code: GrpcStatus.RESOURCE_EXHAUSTED,
      details: 'Received message larger than max (101 vs. 100)',
    });
    // At the limit is fine.
    expect(read(frame(Buffer.alloc(100)), 50, 100).message.length).toBe(100);
  });

  it('refuses a second message as soon as its first byte arrives', () => {
    const reader = new UnaryFrameReader(1024);
    reader.push(frame(Buffer.from('one')));
    expect(statusOf(() => reader.push(Buffer.from([0])))?.code).toBe(GrpcStatus.UNIMPLEMENTED);
  });

  it('never throws anything but a status on random bytes', () => {
    let seed = 7;
    const rand = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed;
    };
    for (let i = 0; i < 2000; i++) {
      const bytes = Buffer.from(Array.from({ length: rand() % 40 }, () => rand() % 256));
      const reader = new UnaryFrameReader(16);
      try {
        for (let j = 0; j < bytes.length; j += 1 + (rand() % 7))
          reader.push(bytes.subarray(j, j + 1 + (rand() % 7)));
        const got = reader.finish();
        expect(got.message.length).toBeLessThanOrEqual(16);
      } catch (err) {
        expect(err).toBeInstanceOf(GrpcStatusError);
      }
    }
  });
});

describe('grpc-timeout', () => {
  it.each([
    ['1H', 3_600_000],
    ['2M', 120_000],
    ['5S', 5000],
    ['500m', 500],
    ['1500u', 1.5],
    ['2000000n', 2],
    ['99999999m', 99_999_999],
  ])('%s is %d ms', (value, ms) => {
    expect(parseGrpcTimeout(value)).toBeCloseTo(ms, 6);
  });

  it('absent is null', () => {
    expect(parseGrpcTimeout(undefined)).toBeNull();
  });

  it.each(['', '5', 'S', '5s', '5 S', '-5S', '123456789S', '5S ', '1.5S', '5SS'])(
    'malformed %j is INTERNAL',
    (value) => {
      expect(statusOf(() => parseGrpcTimeout(value))).toEqual({
        code: GrpcStatus.INTERNAL,
        details: `Invalid grpc-timeout value "${value}"`,
      });
    },
  );
});

describe('grpc-message percent-encoding', () => {
  it.each([
    ['plain ASCII stays', 'Deadline exceeded', 'Deadline exceeded'],
    ['percent is encoded', '100% done', '100%25 done'],
    ['non-ASCII as UTF-8 bytes', 'Prüf', 'Pr%C3%BCf'],
    ['control characters', 'a\nb\tc', 'a%0Ab%09c'],
    ['tilde and space stay', '~ ~', '~ ~'],
  ])('%s', (_name, input, encoded) => {
    expect(encodeGrpcMessage(input)).toBe(encoded);
    // What a client does to read it back (percent-decoding as UTF-8).
    expect(decodeURIComponent(encoded)).toBe(input);
  });
});
