-- The public keys whose checkpoints `warden audit verify` accepts: one per Warden instance
-- that signs (or one shared by all). The first instance to start registers its own; every
-- other key is added by an administrator (`warden audit signer add`), and an instance whose
-- key is not here refuses to start.
CREATE TABLE audit_signers (
    key_id      TEXT    NOT NULL PRIMARY KEY,
    public_key  TEXT    NOT NULL,
    added_at    BIGINT NOT NULL,
    -- Who or what added it: 'first instance' or 'cli:os-user:NAME'.
    added_by    TEXT    NOT NULL
);
