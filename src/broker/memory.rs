//! The embedded broker: one process, no network. Publishing calls the sink directly.

use super::{glob_match, Broker, BrokerError, Sink, Slot};
use crate::telemetry::Metrics;
use async_trait::async_trait;
use bytes::Bytes;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// In-process broker: always ready, leases are plain counters.
pub struct MemoryBroker {
    patterns: Vec<String>,
    sink: Sink,
    leases: Mutex<HashMap<String, HashSet<String>>>,
    values: Mutex<HashMap<String, (Bytes, Option<Instant>)>>,
    /// Subject → (entry → expiry in Unix seconds).
    revocations: Mutex<HashMap<String, HashMap<String, u64>>>,
    ready: tokio::sync::watch::Sender<bool>,
}

impl MemoryBroker {
    /// A broker whose subscription is `patterns`, delivering into `sink`.
    pub fn new(patterns: Vec<String>, sink: Sink, metrics: Arc<Metrics>) -> Self {
        metrics.broker_connected(true);
        Self {
            patterns,
            sink,
            leases: Mutex::new(HashMap::new()),
            values: Mutex::new(HashMap::new()),
            revocations: Mutex::new(HashMap::new()),
            ready: tokio::sync::watch::Sender::new(true),
        }
    }

    /// Hands `payload` to the sink when `topic` matches the subscription.
    fn deliver(&self, topic: &str, payload: Bytes) {
        if self.patterns.iter().any(|p| glob_match(p, topic)) {
            (self.sink)(topic, payload);
        }
    }

    fn leases(&self) -> std::sync::MutexGuard<'_, HashMap<String, HashSet<String>>> {
        self.leases.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl Broker for MemoryBroker {
    fn kind(&self) -> &'static str {
        "memory"
    }

    fn is_ready(&self) -> bool {
        true
    }

    fn watch_ready(&self) -> tokio::sync::watch::Receiver<bool> {
        self.ready.subscribe()
    }

    async fn publish(&self, topic: &str, payload: Bytes) -> Result<(), BrokerError> {
        self.deliver(topic, payload);
        Ok(())
    }

    async fn publish_batch(&self, messages: &[(String, Bytes)]) -> Result<(), BrokerError> {
        // One call for the batch: no boxed `publish` future per message.
        for (topic, payload) in messages {
            self.deliver(topic, payload.clone());
        }
        Ok(())
    }

    async fn acquire(&self, slots: &[Slot], holder: &str, _ttl: Duration) -> Result<bool, BrokerError> {
        // Lock held for the check-and-insert only; no await inside.
        let mut leases = self.leases();
        let full = slots
            .iter()
            .any(|s| s.limit > 0 && leases.get(&s.key).map_or(0, HashSet::len) as u64 >= s.limit);
        if full {
            return Ok(false);
        }
        for slot in slots {
            leases.entry(slot.key.clone()).or_default().insert(holder.to_string());
        }
        Ok(true)
    }

    async fn refresh(&self, _leases: &[(String, String)], _ttl: Duration) -> Result<(), BrokerError> {
        Ok(())
    }

    async fn release(&self, leases: &[(String, String)]) -> Result<(), BrokerError> {
        // Lock held for the removals only; no await inside.
        let mut map = self.leases();
        for (key, holder) in leases {
            if let Some(set) = map.get_mut(key) {
                set.remove(holder);
                if set.is_empty() {
                    map.remove(key);
                }
            }
        }
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>, BrokerError> {
        // Lock held for one lookup; no await inside.
        let mut values = self.values.lock().unwrap_or_else(|p| p.into_inner());
        match values.get(key) {
            Some((_, Some(expiry))) if *expiry <= Instant::now() => {
                values.remove(key);
                Ok(None)
            }
            Some((value, _)) => Ok(Some(value.clone())),
            None => Ok(None),
        }
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<(), BrokerError> {
        let expiry = ttl.map(|t| Instant::now() + t);
        // Lock held for one insert; no await inside.
        let mut values = self.values.lock().unwrap_or_else(|p| p.into_inner());
        values.insert(key.to_string(), (value, expiry));
        Ok(())
    }

    async fn revoke(&self, subject: &str, entry: &str, expires_at: u64) -> Result<(), BrokerError> {
        let now = unix_now();
        // Lock held for the cleanup and one insert; no await inside.
        let mut all = self.revocations.lock().unwrap_or_else(|p| p.into_inner());
        let list = all.entry(subject.to_string()).or_default();
        list.retain(|_, expiry| *expiry > now);
        let kept = list.entry(entry.to_string()).or_insert(expires_at);
        *kept = (*kept).max(expires_at);
        Ok(())
    }

    async fn revocations(&self, subject: &str) -> Result<Vec<(String, u64)>, BrokerError> {
        let now = unix_now();
        // Lock held for one lookup and cleanup; no await inside.
        let mut all = self.revocations.lock().unwrap_or_else(|p| p.into_inner());
        let Some(list) = all.get_mut(subject) else {
            return Ok(Vec::new());
        };
        list.retain(|_, expiry| *expiry > now);
        let mut live: Vec<(String, u64)> = list.iter().map(|(e, x)| (e.clone(), *x)).collect();
        if live.is_empty() {
            all.remove(subject);
        }
        live.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
        Ok(live)
    }
}

/// Wall-clock Unix seconds (revocation expiries are absolute times shared by nodes).
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}
