//! Connection limits that hold across every node.
//!
//! A connection takes one lease on `conns:total` and one on `conns:identity:{id}`
//! through the broker (a Redis sorted set of leases with expiry scores, or plain
//! counters in memory). Each node refreshes its leases periodically; leases of a
//! node that died expire after `server.connection_lease_seconds`.

mod connections;

pub use connections::{ConnectionLimiter, Lease, LimitError};
