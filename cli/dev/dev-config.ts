// The configuration `chaperone up --dev` runs: the demo upstream under /demo, the dev OIDC issuer,
// the shipped policy library and the embedded audit store. Written as chaperone.yaml text and loaded
// through the same parser and schema as a user's file, so dev mode exercises the real config path.
import { join } from 'node:path';
import { parseConfig } from '../../config/load-config.ts';
import type { Config } from '../../config/types.ts';
import { PROJECT_ROOT } from '../../lib/tools.ts';

export const DEV_DEFAULTS = {
  idpPort: 5556,
  demoUpstreamPort: 18080,
  audience: 'chaperone',
  users: [
    { sub: 'alice', groups: ['engineering'], email: 'alice@example.test', name: 'Alice Engineer' },
    { sub: 'bob', groups: ['contractors'], email: 'bob@example.test', name: 'Bob Contractor' },
    { sub: 'carol', groups: ['security'], email: 'carol@example.test', name: 'Carol Reviewer' },
  ],
} as const;

export function devConfigYaml(o: { issuer: string; demoUpstreamPort: number }): string {
  return `# chaperone up --dev (generated)
identity:
  issuers:
    - issuer: ${o.issuer}
      audiences: [${DEV_DEFAULTS.audience}]
# carol (group security) holds every role of the demo; alice and bob hold none.
access:
  admins: [security]
  auditors: [security]
  reviewers: [security]
targets:
  - name: demo
    upstream: http://127.0.0.1:${o.demoUpstreamPort}
    match:
      path_prefix: /demo
policy:
  dir: ${JSON.stringify(join(PROJECT_ROOT, 'policies'))}
  entrypoint: chaperone/authz/decision
audit:
  store: embedded
  spool_dir: .chaperone/spool
`;
}

/**
 * Parsed as if it were `./chaperone.dev.yaml`: the state (.chaperone/) goes where `up --dev` was
 * started — the checkout's root under `npm start`, never inside an installed package — while the
 * shipped policy library is named by its absolute path.
 */
export function devConfig(o: { issuer: string; demoUpstreamPort: number }): Config {
  return parseConfig(devConfigYaml(o), join(process.cwd(), 'chaperone.dev.yaml'));
}
