//! The admin API: server-to-server operations on shared state, authenticated with
//! a key from `server.api_keys` (the same constant-time check as `/api/publish`).
//!
//! - `POST /admin/revoke` — `{"sub":"42","jti":"abc"}` revokes one token (optional
//!   `"exp"`: its expiry, so the entry is kept no longer than needed);
//!   `{"sub":"42","before":<unix>}` revokes every token of the identity issued before
//!   then. Stored in the broker ([`crate::auth::revocation`]), so every node refuses
//!   the token at connect (401 `token revoked`), and announced on the revocation topic.
//! - `GET /admin/revocations?sub=42` — the identity's live revocations.

mod error;
mod revoke;

pub use error::AdminError;

use crate::server::AppState;
use axum::routing::{get, post};
use axum::Router;
use std::sync::Arc;

/// Largest admin request body accepted.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// The admin routes.
pub fn routes(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/admin/revoke", post(revoke::revoke))
        .route("/admin/revocations", get(revoke::list))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}
