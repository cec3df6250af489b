//! The pool on its own: quick reads on the calling thread, slow or failing ones on a reader
//! thread, nothing once closed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::Ordering;
use std::time::Duration;

use warden_sqlite::Readers;

fn readers() -> (tempfile::TempDir, Readers) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data.db");
    let c = rusqlite::Connection::open(&path).unwrap();
    c.execute_batch(
        "PRAGMA journal_mode = WAL;
         CREATE TABLE t (n INTEGER);
         INSERT INTO t VALUES (1), (2), (3);",
    )
    .unwrap();
    drop(c);
    let r = Readers::open(&path, 2, Duration::from_secs(1)).unwrap();
    (dir, r)
}

fn sum(c: &rusqlite::Connection) -> rusqlite::Result<i64> {
    c.query_row("SELECT sum(n) FROM t", [], |row| row.get(0))
}

/// Tens of milliseconds here: far over the inline budget.
fn slow(c: &rusqlite::Connection) -> rusqlite::Result<i64> {
    c.query_row(
        "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 3000000) \
         SELECT count(*) FROM c",
        [],
        |row| row.get(0),
    )
}

#[tokio::test]
async fn quick_reads_stay_on_the_calling_thread_and_slow_ones_are_handed_off() {
    let (_d, r) = readers();
    assert_eq!(r.read(sum).await.unwrap().unwrap(), 6);
    assert_eq!(r.stats.inline.load(Ordering::Relaxed), 1);
    assert_eq!(r.stats.handed_off.load(Ordering::Relaxed), 0);
    assert_eq!(r.read(slow).await.unwrap().unwrap(), 3_000_000);
    assert_eq!(r.stats.inline.load(Ordering::Relaxed), 1);
    assert_eq!(r.stats.handed_off.load(Ordering::Relaxed), 1);
    // A failing read is handed off too, and the reader thread's answer is final.
    let err = r
        .read(|c| c.query_row("SELECT nope FROM t", [], |row| row.get::<_, i64>(0)))
        .await
        .unwrap()
        .unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
    assert_eq!(r.stats.handed_off.load(Ordering::Relaxed), 2);
}

#[tokio::test]
async fn closed_readers_answer_nothing() {
    let (_d, r) = readers();
    assert!(r.read(sum).await.is_some());
    r.close().await;
    assert!(r.read(sum).await.is_none());
    assert!(r.call(sum).await.is_none());
    assert!(r.try_inline(sum).is_none());
}

#[test]
fn a_missing_file_is_an_error_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let err = Readers::open(&dir.path().join("absent.db"), 1, Duration::ZERO).unwrap_err();
    assert!(err.contains("absent.db"), "{err}");
}
