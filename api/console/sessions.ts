// Console sessions, server-side in the shared database (`console_sessions`), so any node of a fleet
// serves any session and a sign-out ends it everywhere. The browser holds only a random id in an
// HttpOnly, SameSite=Strict cookie (Secure and `__Host-` on https); the table holds its SHA-256, so a
// read of the database does not yield a usable cookie. A session ends `ttl` after sign-in or `idle`
// after its last request, whichever is first, or at sign-out. A sign-in under way is a row of its own
// (state, nonce, PKCE verifier) bound to the browser by a short-lived cookie and used once; the session
// that results gets a new id — an id set before sign-in never becomes a session (fixation).
import { createHash, randomBytes } from 'node:crypto';
import type { Identity } from '../../contracts/identity.ts';
import { isoTime, jsonColumn, type Sql } from '../../store/sql.ts';
import type { ConsoleSession, SessionAuth } from '../authenticate.ts';
import { type CookieOptions, setCookie } from './cookies.ts';

export interface LoginAttempt {
  state: string;
  nonce: string;
  verifier: string;
  returnTo: string;
  /** The issuer the attempt was started with (a later config change must not mix issuers). */
  issuer: string;
}

/** What a session remembers of the person: enough to recompute roles from `access:` on each request. */
type SessionPerson = Pick<Identity, 'issuer' | 'subject' | 'groups' | 'email' | 'name'>;

export interface SessionStoreOptions {
  ttlMs: number;
  idleMs: number;
  /** The console's public URL (`control_plane.issuer`): https there means Secure cookies. */
  publicUrl: string;
  now?: () => number;
}

/** A sign-in must come back from the IdP within this time. */
const LOGIN_TTL_MS = 10 * 60_000;
/** last_seen is written at most this often per session (a page load is several requests). */
const TOUCH_EVERY_MS = 60_000;

const sha256 = (v: string) => createHash('sha256').update(v).digest('hex');
const newId = () => randomBytes(32).toString('base64url');

export class SessionStore implements SessionAuth {
  readonly secure: boolean;
  readonly cookieName: string;
  readonly loginCookieName: string;
  private readonly now: () => number;

  constructor(
    private readonly sql: Sql,
    private readonly o: SessionStoreOptions,
  ) {
    this.secure = new URL(o.publicUrl).protocol === 'https:';
    // `__Host-`: Secure, Path=/, no Domain — no other host (or http page) can set or shadow it.
    this.cookieName = this.secure ? '__Host-chaperone_console' : 'chaperone_console';
    this.loginCookieName = this.secure ? '__Secure-chaperone_login' : 'chaperone_login';
    this.now = o.now ?? Date.now;
  }

  /** Plain http (loopback, dev): the cookie is kept to /console, away from other local ports' paths. */
  private sessionCookie(maxAge?: number): CookieOptions {
    return {
      path: this.secure ? '/' : '/console',
      sameSite: 'Strict',
      secure: this.secure,
      ...(maxAge !== undefined ? { maxAge } : {}),
    };
  }

  /**
   * The sign-in cookie comes back on the IdP's redirect, a cross-site navigation: SameSite=Lax is the
   * strictest setting a browser sends then. It only names a one-time sign-in attempt, and only to the
   * callback path.
   */
  private loginCookie(maxAge: number): CookieOptions {
    return { path: '/console/callback', sameSite: 'Lax', secure: this.secure, maxAge };
  }

  origin(host: string | undefined): string {
    return `${this.secure ? 'https' : 'http'}://${host ?? ''}`;
  }

  private async insert(kind: 'login' | 'session', data: unknown, ttlMs: number): Promise<string> {
    const id = newId();
    const at = new Date(this.now());
    await this.sql.query(
      `INSERT INTO console_sessions (id_sha256, kind, data, created_at, last_seen, expires_at)
       VALUES ($1, $2, $3, $4, $4, $5)`,
      [
        sha256(id),
        kind,
        JSON.stringify(data),
        at.toISOString(),
        new Date(at.getTime() + ttlMs).toISOString(),
      ],
    );
    return id;
  }

  /** Records a sign-in attempt; returns the Set-Cookie that binds it to this browser. */
  async startLogin(a: LoginAttempt): Promise<string> {
    // Expired rows go whenever someone signs in: bounded work, no timer of its own.
    await this.sql.query('DELETE FROM console_sessions WHERE expires_at < $1', [
      new Date(this.now()).toISOString(),
    ]);
    const id = await this.insert('login', a, LOGIN_TTL_MS);
    return setCookie(this.loginCookieName, id, this.loginCookie(LOGIN_TTL_MS / 1000));
  }

  /** The attempt a callback's cookie names, removed so it is used at most once; null if unknown or late. */
  async takeLogin(cookieValue: string): Promise<LoginAttempt | null> {
    const [row] = await this.sql.query<{ data: unknown; expires_at: unknown }>(
      `DELETE FROM console_sessions WHERE id_sha256 = $1 AND kind = 'login' RETURNING data, expires_at`,
      [sha256(cookieValue)],
    );
    if (!row || Date.parse(isoTime(row.expires_at)) < this.now()) return null;
    return jsonColumn<LoginAttempt>(row.data);
  }

  /** A new session for a verified person; returns its Set-Cookie headers (the sign-in cookie cleared). */
  async create(person: SessionPerson): Promise<string[]> {
    const csrf = randomBytes(32).toString('base64url');
    const data = {
      csrf,
      person: {
        issuer: person.issuer,
        subject: person.subject,
        groups: person.groups,
        email: person.email,
        name: person.name,
      },
    };
    const id = await this.insert('session', data, this.o.ttlMs);
    return [
      setCookie(this.cookieName, id, this.sessionCookie()),
      setCookie(this.loginCookieName, '', this.loginCookie(0)),
    ];
  }

  async lookup(cookieValue: string): Promise<ConsoleSession | null> {
    const hash = sha256(cookieValue);
    const [row] = await this.sql.query<{ data: unknown; last_seen: unknown; expires_at: unknown }>(
      `SELECT data, last_seen, expires_at FROM console_sessions WHERE id_sha256 = $1 AND kind = 'session'`,
      [hash],
    );
    if (!row) return null;
    const now = this.now();
    const lastSeen = Date.parse(isoTime(row.last_seen));
    const expiresAt = isoTime(row.expires_at);
    if (Date.parse(expiresAt) <= now || lastSeen + this.o.idleMs <= now) {
      await this.sql.query('DELETE FROM console_sessions WHERE id_sha256 = $1', [hash]);
      return null;
    }
    if (now - lastSeen >= TOUCH_EVERY_MS)
      await this.sql.query('UPDATE console_sessions SET last_seen = $2 WHERE id_sha256 = $1', [
        hash,
        new Date(now).toISOString(),
      ]);
    const data = jsonColumn<{ csrf: string; person: SessionPerson }>(row.data);
    return { csrf: data.csrf, expiresAt, identity: sessionIdentity(data.person, expiresAt) };
  }

  /** Ends a session (sign-out); returns the Set-Cookie that clears it. */
  async end(cookieValue: string | null): Promise<string> {
    if (cookieValue)
      await this.sql.query('DELETE FROM console_sessions WHERE id_sha256 = $1', [sha256(cookieValue)]);
    return setCookie(this.cookieName, '', this.sessionCookie(0));
  }

  /** Live sessions (for /status). */
  async count(): Promise<number> {
    const [row] = await this.sql.query<{ n: string | number }>(
      "SELECT count(*) AS n FROM console_sessions WHERE kind = 'session' AND expires_at > $1",
      [new Date(this.now()).toISOString()],
    );
    return Number(row?.n ?? 0);
  }
}

/** The Identity a session stands for: a person (no actor, no token of theirs is kept). */
function sessionIdentity(p: SessionPerson, expiresAt: string): Identity {
  return {
    issuer: p.issuer,
    subject: p.subject,
    // A console session is a person's own sign-in: the person's issuer is the token's.
    subject_issuer: p.issuer,
    audience: [],
    email: p.email,
    name: p.name,
    groups: [...p.groups],
    actor: null,
    token_id: null,
    expires_at: Math.floor(Date.parse(expiresAt) / 1000),
    claims: {},
  };
}
