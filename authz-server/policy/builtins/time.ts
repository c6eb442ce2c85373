// Time builtins: time.now_ns, time.parse_rfc3339_ns, time.parse_duration_ns. Results are integer
// nanoseconds, which exceed 2^53 for any current date: they are computed with BigInt and handed to
// the module as raw JSON so they stay exact inside the policy (see values.ts). They lose precision
// only where a number crosses JSON.parse into JavaScript: builtin arguments and the final result.
import { exactInteger, isString } from './values.ts';

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

/** Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil). */
function daysFromCivil(year: number, month: number, day: number): bigint {
  const y = BigInt(month <= 2 ? year - 1 : year);
  const era = (y >= 0n ? y : y - 399n) / 400n;
  const yoe = y - era * 400n;
  const m = BigInt(month);
  const doy = (153n * (m > 2n ? m - 3n : m + 9n) + 2n) / 5n + BigInt(day) - 1n;
  const doe = yoe * 365n + yoe / 4n - yoe / 100n + doy;
  return era * 146097n + doe - 719468n;
}

function daysIn(month: number, year: number): number {
  if (month === 2) return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28;
  return [4, 6, 9, 11].includes(month) ? 30 : 31;
}

// Go's time.Parse(time.RFC3339, …): the general parser accepts a one-digit hour, ',' or '.' before
// the fraction, any number of fraction digits (only nine count), and offsets up to ±24:60.
const RFC3339 =
  /^(\d{4})-(\d{2})-(\d{2})T(\d{1,2}):(\d{2}):(\d{2})(?:[.,](\d+))?(?:(Z)|([+-])(\d{2}):(\d{2}))$/;

export function parseRfc3339Ns(value: string): bigint | undefined {
  const m = RFC3339.exec(value);
  if (!m) return undefined;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  if (month < 1 || month > 12 || day < 1 || day > daysIn(month, year)) return undefined;
  if (hour >= 24 || minute >= 60 || second >= 60) return undefined;
  let offsetSeconds = 0n;
  if (m[8] !== 'Z') {
    const oh = Number(m[10]);
    const om = Number(m[11]);
    if (oh > 24 || om > 60) return undefined;
    offsetSeconds = BigInt((oh * 60 + om) * 60) * (m[9] === '-' ? -1n : 1n);
  }
  const fraction = (m[7] ?? '').slice(0, 9).padEnd(9, '0');
  const seconds =
    daysFromCivil(year, month, day) * 86400n + BigInt(hour * 3600 + minute * 60 + second) - offsetSeconds;
  const ns = seconds * 1_000_000_000n + BigInt(fraction);
  return ns < INT64_MIN || ns > INT64_MAX ? undefined : ns;
}

const UNIT_NS: Record<string, bigint> = {
  ns: 1n,
  us: 1_000n,
  µs: 1_000n, // U+00B5
  μs: 1_000n, // U+03BC
  ms: 1_000_000n,
  s: 1_000_000_000n,
  m: 60_000_000_000n,
  h: 3_600_000_000_000n,
};
const TWO63 = 2n ** 63n;

/** A port of Go's time.ParseDuration (uint64 accumulation and its overflow checks). */
export function goParseDuration(input: string): bigint | undefined {
  let s = input;
  let neg = false;
  if (s !== '' && (s[0] === '-' || s[0] === '+')) {
    neg = s[0] === '-';
    s = s.slice(1);
  }
  if (s === '0') return 0n;
  if (s === '') return undefined;
  let d = 0n;
  while (s !== '') {
    if (!/^[0-9.]/.test(s)) return undefined;
    const intDigits = /^[0-9]*/.exec(s)![0];
    let v = 0n;
    for (const c of intDigits) {
      if (v > TWO63 / 10n) return undefined;
      v = v * 10n + BigInt(c);
      if (v > TWO63) return undefined;
    }
    s = s.slice(intDigits.length);
    let f = 0n;
    let scale = 1;
    let post = false;
    if (s.startsWith('.')) {
      s = s.slice(1);
      const fracDigits = /^[0-9]*/.exec(s)![0];
      post = fracDigits.length > 0;
      let overflow = false;
      for (const c of fracDigits) {
        if (overflow) continue;
        if (f > (TWO63 - 1n) / 10n) {
          overflow = true;
          continue;
        }
        const y = f * 10n + BigInt(c);
        if (y > TWO63) {
          overflow = true;
          continue;
        }
        f = y;
        scale *= 10;
      }
      s = s.slice(fracDigits.length);
    }
    if (intDigits.length === 0 && !post) return undefined;
    const unitText = /^[^0-9.]*/.exec(s)![0];
    if (unitText === '') return undefined;
    s = s.slice(unitText.length);
    const unit = UNIT_NS[unitText];
    if (unit === undefined) return undefined;
    if (v > TWO63 / unit) return undefined;
    v *= unit;
    if (f > 0n) {
      // Go: v += uint64(float64(f) * (float64(unit) / scale)) — same float64 steps here.
      v += BigInt(Math.trunc(Number(f) * (Number(unit) / scale)));
      if (v > TWO63) return undefined;
    }
    d += v;
    if (d > TWO63) return undefined;
  }
  if (neg) return -d;
  return d > TWO63 - 1n ? undefined : d;
}

const EXTENDED_HOURS: Record<string, number> = { d: 24, w: 7 * 24, y: 365 * 24 };

/** Go strconv.FormatFloat(x, 'f', -1, 64): shortest round-trip digits, never an exponent. */
function formatFloatF(x: number): string {
  const text = String(x);
  if (!/e/i.test(text)) return text;
  const [mantissa, expText] = text.split(/e/i) as [string, string];
  const exp = Number(expText);
  const negative = mantissa.startsWith('-');
  const digits = mantissa.replace(/^-/, '').replace('.', '');
  const pointAt =
    (mantissa.replace(/^-/, '').indexOf('.') + 1 || mantissa.replace(/^-/, '').length + 1) - 1 + exp;
  let out: string;
  if (pointAt <= 0) out = '0.' + '0'.repeat(-pointAt) + digits;
  else if (pointAt >= digits.length) out = digits + '0'.repeat(pointAt - digits.length);
  else out = digits.slice(0, pointAt) + '.' + digits.slice(pointAt);
  return (negative ? '-' : '') + out;
}

/** OPA's parseExtendedDuration: Go durations plus d/w/y segments, rewritten to hours first. */
export function parseExtendedDurationNs(s: string): bigint | undefined {
  if (s === '') return undefined;
  if (!/[dwy]/.test(s)) return goParseDuration(s);
  // OPA's PEG grammar: sign? (digits-and-dots unit)+ with unit ms|us|µs|ns|[a-z].
  const whole = /^([-+]?)((?:[0-9.]+(?:ms|us|µs|ns|[a-z]))+)$/.exec(s);
  if (!whole) return undefined;
  let rewritten = whole[1] ?? '';
  for (const seg of whole[2]!.matchAll(/([0-9.]+)(ms|us|µs|ns|[a-z])/g)) {
    const [, digits, unit] = seg as unknown as [string, string, string];
    const hours = EXTENDED_HOURS[unit];
    if (hours === undefined) {
      rewritten += digits + unit;
      continue;
    }
    // Go strconv.ParseFloat: a plain decimal with at most one '.', at least one digit.
    if (!/^(?:[0-9]+\.?[0-9]*|\.[0-9]+)$/.test(digits)) return undefined;
    rewritten += formatFloatF(Number(digits) * hours) + 'h';
  }
  return goParseDuration(rewritten);
}

/** The clock time.now_ns reports: one value per evaluation, set by the engine before it runs. */
export interface EvalClock {
  evalTimeNs(): bigint | number;
}

export function evalTimeBigInt(clock: EvalClock): bigint {
  const t = clock.evalTimeNs();
  return typeof t === 'bigint' ? t : BigInt(Math.trunc(t));
}

export function createTimeBuiltins(clock: EvalClock) {
  return {
    'time.now_ns': () => exactInteger(evalTimeBigInt(clock)),
    'time.parse_rfc3339_ns': (value: unknown) => {
      const ns = isString(value) ? parseRfc3339Ns(value) : undefined;
      return ns === undefined ? undefined : exactInteger(ns);
    },
    'time.parse_duration_ns': (value: unknown) => {
      const ns = isString(value) ? parseExtendedDurationNs(value) : undefined;
      return ns === undefined ? undefined : exactInteger(ns);
    },
  };
}
