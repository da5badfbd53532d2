//! The scenarios. Each opens its clients on a started system, measures, and closes
//! them again; none starts or stops the system itself.

pub mod connect;
pub mod fanout;
pub mod idle;
pub mod session;

use crate::clients::{self, Sink, Transport};
use crate::systems::Running;
use crate::tokens;
use anyhow::bail;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// Handshakes in flight at once while opening many clients (stays below the
/// listen backlogs, so no SYN is dropped and retried a second later).
const OPEN_CONCURRENCY: usize = 128;

/// Set in `--quick` mode: the settle pauses between steps get shorter.
pub static QUICK: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// A settle pause: `full_ms`, or `quick_ms` in quick mode.
pub async fn settle(full_ms: u64, quick_ms: u64) {
    let ms = if QUICK.load(Ordering::Relaxed) {
        quick_ms
    } else {
        full_ms
    };
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

/// The identity of index `i`.
pub fn identity(i: usize) -> String {
    format!("b{i}")
}

/// Clients of one run, open and counting.
pub struct Clients {
    pub sink: Arc<Sink>,
    tasks: JoinSet<()>,
    pub open_secs: f64,
}

impl Clients {
    /// Opens `n` clients over `transport`, client `i` on identity `i % m`, and waits
    /// until every one has its `connected` event. Any failure fails the run.
    pub async fn open(
        sys: &Running,
        secret: &str,
        transport: Transport,
        n: usize,
        m: usize,
        record_latency: bool,
    ) -> anyhow::Result<Self> {
        let sink = Sink::new(m, record_latency);
        Self::open_into(sys, secret, transport, n, m, 0, sink).await
    }

    /// As [`Self::open`], into an existing sink, source addresses from `offset`.
    pub async fn open_into(
        sys: &Running,
        secret: &str,
        transport: Transport,
        n: usize,
        m: usize,
        offset: usize,
        sink: Arc<Sink>,
    ) -> anyhow::Result<Self> {
        let gate = Arc::new(Semaphore::new(OPEN_CONCURRENCY));
        let tokens: Vec<String> = (0..m).map(|i| tokens::mint(secret, &identity(i), i as u64)).collect();
        let mut tasks = JoinSet::new();
        let started = Instant::now();
        for i in 0..n {
            let id = i % m;
            let target = sys.target(transport, &identity(id), &tokens[id]);
            tasks.spawn(clients::run(target, offset + i, id, sink.clone(), gate.clone()));
        }
        let mut clients = Self {
            sink,
            tasks,
            open_secs: 0.0,
        };
        // Generous: a slow peer may take a while, but never forever.
        let deadline = started + Duration::from_secs(60) + Duration::from_millis(20 * n as u64);
        loop {
            let s = &clients.sink;
            let (ok, failed) = (s.connected.load(Ordering::Relaxed), s.failed.load(Ordering::Relaxed));
            if failed > 0 {
                let err = s.first_error().unwrap_or_default();
                clients.close().await;
                bail!(
                    "{failed} of {n} {} connections failed ({ok} opened): {err}",
                    transport.label()
                );
            }
            if ok == n {
                break;
            }
            if Instant::now() > deadline {
                clients.close().await;
                bail!("only {ok} of {n} {} connections opened in time", transport.label());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        clients.open_secs = started.elapsed().as_secs_f64();
        let retries = clients.sink.retries.load(Ordering::Relaxed);
        if retries > 0 {
            crate::report::note(format!(
                "{}: {retries} {} handshakes failed and were retried while opening {n} connections (first error: {})",
                sys.label(),
                transport.label(),
                clients.sink.first_error().unwrap_or_default()
            ));
        }
        Ok(clients)
    }

    /// Connected clients per identity (recipients of one message to it).
    pub fn recipients(&self) -> Vec<u64> {
        self.sink
            .per_identity
            .iter()
            .map(|c| u64::from(c.load(Ordering::Relaxed)))
            .collect()
    }

    /// Stops every client and waits (bounded) for them to close.
    pub async fn close(mut self) {
        self.sink.stop.cancel();
        let all = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(Duration::from_secs(30), all).await.is_err() {
            self.tasks.abort_all();
        }
        // Let the server finish its side of the closes before the next measurement.
        settle(500, 100).await;
    }
}

/// Waits until `sink` has `expected` messages or nothing arrived for `quiet`
/// (bounded by `max`; both shorter in quick mode).
pub async fn drain(sink: &Sink, expected: u64, quiet: Duration, max: Duration) {
    let (quiet, max) = if QUICK.load(Ordering::Relaxed) {
        (quiet.min(Duration::from_secs(1)), max.min(Duration::from_secs(4)))
    } else {
        (quiet, max)
    };
    let end = Instant::now() + max;
    let mut last = sink.received.load(Ordering::Relaxed);
    let mut last_change = Instant::now();
    while Instant::now() < end {
        let now = sink.received.load(Ordering::Relaxed);
        if now >= expected {
            return;
        }
        if now != last {
            last = now;
            last_change = Instant::now();
        } else if last_change.elapsed() > quiet {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
