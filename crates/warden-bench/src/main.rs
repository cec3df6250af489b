#![forbid(unsafe_code)]
//! `warden-bench`: a load generator for MCP `tools/call` over Streamable HTTP.
//!
//! It opens N sessions against an already-running server, keeps one call in flight per
//! session, and reports throughput, latency percentiles and the server's peak memory.
//! See `docs/benchmarks.md` and `warden-bench --help`.

mod cli;
mod machine;
mod mcp;
mod report;

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use clap::Parser as _;
use futures::StreamExt as _;
use hdrhistogram::Histogram;
use reqwest::header::HeaderMap;
use tokio::time::Instant;

use crate::cli::Cli;
use crate::machine::{Machine, MemoryReport};
use crate::mcp::{Session, Target};
use crate::report::{Figures, Latency};

/// Sessions opened at once while setting up.
const SETUP_CONCURRENCY: usize = 32;
/// Histogram range in microseconds: 1 µs to one hour, three significant figures.
const HIST_MAX_US: u64 = 3_600_000_000;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let argv: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if let Some(threads) = cli.threads {
        builder.worker_threads(usize::from(threads));
    }
    let result = builder
        .build()
        .context("cannot start the async runtime")
        .and_then(|rt| rt.block_on(run(cli, argv)));
    match result {
        Ok(Finish::Complete) => ExitCode::SUCCESS,
        // The figures were printed; the exit status says the run was cut short.
        Ok(Finish::Interrupted) => ExitCode::from(130),
        Err(e) => {
            eprintln!("warden-bench: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Whether the run went to its end or was stopped with Ctrl-C.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Finish {
    Complete,
    Interrupted,
}

/// How a run ends.
#[derive(Debug, Clone, Copy)]
enum Stop {
    /// Calls that start at or after this instant are not made.
    At(Instant),
    /// This many counted calls in all.
    Count(u64),
}

/// Counters the sessions share with the progress line and the report.
#[derive(Debug, Default)]
struct Counters {
    /// Every finished call, warm-up included (for the progress rate).
    completed: AtomicU64,
    /// Counted calls (started after the warm-up) and the failed ones among them.
    measured: AtomicU64,
    errors: AtomicU64,
    warmup_errors: AtomicU64,
    /// SSE streams the server kept open after their response (see `mcp::DRAIN_GRACE`).
    left_open: AtomicU64,
    /// Handed out per counted call in `Stop::Count` mode.
    tickets: AtomicU64,
    stop: AtomicBool,
    first_error: OnceLock<String>,
    first_warmup_error: OnceLock<String>,
}

async fn run(cli: Cli, argv: Vec<String>) -> anyhow::Result<Finish> {
    match cli.url.scheme() {
        "http" => {}
        "https" => bail!(
            "https is not supported by this build of warden-bench; benchmark the plain http:// listener"
        ),
        other => bail!("--url must be an http:// URL, not {other}://"),
    }
    let sessions = usize::try_from(cli.sessions).context("--sessions is too large")?;
    let machine = Machine::detect();
    let command = report::command_line(&argv);

    if let Some(pid) = cli.pid {
        machine::read_memory(pid).with_context(|| {
            format!("--pid {pid}: cannot read /proc/{pid}/status; is that the server's process id?")
        })?;
    }

    let mut default_headers = HeaderMap::new();
    for (name, value) in &cli.headers {
        default_headers.append(name.clone(), value.clone());
    }
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(sessions.saturating_add(8))
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_nodelay(true)
        .connect_timeout(cli.timeout)
        .default_headers(default_headers)
        .user_agent(concat!("warden-bench/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("cannot build the HTTP client")?;
    let target = Arc::new(Target::new(
        client,
        cli.url.clone(),
        cli.timeout,
        &cli.tool,
        &cli.args,
    ));

    // Memory sampling covers session setup, the warm-up and the measured window.
    let sampling_done = Arc::new(AtomicBool::new(false));
    let sampler = cli
        .pid
        .map(|pid| tokio::spawn(machine::sample_memory(pid, Arc::clone(&sampling_done))));

    let opened = open_sessions(&target, sessions, cli.quiet).await;
    let opened = match opened {
        Ok(s) => s,
        Err(e) => {
            sampling_done.store(true, Ordering::Relaxed);
            return Err(e);
        }
    };

    let counters = Arc::new(Counters::default());
    let interrupts = tokio::spawn(watch_interrupts(Arc::clone(&counters)));

    let start = Instant::now();
    let measure_start = start + cli.warmup;
    let stop = match cli.requests {
        Some(n) => Stop::Count(n),
        None => Stop::At(measure_start + cli.duration),
    };
    if !cli.quiet {
        let what = match cli.requests {
            Some(n) => format!("{n} calls"),
            None => format!("{:.1}s", cli.duration.as_secs_f64()),
        };
        eprintln!(
            "warden-bench: {sessions} sessions on {} (protocol {}); {:.1}s warm-up, then measuring {what}",
            cli.url,
            opened.first().map_or("?", Session::protocol_version),
            cli.warmup.as_secs_f64(),
        );
    }
    let progress =
        (!cli.quiet).then(|| tokio::spawn(progress(Arc::clone(&counters), start, measure_start)));

    let empty = Histogram::<u64>::new_with_bounds(1, HIST_MAX_US, 3)
        .context("cannot create the latency histogram")?;
    let tasks: Vec<_> = opened
        .into_iter()
        .map(|session| {
            tokio::spawn(drive(
                Arc::clone(&target),
                session,
                Arc::clone(&counters),
                empty.clone(),
                measure_start,
                stop,
            ))
        })
        .collect();

    let mut histogram = empty;
    let mut finished = Vec::with_capacity(tasks.len());
    let mut lost_tasks = 0usize;
    for task in futures::future::join_all(tasks).await {
        match task {
            Ok((session, h)) => {
                histogram
                    .add(&h)
                    .map_err(|e| anyhow!("cannot merge latency histograms: {e:?}"))?;
                finished.push(session);
            }
            Err(_) => lost_tasks += 1,
        }
    }
    let end = Instant::now();
    if let Some(p) = progress {
        p.abort();
    }
    interrupts.abort();
    sampling_done.store(true, Ordering::Relaxed);
    let memory: Option<MemoryReport> = match sampler {
        Some(handle) => handle.await.ok(),
        None => None,
    };

    close_sessions(&target, &finished).await;
    if lost_tasks > 0 {
        eprintln!(
            "warden-bench: warning: {lost_tasks} session task(s) ended abnormally; their calls are not in the figures"
        );
    }

    let requests = counters.measured.load(Ordering::Relaxed);
    let errors = counters.errors.load(Ordering::Relaxed);
    let interrupted = counters.stop.load(Ordering::Relaxed);
    let warmup_errors = counters.warmup_errors.load(Ordering::Relaxed);
    if warmup_errors > 0 {
        eprintln!(
            "warden-bench: warning: {warmup_errors} call(s) failed during the warm-up; first: {}",
            counters
                .first_warmup_error
                .get()
                .map_or("?", String::as_str)
        );
    }
    let left_open = counters.left_open.load(Ordering::Relaxed);
    if left_open > 0 {
        eprintln!(
            "warden-bench: warning: the server kept {left_open} SSE response stream(s) open after the \
             response; warden-bench closed those connections after {} ms, so the next calls had to reconnect",
            mcp::DRAIN_GRACE.as_millis()
        );
    }
    if requests == 0 {
        bail!(
            "no calls were measured{}",
            if interrupted {
                " (interrupted during the warm-up)"
            } else {
                ""
            }
        );
    }

    let figures = Figures {
        tool: cli.tool.clone(),
        url: cli.url.to_string(),
        command,
        machine,
        sessions: cli.sessions,
        warmup: cli.warmup,
        requests,
        errors,
        window: end.saturating_duration_since(measure_start),
        latency: Latency::from_micros(&histogram),
        memory,
        first_error: counters.first_error.get().cloned(),
        interrupted,
    };
    print!("{}", figures.table());
    if cli.json {
        println!("{}", figures.to_json());
    }
    if figures.ok() == 0 {
        bail!(
            "all {requests} calls failed; first error: {}",
            figures.first_error.as_deref().unwrap_or("(none recorded)")
        );
    }
    Ok(if interrupted {
        Finish::Interrupted
    } else {
        Finish::Complete
    })
}

/// Open one session first, so that an unreachable server gives one clear error,
/// then the rest a few at a time. On failure, close whatever was opened.
async fn open_sessions(target: &Target, n: usize, quiet: bool) -> anyhow::Result<Vec<Session>> {
    let began = std::time::Instant::now();
    let first = target.open().await?;
    if first.protocol_version() != mcp::PROTOCOL_VERSION {
        eprintln!(
            "warden-bench: warning: the server chose protocol {} (asked for {}); continuing with it",
            first.protocol_version(),
            mcp::PROTOCOL_VERSION
        );
    }
    let rest: Vec<anyhow::Result<Session>> = futures::stream::iter(1..n)
        .map(|_| target.open())
        .buffer_unordered(SETUP_CONCURRENCY)
        .collect()
        .await;
    let mut sessions = vec![first];
    let mut failures = Vec::new();
    for r in rest {
        match r {
            Ok(s) => sessions.push(s),
            Err(e) => failures.push(e),
        }
    }
    if let Some(first_failure) = failures.into_iter().next() {
        let opened = sessions.len();
        close_sessions(target, &sessions).await;
        return Err(first_failure.context(format!("opened only {opened} of {n} sessions")));
    }
    if !quiet {
        eprintln!(
            "warden-bench: opened {n} sessions in {:.2}s",
            began.elapsed().as_secs_f64()
        );
    }
    Ok(sessions)
}

async fn close_sessions(target: &Target, sessions: &[Session]) {
    let results: Vec<Result<(), String>> = futures::stream::iter(sessions)
        .map(|s| target.close(s))
        .buffer_unordered(SETUP_CONCURRENCY)
        .collect()
        .await;
    let failed: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    if let Some(first) = failed.first() {
        eprintln!(
            "warden-bench: warning: {} of {} sessions were not closed cleanly; first: {first}",
            failed.len(),
            sessions.len()
        );
    }
}

/// One session's loop: one call in flight until the run stops.
async fn drive(
    target: Arc<Target>,
    mut session: Session,
    counters: Arc<Counters>,
    mut histogram: Histogram<u64>,
    measure_start: Instant,
    stop: Stop,
) -> (Session, Histogram<u64>) {
    loop {
        if counters.stop.load(Ordering::Relaxed) {
            break;
        }
        let began = Instant::now();
        let counted = began >= measure_start;
        match stop {
            Stop::At(end) if began >= end => break,
            Stop::Count(n) if counted && counters.tickets.fetch_add(1, Ordering::Relaxed) >= n => {
                break;
            }
            _ => {}
        }
        let answer = target.call(&mut session).await;
        let micros = u64::try_from(answer.at.saturating_duration_since(began).as_micros())
            .unwrap_or(u64::MAX);
        counters.completed.fetch_add(1, Ordering::Relaxed);
        if answer.left_open {
            counters.left_open.fetch_add(1, Ordering::Relaxed);
        }
        match (counted, answer.result) {
            (true, Ok(())) => {
                histogram.saturating_record(micros.max(1));
                counters.measured.fetch_add(1, Ordering::Relaxed);
            }
            (true, Err(e)) => {
                counters.measured.fetch_add(1, Ordering::Relaxed);
                counters.errors.fetch_add(1, Ordering::Relaxed);
                let _ = counters.first_error.set(e);
            }
            (false, Ok(())) => {}
            (false, Err(e)) => {
                counters.warmup_errors.fetch_add(1, Ordering::Relaxed);
                let _ = counters.first_warmup_error.set(e);
            }
        }
    }
    (session, histogram)
}

/// Once a second on stderr: time, counted calls, and the rate over the last second.
async fn progress(counters: Arc<Counters>, start: Instant, measure_start: Instant) {
    let mut tick = tokio::time::interval_at(start + Duration::from_secs(1), Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_count = 0u64;
    let mut last_at = start;
    loop {
        tick.tick().await;
        let now = Instant::now();
        let done = counters.completed.load(Ordering::Relaxed);
        let secs = now.saturating_duration_since(last_at).as_secs_f64();
        let rate = if secs > 0.0 {
            (done - last_count) as f64 / secs
        } else {
            0.0
        };
        last_count = done;
        last_at = now;
        let into_measure = now.saturating_duration_since(measure_start).as_secs_f64();
        if now < measure_start || into_measure < 0.5 {
            let warm = now.saturating_duration_since(start).as_secs_f64();
            eprintln!("  warm-up {warm:>3.0}s  {rate:>8.0} req/s");
        } else {
            let measured = counters.measured.load(Ordering::Relaxed);
            let errors = counters.errors.load(Ordering::Relaxed);
            let errs = if errors > 0 {
                format!("  {errors} errors")
            } else {
                String::new()
            };
            eprintln!("  {into_measure:>4.0}s  {measured:>9} req  {rate:>8.0} req/s{errs}");
        }
    }
}

/// First Ctrl-C: stop starting calls and report what was measured.
async fn watch_interrupts(counters: Arc<Counters>) {
    if tokio::signal::ctrl_c().await.is_ok() {
        counters.stop.store(true, Ordering::Relaxed);
        eprintln!("warden-bench: interrupted; finishing calls in flight, then reporting");
    }
}
