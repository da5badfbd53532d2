//! `session`: streamgate's session proxy (wsproxy-compatible, issue 6) on the Redis
//! broker with `auth: redis_token`.
//!
//! The bench SETs `session:{id}:auth` tokens in the system's private redis-server and
//! opens one WebSocket client per session on `/{agent}/ws/{session}` with
//! `Authorization: Bearer <token>`. Memory: streamgate's VmRSS after `warm` warm-up
//! sessions and after S more, ÷ S. Then timed runs, each one direction at a fixed
//! total rate over K sessions, every payload stamped with its send time:
//! - down: `PUBLISH session:{id}:down` (pipelined, several publisher tasks) → the
//!   client's WebSocket; latency = client receive − stamp;
//! - up: the client sends the JSON text frame → streamgate `PUBLISH session:{id}:up`
//!   → a bench `PSUBSCRIBE session:*:up`; latency = subscriber receive − stamp.
//!
//! Losses = sent − received once deliveries stop.

use crate::clients::{dial, new_hist};
use crate::payload;
use crate::systems::Running;
use anyhow::{bail, Context};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

const AGENT: &str = "bench-agent";
const SHARDS: usize = 16;

/// Parameters of one session scenario.
#[derive(Debug, Clone)]
pub struct SessionPlan {
    /// Sessions (one client each).
    pub sessions: usize,
    /// Warm-up sessions opened before the memory baseline.
    pub warm: usize,
    /// Sessions of the high-rate run.
    pub hot: usize,
    /// Total messages/s of the high-rate run (each way).
    pub hot_rate: f64,
    /// Seconds measured per run.
    pub duration: Duration,
    pub payload_bytes: usize,
    pub publishers: usize,
}

/// One timed run in one direction.
#[derive(Debug, Clone)]
pub struct DirResult {
    pub up: bool,
    /// Measured while the other direction ran at the same rate.
    pub both: bool,
    pub sessions: usize,
    pub target_per_s: f64,
    pub achieved_per_s: f64,
    pub sent: u64,
    pub received: u64,
    pub send_errors: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

impl DirResult {
    pub fn lost(&self) -> u64 {
        self.sent.saturating_sub(self.received)
    }
}

/// What the session scenario measured.
#[derive(Debug, Clone)]
pub struct SessionResult {
    pub sessions: usize,
    pub open_secs: f64,
    pub rss_before_kib: u64,
    pub rss_after_kib: u64,
    /// Client connections the server closed (or that broke) during the runs.
    pub ended_early: usize,
    pub runs: Vec<DirResult>,
}

impl SessionResult {
    pub fn per_session_kib(&self) -> f64 {
        self.rss_after_kib.saturating_sub(self.rss_before_kib) as f64 / self.sessions.max(1) as f64
    }
}

/// Received stamped messages and their latency.
struct Meter {
    received: AtomicU64,
    hist: Vec<Mutex<Histogram<u64>>>,
}

impl Meter {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            received: AtomicU64::new(0),
            hist: (0..SHARDS).map(|_| Mutex::new(new_hist())).collect(),
        })
    }

    fn record(&self, shard: usize, bytes: &[u8]) {
        if let Some(sent) = payload::sent_at(bytes) {
            self.received.fetch_add(1, Ordering::Relaxed);
            let us = payload::now_ns().saturating_sub(sent) / 1000;
            let mut h = self.hist[shard % SHARDS].lock().unwrap_or_else(|p| p.into_inner());
            h.saturating_record(us.max(1));
        }
    }

    fn reset(&self) {
        self.received.store(0, Ordering::Relaxed);
        for h in &self.hist {
            h.lock().unwrap_or_else(|p| p.into_inner()).reset();
        }
    }

    fn merged(&self) -> Histogram<u64> {
        let mut all = new_hist();
        for h in &self.hist {
            let _ = all.add(&*h.lock().unwrap_or_else(|p| p.into_inner()));
        }
        all
    }
}

/// State shared by the session clients.
struct Shared {
    down: Arc<Meter>,
    connected: AtomicUsize,
    failed: AtomicUsize,
    ended_early: AtomicUsize,
    first_error: Mutex<Option<String>>,
    stop: CancellationToken,
}

impl Shared {
    fn error(&self, e: String) {
        self.first_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert(e);
    }
}

/// Opens the session's WebSocket with the bearer token.
async fn open_ws(
    addr: SocketAddr,
    index: usize,
    session: &str,
    token: &str,
) -> anyhow::Result<tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>> {
    let stream = dial(addr, index).await?;
    let mut req = format!("ws://{addr}/{AGENT}/ws/{session}").into_client_request()?;
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    let (ws, _) = tokio_tungstenite::client_async(req, stream)
        .await
        .context("websocket handshake")?;
    Ok(ws)
}

/// One session client: opens, then forwards `up` frames and meters down frames
/// until `stop`.
async fn client(
    addr: SocketAddr,
    index: usize,
    session: String,
    token: String,
    shared: Arc<Shared>,
    gate: Arc<Semaphore>,
    mut up: mpsc::UnboundedReceiver<String>,
) {
    let permit = gate.acquire_owned().await;
    let ws = match tokio::time::timeout(Duration::from_secs(10), open_ws(addr, index, &session, &token)).await {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => {
            shared.failed.fetch_add(1, Ordering::Relaxed);
            return shared.error(format!("{e:#}"));
        }
        Err(_) => {
            shared.failed.fetch_add(1, Ordering::Relaxed);
            return shared.error("handshake timed out after 10 s".into());
        }
    };
    drop(permit);
    shared.connected.fetch_add(1, Ordering::Relaxed);
    let (mut tx, mut rx) = ws.split();
    let ended: Option<String> = loop {
        tokio::select! {
            _ = shared.stop.cancelled() => break None,
            m = up.recv() => match m {
                Some(text) => {
                    if let Err(e) = tx.send(Message::Text(text.into())).await {
                        break Some(format!("websocket send: {e}"));
                    }
                }
                None => break None,
            },
            f = rx.next() => match f {
                Some(Ok(Message::Text(t))) => shared.down.record(index, t.as_bytes()),
                Some(Ok(Message::Binary(b))) => shared.down.record(index, &b),
                Some(Ok(Message::Close(c))) => break Some(format!("server closed: {c:?}")),
                Some(Ok(_)) => {}
                Some(Err(e)) => break Some(format!("websocket read: {e}")),
                None => break Some("connection closed".into()),
            },
        }
    };
    if let Some(e) = ended {
        shared.ended_early.fetch_add(1, Ordering::Relaxed);
        shared.error(e);
    }
    let _ = tokio::time::timeout(Duration::from_millis(500), tx.close()).await;
}

/// Waits until `meter` has `expected` messages or nothing arrived for 2 s (at most 15 s).
async fn drain(meter: &Meter, expected: u64) {
    let end = Instant::now() + Duration::from_secs(15);
    let mut last = meter.received.load(Ordering::Relaxed);
    let mut last_change = Instant::now();
    while Instant::now() < end {
        let now = meter.received.load(Ordering::Relaxed);
        if now >= expected {
            return;
        }
        if now != last {
            (last, last_change) = (now, Instant::now());
        } else if last_change.elapsed() > Duration::from_secs(2) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub async fn run(sys: &Running, plan: &SessionPlan) -> anyhow::Result<SessionResult> {
    let url = sys.redis_url().context("the session scenario needs the Redis broker")?;
    let redis = redis::Client::open(url)?;
    let mut conn = redis
        .get_multiplexed_async_connection()
        .await
        .with_context(|| format!("connect {url}"))?;
    let total = plan.warm + plan.sessions;
    let names: Vec<String> = (0..total)
        .map(|i| {
            if i < plan.warm {
                format!("w{i}")
            } else {
                format!("s{}", i - plan.warm)
            }
        })
        .collect();
    let tokens: Vec<String> = (0..total)
        .map(|i| format!("bench-{}-{i}-{}", std::process::id(), payload::now_ns()))
        .collect();
    for chunk in (0..total).collect::<Vec<_>>().chunks(1000) {
        let mut pipe = redis::pipe();
        for &i in chunk {
            pipe.cmd("SET")
                .arg(format!("session:{}:auth", names[i]))
                .arg(&tokens[i])
                .arg("EX")
                .arg(3600)
                .ignore();
        }
        let () = pipe.query_async(&mut conn).await?;
    }
    let shared = Arc::new(Shared {
        down: Meter::new(),
        connected: AtomicUsize::new(0),
        failed: AtomicUsize::new(0),
        ended_early: AtomicUsize::new(0),
        first_error: Mutex::new(None),
        stop: CancellationToken::new(),
    });
    let gate = Arc::new(Semaphore::new(super::OPEN_CONCURRENCY));
    let mut tasks = JoinSet::new();
    let mut up_tx: Vec<mpsc::UnboundedSender<String>> = Vec::with_capacity(total);
    let open = |tasks: &mut JoinSet<()>, up_tx: &mut Vec<_>, range: std::ops::Range<usize>| {
        for i in range {
            let (tx, rx) = mpsc::unbounded_channel();
            up_tx.push(tx);
            tasks.spawn(client(
                sys.addr(),
                i,
                names[i].clone(),
                tokens[i].clone(),
                shared.clone(),
                gate.clone(),
                rx,
            ));
        }
    };
    let outcome = async {
        open(&mut tasks, &mut up_tx, 0..plan.warm);
        wait_open(&shared, plan.warm).await?;
        super::settle(1000, 100).await;
        let rss_before_kib = sys.front_rss_kib();
        let started = Instant::now();
        open(&mut tasks, &mut up_tx, plan.warm..total);
        wait_open(&shared, total).await?;
        let open_secs = started.elapsed().as_secs_f64();
        super::settle(2000, 200).await;
        let rss_after_kib = sys.front_rss_kib();

        let up_meter = Meter::new();
        let mut pubsub = redis.get_async_pubsub().await?;
        pubsub.psubscribe("session:*:up").await?;
        let mut stream = pubsub.into_on_message();
        let (um, stop) = (up_meter.clone(), shared.stop.clone());
        let subscriber = tokio::spawn(async move {
            let mut n = 0usize;
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    m = stream.next() => match m {
                        Some(m) => {
                            n += 1;
                            um.record(n, m.get_payload_bytes());
                        }
                        None => break,
                    },
                }
            }
        });

        let hot = plan.hot.min(plan.sessions).max(1);
        let mut runs = Vec::new();
        // (sessions, total rate): the high-rate run, then 1 msg/s per session over all.
        for (k, rate) in [(hot, plan.hot_rate), (plan.sessions, plan.sessions as f64)] {
            for up in [false, true] {
                let meter = if up { &up_meter } else { &shared.down };
                meter.reset();
                crate::say(
                    crate::systems::SystemKind::StreamgateRedis,
                    &format!(
                        "session {} {k} sessions at {rate:.0} msgs/s",
                        if up { "up" } else { "down" }
                    ),
                );
                let r = timed(&conn, &up_tx[plan.warm..], meter, up, k, rate, plan).await;
                crate::say(crate::systems::SystemKind::StreamgateRedis, &format!("  {r:?}"));
                runs.push(r);
            }
        }
        // The load: 1 msg/s per session each way, both directions at once.
        let (k, rate) = (plan.sessions, plan.sessions as f64);
        shared.down.reset();
        up_meter.reset();
        crate::say(
            crate::systems::SystemKind::StreamgateRedis,
            &format!("session both ways at once, {k} sessions at {rate:.0} msgs/s each way"),
        );
        let tx = &up_tx[plan.warm..];
        let (mut down, mut up) = tokio::join!(
            timed(&conn, tx, &shared.down, false, k, rate, plan),
            timed(&conn, tx, &up_meter, true, k, rate, plan)
        );
        down.both = true;
        up.both = true;
        crate::say(
            crate::systems::SystemKind::StreamgateRedis,
            &format!("  {down:?}\n  {up:?}"),
        );
        runs.push(down);
        runs.push(up);
        subscriber.abort();
        Ok::<_, anyhow::Error>(SessionResult {
            sessions: plan.sessions,
            open_secs,
            rss_before_kib,
            rss_after_kib,
            ended_early: shared.ended_early.load(Ordering::Relaxed),
            runs,
        })
    }
    .await;
    shared.stop.cancel();
    drop(up_tx);
    let all = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(30), all).await.is_err() {
        tasks.abort_all();
    }
    super::settle(500, 100).await;
    outcome
}

async fn wait_open(shared: &Shared, n: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60) + Duration::from_millis(20 * n as u64);
    loop {
        let (ok, failed) = (
            shared.connected.load(Ordering::Relaxed),
            shared.failed.load(Ordering::Relaxed),
        );
        if failed > 0 {
            let e = shared.first_error.lock().map(|e| e.clone()).unwrap_or_default();
            bail!(
                "{failed} of {n} session connections failed ({ok} opened): {}",
                e.unwrap_or_default()
            );
        }
        if ok >= n {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("only {ok} of {n} session connections opened in time");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// One run: `rate` stamped messages/s in all, round-robin over the first `k` sessions.
#[allow(clippy::too_many_arguments)]
async fn timed(
    conn: &redis::aio::MultiplexedConnection,
    up_tx: &[mpsc::UnboundedSender<String>],
    meter: &Meter,
    up: bool,
    k: usize,
    rate: f64,
    plan: &SessionPlan,
) -> DirResult {
    let count = (rate * plan.duration.as_secs_f64()).ceil().max(1.0) as u64;
    let sent = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let started = tokio::time::Instant::now();
    let size = plan.payload_bytes;
    if up {
        // Channel sends never wait: one pacing task is enough.
        for j in 0..count {
            tokio::time::sleep_until(started + Duration::from_secs_f64(j as f64 / rate)).await;
            let i = (j % k as u64) as usize;
            if up_tx[i].send(payload::make(j, size)).is_ok() {
                sent.fetch_add(1, Ordering::Relaxed);
            } else {
                errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    } else {
        let workers = plan.publishers.max(1) as u64;
        let mut tasks = JoinSet::new();
        for w in 0..workers {
            let (mut conn, sent, errors) = (conn.clone(), sent.clone(), errors.clone());
            tasks.spawn(async move {
                let mut j = w;
                while j < count {
                    tokio::time::sleep_until(started + Duration::from_secs_f64(j as f64 / rate)).await;
                    let i = j % k as u64;
                    let r: redis::RedisResult<i64> = redis::cmd("PUBLISH")
                        .arg(format!("session:s{i}:down"))
                        .arg(payload::make(j, size))
                        .query_async(&mut conn)
                        .await;
                    match r {
                        Ok(_) => sent.fetch_add(1, Ordering::Relaxed),
                        Err(_) => errors.fetch_add(1, Ordering::Relaxed),
                    };
                    j += workers;
                }
            });
        }
        while tasks.join_next().await.is_some() {}
    }
    let secs = started.elapsed().as_secs_f64();
    let sent = sent.load(Ordering::Relaxed);
    drain(meter, sent).await;
    let hist = meter.merged();
    DirResult {
        up,
        both: false,
        sessions: k,
        target_per_s: rate,
        achieved_per_s: sent as f64 / secs.max(1e-9),
        sent,
        received: meter.received.load(Ordering::Relaxed),
        send_errors: errors.load(Ordering::Relaxed),
        p50_us: hist.value_at_quantile(0.5),
        p99_us: hist.value_at_quantile(0.99),
        p999_us: hist.value_at_quantile(0.999),
        max_us: hist.max(),
    }
}
