// The authz server's methods on the lean transport: envoy.service.auth.v3.Authorization/Check and
// grpc.health.v1.Health/Check. The codecs are the ones @grpc/grpc-js would use — protobufjs through
// @grpc/proto-loader with the data-path loader options (lib/envoy-proto.ts) for Check, and the
// health service definition grpc-health-check ships — so the pipeline receives the very same
// request objects whichever transport carries them.
import type { ServiceClientConstructor } from '@grpc/grpc-js';
import type { MethodDefinition } from '@grpc/proto-loader';
import { service as healthService } from 'grpc-health-check';
import { EXT_AUTHZ_PROTO, loadEnvoyProtos, lookup } from '../../lib/envoy-proto.ts';
import type { CallState } from './admission.ts';
import { GrpcStatus, GrpcStatusError } from './grpc-framing.ts';
import type { UnaryMethod } from './unary-grpc-server.ts';

export type ServingStatus = 'SERVING' | 'NOT_SERVING';

/** Serving status per service name ('' is the server as a whole), as grpc.health.v1 reports it. */
export class HealthStatus {
  private readonly statuses: Map<string, ServingStatus>;
  constructor(initial: Record<string, ServingStatus>) {
    this.statuses = new Map(Object.entries(initial));
  }
  set(service: string, status: ServingStatus): void {
    this.statuses.set(service, status);
  }
  get(service: string): ServingStatus | undefined {
    return this.statuses.get(service);
  }
}

function fromDefinition<Req, Res>(
  def: MethodDefinition<Req, Res>,
  handle: UnaryMethod<Req, Res>['handle'],
): UnaryMethod<Req, Res> {
  return {
    path: def.path,
    decode: (bytes) => def.requestDeserialize(bytes),
    encode: (response) => def.responseSerialize(response),
    handle,
  };
}

/** Check with the given handler (CheckPipeline.check), plus the health Check over `health`. */
export function authzMethods(
  check: (request: unknown, call: CallState) => Promise<unknown>,
  health: HealthStatus,
): UnaryMethod[] {
  const authorization = lookup<ServiceClientConstructor>(
    loadEnvoyProtos([EXT_AUTHZ_PROTO]),
    'envoy.service.auth.v3.Authorization',
  );
  const checkDef = authorization.service['Check'] as MethodDefinition<unknown, unknown>;
  const healthCheckDef = healthService['Check'] as MethodDefinition<{ service?: string }, { status: string }>;
  return [
    fromDefinition(checkDef, check),
    fromDefinition(healthCheckDef, (req) => {
      const service = req.service ?? '';
      const status = health.get(service);
      // grpc-health-check's answer for a service it does not know.
      if (!status)
        throw new GrpcStatusError(GrpcStatus.NOT_FOUND, `Health status unknown for service ${service}`);
      return { status };
    }),
  ];
}
