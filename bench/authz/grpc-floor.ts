// The Node gRPC floor: a bare @grpc/grpc-js Check server that decodes the request with the same
// loader options as the authz server and answers OK at once, without any policy. Measured with
// `--sides node-floor`, it shows the most any Node server on @grpc/grpc-js can do on this machine,
// so our figures can be read against the transport's ceiling, not only against OPA-Envoy.
// Usage: node --import tsx bench/authz/grpc-floor.ts <host:port>
import * as grpc from '@grpc/grpc-js';
import { EXT_AUTHZ_PROTO, loadEnvoyProtos, lookup } from '../../lib/envoy-proto.ts';

const address = process.argv[2];
if (!address) {
  process.stderr.write('usage: grpc-floor.ts <host:port>\n');
  process.exit(2);
}
const root = loadEnvoyProtos([EXT_AUTHZ_PROTO]);
const authorization = lookup<grpc.ServiceClientConstructor>(root, 'envoy.service.auth.v3.Authorization');
const server = new grpc.Server({ 'grpc.max_receive_message_length': 16 * 1024 * 1024 });
server.addService(authorization.service, {
  Check: (_call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) =>
    callback(null, { status: { code: 0 }, okResponse: {} }),
});
server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (err) => {
  if (err) {
    process.stderr.write(`cannot listen on ${address}: ${err.message}\n`);
    process.exit(2);
  }
  process.stderr.write(`grpc floor listening on ${address}\n`);
});
process.once('SIGTERM', () => server.tryShutdown(() => process.exit(0)));
process.once('SIGINT', () => server.tryShutdown(() => process.exit(0)));
