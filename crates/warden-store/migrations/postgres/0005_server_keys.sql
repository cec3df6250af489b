-- Secrets every Warden instance on this store shares (for example, the key that binds a
-- consent page to the request it was shown for). Created on first use; never sent anywhere.
CREATE TABLE server_keys (
    name        TEXT    NOT NULL PRIMARY KEY,
    secret      TEXT    NOT NULL,
    created_at  BIGINT NOT NULL
);
