//! The MCP tasks extension (`io.modelcontextprotocol/tasks`, MCP 2026-07-28): a tool call a
//! client gets as a task it polls with `tasks/get`, answers with `tasks/update` and stops
//! with `tasks/cancel`.
//!
//! A task belongs to the principal (organisation and user) whose call made it, as a session
//! does (`session.rs`): to anyone else its id is unknown (-32602), whether it exists or not.
//! The task runs the call through the pipeline like any other, round after round: when the
//! pipeline has questions, they are posted as the task's `inputRequests` and the answers come
//! back through `tasks/update` under the round's `requestState`, so each round is authorized,
//! checked and recorded as a call of its own.
//!
//! Tasks live in this process's memory (rmcp's `TaskManager`) for [`TTL_MS`]: a restart
//! forgets them, and the loader refuses `task` with `server.sessions: stateless`, where the
//! next request may reach another instance. At most [`PER_OWNER`] unfinished tasks per
//! principal and [`IN_ALL`] in all.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::mcp;
use futures::FutureExt as _;
use futures::future::BoxFuture;
use rmcp::ErrorData;
use rmcp::model::{CallToolResult, DetailedTask, ErrorCode, Task};
use rmcp::task_manager::{TaskContext, TaskExit, TaskManager, TaskOptions};
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;
use warden_core::audit::Peer;
use warden_core::identity::Principal;
use warden_core::pipeline::{
    CallError, CallRequest, ClientChannel, Elicited, InputRound, LivePipeline, Source,
};

/// How long a task is kept from its creation (an unfinished one then fails): longer than a
/// round's `requestState` lives (5 minutes), so a question is never outlived by its task.
pub const TTL_MS: u64 = 10 * 60 * 1000;
/// Warden ends an unfinished task itself this long before rmcp's sweep would abort it, so
/// that a call in flight stops where it can and is recorded.
const MARGIN: Duration = Duration::from_secs(30);
/// Suggested polling interval.
pub const POLL_MS: u64 = 250;
/// Unfinished tasks one principal, one organisation and everyone may have at once.
pub const PER_OWNER: usize = 32;
pub const PER_ORG: usize = 256;
pub const IN_ALL: usize = 1024;
/// Tasks kept, finished or not, per principal and in all: what callers can make this
/// process hold (a finished task keeps its result until it expires).
pub const KEPT_PER_OWNER: usize = 256;
pub const KEPT_IN_ALL: usize = 8192;

/// Who a task belongs to: organisation and user; `None` under `auth: none`.
type Owner = Option<(String, String)>;

fn owner_of(p: Option<&Principal>) -> Owner {
    p.map(|p| (p.org.clone(), p.user_id.clone()))
}

/// Who the next round runs as, and from where: the caller who made the task, then the
/// owner (authenticated afresh) who last answered it, so a round runs with the role and
/// scopes of its moment and is recorded with the address it came from.
type Latest = Arc<Mutex<(Option<Principal>, Peer)>>;

struct Entry {
    owner: Owner,
    began: Instant,
    latest: Latest,
}

/// Every task's entry, and the count of unfinished ones by owner, by organisation and in
/// all (kept by [`Unfinished`], so no count needs a scan).
#[derive(Default)]
struct State {
    entries: HashMap<String, Entry>,
    by_owner: HashMap<Owner, usize>,
    by_org: HashMap<Option<String>, usize>,
    all: usize,
}

impl State {
    fn count(&mut self, owner: &Owner, up: bool) {
        let org = owner.as_ref().map(|(o, _)| o.clone());
        for n in [
            self.by_owner.entry(owner.clone()).or_default(),
            self.by_org.entry(org).or_default(),
            &mut self.all,
        ] {
            *n = if up { *n + 1 } else { n.saturating_sub(1) };
        }
        if !up {
            self.by_owner.retain(|_, n| *n > 0);
            self.by_org.retain(|_, n| *n > 0);
        }
    }
}

/// Held by a task's work while it runs: dropped when it ends however it ends (finished,
/// cancelled, failed, aborted), it counts the task as finished.
struct Unfinished {
    state: Arc<Mutex<State>>,
    owner: Owner,
}

impl Drop for Unfinished {
    fn drop(&mut self) {
        if let Ok(mut st) = self.state.lock() {
            st.count(&self.owner, false);
        }
    }
}

/// Every task of this server, with its owner.
#[derive(Default)]
pub struct Tasks {
    manager: TaskManager,
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for Tasks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tasks(..)")
    }
}

/// What a task's call needs, owned: it outlives the request that made it.
pub struct Call {
    /// Each round takes the project serving at its moment (a reload applies; a tool
    /// removed meanwhile fails the task).
    pub pipeline: LivePipeline,
    pub caller: Option<Principal>,
    pub tool: String,
    pub arguments: Option<Map<String, Value>>,
    pub source: Source,
    pub peer: Peer,
    /// The answers and state the creating request carried, and what the client may be asked.
    pub first: InputRound,
}

impl std::fmt::Debug for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Arguments and answers may hold sensitive values; they are never printed.
        f.debug_struct("Call")
            .field("tool", &self.tool)
            .finish_non_exhaustive()
    }
}

fn limited(what: String) -> ErrorData {
    ErrorData::new(
        ErrorCode(mcp::LIMITED),
        format!("{what}; wait for a task to finish, or cancel one with tasks/cancel"),
        None,
    )
}

impl Tasks {
    /// Starts `call` as a task owned by its caller; its first state, as the client sees it.
    pub fn start(&self, call: Call) -> Result<Task, ErrorData> {
        let owner = owner_of(call.caller.as_ref());
        let org = owner.as_ref().map(|(o, _)| o.clone());
        // One lock from the check to the insert: concurrent starts cannot overshoot a cap.
        let mut st = self.lock()?;
        // Every task is gone from the manager two lifetimes after it began.
        let keep = Duration::from_millis(2 * TTL_MS) + Duration::from_secs(60);
        st.entries.retain(|_, e| e.began.elapsed() < keep);
        let kept = st.entries.values().filter(|e| e.owner == owner).count();
        if st.by_owner.get(&owner).copied().unwrap_or(0) >= PER_OWNER {
            return Err(limited(format!(
                "you have {PER_OWNER} unfinished tasks, the most one user may have"
            )));
        }
        if st.by_org.get(&org).copied().unwrap_or(0) >= PER_ORG {
            return Err(limited(format!(
                "your organisation has {PER_ORG} unfinished tasks, the most it may have"
            )));
        }
        if st.all >= IN_ALL {
            return Err(limited(format!(
                "this server has {IN_ALL} unfinished tasks, the most it runs at once"
            )));
        }
        if kept >= KEPT_PER_OWNER || st.entries.len() >= KEPT_IN_ALL {
            return Err(limited(format!(
                "too many tasks are kept ({KEPT_PER_OWNER} per user, {KEPT_IN_ALL} in all, each for {} minutes)",
                TTL_MS / 60_000
            )));
        }
        st.count(&owner, true);
        let guard = Unfinished {
            state: self.state.clone(),
            owner: owner.clone(),
        };
        let latest: Latest = Arc::new(Mutex::new((call.caller.clone(), call.peer.clone())));
        let slot = latest.clone();
        let options = TaskOptions::new()
            .with_ttl_ms(TTL_MS)
            .with_poll_interval_ms(POLL_MS);
        let task = self.manager.spawn(options, move |ctx| {
            Box::pin(async move {
                let _guard = guard;
                std::panic::AssertUnwindSafe(run(call, slot, ctx))
                    .catch_unwind()
                    .await
                    .unwrap_or_else(|_| {
                        Err(TaskExit::Error(ErrorData::internal_error(
                            "the task stopped unexpectedly",
                            None,
                        )))
                    })
            })
        });
        st.entries.insert(
            task.task_id.clone(),
            Entry {
                owner,
                began: Instant::now(),
                latest,
            },
        );
        Ok(task)
    }

    pub fn get(&self, caller: Option<&Principal>, id: &str) -> Result<DetailedTask, ErrorData> {
        self.owned(caller, id)?;
        self.manager.get_task(id).map_err(|_| unknown(id))
    }

    /// Answers a task's questions; its next round runs as the owner is now, from `peer`.
    pub fn update(
        &self,
        caller: Option<&Principal>,
        peer: Peer,
        id: &str,
        responses: impl IntoIterator<Item = (String, Value)>,
    ) -> Result<(), ErrorData> {
        let latest = self.owned(caller, id)?;
        *latest
            .lock()
            .map_err(|_| ErrorData::internal_error("tasks are unavailable", None))? =
            (caller.cloned(), peer);
        self.manager
            .update_task(id, responses)
            .map_err(|_| unknown(id))
    }

    pub fn cancel(&self, caller: Option<&Principal>, id: &str) -> Result<(), ErrorData> {
        self.owned(caller, id)?;
        self.manager.cancel_task(id).map_err(|_| unknown(id))
    }

    /// The same answer for a task that is someone else's as for one that does not exist.
    fn owned(&self, caller: Option<&Principal>, id: &str) -> Result<Latest, ErrorData> {
        let st = self.lock()?;
        match st.entries.get(id) {
            Some(e) if e.owner == owner_of(caller) => Ok(e.latest.clone()),
            Some(_) => {
                tracing::warn!(target: "warden::security", "a task was asked for by someone other than its owner");
                Err(unknown(id))
            }
            None => Err(unknown(id)),
        }
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, State>, ErrorData> {
        self.state
            .lock()
            .map_err(|_| ErrorData::internal_error("tasks are unavailable", None))
    }
}

fn unknown(id: &str) -> ErrorData {
    let shown: String = id.chars().take(64).collect();
    ErrorData::invalid_params(
        format!(
            "no task '{shown}' (it may have expired: tasks are kept {} minutes)",
            TTL_MS / 60_000
        ),
        None,
    )
}

fn out_of_time() -> TaskExit {
    TaskExit::Error(ErrorData::internal_error(
        format!(
            "the task ran out of time: a task lasts under {} minutes, questions included",
            TTL_MS / 60_000
        ),
        None,
    ))
}

/// The task's work: the call, round after round, until it ends, is cancelled or runs out
/// of time.
async fn run(call: Call, latest: Latest, ctx: TaskContext) -> Result<CallToolResult, TaskExit> {
    let deadline =
        tokio::time::Instant::now() + Duration::from_millis(TTL_MS).saturating_sub(MARGIN);
    let mut round = call.first.clone();
    // A key is posted once in a task's life; a question asked again goes under a new one.
    let mut used: HashSet<String> = HashSet::new();
    loop {
        let cancel = CancellationToken::new();
        let channel = TaskChannel {
            round: round.clone(),
        };
        let (caller, peer) = latest.lock().map(|l| l.clone()).map_err(|_| {
            TaskExit::Error(ErrorData::internal_error("tasks are unavailable", None))
        })?;
        let request = CallRequest {
            tool: &call.tool,
            caller: caller.as_ref(),
            arguments: call.arguments.as_ref(),
            source: call.source,
            peer,
            cancel: cancel.clone(),
            channel: &channel,
        };
        let pipeline = call.pipeline.current();
        let outcome = {
            let running = pipeline.call_tool(request);
            tokio::pin!(running);
            tokio::select! {
                r = &mut running => r,
                () = ctx.cancelled() => {
                    // The call stops where it can and is recorded as cancelled.
                    cancel.cancel();
                    let _ = running.await;
                    return Err(TaskExit::Cancelled);
                }
                () = tokio::time::sleep_until(deadline) => {
                    cancel.cancel();
                    let _ = running.await;
                    return Err(out_of_time());
                }
            }
        };
        let asked = match outcome {
            Ok(r) => return Ok(mcp::tool_result(r)),
            Err(CallError::InputRequired(i)) => *i,
            Err(e) => return mcp::task_error(e).map_err(TaskExit::Error),
        };
        let mut posted = Vec::new();
        let mut waits = Vec::new();
        for (key, ask) in asked.asks {
            let mut wire = key.clone();
            let mut n = 1;
            while !used.insert(wire.clone()) {
                n += 1;
                wire = format!("{key}.{n}");
            }
            waits.push(ctx.request_input(wire, mcp::input_request(ask)?));
            posted.push(key);
        }
        let answers = tokio::time::timeout_at(deadline, futures::future::join_all(waits))
            .await
            .map_err(|_| out_of_time())?;
        let mut responses = Map::new();
        for (key, answer) in posted.into_iter().zip(answers) {
            responses.insert(key, answer?);
        }
        round = InputRound {
            responses,
            state: Some(asked.state),
            ..call.first.clone()
        };
    }
}

/// A task cannot be sent notifications or requests: its questions go through `inputRequests`.
struct TaskChannel {
    round: InputRound,
}

impl ClientChannel for TaskChannel {
    fn progress(&self, _: u32, _: u32, _: String) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
    fn log(&self, _: String) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
    fn elicit(&self, _: String, _: Map<String, Value>) -> BoxFuture<'_, Result<Elicited, String>> {
        Box::pin(async { Err("a task asks through its inputRequests".to_string()) })
    }
    fn sample(&self, _: String, _: u32) -> BoxFuture<'_, Result<String, String>> {
        Box::pin(async { Err("a task asks through its inputRequests".to_string()) })
    }
    fn input_round(&self) -> Option<&InputRound> {
        Some(&self.round)
    }
}
