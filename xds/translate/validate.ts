// Checks generated resources the way publication does: each one encoded strictly against Envoy's
// own protos (an unknown field, a wrong type or a bad enum is an error, never dropped) and the
// references between them resolved. An empty list means XdsSnapshot.build will accept them.
import { type EnvoyResourcesJson, XdsSnapshot } from '../server/snapshot.ts';
import type { ResourceIssue } from './errors.ts';

export function validateResources(resources: EnvoyResourcesJson): ResourceIssue[] {
  const built = XdsSnapshot.build(resources);
  return built.ok
    ? []
    : built.errors.map((e) => ({ resource: e.resource, path: e.path, message: e.message }));
}
