// IdentityVerifier against a real OpenID provider (the dev IdP: oidc-provider, tokens from an
// authorization-code + PKCE flow): what verifies, every way a token is refused and with which code,
// key rotation and the refresh limits that protect the IdP, an IdP outage, and the verified-token
// cache. Fetches go through an injected counting `fetch`; time moves through an injected clock.
import { decodeJwt, decodeProtectedHeader, exportJWK, generateKeyPair, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  IdentityConfigError,
  type IdentityOptions,
  type IdentityResult,
  IdentityVerifier,
} from '../../identity/verifier.ts';
import { type OidcProvider, startOidcProvider } from '../support/oidc-provider.ts';
import { waitFor } from '../support/wait.ts';

const USERS = [
  { sub: 'alice', groups: ['engineering', 'oncall'], email: 'alice@example.test', name: 'Alice' },
  { sub: 'bob', groups: ['sales'] },
];
const AUDIENCE = 'chaperone';

/** A fetch that records every URL it is asked for and can be told the network is down. */
function countingFetch() {
  const urls: string[] = [];
  const impl: typeof fetch = (input, init) => {
    urls.push(String(input instanceof Request ? input.url : input));
    return fetch(input, init);
  };
  return {
    impl,
    urls,
    count: (suffix: string) => urls.filter((u) => u.endsWith(suffix)).length,
  };
}

function expectFailure(res: IdentityResult, code: string, token?: string) {
  expect(res.ok).toBe(false);
  if (res.ok) return;
  expect(res.code).toBe(code);
  expect(res.reason.length).toBeGreaterThan(0);
  expect(res.reason.length).toBeLessThan(120);
  if (token) {
    for (const part of token.split('.')) if (part.length > 8) expect(res.reason).not.toContain(part);
  }
}

function bearer(token: string): Record<string, string> {
  return { authorization: `Bearer ${token}` };
}

/** base64url of a JSON object, for hand-built hostile tokens. */
function b64(obj: unknown): string {
  return Buffer.from(JSON.stringify(obj)).toString('base64url');
}

/** Flips one character in the middle of the signature: same header and payload, broken signature. */
function flipSignature(token: string): string {
  const [h, p, s = ''] = token.split('.');
  const i = Math.floor(s.length / 2);
  const flipped = s[i] === 'A' ? 'B' : 'A';
  return `${h}.${p}.${s.slice(0, i)}${flipped}${s.slice(i + 1)}`;
}

async function rsaKey(kid: string) {
  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  return { privateKey, jwk: { ...(await exportJWK(privateKey)), kid, alg: 'RS256', use: 'sig' } };
}

describe('IdentityVerifier against a real OpenID provider', () => {
  let idp: OidcProvider;
  let otherIdp: OidcProvider;

  beforeAll(async () => {
    idp = await startOidcProvider({ users: USERS, audience: AUDIENCE });
    otherIdp = await startOidcProvider({ users: USERS, audience: AUDIENCE });
  });
  afterAll(async () => {
    await idp?.close();
    await otherIdp?.close();
  });

  function verifier(
    extra: Partial<IdentityOptions> = {},
    issuer: Partial<IdentityOptions['issuers'][0]> = {},
  ) {
    return new IdentityVerifier({
      issuers: [{ issuer: idp.issuer, audiences: [AUDIENCE], ...issuer }],
      ...extra,
    });
  }

  describe('accepts', () => {
    it('a token from the provider and returns the identity the policy sees', async () => {
      const token = await idp.tokenFor('alice', { ttlSec: 300 });
      const res = await verifier().verify(bearer(token));
      expect(res.ok).toBe(true);
      if (!res.ok) return;
      const { identity } = res;
      expect(identity).toMatchObject({
        issuer: idp.issuer,
        subject: 'alice',
        audience: [AUDIENCE],
        email: 'alice@example.test',
        name: 'Alice',
        groups: ['engineering', 'oncall'],
        actor: null,
      });
      const claims = decodeJwt(token);
      expect(identity.token_id).toBe(claims.jti);
      expect(identity.expires_at).toBe(claims.exp);
      expect(identity.expires_at - Date.now() / 1000).toBeGreaterThan(250);
      expect(identity.claims['client_id']).toBe('chaperone-dev-cli');
      expect(Object.isFrozen(identity)).toBe(true);
    });

    it('a user without email, name or groups extras: nulls, not undefined', async () => {
      const res = await verifier().verify(bearer(await idp.tokenFor('bob')));
      expect(res.ok && res.identity).toMatchObject({
        subject: 'bob',
        email: null,
        name: null,
        groups: ['sales'],
      });
    });

    it('the Bearer scheme in any case and with extra spaces', async () => {
      const token = await idp.tokenFor('alice');
      const v = verifier();
      for (const value of [`bearer ${token}`, `BEARER ${token}`, `Bearer   ${token}`]) {
        expect((await v.verify({ authorization: value })).ok).toBe(true);
      }
    });

    it('the RFC 8693 act claim as the actor', async () => {
      const token = await idp.tokenFor('alice', {
        claims: { act: { sub: 'agent-7', agent: 'release-bot', run_id: 'run-42' } },
      });
      const res = await verifier().verify(bearer(token));
      expect(res.ok && res.identity.actor).toEqual({
        sub: 'agent-7',
        agent: 'release-bot',
        run_id: 'run-42',
      });
    });

    it('groups from a dot path, a single string, or a literal dotted key', async () => {
      const nested = await idp.tokenFor('alice', { claims: { realm_access: { roles: ['admin', 'dev'] } } });
      const res = await verifier({}, { groupsClaim: 'realm_access.roles' }).verify(bearer(nested));
      expect(res.ok && res.identity.groups).toEqual(['admin', 'dev']);

      const single = await idp.tokenFor('alice', { claims: { team: 'platform' } });
      const one = await verifier({}, { groupsClaim: 'team' }).verify(bearer(single));
      expect(one.ok && one.identity.groups).toEqual(['platform']);

      const dotted = await idp.tokenFor('alice', { claims: { 'https://example.test/groups': ['x'] } });
      const lit = await verifier({}, { groupsClaim: 'https://example.test/groups' }).verify(bearer(dotted));
      expect(lit.ok && lit.identity.groups).toEqual(['x']);

      const absent = await verifier({}, { groupsClaim: 'no.such.path' }).verify(bearer(single));
      expect(absent.ok && absent.identity.groups).toEqual([]);
    });

    it('a token from a custom header, raw', async () => {
      const token = await idp.tokenFor('alice');
      const v = verifier({ tokenHeader: 'X-Agent-Token' });
      expect((await v.verify({ 'x-agent-token': token })).ok).toBe(true);
      expectFailure(await v.verify(bearer(token)), 'ERR_TOKEN_MISSING');
    });

    it('an audience from a list, and expiry within the clock tolerance', async () => {
      const token = await idp.tokenFor('alice', { audience: 'second-gateway', ttlSec: -10 });
      const res = await verifier(
        { clockToleranceSec: 30 },
        { audiences: [AUDIENCE, 'second-gateway'] },
      ).verify(bearer(token));
      expect(res.ok).toBe(true);
    });
  });

  describe("the person's issuer (a person is issuer and subject)", () => {
    const aliceOfOther = (iss: string) => ({ format: 'iss_sub', iss, sub: 'alice' });

    it('a person token names its own issuer; a sub_id it carries is not believed', async () => {
      // Any IdP could claim to speak for another issuer's alice: only Chaperone's agent issuer may.
      const token = await idp.tokenFor('alice', { claims: { sub_id: aliceOfOther(otherIdp.issuer) } });
      const res = await verifier().verify(bearer(token));
      expect(res.ok && [res.identity.issuer, res.identity.subject_issuer]).toEqual([idp.issuer, idp.issuer]);
    });

    it("the agent issuer's token names the person's issuer from its sub_id", async () => {
      const token = await idp.tokenFor('alice', {
        claims: { sub_id: aliceOfOther(otherIdp.issuer), act: { sub: 'agent:bot', agent: 'bot' } },
      });
      const res = await verifier({}, { agentIssuer: true }).verify(bearer(token));
      expect(res.ok && res.identity).toMatchObject({
        issuer: idp.issuer,
        subject: 'alice',
        subject_issuer: otherIdp.issuer,
      });
    });

    it("the agent issuer's token without a well-formed sub_id naming its own sub is refused", async () => {
      const v = verifier({}, { agentIssuer: true });
      for (const sub_id of [
        undefined,
        'alice',
        { format: 'email', email: 'alice@example.test' },
        { format: 'iss_sub', iss: '', sub: 'alice' },
        { format: 'iss_sub', iss: otherIdp.issuer, sub: 'mallory' },
        { format: 'iss_sub', iss: 42, sub: 'alice' },
      ]) {
        const token = await idp.tokenFor('alice', { claims: { sub_id } });
        expectFailure(await v.verify(bearer(token)), 'ERR_TOKEN_CLAIMS', token);
      }
    });
  });

  describe('refuses', () => {
    it('a missing or empty token, and a non-Bearer scheme', async () => {
      const v = verifier();
      expectFailure(await v.verify({}), 'ERR_TOKEN_MISSING');
      expectFailure(await v.verify({ authorization: '' }), 'ERR_TOKEN_MISSING');
      expectFailure(await v.verify({ authorization: 'Bearer    ' }), 'ERR_TOKEN_MISSING');
      expectFailure(await v.verify({ authorization: 'Basic YWxpY2U6c2VjcmV0' }), 'ERR_TOKEN_MALFORMED');
    });

    it('malformed tokens', async () => {
      const v = verifier();
      const real = await idp.tokenFor('alice');
      const [h, p] = real.split('.');
      const hostile = [
        'not-a-jwt',
        'a.b.c',
        `${h}.${p}`,
        `${h}.${p}.sig.extra`,
        `${h}.${p}.sig.extra.more`, // JWE-shaped
        `${b64({ alg: 'RS256' })}.not-json.sig`,
        `${b64({ alg: 'RS256' })}.${b64(['array'])}.sig`,
        `${h}.${p}.${'*'.repeat(20)}`,
        '...',
      ];
      for (const token of hostile) expectFailure(await v.verify(bearer(token)), 'ERR_TOKEN_MALFORMED');
      // Well-formed but with an empty or foreign signature: a signature failure, not a parse failure.
      expectFailure(await v.verify(bearer(`${h}.${p}.`)), 'ERR_TOKEN_SIGNATURE');
      expectFailure(await v.verify(bearer(`${h}.${p}.c2ln`)), 'ERR_TOKEN_SIGNATURE');
    });

    it('an expired token, and the tolerance never stretches past 60 s', async () => {
      const token = await idp.tokenFor('alice', { ttlSec: -600 });
      expectFailure(await verifier().verify(bearer(token)), 'ERR_TOKEN_EXPIRED', token);
      expectFailure(
        await verifier({ clockToleranceSec: 3600 }).verify(bearer(token)),
        'ERR_TOKEN_EXPIRED',
        token,
      );
      const justExpired = await idp.tokenFor('alice', { ttlSec: -90 });
      expectFailure(
        await verifier({ clockToleranceSec: 3600 }).verify(bearer(justExpired)),
        'ERR_TOKEN_EXPIRED',
      );
    });

    it('a token not valid yet (nbf or iat beyond the tolerance), but accepts one within it', async () => {
      const now = Math.floor(Date.now() / 1000);
      const v = verifier();
      const future = await idp.tokenFor('alice', { claims: { nbf: now + 300 } });
      expectFailure(await v.verify(bearer(future)), 'ERR_TOKEN_NOT_YET_VALID', future);
      const issuedLater = await idp.tokenFor('alice', { claims: { iat: now + 600, exp: now + 1200 } });
      expectFailure(await v.verify(bearer(issuedLater)), 'ERR_TOKEN_NOT_YET_VALID', issuedLater);
      const slightSkew = await idp.tokenFor('alice', { claims: { nbf: now + 10 } });
      expect((await v.verify(bearer(slightSkew))).ok).toBe(true);
    });

    it('a token for another audience', async () => {
      const token = await idp.tokenFor('alice', { audience: 'some-other-api' });
      expectFailure(await verifier().verify(bearer(token)), 'ERR_TOKEN_AUDIENCE', token);
    });

    it('a token from an issuer that is not configured', async () => {
      const token = await otherIdp.tokenFor('alice');
      expectFailure(await verifier().verify(bearer(token)), 'ERR_TOKEN_ISSUER', token);
    });

    it("a token claiming a trusted issuer but signed by another issuer's key", async () => {
      const token = await otherIdp.tokenFor('alice', { claims: { iss: idp.issuer } });
      expect(decodeJwt(token).iss).toBe(idp.issuer);
      expectFailure(await verifier().verify(bearer(token)), 'ERR_TOKEN_SIGNATURE', token);
    });

    it('a forged signature', async () => {
      const v = verifier();
      const token = await idp.tokenFor('alice');
      expect((await v.verify(bearer(token))).ok).toBe(true);
      const forged = flipSignature(token);
      expectFailure(await v.verify(bearer(forged)), 'ERR_TOKEN_SIGNATURE', forged);
      // A changed payload under the original signature: the classic privilege edit.
      const [h, , s] = token.split('.');
      const escalated = `${h}.${b64({ ...decodeJwt(token), groups: ['admin'] })}.${s}`;
      expectFailure(await v.verify(bearer(escalated)), 'ERR_TOKEN_SIGNATURE', escalated);
    });

    it('alg "none" without looking up a key', async () => {
      const fetches = countingFetch();
      const v = verifier({ fetch: fetches.impl });
      const payload = decodeJwt(await idp.tokenFor('alice'));
      for (const alg of ['none', 'None', 'NONE']) {
        const token = `${b64({ alg, typ: 'JWT' })}.${b64(payload)}.`;
        expectFailure(await v.verify(bearer(token)), 'ERR_TOKEN_ALG', token);
      }
      expectFailure(await v.verify(bearer(`${b64({ typ: 'JWT' })}.${b64(payload)}.`)), 'ERR_TOKEN_ALG');
      expect(fetches.urls).toEqual([]);
    });

    it('HS256 signed with a guessed secret or with the public key (alg confusion)', async () => {
      const fetches = countingFetch();
      const v = verifier({ fetch: fetches.impl });
      const real = await idp.tokenFor('alice');
      const { kid } = decodeProtectedHeader(real);
      const payload = decodeJwt(real);
      const secrets = ['secret', 'chaperone', JSON.stringify(idp.jwks().keys[0])];
      for (const alg of ['HS256', 'HS384', 'HS512']) {
        for (const secret of secrets) {
          const token = await new SignJWT(payload)
            .setProtectedHeader({ alg, kid: kid ?? 'x', typ: 'JWT' })
            .sign(new TextEncoder().encode(secret));
          expectFailure(await v.verify(bearer(token)), 'ERR_TOKEN_ALG', token);
        }
      }
      expect(fetches.urls).toEqual([]);
    });

    it('an asymmetric algorithm the issuer does not allow', async () => {
      const token = await idp.tokenFor('alice');
      expectFailure(await verifier({}, { algorithms: ['ES256'] }).verify(bearer(token)), 'ERR_TOKEN_ALG');
    });

    it('claims of the wrong shape, and a token without exp', async () => {
      const v = verifier();
      const badGroups = await idp.tokenFor('alice', { claims: { groups: [1, 2] } });
      expectFailure(await v.verify(bearer(badGroups)), 'ERR_TOKEN_CLAIMS');
      const badAct = await idp.tokenFor('alice', { claims: { act: { agent: 'no-sub' } } });
      expectFailure(await v.verify(bearer(badAct)), 'ERR_TOKEN_CLAIMS');
      const noExp = await idp.tokenFor('alice', { claims: { exp: undefined } });
      expect(decodeJwt(noExp).exp).toBeUndefined();
      expectFailure(await v.verify(bearer(noExp)), 'ERR_TOKEN_CLAIMS');
    });

    it('HS*/none in the configuration: the verifier does not start', () => {
      for (const alg of ['HS256', 'none']) {
        expect(() => verifier({}, { algorithms: ['RS256', alg] })).toThrow(IdentityConfigError);
      }
      expect(() => verifier({}, { audiences: [] })).toThrow(IdentityConfigError);
    });
  });

  describe('keys', () => {
    it('discovery must name the configured issuer', async () => {
      const v = verifier({}, { issuer: `${idp.issuer}/` });
      await expect(v.warmUp()).rejects.toThrow(/does not match/);
    });

    it('an explicit jwksUri skips discovery', async () => {
      const fetches = countingFetch();
      const v = verifier({ fetch: fetches.impl }, { jwksUri: `${idp.issuer}/jwks` });
      expect((await v.verify(bearer(await idp.tokenFor('alice')))).ok).toBe(true);
      expect(fetches.urls).toEqual([`${idp.issuer}/jwks`]);
    });

    it('rotation: a new kid verifies after one refresh; a burst of unknown kids costs one fetch per interval', async () => {
      const rotating = await startOidcProvider({ users: USERS, audience: AUDIENCE });
      try {
        const fetches = countingFetch();
        let clock = Date.now();
        const v = new IdentityVerifier({
          issuers: [{ issuer: rotating.issuer, audiences: [AUDIENCE] }],
          fetch: fetches.impl,
          now: () => clock,
          jwksRefreshMinIntervalMs: 30_000,
        });
        await v.warmUp();
        const jwks = () => fetches.count('/jwks');
        expect(jwks()).toBe(1);
        expect(fetches.count('/.well-known/openid-configuration')).toBe(1);

        const before = await rotating.tokenFor('alice');
        await rotating.rotateKeys();
        const after = await rotating.tokenFor('alice');
        expect(decodeProtectedHeader(after).kid).not.toBe(decodeProtectedHeader(before).kid);
        expect((await v.verify(bearer(before))).ok).toBe(true);
        expect((await v.verify(bearer(after))).ok).toBe(true);
        expect(jwks()).toBe(2);

        // Unknown kids (signed by keys the issuer never published) arriving together.
        const payload = decodeJwt(after);
        const { privateKey } = await rsaKey('unpublished');
        const burst = await Promise.all(
          Array.from({ length: 20 }, (_, i) =>
            new SignJWT({ ...payload, jti: `forged-${i}` })
              .setProtectedHeader({ alg: 'RS256', kid: `unknown-${i}` })
              .sign(privateKey),
          ),
        );
        clock += 30_001;
        const results = await Promise.all(burst.map((t) => v.verify(bearer(t))));
        for (const r of results) expectFailure(r, 'ERR_TOKEN_SIGNATURE');
        expect(jwks()).toBe(3);
        // Within the interval: refused without asking the IdP.
        clock += 10_000;
        for (const r of await Promise.all(burst.map((t) => v.verify(bearer(t))))) {
          expectFailure(r, 'ERR_TOKEN_SIGNATURE');
        }
        expect(jwks()).toBe(3);
        // The next interval allows exactly one more refresh.
        clock += 20_001;
        await Promise.all(burst.map((t) => v.verify(bearer(t))));
        expect(jwks()).toBe(4);
        expect(fetches.count('/.well-known/openid-configuration')).toBe(1);
      } finally {
        await rotating.close();
      }
    });

    it('old keys are re-fetched in the background; the request does not wait for it', async () => {
      const fetches = countingFetch();
      let release: () => void = () => undefined;
      const held = new Promise<void>((r) => {
        release = r;
      });
      let hold = false;
      // The IdP answers the re-fetch only when the test says so: verify must not be waiting on it.
      const slowFetch: typeof fetch = async (input, init) => {
        if (hold) await held;
        return fetches.impl(input, init);
      };
      let clock = Date.now();
      const v = verifier({ fetch: slowFetch, now: () => clock });
      await v.warmUp();
      const token = await idp.tokenFor('alice');
      hold = true;
      clock += 10 * 60_000 + 1;
      expect((await v.verify(bearer(token))).ok).toBe(true);
      expect(fetches.count('/jwks')).toBe(1);
      release();
      await waitFor(() => fetches.count('/jwks') === 2, {
        what: 'background JWKS refresh',
        timeoutMs: 5_000,
      });
      expect(v.stats()).toMatchObject({ discoveryFetches: 1, jwksFetches: 2 });
    });

    it('IdP down: ERR_JWKS_UNAVAILABLE, bounded retries, then recovery; known keys keep serving', async () => {
      const { jwk } = await rsaKey('outage-key');
      let flaky = await startOidcProvider({ users: USERS, audience: AUDIENCE, signingKey: jwk });
      const { port, issuer } = flaky;
      const token = await flaky.tokenFor('alice');
      const fetches = countingFetch();
      let clock = Date.now();
      const options: IdentityOptions = {
        issuers: [{ issuer, audiences: [AUDIENCE] }],
        fetch: fetches.impl,
        now: () => clock,
      };
      try {
        // A verifier that already holds the keys keeps verifying through the outage...
        const warm = new IdentityVerifier(options);
        await warm.warmUp();
        await flaky.close();
        const cold = new IdentityVerifier(options);
        const seen = fetches.urls.length;

        expect((await warm.verify(bearer(token))).ok).toBe(true);
        // ...while one that has none fails closed with a code that says why.
        expectFailure(await cold.verify(bearer(token)), 'ERR_JWKS_UNAVAILABLE', token);
        const afterFirstFailure = fetches.urls.length;
        expect(afterFirstFailure).toBe(seen + 1);
        // Requests right after a failure do not hammer the IdP.
        for (let i = 0; i < 5; i++) expectFailure(await cold.verify(bearer(token)), 'ERR_JWKS_UNAVAILABLE');
        expect(fetches.urls.length).toBe(afterFirstFailure);
        // An unknown kid on the warm verifier cannot refresh either: unavailable, not "bad signature".
        const { privateKey, jwk: other } = await rsaKey('new-after-outage');
        const newKid = await new SignJWT(decodeJwt(token))
          .setProtectedHeader({ alg: 'RS256', kid: other.kid! })
          .sign(privateKey);
        expectFailure(await warm.verify(bearer(newKid)), 'ERR_JWKS_UNAVAILABLE');

        flaky = await startOidcProvider({ users: USERS, audience: AUDIENCE, signingKey: jwk, port });
        expect(flaky.issuer).toBe(issuer);
        clock += 1_001;
        const recovered = await cold.verify(bearer(token));
        expect(recovered.ok).toBe(true);
        expect(cold.stats().discoveryFetches).toBe(2);
      } finally {
        await flaky.close();
      }
    });
  });

  describe('cache', () => {
    it('the same token twice is verified once; concurrent first uses share one verification', async () => {
      const v = verifier();
      const token = await idp.tokenFor('alice');
      const first = await v.verify(bearer(token));
      const second = await v.verify(bearer(token));
      expect(first.ok && second.ok).toBe(true);
      expect(v.stats()).toMatchObject({ verifications: 1, cacheHits: 1, cacheSize: 1 });
      if (first.ok && second.ok) expect(second.identity).toBe(first.identity);

      const fresh = verifier();
      const other = await idp.tokenFor('bob');
      const all = await Promise.all(Array.from({ length: 10 }, () => fresh.verify(bearer(other))));
      expect(all.every((r) => r.ok)).toBe(true);
      expect(fresh.stats().verifications).toBe(1);
    });

    it('a cached token still expires on time, and failures are not cached', async () => {
      let clock = Date.now();
      const v = verifier({ now: () => clock, clockToleranceSec: 30 });
      const token = await idp.tokenFor('alice', { ttlSec: 60 });
      expect((await v.verify(bearer(token))).ok).toBe(true);
      clock += 60_000;
      expect((await v.verify(bearer(token))).ok).toBe(true);
      expect(v.stats().verifications).toBe(1);
      clock += 31_000;
      expectFailure(await v.verify(bearer(token)), 'ERR_TOKEN_EXPIRED');
      expect(v.stats().cacheSize).toBe(0);

      const forged = flipSignature(await idp.tokenFor('alice'));
      const before = v.stats().verifications;
      expectFailure(await v.verify(bearer(forged)), 'ERR_TOKEN_SIGNATURE');
      expectFailure(await v.verify(bearer(forged)), 'ERR_TOKEN_SIGNATURE');
      expect(v.stats().verifications).toBe(before + 2);
      expect(v.stats().cacheSize).toBe(0);
    });

    it('is bounded', async () => {
      const v = verifier({ cache: { maxEntries: 2 } });
      const tokens = await Promise.all(['alice', 'bob', 'alice'].map((s) => idp.tokenFor(s)));
      for (const t of tokens) expect((await v.verify(bearer(t))).ok).toBe(true);
      expect(v.stats().cacheSize).toBe(2);
      // The oldest went first: verifying it again is a miss.
      await v.verify(bearer(tokens[0]!));
      expect(v.stats()).toMatchObject({ verifications: 4, cacheHits: 0 });
    });
  });
});
