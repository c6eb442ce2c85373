// The canonical-path gate: every path an upstream could read differently from the policy is refused
// with a reason, and canonical paths split into decoded segments without a URL parser.
import { describe, expect, it } from 'vitest';
import { checkRawPath } from '../../authz-server/input/raw-path.ts';

describe('checkRawPath accepts canonical paths', () => {
  const cases: [string, string[]][] = [
    ['/', ['']],
    ['/demo', ['demo']],
    ['/demo/items', ['demo', 'items']],
    ['/demo/', ['demo', '']],
    ['/demo/items/', ['demo', 'items', '']],
    ['/v1/chat/completions', ['v1', 'chat', 'completions']],
    ['/v1/models/gemini-pro:generateContent', ['v1', 'models', 'gemini-pro:generateContent']],
    ["/a-b_c.d~e!$&'()*+,=:@", ["a-b_c.d~e!$&'()*+,=:@"]],
    ['/a%20b', ['a b']],
    ['/caf%C3%A9', ['café']],
    ['/caf%c3%a9', ['café']],
    ['/%7Euser', ['~user']],
    ['/a/%3F%23', ['a', '?#']],
    ['/a%25b', ['a%b']],
    ['/100%25', ['100%']],
    ['/.well-known/openid-configuration', ['.well-known', 'openid-configuration']],
    ['/...', ['...']],
    ['/a..b/.c', ['a..b', '.c']],
    ['/%E2%9C%93', ['✓']],
  ];
  it.each(cases)('%s → %j', (raw, segments) => {
    expect(checkRawPath(raw)).toEqual({ ok: true, segments });
  });
});

describe('checkRawPath refuses non-canonical paths', () => {
  const cases: [string, string][] = [
    ['', 'path is empty'],
    ['demo', 'path must start with "/"'],
    ['*', 'path must start with "/"'],
    ['api.example.test:443', 'path must start with "/"'],
    ['http://admin/x', 'path must start with "/"'],
    // empty segments: `//admin/x` once parsed as host `admin`
    ['//admin/x', 'empty path segment ("//")'],
    ['//', 'empty path segment ("//")'],
    ['/a//b', 'empty path segment ("//")'],
    ['/a/b//', 'empty path segment ("//")'],
    // dot segments, plain and encoded
    ['/.', 'dot segment in path'],
    ['/..', 'dot segment in path'],
    ['/a/./b', 'dot segment in path'],
    ['/a/../admin', 'dot segment in path'],
    ['/a/..', 'dot segment in path'],
    ['/a/%2e%2e/admin', 'dot segment in path'],
    ['/a/%2E%2E/admin', 'dot segment in path'],
    ['/a/%2E%2e/admin', 'dot segment in path'],
    ['/a/.%2e/admin', 'dot segment in path'],
    ['/a/%2e./admin', 'dot segment in path'],
    ['/a/%2e/b', 'dot segment in path'],
    ['/demo/./../admin', 'dot segment in path'],
    // encoded separators
    ['/a%2Fb', 'encoded slash (%2F) in path'],
    ['/a%2fb', 'encoded slash (%2F) in path'],
    ['/demo%2F..%2Fadmin', 'encoded slash (%2F) in path'],
    ['/demo/..%2fadmin', 'encoded slash (%2F) in path'],
    ['/a%5cb', 'encoded backslash (%5C) in path'],
    ['/a%5Cb', 'encoded backslash (%5C) in path'],
    ['/demo/..%5cadmin', 'encoded backslash (%5C) in path'],
    ['/a\\b', 'backslash in path'],
    ['/demo\\..\\admin', 'backslash in path'],
    // path parameters
    ['/a;b', 'semicolon (path parameter) in path'],
    ['/demo/..;/admin', 'semicolon (path parameter) in path'],
    ['/a;jsessionid=1', 'semicolon (path parameter) in path'],
    ['/a%3Bb', 'encoded semicolon (%3B) in path'],
    // NUL and control characters, raw and encoded
    ['/a%00b', 'encoded control character in path'],
    ['/a%0d%0aSet-Cookie:x', 'encoded control character in path'],
    ['/a%1fb', 'encoded control character in path'],
    ['/a%7Fb', 'encoded control character in path'],
    ['/a\tb', 'control character in path'],
    ['/a\u0000b', 'control character in path'],
    ['/a\nb', 'control character in path'],
    ['/a\rb', 'control character in path'],
    ['/a\u007fb', 'control character in path'],
    // invalid percent-encoding
    ['/%zz', 'invalid percent-encoding in path'],
    ['/%', 'invalid percent-encoding in path'],
    ['/a%2', 'invalid percent-encoding in path'],
    ['/a%g0', 'invalid percent-encoding in path'],
    ['/%ff', 'invalid percent-encoding in path (not UTF-8)'],
    ['/%C3', 'invalid percent-encoding in path (not UTF-8)'],
    ['/%c0%ae%c0%ae/admin', 'invalid percent-encoding in path (not UTF-8)'],
    ['/%ED%A0%80', 'invalid percent-encoding in path (not UTF-8)'],
    // double encoding and encoded unreserved characters
    ['/%252e%252e/admin', 'double percent-encoding in path'],
    ['/a%252Fb', 'double percent-encoding in path'],
    ['/%61dmin', 'percent-encoded unreserved character in path'],
    ['/admin%2ejson', 'percent-encoded unreserved character in path'],
    ['/a%2Db', 'percent-encoded unreserved character in path'],
    // characters a path must carry percent-encoded
    ['/a#b', 'fragment in path'],
    ['/a b', 'character not allowed in a path (must be percent-encoded)'],
    ['/a"b', 'character not allowed in a path (must be percent-encoded)'],
    ['/a<b>', 'character not allowed in a path (must be percent-encoded)'],
    ['/a|b', 'character not allowed in a path (must be percent-encoded)'],
    ['/a{b}', 'character not allowed in a path (must be percent-encoded)'],
    ['/a`b', 'character not allowed in a path (must be percent-encoded)'],
    ['/a^b', 'character not allowed in a path (must be percent-encoded)'],
    ['/café', 'non-ASCII character in path (must be percent-encoded)'],
    ['/a\u2215b', 'non-ASCII character in path (must be percent-encoded)'],
    ['/a\uff0fb', 'non-ASCII character in path (must be percent-encoded)'],
  ];
  it.each(cases)('%j → %s', (raw, reason) => {
    expect(checkRawPath(raw)).toEqual({ ok: false, reason });
  });

  it('never quotes the path in its reason', () => {
    for (const [raw] of cases) {
      const res = checkRawPath(`${raw}SECRET`);
      if (!res.ok) expect(res.reason).not.toContain('SECRET');
    }
  });
});

describe('checkRawPath on hostile input', () => {
  // Deterministic PRNG so a failure reproduces.
  function rng(seed: number): () => number {
    let s = seed >>> 0;
    return () => {
      s = (s * 1664525 + 1013904223) >>> 0;
      return s / 2 ** 32;
    };
  }
  const alphabet = [
    '/',
    '.',
    '%',
    '2',
    'e',
    'E',
    'f',
    'F',
    '5',
    'c',
    'C',
    'a',
    '\\',
    ';',
    '\0',
    ' ',
    '~',
    '0',
    'é',
  ];

  it('never throws, and what it accepts has no separator, dot or empty segment hiding in it', () => {
    const next = rng(42);
    let accepted = 0;
    for (let n = 0; n < 20_000; n++) {
      const len = 1 + Math.floor(next() * 12);
      let raw = '/';
      for (let i = 0; i < len; i++) raw += alphabet[Math.floor(next() * alphabet.length)];
      const res = checkRawPath(raw);
      if (!res.ok) continue;
      accepted++;
      res.segments.forEach((seg, i) => {
        expect(seg, raw).not.toMatch(/[/\\;\0]/);
        expect(['.', '..'], raw).not.toContain(seg);
        if (i < res.segments.length - 1) expect(seg, raw).not.toBe('');
      });
    }
    expect(accepted).toBeGreaterThan(100);
  });

  it('handles very long and very deep paths', () => {
    const deep = `/${'a/'.repeat(50_000)}b`;
    const res = checkRawPath(deep);
    expect(res.ok && res.segments.length).toBe(50_001);
    expect(checkRawPath(`/${'%41'.repeat(100_000)}`)).toEqual({
      ok: false,
      reason: 'percent-encoded unreserved character in path',
    });
  });
});
