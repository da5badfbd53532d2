//! Stamped payloads: a JSON object of exactly the requested size whose first field
//! is the send time in nanoseconds since the bench started (publisher and clients
//! run in this one process, so they share the monotonic clock).
//!
//! `{"t":"00000000001234567890","s":"000000000042","p":"xxxx…"}`

use std::sync::OnceLock;
use std::time::Instant;

const T_AT: usize = 6;
const T_LEN: usize = 20;
const S_LEN: usize = 12;
/// The smallest payload that holds the stamp.
pub const MIN_SIZE: usize = 6 + T_LEN + 7 + S_LEN + 7 + 2;

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Starts the shared clock (call once before any client or publisher).
pub fn init_clock() {
    let _ = epoch();
}

/// Nanoseconds since the bench started.
pub fn now_ns() -> u64 {
    epoch().elapsed().as_nanos() as u64
}

/// A `size`-byte JSON payload stamped with the current time and `seq`.
pub fn make(seq: u64, size: usize) -> String {
    let size = size.max(MIN_SIZE);
    let mut s = String::with_capacity(size);
    s.push_str("{\"t\":\"");
    s.push_str(&format!("{:0width$}", now_ns(), width = T_LEN));
    s.push_str("\",\"s\":\"");
    s.push_str(&format!("{:0width$}", seq % 10u64.pow(S_LEN as u32), width = S_LEN));
    s.push_str("\",\"p\":\"");
    while s.len() < size - 2 {
        s.push('x');
    }
    s.push_str("\"}");
    s
}

/// The send time of a stamped payload, if `bytes` is one.
pub fn sent_at(bytes: &[u8]) -> Option<u64> {
    if bytes.len() < MIN_SIZE || !bytes.starts_with(b"{\"t\":\"") {
        return None;
    }
    let digits = &bytes[T_AT..T_AT + T_LEN];
    let mut v: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u64::from(d - b'0');
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_has_the_requested_size_and_round_trips() {
        for size in [0, MIN_SIZE, 256, 1000] {
            let p = make(42, size);
            assert_eq!(p.len(), size.max(MIN_SIZE), "size {size}");
            let v: serde_json::Value = serde_json::from_str(&p).expect("valid JSON");
            let t: u64 = v["t"].as_str().unwrap().parse().unwrap();
            assert_eq!(sent_at(p.as_bytes()), Some(t), "size {size}");
        }
    }

    #[test]
    fn other_bytes_are_not_stamps() {
        assert_eq!(sent_at(b"{\"event\":\"connected\"}"), None);
    }
}
