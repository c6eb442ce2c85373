// Response masking: the policy names what an agent must not read back — JSON paths and detectors
// (email, payment card with a Luhn check, US SSN, AWS access key, bearer token, custom regex) — and the
// body is rewritten before it leaves the gateway. Only counts per detector are reported, never values.

import { ChaperoneError } from '../../contracts/errors.ts';

export type DetectorSpec = string | { name: string; regex: string };

export interface MaskSpec {
  /** `$.a.b`, `$.items[*].email`, `a.b` (a leading `$.` is optional). */
  paths?: string[];
  detectors?: DetectorSpec[];
}

export interface MaskResult {
  body: string;
  counts: Record<string, number>;
}

/** A policy's `masks` field that is not a valid mask specification; the message names the bad part. */
export class MaskSpecError extends ChaperoneError {
  constructor(message: string) {
    super('ERR_MASK_SPEC_INVALID', message);
  }
}

/** A response that cannot be masked as its spec declares: it must not be sent at all. */
export class UnmaskableResponseError extends ChaperoneError {
  constructor(message: string) {
    super('ERR_RESPONSE_NOT_MASKABLE', message);
  }
}

/** What the response headers say about the body to come. */
export interface ResponseHead {
  status: number | null;
  contentType: string | undefined;
  contentEncoding: string | undefined;
  contentRange: string | undefined;
}

const JSON_TYPE = /^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i;

/**
 * Why a response cannot be masked as `spec` declares, before its body is read; null when it can.
 * A part of a body (206, Content-Range) may split a secret across responses; an encoded body hides
 * it from the detectors; a path mask needs a JSON body (`text/json` and friends are not).
 */
export function unmaskableReason(head: ResponseHead, spec: MaskSpec): string | null {
  if (head.status === 206 || head.contentRange !== undefined)
    return 'a partial (ranged) response cannot be masked';
  const encoding = head.contentEncoding?.trim().toLowerCase();
  if (encoding && encoding !== 'identity')
    return `a ${encoding.slice(0, 20)}-encoded response cannot be masked`;
  if ((spec.paths?.length ?? 0) > 0 && !JSON_TYPE.test(head.contentType ?? ''))
    return 'a response masked by JSON path must be application/json';
  return null;
}

interface Detector {
  name: string;
  re: RegExp;
  accept?: (match: string) => boolean;
}

function luhn(digits: string): boolean {
  let sum = 0;
  let double = false;
  for (let i = digits.length - 1; i >= 0; i--) {
    let d = digits.charCodeAt(i) - 48;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    double = !double;
  }
  return sum % 10 === 0;
}

const BUILTIN: Record<string, Omit<Detector, 'name'>> = {
  email: { re: /[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}/g },
  card: {
    re: /\b(?:\d[ -]?){12,18}\d\b/g,
    accept: (m) => {
      const digits = m.replace(/[ -]/g, '');
      return digits.length >= 13 && digits.length <= 19 && luhn(digits);
    },
  },
  ssn: { re: /\b(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}\b/g },
  aws_key: { re: /\b(?:AKIA|ASIA)[A-Z0-9]{16}\b/g },
  bearer: { re: /\bBearer\s+[A-Za-z0-9._~+/-]+=*/g },
};

export function compileDetectors(specs: DetectorSpec[] = []): Detector[] {
  return specs.map((s) => {
    if (typeof s === 'string') {
      const d = BUILTIN[s];
      if (!d) throw new MaskSpecError(`unknown detector "${s}" (known: ${Object.keys(BUILTIN).join(', ')})`);
      return { name: s, ...d };
    }
    try {
      return { name: s.name, re: new RegExp(s.regex, 'g') };
    } catch {
      throw new MaskSpecError(`detector ${s.name}: invalid regular expression`);
    }
  });
}

function parsePath(p: string): (string | '*')[] {
  const body = p.replace(/^\$\.?/, '');
  const parts: (string | '*')[] = [];
  for (const piece of body.split('.')) {
    const m = /^([^[\]]*)((?:\[(?:\*|\d+)\])*)$/.exec(piece);
    if (!m) throw new MaskSpecError(`invalid mask path "${p}"`);
    if (m[1]) parts.push(m[1]);
    for (const idx of m[2]!.matchAll(/\[(\*|\d+)\]/g)) parts.push(idx[1] === '*' ? '*' : idx[1]!);
  }
  return parts;
}

const MASK = (name: string) => `[masked:${name}]`;

function maskPath(node: unknown, parts: (string | '*')[], counts: Record<string, number>): unknown {
  if (parts.length === 0) {
    counts['path'] = (counts['path'] ?? 0) + 1;
    return MASK('path');
  }
  const [head, ...rest] = parts;
  if (Array.isArray(node)) {
    if (head === '*') return node.map((v) => maskPath(v, rest, counts));
    const i = Number(head);
    if (Number.isInteger(i) && i < node.length) node[i] = maskPath(node[i], rest, counts);
    return node;
  }
  if (node && typeof node === 'object') {
    const o = node as Record<string, unknown>;
    if (head === '*') {
      for (const k of Object.keys(o)) o[k] = maskPath(o[k], rest, counts);
    } else if (head !== undefined && Object.hasOwn(o, head)) o[head] = maskPath(o[head], rest, counts);
  }
  return node;
}

function maskText(text: string, detectors: Detector[], counts: Record<string, number>): string {
  let out = text;
  for (const d of detectors) {
    out = out.replace(d.re, (m) => {
      if (d.accept && !d.accept(m)) return m;
      counts[d.name] = (counts[d.name] ?? 0) + 1;
      return MASK(d.name);
    });
  }
  return out;
}

function maskStrings(node: unknown, detectors: Detector[], counts: Record<string, number>): unknown {
  if (typeof node === 'string') return maskText(node, detectors, counts);
  if (Array.isArray(node)) return node.map((v) => maskStrings(v, detectors, counts));
  if (node && typeof node === 'object') {
    const o = node as Record<string, unknown>;
    for (const k of Object.keys(o)) o[k] = maskStrings(o[k], detectors, counts);
  }
  return node;
}

/**
 * Masks a response body. JSON bodies keep their structure; anything else is masked as text. Throws
 * UnmaskableResponseError when path masks cannot apply (not JSON): such a body is never sent.
 */
export function maskBody(body: string, contentType: string | undefined, spec: MaskSpec): MaskResult {
  const counts: Record<string, number> = {};
  const detectors = compileDetectors(spec.detectors);
  const isJson = JSON_TYPE.test(contentType ?? '');
  const pathMasks = spec.paths ?? [];
  if (pathMasks.length > 0 && !isJson)
    throw new UnmaskableResponseError('a response masked by JSON path must be application/json');
  if (isJson) {
    let value: unknown;
    try {
      value = JSON.parse(body);
    } catch {
      // Declared JSON that is not: path masks cannot apply, so it is not sent; detectors alone can
      // still mask it as text.
      if (pathMasks.length > 0)
        throw new UnmaskableResponseError('a response masked by JSON path is not valid JSON');
      return { body: maskText(body, detectors, counts), counts };
    }
    for (const p of pathMasks) value = maskPath(value, parsePath(p), counts);
    value = maskStrings(value, detectors, counts);
    return { body: JSON.stringify(value), counts };
  }
  return { body: maskText(body, detectors, counts), counts };
}
