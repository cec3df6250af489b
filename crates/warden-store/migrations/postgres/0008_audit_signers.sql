-- The public keys whose checkpoints `warden audit verify` accepts: one per Warden instance
-- that signs (or one shared by all).
CREATE TABLE audit_signers (
    key_id      TEXT    NOT NULL PRIMARY KEY,
    public_key  TEXT    NOT NULL,
    added_at    BIGINT NOT NULL,
    -- Who or what added it: 'first instance' or 'cli:os-user:NAME'.
    added_by    TEXT    NOT NULL
);

-- Signer ENDORSER vouches for signer ENDORSEE: its Ed25519 signature (hex) over
-- 'warden-audit-signer/1|ENDORSEE_KEY_ID|ENDORSEE_PUBLIC_KEY'. An instance that registers
-- another endorses it; the new instance, at its first start, endorses its endorsers back.
-- Verification starts from a key the operator holds (the project's key file, or
-- --public-key) and follows only endorsements signed by keys already trusted, so a row
-- written into the database by someone without a signing key is never trusted.
CREATE TABLE audit_endorsements (
    endorser    TEXT    NOT NULL,
    endorsee    TEXT    NOT NULL,
    signature   TEXT    NOT NULL,
    PRIMARY KEY (endorser, endorsee)
);
