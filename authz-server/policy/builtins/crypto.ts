// Hash and HMAC builtins (crypto.md5/sha1/sha256, crypto.hmac.*): hex digests of the UTF-8 bytes of
// their string arguments, as OPA computes them.
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { isString, utf8 } from './values.ts';

const digest = (algorithm: string) => (x: unknown) =>
  isString(x) ? createHash(algorithm).update(utf8(x)).digest('hex') : undefined;

const hmac = (algorithm: string) => (message: unknown, key: unknown) =>
  isString(message) && isString(key)
    ? createHmac(algorithm, utf8(key)).update(utf8(message)).digest('hex')
    : undefined;

/** Go hmac.Equal: constant time for equal lengths, false for different lengths. */
function constantTimeEqual(a: unknown, b: unknown): boolean | undefined {
  if (!isString(a) || !isString(b)) return undefined;
  const x = utf8(a);
  const y = utf8(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export const cryptoBuiltins = {
  'crypto.md5': digest('md5'),
  'crypto.sha1': digest('sha1'),
  'crypto.sha256': digest('sha256'),
  'crypto.hmac.md5': hmac('md5'),
  'crypto.hmac.sha1': hmac('sha1'),
  'crypto.hmac.sha256': hmac('sha256'),
  'crypto.hmac.sha512': hmac('sha512'),
  'crypto.hmac.equal': constantTimeEqual,
};
