// A credential's `format` template puts the secret in literally: characters that mean something to
// String.prototype.replace (`$&`, `$'`, `` $` ``, `$$`, `$1`) stay exactly as the secret has them.
import { describe, expect, it } from 'vitest';
import { CredentialStore } from '../../authz-server/credentials/credential-store.ts';

describe('credential templates substitute literally', () => {
  const secrets = ['a$&b', "x$'y", 'p$`q', 'dollar$$dollar', 'group$1', "$&$`$'", '{}', 'plain'];
  for (const secret of secrets) {
    it(`keeps ${JSON.stringify(secret)} as is in "Bearer {}"`, async () => {
      const store = new CredentialStore(
        { t: [{ header: 'authorization', value: 'env:SECRET', format: 'Bearer {}' }] },
        { env: { SECRET: secret } },
      );
      await store.load();
      expect(store.headersFor('t')).toEqual({
        ok: true,
        headers: [{ key: 'authorization', value: `Bearer ${secret}` }],
      });
    });
  }
});
