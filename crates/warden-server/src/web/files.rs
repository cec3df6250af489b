//! `/files/{token}`: the signed URLs `request_upload_url` and `request_download_url` hand
//! out. `PUT` stores a body, `GET` returns an object. With authentication, the request
//! needs the bearer of the principal the URL was issued to (`require_bearer` runs first, as
//! on `/mcp`); the pipeline checks the token, redeems its single use and records the
//! outcome. This file only translates: a refusal becomes its status code.

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::put;
use futures::StreamExt;
use serde_json::json;
use warden_core::identity::Principal;
use warden_core::pipeline::{FileRefusal, FileUse, LivePipeline};

/// The routes; `/files/{token}` only.
pub fn routes(pipeline: LivePipeline) -> Router {
    Router::new()
        .route("/files/{token}", put(upload).get(download))
        // The URL's own limit applies, checked by the pipeline as the body arrives.
        .layer(DefaultBodyLimit::disable())
        .with_state(pipeline)
}

fn refusal(e: FileRefusal) -> Response {
    let status = match &e {
        FileRefusal::NotFound(_) => StatusCode::NOT_FOUND,
        FileRefusal::Forbidden(_) => StatusCode::FORBIDDEN,
        FileRefusal::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        FileRefusal::Bad(_) => StatusCode::BAD_REQUEST,
        FileRefusal::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    let mut res = (status, axum::Json(json!({"error": e.to_string()}))).into_response();
    if status == StatusCode::PAYLOAD_TOO_LARGE || status == StatusCode::FORBIDDEN {
        // The rest of the body is not read.
        res.headers_mut().insert(
            header::CONNECTION,
            header::HeaderValue::from_static("close"),
        );
    }
    res
}

async fn upload(
    State(live): State<LivePipeline>,
    Path(token): Path<String>,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let peer = crate::transport::mcp::peer_of(&parts.headers, &parts.extensions);
    let length = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let caller = parts.extensions.get::<Principal>();
    let stream = Body::new(body)
        .into_data_stream()
        .map(|chunk| chunk.map(|b| b.to_vec()).map_err(|e| e.to_string()))
        .boxed();
    let pipeline = live.current();
    let use_ = FileUse {
        token: &token,
        caller,
        peer: &peer,
        length,
    };
    match pipeline.upload(use_, stream).await {
        Ok(stored) => (
            StatusCode::CREATED,
            axum::Json(json!({"name": stored.name, "size": stored.size, "sha256": stored.sha256})),
        )
            .into_response(),
        Err(e) => refusal(e),
    }
}

async fn download(
    State(live): State<LivePipeline>,
    Path(token): Path<String>,
    req: Request,
) -> Response {
    let (parts, _) = req.into_parts();
    let peer = crate::transport::mcp::peer_of(&parts.headers, &parts.extensions);
    let caller = parts.extensions.get::<Principal>();
    let pipeline = live.current();
    let use_ = FileUse {
        token: &token,
        caller,
        peer: &peer,
        length: None,
    };
    match pipeline.download(use_).await {
        Ok(d) => (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, "application/octet-stream".to_string()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{}\"", d.stored.name),
                ),
                (
                    header::HeaderName::from_static("x-content-sha256"),
                    d.stored.sha256.clone(),
                ),
                (header::CACHE_CONTROL, "no-store".to_string()),
            ],
            d.bytes,
        )
            .into_response(),
        Err(e) => refusal(e),
    }
}
