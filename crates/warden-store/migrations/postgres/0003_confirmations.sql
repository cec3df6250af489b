-- Write confirmations: a server-minted, single-use token per previewed write, bound to the
-- caller, the organisation, the tool and a hash of the canonical arguments.
CREATE TABLE confirmations (
    token_hash  TEXT    NOT NULL PRIMARY KEY,
    user_id     TEXT    NOT NULL,
    org         TEXT    NOT NULL,
    tool        TEXT    NOT NULL,
    args_hash   TEXT    NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT NULL
);

CREATE INDEX confirmations_expires_at ON confirmations (expires_at);
