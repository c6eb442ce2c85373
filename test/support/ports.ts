// Free loopback ports for suites that start real processes: suites run in parallel, so nothing uses
// a fixed port (the implementation is shared with the benchmark, in lib/ports.ts).
export { freePort } from '../../lib/ports.ts';
