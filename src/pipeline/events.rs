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

/// One live channel's view of a video: its change counter now, then again after every change.
pub struct Watch {
    engine: super::Engine,
    video: VideoId,
    events: broadcast::Receiver<Changed>,
    hello: Option<i64>,
}

impl super::Engine {
    /// Opens a live view of `video`. It subscribes before it reads the counter, so a change
    /// committed at any moment is either in the first value or announced after it.
    pub async fn watch(&self, video: VideoId) -> Result<Watch, super::CoreError> {
        let events = self.events.subscribe();
        let hello = self.video_changes(video).await?;
        Ok(Watch { engine: self.clone(), video, events, hello: Some(hello) })
    }

    /// The video's change counter; `NotFound` for an unknown video.
    pub async fn video_changes(&self, video: VideoId) -> Result<i64, super::CoreError> {
        let mut tx = self.store.read().await?;
        let found = crate::storage::get_video(&mut tx, video).await;
        let _ = tx.rollback().await;
        found?.map(|v| v.changes).ok_or_else(|| super::CoreError::not_found(crate::domain::Entity::Video, video))
    }
}

impl Watch {
    /// The counter now (first call), then after each change; `None` when the engine is gone.
    pub async fn next(&mut self) -> Option<Result<i64, super::CoreError>> {
        if let Some(hello) = self.hello.take() {
            return Some(Ok(hello));
        }
        loop {
            match self.events.recv().await {
                Ok(changed) if changed.video != self.video => continue,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {
                    // Coalesce bursts (a unit finishing is several commits) into one read.
                    tokio::time::sleep(std::time::Duration::from_millis(40)).await;
                    while let Ok(_) | Err(broadcast::error::TryRecvError::Lagged(_)) = self.events.try_recv() {}
                    return Some(self.engine.video_changes(self.video).await);
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}
