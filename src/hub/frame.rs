//! A broker message as it is shared by every recipient.

use bytes::{BufMut, Bytes, BytesMut};
use std::sync::OnceLock;
use tungstenite::{Message, Utf8Bytes};

/// One published payload with its transport encodings, each built at most once
/// and shared (cheap `Bytes` clones) by every connection that receives it.
pub struct Frame {
    payload: Bytes,
    sse: OnceLock<Bytes>,
    ws: OnceLock<Message>,
}

impl Frame {
    /// Wraps a payload; nothing is encoded until a transport asks.
    pub fn new(payload: Bytes) -> Self {
        Self {
            payload,
            sse: OnceLock::new(),
            ws: OnceLock::new(),
        }
    }

    /// The payload as published.
    pub fn payload(&self) -> &Bytes {
        &self.payload
    }

    /// `event: message` SSE bytes, encoded on first use.
    pub fn sse(&self) -> Bytes {
        self.sse.get_or_init(|| encode_sse("message", &self.payload)).clone()
    }

    /// The WebSocket message: text when the payload is UTF-8, else binary.
    pub fn ws(&self) -> Message {
        self.ws
            .get_or_init(|| match Utf8Bytes::try_from(self.payload.clone()) {
                Ok(text) => Message::Text(text),
                Err(_) => Message::Binary(self.payload.clone()),
            })
            .clone()
    }
}

/// Encodes one SSE event. Each line of `data` (split on `\r\n`, `\n` or `\r`)
/// becomes its own `data:` line, so any payload round-trips through `EventSource`.
pub fn encode_sse(event: &str, data: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(data.len() + event.len() + 16);
    out.put_slice(b"event: ");
    out.put_slice(event.as_bytes());
    out.put_u8(b'\n');
    let mut rest = data;
    loop {
        let end = rest.iter().position(|&b| b == b'\n' || b == b'\r');
        out.put_slice(b"data: ");
        match end {
            None => {
                out.put_slice(rest);
                out.put_u8(b'\n');
                break;
            }
            Some(i) => {
                out.put_slice(&rest[..i]);
                out.put_u8(b'\n');
                let skip = if rest[i] == b'\r' && rest.get(i + 1) == Some(&b'\n') {
                    2
                } else {
                    1
                };
                rest = &rest[i + skip..];
            }
        }
    }
    out.put_u8(b'\n');
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::encode_sse;

    const CASES: &[(&str, &[u8], &str)] = &[
        ("single line", b"{\"a\":1}", "event: message\ndata: {\"a\":1}\n\n"),
        ("two lines", b"a\nb", "event: message\ndata: a\ndata: b\n\n"),
        ("crlf", b"a\r\nb", "event: message\ndata: a\ndata: b\n\n"),
        ("lone cr", b"a\rb", "event: message\ndata: a\ndata: b\n\n"),
        ("trailing newline", b"a\n", "event: message\ndata: a\ndata: \n\n"),
        ("empty", b"", "event: message\ndata: \n\n"),
    ];

    #[test]
    fn sse_encoding_splits_lines() {
        for (name, input, expected) in CASES {
            let got = encode_sse("message", input);
            assert_eq!(std::str::from_utf8(&got).unwrap(), *expected, "case {name}");
        }
    }
}
