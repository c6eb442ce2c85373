// The upstream of `npm run bench:gateway`, run as its own process: answers every request with the
// demo upstream's item list (cli/dev/demo-upstream.ts) as a fixed JSON body, so all three sides put
// the same, cheap upstream behind Envoy. Node rather than Go: measured here at 4–8 k requests/s,
// a Go net/http server and this one cost the same CPU per request (~27–40 µs), and this one needs no
// build step. Usage: node bench/gateway/upstream.ts <port>   (listens on 127.0.0.1)
import { createServer } from 'node:http';

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0) {
  process.stderr.write('usage: upstream.ts <port>\n');
  process.exit(2);
}
const body = Buffer.from(
  `${JSON.stringify({
    items: [
      { id: 1, name: 'quarterly-report', owner: 'engineering' },
      { id: 2, name: 'incident-runbook', owner: 'engineering' },
    ],
  })}\n`,
);
const headers = { 'content-type': 'application/json', 'content-length': body.length };
const server = createServer((req, res) => {
  // Bodies are not read, only drained, so a POST costs what a GET does.
  req.resume();
  res.writeHead(200, headers);
  res.end(body);
});
// Envoy keeps its upstream connections open; never time them out under it.
server.keepAliveTimeout = 0;
server.listen(port, '127.0.0.1', () => process.stderr.write(`bench upstream on 127.0.0.1:${port}\n`));
process.once('SIGTERM', () => server.close(() => process.exit(0)));
