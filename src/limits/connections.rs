//! [`ConnectionLimiter`]: `max_connections_total` / `max_connections_per_identity`.

use crate::broker::{Broker, Slot};
use crate::telemetry::Metrics;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    /// A total or per-identity limit is reached.
    #[error("too many connections")]
    TooManyConnections,
}

type Leases = Vec<(String, String)>;

/// Admits connections against global limits and keeps their leases alive.
pub struct ConnectionLimiter {
    broker: Arc<dyn Broker>,
    metrics: Arc<Metrics>,
    max_total: u64,
    max_per_identity: u64,
    lease_ttl: Duration,
    node_id: String,
    next_id: AtomicU64,
    /// Leases held by this node, by connection; read by the refresher.
    held: Mutex<HashMap<u64, Leases>>,
}

/// A held admission; dropping it returns the leases.
pub struct Lease {
    limiter: Option<Arc<ConnectionLimiter>>,
    id: u64,
}

impl ConnectionLimiter {
    /// A limiter over `broker`; 0 means unlimited. Starts the lease refresher.
    pub fn new(
        broker: Arc<dyn Broker>,
        metrics: Arc<Metrics>,
        max_total: u64,
        max_per_identity: u64,
        lease_ttl: Duration,
        shutdown: CancellationToken,
    ) -> Arc<Self> {
        let limiter = Arc::new(Self {
            broker,
            metrics,
            max_total,
            max_per_identity,
            lease_ttl,
            node_id: format!("{:016x}", rand::random::<u64>()),
            next_id: AtomicU64::new(1),
            held: Mutex::new(HashMap::new()),
        });
        tokio::spawn(refresh_loop(Arc::downgrade(&limiter), shutdown));
        limiter
    }

    /// Admits one relay connection of `identity` (total and per-identity limits).
    pub async fn acquire(self: &Arc<Self>, identity: &str) -> Result<Lease, LimitError> {
        let slot = (self.max_per_identity > 0).then(|| Slot {
            key: format!("conns:identity:{identity}"),
            limit: self.max_per_identity,
        });
        self.acquire_slots(slot).await
    }

    /// Admits one session-proxy connection (total and per-session limits).
    pub async fn acquire_session(
        self: &Arc<Self>,
        session_id: &str,
        max_per_session: u64,
    ) -> Result<Lease, LimitError> {
        let slot = (max_per_session > 0).then(|| Slot {
            key: format!("conns:session:{session_id}"),
            limit: max_per_session,
        });
        self.acquire_slots(slot).await
    }

    /// Takes the total slot plus `extra`, all or nothing. If the broker fails, the
    /// check fails open (counted in `streamgate_limits_errors_total`).
    async fn acquire_slots(self: &Arc<Self>, extra: Option<Slot>) -> Result<Lease, LimitError> {
        let total = (self.max_total > 0).then(|| Slot {
            key: "conns:total".into(),
            limit: self.max_total,
        });
        let slots: Vec<Slot> = total.into_iter().chain(extra).collect();
        if slots.is_empty() {
            return Ok(Lease { limiter: None, id: 0 });
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let holder = format!("{}:{id}", self.node_id);
        match self.broker.acquire(&slots, &holder, self.lease_ttl).await {
            Ok(true) => {}
            Ok(false) => return Err(LimitError::TooManyConnections),
            Err(e) => {
                self.metrics.limit_error();
                tracing::warn!(error = %e, "connection limit check failed; admitting (fail open)");
            }
        }
        let leases = slots.into_iter().map(|s| (s.key, holder.clone())).collect();
        self.held_map().insert(id, leases);
        Ok(Lease {
            limiter: Some(self.clone()),
            id,
        })
    }

    fn held_map(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Leases>> {
        // Lock held for a map edit or a snapshot copy only; never across an await.
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn snapshot(&self) -> Leases {
        self.held_map().values().flatten().cloned().collect()
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let Some(limiter) = self.limiter.take() else {
            return;
        };
        let Some(leases) = limiter.held_map().remove(&self.id) else {
            return;
        };
        // Release off the caller's path; if it fails, the lease expires on its own.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if let Err(e) = limiter.broker.release(&leases).await {
                    tracing::debug!(error = %e, "lease release failed; it will expire");
                }
            });
        }
    }
}

/// Refreshes this node's leases every third of their lifetime.
async fn refresh_loop(limiter: std::sync::Weak<ConnectionLimiter>, shutdown: CancellationToken) {
    let period = match limiter.upgrade() {
        Some(l) => (l.lease_ttl / 3).max(Duration::from_millis(100)),
        None => return,
    };
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let Some(limiter) = limiter.upgrade() else {
            return;
        };
        let leases = limiter.snapshot();
        if leases.is_empty() {
            continue;
        }
        if let Err(e) = limiter.broker.refresh(&leases, limiter.lease_ttl).await {
            limiter.metrics.limit_error();
            tracing::warn!(error = %e, "lease refresh failed");
        }
    }
}
