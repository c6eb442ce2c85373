-- Rate limits and token budgets (fleet/usage-counters.ts): the fleet's counts per fixed window (a UTC
-- minute, a UTC day), per scope — a person (issuer, subject) on a target, one of their agents on a
-- target, everyone on a target — added to by every node (an upsert of its deltas) and read back into
-- memory, so a Check reads counts without I/O. Rows of past windows are deleted after two days.

CREATE TABLE usage_counters (
  window_kind TEXT NOT NULL CHECK (window_kind IN ('minute', 'day')),
  window_start BIGINT NOT NULL,
  scope TEXT NOT NULL CHECK (scope IN ('user', 'agent', 'target')),
  target TEXT NOT NULL,
  issuer TEXT NOT NULL,
  subject TEXT NOT NULL,
  agent TEXT NOT NULL,
  requests BIGINT NOT NULL DEFAULT 0,
  tokens BIGINT NOT NULL DEFAULT 0,
  PRIMARY KEY (window_kind, window_start, scope, target, issuer, subject, agent)
);

CREATE INDEX usage_counters_window_start ON usage_counters (window_start);
