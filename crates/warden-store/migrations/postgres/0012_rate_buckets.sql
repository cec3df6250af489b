-- Token buckets shared by every instance on this store (rate limits on the unauthenticated
-- endpoints, and any other limit that must hold whichever instance serves the request).
-- A key is a kind and, where it names a person or an address, a keyed hash (HMAC-SHA-256
-- under the server key 'auth_failures'), as in auth_failures: no address is kept in the
-- clear. A bucket changes only by one INSERT ... ON CONFLICT DO UPDATE ... RETURNING that
-- refills it for the time elapsed and takes what it grants (`last_take`, read back by
-- RETURNING). `full_at` is when the bucket will be full again if nobody takes from it; a
-- missing row is a full bucket, so rows past `full_at` are deleted in bounded batches.
-- Numbered 0012: 0011 is kept for work on another branch.
CREATE TABLE rate_buckets (
    bucket_key  TEXT    NOT NULL PRIMARY KEY,
    tokens      DOUBLE PRECISION NOT NULL,
    updated_at  BIGINT NOT NULL,
    full_at     BIGINT NOT NULL,
    last_take   DOUBLE PRECISION NOT NULL
);
CREATE INDEX rate_buckets_full_at ON rate_buckets (full_at);

-- Who registered a client through /register: the same kind of keyed hash of the address
-- (`addr:...`), so that the clients an address registered and never used can be capped.
-- NULL for clients registered before this migration.
ALTER TABLE oauth_clients ADD COLUMN registered_from TEXT NULL;
CREATE INDEX oauth_clients_registered_from ON oauth_clients (registered_from);
CREATE INDEX oauth_clients_created_at ON oauth_clients (created_at);
