-- The W3C trace id of the request behind a record, when it carried a valid `traceparent`
-- header, so the trail can be joined with logs and traces. Part of the record's hash when
-- set (records without one hash as before). Numbered 0008: 0007 is taken elsewhere.
ALTER TABLE audit_records ADD COLUMN trace_id TEXT NULL;
