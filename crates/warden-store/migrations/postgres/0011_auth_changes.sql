-- Bearer lookups are cached per instance (see src/store/bearer_cache.rs). Every change that
-- can make a cached lookup wrong is announced on the channel `warden_auth`, whichever
-- program makes it (an instance, the CLI, an operator's psql): a NOTIFY is delivered when
-- its transaction commits, and each instance drops its whole cache when one arrives.
-- Inserts are not announced: a cache holds only successful lookups, and no insert can take
-- a success back. Updates that do not change what a lookup returns (an API key's last use,
-- a grant's step-up mark, the row lock a refresh takes) are not announced either.
-- SQLite needs none of this: its lookups are not cached.

CREATE FUNCTION warden_auth_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- One notification per table per transaction: PostgreSQL folds identical ones.
    PERFORM pg_notify('warden_auth', TG_TABLE_NAME);
    RETURN NULL;
END;
$$;

CREATE TRIGGER access_tokens_auth_changed
    AFTER UPDATE ON access_tokens FOR EACH ROW
    WHEN (OLD.revoked_at IS DISTINCT FROM NEW.revoked_at
       OR OLD.expires_at IS DISTINCT FROM NEW.expires_at
       OR OLD.grant_id IS DISTINCT FROM NEW.grant_id
       OR OLD.token_hash IS DISTINCT FROM NEW.token_hash)
    EXECUTE FUNCTION warden_auth_changed();

CREATE TRIGGER grants_auth_changed
    AFTER UPDATE ON grants FOR EACH ROW
    WHEN (OLD.revoked_at IS DISTINCT FROM NEW.revoked_at
       OR OLD.role IS DISTINCT FROM NEW.role
       OR OLD.scopes IS DISTINCT FROM NEW.scopes
       OR OLD.resource IS DISTINCT FROM NEW.resource
       OR OLD.user_id IS DISTINCT FROM NEW.user_id
       OR OLD.org_id IS DISTINCT FROM NEW.org_id
       OR OLD.client_id IS DISTINCT FROM NEW.client_id)
    EXECUTE FUNCTION warden_auth_changed();

CREATE TRIGGER oauth_clients_auth_changed
    AFTER UPDATE ON oauth_clients FOR EACH ROW
    WHEN (OLD.revoked_at IS DISTINCT FROM NEW.revoked_at)
    EXECUTE FUNCTION warden_auth_changed();

CREATE TRIGGER users_auth_changed
    AFTER UPDATE ON users FOR EACH ROW
    WHEN (OLD.disabled_at IS DISTINCT FROM NEW.disabled_at
       OR OLD.email IS DISTINCT FROM NEW.email)
    EXECUTE FUNCTION warden_auth_changed();

CREATE TRIGGER organizations_auth_changed
    AFTER UPDATE ON organizations FOR EACH ROW
    WHEN (OLD.slug IS DISTINCT FROM NEW.slug)
    EXECUTE FUNCTION warden_auth_changed();

CREATE TRIGGER memberships_auth_changed
    AFTER UPDATE ON memberships FOR EACH ROW
    WHEN (OLD.role IS DISTINCT FROM NEW.role)
    EXECUTE FUNCTION warden_auth_changed();

CREATE TRIGGER api_keys_auth_changed
    AFTER UPDATE ON api_keys FOR EACH ROW
    WHEN (OLD.revoked_at IS DISTINCT FROM NEW.revoked_at
       OR OLD.scopes IS DISTINCT FROM NEW.scopes
       OR OLD.user_id IS DISTINCT FROM NEW.user_id
       OR OLD.org_id IS DISTINCT FROM NEW.org_id
       OR OLD.token_hash IS DISTINCT FROM NEW.token_hash)
    EXECUTE FUNCTION warden_auth_changed();

-- Deletes and truncations of any of them.
CREATE TRIGGER access_tokens_auth_deleted AFTER DELETE OR TRUNCATE ON access_tokens
    FOR EACH STATEMENT EXECUTE FUNCTION warden_auth_changed();
CREATE TRIGGER grants_auth_deleted AFTER DELETE OR TRUNCATE ON grants
    FOR EACH STATEMENT EXECUTE FUNCTION warden_auth_changed();
CREATE TRIGGER oauth_clients_auth_deleted AFTER DELETE OR TRUNCATE ON oauth_clients
    FOR EACH STATEMENT EXECUTE FUNCTION warden_auth_changed();
CREATE TRIGGER users_auth_deleted AFTER DELETE OR TRUNCATE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION warden_auth_changed();
CREATE TRIGGER organizations_auth_deleted AFTER DELETE OR TRUNCATE ON organizations
    FOR EACH STATEMENT EXECUTE FUNCTION warden_auth_changed();
CREATE TRIGGER memberships_auth_deleted AFTER DELETE OR TRUNCATE ON memberships
    FOR EACH STATEMENT EXECUTE FUNCTION warden_auth_changed();
CREATE TRIGGER api_keys_auth_deleted AFTER DELETE OR TRUNCATE ON api_keys
    FOR EACH STATEMENT EXECUTE FUNCTION warden_auth_changed();
