// Evaluation only: the bare Check floor of bench/authz/grpc-floor.ts on @connectrpc/connect-node
// (gRPC protocol over node:http2) with the codecs protoc-gen-es generates from Envoy's protos. It
// answers OK without any policy, like the other floors; `json` also converts each request into the
// plain JSON shape the Check pipeline reads (what wiring connect into the server would add).
// Set up with `node bench/authz/connect-eval/setup.mjs`.
// Usage: node bench/authz/connect-eval/connect-floor.mjs <host:port> [raw|json]
import { createServer } from 'node:http2';
import { create, toJson } from '@bufbuild/protobuf';
import { connectNodeAdapter } from '@connectrpc/connect-node';
import {
  Authorization,
  CheckRequestSchema,
  CheckResponseSchema,
} from './gen/envoy/service/auth/v3/external_auth_pb.js';

const [address, mode = 'raw'] = process.argv.slice(2);
if (!address) {
  process.stderr.write('usage: connect-floor.mjs <host:port> [raw|json]\n');
  process.exit(2);
}
const ok = create(CheckResponseSchema, {
  status: { code: 0 },
  httpResponse: { case: 'okResponse', value: {} },
});
const handler = connectNodeAdapter({
  grpc: true,
  grpcWeb: false,
  connect: false,
  readMaxBytes: 16 * 1024 * 1024,
  routes: (router) =>
    router.service(Authorization, {
      check: async (request) => {
        if (mode === 'json') toJson(CheckRequestSchema, request);
        return ok;
      },
    }),
});
const sep = address.lastIndexOf(':');
const server = createServer(handler);
server.listen(Number(address.slice(sep + 1)), address.slice(0, sep), () =>
  process.stderr.write(`connect floor (${mode}) listening on ${address}\n`),
);
process.once('SIGTERM', () => server.close(() => process.exit(0)));
