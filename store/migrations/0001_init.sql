-- Chaperone audit trail, schema version 1. The same SQL runs on PostgreSQL and PGlite.

-- One row per authz decision: the primary audit record. seq/prev_hash/hash chain the rows
-- (hash = sha256(prev_hash || canonical JSON of the record)); the shipper assigns them in order.
CREATE TABLE decisions (
  seq             BIGINT PRIMARY KEY,
  decision_id     TEXT NOT NULL UNIQUE,
  request_id      TEXT NOT NULL,
  time            TIMESTAMPTZ NOT NULL,
  route_id        TEXT,
  target          TEXT,
  method          TEXT NOT NULL,
  host            TEXT NOT NULL,
  path            TEXT NOT NULL,
  subject         TEXT,
  issuer          TEXT,
  actor           JSONB,
  decision        TEXT NOT NULL,
  http_status     INTEGER NOT NULL,
  reason          TEXT NOT NULL,
  reason_code     TEXT NOT NULL,
  policy_revision TEXT NOT NULL,
  latency_us      DOUBLE PRECISION NOT NULL,
  input           JSONB,
  result          JSONB,
  prev_hash       TEXT NOT NULL,
  hash            TEXT NOT NULL
);
CREATE INDEX decisions_subject_time ON decisions (subject, time DESC);
CREATE INDEX decisions_target_time ON decisions (target, time DESC);
CREATE INDEX decisions_decision_time ON decisions (decision, time DESC);
CREATE INDEX decisions_time ON decisions (time DESC);
CREATE INDEX decisions_request_id ON decisions (request_id);

-- Envoy's access log (gRPC ALS): the outcome of each request, joined to its decision.
CREATE TABLE access_log (
  id              BIGSERIAL PRIMARY KEY,
  entry_key       TEXT NOT NULL UNIQUE,
  request_id      TEXT NOT NULL,
  decision_id     TEXT,
  node_id         TEXT NOT NULL,
  time            TIMESTAMPTZ NOT NULL,
  route           TEXT NOT NULL,
  method          TEXT NOT NULL,
  authority       TEXT NOT NULL,
  path            TEXT NOT NULL,
  response_code   INTEGER NOT NULL,
  response_code_details TEXT NOT NULL,
  bytes_sent      BIGINT NOT NULL,
  bytes_received  BIGINT NOT NULL,
  duration_ms     DOUBLE PRECISION NOT NULL,
  upstream_host   TEXT NOT NULL,
  upstream_cluster TEXT NOT NULL,
  policy_revision TEXT
);
CREATE INDEX access_log_request_id ON access_log (request_id);
CREATE INDEX access_log_decision_id ON access_log (decision_id);

-- Periodic signed checkpoints over the decision chain.
CREATE TABLE checkpoints (
  seq        BIGINT PRIMARY KEY,
  hash       TEXT NOT NULL,
  signature  TEXT,
  key_id     TEXT,
  time       TIMESTAMPTZ NOT NULL
);
