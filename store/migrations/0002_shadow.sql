-- Shadow mode: what a candidate policy would have decided for this request (never enforced).
ALTER TABLE decisions ADD COLUMN shadow JSONB;
CREATE INDEX decisions_shadow_differs ON decisions (((shadow->>'differs')));
