// Defaults of the authz server, one place, each with the reason for its value.
export const AUTHZ_DEFAULTS = {
  /**
   * The library's default listen address (OPA-Envoy's conventional ext_authz port); plaintext TCP, so
   * the product never uses it: `authz serve` and `chaperone up` listen on a socket or with mutual TLS.
   */
  address: '127.0.0.1:9191',
  /** `chaperone authz serve`'s default: a 0600 Unix socket only its own user (its Envoy) can call. */
  socket: 'unix:.chaperone/sockets/authz.sock',
  /** Our library's entrypoint; OPA-Envoy policies use `envoy/authz/allow` (set it explicitly). */
  entrypoint: 'chaperone/authz/decision',
  /** The shipped Rego library. */
  policyDir: 'policies',
  /** Bodies above this are treated as truncated: the policy sees `truncated_body: true`. */
  maxBodyBytes: 1024 * 1024,
  /** JWT clock skew allowed for nbf/iat/exp; the issue caps it at 60 s. */
  clockToleranceSec: 30,
} as const;
