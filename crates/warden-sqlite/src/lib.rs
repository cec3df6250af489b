//! SQLite reads on threads that own their connections: infrastructure shared by the
//! execute stage (`warden-core`'s tool reads) and the state store (`warden-store`'s bearer
//! lookups). It runs closures on read-only connections and knows nothing of what they ask.
//!
//! A job is handed to one of a fixed set of OS threads, each holding a connection opened
//! read-only with its own statement cache, and its whole answer comes back at once: one
//! hand-off to the thread and one back. (A driver that wakes the async side for every row
//! spends more on waking than on SQLite for a small result.)
//!
//! Most reads are short (an index lookup, a page of rows): handing one to another thread
//! and waking the caller again costs more than running it. So [`Readers::read`] first tries
//! a read on the calling thread, on a read-only connection that thread keeps for these
//! readers, under a budget of [`INLINE_BUDGET`] enforced by SQLite's progress handler. Only
//! a read that runs over it, or fails in any way (busy, interrupted, an error), goes to a
//! reader thread, which runs it again from the start and gives the answer. A read has no
//! effects, so running it twice changes nothing but time; the calling thread (a runtime
//! worker) is never held for more than about the budget.

#![forbid(unsafe_code)]

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags};
use tokio::sync::oneshot;

/// Statements each connection keeps prepared. A project has a few dozen at most.
const STATEMENT_CACHE: usize = 128;

/// The longest a read runs on the calling thread before it is given to a reader thread.
pub const INLINE_BUDGET: Duration = Duration::from_millis(1);

/// VM instructions between budget checks on the calling thread: a check costs a clock
/// read, and a millisecond is hundreds of thousands of instructions.
const INLINE_PROGRESS_OPS: i32 = 1_000;

/// What a thread needs to open its own connection for one set of readers; its liveness
/// tells that thread's cache when to drop the connection.
#[derive(Debug)]
struct InlineSource {
    path: PathBuf,
    closed: AtomicBool,
}

thread_local! {
    /// This thread's read-only connections, one per live set of readers it has read from.
    static INLINE: RefCell<Vec<(Weak<InlineSource>, Connection)>> = const { RefCell::new(Vec::new()) };
}

/// Counts reads answered on the calling thread and by reader threads (for tests and
/// benchmarks; relaxed counters).
#[derive(Debug, Default)]
pub struct ReadStats {
    pub inline: AtomicU64,
    pub handed_off: AtomicU64,
}

type Job = Box<dyn FnOnce(&Connection) + Send>;

enum Msg {
    Run(Job),
    Stop,
}

/// Threads that each own a read-only connection to one SQLite file and run what they are
/// handed on it. Used for tool-data reads and by the state store for the bearer lookup
/// every MCP request makes.
#[derive(Debug)]
pub struct Readers {
    jobs: flume::Sender<Msg>,
    threads: std::sync::Mutex<Vec<JoinHandle<()>>>,
    inline: Arc<InlineSource>,
    pub stats: ReadStats,
}

impl Readers {
    /// Opens `count` read-only connections, each on its own thread. Fails if any cannot be
    /// opened, so a bad file is reported at start-up rather than on the first call.
    pub fn open(path: &Path, count: u32, busy: Duration) -> Result<Self, String> {
        let (jobs, queue) = flume::unbounded::<Msg>();
        let mut threads = Vec::with_capacity(count as usize);
        for n in 0..count {
            let conn = open_read_only(path, busy)?;
            let queue = queue.clone();
            let handle = std::thread::Builder::new()
                .name(format!("warden-sqlite-read-{n}"))
                .spawn(move || serve(conn, queue))
                .map_err(|e| format!("cannot start a reader thread: {e}"))?;
            threads.push(handle);
        }
        Ok(Self {
            jobs,
            threads: std::sync::Mutex::new(threads),
            inline: Arc::new(InlineSource {
                path: path.to_path_buf(),
                closed: AtomicBool::new(false),
            }),
            stats: ReadStats::default(),
        })
    }

    /// Runs `f` on this thread's own connection within [`INLINE_BUDGET`]; `None` if it
    /// failed, ran over, or there is no such connection (closed readers, a nested call, a
    /// file that cannot be opened here). For reads only: the caller runs `f` again
    /// elsewhere when this says `None`.
    pub fn try_inline<R, E>(&self, f: impl FnOnce(&Connection) -> Result<R, E>) -> Option<R> {
        let r = self.inline_once(f);
        if r.is_some() {
            self.stats.inline.fetch_add(1, Ordering::Relaxed);
        }
        r
    }

    fn inline_once<R, E>(&self, f: impl FnOnce(&Connection) -> Result<R, E>) -> Option<R> {
        if self.inline.closed.load(Ordering::Acquire) {
            return None;
        }
        INLINE.with(|cell| {
            let mut conns = cell.try_borrow_mut().ok()?;
            // Connections of readers that were closed or dropped are let go here.
            conns.retain(|(source, _)| {
                source
                    .upgrade()
                    .is_some_and(|s| !s.closed.load(Ordering::Acquire))
            });
            let at = match conns
                .iter()
                .position(|(source, _)| std::ptr::eq(source.as_ptr(), Arc::as_ptr(&self.inline)))
            {
                Some(at) => at,
                None => {
                    // No waiting on locks here: a busy database goes to a reader thread.
                    let conn = open_read_only(&self.inline.path, Duration::ZERO).ok()?;
                    conns.push((Arc::downgrade(&self.inline), conn));
                    conns.len() - 1
                }
            };
            let conn = &conns[at].1;
            let deadline = Instant::now() + INLINE_BUDGET;
            conn.progress_handler(
                INLINE_PROGRESS_OPS,
                Some(move || Instant::now() >= deadline),
            )
            .ok()?;
            let result = f(conn).ok();
            let _ = conn.progress_handler(INLINE_PROGRESS_OPS, None::<fn() -> bool>);
            result
        })
    }

    /// Runs `f` on this thread if it finishes within [`INLINE_BUDGET`], and otherwise (or
    /// if it fails) again on a reader thread, whose answer is final. `None` once the
    /// readers are closed. For reads only: `f` may run twice.
    pub async fn read<R: Send + 'static, E: Send + 'static>(
        &self,
        f: impl Fn(&Connection) -> Result<R, E> + Send + 'static,
    ) -> Option<Result<R, E>> {
        if let Some(r) = self.try_inline(&f) {
            return Some(Ok(r));
        }
        self.hand_off(move |c| f(c)).await
    }

    /// [`Self::call`], counted as a read handed off from the calling thread.
    pub async fn hand_off<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> R + Send + 'static,
    ) -> Option<R> {
        self.stats.handed_off.fetch_add(1, Ordering::Relaxed);
        self.call(f).await
    }

    /// Runs `f` on one of the connections and returns what it returned, or `None` once the
    /// readers are closed. `f` runs to its end even if this future is dropped.
    pub async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> R + Send + 'static,
    ) -> Option<R> {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            // The caller may have gone; the answer is then dropped.
            let _ = reply.send(f(conn));
        });
        self.jobs.send(Msg::Run(job)).ok()?;
        answer.await.ok()
    }

    /// Stops every thread once it has finished its current job, and closes the
    /// connections.
    pub async fn close(&self) {
        // Each thread's own connection is dropped the next time that thread reads.
        self.inline.closed.store(true, Ordering::Release);
        let threads = match self.threads.lock() {
            Ok(mut t) => std::mem::take(&mut *t),
            Err(_) => return,
        };
        for _ in &threads {
            let _ = self.jobs.send(Msg::Stop);
        }
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .await;
    }
}

fn open_read_only(path: &Path, busy: Duration) -> Result<Connection, String> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)
        .map_err(|e| format!("cannot open {} for reading: {e}", path.display()))?;
    conn.busy_timeout(busy).map_err(|e| e.to_string())?;
    // The query planner stability guarantee: a statement keeps the plan it was prepared
    // with whatever values are bound. Without it, SQLite (built with STAT4) re-parses and
    // re-plans a cached statement whenever a value bound against an indexed column or a
    // LIKE changes, which for a tool called with new arguments each time is every call:
    // measured at ~9% of the server's CPU on the example's search tool.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
        .map_err(|e| e.to_string())?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

fn serve(conn: Connection, queue: flume::Receiver<Msg>) {
    while let Ok(Msg::Run(job)) = queue.recv() {
        // A panicking job loses only its own answer (its caller is told the readers are
        // gone); the thread and its connection stay for the next one.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&conn)));
    }
}
