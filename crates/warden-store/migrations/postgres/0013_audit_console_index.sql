-- The console's trail pages (`/console/activity`, `/console/admin/audit`) read one chain
-- newest first by seq, a page at a time (keyset: `seq < $before`), narrowed by user or by
-- tool. These indexes make each page a range scan however deep it is; other filters
-- (time, outcome, decision, event, client) are checked on the rows `(chain, seq)` or these
-- yield. Two indexes only: every append writes each of them. Built in the migration's
-- transaction (not CONCURRENTLY), so on a large trail appends wait until both are built:
-- upgrade a big installation at a quiet time.
CREATE INDEX audit_records_chain_user_seq ON audit_records (chain, user_id, seq);
CREATE INDEX audit_records_chain_action_seq ON audit_records (chain, action, seq);
