//! `idle`: server memory per idle connection. Opens 100 warm-up connections, reads
//! the system's RSS, opens N more (one identity each), waits for every `connected`
//! event and a settle second, reads RSS again: (after − before) / N.

use super::{settle, Clients};
use crate::clients::{Sink, Transport};
use crate::systems::Running;

/// Connections opened (and kept) before the first RSS reading.
const WARM_UP: usize = 100;

/// What one idle run measured.
#[derive(Debug, Clone)]
pub struct IdleResult {
    pub n: usize,
    pub before_kib: u64,
    pub after_kib: u64,
    pub open_secs: f64,
}

impl IdleResult {
    pub fn per_conn_kib(&self) -> f64 {
        self.after_kib.saturating_sub(self.before_kib) as f64 / self.n.max(1) as f64
    }
}

pub async fn run(sys: &Running, secret: &str, transport: Transport, n: usize) -> anyhow::Result<IdleResult> {
    let warm = Clients::open(sys, secret, transport, WARM_UP, WARM_UP, false).await?;
    settle(500, 200).await;
    let before_kib = sys.rss_kib();
    let sink = Sink::new(n, false);
    let opened = Clients::open_into(sys, secret, transport, n, n, WARM_UP, sink).await;
    let opened = match opened {
        Ok(c) => c,
        Err(e) => {
            warm.close().await;
            return Err(e);
        }
    };
    settle(1000, 300).await;
    let after_kib = sys.rss_kib();
    let result = IdleResult {
        n,
        before_kib,
        after_kib,
        open_secs: opened.open_secs,
    };
    opened.close().await;
    warm.close().await;
    Ok(result)
}
