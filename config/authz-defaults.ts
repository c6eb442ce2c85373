// Defaults of the authz server, one place, each with the reason for its value.
export const AUTHZ_DEFAULTS = {
  /**
   * The library's default listen address (OPA-Envoy's conventional ext_authz port); plaintext TCP, so
   * the product never uses it: `authz serve` and `chaperone up` listen on a socket or with mutual TLS.
   */
  address: '127.0.0.1:9191',
  /** `chaperone authz serve`'s default: a 0600 Unix socket only its own user (its Envoy) can call. */
  socket: 'unix:.chaperone/sockets/authz.sock',
  /**
   * The Check transport: the lean node:http2 server, which answered Envoy's Checks with less CPU than
   * @grpc/grpc-js in every paired bench:gateway run (docs/performance.md); `grpc-js` stays selectable.
   */
  transport: 'http2' as 'http2' | 'grpc-js',
  /** Our library's entrypoint; OPA-Envoy policies use `envoy/authz/allow` (set it explicitly). */
  entrypoint: 'chaperone/authz/decision',
  /** The shipped Rego library. */
  policyDir: 'policies',
  /** Bodies above this are treated as truncated: the policy sees `truncated_body: true`. */
  maxBodyBytes: 1024 * 1024,
  /**
   * Checks running at once before more are shed with 503 ERR_OVERLOADED. Envoy gives a Check 0.5 s;
   * at the ~1-2 k Checks/s one process serves on two cores, 256 waiting Checks are already ~150-250 ms
   * of queue: past that, answering "over capacity" now beats a timeout later. Environment override:
   * CHAPERONE_AUTHZ_MAX_IN_FLIGHT.
   */
  maxInFlight: 256,
  /**
   * How long a Check may have waited, unread, while the event loop is behind, before it is shed with 503
   * ERR_OVERLOADED (and how late the loop may run before a turn's backlog is). Envoy gives a Check 0.5 s:
   * one that waited 350 ms has too little left for its evaluation and its fsynced record, while a
   * shorter stall (a GC pause, a busy machine) sheds nothing — at 200 ms, a 300 ms stall under 200 rps
   * shed 52 Checks that Envoy would still have received in time. Environment override:
   * CHAPERONE_AUTHZ_MAX_LAG_MS (0 turns it off).
   */
  maxLagMs: 350,
  /** JWT clock skew allowed for nbf/iat/exp; the issue caps it at 60 s. */
  clockToleranceSec: 30,
} as const;
