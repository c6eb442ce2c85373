// The HTTP API's whole route table (every area, dev tokens included) built over stub dependencies, so
// suites can iterate over every route without a running gateway. A stub that is reached throws and is
// counted: a suite can tell "refused before the handler" from "the handler ran".

import type { Caller, Route } from '../../api/route.ts';
import { apiRoutes } from '../../api/routes/index.ts';

/** An object whose every method throws "stub <name>.<method> reached" and records the call. */
export function stub<T>(name: string, calls: string[]): T {
  return new Proxy(
    {},
    {
      get: (_target, prop) => {
        if (prop === 'then') return undefined; // not a thenable
        return () => {
          calls.push(`${name}.${String(prop)}`);
          throw new Error(`stub ${name}.${String(prop)} reached`);
        };
      },
    },
  ) as T;
}

/** Every route of the API; `calls` collects the stubbed dependencies the handlers reached. */
export function routeCatalog(calls: string[] = []): Route[] {
  return apiRoutes({
    health: stub('health', calls),
    audit: { trail: stub('trail', calls), entrypoint: 'chaperone/authz/decision' },
    approvals: stub('approvals', calls),
    agents: { issuer: 'http://127.0.0.1:8181', keys: stub('keys', calls), registry: stub('registry', calls) },
    recordAdmin: async () => {
      calls.push('recordAdmin');
    },
    dev: { users: ['alice'], tokenFor: stub<{ tokenFor: () => Promise<string> }>('dev', calls).tokenFor },
    console: {
      sessions: stub('sessions', calls),
      signIn: stub('signIn', calls),
      approvals: stub('approvals', calls),
      agents: stub('registry', calls),
      trail: stub('trail', calls),
      outbox: stub('outbox', calls),
      status: stub<{ status: () => Record<string, unknown> }>('health', calls).status,
    },
  });
}

export const isAnonymous = (c: Caller) => c === 'anonymous';
