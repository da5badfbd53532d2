//! A connection's handle on its hub queue.

use super::{Frame, Hub};
use std::sync::Arc;

/// A subscription's queue as a stream of frames.
pub type FrameStream<'a> = flume::r#async::RecvStream<'a, Arc<Frame>>;

/// The receiving end of one subscriber queue; unsubscribes on drop.
pub struct Subscription {
    hub: Arc<Hub>,
    topic: Arc<str>,
    id: u64,
    rx: flume::Receiver<Arc<Frame>>,
}

impl Subscription {
    pub(super) fn new(hub: Arc<Hub>, topic: Arc<str>, id: u64, rx: flume::Receiver<Arc<Frame>>) -> Self {
        Self { hub, topic, id, rx }
    }

    /// The next frame; `None` when the hub dropped this subscriber (slow consumer
    /// under `drop_client`).
    pub async fn recv(&self) -> Option<Arc<Frame>> {
        self.rx.recv_async().await.ok()
    }

    /// The queue as a stream, kept by a connection across waits. (flume still
    /// re-registers its wait hook after each item it yields; what keeping the
    /// stream saves is building a receive future per loop iteration.)
    pub fn stream(&self) -> FrameStream<'_> {
        self.rx.stream()
    }

    /// A frame that is already queued, without waiting.
    pub fn try_recv(&self) -> Option<Arc<Frame>> {
        self.rx.try_recv().ok()
    }

    /// The topic this subscription listens on.
    pub fn topic(&self) -> &str {
        &self.topic
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.unsubscribe(&self.topic, self.id);
    }
}
