-- Sign-in through an organisation's identity provider (OpenID Connect, GitHub).
-- Keep in step with ../postgres/0015_federation.sql.

-- A sign-in under way at a provider: created when the person is sent there, taken (deleted)
-- once when they come back, so a state is good for one return only. Only the state's hash
-- is kept; the nonce and the PKCE verifier never leave the server.
CREATE TABLE sso_flows (
    state_hash    TEXT   NOT NULL PRIMARY KEY,
    provider      TEXT   NOT NULL,
    nonce         TEXT   NOT NULL,
    pkce_verifier TEXT   NOT NULL,
    continue_to   TEXT   NOT NULL,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL
);
CREATE INDEX sso_flows_expires ON sso_flows (expires_at);

-- A person at a provider, keyed on (issuer, subject), linked to one Warden account. Never
-- created by matching an e-mail unless the provider's link_verified_email says so.
-- refresh_sealed: the provider's refresh token, encrypted with login.secrets_key (a file
-- outside this database); only kept for providers with resync.
CREATE TABLE federated_identities (
    id             TEXT   NOT NULL PRIMARY KEY,
    issuer         TEXT   NOT NULL,
    subject        TEXT   NOT NULL,
    user_id        TEXT   NOT NULL REFERENCES users (id),
    provider       TEXT   NOT NULL,
    email          TEXT   NULL,
    refresh_sealed TEXT   NULL,
    created_at     INTEGER NOT NULL,
    last_login_at  INTEGER NOT NULL,
    UNIQUE (issuer, subject)
);
CREATE INDEX federated_identities_user ON federated_identities (user_id);

-- Which provider sign-in a browser session, and a grant approved in it, came from (NULL:
-- password or sign-in link). A refresh of such a grant re-reads the provider's claims when
-- the provider has resync.
ALTER TABLE browser_sessions ADD COLUMN identity_id TEXT NULL;
ALTER TABLE grants ADD COLUMN identity_id TEXT NULL;
