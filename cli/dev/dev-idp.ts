// The development OpenID provider of `chaperone up --dev` and of the test suites: a real OpenID
// Provider (panva's oidc-provider, certified) on loopback, with a fixed list of users. Tokens come
// out of a real OAuth 2.0 flow: authorization code + PKCE driven by openid-client, with resource
// indicators (RFC 8707) so the access token is a JWT (RFC 9068) whose `aud` is the gateway. The one
// shortcut is the login: a dev interaction accepts the user named in `login_hint` without a form.
//
// MCP clients log in here without hand configuration (the MCP authorization spec): they register
// themselves (RFC 7591 dynamic client registration, open in dev), run authorization code + PKCE with
// the MCP target's URL as the resource (RFC 8707: the access token's `aud` is that URL), and a person
// picks a demo user on a one-click page (no passwords in dev mode). Any http(s) resource is accepted:
// the gateway checks the audience.
//
// Two knobs tests need and a real IdP refuses are applied inside the provider, through its own JWT
// customizer hook, so the token is still minted and signed by the provider with its key and kid:
// a non-positive `ttlSec` (an already expired token: the provider only issues positive lifetimes)
// rewrites `iat`/`exp`, and `claims` are merged over the payload (e.g. `nbf` in the future, `act`).
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, type JWK } from 'jose';
import * as oidcClient from 'openid-client';

export interface DevUser {
  sub: string;
  groups: string[];
  email?: string;
  name?: string;
  /** More claims for this user's tokens (tests: an account whose tokens carry `act`, like an agent's). */
  claims?: Record<string, unknown>;
}

export interface DevIdpOptions {
  /** Default 0: a free port. */
  port?: number;
  /** Default 127.0.0.1: the dev IdP never listens beyond loopback unless told to. */
  host?: string;
  users: DevUser[];
  /** `aud` of issued access tokens (the gateway's configured audience). */
  audience: string;
  /** Private JWK (RS256/ES256, with `kid`); default: a new RS256 key at every start. */
  signingKey?: JWK;
}

export interface TokenOptions {
  /** Lifetime in seconds; default 3600. Zero or negative gives a token that has already expired. */
  ttlSec?: number;
  /** `aud` for this token instead of the IdP's audience. */
  audience?: string;
  /** Merged over the access token's payload (overrides what the provider set). */
  claims?: Record<string, unknown>;
}

export interface DevIdp {
  issuer: string;
  port: number;
  /** An access token (JWT) for `sub`, obtained through the authorization code flow. */
  tokenFor(sub: string, opts?: TokenOptions): Promise<string>;
  /** The public signing keys the provider publishes at its jwks_uri. */
  jwks(): { keys: JWK[] };
  /** Signs with a new key from now on; previous keys stay published so issued tokens still verify. */
  rotateKeys(): Promise<void>;
  close(): Promise<void>;
}

const CLIENT_ID = 'chaperone-dev-cli';
// Never dereferenced: the code is read off the Location header of the final redirect.
const REDIRECT_URI = 'http://127.0.0.1/callback';
/**
 * The web console's client (config `console.client_id` default): public, PKCE. A native client, so a
 * loopback redirect URI matches on any port (RFC 8252 §7.3): the console of a gateway on any free port.
 */
export const CONSOLE_CLIENT_ID = 'chaperone-console';
const CONSOLE_REDIRECT_URIS = ['http://127.0.0.1/console/callback', 'http://[::1]/console/callback'];
const AUDIENCE_RESOURCE_PREFIX = 'urn:chaperone:audience:';
const DEFAULT_TTL_SEC = 3600;
const SCOPE = 'openid email profile';
// Loaded lazily: only `up --dev` and tests pay for it, and it has no TypeScript declarations.
const OIDC_PROVIDER_MODULE = 'oidc-provider';

// The slice of oidc-provider's (untyped) API this module uses.
interface ProviderInstance {
  callback(): (req: IncomingMessage, res: ServerResponse) => void;
  interactionDetails(
    req: IncomingMessage,
    res: ServerResponse,
  ): Promise<{ params: Record<string, unknown>; prompt: { name: string } }>;
  interactionFinished(req: IncomingMessage, res: ServerResponse, result: object, o?: object): Promise<void>;
  Grant: new (o: {
    accountId: string;
    clientId: string;
  }) => {
    addOIDCScope(scope: string): void;
    addResourceScope(resource: string, scope: string): void;
    save(): Promise<string>;
  };
}
interface ProviderModule {
  default: new (issuer: string, config: object) => ProviderInstance;
  errors: { InvalidTarget: new (description?: string) => Error };
}
interface AccessTokenModel {
  accountId?: string;
  grantId?: string;
  resourceServer?: { accessTokenTTL?: number };
}

/** Starts the provider; resolves once it accepts connections. */
export async function startDevIdp(o: DevIdpOptions): Promise<DevIdp> {
  const mod = (await import(OIDC_PROVIDER_MODULE)) as ProviderModule;
  const users = new Map(o.users.map((u) => [u.sub, u]));
  const host = o.host ?? '127.0.0.1';

  let handle: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => {
    res.statusCode = 503;
    res.end();
  };
  const server: Server = createServer((req, res) => handle(req, res));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port ?? 0, host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const issuer = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;

  const signingKeys: JWK[] = [o.signingKey ? { ...o.signingKey } : await newSigningKey()];
  const audienceResource = AUDIENCE_RESOURCE_PREFIX + encodeURIComponent(o.audience);
  const cookieKeys = [randomBytes(32).toString('base64url')];
  /** Flows under way, by OAuth `state`: who logs in and what the token should look like. */
  const pendingLogins = new Map<string, { sub: string; token: TokenOptions; grantId?: string }>();
  /** Token options of a finished login, by grant id (what the token-time hooks can see). */
  const tokenOptionsByGrant = new Map<string, TokenOptions>();

  const configuration = () => ({
    adapter: memoryAdapter(),
    jwks: { keys: signingKeys },
    cookies: { keys: cookieKeys },
    clients: [
      {
        client_id: CLIENT_ID,
        application_type: 'native',
        token_endpoint_auth_method: 'none',
        grant_types: ['authorization_code'],
        response_types: ['code'],
        redirect_uris: [REDIRECT_URI],
      },
      {
        client_id: CONSOLE_CLIENT_ID,
        application_type: 'native',
        token_endpoint_auth_method: 'none',
        grant_types: ['authorization_code'],
        response_types: ['code'],
        redirect_uris: CONSOLE_REDIRECT_URIS,
      },
    ],
    // `act` rides in the ID token too when a (test) account has one: the console refuses it there.
    claims: { openid: ['sub', 'act'], email: ['email'], profile: ['name'], groups: ['groups'] },
    async findAccount(_ctx: unknown, sub: string) {
      const user = users.get(sub);
      if (!user) return undefined;
      return { accountId: sub, claims: async () => userClaims(user) };
    },
    interactions: {
      url: async (_ctx: unknown, interaction: { uid: string }) => `/interaction/${interaction.uid}`,
    },
    features: {
      devInteractions: { enabled: false },
      // MCP clients (the SDK's auth(), Claude, VS Code, Cursor) register themselves: open in dev only.
      registration: { enabled: true },
      resourceIndicators: {
        enabled: true,
        // The console asks for no resource: its access token is for the gateway's audience all the same.
        defaultResource: async (_ctx: unknown, client: { clientId: string }) =>
          client.clientId === CONSOLE_CLIENT_ID ? audienceResource : undefined,
        useGrantedResource: async () => true,
        async getResourceServerInfo(_ctx: unknown, resource: string) {
          const audience = audienceOfResource(resource);
          if (audience === null) throw new mod.errors.InvalidTarget();
          return {
            scope: '',
            audience,
            accessTokenFormat: 'jwt',
            accessTokenTTL: DEFAULT_TTL_SEC,
            jwt: { sign: { alg: signingKeys[0]!.alg } },
          };
        },
      },
    },
    async extraTokenClaims(_ctx: unknown, token: AccessTokenModel) {
      const user = token.accountId ? users.get(token.accountId) : undefined;
      return user ? userClaims(user) : undefined;
    },
    formats: {
      customizers: {
        async jwt(_ctx: unknown, token: AccessTokenModel, jwt: { payload: Record<string, unknown> }) {
          const opts = token.grantId ? tokenOptionsByGrant.get(token.grantId) : undefined;
          if (opts?.ttlSec !== undefined && opts.ttlSec <= 0) {
            const now = Math.floor(Date.now() / 1000);
            jwt.payload['iat'] = now + opts.ttlSec - 60;
            jwt.payload['exp'] = now + opts.ttlSec;
          }
          if (opts?.claims) Object.assign(jwt.payload, opts.claims);
        },
      },
    },
    ttl: {
      AccessToken(_ctx: unknown, token: AccessTokenModel) {
        const opts = token.grantId ? tokenOptionsByGrant.get(token.grantId) : undefined;
        if (opts?.ttlSec !== undefined) return Math.max(1, Math.floor(opts.ttlSec));
        return token.resourceServer?.accessTokenTTL ?? DEFAULT_TTL_SEC;
      },
      AuthorizationCode: 60,
      IdToken: 3600,
      Interaction: 600,
      Session: 600,
      Grant: 600,
    },
  });

  let provider: ProviderInstance;
  const install = () => {
    provider = new mod.default(issuer, configuration());
    const callback = provider.callback();
    handle = (req, res) => {
      if (req.url?.startsWith('/interaction/')) {
        devLogin(provider, req, res).catch(() => {
          if (!res.headersSent) res.statusCode = 500;
          res.end();
        });
        return;
      }
      callback(req, res);
    };
  };

  // The dev interaction: log in the user the client asked for in login_hint and consent to the
  // request, in one step and without a page. Flows this module started carry their token options;
  // an outside client (`chaperone login` against the dev issuer) may sign in any demo user by
  // login_hint — there are no passwords in dev mode, and /dev/token hands out the same tokens.
  const devLogin = async (p: ProviderInstance, req: IncomingMessage, res: ServerResponse) => {
    const { params } = await p.interactionDetails(req, res);
    const picked = req.method === 'POST' ? await pickedUser(req) : null;
    const hint = picked ?? (typeof params['login_hint'] === 'string' ? params['login_hint'] : '');
    if (hint === '' && req.method === 'GET') {
      // A person at a browser (an MCP host's login): one click picks a demo user.
      loginPage(res, req.url ?? '', [...users.values()], String(params['client_id']));
      return;
    }
    const flow =
      (typeof params['state'] === 'string' ? pendingLogins.get(params['state']) : undefined) ??
      (users.has(hint)
        ? ({ sub: hint, token: {} } as { sub: string; token: TokenOptions; grantId?: string })
        : undefined);
    if (!flow || hint !== flow.sub || !users.has(flow.sub)) {
      await p.interactionFinished(req, res, {
        error: 'access_denied',
        error_description: 'unknown dev login',
      });
      return;
    }
    const grant = new p.Grant({ accountId: flow.sub, clientId: String(params['client_id']) });
    if (typeof params['scope'] === 'string') grant.addOIDCScope(params['scope']);
    grant.addResourceScope(
      typeof params['resource'] === 'string' ? params['resource'] : audienceResource,
      '',
    );
    const grantId = await grant.save();
    tokenOptionsByGrant.set(grantId, flow.token);
    flow.grantId = grantId;
    await p.interactionFinished(
      req,
      res,
      { login: { accountId: flow.sub }, consent: { grantId } },
      { mergeWithLastSubmission: false },
    );
  };

  install();
  // Built once per key set: the relying party only needs the provider's metadata.
  const rp = await oidcClient.discovery(
    new URL(issuer),
    CLIENT_ID,
    { redirect_uris: [REDIRECT_URI] },
    oidcClient.None(),
    {
      execute: [oidcClient.allowInsecureRequests],
    },
  );

  const tokenFor = async (sub: string, opts: TokenOptions = {}): Promise<string> => {
    if (!users.has(sub)) throw new Error(`dev IdP has no user "${sub}"`);
    const resource = AUDIENCE_RESOURCE_PREFIX + encodeURIComponent(opts.audience ?? o.audience);
    const state = oidcClient.randomState();
    const verifier = oidcClient.randomPKCECodeVerifier();
    const flow: { sub: string; token: TokenOptions; grantId?: string } = { sub, token: opts };
    pendingLogins.set(state, flow);
    try {
      const authUrl = oidcClient.buildAuthorizationUrl(rp, {
        redirect_uri: REDIRECT_URI,
        scope: SCOPE,
        state,
        login_hint: sub,
        resource,
        code_challenge: await oidcClient.calculatePKCECodeChallenge(verifier),
        code_challenge_method: 'S256',
      });
      const callbackUrl = await followToCallback(authUrl);
      const tokens = await oidcClient.authorizationCodeGrant(
        rp,
        callbackUrl,
        { pkceCodeVerifier: verifier, expectedState: state },
        { resource },
      );
      return tokens.access_token;
    } finally {
      pendingLogins.delete(state);
      if (flow.grantId) tokenOptionsByGrant.delete(flow.grantId);
    }
  };

  return {
    issuer,
    port,
    tokenFor,
    jwks: () => ({ keys: signingKeys.map(publicJwk) }),
    async rotateKeys() {
      signingKeys.unshift(await newSigningKey(signingKeys[0]!.alg));
      install();
    },
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}

/** Walks the browser's part of the flow (redirects with cookies) until the redirect to the client. */
async function followToCallback(start: URL): Promise<URL> {
  const cookies = new Map<string, string>();
  let url = start;
  for (let hop = 0; hop < 10; hop++) {
    const res = await fetch(url, {
      redirect: 'manual',
      headers: { cookie: [...cookies].map(([k, v]) => `${k}=${v}`).join('; ') },
    });
    for (const line of res.headers.getSetCookie()) {
      const [pair = ''] = line.split(';');
      const eq = pair.indexOf('=');
      if (eq > 0) cookies.set(pair.slice(0, eq).trim(), pair.slice(eq + 1).trim());
    }
    await res.body?.cancel();
    const location = res.headers.get('location');
    if (res.status < 300 || res.status >= 400 || location === null) {
      throw new Error(`dev IdP login stopped at HTTP ${res.status} (${url.pathname})`);
    }
    const next = new URL(location, url);
    if (next.href.startsWith(REDIRECT_URI)) return next;
    url = next;
  }
  throw new Error('dev IdP login did not reach the client callback');
}

/**
 * The audience of an access token for `resource` (RFC 8707): Chaperone's own `urn:` form names an
 * audience; an http(s) URL (an MCP target) is its own audience. Anything else is not a resource here.
 */
function audienceOfResource(resource: string): string | null {
  if (resource.startsWith(AUDIENCE_RESOURCE_PREFIX))
    return decodeURIComponent(resource.slice(AUDIENCE_RESOURCE_PREFIX.length));
  try {
    const url = new URL(resource);
    return url.protocol === 'http:' || url.protocol === 'https:' ? resource : null;
  } catch {
    return null;
  }
}

/** `user=<sub>` from the login page's form post. */
async function pickedUser(req: IncomingMessage): Promise<string | null> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > 4096) return null;
    chunks.push(chunk as Buffer);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8')).get('user');
}

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** The dev login: a button per demo user, posted back to the same interaction. */
function loginPage(res: ServerResponse, action: string, users: DevUser[], clientId: string): void {
  const buttons = users
    .map(
      (u) =>
        `<button type="submit" name="user" value="${escapeHtml(u.sub)}">${escapeHtml(u.sub)} (${escapeHtml(u.groups.join(', '))})</button>`,
    )
    .join('\n');
  res.statusCode = 200;
  res.setHeader('content-type', 'text/html; charset=utf-8');
  res.setHeader('cache-control', 'no-store');
  res.end(`<!doctype html>
<html><head><title>Chaperone dev sign-in</title></head>
<body><h1>Chaperone dev issuer</h1>
<p>${escapeHtml(clientId)} asks to act for you. Sign in as a demo user (dev mode: no passwords).</p>
<form method="post" action="${escapeHtml(action)}">
${buttons}
</form></body></html>`);
}

function userClaims(user: DevUser): Record<string, unknown> {
  return {
    ...user.claims,
    sub: user.sub,
    groups: [...user.groups],
    ...(user.email !== undefined ? { email: user.email } : {}),
    ...(user.name !== undefined ? { name: user.name } : {}),
  };
}

async function newSigningKey(alg = 'RS256'): Promise<JWK> {
  const { privateKey } = await generateKeyPair(alg, { extractable: true });
  const jwk = await exportJWK(privateKey);
  return { ...jwk, alg, use: 'sig', kid: randomBytes(8).toString('hex') };
}

function publicJwk(jwk: JWK): JWK {
  const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, oth: _oth, ...pub } = jwk;
  return pub;
}

/** oidc-provider's storage, in memory and private to this instance (its own one warns as "not for production"). */
function memoryAdapter() {
  const store = new Map<string, { payload: Record<string, unknown>; expiresAt: number }>();
  const live = (key: string) => {
    const entry = store.get(key);
    if (!entry) return undefined;
    if (Date.now() >= entry.expiresAt) {
      store.delete(key);
      return undefined;
    }
    return entry.payload;
  };
  return class DevMemoryAdapter {
    constructor(readonly model: string) {}
    private key(id: string) {
      return `${this.model}:${id}`;
    }
    async upsert(id: string, payload: Record<string, unknown>, expiresIn?: number) {
      const expiresAt = expiresIn ? Date.now() + expiresIn * 1000 : Number.POSITIVE_INFINITY;
      store.set(this.key(id), { payload, expiresAt });
      if (typeof payload['uid'] === 'string')
        store.set(`uid:${payload['uid']}`, { payload: { id }, expiresAt });
      if (typeof payload['userCode'] === 'string') {
        store.set(`userCode:${payload['userCode']}`, { payload: { id }, expiresAt });
      }
      if (typeof payload['grantId'] === 'string') {
        const gkey = `grant:${payload['grantId']}`;
        const list = (live(gkey)?.['keys'] as string[] | undefined) ?? [];
        store.set(gkey, { payload: { keys: [...list, this.key(id)] }, expiresAt: Number.POSITIVE_INFINITY });
      }
    }
    async find(id: string) {
      return live(this.key(id));
    }
    async findByUid(uid: string) {
      const ref = live(`uid:${uid}`);
      return typeof ref?.['id'] === 'string' ? this.find(ref['id']) : undefined;
    }
    async findByUserCode(userCode: string) {
      const ref = live(`userCode:${userCode}`);
      return typeof ref?.['id'] === 'string' ? this.find(ref['id']) : undefined;
    }
    async consume(id: string) {
      const payload = live(this.key(id));
      if (payload) payload['consumed'] = Math.floor(Date.now() / 1000);
    }
    async destroy(id: string) {
      store.delete(this.key(id));
    }
    async revokeByGrantId(grantId: string) {
      for (const key of (live(`grant:${grantId}`)?.['keys'] as string[] | undefined) ?? []) store.delete(key);
      store.delete(`grant:${grantId}`);
    }
  };
}
