// chaperone.yaml's policy distribution settings: `policy.signing` (OPA's keys), `policy.bundle_url` and
// `decision_logs` — normalised with OPA's defaults, file references anchored at the config file,
// and refused with the field's path when they do not make sense.
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../config/errors.ts';
import { parseConfig } from '../../config/load-config.ts';

const issues = (text: string) => {
  try {
    parseConfig(text, '/etc/chaperone/chaperone.yaml');
  } catch (err) {
    if (err instanceof ConfigError) return err.issues.map((i) => `${i.path}: ${i.message}`);
    throw err;
  }
  throw new Error('expected a ConfigError');
};

describe('policy.signing, policy.bundle_url, decision_logs', () => {
  it('normalise with defaults, relative file: references against the config file', () => {
    const c = parseConfig(
      `
policy:
  dir: rego
  bundle_url: https://bundles.example.com/b.tar.gz
  bundle_token: file:secrets/bundle-token
  signing:
    scope: write
    exclude_files: ["notes/*"]
    keys:
      ci: { key: file:keys/ci.pub.pem }
      hmac: { algorithm: HS256, key: env:BUNDLE_HMAC, scope: read }
decision_logs:
  url: https://logs.example.com/logs
  token: env:LOG_TOKEN
  reporting: { max_delay_seconds: 2 }
`,
      '/etc/chaperone/chaperone.yaml',
    );
    expect(c.policy.bundleService).toEqual({
      url: 'https://bundles.example.com/b.tar.gz',
      token: 'file:/etc/chaperone/secrets/bundle-token',
      minDelaySec: 60,
      maxDelaySec: 120,
    });
    expect(c.policy.signing).toEqual({
      keyid: null,
      scope: 'write',
      excludeFiles: ['notes/*'],
      keys: {
        ci: { algorithm: 'RS256', key: 'file:/etc/chaperone/keys/ci.pub.pem', scope: null },
        hmac: { algorithm: 'HS256', key: 'env:BUNDLE_HMAC', scope: 'read' },
      },
    });
    expect(c.decisionLogs).toEqual({
      url: 'https://logs.example.com/logs',
      token: 'env:LOG_TOKEN',
      minDelaySec: 2,
      maxDelaySec: 2,
      bufferSizeLimitBytes: 32 * 1024 * 1024,
      uploadSizeLimitBytes: 32 * 1024,
    });
  });

  it('are absent unless configured', () => {
    const c = parseConfig('', null);
    expect(c.policy.signing).toBeUndefined();
    expect(c.policy.bundleService).toBeUndefined();
    expect(c.decisionLogs).toBeUndefined();
  });

  it.each([
    ['policy: { bundle_token: env:T }', ['policy.bundle_token: needs policy.bundle_url']],
    [
      'policy: { bundle_url: "https://b.example.com/x", bundle_token: "s3cr3t" }',
      ['policy.bundle_token: must be a reference "env:NAME" or "file:/path" (inline secrets are refused)'],
    ],
    [
      'policy: { bundle_url: "https://b.example.com/x", bundle_polling: { min_delay_seconds: 10, max_delay_seconds: 5 } }',
      ['policy.bundle_polling.min_delay_seconds: must not exceed max_delay_seconds'],
    ],
    ['policy: { signing: { keys: {} } }', ['policy.signing.keys: must NOT have fewer than 1 properties']],
    [
      'policy: { signing: { keys: { k: { key: "just-a-secret" } } } }',
      ['policy.signing.keys.k.key: must be env:NAME, file:/path or an inline PEM public key'],
    ],
    [
      'policy: { signing: { keys: { k: { key: "env:K", algorithm: none } } } }',
      [
        'policy.signing.keys.k.algorithm: must be one of "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "HS256", "HS384", "HS512"',
      ],
    ],
    ['decision_logs: { url: "ftp://logs" }', ['decision_logs.url: must be an http(s) URL']],
  ])('%s is refused', (text, expected) => {
    expect(issues(text)).toEqual(expected);
  });
});
