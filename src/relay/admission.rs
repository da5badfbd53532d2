//! Admitting a client connection: readiness, limits, hub subscription, accounting.

use super::RelayError;
use crate::auth::{AuthLifetime, Principal};
use crate::hub::Subscription;
use crate::limits::{Lease, LimitError};
use crate::server::AppState;
use crate::telemetry::Transport;
use std::sync::Arc;

/// Everything an admitted connection holds; dropping it undoes the admission
/// (unsubscribe, lease release, gauge decrement).
pub struct Admitted {
    /// The caller's credentials over time: expiry, revocation, refresh.
    pub lifetime: AuthLifetime,
    /// The hub queue of `{channel_prefix}:{identity}`.
    pub subscription: Subscription,
    _lease: Lease,
    _gauge: ConnectionGauge,
}

/// What must stay alive while an admitted connection runs: its limit lease and
/// its place in the connection gauge.
pub struct AdmissionGuard {
    _lease: Lease,
    _gauge: ConnectionGauge,
}

impl Admitted {
    /// Splits the admission into what the transport loop uses and what it keeps.
    pub fn into_parts(self) -> (AuthLifetime, Subscription, AdmissionGuard) {
        let guard = AdmissionGuard {
            _lease: self._lease,
            _gauge: self._gauge,
        };
        (self.lifetime, self.subscription, guard)
    }
}

/// Checks broker readiness and limits, then subscribes. Refusals are counted.
/// `refresh_token` (from `X-Refresh-Token`) enables periodic refresh.
pub async fn admit(
    state: &Arc<AppState>,
    principal: Principal,
    refresh_token: Option<String>,
    transport: Transport,
) -> Result<Admitted, RelayError> {
    if !state.broker.is_ready() || state.shutdown.is_cancelled() {
        state.metrics.rejection("not_ready");
        return Err(RelayError::NotReady);
    }
    let lease = match state.limiter.acquire(&principal.identity).await {
        Ok(lease) => lease,
        Err(LimitError::TooManyConnections) => {
            state.metrics.rejection("limit");
            return Err(RelayError::TooManyConnections);
        }
    };
    let relay = &state.config.relay;
    let topic = format!("{}:{}", relay.channel_prefix, principal.identity);
    let subscription = state
        .hub
        .subscribe(&topic, relay.client_buffer_size, relay.slow_consumer_policy);
    Ok(Admitted {
        lifetime: AuthLifetime::new(state, principal, refresh_token),
        subscription,
        _lease: lease,
        _gauge: ConnectionGauge::open(state, transport),
    })
}

/// Keeps `streamgate_relay_connections{transport}` true for the connection's life.
struct ConnectionGauge {
    state: Arc<AppState>,
    transport: Transport,
}

impl ConnectionGauge {
    fn open(state: &Arc<AppState>, transport: Transport) -> Self {
        state.metrics.connection_delta(transport, 1);
        Self {
            state: state.clone(),
            transport,
        }
    }
}

impl Drop for ConnectionGauge {
    fn drop(&mut self) {
        self.state.metrics.connection_delta(self.transport, -1);
    }
}
