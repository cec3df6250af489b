//! The trail pages: `GET /console/activity` (the member's own records), and for an Admin
//! `GET /console/admin/audit` (the organisation's trail with the chain's verification),
//! `GET /console/admin/audit/record` (one record in full) and `POST
//! /console/admin/audit/export` (the signed export as one file; a form with a CSRF token,
//! since each export is recorded). `warden_auth::console` decides and records; this file
//! reads the query, renders, and sets the download's headers.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Form, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use warden_auth::console::{ChainStatus, Member, TrailPage, TrailQuery};
use warden_store::audit::Record;

use super::account::form_admin;
use super::{admin_page, back_to, console_error, member};
use crate::web::oauth::{AuthState, csrf_unavailable, new_csrf};
use crate::web::page;

const ACTIVITY: &str = "/console/activity";
const AUDIT: &str = "/console/admin/audit";
const RECORD: &str = "/console/admin/audit/record";

/// The query a trail page takes: the organisation, the filters, and the keyset.
#[derive(Debug, Default, Deserialize)]
pub(super) struct TrailParams {
    org: Option<String>,
    since: Option<String>,
    until: Option<String>,
    user: Option<String>,
    tool: Option<String>,
    status: Option<String>,
    decision: Option<String>,
    event: Option<String>,
    client: Option<String>,
    source: Option<String>,
    before: Option<String>,
}

impl TrailParams {
    fn query(&self, with_user: bool) -> TrailQuery {
        TrailQuery {
            since: self.since.clone(),
            until: self.until.clone(),
            user: if with_user { self.user.clone() } else { None },
            tool: self.tool.clone(),
            status: self.status.clone(),
            decision: self.decision.clone(),
            event: self.event.clone(),
            client: self.client.clone(),
            source: self.source.clone(),
            before: self.before.as_deref().and_then(|b| b.trim().parse().ok()),
        }
    }

    /// `path` with the organisation and these filters, starting below `before`.
    fn url(&self, path: &str, org: &str, with_user: bool, before: Option<i64>) -> String {
        let before = before.map(|b| b.to_string());
        let mut q: Vec<(&str, &str)> = vec![("org", org)];
        for (k, v) in [
            ("since", &self.since),
            ("until", &self.until),
            ("user", if with_user { &self.user } else { &None }),
            ("tool", &self.tool),
            ("status", &self.status),
            ("decision", &self.decision),
            ("event", &self.event),
            ("client", &self.client),
            ("source", &self.source),
            ("before", &before),
        ] {
            if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
                q.push((k, v));
            }
        }
        format!(
            "{path}?{}",
            serde_urlencoded::to_string(q).unwrap_or_default()
        )
    }

    /// The filter form's current values.
    fn shown(&self) -> minijinja::Value {
        let v = |x: &Option<String>| x.clone().unwrap_or_default();
        minijinja::context! {
            since => v(&self.since), until => v(&self.until), user => v(&self.user),
            tool => v(&self.tool), status => v(&self.status), decision => v(&self.decision),
            event => v(&self.event), client => v(&self.client), source => v(&self.source),
            filtered => [&self.since, &self.until, &self.user, &self.tool, &self.status,
                &self.decision, &self.event, &self.client, &self.source]
                .iter()
                .any(|x| x.as_deref().is_some_and(|s| !s.trim().is_empty())),
        }
    }
}

/// How a record's decision and outcome read in a row.
fn result_of(r: &Record) -> String {
    match (r.decision.as_str(), r.stage.as_deref()) {
        ("denied", Some(stage)) => format!("denied at {stage}"),
        _ => match r.outcome.as_str() {
            "success" => "ok".into(),
            "tool_error" => "error".into(),
            "confirmation_required" => "confirmation asked".into(),
            other => other.to_string(),
        },
    }
}

fn row(r: &Record) -> minijinja::Value {
    minijinja::context! {
        seq => r.seq,
        ts => r.ts.as_str(),
        event => r.event.as_str(),
        action => r.action.as_str(),
        user => r.user_email.as_deref().or(r.user_id.as_deref()).unwrap_or("-"),
        source => r.source.as_str(),
        client => r.credential.as_deref().unwrap_or(""),
        result => result_of(r),
        denied => r.decision == "denied",
        reason => r.reason.as_deref().unwrap_or(""),
    }
}

/// A JSON column pretty-printed for reading (as stored when it is not JSON).
fn pretty(v: Option<&str>) -> Option<String> {
    let v = v?;
    Some(
        serde_json::from_str::<serde_json::Value>(v)
            .and_then(|j| serde_json::to_string_pretty(&j))
            .unwrap_or_else(|_| v.to_string()),
    )
}

fn page_context(
    m: &Member,
    p: &TrailPage,
    params: &TrailParams,
    path: &str,
    admin: bool,
) -> (Vec<minijinja::Value>, Option<String>) {
    let rows = p.records.iter().map(row).collect();
    let older = p
        .older
        .map(|b| params.url(path, &m.org().slug, admin, Some(b)));
    (rows, older)
}

pub(super) async fn activity(
    State(s): State<AuthState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Query<TrailParams>,
) -> Result<Response, Response> {
    let m = member(
        &s,
        &headers,
        addr,
        q.org.as_deref(),
        &back_to(ACTIVITY, q.org.as_deref()),
    )
    .await?;
    let p = s
        .auth
        .console()
        .activity(&m, &q.query(false))
        .await
        .map_err(console_error)?;
    let (rows, older) = page_context(&m, &p, &q, ACTIVITY, false);
    Ok(page(
        StatusCode::OK,
        "console_activity.html",
        minijinja::context! {
            email => m.user().email.as_str(),
            org => m.org().slug.as_str(),
            org_name => m.org().name.as_str(),
            is_admin => m.role() == warden_store::Role::Admin,
            rows,
            older,
            paged => q.query(false).before.is_some(),
            first_page => params_first(&q, &m, ACTIVITY, false),
            f => q.shown(),
        },
        HeaderMap::new(),
    ))
}

fn params_first(q: &TrailParams, m: &Member, path: &str, admin: bool) -> String {
    q.url(path, &m.org().slug, admin, None)
}

fn status_context(st: &ChainStatus) -> minijinja::Value {
    let r = &st.report;
    minijinja::context! {
        ok => r.problem.is_none(),
        records => r.records,
        first_seq => r.first_seq,
        last_seq => r.last_seq,
        checkpoints => r.checkpoints,
        problem_kind => r.problem.as_ref().map(|b| b.kind.as_str()),
        problem_seq => r.problem.as_ref().map(|b| b.seq),
        problem_detail => r.problem.as_ref().map(|b| b.detail.clone()),
        checkpoint_seq => st.last_checkpoint.as_ref().map(|c| c.seq),
        checkpoint_ts => st.last_checkpoint.as_ref().map(|c| c.ts.clone()),
        checkpoint_key => st.last_checkpoint.as_ref().map(|c| c.key_id.clone()),
        checkpoint_kind => st.last_checkpoint.as_ref().map(|c| c.kind.clone()),
        unsigned_from => match (r.last_seq, r.last_checkpoint_seq) {
            (Some(last), Some(cp)) if last > cp => Some(cp + 1),
            (Some(_), None) => r.first_seq,
            _ => None,
        },
        keys => st.keys.join(", "),
    }
}

pub(super) async fn audit(
    State(s): State<AuthState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Query<TrailParams>,
) -> Result<Response, Response> {
    let (m, admin) = admin_page(&s, &headers, addr, q.org.as_deref(), AUDIT).await?;
    let console = s.auth.console();
    let query = q.query(true);
    let p = console.audit(&admin, &query).await.map_err(console_error)?;
    // The chain is verified on the first page only; paging through does not repeat it.
    let status = if query.before.is_none() {
        match console.verify(&admin).await {
            Ok(st) => Some(status_context(&st)),
            Err(warden_auth::console::ConsoleError::Invalid(reason)) => {
                Some(minijinja::context! { unavailable => reason })
            }
            Err(e) => return Err(console_error(e)),
        }
    } else {
        None
    };
    let Some((csrf, cookie)) = new_csrf(&s) else {
        return Err(csrf_unavailable());
    };
    let (rows, older) = page_context(&m, &p, &q, AUDIT, true);
    Ok(page(
        StatusCode::OK,
        "console_audit.html",
        minijinja::context! {
            csrf_token => csrf,
            email => m.user().email.as_str(),
            org => m.org().slug.as_str(),
            org_name => m.org().name.as_str(),
            rows,
            older,
            paged => query.before.is_some(),
            first_page => params_first(&q, &m, AUDIT, true),
            f => q.shown(),
            status,
        },
        cookie,
    ))
}

#[derive(Debug, Deserialize)]
pub(super) struct RecordParams {
    org: Option<String>,
    seq: Option<String>,
}

pub(super) async fn record(
    State(s): State<AuthState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Query<RecordParams>,
) -> Result<Response, Response> {
    let m = member(
        &s,
        &headers,
        addr,
        q.org.as_deref(),
        &back_to(AUDIT, q.org.as_deref()),
    )
    .await?;
    let console = s.auth.console();
    let admin = console.admin(&m, RECORD).await.map_err(console_error)?;
    let r = console
        .audit_record(&admin, q.seq.as_deref().unwrap_or_default())
        .await
        .map_err(console_error)?;
    let fields: Vec<(&str, String)> = [
        ("Chain", Some(r.chain.clone())),
        ("Seq", Some(r.seq.to_string())),
        ("Time (UTC)", Some(r.ts.clone())),
        ("Event", Some(r.event.clone())),
        ("Action", Some(r.action.clone())),
        ("Source", Some(r.source.clone())),
        ("User", r.user_email.clone()),
        ("User id", r.user_id.clone()),
        ("Organisation", r.org.clone()),
        ("Authenticated by", r.auth_method.clone()),
        ("Client or key", r.credential.clone()),
        ("Address", r.remote_addr.clone()),
        ("User agent", r.user_agent.clone()),
        ("Decision", Some(r.decision.clone())),
        ("Stage", r.stage.clone()),
        ("Rule", r.rule.clone()),
        ("Reason", r.reason.clone()),
        ("Outcome", Some(r.outcome.clone())),
        ("Duration (µs)", r.duration_us.map(|d| d.to_string())),
        ("Rows affected", r.affected.clone()),
        ("Request id", Some(r.request_id.clone())),
        ("Trace id", r.trace_id.clone()),
        ("Previous hash", Some(r.prev_hash.clone())),
        ("Hash", Some(r.hash.clone())),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| (k, v)))
    .collect();
    let fields: Vec<minijinja::Value> = fields
        .iter()
        .map(|(k, v)| minijinja::context! { name => *k, value => v.as_str() })
        .collect();
    Ok(page(
        StatusCode::OK,
        "console_record.html",
        minijinja::context! {
            email => m.user().email.as_str(),
            org => m.org().slug.as_str(),
            org_name => m.org().name.as_str(),
            seq => r.seq,
            fields,
            arguments => pretty(r.params.as_deref()),
            detail => pretty(r.detail.as_deref()),
        },
        HeaderMap::new(),
    ))
}

#[derive(Debug, Deserialize)]
pub(super) struct ExportForm {
    csrf_token: Option<String>,
    org: Option<String>,
}

pub(super) async fn export(
    State(s): State<AuthState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<ExportForm>,
) -> Result<Response, Response> {
    let (_, admin) = form_admin(
        &s,
        &headers,
        addr,
        f.csrf_token.as_deref(),
        f.org.as_deref(),
        "/console/admin/audit/export",
    )
    .await?;
    let console = s.auth.console();
    let file = console.export(&admin).await.map_err(console_error)?;
    let mut res = (StatusCode::OK, file.body).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{}\"", file.file_name)) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(res)
}
