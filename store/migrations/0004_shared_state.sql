-- State shared by every authz server and control plane on one store: approvals, the agent inventory
-- and its revocations, the routing configuration's revisions and the fleet's public signing keys.
-- Changes are announced with NOTIFY on the chaperone_state channel; each process keeps what its hot
-- path reads in memory and reloads it when told.

CREATE TABLE approvals (
  id          TEXT PRIMARY KEY,
  fingerprint TEXT NOT NULL,
  status      TEXT NOT NULL,
  created_at  TIMESTAMPTZ NOT NULL,
  doc         JSONB NOT NULL
);
-- At most one pending request per fingerprint, fleet-wide: two authz servers asked the same thing at
-- once find one request.
CREATE UNIQUE INDEX approvals_one_pending ON approvals (fingerprint) WHERE status = 'pending';
CREATE INDEX approvals_status_created ON approvals (status, created_at DESC);

CREATE TABLE agent_tokens (
  token_id     TEXT PRIMARY KEY,
  agent        TEXT NOT NULL,
  run_id       TEXT NOT NULL,
  user_subject TEXT NOT NULL,
  targets      JSONB,
  issued_at    TIMESTAMPTZ NOT NULL,
  expires_at   TIMESTAMPTZ NOT NULL,
  revoked_at   TIMESTAMPTZ,
  revoked_by   TEXT,
  last_seen    TIMESTAMPTZ,
  requests     BIGINT NOT NULL DEFAULT 0,
  denied       BIGINT NOT NULL DEFAULT 0,
  targets_used JSONB NOT NULL DEFAULT '[]'
);
CREATE INDEX agent_tokens_user_issued ON agent_tokens (user_subject, issued_at DESC);
CREATE INDEX agent_tokens_revoked ON agent_tokens (revoked_at) WHERE revoked_at IS NOT NULL;

-- Kill-switch cutoffs: agent tokens of `user_subject` (of one agent name, or of every agent when
-- agent = '') issued before `cutoff` are revoked.
CREATE TABLE agent_cutoffs (
  user_subject TEXT NOT NULL,
  agent        TEXT NOT NULL,
  cutoff       TIMESTAMPTZ NOT NULL,
  revoked_by   TEXT NOT NULL,
  PRIMARY KEY (user_subject, agent)
);

-- The routing configuration (targets) every control plane serves; the newest revision wins.
CREATE TABLE config_revisions (
  revision   BIGSERIAL PRIMARY KEY,
  sha256     TEXT NOT NULL,
  targets    JSONB NOT NULL,
  origin     TEXT NOT NULL,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX config_revisions_sha256 ON config_revisions (sha256);

-- Public halves of every node's signing keys (agent tokens, audit checkpoints): any node's JWKS
-- verifies what any other signed. Private keys stay in each node's state directory.
CREATE TABLE signing_keys (
  kid        TEXT PRIMARY KEY,
  node       TEXT NOT NULL,
  public_jwk JSONB NOT NULL,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  retired_at TIMESTAMPTZ
)
