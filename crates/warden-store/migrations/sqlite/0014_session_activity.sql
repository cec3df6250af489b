-- A browser session's last request and its last proof of the password (or sign-in link).
-- Keep in step with ../postgres/0014_session_activity.sql.
-- A session unused for longer than the idle limit is over, whatever its expires_at; a
-- destructive console action needs authenticated_at to be recent. NULL (sessions opened
-- before this migration) reads as created_at.
ALTER TABLE browser_sessions ADD COLUMN last_seen_at INTEGER NULL;
ALTER TABLE browser_sessions ADD COLUMN authenticated_at INTEGER NULL;
