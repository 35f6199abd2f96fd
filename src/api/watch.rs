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
use crate::pipeline::accounts::SocketSlot;

/// The client must say which video within this time.
const FIRST_MESSAGE: Duration = Duration::from_secs(10);
/// An idle channel gets the current counter again this often (a ping the page ignores).
const PING: Duration = Duration::from_secs(20);
/// A client that does not take a message within this time is gone.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

type Events = Sender<Result<WatchEvent, ServerFnError>>;

async fn send(tx: &mut Events, changes: i64) -> bool {
    matches!(tokio::time::timeout(SEND_TIMEOUT, tx.send(Ok(WatchEvent { changes }))).await, Ok(Ok(())))
}

type Input = BoxedStream<WatchRequest, ServerFnError>;

/// Which video the channel watches: the first message, if it names a video the viewer owns.
/// `Err(())`: the client said nothing in time, or went away.
async fn subscribe(engine: &Engine, viewer: AccountId, input: &mut Input) -> Result<Option<VideoId>, ()> {
    let Ok(Some(Ok(first))) = tokio::time::timeout(FIRST_MESSAGE, input.next()).await else { return Err(()) };
    let Ok(video) = VideoId::parse("video_id", &first.video_id) else { return Ok(None) };
    Ok(engine.owned(viewer, video).await.ok())
}

pub async fn serve(engine: Engine, viewer: AccountId, mut input: Input, mut tx: Events, _slot: SocketSlot) {
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
    let mut last = 0;
    loop {
        tokio::select! {
            changes = watch.next() => match changes {
                Some(Ok(changes)) => {
                    last = changes;
                    if !send(&mut tx, changes).await {
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
            _ = tokio::time::sleep(PING) => if !send(&mut tx, last).await {
                return;
            },
        }
    }
}
