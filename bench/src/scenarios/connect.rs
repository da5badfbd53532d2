//! `connect`: new authenticated connections per second. `concurrency` tasks each
//! open connections one after another, every one with its own HS256 token (minted
//! before the clock starts), until `n` are open; the handshake time runs from the
//! TCP connect to the `connected` event. Connections stay open until the end.

use super::identity;
use crate::clients::{new_hist, Conn, Transport};
use crate::procs::CpuSample;
use crate::systems::Running;
use crate::tokens;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Identities the tokens cycle through.
const IDENTITIES: usize = 1000;

/// What one connect run measured.
#[derive(Debug, Clone)]
pub struct ConnectResult {
    pub opened: usize,
    pub failed: usize,
    pub secs: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
    pub server_cores: f64,
    pub client_cores: f64,
    pub first_error: Option<String>,
}

impl ConnectResult {
    pub fn per_s(&self) -> f64 {
        self.opened as f64 / self.secs.max(1e-9)
    }
}

pub async fn run(
    sys: &Running,
    secret: &str,
    transport: Transport,
    n: usize,
    concurrency: usize,
) -> anyhow::Result<ConnectResult> {
    run_with(sys, transport, n, concurrency, |id, i| tokens::mint(secret, id, i)).await
}

/// As [`run`], every token signed RS256 with the committed RSA fixture (the system
/// must verify with its public key).
pub async fn run_rs256(sys: &Running, n: usize, concurrency: usize) -> anyhow::Result<ConnectResult> {
    // RSA signing costs milliseconds per token: sign on every core before the clock starts.
    let key = tokens::rsa_key();
    let threads = std::thread::available_parallelism().map_or(1, |p| p.get()).max(1);
    let chunk = n.div_ceil(threads).max(1);
    let signed: Vec<String> = tokio::task::block_in_place(|| {
        std::thread::scope(|scope| {
            let parts: Vec<_> = (0..n)
                .step_by(chunk)
                .map(|from| {
                    let key = &key;
                    scope.spawn(move || {
                        (from..(from + chunk).min(n))
                            .map(|i| tokens::mint_rs256(key, &identity(i % IDENTITIES), i as u64))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            parts
                .into_iter()
                .flat_map(|h| h.join().expect("signing thread"))
                .collect()
        })
    });
    run_with(sys, Transport::Ws, n, concurrency, |_, i| signed[i as usize].clone()).await
}

async fn run_with(
    sys: &Running,
    transport: Transport,
    n: usize,
    concurrency: usize,
    mint: impl Fn(&str, u64) -> String,
) -> anyhow::Result<ConnectResult> {
    let targets: Arc<Vec<_>> = Arc::new(
        (0..n)
            .map(|i| {
                let id = identity(i % IDENTITIES);
                sys.target(transport, &id, &mint(&id, i as u64))
            })
            .collect(),
    );
    let next = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let first_error = Arc::new(Mutex::new(None::<String>));
    let pids = sys.pids();
    let cpu = CpuSample::take(&pids);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (targets, next, failed, first_error) = (targets.clone(), next.clone(), failed.clone(), first_error.clone());
        tasks.spawn(async move {
            let mut hist = new_hist();
            let mut held = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= targets.len() {
                    break;
                }
                let t0 = Instant::now();
                match tokio::time::timeout(Duration::from_secs(10), Conn::open(&targets[i], i)).await {
                    Ok(Ok(conn)) => {
                        hist.saturating_record((t0.elapsed().as_micros() as u64).max(1));
                        held.push(conn);
                    }
                    outcome => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        let e = match outcome {
                            Ok(Err(e)) => format!("{e:#}"),
                            _ => "handshake timed out after 10 s".into(),
                        };
                        first_error.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(e);
                    }
                }
            }
            (hist, held)
        });
    }
    let mut hist = new_hist();
    let mut held = Vec::new();
    while let Some(done) = tasks.join_next().await {
        let (h, conns) = done?;
        let _ = hist.add(&h);
        held.extend(conns);
    }
    let secs = started.elapsed().as_secs_f64();
    let (server_cores, client_cores) = cpu.cores_since(&pids);
    let result = ConnectResult {
        opened: held.len(),
        failed: failed.load(Ordering::Relaxed),
        secs,
        p50_us: hist.value_at_quantile(0.5),
        p99_us: hist.value_at_quantile(0.99),
        max_us: hist.max(),
        server_cores,
        client_cores,
        first_error: first_error.lock().map(|e| e.clone()).unwrap_or_default(),
    };
    drop(held);
    super::settle(500, 100).await;
    if result.opened == 0 {
        anyhow::bail!(
            "no connection opened: {}",
            result.first_error.clone().unwrap_or_default()
        );
    }
    Ok(result)
}
