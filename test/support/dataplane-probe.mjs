// The attacker's client for test/security/dataplane-*.test.ts: a plain process (run as another local
// user, or as any process without the data-plane CA's certificate) that tries Chaperone's data-plane
// services directly. Plain JavaScript so it runs under `node` as any user, without tsx. It prints one JSON
// line: what the OS, the TLS handshake or the server answered.
//   node dataplane-probe.mjs connect <socket path>
//   node dataplane-probe.mjs admin <socket path> <http path>
//   node dataplane-probe.mjs grpc <target> <service/Method> <unary|client|bidi> [ca cert key files]

import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { createRequire } from 'node:module';
import { connect } from 'node:net';
import { fileURLToPath } from 'node:url';

const require = createRequire(fileURLToPath(new URL('../../package.json', import.meta.url)));
const grpc = require('@grpc/grpc-js');
const [, , what, ...args] = process.argv;
const print = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);

function probeConnect(path) {
  const s = connect({ path });
  s.once('connect', () => {
    print({ connected: true });
    s.destroy();
  });
  s.once('error', (err) => print({ connected: false, error: err.code }));
}

function probeAdmin(socketPath, path) {
  const req = request({ socketPath, path, timeout: 3000 }, (res) => {
    let body = '';
    res.on('data', (c) => {
      body += c;
    });
    res.on('end', () => print({ status: res.statusCode, bytes: body.length }));
  });
  req.on('error', (err) => print({ status: null, error: err.code }));
  req.end();
}

function credentials(files) {
  if (files.length === 0) return grpc.credentials.createInsecure();
  const [ca, cert, key] = files.map((f) => (f === '-' ? null : readFileSync(f)));
  // The server's name is not what is tested here: its certificate names a role, not this address.
  return grpc.credentials.createSsl(ca, key, cert, { checkServerIdentity: () => undefined });
}

/** One call with an empty message: "answered" when the server replied at all (a response or a status). */
function probeGrpc(target, method, kind, files) {
  const client = new grpc.Client(target, credentials(files));
  const id = (b) => b;
  const path = `/${method}`;
  const deadline = new Date(Date.now() + 4000);
  const done = (o) => {
    print(o);
    client.close();
  };
  const result = (err) =>
    err
      ? {
          answered: err.code !== grpc.status.UNAVAILABLE && err.code !== grpc.status.DEADLINE_EXCEEDED,
          code: err.code,
          details: err.details,
        }
      : { answered: true, code: 0 };
  if (kind === 'unary') {
    client.makeUnaryRequest(path, id, id, Buffer.alloc(0), { deadline }, (err) => done(result(err)));
    return;
  }
  if (kind === 'client') {
    const call = client.makeClientStreamRequest(path, id, id, { deadline }, (err) => done(result(err)));
    call.write(Buffer.alloc(0));
    call.end();
    return;
  }
  const call = client.makeBidiStreamRequest(path, id, id, { deadline });
  let settled = false;
  const finish = (o) => {
    if (settled) return;
    settled = true;
    call.cancel();
    done(o);
  };
  call.on('data', () => finish({ answered: true, code: 0 }));
  call.on('error', (err) => finish(result(err)));
  call.on('status', (s) => finish(s.code === 0 ? { answered: true, code: 0 } : result(s)));
  call.write(Buffer.alloc(0));
}

if (what === 'connect') probeConnect(args[0]);
else if (what === 'admin') probeAdmin(args[0], args[1]);
else if (what === 'grpc') probeGrpc(args[0], args[1], args[2], args.slice(3));
else {
  print({ error: `unknown probe ${what}` });
  process.exitCode = 2;
}
