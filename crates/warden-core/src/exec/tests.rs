use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::sqlite_read::{INLINE_BUDGET, Readers, run};
use super::{Limits, SqlValue};

/// A file with one small table, and readers on it.
fn readers() -> (tempfile::TempDir, Readers) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data.db");
    let c = rusqlite::Connection::open(&path).unwrap();
    c.execute_batch(
        "PRAGMA journal_mode = WAL;
         CREATE TABLE t (n INTEGER, label TEXT);
         INSERT INTO t VALUES (1, 'one'), (2, 'two'), (3, 'three');",
    )
    .unwrap();
    drop(c);
    let r = Readers::open(&path, 2, Duration::from_secs(1)).unwrap();
    (dir, r)
}

fn limits() -> Limits {
    Limits {
        timeout: Duration::from_secs(10),
        max_rows: 100,
    }
}

/// Runs for far longer than the inline budget (tens of milliseconds here).
const SLOW: &str = "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 3000000) \
     SELECT count(*) AS n FROM c";

#[tokio::test]
async fn a_quick_read_runs_on_the_calling_thread_and_a_slow_one_is_handed_off_and_finished() {
    let (_dir, r) = readers();
    let never = CancellationToken::new();
    let out = run(
        &r,
        "SELECT n, label FROM t WHERE n >= ? ORDER BY n",
        &[SqlValue::Int(2)],
        limits(),
        &never,
    )
    .await
    .unwrap();
    assert_eq!(out.rows.len(), 2);
    assert_eq!(out.rows[1]["label"], "three");
    assert_eq!(r.stats.inline.load(Ordering::Relaxed), 1);
    assert_eq!(r.stats.handed_off.load(Ordering::Relaxed), 0);

    // Over budget on this thread: stopped there, then run to its end by a reader thread.
    let started = std::time::Instant::now();
    let out = run(&r, SLOW, &[], limits(), &never).await.unwrap();
    assert!(started.elapsed() > INLINE_BUDGET);
    assert_eq!(out.rows[0]["n"], 3_000_000);
    assert_eq!(r.stats.inline.load(Ordering::Relaxed), 1);
    assert_eq!(r.stats.handed_off.load(Ordering::Relaxed), 1);

    // A statement that fails is retried by a reader thread, whose error is the answer.
    let err = run(&r, "SELECT nope FROM t", &[], limits(), &never)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
    assert_eq!(r.stats.handed_off.load(Ordering::Relaxed), 2);

    // The generic read: the same two paths.
    let quick = r
        .read(|c| c.query_row("SELECT count(*) FROM t", [], |row| row.get::<_, i64>(0)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(quick, 3);
    assert_eq!(r.stats.inline.load(Ordering::Relaxed), 2);
    let slow = r
        .read(|c| c.query_row(SLOW, [], |row| row.get::<_, i64>(0)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(slow, 3_000_000);
    assert_eq!(r.stats.handed_off.load(Ordering::Relaxed), 3);
    r.close().await;
}

#[tokio::test]
async fn closed_readers_answer_nothing_on_any_thread() {
    let (_dir, r) = readers();
    let sum = |c: &rusqlite::Connection| {
        c.query_row("SELECT sum(n) FROM t", [], |row| row.get::<_, i64>(0))
    };
    assert_eq!(r.read(sum).await.unwrap().unwrap(), 6);
    r.close().await;
    assert!(r.read(sum).await.is_none());
    let err = run(
        &r,
        "SELECT n FROM t",
        &[],
        limits(),
        &CancellationToken::new(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("closed"), "{err}");
}

#[tokio::test]
async fn a_read_sees_what_was_committed_before_it() {
    // The calling thread's connection is kept between reads; it must not serve an old
    // snapshot after another connection commits.
    let (dir, r) = readers();
    let count = |c: &rusqlite::Connection| {
        c.query_row("SELECT count(*) FROM t", [], |row| row.get::<_, i64>(0))
    };
    assert_eq!(r.read(count).await.unwrap().unwrap(), 3);
    let w = rusqlite::Connection::open(dir.path().join("data.db")).unwrap();
    w.execute("INSERT INTO t VALUES (4, 'four')", []).unwrap();
    assert_eq!(r.read(count).await.unwrap().unwrap(), 4);
    assert_eq!(r.stats.inline.load(Ordering::Relaxed), 2);
    r.close().await;
}
