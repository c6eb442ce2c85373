// Step 1, resolveRoute: the decision id, the start time, the request headers (read the one way the
// policy input reads them) and the route Envoy matched (from context_extensions). Cannot fail: a
// request too broken to read is refused by buildInput, with its reason.
import { randomUUID } from 'node:crypto';
import { decodeRouteContext } from '../../contracts/ext-authz.ts';
import { readRequestHeaders } from '../input/request-headers.ts';
import type { CheckState, HttpAttrs } from './check-state.ts';

function objectAt(v: unknown, key: string): Record<string, unknown> | undefined {
  const child = v !== null && typeof v === 'object' ? (v as Record<string, unknown>)[key] : undefined;
  return child !== null && typeof child === 'object' ? (child as Record<string, unknown>) : undefined;
}

export function resolveRoute(req: unknown): CheckState {
  const attrs = objectAt(req, 'attributes');
  const http = objectAt(objectAt(attrs, 'request'), 'http') ?? {};
  const route = decodeRouteContext(attrs?.['contextExtensions']);
  return {
    decisionId: randomUUID(),
    started: process.hrtime.bigint(),
    http: http as HttpAttrs,
    headers: readRequestHeaders(http),
    routeId: route.routeId,
    target: route.target,
    resource: route.oauthResource?.resource ?? null,
  };
}
