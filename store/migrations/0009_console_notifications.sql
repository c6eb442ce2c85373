-- The web console's sign-ins and sessions, and the approval events with their notification deliveries.
-- All of it lives in the shared database, so any node of a fleet serves any session and any node
-- delivers any notification (at most one at a time: deliveries are claimed with FOR UPDATE SKIP LOCKED).

-- Console sessions and sign-ins under way. `id_sha256` is the SHA-256 of the cookie value: a read of
-- this table does not give a usable cookie. `kind` is 'session' or 'login' (state, nonce and PKCE
-- verifier of an authorization-code flow, used once by its callback).
CREATE TABLE console_sessions (
  id_sha256   TEXT PRIMARY KEY,
  kind        TEXT NOT NULL,
  data        JSONB NOT NULL,
  created_at  TIMESTAMPTZ NOT NULL,
  last_seen   TIMESTAMPTZ NOT NULL,
  expires_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX console_sessions_expires ON console_sessions (expires_at);

-- One row per change of an approval request (requested, decided, expired, revoked), written in the
-- same transaction as the change, so an event exists exactly when the change committed.
CREATE TABLE approval_events (
  seq         BIGSERIAL UNIQUE,
  id          TEXT PRIMARY KEY,
  kind        TEXT NOT NULL,
  approval_id TEXT NOT NULL,
  approval    JSONB NOT NULL,
  created_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX approval_events_created ON approval_events (created_at);
CREATE INDEX approval_events_approval ON approval_events (approval_id);

-- One row per (event, sink): the outbox the delivery workers claim from. Delivered once: a row is
-- leased to one node (lease_owner, lease_until) and marked delivered by that lease holder only.
CREATE TABLE notification_deliveries (
  event_id        TEXT NOT NULL,
  sink            TEXT NOT NULL,
  status          TEXT NOT NULL,
  attempts        INTEGER NOT NULL DEFAULT 0,
  next_attempt_at TIMESTAMPTZ NOT NULL,
  lease_owner     TEXT,
  lease_until     TIMESTAMPTZ,
  last_error      TEXT,
  last_status     INTEGER,
  created_at      TIMESTAMPTZ NOT NULL,
  delivered_at    TIMESTAMPTZ,
  PRIMARY KEY (event_id, sink)
);
CREATE INDEX notification_deliveries_due ON notification_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX notification_deliveries_created ON notification_deliveries (created_at DESC)
