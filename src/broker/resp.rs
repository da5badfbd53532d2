//! The few RESP2 replies a subscribed Redis connection sends: status (`+OK`), error,
//! integer, bulk string, and arrays of bulk strings and integers (`message`,
//! `pmessage`, `subscribe` confirmations, `pong`). Used by the Redis broker's
//! subscription reader, which sees one of these per published message.
//!
//! Decoding is the `redis-protocol` crate's (`resp2::decode::decode_range`: no
//! copies, no allocation beyond the array's `Vec`); this module narrows its frames
//! to the shapes a subscription can send and bounds how much a reply may buffer.
//! [`parse`] says `Ok(None)` when more bytes are needed (a partial read is normal)
//! and `Err` when the bytes are not such a reply.

use redis_protocol::resp2::decode::decode_range;
use redis_protocol::resp2::types::RangeFrame;
use std::ops::Range;

/// Most elements of an array reply (a `pmessage` has four).
const MAX_ITEMS: usize = 4;
/// Most bytes a reply may take before it is refused rather than awaited: Redis'
/// own `proto-max-bulk-len` default plus room for the array around it.
const MAX_REPLY: usize = 512 * 1024 * 1024 + 64 * 1024;

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
#[error("unexpected reply from redis: {0}")]
pub struct Invalid(pub String);

/// Parses one reply at the start of `buf`: `Ok(Some((reply, used)))`, `Ok(None)` when
/// `buf` holds only part of it, `Err` when it is not a supported reply.
pub fn parse(buf: &[u8]) -> Result<Option<(Reply, usize)>, Invalid> {
    parse_within(buf, MAX_REPLY)
}

fn parse_within(buf: &[u8], max_reply: usize) -> Result<Option<(Reply, usize)>, Invalid> {
    match decode_range(buf) {
        Ok(Some((frame, used))) => Ok(Some((reply(frame)?, used))),
        Ok(None) if buf.len() > max_reply => Err(Invalid(format!("reply longer than {max_reply} bytes"))),
        Ok(None) => Ok(None),
        Err(e) => Err(Invalid(e.to_string())),
    }
}

fn reply(frame: RangeFrame) -> Result<Reply, Invalid> {
    Ok(match frame {
        RangeFrame::SimpleString((start, end)) => Reply::Status(start..end),
        RangeFrame::Error((start, end)) => Reply::Error(start..end),
        RangeFrame::Integer(n) => Reply::Int(n),
        RangeFrame::BulkString((start, end)) => Reply::Bulk(Some(start..end)),
        RangeFrame::Null => Reply::Bulk(None),
        RangeFrame::Array(frames) if frames.len() <= MAX_ITEMS => {
            Reply::Array(frames.into_iter().map(item).collect::<Result<_, _>>()?)
        }
        RangeFrame::Array(frames) => return Err(Invalid(format!("array of {} elements", frames.len()))),
    })
}

fn item(frame: RangeFrame) -> Result<Item, Invalid> {
    match frame {
        RangeFrame::BulkString((start, end)) => Ok(Item::Bulk(Some(start..end))),
        RangeFrame::Null => Ok(Item::Bulk(None)),
        RangeFrame::Integer(n) => Ok(Item::Int(n)),
        other => Err(Invalid(format!("unexpected array element {other:?}"))),
    }
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

    // Not checked here: `redis-protocol` takes a bulk string's length at its word and
    // skips the two bytes after it without checking they are CRLF (`$2\r\nabXY` is
    // "ab"). Redis never sends that; a stream misframed that way would most likely
    // fail to parse a later reply, and the reader then reconnects.
    #[test]
    fn malformed_replies_are_invalid() {
        const CASES: &[(&str, &[u8])] = &[
            ("unknown type", b"!3\r\nabc\r\n"),
            ("array too long", b"*5\r\n:1\r\n:1\r\n:1\r\n:1\r\n:1\r\n"),
            ("nested array", b"*1\r\n*0\r\n"),
            ("status inside an array", b"*1\r\n+OK\r\n"),
            ("bad length", b"$x\r\n"),
            ("integer overflow", b":99999999999999999999\r\n"),
        ];
        for (name, bytes) in CASES {
            assert!(parse(bytes).is_err(), "case {name}: {:?}", parse(bytes));
        }
    }

    #[test]
    fn a_reply_that_never_completes_is_refused_past_the_limit() {
        const CASES: &[(&str, &[u8])] = &[
            ("length line without end", b"$1111111111111111111111111111"),
            ("huge bulk length", b"$9223372036854775807\r\nabc"),
            ("status without end", b"+OKOKOKOKOKOKOKOKOKOKOKOKOKOKOK"),
        ];
        for (name, bytes) in CASES {
            assert!(parse_within(bytes, 8).is_err(), "case {name}: refused past 8 bytes");
            assert_eq!(
                parse_within(bytes, 1024),
                Ok(None),
                "case {name}: awaited below the limit"
            );
        }
    }
}
