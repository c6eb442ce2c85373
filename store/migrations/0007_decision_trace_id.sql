-- The W3C trace id of each decision's request (Chaperone's Check span, or the traceparent the request
-- carried), so a trace in the tracing backend leads to its decision and back. NULL for decisions made
-- before this column, and for requests without a trace. Covered by the hash chain only when set, so
-- existing chains verify unchanged.
ALTER TABLE decisions ADD COLUMN trace_id TEXT;
CREATE INDEX decisions_trace_id ON decisions (trace_id) WHERE trace_id IS NOT NULL;
