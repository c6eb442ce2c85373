// A single gRPC Check call, used before each measurement to prove that a server answers the case's
// requests correctly (allow → status OK, deny → PERMISSION_DENIED) and to wait for it to be ready.
import * as grpc from '@grpc/grpc-js';
import { EXT_AUTHZ_PROTO, loadEnvoyProtos, lookup } from '../../lib/envoy-proto.ts';

/** google.rpc.Code values a Check answer carries in `status.code`. */
export const RPC_OK = 0;
export const RPC_PERMISSION_DENIED = 7;

export interface CheckClient {
  /** The `status.code` of the CheckResponse (0 allow, 7 deny, anything else is an error answer). */
  statusOf(request: unknown, timeoutMs?: number): Promise<number>;
  close(): void;
}

export function checkClient(address: string): CheckClient {
  const root = loadEnvoyProtos([EXT_AUTHZ_PROTO]);
  const Ctor = lookup<grpc.ServiceClientConstructor>(root, 'envoy.service.auth.v3.Authorization');
  const client = new Ctor(address, grpc.credentials.createInsecure());
  return {
    statusOf: (request, timeoutMs = 5000) =>
      new Promise<number>((resolve, reject) => {
        client['Check'](
          request,
          { deadline: Date.now() + timeoutMs },
          (err: grpc.ServiceError | null, res: { status?: { code?: number } } | undefined) => {
            if (err) reject(err);
            // `defaults: false` leaves a zero code out of the decoded message.
            else resolve(res?.status?.code ?? RPC_OK);
          },
        );
      }),
    close: () => client.close(),
  };
}
