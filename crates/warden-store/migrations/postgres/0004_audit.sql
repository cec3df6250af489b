-- The audit trail: one hash chain per organisation (`chain` is the organisation's slug, or
-- `_system` for events outside any organisation). Each record carries the hash of the one
-- before it; `audit_heads` holds each chain's latest (seq, hash) and is locked by whoever
-- appends, so sequence numbers never collide. Checkpoints are signed with an Ed25519 key
-- kept outside this database. (chain, seq) is deliberately not UNIQUE: verification, not a
-- constraint an intruder could drop, is what proves the chain intact.
CREATE TABLE audit_records (
    id           BIGSERIAL PRIMARY KEY,
    chain        TEXT    NOT NULL,
    seq          BIGINT  NOT NULL,
    ts           TEXT    NOT NULL,
    request_id   TEXT    NOT NULL,
    event        TEXT    NOT NULL,
    org          TEXT    NULL,
    user_id      TEXT    NULL,
    user_email   TEXT    NULL,
    auth_method  TEXT    NULL,
    credential   TEXT    NULL,
    source       TEXT    NOT NULL,
    remote_addr  TEXT    NULL,
    user_agent   TEXT    NULL,
    action       TEXT    NOT NULL,
    params       TEXT    NULL,
    decision     TEXT    NOT NULL,
    stage        TEXT    NULL,
    rule         TEXT    NULL,
    reason       TEXT    NULL,
    outcome      TEXT    NOT NULL,
    duration_us  BIGINT  NULL,
    affected     TEXT    NULL,
    detail       TEXT    NULL,
    prev_hash    TEXT    NOT NULL,
    hash         TEXT    NOT NULL
);

CREATE INDEX audit_records_chain_seq ON audit_records (chain, seq);
CREATE INDEX audit_records_ts ON audit_records (ts);

CREATE TABLE audit_heads (
    chain  TEXT    NOT NULL PRIMARY KEY,
    seq    BIGINT  NOT NULL,
    hash   TEXT    NOT NULL
);

CREATE TABLE audit_checkpoints (
    id         BIGSERIAL PRIMARY KEY,
    chain      TEXT    NOT NULL,
    seq        BIGINT  NOT NULL,
    hash       TEXT    NOT NULL,
    ts         TEXT    NOT NULL,
    kind       TEXT    NOT NULL,
    key_id     TEXT    NOT NULL,
    signature  TEXT    NOT NULL
);

CREATE INDEX audit_checkpoints_chain_seq ON audit_checkpoints (chain, seq);
