//! The Redis broker: one pattern subscription per node, a shared multiplexed
//! connection for publishes and leases, reconnection with capped backoff.
//!
//! The subscription is the hot path (every message of every client crosses it), so
//! on plain TCP it is read directly: one task reads the socket, parses the pushes
//! with [`super::resp`] and hands each to the sink. TLS and Unix-socket URLs use the
//! redis crate's pub/sub connection instead.

use super::resp::{self, Item, Reply};
use super::{Broker, BrokerError, Sink, Slot};
use crate::config::RedisConfig;
use crate::telemetry::Metrics;
use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{Client, ConnectionAddr, IntoConnectionInfo, Script};
use async_trait::async_trait;
use bytes::Bytes;
use bytes::{Buf, BytesMut};
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Namespace of every key streamgate writes.
const KEY_PREFIX: &str = "streamgate:";
/// First reconnect delay; doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// Longest wait between reconnect attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Leases refreshed per script call.
const REFRESH_CHUNK: usize = 500;
/// Longest wait to connect, authenticate and subscribe.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(5);
/// A subscription that stayed up this long resets the reconnect backoff.
const STABLE_SESSION: Duration = Duration::from_secs(10);
/// Bytes read from the subscription socket at a time (many pushes per read).
const READ_CHUNK: usize = 64 * 1024;

/// Takes a lease on every key if none is full. A key's expiry only ever grows, so
/// nodes with different lease lengths never cut each other's leases short. KEYS = slot keys;
/// ARGV = holder, ttl_ms, limit per key. Uses the Redis clock so nodes agree.
const ACQUIRE_LUA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  local limit = tonumber(ARGV[i + 2])
  if limit > 0 and redis.call('ZCARD', key) >= limit then
    return 0
  end
end
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, now + ttl, ARGV[1])
  if redis.call('PTTL', key) < ttl then redis.call('PEXPIRE', key, ttl) end
end
return 1
"#;

/// Extends (or re-creates, after a Redis restart or flush) leases this node holds.
/// KEYS = keys; ARGV = ttl_ms, holder per key.
const REFRESH_LUA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, now + ttl, ARGV[i + 1])
  if redis.call('PTTL', key) < ttl then redis.call('PEXPIRE', key, ttl) end
end
return 1
"#;

/// Adds a revocation entry, keeping the later expiry, and makes the list key live
/// as long as its longest entry. KEYS = list; ARGV = entry, expires_at, now (Unix s).
const REVOKE_LUA: &str = r#"
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
local old = redis.call('ZSCORE', KEYS[1], ARGV[1])
if (not old) or tonumber(old) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
end
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('EXPIREAT', KEYS[1], math.floor(tonumber(last[2])) + 1)
return 1
"#;

/// Broker over one Redis server shared by every node.
pub struct RedisBroker {
    conn: ConnectionManager,
    ready: watch::Sender<bool>,
    acquire: Script,
    refresh: Script,
    revoke: Script,
}

impl RedisBroker {
    /// Connects lazily and starts the subscription task; never fails because Redis is
    /// down (the node starts not ready and keeps retrying).
    pub fn start(
        cfg: &RedisConfig,
        patterns: Vec<String>,
        sink: Sink,
        metrics: Arc<Metrics>,
        shutdown: CancellationToken,
    ) -> Result<Self, BrokerError> {
        let client = client(cfg)?;
        let manager_cfg = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_max_delay(Duration::from_secs(1))
            .set_number_of_retries(2);
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), manager_cfg)?;
        let ready = watch::Sender::new(false);
        let task = Subscriber {
            client,
            patterns,
            sink,
            metrics,
            ready: ready.clone(),
        };
        tokio::spawn(task.run(shutdown));
        Ok(Self {
            conn,
            ready,
            acquire: Script::new(ACQUIRE_LUA),
            refresh: Script::new(REFRESH_LUA),
            revoke: Script::new(REVOKE_LUA),
        })
    }
}

fn client(cfg: &RedisConfig) -> Result<Client, BrokerError> {
    let mut info = cfg
        .url
        .as_str()
        .into_connection_info()
        .map_err(|e| BrokerError::Config(format!("broker.redis.url: {e}")))?;
    let mut redis_info = info.redis_settings().clone();
    if let Some(password) = cfg.password.as_deref().filter(|p| !p.is_empty()) {
        redis_info = redis_info.set_password(password);
    }
    if cfg.db != 0 {
        redis_info = redis_info.set_db(cfg.db);
    }
    info = info.set_redis_settings(redis_info);
    Client::open(info).map_err(|e| BrokerError::Config(format!("broker.redis.url: {e}")))
}

fn key(name: &str) -> String {
    format!("{KEY_PREFIX}{name}")
}

#[async_trait]
impl Broker for RedisBroker {
    fn kind(&self) -> &'static str {
        "redis"
    }

    fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    fn watch_ready(&self) -> watch::Receiver<bool> {
        self.ready.subscribe()
    }

    async fn publish(&self, topic: &str, payload: Bytes) -> Result<(), BrokerError> {
        let mut publish = ::redis::cmd("PUBLISH");
        publish.arg(topic).arg(payload.as_ref());
        let _receivers: i64 = self.query_retrying(&publish).await?;
        Ok(())
    }

    async fn publish_batch(&self, messages: &[(String, Bytes)]) -> Result<(), BrokerError> {
        if let [(topic, payload)] = messages {
            return self.publish(topic, payload.clone()).await;
        }
        // One pipeline: one write and one round trip for the whole batch.
        let mut pipe = ::redis::pipe();
        for (topic, payload) in messages {
            pipe.cmd("PUBLISH").arg(topic).arg(payload.as_ref()).ignore();
        }
        let pipe = &pipe;
        self.retrying(|mut c| async move { pipe.query_async::<()>(&mut c).await })
            .await
    }

    async fn acquire(&self, slots: &[Slot], holder: &str, ttl: Duration) -> Result<bool, BrokerError> {
        let mut invocation = self.acquire.prepare_invoke();
        for slot in slots {
            invocation.key(key(&slot.key));
        }
        invocation.arg(holder).arg(ttl.as_millis() as u64);
        for slot in slots {
            invocation.arg(slot.limit);
        }
        let invocation = &invocation;
        let granted: i64 = self
            .retrying(|mut c| async move { invocation.invoke_async(&mut c).await })
            .await?;
        Ok(granted == 1)
    }

    async fn refresh(&self, leases: &[(String, String)], ttl: Duration) -> Result<(), BrokerError> {
        for chunk in leases.chunks(REFRESH_CHUNK) {
            let mut invocation = self.refresh.prepare_invoke();
            invocation.arg(ttl.as_millis() as u64);
            for (name, holder) in chunk {
                invocation.key(key(name)).arg(holder);
            }
            let invocation = &invocation;
            let _: i64 = self
                .retrying(|mut c| async move { invocation.invoke_async(&mut c).await })
                .await?;
        }
        Ok(())
    }

    async fn release(&self, leases: &[(String, String)]) -> Result<(), BrokerError> {
        let mut pipe = ::redis::pipe();
        for (name, holder) in leases {
            pipe.cmd("ZREM").arg(key(name)).arg(holder).ignore();
        }
        let pipe = &pipe;
        self.retrying(|mut c| async move { pipe.query_async::<()>(&mut c).await })
            .await?;
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>, BrokerError> {
        self.get_key(key).await
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<(), BrokerError> {
        self.set_key(key, value, ttl).await
    }

    async fn revoke(&self, subject: &str, entry: &str, expires_at: u64) -> Result<(), BrokerError> {
        let mut invocation = self.revoke.prepare_invoke();
        invocation
            .key(revocation_key(subject))
            .arg(entry)
            .arg(expires_at)
            .arg(unix_now());
        let invocation = &invocation;
        let _: i64 = self
            .retrying(|mut c| async move { invocation.invoke_async(&mut c).await })
            .await?;
        Ok(())
    }

    async fn revocations(&self, subject: &str) -> Result<Vec<(String, u64)>, BrokerError> {
        let mut cmd = ::redis::cmd("ZRANGEBYSCORE");
        cmd.arg(revocation_key(subject))
            .arg(format!("({}", unix_now()))
            .arg("+inf")
            .arg("WITHSCORES");
        let entries: Vec<(String, f64)> = self.query_retrying(&cmd).await?;
        Ok(entries.into_iter().map(|(entry, at)| (entry, at as u64)).collect())
    }
}

/// The sorted set of `subject`'s revocations (score = expiry, Unix seconds).
fn revocation_key(subject: &str) -> String {
    key(&format!("revoked:{subject}"))
}

/// Node wall clock in Unix seconds: revocation expiries come from token `exp`
/// values, which are judged by the same clock.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

// === impl RedisBroker: commands ===

impl RedisBroker {
    /// Runs `cmd`, retrying once when the shared connection turns out to have
    /// dropped: the connection manager only notices a dead socket when a command
    /// fails on it, so without the retry the first command after a Redis restart
    /// would be lost even though the subscription (and `/ready`) had recovered.
    async fn retrying<T, F, Fut>(&self, op: F) -> Result<T, BrokerError>
    where
        F: Fn(ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = ::redis::RedisResult<T>>,
    {
        match op(self.conn.clone()).await {
            Err(e) if e.is_connection_dropped() => {
                tracing::debug!(error = %e, "redis connection dropped; retrying once");
                Ok(op(self.conn.clone()).await?)
            }
            other => Ok(other?),
        }
    }

    async fn query_retrying<T: ::redis::FromRedisValue>(&self, cmd: &::redis::Cmd) -> Result<T, BrokerError> {
        self.retrying(|mut c| async move { cmd.query_async(&mut c).await })
            .await
    }

    async fn get_key(&self, key: &str) -> Result<Option<Bytes>, BrokerError> {
        let value: Option<Vec<u8>> = self.query_retrying(::redis::cmd("GET").arg(key)).await?;
        Ok(value.map(Bytes::from))
    }

    async fn set_key(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<(), BrokerError> {
        let mut cmd = ::redis::cmd("SET");
        cmd.arg(key).arg(value.as_ref());
        if let Some(ttl) = ttl {
            cmd.arg("PX").arg(ttl.as_millis().max(1) as u64);
        }
        self.query_retrying::<()>(&cmd).await
    }
}

/// The node's single pub/sub connection and its reconnect loop.
struct Subscriber {
    client: Client,
    patterns: Vec<String>,
    sink: Sink,
    metrics: Arc<Metrics>,
    ready: watch::Sender<bool>,
}

impl Subscriber {
    async fn run(self, shutdown: CancellationToken) {
        let mut backoff = MIN_BACKOFF;
        let mut lost_once = false;
        loop {
            let started = tokio::time::Instant::now();
            let session = tokio::select! {
                _ = shutdown.cancelled() => return,
                result = self.session(lost_once) => result,
            };
            self.set_ready(false);
            // Only a session that stayed up resets the backoff: one that fails at
            // once every time (a reply it cannot read, say) must not reconnect in a
            // tight loop.
            if started.elapsed() >= STABLE_SESSION {
                backoff = MIN_BACKOFF;
            }
            if let Err(e) = session {
                tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "redis subscription lost");
            }
            lost_once = true;
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Connects, subscribes, then forwards messages until the connection ends.
    async fn session(&self, lost_once: bool) -> Result<(), BrokerError> {
        match self.client.get_connection_info().addr() {
            ConnectionAddr::Tcp(host, port) => self.session_tcp(host, *port, lost_once).await,
            _ => self.session_pubsub(lost_once).await,
        }
    }

    /// The subscription over a plain TCP socket read by this task itself.
    async fn session_tcp(&self, host: &str, port: u16, lost_once: bool) -> Result<(), BrokerError> {
        let (mut stream, mut buf) = tokio::time::timeout(SUBSCRIBE_TIMEOUT, self.subscribe_tcp(host, port))
            .await
            .map_err(|_| BrokerError::NotConnected)??;
        self.live(lost_once);
        loop {
            // Everything complete in the buffer goes out before the next read.
            let mut at = 0;
            while let Some((reply, used)) = resp::parse(&buf[at..]).map_err(protocol)? {
                self.on_push(&buf[at..at + used], reply)?;
                at += used;
            }
            buf.advance(at);
            if buf.is_empty() && buf.capacity() > 4 * READ_CHUNK {
                // One huge message must not keep its buffer for the session's life.
                buf = BytesMut::with_capacity(READ_CHUNK);
            }
            if at > 0 {
                // Let the connections just handed frames write them before reading
                // more: without this, tokio's budget lets one poll of this task
                // dispatch ~128 reads (thousands of messages) while their writers
                // wait, and their bounded queues overflow.
                tokio::task::yield_now().await;
            }
            buf.reserve(READ_CHUNK);
            if stream.read_buf(&mut buf).await.map_err(io)? == 0 {
                return Err(BrokerError::NotConnected);
            }
        }
    }

    /// Connects, authenticates when a password is set and subscribes to every
    /// pattern; returns the socket and what was read past the confirmations.
    async fn subscribe_tcp(&self, host: &str, port: u16) -> Result<(TcpStream, BytesMut), BrokerError> {
        let mut stream = TcpStream::connect((host, port)).await.map_err(io)?;
        stream.set_nodelay(true).map_err(io)?;
        // A half-open connection (a partition, a NAT or load-balancer idle timeout)
        // would leave the node waiting for pushes forever while /ready says yes:
        // keepalive probes find it within about a minute, and the reader reconnects.
        let keepalive = socket2::TcpKeepalive::new()
            .with_time(Duration::from_secs(30))
            .with_interval(Duration::from_secs(10))
            .with_retries(3);
        socket2::SockRef::from(&stream)
            .set_tcp_keepalive(&keepalive)
            .map_err(io)?;
        let mut buf = BytesMut::with_capacity(READ_CHUNK);
        let settings = self.client.get_connection_info().redis_settings();
        if let Some(password) = settings.password() {
            let auth = match settings.username() {
                Some(user) => command(&["AUTH", user, password]),
                None => command(&["AUTH", password]),
            };
            stream.write_all(&auth).await.map_err(io)?;
            let (reply, bytes) = read_reply(&mut stream, &mut buf).await?;
            if !matches!(reply, Reply::Status(_)) {
                return Err(BrokerError::Subscription(format!(
                    "AUTH refused: {}",
                    printable(&bytes)
                )));
            }
        }
        let mut subscribe = Vec::new();
        for pattern in &self.patterns {
            // A name without glob characters is a plain channel: SUBSCRIBE keeps the
            // node at exactly one pattern subscription per job.
            let verb = if pattern.contains(['*', '?', '[']) {
                "PSUBSCRIBE"
            } else {
                "SUBSCRIBE"
            };
            subscribe.extend_from_slice(&command(&[verb, pattern]));
        }
        stream.write_all(&subscribe).await.map_err(io)?;
        // One confirmation per pattern. A message on a pattern confirmed already can
        // arrive before the next confirmation (the commands may reach Redis in
        // separate reads): it is delivered, not mistaken for a confirmation.
        let mut confirmed = 0;
        while confirmed < self.patterns.len() {
            let (reply, bytes) = read_reply(&mut stream, &mut buf).await?;
            if is_confirmation(&bytes, &reply) {
                confirmed += 1;
            } else if matches!(reply, Reply::Array(_)) {
                self.on_push(&bytes, reply)?;
            } else {
                return Err(BrokerError::Subscription(format!(
                    "subscribe refused: {}",
                    printable(&bytes)
                )));
            }
        }
        Ok((stream, buf))
    }

    /// Hands a `message` or `pmessage` push (`bytes` is the whole reply) to the sink;
    /// an error reply ends the session (the reader reconnects); anything else (a
    /// late confirmation, a pong) is ignored.
    fn on_push(&self, bytes: &[u8], reply: Reply) -> Result<(), BrokerError> {
        let items = match reply {
            Reply::Array(items) => items,
            Reply::Error(_) => {
                return Err(BrokerError::Subscription(format!(
                    "error on the subscription: {}",
                    printable(bytes)
                )))
            }
            _ => return Ok(()),
        };
        let (channel, payload) = match items.as_slice() {
            [Item::Bulk(Some(kind)), Item::Bulk(Some(channel)), Item::Bulk(Some(payload))]
                if &bytes[kind.clone()] == b"message" =>
            {
                (channel, payload)
            }
            [Item::Bulk(Some(kind)), Item::Bulk(Some(_pattern)), Item::Bulk(Some(channel)), Item::Bulk(Some(payload))]
                if &bytes[kind.clone()] == b"pmessage" =>
            {
                (channel, payload)
            }
            _ => return Ok(()),
        };
        match std::str::from_utf8(&bytes[channel.clone()]) {
            Ok(channel) => (self.sink)(channel, Bytes::copy_from_slice(&bytes[payload.clone()])),
            Err(_) => tracing::debug!("message on a channel name that is not UTF-8 ignored"),
        }
        Ok(())
    }

    /// The subscription through the redis crate's pub/sub connection (TLS, Unix socket).
    async fn session_pubsub(&self, lost_once: bool) -> Result<(), BrokerError> {
        let mut pubsub = tokio::time::timeout(SUBSCRIBE_TIMEOUT, self.client.get_async_pubsub())
            .await
            .map_err(|_| BrokerError::NotConnected)??;
        for pattern in &self.patterns {
            if pattern.contains(['*', '?', '[']) {
                pubsub.psubscribe(pattern).await?;
            } else {
                pubsub.subscribe(pattern).await?;
            }
        }
        self.live(lost_once);
        let mut messages = pubsub.into_on_message();
        while let Some(msg) = messages.next().await {
            let payload = Bytes::copy_from_slice(msg.get_payload_bytes());
            (self.sink)(msg.get_channel_name(), payload);
        }
        Err(BrokerError::NotConnected)
    }

    /// The subscription is confirmed: log, report ready.
    fn live(&self, lost_once: bool) {
        if lost_once {
            self.metrics.broker_reconnect();
            tracing::info!("redis subscription restored");
        } else {
            tracing::info!(patterns = ?self.patterns, "redis subscription live");
        }
        self.set_ready(true);
    }

    fn set_ready(&self, up: bool) {
        self.metrics.broker_connected(up);
        self.ready.send_replace(up);
    }
}

/// A command as a RESP array of bulk strings.
fn command(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Reads until one whole reply is in `buf` and takes it out: the reply, and its
/// bytes (which the reply's ranges index).
async fn read_reply(stream: &mut TcpStream, buf: &mut BytesMut) -> Result<(Reply, BytesMut), BrokerError> {
    loop {
        if let Some((reply, used)) = resp::parse(buf).map_err(protocol)? {
            return Ok((reply, buf.split_to(used)));
        }
        buf.reserve(READ_CHUNK);
        if stream.read_buf(buf).await.map_err(io)? == 0 {
            return Err(BrokerError::NotConnected);
        }
    }
}

/// A subscribe or unsubscribe confirmation (`["psubscribe", pattern, count]`).
fn is_confirmation(bytes: &[u8], reply: &Reply) -> bool {
    let Reply::Array(items) = reply else { return false };
    match items.first() {
        Some(Item::Bulk(Some(kind))) => matches!(&bytes[kind.clone()], b"subscribe" | b"psubscribe"),
        _ => false,
    }
}

/// A reply as text for error messages.
fn printable(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).trim_end().to_string()
}

fn io(e: std::io::Error) -> BrokerError {
    BrokerError::Subscription(e.to_string())
}

fn protocol(e: resp::Invalid) -> BrokerError {
    BrokerError::Subscription(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::{is_confirmation, resp};

    #[test]
    fn only_subscribe_replies_count_as_confirmations() {
        const CASES: &[(&str, &[u8], bool)] = &[
            (
                "psubscribe",
                b"*3\r\n$10\r\npsubscribe\r\n$9\r\nstreams:*\r\n:1\r\n",
                true,
            ),
            ("subscribe", b"*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:2\r\n", true),
            (
                "a message that arrives before the last confirmation",
                b"*4\r\n$8\r\npmessage\r\n$9\r\nstreams:*\r\n$10\r\nstreams:42\r\n$2\r\nhi\r\n",
                false,
            ),
            ("status", b"+OK\r\n", false),
        ];
        for (name, bytes, expected) in CASES {
            let (reply, _) = resp::parse(bytes).unwrap().unwrap();
            assert_eq!(is_confirmation(bytes, &reply), *expected, "case {name}");
        }
    }
}
