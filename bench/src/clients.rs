//! The load generator's clients: WebSocket (tokio-tungstenite), SSE (raw TCP with a
//! small chunked decoder) and Redis `SUBSCRIBE` (raw RESP). Each is one task with one
//! small buffer, so 10 000 of them fit in one process. Every client binds a source
//! address in 127.0.0.2–251 so that many short connections never run out of ports.

use crate::payload;
use anyhow::{anyhow, bail, Context};
use bytes::{Buf, Bytes, BytesMut};
use futures_util::StreamExt;
use hdrhistogram::Histogram;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;

/// How long one client may take from TCP connect to its `connected` event.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Bytes read per syscall (SSE and RESP); grows only when a message is larger.
const READ_CHUNK: usize = 4096;
/// Tries per client while a run sets up (a peer may refuse a burst of handshakes,
/// as a real client would retry); the connect scenario does not retry.
const OPEN_ATTEMPTS: u32 = 5;
/// Latency histogram shards (one lock each) so clients rarely contend.
const SHARDS: usize = 16;

/// The wire a client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Transport {
    /// WebSocket `GET /ws`.
    Ws,
    /// Server-sent events `GET /events`.
    Sse,
    /// Redis `SUBSCRIBE streams:{identity}` on its own connection.
    Resp,
}

impl Transport {
    pub fn label(self) -> &'static str {
        match self {
            Transport::Ws => "WS",
            Transport::Sse => "SSE",
            Transport::Resp => "RESP",
        }
    }
}

/// One client to open: where, which wire, and the request path (`/ws?token=…`) or,
/// for RESP, the channel name.
#[derive(Debug, Clone)]
pub struct Target {
    pub addr: SocketAddr,
    pub transport: Transport,
    pub path: String,
}

/// Shared counters of one scenario run, written by every client.
pub struct Sink {
    pub connected: AtomicUsize,
    pub failed: AtomicUsize,
    /// Handshakes that failed and were tried again.
    pub retries: AtomicUsize,
    /// Connections that ended (closed by the server or broken) before `stop`.
    pub ended_early: AtomicUsize,
    pub received: AtomicU64,
    /// When the last message arrived ([`payload::now_ns`]).
    pub last_received_ns: AtomicU64,
    /// Connected clients per identity index.
    pub per_identity: Vec<AtomicU32>,
    /// Delivery latency in microseconds, when this run records it.
    latency: Option<Vec<Mutex<Histogram<u64>>>>,
    pub stop: CancellationToken,
    first_error: Mutex<Option<String>>,
}

impl Sink {
    pub fn new(identities: usize, record_latency: bool) -> Arc<Self> {
        let latency = record_latency.then(|| (0..SHARDS).map(|_| Mutex::new(new_hist())).collect());
        Arc::new(Self {
            connected: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
            retries: AtomicUsize::new(0),
            ended_early: AtomicUsize::new(0),
            received: AtomicU64::new(0),
            last_received_ns: AtomicU64::new(0),
            per_identity: (0..identities).map(|_| AtomicU32::new(0)).collect(),
            latency,
            stop: CancellationToken::new(),
            first_error: Mutex::new(None),
        })
    }

    fn on_message(&self, shard: usize, bytes: &[u8]) {
        self.received.fetch_add(1, Ordering::Relaxed);
        self.last_received_ns.fetch_max(payload::now_ns(), Ordering::Relaxed);
        if let (Some(shards), Some(sent)) = (&self.latency, payload::sent_at(bytes)) {
            let us = payload::now_ns().saturating_sub(sent) / 1000;
            let mut h = shards[shard % SHARDS].lock().unwrap_or_else(|p| p.into_inner());
            h.saturating_record(us.max(1));
        }
    }

    fn error(&self, e: &anyhow::Error) {
        let mut first = self.first_error.lock().unwrap_or_else(|p| p.into_inner());
        first.get_or_insert_with(|| format!("{e:#}"));
    }

    /// The first client error of this run, if any.
    pub fn first_error(&self) -> Option<String> {
        self.first_error.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Forgets the latencies recorded so far (the end of a warm-up).
    pub fn reset_latency(&self) {
        for shard in self.latency.iter().flatten() {
            shard.lock().unwrap_or_else(|p| p.into_inner()).reset();
        }
    }

    /// All latency shards merged.
    pub fn latency(&self) -> Histogram<u64> {
        let mut all = new_hist();
        for shard in self.latency.iter().flatten() {
            let h = shard.lock().unwrap_or_else(|p| p.into_inner());
            let _ = all.add(&*h);
        }
        all
    }
}

/// A histogram of microseconds from 1 µs to 100 s at 3 significant digits.
pub fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 100_000_000, 3).expect("valid histogram bounds")
}

/// Opens a client (retrying a failed handshake a few times), waits for its
/// `connected` event, then counts messages until the run stops. `gate` bounds
/// concurrent handshakes.
pub async fn run(target: Target, index: usize, identity: usize, sink: Arc<Sink>, gate: Arc<Semaphore>) {
    let mut attempt = 0;
    let mut conn = loop {
        let permit = gate.clone().acquire_owned().await;
        let conn = tokio::select! {
            _ = sink.stop.cancelled() => return,
            c = tokio::time::timeout(CONNECT_TIMEOUT, Conn::open(&target, index)) => c,
        };
        drop(permit);
        let error = match conn {
            Ok(Ok(c)) => break c,
            Ok(Err(e)) => e,
            Err(_) => anyhow!("no connected event within {CONNECT_TIMEOUT:?}"),
        };
        attempt += 1;
        if attempt >= OPEN_ATTEMPTS {
            return fail(&sink, error);
        }
        sink.retries.fetch_add(1, Ordering::Relaxed);
        sink.error(&error);
        tokio::time::sleep(Duration::from_millis(100 * attempt as u64)).await;
    };
    sink.connected.fetch_add(1, Ordering::Relaxed);
    sink.per_identity[identity].fetch_add(1, Ordering::Relaxed);
    let ended = tokio::select! {
        _ = sink.stop.cancelled() => None,
        r = conn.pump(&sink, index) => Some(r),
    };
    if let Some(r) = ended {
        sink.ended_early.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = r {
            sink.error(&e);
        }
    }
    conn.close().await;
}

fn fail(sink: &Sink, e: anyhow::Error) {
    sink.failed.fetch_add(1, Ordering::Relaxed);
    sink.error(&e);
}

/// A TCP connection to `addr` from a spread-out loopback source address.
pub async fn dial(addr: SocketAddr, index: usize) -> anyhow::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    let src = Ipv4Addr::new(127, 0, 0, 2 + (index % 250) as u8);
    socket.bind(SocketAddr::new(src.into(), 0))?;
    let stream = socket.connect(addr).await.with_context(|| format!("connect {addr}"))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// An open client connection past its `connected` event.
pub enum Conn {
    Ws(Box<WebSocketStream<TcpStream>>),
    Sse(SseConn),
    Resp(RespConn),
}

impl Conn {
    /// Connects, performs the handshake and waits for the `connected` event.
    pub async fn open(target: &Target, index: usize) -> anyhow::Result<Self> {
        let stream = dial(target.addr, index).await?;
        match target.transport {
            Transport::Ws => {
                let url = format!("ws://{}{}", target.addr, target.path);
                let config = WebSocketConfig::default()
                    .read_buffer_size(READ_CHUNK)
                    .write_buffer_size(0);
                let (mut ws, _) = tokio_tungstenite::client_async_with_config(url, stream, Some(config))
                    .await
                    .context("websocket handshake")?;
                loop {
                    match ws.next().await {
                        Some(Ok(Message::Text(t))) if t.contains("\"connected\"") => break,
                        Some(Ok(Message::Text(t))) => bail!("unexpected first frame {t:?}"),
                        Some(Ok(Message::Close(c))) => bail!("closed before connected: {c:?}"),
                        Some(Ok(_)) => continue,
                        Some(Err(e)) => return Err(e).context("websocket read"),
                        None => bail!("closed before connected"),
                    }
                }
                Ok(Conn::Ws(Box::new(ws)))
            }
            Transport::Sse => Ok(Conn::Sse(SseConn::open(stream, target).await?)),
            Transport::Resp => Ok(Conn::Resp(RespConn::open(stream, &target.path).await?)),
        }
    }

    /// Counts every message until the connection ends.
    async fn pump(&mut self, sink: &Sink, index: usize) -> anyhow::Result<()> {
        match self {
            Conn::Ws(ws) => loop {
                match ws.next().await {
                    Some(Ok(Message::Text(t))) => sink.on_message(index, t.as_bytes()),
                    Some(Ok(Message::Binary(b))) => sink.on_message(index, &b),
                    Some(Ok(Message::Close(c))) => bail!("server closed: {c:?}"),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(e).context("websocket read"),
                    None => bail!("connection closed"),
                }
            },
            Conn::Sse(sse) => loop {
                let event = sse.next_event().await?;
                if event.kind == EventKind::Message {
                    sink.on_message(index, &event.data);
                }
            },
            Conn::Resp(resp) => loop {
                let payload = resp.next_message().await?;
                sink.on_message(index, &payload);
            },
        }
    }

    /// Closes politely where the protocol has a close (WebSocket), else drops.
    pub async fn close(self) {
        if let Conn::Ws(mut ws) = self {
            let _ = tokio::time::timeout(Duration::from_millis(500), ws.close(None)).await;
        }
    }
}

// === impl SseConn ===

/// The SSE events the bench tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Connected,
    Message,
    Other,
}

/// One SSE event (only its first `data:` line: every payload here is one line).
pub struct SseEvent {
    pub kind: EventKind,
    pub data: Bytes,
}

/// An SSE response body read from a raw TCP stream (identity or chunked encoding).
pub struct SseConn {
    stream: TcpStream,
    raw: BytesMut,
    body: BytesMut,
    chunked: bool,
    /// Bytes left in the current chunk.
    chunk_left: usize,
    /// The CRLF after a chunk's data is still to be skipped.
    chunk_crlf: bool,
}

impl SseConn {
    async fn open(mut stream: TcpStream, target: &Target) -> anyhow::Result<Self> {
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n",
            target.path, target.addr
        );
        stream.write_all(request.as_bytes()).await?;
        let mut raw = BytesMut::with_capacity(READ_CHUNK);
        let head_end = loop {
            if let Some(i) = find(&raw, b"\r\n\r\n") {
                break i;
            }
            if raw.len() > 16 * 1024 {
                bail!("response head larger than 16 KiB");
            }
            if stream.read_buf(&mut raw).await? == 0 {
                bail!("closed before the response head");
            }
        };
        let head = String::from_utf8_lossy(&raw[..head_end]).to_ascii_lowercase();
        let status = head.lines().next().unwrap_or("").to_string();
        if !status.contains(" 200") {
            bail!("SSE request answered {status:?}");
        }
        let chunked = head
            .lines()
            .any(|l| l.starts_with("transfer-encoding:") && l.contains("chunked"));
        raw.advance(head_end + 4);
        let mut conn = Self {
            stream,
            raw,
            body: BytesMut::with_capacity(READ_CHUNK),
            chunked,
            chunk_left: 0,
            chunk_crlf: false,
        };
        conn.decode()?;
        let first = conn.next_event().await?;
        if first.kind != EventKind::Connected {
            bail!("first SSE event is {:?}, not connected", first.kind);
        }
        Ok(conn)
    }

    /// The next complete event.
    pub async fn next_event(&mut self) -> anyhow::Result<SseEvent> {
        loop {
            if let Some(event) = self.take_event() {
                return Ok(event);
            }
            if self.raw.capacity() - self.raw.len() < 512 {
                self.raw.reserve(READ_CHUNK);
            }
            if self.stream.read_buf(&mut self.raw).await? == 0 {
                bail!("SSE stream ended");
            }
            self.decode()?;
        }
    }

    /// Moves decoded body bytes from `raw` to `body`.
    fn decode(&mut self) -> anyhow::Result<()> {
        if !self.chunked {
            let all = self.raw.split();
            self.body.extend_from_slice(&all);
            return Ok(());
        }
        loop {
            if self.chunk_left > 0 {
                let n = self.chunk_left.min(self.raw.len());
                if n == 0 {
                    return Ok(());
                }
                self.body.extend_from_slice(&self.raw[..n]);
                self.raw.advance(n);
                self.chunk_left -= n;
                self.chunk_crlf = self.chunk_left == 0;
            } else if self.chunk_crlf {
                if self.raw.len() < 2 {
                    return Ok(());
                }
                self.raw.advance(2);
                self.chunk_crlf = false;
            } else {
                let Some(eol) = find(&self.raw, b"\r\n") else {
                    return Ok(());
                };
                let line = std::str::from_utf8(&self.raw[..eol])?;
                let size = line.split(';').next().unwrap_or("").trim();
                let size = usize::from_str_radix(size, 16).with_context(|| format!("bad chunk size {line:?}"))?;
                if size == 0 {
                    bail!("SSE stream ended (last chunk)");
                }
                self.raw.advance(eol + 2);
                self.chunk_left = size;
            }
        }
    }

    fn take_event(&mut self) -> Option<SseEvent> {
        let end = find(&self.body, b"\n\n")?;
        let block = self.body.split_to(end + 2).freeze();
        let mut event = SseEvent {
            kind: EventKind::Message,
            data: Bytes::new(),
        };
        let mut at = 0;
        for line in block[..end].split(|&b| b == b'\n') {
            if let Some(v) = line.strip_prefix(b"event:") {
                event.kind = match v.trim_ascii() {
                    b"message" => EventKind::Message,
                    b"connected" => EventKind::Connected,
                    _ => EventKind::Other,
                };
            } else if line.starts_with(b"data:") && event.data.is_empty() {
                let skip = if line.starts_with(b"data: ") { 6 } else { 5 };
                event.data = block.slice(at + skip..at + line.len());
            }
            at += line.len() + 1;
        }
        Some(event)
    }
}

// === impl RespConn ===

/// A Redis connection in subscribe mode.
pub struct RespConn {
    stream: TcpStream,
    buf: BytesMut,
}

impl RespConn {
    async fn open(mut stream: TcpStream, channel: &str) -> anyhow::Result<Self> {
        let cmd = format!("*2\r\n$9\r\nSUBSCRIBE\r\n${}\r\n{channel}\r\n", channel.len());
        stream.write_all(cmd.as_bytes()).await?;
        let mut conn = Self {
            stream,
            buf: BytesMut::with_capacity(READ_CHUNK),
        };
        let (kind, _) = conn.next_push().await?;
        if &kind[..] != b"subscribe" {
            bail!("expected a subscribe confirmation, got {kind:?}");
        }
        Ok(conn)
    }

    /// The payload of the next `message` push.
    pub async fn next_message(&mut self) -> anyhow::Result<Bytes> {
        loop {
            let (kind, payload) = self.next_push().await?;
            if &kind[..] == b"message" {
                return Ok(payload);
            }
        }
    }

    /// The next push: its first element (`subscribe`, `message`, …) and last one.
    async fn next_push(&mut self) -> anyhow::Result<(Bytes, Bytes)> {
        loop {
            if let Some((used, first, last)) = parse_push(&self.buf)? {
                let frame = self.buf.split_to(used).freeze();
                return Ok((frame.slice(first), frame.slice(last)));
            }
            if self.buf.capacity() - self.buf.len() < 512 {
                self.buf.reserve(READ_CHUNK);
            }
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                bail!("redis closed the connection");
            }
        }
    }
}

type Span = std::ops::Range<usize>;

/// Parses one RESP array of bulk strings/integers: (bytes used, first element, last
/// element), or `None` while incomplete.
fn parse_push(buf: &[u8]) -> anyhow::Result<Option<(usize, Span, Span)>> {
    let Some((count, mut at)) = resp_line(buf, 0, b'*')? else {
        return Ok(None);
    };
    let mut first = 0..0;
    let mut last = 0..0;
    for i in 0..count {
        match buf.get(at) {
            None => return Ok(None),
            Some(b':') => {
                let Some((_, next)) = resp_line(buf, at, b':')? else {
                    return Ok(None);
                };
                last = at..at;
                at = next;
            }
            Some(b'$') => {
                let Some((len, start)) = resp_line(buf, at, b'$')? else {
                    return Ok(None);
                };
                let end = start + len.max(0) as usize;
                if buf.len() < end + 2 {
                    return Ok(None);
                }
                if i == 0 {
                    first = start..end;
                }
                last = start..end;
                at = end + 2;
            }
            Some(other) => bail!("unexpected RESP type byte {:?}", *other as char),
        }
    }
    Ok(Some((at, first, last)))
}

/// `<tag><number>\r\n` at `at`: the number and the index after the line.
fn resp_line(buf: &[u8], at: usize, tag: u8) -> anyhow::Result<Option<(i64, usize)>> {
    let Some(&b) = buf.get(at) else {
        return Ok(None);
    };
    if b == b'-' {
        let end = find(&buf[at..], b"\r\n").map_or(buf.len(), |e| at + e);
        bail!("redis error: {}", String::from_utf8_lossy(&buf[at + 1..end]));
    }
    if b != tag {
        bail!("expected RESP {:?}, got {:?}", tag as char, b as char);
    }
    let Some(eol) = find(&buf[at..], b"\r\n") else {
        return Ok(None);
    };
    let n: i64 = std::str::from_utf8(&buf[at + 1..at + eol])?.parse()?;
    Ok(Some((n, at + eol + 2)))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::parse_push;

    #[test]
    fn resp_pushes_parse_whole_or_not_at_all() {
        let msg = b"*3\r\n$7\r\nmessage\r\n$9\r\nstreams:1\r\n$5\r\nhello\r\n";
        let (used, kind, last) = parse_push(msg).unwrap().unwrap();
        assert_eq!(used, msg.len());
        assert_eq!((&msg[kind], &msg[last]), (&b"message"[..], &b"hello"[..]));
        for cut in 0..msg.len() {
            assert!(parse_push(&msg[..cut]).unwrap().is_none(), "cut at {cut}");
        }
        let sub = b"*3\r\n$9\r\nsubscribe\r\n$9\r\nstreams:1\r\n:1\r\n";
        let (_, kind, _) = parse_push(sub).unwrap().unwrap();
        assert_eq!(&sub[kind], b"subscribe");
    }
}
