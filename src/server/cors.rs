//! Cross-origin policy from `server.allowed_origins`.
//!
//! Requests without `Origin` (servers, curl, native apps) pass. Same-origin requests
//! pass. A cross-origin request (preflight, fetch, EventSource or WebSocket upgrade,
//! which browsers never guard themselves) passes only when its origin is listed or the
//! list is `["*"]`; otherwise it gets 403 `{"error":"origin not allowed"}`.

use super::{error_response, AppState};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

const ALLOW_METHODS: &str = "GET, POST, OPTIONS";
const ALLOW_HEADERS: &str = "Authorization, Content-Type, Last-Event-ID, X-Refresh-Token";

/// The CORS middleware.
pub async fn layer(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let Some(origin) = req.headers().get(header::ORIGIN).cloned() else {
        return next.run(req).await;
    };
    let allowed = &state.config.server.allowed_origins;
    let wildcard = allowed.iter().any(|o| o == "*");
    let listed = origin
        .to_str()
        .is_ok_and(|o| allowed.iter().any(|a| a.trim_end_matches('/') == o));
    if !(wildcard || listed || same_origin(req.headers(), &origin)) {
        state.metrics.rejection("origin");
        return error_response(StatusCode::FORBIDDEN, "origin not allowed");
    }
    let preflight =
        req.method() == Method::OPTIONS && req.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let mut response = if preflight {
        let mut r = StatusCode::NO_CONTENT.into_response();
        let h = r.headers_mut();
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static(ALLOW_METHODS),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(ALLOW_HEADERS),
        );
        h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
        r
    } else {
        next.run(req).await
    };
    let h = response.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    if !wildcard {
        h.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
    h.append(header::VARY, HeaderValue::from_static("Origin"));
    response
}

/// True when `Origin`'s authority equals the `Host` the request was sent to.
fn same_origin(headers: &HeaderMap, origin: &HeaderValue) -> bool {
    let (Some(host), Ok(origin)) = (headers.get(header::HOST), origin.to_str()) else {
        return false;
    };
    let authority = origin.split_once("://").map_or(origin, |(_, rest)| rest);
    host.to_str().is_ok_and(|h| h.eq_ignore_ascii_case(authority))
}
