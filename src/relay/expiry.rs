//! Turning a token's `exp` into a timer.

use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

/// The instant a connection must end: `exp` plus the configured leeway; `None`
/// for tokens without `exp` (allowed only with `auth.require_expiry: false`).
pub fn deadline(expires_at: Option<u64>, leeway_seconds: u64) -> Option<Instant> {
    let exp_ms = expires_at?.saturating_add(leeway_seconds).saturating_mul(1000);
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64;
    Some(Instant::now() + Duration::from_millis(exp_ms.saturating_sub(now_ms)))
}
