//! Transport, MCP sessions: a session belongs to the principal that opened it.
//!
//! rmcp keeps sessions by id alone, so anyone holding an `Mcp-Session-Id` could post on it,
//! read its stream or end it. This layer sits after authentication and before rmcp: it notes
//! who opened each session (the organisation and user of the request whose response created
//! it) and answers any request naming a session it does not know, or one opened by someone
//! else, exactly as rmcp answers an unknown session (404). The owner's session is untouched.
//!
//! Session ids are never logged whole; [`shown`] keeps the first few characters.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rmcp::transport::streamable_http_server::SessionManager;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use tokio_util::sync::CancellationToken;
use warden_core::identity::Principal;

const HEADER: &str = "mcp-session-id";

/// Who opened a session: the organisation and user of the authenticated principal, or
/// nobody in particular under `auth: none`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Owner {
    Principal { org: String, user: String },
    Anonymous,
}

impl Owner {
    fn of(p: Option<&Principal>) -> Self {
        p.map_or(Self::Anonymous, |p| Self::Principal {
            org: p.org.clone(),
            user: p.user_id.clone(),
        })
    }

    /// Whether `p` is this owner (compared without copying anything).
    fn is(&self, p: Option<&Principal>) -> bool {
        match (self, p) {
            (Self::Principal { org, user }, Some(p)) => *org == p.org && *user == p.user_id,
            (Self::Anonymous, None) => true,
            _ => false,
        }
    }
}

/// The owners of the open sessions, shared by every request of one HTTP service.
#[derive(Debug, Clone)]
pub struct SessionOwners {
    owners: Arc<Mutex<HashMap<String, Owner>>>,
    sessions: Arc<LocalSessionManager>,
}

impl SessionOwners {
    /// Owners of the sessions `sessions` keeps; forgets sessions rmcp has closed (idle
    /// timeout) every minute until `shutdown`.
    pub fn new(sessions: Arc<LocalSessionManager>, shutdown: CancellationToken) -> Self {
        let owners = Self {
            owners: Arc::default(),
            sessions,
        };
        let sweeper = owners.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    _ = tick.tick() => sweeper.sweep().await,
                }
            }
        });
        owners
    }

    /// `None` for a session nobody opened here; else whether `p` opened it.
    fn opened_by(&self, id: &str, p: Option<&Principal>) -> Option<bool> {
        self.owners.lock().ok()?.get(id).map(|o| o.is(p))
    }

    fn insert(&self, id: String, owner: Owner) {
        if let Ok(mut m) = self.owners.lock() {
            m.insert(id, owner);
        }
    }

    fn forget(&self, id: &str) {
        if let Ok(mut m) = self.owners.lock() {
            m.remove(id);
        }
    }

    async fn sweep(&self) {
        let ids: Vec<String> = match self.owners.lock() {
            Ok(m) => m.keys().cloned().collect(),
            Err(_) => return,
        };
        for id in ids {
            let open = self
                .sessions
                .has_session(&Arc::from(id.as_str()))
                .await
                .unwrap_or(false);
            if !open {
                self.forget(&id);
            }
        }
    }
}

/// The first characters of a session id, enough to tell sessions apart in a log.
pub fn shown(id: &str) -> String {
    let head: String = id.chars().take(6).collect();
    format!("{head}…")
}

/// The answer for a session this server does not know, word for word rmcp's own, so that a
/// foreign session cannot be told from one that never existed.
fn unknown_session() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        Body::from("Not Found: Session not found"),
    )
        .into_response()
}

/// The layer: binds new sessions to their opener and refuses everyone else.
pub async fn bind_to_owner(State(s): State<SessionOwners>, req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(HEADER)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let Some(id) = id else {
        let owner = Owner::of(req.extensions().get::<Principal>());
        let res = next.run(req).await;
        if let Some(new) = res.headers().get(HEADER).and_then(|v| v.to_str().ok()) {
            tracing::debug!(session = %shown(new), "session opened");
            s.insert(new.to_string(), owner);
        }
        return res;
    };
    match s.opened_by(&id, req.extensions().get::<Principal>()) {
        Some(true) => {}
        Some(false) => {
            tracing::warn!(
                session = %shown(&id),
                "refused a request naming another principal's MCP session (answered as unknown)"
            );
            return unknown_session();
        }
        None => return unknown_session(),
    }
    let closing = req.method() == Method::DELETE;
    let res = next.run(req).await;
    if res.status() == StatusCode::NOT_FOUND || (closing && res.status().is_success()) {
        s.forget(&id);
    }
    res
}
