//! The live channel's server side: the video is checked at subscribe, an idle channel is pinged,
//! and a client that stops reading is dropped.
use futures::channel::mpsc::Sender;
use futures::{SinkExt, StreamExt};
use leptos::prelude::ServerFnError;
use leptos::server_fn::BoxedStream;
use std::time::Duration;

use super::{WatchEvent, WatchRequest};
use crate::domain::{AccountId, VideoId};
use crate::pipeline::Engine;
use crate::pipeline::accounts::{SessionKey, SocketSlot};

type Events = Sender<Result<WatchEvent, ServerFnError>>;

async fn send(tx: &mut Events, changes: i64, within: Duration) -> bool {
    matches!(tokio::time::timeout(within, tx.send(Ok(WatchEvent { changes }))).await, Ok(Ok(())))
}

type Input = BoxedStream<WatchRequest, ServerFnError>;

/// Which video the channel watches: the first message, if it names a video the viewer owns.
/// `Err(())`: the client said nothing in time, or went away.
async fn subscribe(engine: &Engine, viewer: AccountId, input: &mut Input) -> Result<Option<VideoId>, ()> {
    let Ok(Some(Ok(first))) = tokio::time::timeout(engine.config.live.first_message, input.next()).await else { return Err(()) };
    let Ok(video) = VideoId::parse("video_id", &first.video_id) else { return Ok(None) };
    Ok(engine.owned(viewer, video).await.ok())
}

/// Serves one channel. `session`: the session that opened it (with accounts), checked again at
/// each ping so a sign-out or an expiry elsewhere ends it.
pub async fn serve(engine: Engine, viewer: AccountId, session: Option<SessionKey>, mut input: Input, mut tx: Events, _slot: SocketSlot) {
    let video = match subscribe(&engine, viewer, &mut input).await {
        Ok(Some(video)) => video,
        // An unknown or another account's video: nothing to watch, and nothing said about why;
        // the channel stays quiet (and counted against the cap) until the page goes away.
        Ok(None) => {
            while input.next().await.is_some() {}
            return;
        }
        Err(()) => return,
    };
    let Ok(mut watch) = engine.watch(video).await else { return };
    let times = engine.config.live;
    let mut last = 0;
    loop {
        tokio::select! {
            changes = watch.next() => match changes {
                Some(Ok(changes)) => {
                    last = changes;
                    if !send(&mut tx, changes, times.send_timeout).await {
                        return;
                    }
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "live channel: cannot read the video's changes");
                    return;
                }
                None => return,
            },
            message = input.next() => if message.is_none() {
                return;
            },
            _ = tokio::time::sleep(times.ping) => {
                if let Some(key) = &session
                    && !matches!(engine.session_account(key).await, Ok(Some(account)) if account == viewer)
                {
                    return;
                }
                // Read again, not repeated: a change whose notice was lost (between processes)
                // reaches the page here. A video deleted meanwhile ends the channel.
                match engine.video_changes(video).await {
                    Ok(changes) => last = last.max(changes),
                    Err(_) => return,
                }
                if !send(&mut tx, last, times.send_timeout).await {
                    return;
                }
            },
        }
    }
}
