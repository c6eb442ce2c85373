-- A person is (issuer, subject): two issuers may both have a user "alice", and they are two people.
-- The agent inventory and the kill switch name the person's issuer next to their subject, and the
-- revoker's issuer next to theirs. Rows written before this migration carry an empty issuer, which
-- names nobody: agent tokens minted before it lack the `sub_id` claim and are refused anyway.

ALTER TABLE agent_tokens ADD COLUMN user_issuer TEXT NOT NULL DEFAULT '';
ALTER TABLE agent_tokens ADD COLUMN revoked_by_issuer TEXT;
DROP INDEX agent_tokens_user_issued;
CREATE INDEX agent_tokens_user_issued ON agent_tokens (user_issuer, user_subject, issued_at DESC);

ALTER TABLE agent_cutoffs ADD COLUMN user_issuer TEXT NOT NULL DEFAULT '';
ALTER TABLE agent_cutoffs ADD COLUMN revoked_by_issuer TEXT;
ALTER TABLE agent_cutoffs DROP CONSTRAINT agent_cutoffs_pkey;
ALTER TABLE agent_cutoffs ADD PRIMARY KEY (user_issuer, user_subject, agent);
