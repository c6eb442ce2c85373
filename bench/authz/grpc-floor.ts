// The Node gRPC floor: a bare Check server that decodes the request with the same loader options as
// the authz server and answers OK at once, without any policy. Measured with `--sides node-floor`
// (on @grpc/grpc-js) or `--sides http2-floor` (on the lean node:http2 transport of
// authz-server/transport/), it shows the most a Node server on that transport can do on this
// machine, so our figures can be read against the transport's ceiling, not only against OPA-Envoy.
// Usage: node --import tsx bench/authz/grpc-floor.ts <host:port> [grpc-js|http2]
import * as grpc from '@grpc/grpc-js';
import { authzMethods, HealthStatus } from '../../authz-server/transport/check-service.ts';
import { createUnaryGrpcServer } from '../../authz-server/transport/unary-grpc-server.ts';
import { EXT_AUTHZ_PROTO, loadEnvoyProtos, lookup } from '../../lib/envoy-proto.ts';

const [address, transport = 'grpc-js'] = process.argv.slice(2);
if (!address || (transport !== 'grpc-js' && transport !== 'http2')) {
  process.stderr.write('usage: grpc-floor.ts <host:port> [grpc-js|http2]\n');
  process.exit(2);
}
const OK = { status: { code: 0 }, okResponse: {} };
const MAX_RECEIVE = 16 * 1024 * 1024;

function listening(): void {
  process.stderr.write(`grpc floor (${transport}) listening on ${address}\n`);
}
function cannotListen(err: Error): never {
  process.stderr.write(`cannot listen on ${address}: ${err.message}\n`);
  process.exit(2);
}

let stop: () => Promise<void>;
if (transport === 'http2') {
  const server = createUnaryGrpcServer({
    methods: authzMethods(async () => OK, new HealthStatus({ '': 'SERVING' })),
    maxReceiveMessageBytes: MAX_RECEIVE,
  });
  const sep = address.lastIndexOf(':');
  await server.listen(address.slice(0, sep), Number(address.slice(sep + 1))).then(listening, cannotListen);
  stop = () => server.close();
} else {
  const root = loadEnvoyProtos([EXT_AUTHZ_PROTO]);
  const authorization = lookup<grpc.ServiceClientConstructor>(root, 'envoy.service.auth.v3.Authorization');
  const server = new grpc.Server({ 'grpc.max_receive_message_length': MAX_RECEIVE });
  server.addService(authorization.service, {
    Check: (_call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) =>
      callback(null, OK),
  });
  server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (err) =>
    err ? cannotListen(err) : listening(),
  );
  stop = () => new Promise((resolve) => server.tryShutdown(() => resolve()));
}
process.once('SIGTERM', () => void stop().then(() => process.exit(0)));
process.once('SIGINT', () => void stop().then(() => process.exit(0)));
