//! The audit tables: appending a batch of events to their chains, checkpoints, queries and
//! retention. Appends and checkpoints lock each chain's head row (in chain order, so that
//! writers in several processes cannot deadlock), so sequence numbers never collide.

use std::collections::BTreeMap;
use std::sync::Arc;

use warden_core::audit::Event;

use super::{Backend, BeginWrite, Store};
use crate::StoreError;
use crate::audit::chain::{self, Checkpoint, GENESIS, Record};
use crate::audit::signer::{Signer, checkpoint_message};
use crate::audit::{Filter, SYSTEM_CHAIN};

const RECORD_COLUMNS: &str = "id, chain, seq, ts, request_id, event, org, user_id, user_email, \
     auth_method, credential, source, remote_addr, user_agent, action, params, decision, stage, \
     rule, reason, outcome, duration_us, affected, detail, trace_id, prev_hash, hash";

pub(super) const INSERT_COLUMNS: &str = "INSERT INTO audit_records (chain, seq, ts, request_id, event, org, \
     user_id, user_email, auth_method, credential, source, remote_addr, user_agent, action, \
     params, decision, stage, rule, reason, outcome, duration_us, affected, detail, trace_id, \
     prev_hash, hash) ";

/// Rows per INSERT statement. A batch is cut into chunks of these sizes only (largest
/// first), so each connection prepares at most four statements and keeps them cached;
/// any batch size would otherwise be a new statement to parse. 64 rows × 26 binds stays far
/// below SQLite's 32,766.
const INSERT_CHUNKS: [usize; 4] = [64, 16, 4, 1];

/// The next chunk size for `remaining` rows.
pub(super) fn chunk_len(remaining: usize) -> usize {
    INSERT_CHUNKS
        .into_iter()
        .find(|c| *c <= remaining)
        .unwrap_or(1)
}

/// Creates the head if the chain is new, locks it (the no-op update takes the row lock on
/// PostgreSQL; SQLite holds the database write lock already) and reads it: one round trip.
pub(super) const LOCK_HEAD: &str = "INSERT INTO audit_heads (chain, seq, hash) VALUES ($1, 0, $2) \
     ON CONFLICT (chain) DO UPDATE SET seq = audit_heads.seq RETURNING seq, hash";
pub(super) const SET_HEAD: &str = "UPDATE audit_heads SET seq = $2, hash = $3 WHERE chain = $1";
pub(super) const INSERT_CHECKPOINT: &str = "INSERT INTO audit_checkpoints \
     (chain, seq, hash, ts, kind, key_id, signature) VALUES ($1, $2, $3, $4, $5, $6, $7)";
const LAST_CHECKPOINT_SEQ: &str =
    "SELECT COALESCE(MAX(seq), 0) FROM audit_checkpoints WHERE chain = $1";
const CHAINS: &str = "SELECT chain FROM audit_heads UNION SELECT chain FROM audit_records \
     UNION SELECT chain FROM audit_checkpoints ORDER BY 1";
/// Every chain that has ever been appended to (cheap: one row per chain).
const HEAD_CHAINS: &str = "SELECT chain FROM audit_heads ORDER BY chain";

/// Where each appended event landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    pub chain: String,
    pub seq: i64,
}

/// What a retention purge removed from one chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purged {
    pub chain: String,
    /// Records removed; the chain now starts after `through_seq`.
    pub records: u64,
    pub through_seq: i64,
}

/// The chain an event belongs to.
pub fn chain_of(e: &Event) -> &str {
    e.org.as_deref().unwrap_or(SYSTEM_CHAIN)
}

fn record_of(e: Event, seq: i64, prev_hash: String) -> Record {
    let json = |v: Option<serde_json::Value>| v.map(|v| v.to_string());
    let mut r = Record {
        id: 0,
        chain: chain_of(&e).to_string(),
        seq,
        ts: e.ts,
        request_id: e.request_id,
        event: e.kind.to_string(),
        org: e.org,
        user_id: e.user_id,
        user_email: e.user_email,
        auth_method: e.auth_method,
        credential: e.credential,
        source: e.source.as_str().to_string(),
        remote_addr: e.remote_addr,
        user_agent: e.user_agent,
        action: e.action,
        params: json(e.params),
        decision: e.decision.as_str().to_string(),
        stage: e.stage,
        rule: e.rule,
        reason: e.reason,
        outcome: e.outcome.as_str().to_string(),
        duration_us: e.duration_us.map(|d| i64::try_from(d).unwrap_or(i64::MAX)),
        affected: e.affected.map(|a| serde_json::Value::from(a).to_string()),
        detail: json(e.detail),
        trace_id: e.trace_id,
        prev_hash,
        hash: String::new(),
    };
    r.hash = chain::hash(&r);
    r
}

/// Every chain `events` append to, each with an empty head until it is locked and read.
pub(super) fn heads_of(events: &[Event]) -> BTreeMap<String, (i64, String)> {
    let mut chains = BTreeMap::new();
    for e in events {
        if !chains.contains_key(chain_of(e)) {
            chains.insert(chain_of(e).to_string(), (0, String::new()));
        }
    }
    chains
}

/// Turns `events` into records after the locked `heads`, in order, moving each head along.
pub(super) fn place(
    events: Vec<Event>,
    heads: &mut BTreeMap<String, (i64, String)>,
) -> (Vec<Record>, Vec<Appended>) {
    let mut rows = Vec::with_capacity(events.len());
    let mut placed = Vec::with_capacity(events.len());
    for e in events {
        let Some(head) = heads.get_mut(chain_of(&e)) else {
            continue;
        };
        let r = record_of(e, head.0 + 1, std::mem::take(&mut head.1));
        *head = (r.seq, r.hash.clone());
        placed.push(Appended {
            chain: r.chain.clone(),
            seq: r.seq,
        });
        rows.push(r);
    }
    (rows, placed)
}

/// The periodic checkpoints due at the new `heads`.
pub(super) fn due_checkpoints(
    checkpoint: Option<&(Arc<Signer>, Vec<String>)>,
    heads: &BTreeMap<String, (i64, String)>,
) -> Vec<Checkpoint> {
    let Some((signer, due)) = checkpoint else {
        return Vec::new();
    };
    due.iter()
        .filter_map(|chain| {
            let (seq, hash) = heads.get(chain.as_str())?;
            Some(signed(signer, chain, *seq, hash, "periodic"))
        })
        .collect()
}

fn signed(signer: &Signer, chain: &str, seq: i64, hash: &str, kind: &str) -> Checkpoint {
    let ts = warden_core::audit::now();
    let signature = signer.sign(&checkpoint_message(chain, seq, hash, &ts, kind));
    Checkpoint {
        id: 0,
        chain: chain.to_string(),
        seq,
        hash: hash.to_string(),
        ts,
        kind: kind.to_string(),
        key_id: signer.verifier().key_id().to_string(),
        signature,
    }
}

/// Pushes `, (...)`-separated bound rows; one macro for both backends' builders.
macro_rules! insert_records {
    ($tx:expr, $rows:expr) => {{
        let mut rest: &[Record] = &$rows;
        while !rest.is_empty() {
            let (chunk, tail) = rest.split_at(chunk_len(rest.len()));
            rest = tail;
            let mut qb = sqlx::QueryBuilder::new(INSERT_COLUMNS);
            qb.push_values(chunk, |mut b, r: &Record| {
                b.push_bind(&r.chain)
                    .push_bind(r.seq)
                    .push_bind(&r.ts)
                    .push_bind(&r.request_id)
                    .push_bind(&r.event)
                    .push_bind(&r.org)
                    .push_bind(&r.user_id)
                    .push_bind(&r.user_email)
                    .push_bind(&r.auth_method)
                    .push_bind(&r.credential)
                    .push_bind(&r.source)
                    .push_bind(&r.remote_addr)
                    .push_bind(&r.user_agent)
                    .push_bind(&r.action)
                    .push_bind(&r.params)
                    .push_bind(&r.decision)
                    .push_bind(&r.stage)
                    .push_bind(&r.rule)
                    .push_bind(&r.reason)
                    .push_bind(&r.outcome)
                    .push_bind(r.duration_us)
                    .push_bind(&r.affected)
                    .push_bind(&r.detail)
                    .push_bind(&r.trace_id)
                    .push_bind(&r.prev_hash)
                    .push_bind(&r.hash);
            });
            qb.build().execute(&mut *$tx).await?;
        }
    }};
}

macro_rules! insert_checkpoint {
    ($tx:expr, $cp:expr) => {{
        let cp: &Checkpoint = $cp;
        sqlx::query(INSERT_CHECKPOINT)
            .bind(&cp.chain)
            .bind(cp.seq)
            .bind(&cp.hash)
            .bind(&cp.ts)
            .bind(&cp.kind)
            .bind(&cp.key_id)
            .bind(&cp.signature)
            .execute(&mut *$tx)
            .await?;
    }};
}

/// Locks and reads a chain's head, creating it if new.
macro_rules! lock_head {
    ($tx:expr, $chain:expr) => {{
        // `fetch_all`, not `fetch_one`: the statement runs to completion, so nothing of it
        // lingers on the connection (a half-stepped RETURNING statement is what left sqlx
        // reporting stale affected-row counts).
        let heads: Vec<(i64, String)> = sqlx::query_as(LOCK_HEAD)
            .bind($chain)
            .bind(GENESIS)
            .fetch_all(&mut *$tx)
            .await?;
        match heads.into_iter().next() {
            Some(head) => head,
            None => return Err(StoreError::Database(sqlx::Error::RowNotFound)),
        }
    }};
}

/// The filters `warden log` and the console share, each a bound parameter ANDed on.
macro_rules! push_filters {
    ($qb:expr, $filter:expr) => {{
        let (qb, filter) = ($qb, $filter);
        if let Some(v) = &filter.since {
            qb.push(" AND ts >= ").push_bind(v.clone());
        }
        if let Some(v) = &filter.until {
            qb.push(" AND ts < ").push_bind(v.clone());
        }
        if let Some(v) = &filter.user {
            qb.push(" AND (user_email = ")
                .push_bind(v.to_lowercase())
                .push(" OR user_id = ")
                .push_bind(v.clone())
                .push(")");
        }
        if let Some(v) = &filter.user_id {
            qb.push(" AND user_id = ").push_bind(v.clone());
        }
        if let Some(v) = &filter.tool {
            qb.push(" AND action = ").push_bind(v.clone());
        }
        if let Some(v) = &filter.client {
            qb.push(" AND credential = ").push_bind(v.clone());
        }
        if let Some(v) = &filter.outcome {
            qb.push(" AND outcome = ").push_bind(v.clone());
        }
        if let Some(v) = &filter.decision {
            qb.push(" AND decision = ").push_bind(v.clone());
        }
        if let Some(v) = &filter.event {
            qb.push(" AND event = ").push_bind(v.clone());
        }
        if let Some(v) = &filter.source {
            qb.push(" AND source = ").push_bind(v.clone());
        }
        if let Some(v) = filter.before_seq {
            qb.push(" AND seq < ").push_bind(v);
        }
    }};
}

/// The console's page query after its SELECT: one chain, the filters, newest first by seq.
macro_rules! page_query {
    ($qb:expr, $chain:expr, $filter:expr) => {{
        let (qb, filter) = (&mut $qb, $filter);
        qb.push(" WHERE chain = ").push_bind($chain.to_string());
        push_filters!(&mut *qb, filter);
        qb.push(" ORDER BY seq DESC LIMIT ")
            .push_bind(i64::try_from(filter.limit).unwrap_or(i64::MAX));
    }};
}

impl Store {
    /// Appends `events` to their chains in one durable transaction, in order, and signs a
    /// checkpoint at the new head of each chain in `checkpoint`. Returns where each landed.
    pub async fn audit_append(
        &self,
        events: Vec<Event>,
        checkpoint: Option<(Arc<Signer>, Vec<String>)>,
    ) -> Result<Vec<Appended>, StoreError> {
        if let Some(appender) = &self.appender {
            return appender.append(events, checkpoint).await;
        }
        let mut chains = heads_of(&events);
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            // In chain order: two writers lock heads in the same order.
            for (chain, head) in chains.iter_mut() {
                *head = lock_head!(tx, chain.as_str());
            }
            let (rows, placed) = place(events, &mut chains);
            insert_records!(tx, rows);
            for (chain, (seq, hash)) in &chains {
                sqlx::query(SET_HEAD).bind(chain).bind(*seq).bind(hash).execute(&mut *tx).await?;
            }
            for cp in due_checkpoints(checkpoint.as_ref(), &chains) {
                insert_checkpoint!(tx, &cp);
            }
            tx.commit().await?;
            Ok(placed)
        })
    }

    /// Whether the trail could take a record now, without adding one: a write transaction
    /// (the same kind an append opens) inserts a stand-in record and is rolled back. It
    /// fails as an append would on a store that is unreachable, read-only, locked beyond
    /// its busy timeout, or refuses inserts into the trail (a trigger, revoked rights); a
    /// disk that is full may only show when a real commit needs the space.
    pub async fn audit_probe(&self) -> Result<(), StoreError> {
        let probe = [Record {
            id: 0,
            chain: SYSTEM_CHAIN.to_string(),
            seq: 0,
            ts: warden_core::audit::now(),
            request_id: String::new(),
            event: "readiness_probe".into(),
            org: None,
            user_id: None,
            user_email: None,
            auth_method: None,
            credential: None,
            source: "system".into(),
            remote_addr: None,
            user_agent: None,
            action: String::new(),
            params: None,
            decision: "allowed".into(),
            stage: None,
            rule: None,
            reason: None,
            outcome: "success".into(),
            duration_us: None,
            affected: None,
            detail: None,
            trace_id: None,
            prev_hash: GENESIS.into(),
            hash: GENESIS.into(),
        }];
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            insert_records!(tx, probe);
            tx.rollback().await?;
            Ok(())
        })
    }

    /// Signs a checkpoint at the head of every chain that has records no checkpoint covers
    /// yet. Returns how many were written.
    pub async fn audit_checkpoint(&self, signer: &Signer, kind: &str) -> Result<u64, StoreError> {
        let chains = self.audit_head_chains().await?;
        let mut written = 0;
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            for chain in &chains {
                let (seq, hash) = lock_head!(tx, chain.as_str());
                let covered: (i64,) = sqlx::query_as(LAST_CHECKPOINT_SEQ)
                    .bind(chain)
                    .fetch_one(&mut *tx)
                    .await?;
                if seq > covered.0 {
                    insert_checkpoint!(tx, &signed(signer, chain, seq, &hash, kind));
                    written += 1;
                }
            }
            tx.commit().await?;
            Ok(written)
        })
    }

    async fn audit_head_chains(&self) -> Result<Vec<String>, StoreError> {
        let rows: Vec<(String,)> =
            on_pool!(self, pool => sqlx::query_as(HEAD_CHAINS).fetch_all(pool).await)?;
        Ok(rows.into_iter().map(|(c,)| c).collect())
    }

    /// Every chain the trail knows of, including any whose head row is gone (which
    /// verification then reports).
    pub async fn audit_chains(&self) -> Result<Vec<String>, StoreError> {
        let rows: Vec<(String,)> =
            on_pool!(self, pool => sqlx::query_as(CHAINS).fetch_all(pool).await)?;
        Ok(rows.into_iter().map(|(c,)| c).collect())
    }

    /// One chain's records in chain order: by sequence number, then row id.
    pub async fn audit_chain(&self, chain: &str) -> Result<Vec<Record>, StoreError> {
        let sql =
            format!("SELECT {RECORD_COLUMNS} FROM audit_records WHERE chain = $1 ORDER BY seq, id");
        Ok(on_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(chain).fetch_all(pool).await
        })?)
    }

    pub async fn audit_checkpoints(&self, chain: &str) -> Result<Vec<Checkpoint>, StoreError> {
        const SQL: &str = "SELECT id, chain, seq, hash, ts, kind, key_id, signature \
             FROM audit_checkpoints WHERE chain = $1 ORDER BY seq, id";
        Ok(on_pool!(self, pool => sqlx::query_as(SQL).bind(chain).fetch_all(pool).await)?)
    }

    /// Records matching `filter`: the newest `filter.limit`, oldest first.
    pub async fn audit_query(&self, filter: &Filter) -> Result<Vec<Record>, StoreError> {
        macro_rules! build {
            ($qb:expr) => {{
                let qb = &mut $qb;
                qb.push(" WHERE 1 = 1");
                if let Some(v) = &filter.org {
                    qb.push(" AND chain = ").push_bind(v.clone());
                }
                push_filters!(&mut *qb, filter);
                qb.push(" ORDER BY ts DESC, id DESC LIMIT ")
                    .push_bind(i64::try_from(filter.limit).unwrap_or(i64::MAX));
            }};
        }
        let head = format!("SELECT {RECORD_COLUMNS} FROM audit_records");
        let mut rows: Vec<Record> = match &self.backend {
            Backend::Sqlite(pool) => {
                let mut qb = sqlx::QueryBuilder::<sqlx::Sqlite>::new(head);
                build!(qb);
                qb.build_query_as().fetch_all(pool).await?
            }
            Backend::Postgres(pool) => {
                let mut qb = sqlx::QueryBuilder::<sqlx::Postgres>::new(head);
                build!(qb);
                qb.build_query_as().fetch_all(pool).await?
            }
        };
        rows.reverse();
        Ok(rows)
    }

    /// One page of `chain`'s records matching `filter` (its `org` is ignored: the chain is
    /// the caller's to name), newest first by `seq`, at most `filter.limit`, below
    /// `filter.before_seq` when set. Keyset paging, never OFFSET: each page is an index range
    /// on `(chain, seq)`, `(chain, user_id, seq)` or `(chain, action, seq)` (migration 0013),
    /// however deep.
    pub async fn audit_page(
        &self,
        chain: &str,
        filter: &Filter,
    ) -> Result<Vec<Record>, StoreError> {
        let head = format!("SELECT {RECORD_COLUMNS} FROM audit_records");
        Ok(match &self.backend {
            Backend::Sqlite(pool) => {
                let mut qb = sqlx::QueryBuilder::<sqlx::Sqlite>::new(head);
                page_query!(qb, chain, filter);
                qb.build_query_as().fetch_all(pool).await?
            }
            Backend::Postgres(pool) => {
                let mut qb = sqlx::QueryBuilder::<sqlx::Postgres>::new(head);
                page_query!(qb, chain, filter);
                // Not a kept prepared statement: after five runs PostgreSQL may switch a kept
                // one to a generic plan, which cannot see which user or tool is asked for
                // and walked the whole chain (300 ms on a million records); an unnamed one
                // is planned for its values every time.
                qb.build_query_as()
                    .persistent(false)
                    .fetch_all(pool)
                    .await?
            }
        })
    }

    /// The plan the database makes for [`Store::audit_page`] with these arguments (SQLite's
    /// `EXPLAIN QUERY PLAN` details, PostgreSQL's `EXPLAIN` lines): the same statement, to
    /// show which index a page uses (`warden-trail-bench` prints it).
    pub async fn audit_page_plan(
        &self,
        chain: &str,
        filter: &Filter,
    ) -> Result<Vec<String>, StoreError> {
        let head = format!("SELECT {RECORD_COLUMNS} FROM audit_records");
        Ok(match &self.backend {
            Backend::Sqlite(pool) => {
                let mut qb =
                    sqlx::QueryBuilder::<sqlx::Sqlite>::new(format!("EXPLAIN QUERY PLAN {head}"));
                page_query!(qb, chain, filter);
                let rows: Vec<(i64, i64, i64, String)> =
                    qb.build_query_as().fetch_all(pool).await?;
                rows.into_iter().map(|r| r.3).collect()
            }
            Backend::Postgres(pool) => {
                let mut qb = sqlx::QueryBuilder::<sqlx::Postgres>::new(format!("EXPLAIN {head}"));
                page_query!(qb, chain, filter);
                let rows: Vec<(String,)> = qb.build_query_as().fetch_all(pool).await?;
                rows.into_iter().map(|r| r.0).collect()
            }
        })
    }

    /// The record at `seq` in `chain`, looked up in that chain only; the first by id should
    /// a tampered chain hold two.
    pub async fn audit_record(&self, chain: &str, seq: i64) -> Result<Option<Record>, StoreError> {
        let sql = format!(
            "SELECT {RECORD_COLUMNS} FROM audit_records WHERE chain = $1 AND seq = $2 ORDER BY id LIMIT 1"
        );
        Ok(on_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(chain).bind(seq).fetch_optional(pool).await
        })?)
    }

    /// Removes records older than `before` (an RFC 3339 UTC time as records store it). For
    /// each chain it first signs a `base` checkpoint at the last record removed, in the same
    /// transaction, so the rest of the chain still verifies from there.
    pub async fn audit_purge(
        &self,
        before: &str,
        signer: &Signer,
    ) -> Result<Vec<Purged>, StoreError> {
        // Both walk the `ts` index over old records only: what is kept is never scanned, so
        // a purge with nothing to remove costs one index probe and takes no write lock
        // (run at every start, it used to hold the lock for seconds on a large trail while
        // every call waited for its record).
        const ANY_OLD: &str = "SELECT 1 FROM audit_records WHERE ts < $1 LIMIT 1";
        const LAST_OLD: &str = "SELECT seq, hash FROM audit_records WHERE chain = $1 AND ts < $2 \
             ORDER BY ts DESC, seq DESC LIMIT 1";
        const DELETE: &str = "DELETE FROM audit_records WHERE chain = $1 AND seq <= $2";
        const DELETE_CHECKPOINTS: &str =
            "DELETE FROM audit_checkpoints WHERE chain = $1 AND seq < $2";
        let any_old: Vec<(i32,)> = on_pool!(self, pool => sqlx::query_as(ANY_OLD)
            .bind(before)
            .fetch_all(pool)
            .await)?;
        if any_old.is_empty() {
            return Ok(Vec::new());
        }
        let chains = self.audit_head_chains().await?;
        let mut purged = Vec::new();
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            for chain in &chains {
                let _ = lock_head!(tx, chain.as_str());
                let last: Option<(i64, String)> = sqlx::query_as(LAST_OLD)
                    .bind(chain)
                    .bind(before)
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some((seq, hash)) = last else { continue };
                insert_checkpoint!(tx, &signed(signer, chain, seq, &hash, "base"));
                let removed = sqlx::query(DELETE).bind(chain).bind(seq).execute(&mut *tx).await?.rows_affected();
                sqlx::query(DELETE_CHECKPOINTS).bind(chain).bind(seq).execute(&mut *tx).await?;
                purged.push(Purged { chain: chain.clone(), records: removed, through_seq: seq });
            }
            tx.commit().await?;
            Ok(purged)
        })
    }
}
