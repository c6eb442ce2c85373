// Defaults of the authz server, one place, each with the reason for its value.
export const AUTHZ_DEFAULTS = {
  /** OPA-Envoy's conventional ext_authz gRPC address, so existing Envoy configs point here unchanged. */
  address: '127.0.0.1:9191',
  /** Our library's entrypoint; OPA-Envoy policies use `envoy/authz/allow` (set it explicitly). */
  entrypoint: 'chaperone/authz/decision',
  /** The shipped Rego library. */
  policyDir: 'policies',
  /** Bodies above this are treated as truncated: the policy sees `truncated_body: true`. */
  maxBodyBytes: 1024 * 1024,
  /** JWT clock skew allowed for nbf/iat/exp; the issue caps it at 60 s. */
  clockToleranceSec: 30,
} as const;
