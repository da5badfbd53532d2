//! [`AppState`]: everything a handler may use, built once from config.

use crate::auth::{AuthState, RevocationWatch, Verifier};
use crate::broker::{self, Broker};
use crate::config::Config;
use crate::hub::Hub;
use crate::limits::ConnectionLimiter;
use crate::telemetry::Metrics;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Shared by every request of every job.
pub struct AppState {
    /// The validated configuration.
    pub config: Arc<Config>,
    /// Client token verification.
    pub verifier: Verifier,
    /// Pub/sub and global state.
    pub broker: Arc<dyn Broker>,
    /// Per-node fan-out.
    pub hub: Arc<Hub>,
    /// Global connection limits.
    pub limiter: Arc<ConnectionLimiter>,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// Cancelled when the server shuts down.
    pub shutdown: CancellationToken,
    /// Tracks long-lived connection tasks for the shutdown drain.
    pub tracker: TaskTracker,
    /// Process start, for `/stats` uptime.
    pub started: Instant,
    /// Open connections by identity, ended by revocation notices from any node.
    pub revocations: Arc<RevocationWatch>,
}

impl AppState {
    /// Builds state and starts the broker subscription. The config must be valid.
    pub fn build(config: Config, shutdown: CancellationToken) -> anyhow::Result<Arc<Self>> {
        let metrics = Arc::new(Metrics::new());
        let verifier = Verifier::new(&config.auth, metrics.clone()).map_err(anyhow::Error::msg)?;
        let hub = Hub::new(metrics.clone());
        let patterns = subscription_patterns(&config);
        let revocations = RevocationWatch::new();
        let (sink_hub, sink_watch) = (hub.clone(), revocations.clone());
        let sink: broker::Sink = Arc::new(move |topic, payload| {
            if !sink_watch.on_broker_message(topic, &payload) {
                sink_hub.dispatch(topic, payload);
            }
        });
        let broker = broker::from_config(&config.broker, patterns, sink, metrics.clone(), shutdown.clone())?;
        let limiter = ConnectionLimiter::new(
            broker.clone(),
            metrics.clone(),
            config.server.max_connections_total,
            config.server.max_connections_per_identity,
            Duration::from_secs(config.server.connection_lease_seconds),
            shutdown.clone(),
        );
        tokio::spawn(recheck_revocations_on_reconnect(
            broker.clone(),
            revocations.clone(),
            shutdown.clone(),
        ));
        Ok(Arc::new(Self {
            config: Arc::new(config),
            verifier,
            broker,
            hub,
            limiter,
            metrics,
            shutdown,
            tracker: TaskTracker::new(),
            started: Instant::now(),
            revocations,
        }))
    }
}

/// Each time the broker subscription comes back after a loss, re-applies stored
/// revocations to open connections (their notices may have been missed meanwhile).
async fn recheck_revocations_on_reconnect(
    broker: Arc<dyn Broker>,
    revocations: Arc<RevocationWatch>,
    shutdown: CancellationToken,
) {
    let mut ready = broker.watch_ready();
    let mut was_ready = *ready.borrow_and_update();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            changed = ready.changed() => if changed.is_err() { return },
        }
        let now_ready = *ready.borrow_and_update();
        if now_ready && !was_ready {
            revocations.recheck(broker.as_ref()).await;
        }
        was_ready = now_ready;
    }
}

/// The node's one subscription: every enabled job's topic patterns.
fn subscription_patterns(config: &Config) -> Vec<String> {
    let mut patterns = vec![crate::auth::revocation::TOPIC.to_string()];
    if config.relay.enabled {
        patterns.push(format!("{}:*", config.relay.channel_prefix));
    }
    if config.session.enabled {
        patterns.push(config.session.down_pattern());
    }
    patterns
}

impl AuthState for AppState {
    fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    fn broker(&self) -> &dyn Broker {
        self.broker.as_ref()
    }
}
