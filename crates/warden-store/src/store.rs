//! The [`Store`] handle: connection setup, migrations and the queries.
//!
//! Every query is written once, with `$n` placeholders that sqlx accepts on
//! both SQLite and PostgreSQL, and run through `on_pool!`, which expands the
//! same expression for each backend's pool.

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
    validate_slug,
};

mod rows;
#[cfg(test)]
mod tests;

use rows::{MemberRow, MembershipRow, OrgRow, UserRow, now_millis};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

const SQLITE: &str = "sqlite";
const POSTGRES: &str = "postgres";

/// How long a SQLite writer waits for another writer before failing.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a caller waits for a free pooled connection.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handle to the control-plane database. Cheap to clone: clones share one
/// connection pool.
#[derive(Clone, Debug)]
pub struct Store {
    backend: Backend,
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

const INSERT_ORG: &str = "INSERT INTO organizations (id, slug, name, created_at) \
     VALUES ($1, $2, $3, $4) \
     RETURNING id, slug, name, created_at";

const ORG_BY_SLUG: &str = "SELECT id, slug, name, created_at FROM organizations WHERE slug = $1";

const ORG_EXISTS: &str = "SELECT id FROM organizations WHERE id = $1";

const INSERT_USER: &str = "INSERT INTO users \
     (id, email, display_name, password_hash, created_at, disabled_at) \
     VALUES ($1, $2, $3, NULL, $4, NULL) \
     RETURNING id, email, display_name, password_hash, created_at, disabled_at";

const USER_BY_EMAIL: &str = "SELECT id, email, display_name, password_hash, created_at, disabled_at \
     FROM users WHERE email = $1";

const USER_EXISTS: &str = "SELECT id FROM users WHERE id = $1";

// `created_at` is left alone on update: it records when the user joined.
const UPSERT_MEMBERSHIP: &str = "INSERT INTO memberships \
     (org_id, user_id, role, created_at, updated_at) \
     VALUES ($1, $2, $3, $4, $4) \
     ON CONFLICT (org_id, user_id) \
     DO UPDATE SET role = excluded.role, updated_at = excluded.updated_at \
     RETURNING org_id, user_id, role, created_at, updated_at";

const MEMBERSHIP: &str = "SELECT org_id, user_id, role, created_at, updated_at \
     FROM memberships WHERE org_id = $1 AND user_id = $2";

const DELETE_MEMBERSHIP: &str = "DELETE FROM memberships WHERE org_id = $1 AND user_id = $2";

const LIST_MEMBERS: &str = "SELECT \
     u.id, u.email, u.display_name, u.password_hash, u.created_at, u.disabled_at, \
     m.org_id AS m_org_id, m.role AS m_role, \
     m.created_at AS m_created_at, m.updated_at AS m_updated_at \
     FROM memberships m JOIN users u ON u.id = m.user_id \
     WHERE m.org_id = $1 \
     ORDER BY u.email";

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
                    .connect_with(options)
                    .await
                    .map_err(|source| StoreError::Connect {
                        backend: POSTGRES,
                        source,
                    })?;
                Ok(Store {
                    backend: Backend::Postgres(pool),
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
        let mut pool = SqlitePoolOptions::new().acquire_timeout(ACQUIRE_TIMEOUT);
        if in_memory {
            // An in-memory database lives only while a connection is open:
            // keep one open for the life of the pool.
            pool = pool
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None);
        }
        let pool = pool
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Connect {
                backend: SQLITE,
                source,
            })?;
        Ok(Store {
            backend: Backend::Sqlite(pool),
        })
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

    /// Closes the pool, waiting for checked-out connections to return.
    pub async fn close(&self) {
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

    /// After a foreign-key failure, names which side is missing.
    async fn missing_member_parent(&self, org: &str, user: &str) -> Result<StoreError, StoreError> {
        let org_found = on_pool!(self, pool => sqlx::query_scalar::<_, String>(ORG_EXISTS)
            .bind(org)
            .fetch_optional(pool)
            .await)?;
        if org_found.is_none() {
            return Ok(StoreError::NotFound {
                entity: "organization",
                id: org.to_owned(),
            });
        }
        let user_found = on_pool!(self, pool => sqlx::query_scalar::<_, String>(USER_EXISTS)
            .bind(user)
            .fetch_optional(pool)
            .await)?;
        Ok(if user_found.is_none() {
            StoreError::NotFound {
                entity: "user",
                id: user.to_owned(),
            }
        } else {
            // Both exist by now, so the failure raced a concurrent change;
            // name both rather than guess.
            StoreError::NotFound {
                entity: "organization or user",
                id: format!("{org} / {user}"),
            }
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

    /// Removes `user_id` from `org_id`. Returns whether a membership existed.
    pub async fn remove_membership(
        &self,
        org_id: OrgId,
        user_id: UserId,
    ) -> Result<bool, StoreError> {
        let removed = on_pool!(self, pool => sqlx::query(DELETE_MEMBERSHIP)
            .bind(org_id.to_string())
            .bind(user_id.to_string())
            .execute(pool)
            .await
            .map(|done| done.rows_affected()))?;
        Ok(removed > 0)
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
}

/// Whether a `sqlite:` URL names an in-memory database.
fn is_sqlite_memory_url(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}
