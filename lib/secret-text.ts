// Credentials in text: the names and shapes that mark a value as secret, and the redaction of a
// string or a request path. Pure functions, used wherever request data is kept or shown — the audit
// trail (audit/redaction.ts applies them to whole records) and approval requests (the path a
// reviewer sees).

export const REDACTED = '[redacted]';
export const REDACTED_IN_QUERY = encodeURIComponent(REDACTED);

/** Headers whose values are credentials. */
export const SECRET_HEADERS = [
  'authorization',
  'proxy-authorization',
  'cookie',
  'set-cookie',
  'x-api-key',
  'api-key',
  'x-auth-token',
  'x-amz-security-token',
  'x-goog-api-key',
];

/**
 * Names (query parameters, body fields, object keys anywhere, `name=value` pairs in text) whose values
 * are credentials: `token` and anything ending in `_token`/`-token`, likewise `secret`, `password`,
 * `signature`, `credential(s)`, `api_key`-like keys; `key`, `sig`, `jwt`, `assertion`, session ids.
 */
export const SECRET_NAME =
  /^(?:(?:.*[-_.])?(?:token|secret|password|passwd|passphrase|signature|credentials?|api[-_]?key|access[-_]?key|secret[-_]?key|private[-_]?key)|apikey|key|sig|pwd|jwt|assertion|client[-_]assertion|session[-_]?id|sessionid)$/i;

/** A whole value that is a credential: a JWT (JWS or JWE), or a bearer token. */
export const SECRET_VALUE = /^(?:eyJ[\w-]+(?:\.[\w-]*){2,4}|bearer\s+[\w\-.~+/]+=*)$/i;

/** In a header, any HTTP authentication scheme followed by its credentials (`Basic …`, `Token …`). */
export const AUTH_SCHEME_VALUE = /^(?:bearer|basic|digest|token|apikey|negotiate|aws4-hmac-sha256)\s+\S+/i;

/**
 * Credentials inside longer text: a JWT, `Bearer <token>`, `Basic <base64>` (checked below to decode
 * to `user:password`), a PEM private key, and the formats of widely used API keys (GitHub, GitLab,
 * Slack, OpenAI/Anthropic, Stripe, AWS access key ids, Google API keys and OAuth tokens, npm).
 */
const SECRET_IN_TEXT = new RegExp(
  [
    // JWS: three parts; JWE: five (its second may be empty).
    String.raw`\beyJ[\w-]{4,}\.[\w-]*\.[\w-]*(?:\.[\w-]*\.[\w-]*)?`,
    String.raw`\b[Bb]earer\s+[\w\-.~+/]{8,}=*`,
    String.raw`\b[Bb]asic\s+[A-Za-z0-9+/]{8,}={0,2}`,
    String.raw`-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)`,
    String.raw`\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_\w{22,}|glpat-[\w-]{20,}|xox[abposr]-[A-Za-z0-9-]{10,}|sk-(?:proj-|ant-)?[\w-]{20,}|[sr]k_(?:live|test)_[A-Za-z0-9]{16,}|(?:AKIA|ASIA)[0-9A-Z]{16}|AIza[\w-]{35}|ya29\.[\w-]{20,}|npm_[A-Za-z0-9]{36})\b`,
  ].join('|'),
  'g',
);

/** `name=value` pairs (a query string, a form, `key=value` text); the value is replaced when the name is secret. */
const NAME_VALUE = /(^|[?&;\s])([\w.\-[\]%]+)=([^&#\s;]*)/g;

export function decodeName(name: string): string {
  try {
    return decodeURIComponent(name.replace(/\+/g, ' '));
  } catch {
    return name;
  }
}

function secretInText(match: string): string {
  if (/^basic\s/i.test(match)) {
    // `Basic` is also an English word: only a base64 `user:password` is a credential.
    const b64 = match.replace(/^basic\s+/i, '');
    if (!Buffer.from(b64, 'base64').toString('latin1').includes(':')) return match;
    return `${match.slice(0, match.length - b64.length)}${REDACTED}`;
  }
  if (/^bearer\s/i.test(match)) return `${match.slice(0, 6)} ${REDACTED}`;
  return REDACTED;
}

/** A string with every credential it contains replaced. */
export function redactText(s: string): string {
  if (SECRET_VALUE.test(s.trim())) return REDACTED;
  let out = s.replace(SECRET_IN_TEXT, secretInText);
  if (out.includes('=')) {
    out = out.replace(NAME_VALUE, (all, lead: string, name: string, value: string) =>
      value && value !== REDACTED && value !== REDACTED_IN_QUERY && SECRET_NAME.test(decodeName(name))
        ? `${lead}${name}=${REDACTED}`
        : all,
    );
  }
  return out;
}

/** A request path as the trail keeps it: no query string, no credential inside. */
export function redactPath(path: string): string {
  const q = path.indexOf('?');
  return redactText(q === -1 ? path : path.slice(0, q));
}
