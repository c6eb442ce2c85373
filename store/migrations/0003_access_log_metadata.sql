-- Access-log entries keep the filter metadata Envoy sent with them (ext_authz dynamic metadata:
-- decision id, policy revision, masking counts), so an outcome can be explained without the decision.
ALTER TABLE access_log ADD COLUMN metadata JSONB;
CREATE INDEX access_log_time ON access_log (time DESC);

-- Decision queries page newest first by seq (keyset cursor); these indexes serve the usual filters in
-- that order and replace the (column, time) ones, which could not give seq order without a sort.
DROP INDEX decisions_subject_time;
DROP INDEX decisions_target_time;
DROP INDEX decisions_decision_time;
CREATE INDEX decisions_subject_seq ON decisions (subject, seq DESC);
CREATE INDEX decisions_target_seq ON decisions (target, seq DESC);
CREATE INDEX decisions_decision_seq ON decisions (decision, seq DESC);
CREATE INDEX decisions_agent_seq ON decisions ((actor->>'agent'), seq DESC);
