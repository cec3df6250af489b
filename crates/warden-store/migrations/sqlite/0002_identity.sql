-- Warden control plane: OAuth clients, grants, tokens, API keys, browser
-- sessions and magic links (SQLite).
-- Keep in step with ../postgres/0002_identity.sql: same tables, columns and constraints.
-- Every secret column holds the lowercase hex SHA-256 of the raw value, never
-- the value itself. Timestamps are UTC unix milliseconds written by the
-- application. A token is usable only while its own row, its grant and the
-- grant's client are all unrevoked: the grant row is authoritative.

CREATE TABLE oauth_clients (
    id            TEXT    NOT NULL PRIMARY KEY,
    name          TEXT    NOT NULL,
    -- JSON array of strings.
    redirect_uris TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    revoked_at    INTEGER NULL
);

-- One user's authorization of one client in one organization.
CREATE TABLE grants (
    id             TEXT    NOT NULL PRIMARY KEY,
    org_id         TEXT    NOT NULL REFERENCES organizations (id),
    user_id        TEXT    NOT NULL REFERENCES users (id),
    client_id      TEXT    NOT NULL REFERENCES oauth_clients (id),
    -- Space separated, canonical order, e.g. 'mcp:read mcp:write'.
    scopes         TEXT    NOT NULL,
    -- The role bound at authorization; re-checked on every refresh.
    role           TEXT    NOT NULL CHECK (role IN ('admin', 'member', 'siloed_member', 'guest', 'auxiliary_member', 'service_account')),
    -- RFC 8707 resource (audience) the tokens are for.
    resource       TEXT    NOT NULL,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    revoked_at     INTEGER NULL,
    revoked_reason TEXT    NULL
);

-- `warden apps list`, revoking an app in an organization, removing a member.
CREATE INDEX grants_org_client ON grants (org_id, client_id);
CREATE INDEX grants_org_user ON grants (org_id, user_id);
CREATE INDEX grants_client_id ON grants (client_id);

CREATE TABLE auth_codes (
    token_hash     TEXT    NOT NULL PRIMARY KEY,
    grant_id       TEXT    NOT NULL REFERENCES grants (id),
    redirect_uri   TEXT    NOT NULL,
    -- PKCE S256 challenge: not a secret, it travelled through the browser.
    code_challenge TEXT    NOT NULL,
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    used_at        INTEGER NULL
);

CREATE INDEX auth_codes_grant_id ON auth_codes (grant_id);

CREATE TABLE access_tokens (
    token_hash  TEXT    NOT NULL PRIMARY KEY,
    grant_id    TEXT    NOT NULL REFERENCES grants (id),
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    revoked_at  INTEGER NULL
);

CREATE INDEX access_tokens_grant_id ON access_tokens (grant_id);

CREATE TABLE refresh_tokens (
    token_hash  TEXT    NOT NULL PRIMARY KEY,
    grant_id    TEXT    NOT NULL REFERENCES grants (id),
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    -- Set when rotated; presenting a used token again revokes the grant.
    used_at     INTEGER NULL,
    revoked_at  INTEGER NULL
);

CREATE INDEX refresh_tokens_grant_id ON refresh_tokens (grant_id);

CREATE TABLE api_keys (
    id             TEXT    NOT NULL PRIMARY KEY,
    token_hash     TEXT    NOT NULL UNIQUE,
    -- The first few characters of the raw key, so people can tell keys apart.
    display_prefix TEXT    NOT NULL,
    org_id         TEXT    NOT NULL REFERENCES organizations (id),
    user_id        TEXT    NOT NULL REFERENCES users (id),
    name           TEXT    NOT NULL,
    scopes         TEXT    NOT NULL,
    created_at     INTEGER NOT NULL,
    last_used_at   INTEGER NULL,
    revoked_at     INTEGER NULL
);

CREATE INDEX api_keys_org_id ON api_keys (org_id);
CREATE INDEX api_keys_user_id ON api_keys (user_id);

CREATE TABLE browser_sessions (
    token_hash  TEXT    NOT NULL PRIMARY KEY,
    user_id     TEXT    NOT NULL REFERENCES users (id),
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    revoked_at  INTEGER NULL
);

CREATE INDEX browser_sessions_user_id ON browser_sessions (user_id);

CREATE TABLE magic_links (
    token_hash  TEXT    NOT NULL PRIMARY KEY,
    user_id     TEXT    NOT NULL REFERENCES users (id),
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER NULL
);

CREATE INDEX magic_links_user_id ON magic_links (user_id);
-- Purging old links.
CREATE INDEX magic_links_expires_at ON magic_links (expires_at);
