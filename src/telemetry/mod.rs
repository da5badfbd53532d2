//! Telemetry: `tracing` logs (text or JSON, secrets redacted) and the Prometheus
//! registry served at `/metrics`.

mod logging;
mod metrics;
mod redact;

pub use logging::init_logging;
pub use metrics::{Metrics, Transport};
pub use redact::redact_query;
