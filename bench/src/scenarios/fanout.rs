//! `fanout` and `latency`.
//!
//! fanout: N clients over M identities; publishers send round-robin over the
//! identities as fast as delivery keeps up: at most `window` deliveries may be
//! outstanding (published × recipients − received), which also keeps every
//! connection's share (≤ 32 messages) below the server's per-connection queue. If
//! nothing arrives for a second while the window is full, the outstanding ones are
//! written off (they count as lost at the end) so a lossy peer cannot stall the run.
//! Each publish call carries up to `Load::batch` messages (the system's batch form).
//!
//! latency: the same clients, publishers at a fixed rate (half the fan-out maximum),
//! each delivery's latency = receive time − the send time stamped in the payload.

use super::{drain, identity, Clients};
use crate::clients::Transport;
use crate::payload;
use crate::procs::CpuSample;
use crate::systems::{Publisher, Running};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Most deliveries outstanding at once.
const MAX_WINDOW: u64 = 65_536;
/// Most messages outstanding per connection (the server queue holds 64 by default).
const PER_CONN_WINDOW: u64 = 32;
/// No delivery for this long with a full window: write the window off.
const STALL: Duration = Duration::from_secs(1);

/// Parameters shared by fanout and latency runs.
#[derive(Debug, Clone)]
pub struct Load {
    pub secret: String,
    pub payload_bytes: usize,
    pub publishers: usize,
    /// Fan-out: most messages per publish call.
    pub batch: usize,
}

/// What one fan-out run measured.
#[derive(Debug, Clone)]
pub struct FanoutResult {
    /// Publishing time.
    pub secs: f64,
    /// From the first publish to the last delivery (≥ `secs` when deliveries trail).
    pub delivery_secs: f64,
    pub published: u64,
    /// Published × connected recipients of each message.
    pub expected: u64,
    /// Received in all, after the drain.
    pub received: u64,
    pub publish_errors: u64,
    /// streamgate's drop counter delta (None: the system has none).
    pub drops: Option<u64>,
    pub ended_early: usize,
    pub server_cores: f64,
    pub client_cores: f64,
}

impl FanoutResult {
    /// Deliveries per second over the delivery period: a system that delivers
    /// late is measured by when its messages arrive, not when they were accepted.
    pub fn deliveries_per_s(&self) -> f64 {
        self.received as f64 / self.delivery_secs.max(self.secs).max(1e-9)
    }
    pub fn lost(&self) -> u64 {
        self.expected.saturating_sub(self.received)
    }
}

/// Publishing state shared by the publisher tasks.
struct Pace {
    next: AtomicU64,
    published_msgs: AtomicU64,
    /// Recipients summed over published messages.
    published_deliveries: AtomicU64,
    written_off: AtomicU64,
    errors: AtomicU64,
    first_error: Mutex<Option<String>>,
    stall: Mutex<(u64, Instant)>,
    stop: AtomicBool,
}

impl Pace {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            next: AtomicU64::new(0),
            published_msgs: AtomicU64::new(0),
            published_deliveries: AtomicU64::new(0),
            written_off: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            first_error: Mutex::new(None),
            stall: Mutex::new((0, Instant::now())),
            stop: AtomicBool::new(false),
        })
    }

    /// Publishes the next `count` messages of the round-robin in one call.
    async fn publish_many(&self, publisher: &Publisher, recipients: &[u64], size: usize, count: usize) {
        let first = self.next.fetch_add(count as u64, Ordering::Relaxed);
        let mut k = 0;
        let batch: Vec<(String, String)> = (first..first + count as u64)
            .map(|i| {
                let id = (i % recipients.len() as u64) as usize;
                k += recipients[id];
                (identity(id), payload::make(i, size))
            })
            .collect();
        self.published_deliveries.fetch_add(k, Ordering::Relaxed);
        match publisher.publish_batch(&batch).await {
            Ok(()) => {
                self.published_msgs.fetch_add(count as u64, Ordering::Relaxed);
            }
            Err(e) => {
                self.published_deliveries.fetch_sub(k, Ordering::Relaxed);
                self.errors.fetch_add(1, Ordering::Relaxed);
                let mut first = self.first_error.lock().unwrap_or_else(|p| p.into_inner());
                first.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }

    /// Waits until fewer than `window` deliveries are outstanding.
    async fn credit(&self, received: &AtomicU64, window: u64) {
        loop {
            let rcv = received.load(Ordering::Relaxed);
            let out = self
                .published_deliveries
                .load(Ordering::Relaxed)
                .saturating_sub(rcv + self.written_off.load(Ordering::Relaxed));
            if out < window || self.stop.load(Ordering::Relaxed) {
                return;
            }
            {
                let mut stall = self.stall.lock().unwrap_or_else(|p| p.into_inner());
                if stall.0 != rcv {
                    *stall = (rcv, Instant::now());
                } else if stall.1.elapsed() > STALL {
                    self.written_off.fetch_add(out, Ordering::Relaxed);
                    stall.1 = Instant::now();
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

/// One fan-out run on `sys`.
pub async fn run(
    sys: &Running,
    load: &Load,
    transport: Transport,
    n: usize,
    m: usize,
    duration: Duration,
) -> anyhow::Result<FanoutResult> {
    let clients = Clients::open(sys, &load.secret, transport, n, m, false).await?;
    let recipients = Arc::new(clients.recipients());
    let window = MAX_WINDOW.min(PER_CONN_WINDOW * n as u64).max(1);
    // A batch is published on one credit check: keep all publishers' batches
    // together within a quarter of the window, so batching does not overrun the
    // per-connection queues (deliveries are burstier than one message at a time).
    let mean_recipients = (recipients.iter().sum::<u64>() / recipients.len().max(1) as u64).max(1);
    let batch = (load.batch as u64)
        .min(window / (4 * load.publishers as u64 * mean_recipients))
        .max(1) as usize;
    let pace = Pace::new();
    let pids = sys.pids();
    let drops_before = sys.dropped().await;
    let cpu = CpuSample::take(&pids);
    let started = Instant::now();
    let started_ns = payload::now_ns();
    let end = started + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..load.publishers {
        let (pace, recipients, publisher) = (pace.clone(), recipients.clone(), sys.publisher().clone());
        let sink = clients.sink.clone();
        let size = load.payload_bytes;
        tasks.spawn(async move {
            while Instant::now() < end {
                pace.credit(&sink.received, window).await;
                if Instant::now() >= end {
                    break;
                }
                pace.publish_many(&publisher, &recipients, size, batch).await;
            }
        });
    }
    tokio::time::sleep_until(end.into()).await;
    let secs = started.elapsed().as_secs_f64();
    let (server_cores, client_cores) = cpu.cores_since(&pids);
    pace.stop.store(true, Ordering::Relaxed);
    while tasks.join_next().await.is_some() {}
    let expected = pace.published_deliveries.load(Ordering::Relaxed);
    drain(&clients.sink, expected, Duration::from_secs(2), Duration::from_secs(15)).await;
    let drops = match (drops_before, sys.dropped().await) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a)),
        _ => None,
    };
    let result = FanoutResult {
        secs,
        published: pace.published_msgs.load(Ordering::Relaxed),
        expected,
        delivery_secs: clients
            .sink
            .last_received_ns
            .load(Ordering::Relaxed)
            .saturating_sub(started_ns) as f64
            / 1e9,
        received: clients.sink.received.load(Ordering::Relaxed),
        publish_errors: pace.errors.load(Ordering::Relaxed),
        drops,
        ended_early: clients.sink.ended_early.load(Ordering::Relaxed),
        server_cores,
        client_cores,
    };
    let first_error = pace.first_error.lock().map(|e| e.clone()).unwrap_or_default();
    clients.close().await;
    if result.published == 0 {
        anyhow::bail!(
            "nothing was published: {}",
            first_error.unwrap_or_else(|| "no error recorded".into())
        );
    }
    Ok(result)
}

/// What one latency run measured (microseconds).
#[derive(Debug, Clone)]
pub struct LatencyResult {
    pub target_per_s: f64,
    pub achieved_per_s: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    pub expected: u64,
    pub received: u64,
    pub drops: Option<u64>,
    pub server_cores: f64,
    pub client_cores: f64,
}

impl LatencyResult {
    pub fn lost(&self) -> u64 {
        self.expected.saturating_sub(self.received)
    }
}

/// One latency run: N clients on N identities, `rate` deliveries/s for `duration`
/// after a warm-up of a quarter of it (at most 1 s) that is not recorded.
pub async fn latency(
    sys: &Running,
    load: &Load,
    transport: Transport,
    n: usize,
    rate: f64,
    duration: Duration,
) -> anyhow::Result<LatencyResult> {
    let clients = Clients::open(sys, &load.secret, transport, n, n, true).await?;
    let recipients = Arc::new(clients.recipients());
    let warm_up = (duration / 4).min(Duration::from_secs(1));
    let total = warm_up + duration;
    let rate = rate.max(1.0);
    let count = (rate * total.as_secs_f64()).ceil() as u64;
    // The messages due within about 1 ms go out in one publish call (at most
    // `--publish-batch`), as a busy backend pipelines them: one call per message
    // cannot reach the rates the batched fan-out measured. Each message is stamped
    // when its batch is sent, so the batch adds nothing to its latency.
    let batch = ((rate / 1000.0) as u64).clamp(1, load.batch.max(1) as u64);
    let chunks = count.div_ceil(batch);
    let pace = Pace::new();
    let pids = sys.pids();
    let drops_before = sys.dropped().await;
    let started = tokio::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let workers = load.publishers as u64;
    for w in 0..workers {
        let (pace, recipients, publisher) = (pace.clone(), recipients.clone(), sys.publisher().clone());
        let size = load.payload_bytes;
        tasks.spawn(async move {
            let mut chunk = w;
            while chunk < chunks {
                let first = chunk * batch;
                let due = started + Duration::from_secs_f64(first as f64 / rate);
                tokio::time::sleep_until(due).await;
                if pace.stop.load(Ordering::Relaxed) {
                    break;
                }
                let n = batch.min(count - first) as usize;
                pace.publish_many(&publisher, &recipients, size, n).await;
                chunk += workers;
            }
        });
    }
    tokio::time::sleep(warm_up).await;
    clients.sink.reset_latency();
    let cpu = CpuSample::take(&pids);
    let published_at_start = pace.published_msgs.load(Ordering::Relaxed);
    let timed = Instant::now();
    let all = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(duration + Duration::from_secs(30), all)
        .await
        .is_err()
    {
        pace.stop.store(true, Ordering::Relaxed);
    }
    let secs = timed.elapsed().as_secs_f64();
    let achieved = (pace.published_msgs.load(Ordering::Relaxed) - published_at_start) as f64 / secs.max(1e-9);
    let (server_cores, client_cores) = cpu.cores_since(&pids);
    let expected = pace.published_deliveries.load(Ordering::Relaxed);
    drain(&clients.sink, expected, Duration::from_secs(2), Duration::from_secs(15)).await;
    let drops = match (drops_before, sys.dropped().await) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a)),
        _ => None,
    };
    let hist = clients.sink.latency();
    let k = recipients.iter().sum::<u64>() as f64 / recipients.len().max(1) as f64;
    let result = LatencyResult {
        target_per_s: rate,
        achieved_per_s: achieved * k,
        p50_us: hist.value_at_quantile(0.5),
        p99_us: hist.value_at_quantile(0.99),
        p999_us: hist.value_at_quantile(0.999),
        max_us: hist.max(),
        expected,
        received: clients.sink.received.load(Ordering::Relaxed),
        drops,
        server_cores,
        client_cores,
    };
    clients.close().await;
    if hist.is_empty() {
        let err = pace.first_error.lock().map(|e| e.clone()).unwrap_or_default();
        anyhow::bail!(
            "no delivery was timed: {}",
            err.unwrap_or_else(|| "nothing arrived".into())
        );
    }
    Ok(result)
}
