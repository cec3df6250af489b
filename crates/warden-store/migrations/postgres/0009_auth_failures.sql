-- Failed sign-in and token requests, counted per key so that every instance on this store
-- keeps the same limits (growing delays, then a lockout). A key is a kind and a keyed hash:
-- `account:` + HMAC-SHA-256(server key 'auth_failures', 'account:EMAIL'), likewise `addr:`,
-- `link:`, `link-addr:`, `token-addr:`; no email or address is kept in the clear.
-- A row is dead once its window has ended and it is not locked; a failure on a dead row
-- starts it again, and dead rows are deleted in bounded batches. Numbered 0009: 0008 is kept
-- for work on another branch.
CREATE TABLE auth_failures (
    limit_key       TEXT    NOT NULL PRIMARY KEY,
    failures        BIGINT  NOT NULL,
    window_ends_at  BIGINT  NOT NULL,
    locked_until    BIGINT  NULL
);
CREATE INDEX auth_failures_window_ends_at ON auth_failures (window_ends_at);
