//! The systems under test, each started on free ports by the bench and stopped
//! (its whole process group) when its [`Running`] drops:
//! - streamgate with the memory broker, and with the Redis broker (own redis-server);
//! - Redis direct: a private redis-server, each client `SUBSCRIBE`s on its own connection;
//! - Pushpin as packaged, and tuned (`message_rate`/`message_hwm` raised), with the
//!   bench's own GRIP origin behind it.

mod http_publish;
mod origin;
mod pushpin;
mod streamgate;

pub use pushpin::{packaged_limits as pushpin_packaged_limits, TUNED_MESSAGE_HWM, TUNED_MESSAGE_RATE};

use crate::clients::{Target, Transport};
use crate::procs::{self, Proc};
use anyhow::Context;
use http_publish::HttpPublisher;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// A system the bench can start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
pub enum SystemKind {
    StreamgateMemory,
    StreamgateRedis,
    RedisDirect,
    PushpinPackaged,
    PushpinTuned,
}

impl SystemKind {
    pub const ALL: [SystemKind; 5] = [
        SystemKind::StreamgateMemory,
        SystemKind::StreamgateRedis,
        SystemKind::RedisDirect,
        SystemKind::PushpinPackaged,
        SystemKind::PushpinTuned,
    ];

    pub fn label(self) -> &'static str {
        match self {
            SystemKind::StreamgateMemory => "streamgate (memory broker)",
            SystemKind::StreamgateRedis => "streamgate (Redis broker)",
            SystemKind::RedisDirect => "Redis direct",
            SystemKind::PushpinPackaged => "Pushpin (packaged)",
            SystemKind::PushpinTuned => "Pushpin (tuned)",
        }
    }

    /// The client wires this system serves.
    pub fn transports(self) -> &'static [Transport] {
        match self {
            SystemKind::RedisDirect => &[Transport::Resp],
            _ => &[Transport::Ws, Transport::Sse],
        }
    }

    /// How messages reach it in this bench.
    pub fn publish_path(self) -> &'static str {
        match self {
            SystemKind::StreamgateMemory => "POST /api/publish",
            SystemKind::StreamgateRedis | SystemKind::RedisDirect => "Redis PUBLISH",
            SystemKind::PushpinPackaged | SystemKind::PushpinTuned => "Pushpin HTTP /publish/",
        }
    }

    pub fn is_streamgate(self) -> bool {
        matches!(self, SystemKind::StreamgateMemory | SystemKind::StreamgateRedis)
    }
}

/// What every system needs to start.
#[derive(Debug, Clone)]
pub struct Env {
    pub workdir: PathBuf,
    pub streamgate_bin: PathBuf,
    pub redis_bin: String,
    pub pushpin_bin: String,
    pub secret: String,
    pub api_key: String,
    /// Per-connection queue of streamgate (`relay.client_buffer_size`).
    pub client_buffer: usize,
    /// streamgate verifies with this public key (PEM path) instead of `secret`.
    pub jwt_public_key: Option<PathBuf>,
    /// streamgate serves the session proxy (`session: {enabled: true, auth: redis_token}`).
    pub session: bool,
}

/// A started system.
pub struct Running {
    kind: SystemKind,
    /// Client entry point (streamgate, redis-server or Pushpin's HTTP port).
    addr: SocketAddr,
    publisher: Publisher,
    http: reqwest::Client,
    metrics_url: Option<String>,
    /// The private redis-server behind streamgate (Redis broker) or Redis direct.
    redis_url: Option<String>,
    _origin: Option<origin::Origin>,
    /// Dropped last: the processes (the origin stops first).
    procs: Vec<Proc>,
}

impl Running {
    /// Starts `kind` on free ports and waits until it serves.
    pub async fn start(kind: SystemKind, env: &Env, tag: &str) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .timeout(Duration::from_secs(10))
            .build()?;
        match kind {
            SystemKind::StreamgateMemory | SystemKind::StreamgateRedis => {
                let mut procs = Vec::new();
                let redis_url = if kind == SystemKind::StreamgateRedis {
                    let (proc, addr) = start_redis(env, &format!("{tag}-broker")).await?;
                    procs.push(proc);
                    Some(format!("redis://{addr}"))
                } else {
                    None
                };
                let (proc, addr) = streamgate::start(env, tag, redis_url.as_deref(), &http).await?;
                procs.push(proc);
                let publisher = match &redis_url {
                    Some(url) => Publisher::redis(url).await?,
                    None => Publisher::Api(HttpPublisher::new(
                        addr,
                        "/api/publish",
                        Some(&format!("Bearer {}", env.api_key)),
                    )?),
                };
                Ok(Self {
                    kind,
                    addr,
                    publisher,
                    metrics_url: Some(format!("http://{addr}/metrics")),
                    redis_url,
                    http,
                    _origin: None,
                    procs,
                })
            }
            SystemKind::RedisDirect => {
                let (proc, addr) = start_redis(env, tag).await?;
                let url = format!("redis://{addr}");
                let publisher = Publisher::redis(&url).await?;
                Ok(Self {
                    kind,
                    addr,
                    publisher,
                    metrics_url: None,
                    redis_url: Some(url),
                    http,
                    _origin: None,
                    procs: vec![proc],
                })
            }
            SystemKind::PushpinPackaged | SystemKind::PushpinTuned => {
                let origin = origin::Origin::start(&env.secret).await?;
                let tuned = kind == SystemKind::PushpinTuned;
                let (proc, addr, publish_addr) = pushpin::start(env, tag, origin.addr(), tuned).await?;
                Ok(Self {
                    kind,
                    addr,
                    publisher: Publisher::Pushpin(HttpPublisher::new(publish_addr, "/publish/", None)?),
                    metrics_url: None,
                    redis_url: None,
                    http,
                    _origin: Some(origin),
                    procs: vec![proc],
                })
            }
        }
    }

    /// Where client `identity` with `token` connects over `transport`.
    pub fn target(&self, transport: Transport, identity: &str, token: &str) -> Target {
        let path = match transport {
            Transport::Ws => format!("/ws?token={token}"),
            Transport::Sse => format!("/events?token={token}"),
            Transport::Resp => format!("streams:{identity}"),
        };
        Target {
            addr: self.addr,
            transport,
            path,
        }
    }

    pub fn label(&self) -> &'static str {
        self.kind.label()
    }

    /// Client entry point.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The system's private redis-server, if it has one.
    pub fn redis_url(&self) -> Option<&str> {
        self.redis_url.as_deref()
    }

    /// Resident memory of the client-facing process only (streamgate without its
    /// redis-server: the last process started).
    pub fn front_rss_kib(&self) -> u64 {
        self.procs
            .last()
            .map_or(0, |p| p.pids().into_iter().map(procs::rss_kib).sum())
    }

    pub fn publisher(&self) -> &Publisher {
        &self.publisher
    }

    /// Every process of the system (for Pushpin: runner, condure, zurl, proxy, handler).
    pub fn pids(&self) -> Vec<i32> {
        self.procs.iter().flat_map(Proc::pids).collect()
    }

    /// Summed resident memory of [`Self::pids`].
    pub fn rss_kib(&self) -> u64 {
        self.pids().into_iter().map(procs::rss_kib).sum()
    }

    /// Fails if a process of the system has died.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        self.procs.iter_mut().try_for_each(Proc::check_alive)
    }

    /// `streamgate_relay_dropped_messages_total` (streamgate only).
    pub async fn dropped(&self) -> Option<u64> {
        let url = self.metrics_url.as_ref()?;
        let text = self.http.get(url).send().await.ok()?.text().await.ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix("streamgate_relay_dropped_messages_total "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map(|v| v as u64)
    }
}

/// A private redis-server on a free port, no persistence.
async fn start_redis(env: &Env, tag: &str) -> anyhow::Result<(Proc, SocketAddr)> {
    let port = procs::free_port()?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut cmd = Command::new(&env.redis_bin);
    cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
        .args(["--maxclients", "19000", "--loglevel", "warning"])
        .current_dir(&env.workdir);
    let mut proc = Proc::spawn("redis-server", cmd, &env.workdir.join(format!("{tag}-redis.log")))?;
    tokio::task::block_in_place(|| proc.wait_port(addr, Duration::from_secs(10)))?;
    Ok((proc, addr))
}

/// How the bench publishes to a system.
#[derive(Clone)]
pub enum Publisher {
    /// `PUBLISH streams:{identity} payload` on a pipelining connection.
    Redis(redis::aio::MultiplexedConnection),
    /// streamgate `POST /api/publish`.
    Api(HttpPublisher),
    /// Pushpin's HTTP publish endpoint, one item per request.
    Pushpin(HttpPublisher),
}

impl Publisher {
    async fn redis(url: &str) -> anyhow::Result<Self> {
        let client = redis::Client::open(url)?;
        let conn = client
            .get_multiplexed_async_connection()
            .await
            .with_context(|| format!("connect {url}"))?;
        Ok(Publisher::Redis(conn))
    }

    /// Publishes `payload` (a JSON object) to `identity`.
    pub async fn publish(&self, identity: &str, payload: &str) -> anyhow::Result<()> {
        match self {
            Publisher::Redis(conn) => {
                let mut conn = conn.clone();
                let _: i64 = redis::cmd("PUBLISH")
                    .arg(format!("streams:{identity}"))
                    .arg(payload)
                    .query_async(&mut conn)
                    .await?;
            }
            Publisher::Api(http) => {
                let body = format!("{{\"identity\":\"{identity}\",\"data\":{payload}}}");
                let (status, _) = http.post(body).await?;
                anyhow::ensure!(status.as_u16() == 202, "publish answered {status}");
            }
            Publisher::Pushpin(http) => {
                let body = serde_json::json!({ "items": [pushpin_item(identity, payload)] });
                let (status, _) = http.post(body.to_string()).await?;
                anyhow::ensure!(status.is_success(), "publish answered {status}");
            }
        }
        Ok(())
    }

    /// Publishes every `(identity, payload)` in one call, in each system's own batch
    /// form: a Redis pipeline of `PUBLISH`, streamgate's `{"messages":[…]}`, Pushpin's
    /// `{"items":[…]}`. A batch of one is [`Self::publish`].
    pub async fn publish_batch(&self, batch: &[(String, String)]) -> anyhow::Result<()> {
        if let [(identity, payload)] = batch {
            return self.publish(identity, payload).await;
        }
        match self {
            Publisher::Redis(conn) => {
                let mut conn = conn.clone();
                let mut pipe = redis::pipe();
                for (identity, payload) in batch {
                    pipe.cmd("PUBLISH")
                        .arg(format!("streams:{identity}"))
                        .arg(payload)
                        .ignore();
                }
                pipe.query_async::<()>(&mut conn).await?;
            }
            Publisher::Api(http) => {
                let mut body =
                    String::with_capacity(batch.iter().map(|(i, p)| i.len() + p.len() + 32).sum::<usize>() + 16);
                body.push_str("{\"messages\":[");
                for (n, (identity, payload)) in batch.iter().enumerate() {
                    if n > 0 {
                        body.push(',');
                    }
                    let _ = write!(body, "{{\"identity\":\"{identity}\",\"data\":{payload}}}");
                }
                body.push_str("]}");
                let (status, _) = http.post(body).await?;
                anyhow::ensure!(status.as_u16() == 202, "publish answered {status}");
            }
            Publisher::Pushpin(http) => {
                let items: Vec<_> = batch.iter().map(|(i, p)| pushpin_item(i, p)).collect();
                let body = serde_json::json!({ "items": items });
                let (status, _) = http.post(body.to_string()).await?;
                anyhow::ensure!(status.is_success(), "publish answered {status}");
            }
        }
        Ok(())
    }
}

/// One Pushpin publish item for `identity`'s channel, in both client formats.
fn pushpin_item(identity: &str, payload: &str) -> serde_json::Value {
    serde_json::json!({
        "channel": format!("streams:{identity}"),
        "formats": {
            "ws-message": { "content": payload },
            "http-stream": { "content": format!("event: message\ndata: {payload}\n\n") },
        },
    })
}
