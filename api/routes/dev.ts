// Dev mode only (`chaperone up --dev`): a token for any demo user of the dev issuer, so the quick start
// needs no login. The gateway adds this route only in dev mode and only when the API listens on
// loopback, and the route itself answers only loopback peers; anyone on this machine can still use it,
// which is why it never exists outside --dev.
import { ApiError } from '../errors.ts';
import type { Route } from '../route.ts';

export interface DevTokenSource {
  users: readonly string[];
  tokenFor(user: string, ttlSec: number): Promise<string>;
}

const MAX_DEV_TTL_SEC = 24 * 3600;

export function devRoutes(dev: DevTokenSource): Route[] {
  return [
    {
      method: 'GET',
      path: '/dev/token',
      // Anonymous by design: the demo's way to get a first token. Loopback peers only, --dev only.
      caller: 'anonymous',
      loopbackOnly: true,
      handle: async ({ url }) => {
        const user = url.searchParams.get('user') ?? '';
        if (!dev.users.includes(user))
          return { status: 404, body: { error: 'unknown_user', users: [...dev.users] } };
        const ttl = Number(url.searchParams.get('ttl') ?? 3600);
        if (!Number.isInteger(ttl) || ttl > MAX_DEV_TTL_SEC)
          throw new ApiError(
            400,
            'invalid_ttl',
            `ttl is a whole number of seconds, at most ${MAX_DEV_TTL_SEC}`,
          );
        return { status: 200, body: { user, token: await dev.tokenFor(user, ttl), expires_in: ttl } };
      },
    },
  ];
}
