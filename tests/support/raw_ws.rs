//! A WebSocket client written by hand on a raw socket: it completes the handshake
//! and then does only what the test asks (it never answers pings, and it need not
//! read at all), so server behaviour that a client library would hide (keepalive,
//! a reader that never reads) can be watched.

use super::DEADLINE;
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Text frame opcode.
pub const OP_TEXT: u8 = 0x1;
/// Close frame opcode.
pub const OP_CLOSE: u8 = 0x8;
/// Ping frame opcode.
pub const OP_PING: u8 = 0x9;
/// Pong frame opcode.
pub const OP_PONG: u8 = 0xA;

/// A masked client frame with a payload under 126 bytes (fixed mask key).
pub fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126, "short frames only");
    let mask = [0x12, 0x34, 0x56, 0x78];
    let mut frame = vec![0x80 | opcode, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

/// A raw WebSocket connection: the socket and the bytes read but not yet parsed.
pub struct RawWs {
    stream: TcpStream,
    buffer: Vec<u8>,
}

/// One unmasked server frame.
#[derive(Debug)]
pub struct RawFrame {
    /// 0x1 text, 0x2 binary, 0x8 close, 0x9 ping, 0xA pong.
    pub opcode: u8,
    /// Payload bytes.
    pub payload: Vec<u8>,
}

impl RawFrame {
    /// The close code of a close frame.
    pub fn close_code(&self) -> Option<u16> {
        (self.opcode == OP_CLOSE && self.payload.len() >= 2)
            .then(|| u16::from_be_bytes([self.payload[0], self.payload[1]]))
    }
}

impl RawWs {
    /// Connects to `addr` and upgrades `path`, sending `headers` (each line ending in
    /// `\r\n`, may be empty) after the WebSocket ones. `recv_buffer` pins the
    /// socket's receive buffer (which also turns off its autotuning) so a client
    /// that never reads fills up fast.
    pub async fn connect(addr: SocketAddr, path: &str, headers: &str, recv_buffer: Option<u32>) -> Self {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }
        .unwrap();
        if let Some(size) = recv_buffer {
            socket.set_recv_buffer_size(size).unwrap();
        }
        let stream = tokio::time::timeout(DEADLINE, socket.connect(addr))
            .await
            .expect("connect timed out")
            .expect("connect");
        Self::upgrade_on(stream, path, headers, &[]).await
    }

    /// Upgrades `path` on an open connection (which may have served requests
    /// before), sending `trailing` in the same write right after the request head.
    pub async fn upgrade_on(mut stream: TcpStream, path: &str, headers: &str, trailing: &[u8]) -> Self {
        let addr = stream.peer_addr().unwrap();
        let mut request = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
             {headers}\r\n"
        )
        .into_bytes();
        request.extend_from_slice(trailing);
        stream.write_all(&request).await.unwrap();
        let mut raw = Self {
            stream,
            buffer: Vec::new(),
        };
        let head = tokio::time::timeout(DEADLINE, async {
            loop {
                if let Some(end) = raw.buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head: Vec<u8> = raw.buffer.drain(..end + 4).collect();
                    return String::from_utf8(head).unwrap();
                }
                assert!(raw.fill().await, "connection closed during the handshake");
            }
        })
        .await
        .expect("handshake timed out");
        assert!(head.starts_with("HTTP/1.1 101"), "upgrade refused: {head}");
        raw
    }

    /// Reads more bytes; false at EOF or on a reset.
    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 16 * 1024];
        match self.stream.read(&mut chunk).await {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buffer.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    /// The next frame, or `None` once the server closed the TCP connection.
    pub async fn next_frame(&mut self) -> Option<RawFrame> {
        tokio::time::timeout(DEADLINE, async {
            loop {
                if let Some((frame, used)) = parse_frame(&self.buffer) {
                    self.buffer.drain(..used);
                    return Some(frame);
                }
                if !self.fill().await {
                    return None;
                }
            }
        })
        .await
        .expect("timed out waiting for a frame or EOF")
    }
}

/// Parses one unmasked server frame from the front of `buf`.
fn parse_frame(buf: &[u8]) -> Option<(RawFrame, usize)> {
    if buf.len() < 2 {
        return None;
    }
    assert_eq!(buf[1] & 0x80, 0, "server frames must not be masked");
    let (len, header) = match buf[1] & 0x7f {
        126 if buf.len() >= 4 => (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4),
        127 if buf.len() >= 10 => (u64::from_be_bytes(buf[2..10].try_into().unwrap()) as usize, 10),
        126 | 127 => return None,
        n => (n as usize, 2),
    };
    if buf.len() < header + len {
        return None;
    }
    let frame = RawFrame {
        opcode: buf[0] & 0x0f,
        payload: buf[header..header + len].to_vec(),
    };
    Some((frame, header + len))
}

/// A connection to `addr` that has already served one whole request (`GET /health`,
/// read to the end of its body), so the next request on it is a keep-alive request
/// (served by hyper rather than the listener's first-request fast path).
/// `recv_buffer` pins the socket's receive buffer (see [`RawWs::connect`]).
pub async fn keep_alive_connection(addr: SocketAddr, recv_buffer: Option<u32>) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    if let Some(size) = recv_buffer {
        socket.set_recv_buffer_size(size).unwrap();
    }
    let mut stream = socket.connect(addr).await.expect("connect");
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    let mut seen = Vec::new();
    let head = tokio::time::timeout(DEADLINE, async {
        loop {
            let mut chunk = [0u8; 1024];
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "connection closed after the first response");
            seen.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&seen).to_string();
            let Some(end) = text.find("\r\n\r\n") else { continue };
            let length: usize = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(str::to_string)
                })
                .and_then(|v| v.trim().parse().ok())
                .expect("content-length");
            if seen.len() >= end + 4 + length {
                return text;
            }
        }
    })
    .await
    .expect("first response in time");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    stream
}
