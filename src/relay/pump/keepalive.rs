//! Ping timing for one connection, on a single timer: a ping every interval, and
//! once a ping is unanswered, a deadline by which any pong must arrive.

use std::time::Duration;
use tokio::time::Instant;

/// What the keepalive timer asks for when it fires.
#[derive(Debug, PartialEq, Eq)]
pub enum Due {
    /// Nothing yet (a pong came in after the timer was armed): wait again.
    Nothing,
    /// Send a ping now.
    Ping,
    /// A ping went unanswered past the timeout: close the connection.
    PongLate,
}

/// Ping schedule and the outstanding-pong deadline.
#[derive(Debug)]
pub struct Keepalive {
    interval: Duration,
    pong_timeout: Duration,
    next_ping: Instant,
    /// Set by the first unanswered ping; cleared by any pong.
    pong_by: Option<Instant>,
}

impl Keepalive {
    /// The first ping is due one `interval` from `now`.
    pub fn new(now: Instant, interval: Duration, pong_timeout: Duration) -> Self {
        Self {
            interval,
            pong_timeout,
            next_ping: now + interval,
            pong_by: None,
        }
    }

    /// When the timer should next fire.
    pub fn deadline(&self) -> Instant {
        match self.pong_by {
            Some(pong_by) => pong_by.min(self.next_ping),
            None => self.next_ping,
        }
    }

    /// The timer fired at `now`: what is due. A ping due now schedules the next one
    /// and, unless one is already outstanding, starts the pong deadline.
    pub fn fire(&mut self, now: Instant) -> Due {
        if self.pong_by.is_some_and(|by| now >= by) {
            return Due::PongLate;
        }
        if now < self.next_ping {
            return Due::Nothing;
        }
        self.next_ping = now + self.interval;
        self.pong_by.get_or_insert(now + self.pong_timeout);
        Due::Ping
    }

    /// Any pong answers every outstanding ping.
    pub fn pong(&mut self) {
        self.pong_by = None;
    }
}

#[cfg(test)]
mod tests {
    use super::{Due, Keepalive};
    use std::time::Duration;
    use tokio::time::Instant;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn pings_every_interval_and_closes_when_no_pong_comes() {
        let t0 = Instant::now();
        let mut k = Keepalive::new(t0, 30 * S, 60 * S);
        assert_eq!(k.deadline(), t0 + 30 * S);
        assert_eq!(k.fire(t0 + 10 * S), Due::Nothing);
        assert_eq!(k.fire(t0 + 30 * S), Due::Ping);
        // Pong deadline 90 s, next ping 60 s: the ping comes first, keeping the deadline.
        assert_eq!(k.deadline(), t0 + 60 * S);
        assert_eq!(k.fire(t0 + 60 * S), Due::Ping);
        assert_eq!(k.deadline(), t0 + 90 * S);
        assert_eq!(k.fire(t0 + 90 * S), Due::PongLate);
    }

    #[test]
    fn a_pong_clears_the_deadline() {
        let t0 = Instant::now();
        let mut k = Keepalive::new(t0, 30 * S, 10 * S);
        assert_eq!(k.fire(t0 + 30 * S), Due::Ping);
        assert_eq!(k.deadline(), t0 + 40 * S);
        k.pong();
        assert_eq!(k.deadline(), t0 + 60 * S);
        assert_eq!(k.fire(t0 + 40 * S), Due::Nothing);
    }
}
