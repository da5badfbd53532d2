//! The listener: builds the router from config, binds, and shuts down gracefully.
//!
//! Shutdown is a [`CancellationToken`] passed down to every connection: on SIGTERM/
//! SIGINT the listener stops accepting, each WebSocket writer closes its client with
//! 1001 and each SSE stream sends `event: shutdown`, and the drain waits for their
//! task-tracker guards to drop, at most `server.shutdown_timeout_seconds`.

mod cors;
mod error;
mod health;
mod listener;
mod raw_stream;
mod rewind;
mod state;
pub mod websocket;
mod write_deadline;

pub use error::error_response;
pub use state::AppState;

use crate::config::Config;
use anyhow::Context;
use axum::Router;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A started server: its address, its state and the handle that stops it.
pub struct RunningServer {
    addr: SocketAddr,
    state: Arc<AppState>,
    task: JoinHandle<()>,
}

impl RunningServer {
    /// The bound address (useful with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Shared state (hub, broker, metrics), for tests and embedding.
    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    /// Starts a graceful shutdown (what SIGTERM does).
    pub fn shutdown(&self) {
        self.state.shutdown.cancel();
    }

    /// Waits until the server has stopped (after [`Self::shutdown`] and the drain).
    pub async fn stopped(self) {
        let _ = self.task.await;
    }
}

/// Builds the router with every enabled job and the operational routes.
pub fn router(state: Arc<AppState>) -> Router {
    let mut app = health::routes(state.clone()).merge(crate::admin::routes(state.clone()));
    if state.config.relay.enabled {
        app = app.merge(crate::relay::routes(state.clone()));
    }
    if state.config.session.enabled {
        app = app.merge(crate::relay::session::routes(state.clone()));
    }
    app.method_not_allowed_fallback(error::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(state.clone(), cors::layer))
        .layer(axum::middleware::from_fn(error::log_request))
}

/// Binds, starts every background task, and serves until `shutdown` is called.
pub async fn start(config: Config) -> anyhow::Result<RunningServer> {
    let shutdown = CancellationToken::new();
    let state = AppState::build(config, shutdown.clone())?;
    let addr = format!("{}:{}", state.config.server.host, state.config.server.port);
    let listener = TcpListener::bind(&addr).await.with_context(|| format!("bind {addr}"))?;
    let addr = listener.local_addr()?;
    let app = router(state.clone());
    let drain = Duration::from_secs(state.config.server.shutdown_timeout_seconds);
    let serve_state = state.clone();
    let task = tokio::spawn(async move {
        let serve = listener::serve(listener, app, serve_state.clone());
        let tracker = serve_state.tracker.clone();
        let run = async move {
            serve.await;
            tracker.close();
            tracker.wait().await;
        };
        tokio::pin!(run);
        tokio::select! {
            _ = &mut run => {}
            _ = async { serve_state.shutdown.cancelled().await; tokio::time::sleep(drain).await } => {
                tracing::warn!(timeout_s = drain.as_secs(), "shutdown drain timed out; closing remaining connections");
            }
        }
        tracing::info!("stopped");
    });
    tracing::info!(%addr, broker = state.broker.kind(), "streamgate listening");
    Ok(RunningServer { addr, state, task })
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub async fn termination_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
