-- Audit trust outside the database (docs/audit.md, "Tamper evidence"). Every batch a node commits is
-- signed in the same transaction: its checkpoint names the head the batch extended (prev_seq,
-- prev_hash) as well as the head it left (seq, hash), so the signed ranges tile each chain.
ALTER TABLE checkpoints ADD COLUMN prev_seq BIGINT;
ALTER TABLE checkpoints ADD COLUMN prev_hash TEXT;

-- Access-log entries get a hash chain of their own, signed the same way. Rows stored before this
-- version are numbered 1..N in arrival order and stay unhashed: signed batches start after them.
ALTER TABLE access_log ADD COLUMN seq BIGINT;
ALTER TABLE access_log ADD COLUMN prev_hash TEXT;
ALTER TABLE access_log ADD COLUMN hash TEXT;
UPDATE access_log SET seq = numbered.n FROM (SELECT id, row_number() OVER (ORDER BY id) AS n FROM access_log) AS numbered WHERE access_log.id = numbered.id;
CREATE UNIQUE INDEX access_log_seq ON access_log (seq);

CREATE TABLE access_log_checkpoints (
  seq        BIGINT PRIMARY KEY,
  hash       TEXT NOT NULL,
  prev_seq   BIGINT,
  prev_hash  TEXT,
  signature  TEXT NOT NULL,
  key_id     TEXT NOT NULL,
  time       TIMESTAMPTZ NOT NULL
);

-- Where each chain's signed batches begin: its records up to `since` were stored before this version.
-- Every checkpoint signs the same value, so moving it is caught.
CREATE TABLE audit_chains (
  chain TEXT PRIMARY KEY,
  since BIGINT NOT NULL
);
INSERT INTO audit_chains (chain, since) SELECT 'decisions', coalesce(max(seq), 0) FROM decisions;
INSERT INTO audit_chains (chain, since) SELECT 'access_log', coalesce(max(seq), 0) FROM access_log;
