//! streamgate: the authenticated edge for real-time and streaming traffic.
//!
//! Map of the crate (data flows top to bottom, never back):
//!
//! - [`config`] — one typed `Config` tree: YAML, `STREAMGATE__*` env overrides,
//!   `validate()` listing every problem with its key path.
//! - [`auth`] — token → [`auth::Principal`] (`Verifier`, key sets, token sources,
//!   remote verification, refresh, revocation, extractor).
//! - [`admin`] — server-to-server admin API (`/admin/revoke`, `/admin/revocations`).
//! - [`broker`] — the only door to shared state: pub/sub, readiness, limit leases
//!   (`memory` for one process, `redis` for many nodes).
//! - [`hub`] — per-node fan-out `topic → subscribers`, one encode per message.
//! - [`limits`] — global connection limits through broker leases.
//! - [`relay`] — the event relay job: `/events`, `/ws`, `/api/publish`, `/stats`.
//! - [`chat`], [`gateway`], [`media`] — jobs reserved in the design, not built yet.
//! - [`net`] — outbound networking: the SSRF guard and the shared HTTP client.
//! - [`telemetry`] — logs with secrets redacted, Prometheus metrics.
//! - [`server`] — router, listener, CORS, health, graceful shutdown.
//! - [`cli`] — the `streamgate` commands (`serve`, `validate`, `token`, ...).

pub mod admin;
pub mod auth;
pub mod broker;
pub mod chat;
pub mod cli;
pub mod config;
pub mod gateway;
pub mod hub;
pub mod limits;
pub mod media;
pub mod net;
pub mod relay;
pub mod server;
pub mod telemetry;
