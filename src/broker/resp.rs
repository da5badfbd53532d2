//! The few RESP2 replies a subscribed Redis connection sends: status (`+OK`), error,
//! integer, bulk string, and arrays of bulk strings and integers (`message`,
//! `pmessage`, `subscribe` confirmations, `pong`). Used by the Redis broker's
//! subscription reader, which sees one of these per published message and should
//! not pay a general-purpose parser (and its allocations) for each.
//!
//! [`parse`] says `Ok(None)` when more bytes are needed (a partial read is normal)
//! and `Err` when the bytes are not such a reply.

use std::ops::Range;

/// Most elements of an array reply (a `pmessage` has four).
const MAX_ITEMS: usize = 4;
/// Longest decimal length or integer line accepted (`i64` fits in 20 digits).
const MAX_LINE: usize = 21;
/// Largest bulk string accepted (Redis' own `proto-max-bulk-len` default).
const MAX_BULK: usize = 512 * 1024 * 1024;

/// One element of an array reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A bulk string: where its bytes are in the buffer (`None` for the null bulk).
    Bulk(Option<Range<usize>>),
    Int(i64),
}

/// One reply; ranges index the buffer given to [`parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Status(Range<usize>),
    Error(Range<usize>),
    Int(i64),
    Bulk(Option<Range<usize>>),
    Array(Vec<Item>),
}

/// The bytes are not a reply this reader understands.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unexpected reply from redis at byte {at}: {what}")]
pub struct Invalid {
    pub at: usize,
    pub what: &'static str,
}

/// Parses one reply at the start of `buf`: `Ok(Some((reply, used)))`, `Ok(None)` when
/// `buf` holds only part of it, `Err` when it is not a supported reply.
pub fn parse(buf: &[u8]) -> Result<Option<(Reply, usize)>, Invalid> {
    let Some(&tag) = buf.first() else {
        return Ok(None);
    };
    match tag {
        b'+' | b'-' => {
            let Some(end) = line_end(buf, 1) else {
                return Ok(None);
            };
            let reply = if tag == b'+' {
                Reply::Status(1..end)
            } else {
                Reply::Error(1..end)
            };
            Ok(Some((reply, end + 2)))
        }
        b':' | b'$' => Ok(item(buf, 0)?.map(|(item, used)| {
            let reply = match item {
                Item::Int(v) => Reply::Int(v),
                Item::Bulk(range) => Reply::Bulk(range),
            };
            (reply, used)
        })),
        b'*' => {
            let Some((len, mut at)) = number(buf, 0)? else {
                return Ok(None);
            };
            if !(0..=MAX_ITEMS as i64).contains(&len) {
                return Err(Invalid {
                    at: 0,
                    what: "array length outside 0..=4",
                });
            }
            let mut items = Vec::with_capacity(len as usize);
            for _ in 0..len {
                let Some((element, used)) = item(buf, at)? else {
                    return Ok(None);
                };
                items.push(element);
                at = used;
            }
            Ok(Some((Reply::Array(items), at)))
        }
        _ => Err(Invalid {
            at: 0,
            what: "unknown reply type",
        }),
    }
}

/// A bulk string or integer at `at`; returns it and the offset just past it.
fn item(buf: &[u8], at: usize) -> Result<Option<(Item, usize)>, Invalid> {
    match buf.get(at) {
        None => Ok(None),
        Some(b':') => Ok(number(buf, at)?.map(|(v, next)| (Item::Int(v), next))),
        Some(b'$') => {
            let Some((len, start)) = number(buf, at)? else {
                return Ok(None);
            };
            if len == -1 {
                return Ok(Some((Item::Bulk(None), start)));
            }
            let len = usize::try_from(len).map_err(|_| Invalid {
                at,
                what: "negative bulk length",
            })?;
            if len > MAX_BULK {
                return Err(Invalid {
                    at,
                    what: "bulk string over 512 MiB",
                });
            }
            let end = start + len;
            if buf.len() < end + 2 {
                return Ok(None);
            }
            if &buf[end..end + 2] != b"\r\n" {
                return Err(Invalid {
                    at: end,
                    what: "bulk string not followed by CRLF",
                });
            }
            Ok(Some((Item::Bulk(Some(start..end)), end + 2)))
        }
        Some(_) => Err(Invalid {
            at,
            what: "array element is not a bulk string or integer",
        }),
    }
}

/// The signed decimal after the type byte at `at`, and the offset past its CRLF.
fn number(buf: &[u8], at: usize) -> Result<Option<(i64, usize)>, Invalid> {
    let Some(end) = line_end(buf, at + 1) else {
        if buf.len() - at > MAX_LINE + 2 {
            return Err(Invalid {
                at,
                what: "number line too long",
            });
        }
        return Ok(None);
    };
    let digits = &buf[at + 1..end];
    let (negative, digits) = match digits.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, digits),
    };
    if digits.is_empty() || digits.len() > MAX_LINE - 1 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(Invalid { at, what: "bad number" });
    }
    let mut value: i64 = 0;
    for &d in digits {
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(i64::from(d - b'0')))
            .ok_or(Invalid {
                at,
                what: "number overflows",
            })?;
    }
    Ok(Some((if negative { -value } else { value }, end + 2)))
}

/// The offset of the `\r\n` ending the line that starts at `from`.
fn line_end(buf: &[u8], from: usize) -> Option<usize> {
    let rest = buf.get(from..)?;
    let cr = rest.iter().position(|&b| b == b'\r')?;
    (rest.get(cr + 1) == Some(&b'\n')).then_some(from + cr)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(bytes: &[u8]) -> Reply {
        let (reply, used) = parse(bytes).unwrap().expect("complete");
        assert_eq!(
            used,
            bytes.len(),
            "whole reply used for {:?}",
            String::from_utf8_lossy(bytes)
        );
        reply
    }

    #[test]
    fn replies_parse_whole_or_not_at_all() {
        const CASES: &[(&str, &[u8])] = &[
            (
                "pmessage",
                b"*4\r\n$8\r\npmessage\r\n$9\r\nstreams:*\r\n$10\r\nstreams:42\r\n$7\r\n{\"a\":1}\r\n",
            ),
            ("message", b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$0\r\n\r\n"),
            (
                "subscribe confirmation",
                b"*3\r\n$10\r\npsubscribe\r\n$9\r\nstreams:*\r\n:1\r\n",
            ),
            ("status", b"+OK\r\n"),
            ("error", b"-ERR wrong password\r\n"),
            ("integer", b":-12\r\n"),
            ("null bulk", b"$-1\r\n"),
            ("binary payload with CRLF inside", b"$4\r\n\r\n\x00\xff\r\n"),
            ("empty array", b"*0\r\n"),
        ];
        for (name, bytes) in CASES {
            whole(bytes);
            for cut in 0..bytes.len() {
                assert_eq!(parse(&bytes[..cut]), Ok(None), "case {name}: cut at {cut}");
            }
        }
    }

    #[test]
    fn a_pmessage_gives_channel_and_payload_ranges() {
        let bytes = b"*4\r\n$8\r\npmessage\r\n$9\r\nstreams:*\r\n$10\r\nstreams:42\r\n$7\r\n{\"a\":1}\r\n+OK\r\n";
        let (reply, used) = parse(bytes).unwrap().unwrap();
        let Reply::Array(items) = reply else {
            panic!("not an array: {reply:?}")
        };
        let text = |item: &Item| match item {
            Item::Bulk(Some(r)) => &bytes[r.clone()],
            other => panic!("not a bulk string: {other:?}"),
        };
        let texts: Vec<&[u8]> = items.iter().map(text).collect();
        assert_eq!(texts, [&b"pmessage"[..], b"streams:*", b"streams:42", b"{\"a\":1}"]);
        assert_eq!(
            parse(&bytes[used..]).unwrap(), // ranges are relative to the slice
            Some((Reply::Status(1..3), 5))
        );
    }

    #[test]
    fn malformed_replies_are_invalid() {
        const CASES: &[(&str, &[u8])] = &[
            ("unknown type", b"!3\r\nabc\r\n"),
            ("array too long", b"*5\r\n"),
            ("negative array", b"*-2\r\n"),
            ("nested array", b"*1\r\n*0\r\n"),
            ("bad length", b"$x\r\n"),
            ("empty length", b"$\r\n"),
            ("negative bulk length", b"$-5\r\n"),
            ("bulk without CRLF", b"$2\r\nabXY"),
            ("integer overflow", b":99999999999999999999\r\n"),
            ("length line without end", b"$1111111111111111111111111111"),
            ("huge bulk length", b"$9223372036854775807\r\n"),
        ];
        for (name, bytes) in CASES {
            assert!(parse(bytes).is_err(), "case {name}: {:?}", parse(bytes));
        }
    }
}
