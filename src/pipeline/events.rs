//! Change notifications: every commit that changes a video publishes its id, for live pages, and
//! every queued run wakes idle workers. Within a process they go through a `broadcast` channel;
//! on PostgreSQL they also go through `LISTEN/NOTIFY`, so that a page served by one process sees
//! what a worker in another process did, and idle workers everywhere wake for new runs.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::{Notify, broadcast, mpsc};

use crate::domain::VideoId;

/// The PostgreSQL notification channel all processes share.
const CHANNEL: &str = "reelsmith_changes";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Changed {
    /// `None`: anything may have changed (the cross-process listener reconnected, and notices sent
    /// while it was away are lost), so every live view reads its video again.
    pub video: Option<VideoId>,
}

impl Changed {
    pub fn concerns(&self, video: VideoId) -> bool {
        self.video.is_none_or(|v| v == video)
    }
}

#[derive(Clone)]
pub struct Events {
    tx: broadcast::Sender<Changed>,
    wake: Arc<Notify>,
    /// This process's name in notification payloads, to skip its own.
    origin: Arc<str>,
    /// The notifier task, once `share_through_postgres` started it.
    remote: Arc<OnceLock<mpsc::Sender<String>>>,
    /// A notice did not fit in the notifier's queue: the notifier tells every other process to
    /// read everything again instead of the notices it lost (woken for it, should its queue be
    /// empty by then).
    overflowed: Arc<(AtomicBool, Notify)>,
}

impl Default for Events {
    fn default() -> Self {
        Self::new()
    }
}

impl Events {
    pub fn new() -> Events {
        Events {
            tx: broadcast::channel(1024).0,
            wake: Arc::new(Notify::new()),
            origin: uuid::Uuid::new_v4().simple().to_string().into(),
            remote: Arc::new(OnceLock::new()),
            overflowed: Arc::new((AtomicBool::new(false), Notify::new())),
        }
    }

    /// Signalled when a run may be waiting to be claimed.
    pub fn wake_handle(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }

    pub fn changed(&self, video: VideoId) {
        // No subscribers is normal (no page open).
        let _ = self.tx.send(Changed { video: Some(video) });
        self.tell_others(format!("c {} {video}", self.origin));
    }

    /// A run may have been queued: idle workers of every process look for it now.
    pub fn wake_workers(&self) {
        self.wake.notify_waiters();
        self.tell_others(format!("w {}", self.origin));
    }

    fn tell_others(&self, payload: String) {
        if let Some(remote) = self.remote.get()
            && remote.try_send(payload).is_err()
        {
            let (flag, wake) = &*self.overflowed;
            if !flag.swap(true, Ordering::AcqRel) {
                tracing::warn!("change notices are backing up; other processes will be told to read everything again");
            }
            wake.notify_one();
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Changed> {
        self.tx.subscribe()
    }

    /// A notice from another process (or ours, skipped: it was delivered when sent).
    fn deliver(&self, payload: &str) {
        let mut words = payload.split(' ');
        let (kind, origin) = (words.next(), words.next());
        if origin.is_none_or(|o| o == &*self.origin) {
            return;
        }
        match (kind, words.next().and_then(|v| VideoId::parse("video", v).ok())) {
            (Some("c"), Some(video)) => {
                let _ = self.tx.send(Changed { video: Some(video) });
            }
            (Some("w"), _) => self.wake.notify_waiters(),
            (Some("r"), _) => self.resync(),
            _ => tracing::warn!(payload, "an unknown change notice"),
        }
    }

    /// After (re)connecting the listener: notices may have been missed, so every live view reads
    /// again and idle workers look for work.
    fn resync(&self) {
        let _ = self.tx.send(Changed { video: None });
        self.wake.notify_waiters();
    }

    /// Shares changes with every other process on this PostgreSQL database: a listener task
    /// (reconnecting when its connection drops) and a notifier task. Its connections are named
    /// `reelsmith-events-<origin>` in `pg_stat_activity`.
    pub async fn share_through_postgres(&self, url: &str) -> Result<(), String> {
        use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
        let options: PgConnectOptions = url.parse().map_err(|e| format!("the database URL: {e}"))?;
        let options = options.application_name(&format!("reelsmith-events-{}", self.origin));
        let pool = PgPoolOptions::new().max_connections(3).connect_lazy_with(options);
        let listener = listen(&pool).await.map_err(|e| format!("cannot listen for changes: {e}"))?;
        let (tx, rx) = mpsc::channel(4096);
        if self.remote.set(tx).is_err() {
            return Err("changes are already shared".into());
        }
        tokio::spawn(notify_loop(pool.clone(), rx, self.overflowed.clone(), format!("r {}", self.origin)));
        tokio::spawn(listen_loop(pool, self.clone(), listener));
        Ok(())
    }
}

async fn listen(pool: &sqlx::PgPool) -> sqlx::Result<sqlx::postgres::PgListener> {
    let mut listener = sqlx::postgres::PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

/// Delivers other processes' notices; when the connection drops, connects again (every 200 ms
/// until it can) and then has every live view read again.
async fn listen_loop(pool: sqlx::PgPool, events: Events, mut listener: sqlx::postgres::PgListener) {
    loop {
        match listener.try_recv().await {
            Ok(Some(notice)) => events.deliver(notice.payload()),
            Ok(None) | Err(_) => {
                tracing::warn!("the change listener lost its database connection; reconnecting");
                listener = loop {
                    match listen(&pool).await {
                        Ok(l) => break l,
                        Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                    }
                };
                tracing::info!("the change listener is back");
                events.resync();
            }
        }
    }
}

/// More notices than this waiting to be sent (the database unreachable for a while) are
/// replaced by one "read everything again".
const MOST_PENDING: usize = 256;

/// Sends this process's notices, a burst at a time in one statement (identical ones once). A
/// notice is not dropped when the database cannot take it: the burst is sent again every 200 ms
/// until it goes, and when notices were lost (the queue overflowed) or too many wait, every other
/// process is told to read everything again (`resync`), so their pages still catch up within a
/// second of the database answering, not at their next ping.
async fn notify_loop(pool: sqlx::PgPool, mut rx: mpsc::Receiver<String>, overflowed: Arc<(AtomicBool, Notify)>, resync: String) {
    let (lost, wake) = &*overflowed;
    let mut pending = std::collections::BTreeSet::new();
    let mut failing = false;
    loop {
        if pending.is_empty() {
            // A notice, or word that one was lost after this loop last looked (the queue may be
            // empty by then: the resync must not wait for the next notice).
            tokio::select! {
                next = rx.recv() => match next {
                    Some(first) => {
                        pending.insert(first);
                    }
                    None => return,
                },
                () = wake.notified() => {}
            }
        }
        while let Ok(more) = rx.try_recv() {
            pending.insert(more);
        }
        if lost.swap(false, Ordering::AcqRel) || pending.len() > MOST_PENDING {
            pending = std::collections::BTreeSet::from([resync.clone()]);
        }
        if pending.is_empty() {
            continue; // woken for a loss already told
        }
        let payloads: Vec<&str> = pending.iter().map(String::as_str).collect();
        let sent = sqlx::query("SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p").bind(CHANNEL).bind(&payloads).execute(&pool).await;
        match sent {
            Ok(_) => {
                if std::mem::take(&mut failing) {
                    tracing::info!("change notices reach other processes again");
                }
                pending.clear();
            }
            Err(e) => {
                if !std::mem::replace(&mut failing, true) {
                    tracing::warn!(error = %e, "cannot tell other processes about changes; trying again every 200 ms");
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
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
                Ok(changed) if !changed.concerns(self.video) => continue,
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
