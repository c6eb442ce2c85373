-- Policy revisions published to the fleet (`chaperone policy publish`): each row is one OPA bundle
-- (.tar.gz, signed when the publisher had a key), immutable once written. Which revision the fleet
-- serves is the newest row of policy_activations: a publish activates its revision, a rollback
-- activates an older one. Both announce themselves with NOTIFY chaperone_state (kind `policy`).

CREATE TABLE policy_revisions (
  revision     BIGSERIAL PRIMARY KEY,
  sha256       TEXT NOT NULL,
  bundle       BYTEA NOT NULL,
  size_bytes   INTEGER NOT NULL,
  entrypoints  JSONB NOT NULL,
  signed_by    TEXT,
  manifest_rev TEXT,
  source       TEXT NOT NULL,
  published_by TEXT NOT NULL,
  note         TEXT,
  created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX policy_revisions_sha256 ON policy_revisions (sha256);

CREATE TABLE policy_activations (
  seq          BIGSERIAL PRIMARY KEY,
  revision     BIGINT NOT NULL REFERENCES policy_revisions (revision),
  reason       TEXT NOT NULL,
  activated_by TEXT NOT NULL,
  activated_at TIMESTAMPTZ NOT NULL DEFAULT now()
)
