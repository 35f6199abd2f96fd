//! Change notifications: every commit that changes a video publishes its id, for live pages.
use tokio::sync::broadcast;

use crate::domain::VideoId;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Changed {
    pub video: VideoId,
}

#[derive(Clone)]
pub struct Events {
    tx: broadcast::Sender<Changed>,
}

impl Default for Events {
    fn default() -> Self {
        Self::new()
    }
}

impl Events {
    pub fn new() -> Events {
        Events { tx: broadcast::channel(1024).0 }
    }

    pub fn changed(&self, video: VideoId) {
        // No subscribers is normal (no page open).
        let _ = self.tx.send(Changed { video });
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Changed> {
        self.tx.subscribe()
    }
}
