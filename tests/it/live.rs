//! The live channel as a browser uses it (a real WebSocket through the router): it answers only
//! for a video the viewer owns, pings an idle page, and hangs up on a page that never says which
//! video it watches. Times are shortened through `EngineConfig::live`.
use futures::{SinkExt, StreamExt};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::common::*;
use crate::web::Web;
use reelsmith::pipeline::{EngineConfig, LiveTimes};
use reelsmith::server::options::AuthMode;

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn open(web: &Web) -> Socket {
    let mut request = format!("ws://{}/api/watch_video", web.addr).into_client_request().unwrap();
    request.headers_mut().insert("Origin", format!("http://{}", web.addr).parse().unwrap());
    tokio_tungstenite::connect_async(request).await.expect("open the live channel").0
}

/// server_fn's framing: a tag byte (0: Ok) before each JSON message.
async fn say_video(socket: &mut Socket, video: &str) {
    let hello = [&[0u8][..], serde_json::json!({ "video_id": video }).to_string().as_bytes()].concat();
    socket.send(Message::binary(hello)).await.unwrap();
}

/// The counters the server sends within `window`, and whether it closed the channel.
async fn listen(socket: &mut Socket, window: Duration) -> (Vec<i64>, bool) {
    let mut counters = Vec::new();
    let deadline = tokio::time::Instant::now() + window;
    loop {
        match tokio::time::timeout_at(deadline, socket.next()).await {
            Err(_) => return (counters, false),
            Ok(None | Some(Err(_)) | Some(Ok(Message::Close(_)))) => return (counters, true),
            Ok(Some(Ok(Message::Binary(bytes)))) => {
                let json: serde_json::Value = serde_json::from_slice(bytes.strip_prefix(&[0u8]).expect("an Ok frame")).unwrap();
                counters.push(json["changes"].as_i64().unwrap());
            }
            Ok(Some(Ok(_))) => {}
        }
    }
}

fn quick() -> EngineConfig {
    let ms = Duration::from_millis;
    EngineConfig { live: LiveTimes { first_message: ms(300), ping: ms(150), send_timeout: ms(500) }, ..fast_config() }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_page_is_pinged_with_the_current_counter() {
    let env = env_with(reelsmith::pipeline::providers::Providers::instant(), quick()).await;
    let web = Web::start(&env, AuthMode::None).await;
    let video = new_video(&env.engine, "Pinged", 1, false, None).await;
    let mut socket = open(&web).await;
    say_video(&mut socket, &video.to_string()).await;
    let (counters, closed) = listen(&mut socket, Duration::from_millis(1_000)).await;
    let now = env.engine.video_state(video).await.unwrap().video.changes;
    assert!(!closed, "an idle channel stays open");
    assert!(counters.len() >= 3, "the first counter, then pings: {counters:?}");
    assert!(counters.iter().all(|&c| c == now), "nothing changed, so every message repeats the counter {now}: {counters:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_page_that_names_no_video_is_hung_up_on() {
    let env = env_with(reelsmith::pipeline::providers::Providers::instant(), quick()).await;
    let web = Web::start(&env, AuthMode::None).await;
    let mut socket = open(&web).await;
    let (counters, closed) = listen(&mut socket, Duration::from_millis(3_000)).await;
    assert!(closed && counters.is_empty(), "closed {closed}, sent {counters:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_video_gets_silence_not_updates() {
    let env = env_with(reelsmith::pipeline::providers::Providers::instant(), quick()).await;
    let web = Web::start(&env, AuthMode::None).await;
    let mut socket = open(&web).await;
    say_video(&mut socket, "00000000-0000-0000-0000-000000000000").await;
    let (counters, _) = listen(&mut socket, Duration::from_millis(600)).await;
    assert!(counters.is_empty(), "nothing is said about a video that is not the viewer's: {counters:?}");
}

async fn open_as(web: &Web, cookie: &str) -> Socket {
    let mut request = format!("ws://{}/api/watch_video", web.addr).into_client_request().unwrap();
    request.headers_mut().insert("Origin", format!("http://{}", web.addr).parse().unwrap());
    request.headers_mut().insert("Cookie", cookie.parse().unwrap());
    tokio_tungstenite::connect_async(request).await.expect("open the live channel").0
}

/// A change whose notice never arrived (lost between processes) reaches the page at the next
/// ping: a ping reads the counter again instead of repeating the last one.
#[tokio::test(flavor = "multi_thread")]
async fn a_change_whose_notice_was_lost_reaches_the_page_at_the_next_ping() {
    let env = env_with(reelsmith::pipeline::providers::Providers::instant(), quick()).await;
    let web = Web::start(&env, AuthMode::None).await;
    let video = new_video(&env.engine, "Changed quietly", 1, false, None).await;
    let mut socket = open(&web).await;
    say_video(&mut socket, &video.to_string()).await;
    let (first, _) = listen(&mut socket, Duration::from_millis(100)).await;
    let before = env.engine.video_changes(video).await.unwrap();
    assert_eq!(first, vec![before]);
    sqlx::query("UPDATE videos SET changes = changes + 1 WHERE id = $1")
        .bind(video.to_string())
        .execute(env.engine.store.pool())
        .await
        .unwrap();
    let (counters, closed) = listen(&mut socket, Duration::from_millis(600)).await;
    assert!(!closed && counters.contains(&(before + 1)), "the ping carried the new counter: {counters:?}");
}

/// Signing out (in another tab, say) ends the channels the session opened, at their next ping.
#[tokio::test(flavor = "multi_thread")]
async fn signing_out_ends_the_live_channel_at_the_next_ping() {
    let env = env_with(reelsmith::pipeline::providers::Providers::instant(), quick()).await;
    let web = Web::start(&env, AuthMode::Accounts).await;
    let cookie = web.sign_up("live@example.org").await;
    let made = web.call(Some(&cookie), "create_video", &[("prompt", "Watched, then signed out"), ("beats", "1")]).await;
    let video = made.body.as_str().unwrap().to_string();
    let mut socket = open_as(&web, &cookie).await;
    say_video(&mut socket, &video).await;
    let (counters, closed) = listen(&mut socket, Duration::from_millis(400)).await;
    assert!(!closed && counters.len() >= 2, "open and pinged while signed in: {counters:?}");
    assert_eq!(web.call(Some(&cookie), "sign_out", &[]).await.status, 200);
    let (_, closed) = listen(&mut socket, Duration::from_millis(1_000)).await;
    assert!(closed, "the channel ends with the session");
}
