//! Every Prometheus metric of the process, named `streamgate_<job>_<what>_<unit>`.
//! Labels are bounded enums, never an identity or a URL.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Transport of a client connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// Server-sent events (`GET /events`).
    Sse,
    /// WebSocket (`GET /ws`).
    WebSocket,
}

impl Transport {
    fn label(self) -> &'static str {
        match self {
            Transport::Sse => "sse",
            Transport::WebSocket => "websocket",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TransportLabel {
    transport: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabel {
    call: &'static str,
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabel {
    route: &'static str,
    result: &'static str,
}

/// `result` labels of `streamgate_relay_publish_requests_total`.
const PUBLISH_RESULTS: [&str; 4] = ["ok", "unauthorized", "bad_request", "unavailable"];
/// `reason` labels of `streamgate_auth_failures_total` (`AuthError::reason`).
const AUTH_FAILURE_REASONS: [&str; 18] = [
    "missing",
    "malformed",
    "signature",
    "algorithm",
    "expired",
    "not_yet_valid",
    "missing_expiry",
    "issuer",
    "audience",
    "identity",
    "forbidden",
    "azp",
    "unknown_key",
    "keys_unavailable",
    "inactive",
    "identity_mismatch",
    "provider_error",
    "revoked",
];
/// `call` labels of `streamgate_auth_provider_calls_total`.
const PROVIDER_CALLS: [&str; 4] = ["jwks", "discovery", "verify", "refresh"];
/// `route` labels of `streamgate_admin_requests_total`.
const ADMIN_ROUTES: [&str; 2] = ["revoke", "revocations"];
/// `reason` labels of `streamgate_server_connection_rejections_total`.
const REJECTION_REASONS: [&str; 3] = ["limit", "not_ready", "origin"];

/// Handles to every metric; cloned handles share the same atomics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    connections: Family<TransportLabel, Gauge>,
    broker_messages: Counter,
    deliveries: Counter,
    dropped_messages: Counter,
    slow_consumer_disconnects: Counter,
    inbound_messages: Counter,
    inbound_dropped: Counter,
    publish_requests: Family<ResultLabel, Counter>,
    auth_failures: Family<ReasonLabel, Counter>,
    auth_provider_calls: Family<CallLabel, Counter>,
    admin_requests: Family<RouteLabel, Counter>,
    rejections: Family<ReasonLabel, Counter>,
    broker_reconnects: Counter,
    broker_connected: Gauge,
    limit_errors: Counter,
    session_connections: Gauge,
    session_frames: Family<DirectionLabel, Counter>,
    session_json_rejections: Counter,
    session_auth_failures: Family<ReasonLabel, Counter>,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabel {
    direction: &'static str,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let m = Self {
            connections: Family::default(),
            broker_messages: Counter::default(),
            deliveries: Counter::default(),
            dropped_messages: Counter::default(),
            slow_consumer_disconnects: Counter::default(),
            inbound_messages: Counter::default(),
            inbound_dropped: Counter::default(),
            publish_requests: Family::default(),
            auth_failures: Family::default(),
            auth_provider_calls: Family::default(),
            admin_requests: Family::default(),
            rejections: Family::default(),
            broker_reconnects: Counter::default(),
            broker_connected: Gauge::default(),
            limit_errors: Counter::default(),
            session_connections: Gauge::default(),
            session_frames: Family::default(),
            session_json_rejections: Counter::default(),
            session_auth_failures: Family::default(),
            registry: Registry::default(),
        };
        let r = &mut registry;
        r.register(
            "streamgate_relay_connections",
            "Open client connections by transport",
            m.connections.clone(),
        );
        r.register(
            "streamgate_relay_broker_messages",
            "Messages received from the broker subscription",
            m.broker_messages.clone(),
        );
        r.register(
            "streamgate_relay_deliveries",
            "Messages queued to client connections",
            m.deliveries.clone(),
        );
        r.register(
            "streamgate_relay_dropped_messages",
            "Messages dropped because a client queue was full",
            m.dropped_messages.clone(),
        );
        r.register(
            "streamgate_relay_slow_consumer_disconnects",
            "Clients disconnected by the drop_client policy",
            m.slow_consumer_disconnects.clone(),
        );
        r.register(
            "streamgate_relay_inbound_messages",
            "Client WebSocket messages published to the inbound topic",
            m.inbound_messages.clone(),
        );
        r.register(
            "streamgate_relay_inbound_dropped_messages",
            "Client WebSocket messages dropped (no inbound prefix or publish failed)",
            m.inbound_dropped.clone(),
        );
        r.register(
            "streamgate_relay_publish_requests",
            "POST /api/publish requests by result",
            m.publish_requests.clone(),
        );
        r.register(
            "streamgate_auth_failures",
            "Refused tokens by reason",
            m.auth_failures.clone(),
        );
        r.register(
            "streamgate_auth_provider_calls",
            "Calls to the identity provider by call (jwks, discovery, verify, refresh) and result",
            m.auth_provider_calls.clone(),
        );
        r.register(
            "streamgate_admin_requests",
            "Admin API requests by route and result",
            m.admin_requests.clone(),
        );
        r.register(
            "streamgate_server_connection_rejections",
            "Refused client connections by reason",
            m.rejections.clone(),
        );
        r.register(
            "streamgate_broker_reconnects",
            "Broker reconnections after a lost connection",
            m.broker_reconnects.clone(),
        );
        r.register(
            "streamgate_broker_connected",
            "1 while the broker subscription is live",
            m.broker_connected.clone(),
        );
        r.register(
            "streamgate_limits_errors",
            "Limit checks that failed open because the broker failed",
            m.limit_errors.clone(),
        );
        r.register(
            "streamgate_session_connections",
            "Open session-proxy connections",
            m.session_connections.clone(),
        );
        r.register(
            "streamgate_session_frames",
            "Session frames by direction (down = to client, up = to backend)",
            m.session_frames.clone(),
        );
        r.register(
            "streamgate_session_json_rejections",
            "Session client messages refused as not JSON or binary",
            m.session_json_rejections.clone(),
        );
        r.register(
            "streamgate_session_auth_failures",
            "Refused session connections by reason",
            m.session_auth_failures.clone(),
        );
        m.init_label_sets();
        Self { registry, ..m }
    }

    /// Creates the known series of every labelled family at 0, so each family is on
    /// the first scrape instead of appearing only after its first event (absent
    /// series break `rate()` and alerts).
    fn init_label_sets(&self) {
        for transport in [Transport::Sse, Transport::WebSocket] {
            self.connection_delta(transport, 0);
        }
        for result in PUBLISH_RESULTS {
            let _ = self.publish_requests.get_or_create(&ResultLabel { result });
        }
        for reason in AUTH_FAILURE_REASONS {
            let _ = self.auth_failures.get_or_create(&ReasonLabel { reason });
        }
        for reason in REJECTION_REASONS {
            let _ = self.rejections.get_or_create(&ReasonLabel { reason });
        }
        for call in PROVIDER_CALLS {
            let _ = self
                .auth_provider_calls
                .get_or_create(&CallLabel { call, result: "ok" });
        }
        for route in ADMIN_ROUTES {
            let _ = self.admin_requests.get_or_create(&RouteLabel { route, result: "ok" });
        }
    }

    /// Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// A connection opened (+1) or closed (-1).
    pub fn connection_delta(&self, transport: Transport, delta: i64) {
        let label = TransportLabel {
            transport: transport.label(),
        };
        self.connections.get_or_create(&label).inc_by(delta);
    }

    /// Open connections of `transport` on this node.
    pub fn connections(&self, transport: Transport) -> i64 {
        let label = TransportLabel {
            transport: transport.label(),
        };
        self.connections.get_or_create(&label).get()
    }

    /// One broker message arrived and was queued to `delivered` clients, `dropped` dropped.
    pub fn fanout(&self, delivered: u64, dropped: u64) {
        self.broker_messages.inc();
        if delivered > 0 {
            self.deliveries.inc_by(delivered);
        }
        if dropped > 0 {
            self.dropped_messages.inc_by(dropped);
        }
    }

    /// A slow client was disconnected.
    pub fn slow_consumer_disconnect(&self) {
        self.slow_consumer_disconnects.inc();
    }

    /// A client message was published inbound (`true`) or dropped (`false`).
    pub fn inbound(&self, published: bool) {
        if published {
            self.inbound_messages.inc();
        } else {
            self.inbound_dropped.inc();
        }
    }

    /// A `POST /api/publish` finished with `result` (`ok`, `unauthorized`, `bad_request`, `unavailable`).
    pub fn publish_request(&self, result: &'static str) {
        self.publish_requests.get_or_create(&ResultLabel { result }).inc();
    }

    /// A token was refused for `reason`.
    pub fn auth_failure(&self, reason: &'static str) {
        self.auth_failures.get_or_create(&ReasonLabel { reason }).inc();
    }

    /// A call to the identity provider finished: `call` is `jwks`, `discovery`,
    /// `verify` or `refresh`; `result` is `ok`, `cached` or a bounded failure label.
    pub fn auth_provider_call(&self, call: &'static str, result: &'static str) {
        self.auth_provider_calls
            .get_or_create(&CallLabel { call, result })
            .inc();
    }

    /// An admin API request on `route` finished with `result`.
    pub fn admin_request(&self, route: &'static str, result: &'static str) {
        self.admin_requests.get_or_create(&RouteLabel { route, result }).inc();
    }

    /// A client connection was refused for `reason` (`auth`, `limit`, `not_ready`, `origin`).
    pub fn rejection(&self, reason: &'static str) {
        self.rejections.get_or_create(&ReasonLabel { reason }).inc();
    }

    /// The broker connection came back after a loss.
    pub fn broker_reconnect(&self) {
        self.broker_reconnects.inc();
    }

    /// The broker subscription went up or down.
    pub fn broker_connected(&self, up: bool) {
        self.broker_connected.set(i64::from(up));
    }

    /// A limit check could not reach the broker and let the connection through.
    pub fn limit_error(&self) {
        self.limit_errors.inc();
    }

    /// A session connection opened (+1) or closed (-1).
    pub fn session_connection_delta(&self, delta: i64) {
        self.session_connections.inc_by(delta);
    }

    /// Open session connections on this node.
    pub fn session_connections(&self) -> i64 {
        self.session_connections.get()
    }

    /// `count` session frames went `down` (to the client) or `up` (to the backend).
    pub fn session_frames(&self, direction: &'static str, count: u64) {
        self.session_frames
            .get_or_create(&DirectionLabel { direction })
            .inc_by(count);
    }

    /// A session client message was refused (not JSON, or binary).
    pub fn session_json_rejection(&self) {
        self.session_json_rejections.inc();
    }

    /// A session connection was refused for `reason`.
    pub fn session_auth_failure(&self, reason: &'static str) {
        self.session_auth_failures.get_or_create(&ReasonLabel { reason }).inc();
    }
}
