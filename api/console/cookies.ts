// Cookies of the console: reading one out of a `Cookie` header, and writing `Set-Cookie` values with the
// attributes the console always uses (HttpOnly; SameSite; Secure and the `__Host-` prefix on https).
// RFC 6265 §5.2 parsing is small enough to keep here; the values are our own base64url ids.

/** The value of cookie `name` in a Cookie header, or null (the first one wins, as browsers order them). */
export function readCookie(header: string | string[] | undefined, name: string): string | null {
  const text = Array.isArray(header) ? header.join('; ') : (header ?? '');
  for (const part of text.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === name)
      return part
        .slice(eq + 1)
        .trim()
        .replace(/^"(.*)"$/, '$1');
  }
  return null;
}

export interface CookieOptions {
  path: string;
  sameSite: 'Strict' | 'Lax';
  secure: boolean;
  /** Seconds; 0 deletes the cookie. Omitted: a browser-session cookie. */
  maxAge?: number;
}

export function setCookie(name: string, value: string, o: CookieOptions): string {
  return [
    `${name}=${value}`,
    `Path=${o.path}`,
    'HttpOnly',
    `SameSite=${o.sameSite}`,
    ...(o.secure ? ['Secure'] : []),
    ...(o.maxAge !== undefined ? [`Max-Age=${o.maxAge}`] : []),
  ].join('; ');
}
