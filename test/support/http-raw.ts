// HTTP requests with every header under the test's control (a forged Host, an Origin, no Host at
// all), through node:http rather than fetch, which sets some of them itself.
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';

export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

export function rawRequest(o: {
  port: number;
  method?: string;
  path: string;
  headers?: Record<string, string>;
  body?: string;
  host?: string;
}): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: o.host ?? '127.0.0.1',
        port: o.port,
        method: o.method ?? 'GET',
        path: o.path,
        headers: { host: `127.0.0.1:${o.port}`, ...o.headers },
        setHost: false,
        agent: false,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          body += c;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.on('error', reject);
    req.end(o.body);
  });
}

/** A bare TCP connection; `closed` resolves when the server closes it (with what it sent first). */
export function openSocket(port: number): Promise<{ socket: Socket; closed: Promise<string> }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    let received = '';
    socket.setEncoding('utf8');
    socket.on('data', (c: string) => {
      received += c;
    });
    const closed = new Promise<string>((r) => socket.once('close', () => r(received)));
    socket.once('connect', () => {
      // A reset by the server is one way of closing: `closed` reports it, nothing else must.
      socket.removeListener('error', reject);
      socket.on('error', () => undefined);
      resolve({ socket, closed });
    });
    socket.once('error', reject);
  });
}
