//! The [`Store`] handle: connection setup, migrations and the queries.
//!
//! Every query is written once, with `$n` placeholders that sqlx accepts on
//! both SQLite and PostgreSQL, and run through `on_pool!`, which expands the
//! same expression for each backend's pool. Operations of several statements
//! run in one transaction opened with `BeginWrite::begin_write`.
//!
//! Organizations, users and memberships are here; OAuth clients, grants,
//! codes and tokens in `oauth`; API keys, browser sessions and magic links in
//! `credentials`; sign-in and token failure counters in `auth_failures`; shared token
//! buckets in `rate_buckets`; the cap and purge of never-used clients in `unused_clients`.

use std::future::Future;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::error::ErrorKind;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::StoreError;
use crate::error::violation;
use crate::model::{
    Membership, OrgId, Organization, Role, User, UserId, normalize_email, validate_org_name,
    validate_password_hash, validate_slug,
};

mod rows;
#[cfg(test)]
mod tests;

use rows::{MemberRow, MembershipRow, OrgMembershipRow, OrgRow, UserRow, now_millis};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

const SQLITE: &str = "sqlite";
const POSTGRES: &str = "postgres";

/// How long a SQLite writer waits for another writer before failing.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Threads (each with a read-only connection) for the bearer lookup: one per core here; a
/// lookup is one indexed row.
const BEARER_READERS: u32 = 2;
/// How long a caller waits for a free pooled connection.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handle to the control-plane database. Cheap to clone: clones share one
/// connection pool.
#[derive(Clone, Debug)]
pub struct Store {
    backend: Backend,
    /// SQLite files only: audit appends on a connection of their own (see
    /// [`audit_sqlite`]).
    appender: Option<std::sync::Arc<audit_sqlite::Appender>>,
    /// SQLite files only: read-only connections on threads of their own for the bearer
    /// lookups every MCP request makes (see [`bearer`]).
    readers: Option<std::sync::Arc<warden_sqlite::Readers>>,
    /// PostgreSQL only: successful bearer lookups, served only while
    /// [`Store::listen_for_auth_changes`] hears every change (see [`bearer_cache`]).
    bearer_cache: Option<std::sync::Arc<bearer_cache::BearerCache>>,
}

#[derive(Clone, Debug)]
enum Backend {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Evaluates `$body` with `$pool` bound to the store's pool, once per backend.
/// `$body` must have the same type for both, so convert backend-specific
/// results (e.g. `rows_affected()`) inside it.
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.backend {
            Backend::Sqlite($pool) => $body,
            Backend::Postgres($pool) => $body,
        }
    };
}

// After `on_pool!`, which they use.
pub(crate) mod audit;
mod audit_sqlite;
pub mod auth_failures;
pub mod bearer;
pub mod bearer_cache;
pub mod confirm;
mod credentials;
mod federation;
mod leases;
mod oauth;
pub mod rate_buckets;
mod server_keys;
mod signers;
pub mod unused_clients;

pub use federation::{FederatedIdentity, SsoFlow};
pub use signers::{AuditSigner, Endorsement, endorsement_message};

/// Opens a transaction that is going to write.
///
/// On SQLite it takes the write lock up front (`BEGIN IMMEDIATE`): in a
/// deferred transaction, a read followed by a write fails with `SQLITE_BUSY`
/// when another connection wrote in between, and waiting does not help. With
/// the lock taken first, writers queue for up to the busy timeout instead.
/// PostgreSQL's default transaction needs no such help.
trait BeginWrite {
    type Db: sqlx::Database;

    fn begin_write(
        &self,
    ) -> impl Future<Output = Result<sqlx::Transaction<'static, Self::Db>, sqlx::Error>> + Send;
}

impl BeginWrite for SqlitePool {
    type Db = sqlx::Sqlite;

    fn begin_write(
        &self,
    ) -> impl Future<Output = Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error>> + Send
    {
        self.begin_with("BEGIN IMMEDIATE")
    }
}

impl BeginWrite for PgPool {
    type Db = sqlx::Postgres;

    fn begin_write(
        &self,
    ) -> impl Future<Output = Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error>> + Send
    {
        self.begin()
    }
}

/// A row an insert refers to, for naming the missing one after a
/// foreign-key violation.
struct Parent<'a> {
    /// E.g. `"organization"`.
    entity: &'static str,
    /// `SELECT id FROM ... WHERE id = $1`.
    exists: &'static str,
    id: &'a str,
}

const INSERT_ORG: &str = "INSERT INTO organizations (id, slug, name, created_at) \
     VALUES ($1, $2, $3, $4) \
     RETURNING id, slug, name, created_at";

const ORG_BY_SLUG: &str = "SELECT id, slug, name, created_at FROM organizations WHERE slug = $1";

const ORG_BY_ID: &str = "SELECT id, slug, name, created_at FROM organizations WHERE id = $1";

const ANY_MEMBERSHIP: &str = "SELECT EXISTS (SELECT 1 FROM memberships)";

const LIST_ORGS: &str = "SELECT id, slug, name, created_at FROM organizations ORDER BY slug";

const ORG_EXISTS: &str = "SELECT id FROM organizations WHERE id = $1";

const INSERT_USER: &str = "INSERT INTO users \
     (id, email, display_name, password_hash, created_at, disabled_at) \
     VALUES ($1, $2, $3, NULL, $4, NULL) \
     RETURNING id, email, display_name, password_hash, created_at, disabled_at";

const USER_BY_EMAIL: &str = "SELECT id, email, display_name, password_hash, created_at, disabled_at \
     FROM users WHERE email = $1";

const USER_BY_ID: &str = "SELECT id, email, display_name, password_hash, created_at, disabled_at \
     FROM users WHERE id = $1";

const LIST_USERS: &str = "SELECT id, email, display_name, password_hash, created_at, disabled_at \
     FROM users ORDER BY email";

const SET_USER_DISABLED: &str = "UPDATE users SET disabled_at = $2 WHERE id = $1";

const USER_EXISTS: &str = "SELECT id FROM users WHERE id = $1";

const SET_PASSWORD_HASH: &str = "UPDATE users SET password_hash = $2 WHERE id = $1";

const PASSWORD_HASH: &str = "SELECT password_hash FROM users WHERE id = $1";

// `created_at` is left alone on update: it records when the user joined.
const UPSERT_MEMBERSHIP: &str = "INSERT INTO memberships \
     (org_id, user_id, role, created_at, updated_at) \
     VALUES ($1, $2, $3, $4, $4) \
     ON CONFLICT (org_id, user_id) \
     DO UPDATE SET role = excluded.role, updated_at = excluded.updated_at \
     RETURNING org_id, user_id, role, created_at, updated_at";

const ADD_MEMBERSHIP: &str = "INSERT INTO memberships \
     (org_id, user_id, role, created_at, updated_at) \
     VALUES ($1, $2, $3, $4, $4) \
     ON CONFLICT (org_id, user_id) DO NOTHING \
     RETURNING org_id, user_id, role, created_at, updated_at";

const CHANGE_ROLE: &str = "UPDATE memberships SET role = $3, updated_at = $4 \
     WHERE org_id = $1 AND user_id = $2 \
     RETURNING org_id, user_id, role, created_at, updated_at";

const MEMBERSHIP: &str = "SELECT org_id, user_id, role, created_at, updated_at \
     FROM memberships WHERE org_id = $1 AND user_id = $2";

const DELETE_MEMBERSHIP: &str = "DELETE FROM memberships WHERE org_id = $1 AND user_id = $2";

// A removed member's keys in that organisation are revoked with the membership, so adding
// them back later does not bring old (perhaps leaked) keys back to life.
const REVOKE_KEYS_OF_MEMBER: &str = "UPDATE api_keys SET revoked_at = $3 \
     WHERE org_id = $1 AND user_id = $2 AND revoked_at IS NULL";

const LIST_MEMBERS: &str = "SELECT \
     u.id, u.email, u.display_name, u.password_hash, u.created_at, u.disabled_at, \
     m.org_id AS m_org_id, m.role AS m_role, \
     m.created_at AS m_created_at, m.updated_at AS m_updated_at \
     FROM memberships m JOIN users u ON u.id = m.user_id \
     WHERE m.org_id = $1 \
     ORDER BY u.email";

const ORGS_OF_USER: &str = "SELECT \
     o.id, o.slug, o.name, o.created_at, \
     m.user_id AS m_user_id, m.role AS m_role, \
     m.created_at AS m_created_at, m.updated_at AS m_updated_at \
     FROM memberships m JOIN organizations o ON o.id = m.org_id \
     WHERE m.user_id = $1 \
     ORDER BY o.slug";

impl Store {
    /// Opens a pool for a database URL:
    /// `sqlite://PATH?mode=rwc`, `sqlite:PATH`, `sqlite::memory:`, or
    /// `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE` (also `postgresql://`).
    ///
    /// SQLite connections use WAL, `synchronous=FULL`, foreign keys and a 5 s
    /// busy timeout. Does not migrate; call [`Store::migrate`].
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        let scheme = url.split_once(':').map_or(url, |(scheme, _)| scheme);
        match scheme {
            "sqlite" => {
                let options =
                    SqliteConnectOptions::from_str(url).map_err(|source| StoreError::Connect {
                        backend: SQLITE,
                        source,
                    })?;
                Self::connect_sqlite(options, is_sqlite_memory_url(url)).await
            }
            "postgres" | "postgresql" => {
                let options =
                    PgConnectOptions::from_str(url).map_err(|source| StoreError::Connect {
                        backend: POSTGRES,
                        source,
                    })?;
                let pool = PgPoolOptions::new()
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .after_release(|conn, _| {
                        Box::pin(async move { Ok(!sqlx::Connection::is_in_transaction(conn)) })
                    })
                    .connect_with(options)
                    .await
                    .map_err(|source| StoreError::Connect {
                        backend: POSTGRES,
                        source,
                    })?;
                Ok(Store {
                    backend: Backend::Postgres(pool),
                    appender: None,
                    readers: None,
                    bearer_cache: Some(Default::default()),
                })
            }
            _ => Err(StoreError::UnsupportedUrl {
                scheme: scheme.to_owned(),
            }),
        }
    }

    /// Opens (creating if missing) the SQLite database file at `path`.
    pub async fn open_sqlite(path: impl AsRef<Path>) -> Result<Store, StoreError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true);
        Self::connect_sqlite(options, false).await
    }

    async fn connect_sqlite(
        options: SqliteConnectOptions,
        in_memory: bool,
    ) -> Result<Store, StoreError> {
        let options = options
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(SQLITE_BUSY_TIMEOUT);
        // A connection that comes back still inside a transaction (a COMMIT failed on a full
        // disk, and SQLite had already rolled back, so the driver's ROLLBACK failed too) is
        // closed: handed out again, every later `BEGIN` on it would fail.
        let mut pool = SqlitePoolOptions::new()
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .after_release(|conn, _| {
                Box::pin(async move { Ok(!sqlx::Connection::is_in_transaction(conn)) })
            });
        if in_memory {
            // An in-memory database lives only while a connection is open:
            // keep one open for the life of the pool.
            pool = pool
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None);
        }
        let file = (!in_memory).then(|| options.get_filename().to_path_buf());
        let appender = (!in_memory).then(|| {
            std::sync::Arc::new(audit_sqlite::Appender::new(
                options.get_filename(),
                SQLITE_BUSY_TIMEOUT,
            ))
        });
        let pool = pool
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Connect {
                backend: SQLITE,
                source,
            })?;
        // Opened after the pool, which creates the file and sets WAL mode.
        let readers = match file {
            Some(path) => {
                let readers = tokio::task::spawn_blocking(move || {
                    warden_sqlite::Readers::open(&path, BEARER_READERS, SQLITE_BUSY_TIMEOUT)
                })
                .await
                .map_err(|e| StoreError::Sqlite(format!("cannot start the store readers: {e}")))?
                .map_err(StoreError::Sqlite)?;
                Some(std::sync::Arc::new(readers))
            }
            None => None,
        };
        Ok(Store {
            backend: Backend::Sqlite(pool),
            appender,
            readers,
            bearer_cache: None,
        })
    }

    /// On PostgreSQL, starts listening for changes to anything a bearer lookup reads, and
    /// caches successful lookups while the listener provably receives (see [`bearer_cache`]).
    /// For a long-running server; one more connection is held for it. Does nothing on SQLite,
    /// whose lookups are local and not cached.
    pub fn listen_for_auth_changes(&self) {
        if let (Backend::Postgres(pool), Some(cache)) = (&self.backend, &self.bearer_cache) {
            tokio::spawn(bearer_cache::listen(pool.clone(), cache.clone()));
        }
    }

    /// Empties this instance's bearer cache after a change it made itself, so that its own
    /// next request sees the change without waiting for the notification (other instances
    /// get that). Called by every store method that revokes or changes a credential, a
    /// grant, a membership or a user.
    pub fn auth_changed(&self) {
        if let Some(cache) = &self.bearer_cache {
            cache.flush_now();
        }
    }

    /// Whether bearer lookups are being answered from the cache now (PostgreSQL, listening).
    pub fn bearer_cache_live(&self) -> bool {
        self.bearer_cache.as_ref().is_some_and(|c| c.is_live())
    }

    /// Applies pending schema migrations. Safe to run on every start: applied
    /// migrations are skipped, and edited ones are refused.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let result = match &self.backend {
            Backend::Sqlite(pool) => SQLITE_MIGRATIONS.run(pool).await,
            Backend::Postgres(pool) => POSTGRES_MIGRATIONS.run(pool).await,
        };
        result.map_err(|source| StoreError::Migrate {
            backend: self.backend_name(),
            source,
        })?;
        tracing::debug!(backend = self.backend_name(), "store migrations applied");
        Ok(())
    }

    /// `"sqlite"` or `"postgres"`.
    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite(_) => SQLITE,
            Backend::Postgres(_) => POSTGRES,
        }
    }

    /// The sqlx pool's connections: (open, idle); for metrics. (The SQLite audit appender's
    /// and bearer readers' connections are not a pool and not counted.)
    pub fn pool_stats(&self) -> (u32, usize) {
        on_pool!(self, pool => (pool.size(), pool.num_idle()))
    }

    /// Closes the pool, waiting for checked-out connections to return.
    pub async fn close(&self) {
        if let Some(appender) = &self.appender {
            appender.close().await;
        }
        if let Some(readers) = &self.readers {
            readers.close().await;
        }
        on_pool!(self, pool => pool.close().await);
    }

    /// Creates an organization. Fails with [`StoreError::Invalid`] for a bad
    /// slug or blank name, and [`StoreError::Conflict`] if the slug is taken.
    pub async fn create_org(&self, slug: &str, name: &str) -> Result<Organization, StoreError> {
        validate_slug(slug)?;
        validate_org_name(name)?;
        let id = OrgId::new_random().to_string();
        let now = now_millis();
        let row = on_pool!(self, pool => sqlx::query_as::<_, OrgRow>(INSERT_ORG)
            .bind(&id)
            .bind(slug)
            .bind(name)
            .bind(now)
            .fetch_one(pool)
            .await);
        match row {
            Ok(row) => row.try_into(),
            Err(err) if matches!(violation(&err), Some(ErrorKind::UniqueViolation)) => {
                Err(StoreError::Conflict {
                    entity: "an organization",
                    field: "slug",
                    value: slug.to_owned(),
                    hint: "choose a different slug",
                })
            }
            Err(err) => Err(err.into()),
        }
    }

    /// Looks up an organization by its exact slug.
    pub async fn org_by_slug(&self, slug: &str) -> Result<Option<Organization>, StoreError> {
        let row = on_pool!(self, pool => sqlx::query_as::<_, OrgRow>(ORG_BY_SLUG)
            .bind(slug)
            .fetch_optional(pool)
            .await)?;
        row.map(Organization::try_from).transpose()
    }

    /// Creates a user without a password. The email is trimmed and lowercased
    /// first, so emails differing only in case conflict.
    pub async fn create_user(&self, email: &str, display_name: &str) -> Result<User, StoreError> {
        let email = normalize_email(email)?;
        let id = UserId::new_random().to_string();
        let now = now_millis();
        let row = on_pool!(self, pool => sqlx::query_as::<_, UserRow>(INSERT_USER)
            .bind(&id)
            .bind(&email)
            .bind(display_name)
            .bind(now)
            .fetch_one(pool)
            .await);
        match row {
            Ok(row) => row.try_into(),
            Err(err) if matches!(violation(&err), Some(ErrorKind::UniqueViolation)) => {
                Err(StoreError::Conflict {
                    entity: "a user",
                    field: "email",
                    value: email,
                    hint: "sign in as that user or use a different email address",
                })
            }
            Err(err) => Err(err.into()),
        }
    }

    /// Looks up a user by email, ignoring case. An email that could never be
    /// stored finds nothing rather than failing.
    pub async fn user_by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
        let Ok(email) = normalize_email(email) else {
            return Ok(None);
        };
        let row = on_pool!(self, pool => sqlx::query_as::<_, UserRow>(USER_BY_EMAIL)
            .bind(&email)
            .fetch_optional(pool)
            .await)?;
        row.map(User::try_from).transpose()
    }

    /// Gives `user_id` the `role` in `org_id`, adding the membership or
    /// changing its role. Fails with [`StoreError::NotFound`] naming the
    /// organization or user that does not exist.
    pub async fn set_membership(
        &self,
        org_id: OrgId,
        user_id: UserId,
        role: Role,
    ) -> Result<Membership, StoreError> {
        let org = org_id.to_string();
        let user = user_id.to_string();
        let now = now_millis();
        let row = on_pool!(self, pool => sqlx::query_as::<_, MembershipRow>(UPSERT_MEMBERSHIP)
            .bind(&org)
            .bind(&user)
            .bind(role.as_str())
            .bind(now)
            .fetch_one(pool)
            .await);
        match row {
            Ok(row) => row.try_into(),
            Err(err) if matches!(violation(&err), Some(ErrorKind::ForeignKeyViolation)) => {
                Err(self.missing_member_parent(&org, &user).await?)
            }
            Err(err) => Err(err.into()),
        }
    }

    /// Adds `user_id` to `org_id` with `role`. Never changes an existing membership: `None`
    /// when the user is already a member (see [`Self::change_role`]).
    pub async fn add_membership(
        &self,
        org_id: OrgId,
        user_id: UserId,
        role: Role,
    ) -> Result<Option<Membership>, StoreError> {
        let org = org_id.to_string();
        let user = user_id.to_string();
        let row = on_pool!(self, pool => sqlx::query_as::<_, MembershipRow>(ADD_MEMBERSHIP)
            .bind(&org)
            .bind(&user)
            .bind(role.as_str())
            .bind(now_millis())
            .fetch_optional(pool)
            .await);
        match row {
            Ok(row) => row.map(Membership::try_from).transpose(),
            Err(err) if matches!(violation(&err), Some(ErrorKind::ForeignKeyViolation)) => {
                Err(self.missing_member_parent(&org, &user).await?)
            }
            Err(err) => Err(err.into()),
        }
    }

    /// Gives an existing member of `org_id` a new role. Never adds anyone: `None` when
    /// `user_id` is not a member (see [`Self::set_membership`] to add).
    pub async fn change_role(
        &self,
        org_id: OrgId,
        user_id: UserId,
        role: Role,
    ) -> Result<Option<Membership>, StoreError> {
        let result = self.change_role_unflushed(org_id, user_id, role).await;
        if result.is_ok() {
            self.auth_changed();
        }
        result
    }

    async fn change_role_unflushed(
        &self,
        org_id: OrgId,
        user_id: UserId,
        role: Role,
    ) -> Result<Option<Membership>, StoreError> {
        let row = on_pool!(self, pool => sqlx::query_as::<_, MembershipRow>(CHANGE_ROLE)
            .bind(org_id.to_string())
            .bind(user_id.to_string())
            .bind(role.as_str())
            .bind(now_millis())
            .fetch_optional(pool)
            .await)?;
        row.map(Membership::try_from).transpose()
    }

    /// After a foreign-key failure, names which side is missing.
    async fn missing_member_parent(&self, org: &str, user: &str) -> Result<StoreError, StoreError> {
        self.missing_parent(
            &[
                Parent {
                    entity: "organization",
                    exists: ORG_EXISTS,
                    id: org,
                },
                Parent {
                    entity: "user",
                    exists: USER_EXISTS,
                    id: user,
                },
            ],
            "organization or user",
        )
        .await
    }

    /// Maps a failed insert: a unique violation to `conflict`, a foreign-key
    /// violation to [`StoreError::NotFound`] naming the first missing of
    /// `parents` (or `all` of them), anything else to itself.
    async fn insert_failure(
        &self,
        err: sqlx::Error,
        conflict: impl FnOnce() -> StoreError,
        parents: &[Parent<'_>],
        all: &'static str,
    ) -> StoreError {
        match violation(&err) {
            Some(ErrorKind::UniqueViolation) => conflict(),
            Some(ErrorKind::ForeignKeyViolation) => self
                .missing_parent(parents, all)
                .await
                .unwrap_or_else(|lookup_failed| lookup_failed),
            _ => err.into(),
        }
    }

    /// After a foreign-key failure, names the first of `parents` that does
    /// not exist.
    async fn missing_parent(
        &self,
        parents: &[Parent<'_>],
        all: &'static str,
    ) -> Result<StoreError, StoreError> {
        for parent in parents {
            let found = on_pool!(self, pool => sqlx::query_scalar::<_, String>(parent.exists)
                .bind(parent.id)
                .fetch_optional(pool)
                .await)?;
            if found.is_none() {
                return Ok(StoreError::NotFound {
                    entity: parent.entity,
                    id: parent.id.to_owned(),
                });
            }
        }
        // All exist by now, so the failure raced a concurrent change; name
        // them all rather than guess.
        let ids: Vec<&str> = parents.iter().map(|parent| parent.id).collect();
        Ok(StoreError::NotFound {
            entity: all,
            id: ids.join(" / "),
        })
    }

    /// The membership of `user_id` in `org_id`, if any.
    pub async fn membership(
        &self,
        org_id: OrgId,
        user_id: UserId,
    ) -> Result<Option<Membership>, StoreError> {
        let row = on_pool!(self, pool => sqlx::query_as::<_, MembershipRow>(MEMBERSHIP)
            .bind(org_id.to_string())
            .bind(user_id.to_string())
            .fetch_optional(pool)
            .await)?;
        row.map(Membership::try_from).transpose()
    }

    /// Removes `user_id` from `org_id` and revokes their API keys there, in one transaction.
    /// Returns whether a membership existed.
    pub async fn remove_membership(
        &self,
        org_id: OrgId,
        user_id: UserId,
    ) -> Result<bool, StoreError> {
        let result = self.remove_membership_unflushed(org_id, user_id).await;
        if result.is_ok() {
            self.auth_changed();
        }
        result
    }

    async fn remove_membership_unflushed(
        &self,
        org_id: OrgId,
        user_id: UserId,
    ) -> Result<bool, StoreError> {
        let (org, user) = (org_id.to_string(), user_id.to_string());
        let now = now_millis();
        Ok(on_pool!(self, pool => async {
            let mut tx = pool.begin_write().await?;
            let removed = sqlx::query(DELETE_MEMBERSHIP)
                .bind(&org)
                .bind(&user)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if removed > 0 {
                sqlx::query(REVOKE_KEYS_OF_MEMBER)
                    .bind(&org)
                    .bind(&user)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok::<_, StoreError>(removed > 0)
        }
        .await)?)
    }

    /// All members of `org_id` with their users, ordered by email. An unknown
    /// organization has no members.
    pub async fn list_members(&self, org_id: OrgId) -> Result<Vec<(User, Membership)>, StoreError> {
        let rows = on_pool!(self, pool => sqlx::query_as::<_, MemberRow>(LIST_MEMBERS)
            .bind(org_id.to_string())
            .fetch_all(pool)
            .await)?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    /// Whether anyone is a member of any organization (one query, for start-up).
    pub async fn any_membership(&self) -> Result<bool, StoreError> {
        Ok(
            on_pool!(self, pool => sqlx::query_scalar::<_, bool>(ANY_MEMBERSHIP)
            .fetch_one(pool)
            .await)?,
        )
    }

    /// Every organization, ordered by slug.
    pub async fn list_orgs(&self) -> Result<Vec<Organization>, StoreError> {
        let rows = on_pool!(self, pool => sqlx::query_as::<_, OrgRow>(LIST_ORGS)
            .fetch_all(pool)
            .await)?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    /// Every user, disabled ones included, ordered by email.
    pub async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        let rows = on_pool!(self, pool => sqlx::query_as::<_, UserRow>(LIST_USERS)
            .fetch_all(pool)
            .await)?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    /// Disables a user (`Some(time)`) or enables one again (`None`). A disabled user cannot
    /// sign in, and none of their tokens, keys or sessions authenticates. Fails with
    /// [`StoreError::NotFound`] for an unknown user.
    pub async fn set_user_disabled(
        &self,
        user_id: UserId,
        at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<(), StoreError> {
        let result = self.set_user_disabled_unflushed(user_id, at).await;
        if result.is_ok() {
            self.auth_changed();
        }
        result
    }

    async fn set_user_disabled_unflushed(
        &self,
        user_id: UserId,
        at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<(), StoreError> {
        let id = user_id.to_string();
        let updated = on_pool!(self, pool => sqlx::query(SET_USER_DISABLED)
            .bind(&id)
            .bind(at.map(|t| t.timestamp_millis()))
            .execute(pool)
            .await
            .map(|done| done.rows_affected()))?;
        if updated == 0 {
            return Err(StoreError::NotFound { entity: "user", id });
        }
        Ok(())
    }

    /// Looks up an organization by id.
    pub async fn org_by_id(&self, org_id: OrgId) -> Result<Option<Organization>, StoreError> {
        let row = on_pool!(self, pool => sqlx::query_as::<_, OrgRow>(ORG_BY_ID)
            .bind(org_id.to_string())
            .fetch_optional(pool)
            .await)?;
        row.map(Organization::try_from).transpose()
    }

    /// Looks up a user by id.
    pub async fn user_by_id(&self, user_id: UserId) -> Result<Option<User>, StoreError> {
        let row = on_pool!(self, pool => sqlx::query_as::<_, UserRow>(USER_BY_ID)
            .bind(user_id.to_string())
            .fetch_optional(pool)
            .await)?;
        row.map(User::try_from).transpose()
    }

    /// Sets a user's password hash, a PHC string such as `$argon2id$v=19$...`
    /// from the password hasher. Fails with [`StoreError::Invalid`] for
    /// anything not shaped like one (a plain password is refused, and not
    /// echoed), and [`StoreError::NotFound`] for an unknown user.
    pub async fn set_password_hash(&self, user_id: UserId, phc: &str) -> Result<(), StoreError> {
        validate_password_hash(phc)?;
        let id = user_id.to_string();
        let updated = on_pool!(self, pool => sqlx::query(SET_PASSWORD_HASH)
            .bind(&id)
            .bind(phc)
            .execute(pool)
            .await
            .map(|done| done.rows_affected()))?;
        if updated == 0 {
            return Err(StoreError::NotFound { entity: "user", id });
        }
        Ok(())
    }

    /// A user's password hash (PHC string); `None` if the user has none or
    /// does not exist. Same value as [`User::password_hash`].
    pub async fn password_hash(&self, user_id: UserId) -> Result<Option<String>, StoreError> {
        let hash = on_pool!(self, pool => sqlx::query_scalar::<_, Option<String>>(PASSWORD_HASH)
            .bind(user_id.to_string())
            .fetch_optional(pool)
            .await)?;
        Ok(hash.flatten())
    }

    /// The organizations `user_id` belongs to, with the membership in each,
    /// ordered by slug.
    pub async fn orgs_of_user(
        &self,
        user_id: UserId,
    ) -> Result<Vec<(Organization, Membership)>, StoreError> {
        let rows = on_pool!(self, pool => sqlx::query_as::<_, OrgMembershipRow>(ORGS_OF_USER)
            .bind(user_id.to_string())
            .fetch_all(pool)
            .await)?;
        rows.into_iter().map(TryInto::try_into).collect()
    }
}

/// A new row's token hash is already stored. The hash is not echoed.
fn token_hash_conflict() -> StoreError {
    StoreError::Conflict {
        entity: "a token",
        field: "hash",
        value: "<redacted>".to_owned(),
        hint: "generate a new random token; never reuse one",
    }
}

/// Whether a `sqlite:` URL names an in-memory database.
fn is_sqlite_memory_url(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}
