//! Test support: real processes on free ports, the server in-process, and real
//! SSE/WebSocket clients. Every helper awaits events with a deadline; none sleeps
//! to synchronise.

#![allow(dead_code, unused_imports)]

pub mod clients;
pub mod idp;
pub mod process;
pub mod raw_ws;
pub mod redis;
pub mod server;
pub mod session;

pub use clients::{ws_admitted, SseClient, SseEvent, WsClient};
pub use process::{run_cli, BinaryServer, CliOutput};
pub use redis::Redis;
pub use server::{base_config, redis_config, token, token_with, TestServer, API_KEY, SECRET};

use std::future::Future;
use std::time::Duration;

/// Generous deadline for anything a busy 2-core CI machine must do.
pub const DEADLINE: Duration = Duration::from_secs(15);

/// A free TCP port on 127.0.0.1 (bound, read, released).
///
/// Ports come from 20000–32767, below the kernel's ephemeral range (32768+), at
/// random: a port released here cannot be taken by the outgoing connections that
/// tests open meanwhile (those get ephemeral ports), and parallel tests rarely
/// draw the same one. Both addresses a server may bind (loopback and any) are
/// checked.
pub fn free_port() -> u16 {
    for _ in 0..1000 {
        let port = 20_000 + (rand::random::<u16>() % 12_768);
        let free = ["127.0.0.1", "0.0.0.0"]
            .iter()
            .all(|host| std::net::TcpListener::bind((*host, port)).is_ok());
        if free {
            return port;
        }
    }
    panic!("no free port in 20000-32767")
}

/// Polls `check` until it returns true or [`DEADLINE`] passes (then panics with `what`).
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if check().await {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Reads one metric value (sum over label sets matching `labels`) from `/metrics`.
pub async fn metric(base: &str, name: &str, labels: &str) -> f64 {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(name) && (l[name.len()..].starts_with(' ') || l[name.len()..].starts_with('{')))
        .filter(|l| labels.is_empty() || l.contains(labels))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// One counter of `server`'s `/metrics` for the label `reason="{reason}"`.
pub async fn metric_by_reason(server: &TestServer, name: &str, reason: &str) -> f64 {
    metric(&server.base, name, &format!("reason=\"{reason}\"")).await
}

/// `streamgate_auth_failures_total{reason="{reason}"}` of `server`.
pub async fn auth_failures(server: &TestServer, reason: &str) -> f64 {
    metric_by_reason(server, "streamgate_auth_failures_total", reason).await
}
