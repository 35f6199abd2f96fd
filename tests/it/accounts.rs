//! Accounts and protection (SPEC §8), over HTTP against the in-process app on the database under
//! test: sessions, ownership, cross-site requests, hosts, limits and fair scheduling.
use serde_json::Value;

use crate::common::{drain, env, env_with, fast_config, snapshot, step};
use crate::web::Web;
use reelsmith::api::AppError;
use reelsmith::api::convert::summary;
use reelsmith::domain::TryOutcome;
use reelsmith::domain::{AccountId, Denial, Email, LimitReached, NewVideo, Quotas};
use reelsmith::pipeline::accounts::FAILURES_PER_ADDRESS;
use reelsmith::pipeline::blobs::BlobStore;
use reelsmith::pipeline::providers::instant::Instant;
use reelsmith::pipeline::providers::{Answer, Providers, StoryboardArtist, UnitCall};
use reelsmith::pipeline::worker::WorkOutcome;
use reelsmith::pipeline::{CoreError, Engine, now_ms};
use reelsmith::server::options::AuthMode;
use reelsmith::storage::{self, Store};
use std::sync::Arc;

const PASSWORD: &str = "correct horse battery";

/// The sentence the page shows for an error answer.
fn sentence(body: &Value) -> String {
    serde_json::from_value::<AppError>(body.clone()).expect("a typed error").sentence()
}

async fn create(web: &Web, cookie: &str, prompt: &str) -> String {
    let answer = web.call(Some(cookie), "create_video", &[("prompt", prompt), ("beats", "2")]).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.body.as_str().unwrap().to_string()
}

async fn list(web: &Web, cookie: &str) -> Vec<String> {
    let answer = web.call(Some(cookie), "list_videos", &[]).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.body["videos"].as_array().unwrap().iter().map(|v| v["video_id"].as_str().unwrap().to_string()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn sign_up_sets_a_protected_cookie_and_sign_in_rotates_the_session() {
    let env = env().await;
    let web = Web::start(&env, AuthMode::Accounts).await;
    let answer = web.call(None, "sign_up", &[("email", "Ann@Example.org"), ("password", PASSWORD)]).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let set = answer.set_cookie().unwrap();
    for flag in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(set.contains(flag), "{set}");
    }
    assert!(!set.contains("Secure"), "no Secure on a plain-http public URL: {set}");
    let first = answer.session_cookie().unwrap();
    let who = web.call(Some(&first), "whoami", &[]).await;
    assert_eq!(who.body["email"], "ann@example.org");

    let answer = web.call(Some(&first), "sign_in", &[("email", "ann@example.org"), ("password", PASSWORD), ("next", "/videos/x")]).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body, "/videos/x");
    let second = answer.session_cookie().unwrap();
    assert_ne!(first, second, "sign-in gives a new session id");
    assert_eq!(web.call(Some(&first), "list_videos", &[]).await.status, 401, "the session fixed before sign-in is over");
    assert_eq!(web.call(Some(&second), "list_videos", &[]).await.status, 200);

    let out = web.call(Some(&second), "sign_out", &[]).await;
    assert_eq!(out.status, 200);
    assert!(out.set_cookie().unwrap().contains("Max-Age=0"));
    assert_eq!(web.call(Some(&second), "list_videos", &[]).await.status, 401, "signed out means signed out");
}

#[tokio::test(flavor = "multi_thread")]
async fn sign_in_failures_say_one_thing_and_are_throttled_per_account() {
    let env = env().await;
    let web = Web::start(&env, AuthMode::Accounts).await;
    web.sign_up("bob@example.org").await;
    let wrong = web.call(None, "sign_in", &[("email", "bob@example.org"), ("password", "not his password")]).await;
    let unknown = web.call(None, "sign_in", &[("email", "nobody@example.org"), ("password", "not his password")]).await;
    assert_eq!((wrong.status, unknown.status), (401, 401));
    assert_eq!(wrong.body, unknown.body, "an unknown email and a wrong password read the same");
    assert_eq!(sentence(&wrong.body), "Email or password is incorrect.");
    for _ in 0..4 {
        web.call(None, "sign_in", &[("email", "bob@example.org"), ("password", "guess")]).await;
    }
    let right = web.call(None, "sign_in", &[("email", "bob@example.org"), ("password", PASSWORD)]).await;
    assert_eq!(right.status, 429, "five failures lock the account for a while: {}", right.body);
    assert_eq!(sentence(&right.body), "Too many failed sign-ins; try again in 15 minutes.");
    assert!(right.session_cookie().is_none());
}

/// Each account is a fresh set of limits, so one address may make only so many an hour.
#[tokio::test(flavor = "multi_thread")]
async fn sign_ups_are_limited_per_client_address() {
    let env = env_with(Providers::instant(), limited(Quotas { sign_ups_per_hour: 2, ..Quotas::default() })).await;
    let web = Web::start(&env, AuthMode::Accounts).await;
    web.sign_up("first@example.org").await;
    let taken = web.call(None, "sign_up", &[("email", "first@example.org"), ("password", PASSWORD)]).await;
    assert_eq!(taken.status, 422, "an email taken is still a sign-up from this address: {}", taken.body);
    let third = web.call(None, "sign_up", &[("email", "third@example.org"), ("password", PASSWORD)]).await;
    assert_eq!(third.status, 429, "{}", third.body);
    assert_eq!(sentence(&third.body), "2 accounts were made from your address in the last hour, the most allowed.");
    assert!(third.session_cookie().is_none());
    let sign_in = web.call(None, "sign_in", &[("email", "third@example.org"), ("password", PASSWORD)]).await;
    assert_eq!(sign_in.status, 401, "no account was made: {}", sign_in.body);
    let first = web.call(None, "sign_in", &[("email", "first@example.org"), ("password", PASSWORD)]).await;
    assert_eq!(first.status, 200, "signing in to the accounts made is not limited: {}", first.body);
}

/// Guesses sent all at once count as they arrive, not when their password check ends: no more
/// than five are checked against the password.
#[tokio::test(flavor = "multi_thread")]
async fn guesses_sent_at_once_get_no_more_tries_than_guesses_sent_in_turn() {
    let env = env().await;
    let web = Web::start(&env, AuthMode::Accounts).await;
    web.sign_up("dee@example.org").await;
    let guesses = (0..12).map(|i| {
        let password = format!("guess number {i}");
        let web = &web;
        async move { web.call(None, "sign_in", &[("email", "dee@example.org"), ("password", password.as_str())]).await.status }
    });
    let mut statuses = futures::future::join_all(guesses).await;
    statuses.sort();
    assert_eq!(statuses, [[401; 5].as_slice(), &[429; 7]].concat(), "five guesses checked, seven refused");
}

#[tokio::test(flavor = "multi_thread")]
async fn sign_in_failures_are_throttled_per_client_address() {
    let env = env().await;
    let web = Web::start(&env, AuthMode::Accounts).await;
    web.sign_up("cat@example.org").await;
    for i in 0..20 {
        let email = format!("guess{i}@example.org");
        assert_eq!(web.call(None, "sign_in", &[("email", email.as_str()), ("password", "guess")]).await.status, 401);
    }
    let right = web.call(None, "sign_in", &[("email", "cat@example.org"), ("password", PASSWORD)]).await;
    assert_eq!(right.status, 429, "twenty failures from one address stop that address: {}", right.body);
}

fn ip(s: &str) -> std::net::IpAddr {
    s.parse().unwrap()
}

fn email(s: &str) -> Email {
    Email::parse(s).unwrap()
}

/// What a wrong password answers until the throttle steps in.
fn is_bad_credentials<T: std::fmt::Debug>(answer: &Result<T, CoreError>) -> bool {
    matches!(answer, Err(CoreError::Denied(Denial::BadCredentials)))
}

/// Two web processes on one database (behind one address, taking turns) count a guesser's tries
/// together: five failures lock the account whichever process saw them, and sign-ups are
/// limited per address across both.
#[tokio::test(flavor = "multi_thread")]
async fn sign_in_and_sign_up_counts_hold_across_processes_sharing_the_database() {
    let env = env_with(Providers::instant(), limited(Quotas { sign_ups_per_hour: 2, ..Quotas::default() })).await;
    let config = limited(Quotas { sign_ups_per_hour: 2, ..Quotas::default() });
    let other = Engine::new(Store::open(&env.url, 4).await.unwrap(), BlobStore::new(&env.dir), Providers::instant(), config);
    let here = ip("10.0.0.1");
    env.engine.sign_up("eve@example.org", PASSWORD, here).await.unwrap();
    for engine in [&env.engine, &other, &env.engine, &other, &env.engine] {
        assert!(is_bad_credentials(&engine.sign_in("eve@example.org", "a guess", here, None).await));
    }
    let right = other.sign_in("eve@example.org", PASSWORD, here, None).await;
    assert!(matches!(right, Err(CoreError::Denied(Denial::TooManyAttempts { .. }))), "locked in the other process too: {right:?}");
    other.sign_up("fay@example.org", PASSWORD, here).await.unwrap();
    let third = env.engine.sign_up("gus@example.org", PASSWORD, here).await;
    assert_eq!(refused_by(third), LimitReached::SignUps { limit: 2 }, "the first process counts the second's sign-up");
}

/// A success forgives the email's failures before it; the lock says how long it lasts, holds
/// for its window (15 minutes) and ends with it; another email from another address is free.
#[tokio::test(flavor = "multi_thread")]
async fn a_locked_email_opens_when_its_window_ends_and_a_success_forgives_its_failures() {
    let env = env().await;
    let (engine, store) = (&env.engine, &env.engine.store);
    let here = ip("10.0.0.1");
    engine.sign_up("ann@example.org", PASSWORD, ip("10.0.0.9")).await.unwrap();
    for _ in 0..4 {
        assert!(is_bad_credentials(&engine.sign_in("ann@example.org", "a guess", here, None).await));
    }
    engine.sign_in("ann@example.org", PASSWORD, here, None).await.expect("the fifth try, right, signs in");
    for _ in 0..5 {
        assert!(
            is_bad_credentials(&engine.sign_in("ann@example.org", "a guess", here, None).await),
            "a success forgave the tries before it"
        );
    }
    match engine.sign_in("ann@example.org", PASSWORD, here, None).await {
        Err(CoreError::Denied(Denial::TooManyAttempts { retry_after_s })) => {
            assert!((895..=900).contains(&retry_after_s), "{retry_after_s}")
        }
        other => panic!("expected the lock, got {other:?}"),
    }
    let (ann, bob) = (email("ann@example.org"), email("bob@example.org"));
    let now = now_ms();
    assert!(engine.throttle.begin_sign_in(store, &bob, ip("10.0.0.2"), now).await.is_ok(), "others are not locked out");
    assert!(engine.throttle.begin_sign_in(store, &ann, here, now + 14 * 60_000).await.is_err(), "still locked near its end");
    assert!(engine.throttle.begin_sign_in(store, &ann, here, now + 15 * 60_000 + 1).await.is_ok(), "the lock ends with its window");
}

/// An address's failures add up over every email, while its successful sign-ins (a household,
/// an office) use up nothing; guesses from many addresses of one IPv6 /64 add up too.
#[tokio::test(flavor = "multi_thread")]
async fn an_address_counts_every_failure_and_a_success_gives_its_own_back() {
    let env = env().await;
    let (engine, store) = (&env.engine, &env.engine.store);
    let here = ip("10.0.0.1");
    engine.sign_up("hal@example.org", PASSWORD, ip("10.0.0.9")).await.unwrap();
    let now = now_ms();
    for i in 0..FAILURES_PER_ADDRESS - 1 {
        engine.throttle.begin_sign_in(store, &email(&format!("user{i}@example.org")), here, now).await.unwrap();
    }
    for _ in 0..3 {
        engine.sign_in("hal@example.org", PASSWORD, here, None).await.expect("a right password from the address");
    }
    engine.throttle.begin_sign_in(store, &email("user200@example.org"), here, now).await.unwrap();
    let refused = engine.throttle.begin_sign_in(store, &email("user201@example.org"), here, now).await;
    assert!(matches!(refused, Err(CoreError::Denied(Denial::TooManyAttempts { .. }))), "the address's twentieth failure stops it");
    assert!(engine.throttle.begin_sign_in(store, &email("user201@example.org"), ip("10.0.0.2"), now).await.is_ok());
    for i in 0..FAILURES_PER_ADDRESS {
        let from = ip(&format!("2001:db8::{:x}", i + 1));
        engine.throttle.begin_sign_in(store, &email(&format!("v6user{i}@example.org")), from, now).await.unwrap();
    }
    let v6 = engine.throttle.begin_sign_in(store, &email("v6user99@example.org"), ip("2001:db8::abcd"), now).await;
    assert!(v6.is_err(), "guesses from many addresses of one /64 add up");
}

/// The table holds hashes, not emails, and a window that ended is deleted by the next try after
/// it (the sweep runs at most once a minute per process).
#[tokio::test(flavor = "multi_thread")]
async fn the_counts_name_no_email_and_ended_windows_are_deleted() {
    let env = env().await;
    let (throttle, store) = (&env.engine.throttle, &env.engine.store);
    let rows = async || -> Vec<(String, i64)> {
        sqlx::query_as("SELECT key_hash, count FROM attempt_counts ORDER BY key_hash").fetch_all(store.pool()).await.unwrap()
    };
    let t0 = now_ms();
    throttle.begin_sign_in(store, &email("zed@example.org"), ip("10.0.0.1"), t0).await.unwrap();
    let first = rows().await;
    assert_eq!(first.len(), 2, "one count for the email, one for the address");
    assert!(first.iter().all(|(key, n)| key.len() == 64 && !key.contains("zed") && *n == 1), "{first:?}");
    throttle.begin_sign_in(store, &email("amy@example.org"), ip("10.0.0.2"), t0 + 16 * 60_000).await.unwrap();
    // The sweep runs in a task of its own, after the try's answer.
    let mut later = rows().await;
    for _ in 0..100 {
        if later.len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        later = rows().await;
    }
    assert_eq!(later.len(), 2, "zed's ended window is gone: {later:?}");
    assert!(later.iter().all(|row| !first.contains(row)));
}

/// A refused try counts nothing: an email locked from an address, tried fifteen more times,
/// leaves the address's count where the lock found it, so another email from it is still
/// checked; in a second process too, where the lock is read from the database.
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_try_counts_nothing() {
    let env = env().await;
    let (throttle, store) = (&env.engine.throttle, &env.engine.store);
    let other = Engine::new(Store::open(&env.url, 4).await.unwrap(), BlobStore::new(&env.dir), Providers::instant(), fast_config());
    let (here, now) = (ip("10.0.0.1"), now_ms());
    for _ in 0..5 {
        throttle.begin_sign_in(store, &email("kim@example.org"), here, now).await.unwrap();
    }
    for engine in [&env.engine, &other].repeat(8).into_iter().take(15) {
        let refused = engine.throttle.begin_sign_in(&engine.store, &email("kim@example.org"), here, now).await;
        assert!(matches!(refused, Err(CoreError::Denied(Denial::TooManyAttempts { .. }))), "{refused:?}");
    }
    for i in 0..FAILURES_PER_ADDRESS - 5 {
        let other_email = email(&format!("lee{i}@example.org"));
        assert!(throttle.begin_sign_in(store, &other_email, here, now).await.is_ok(), "the address's try {}", i + 6);
    }
    assert!(throttle.begin_sign_in(store, &email("lee99@example.org"), here, now).await.is_err(), "its twenty-first");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_sign_up_input_is_refused_and_makes_no_account() {
    let env = env().await;
    let web = Web::start(&env, AuthMode::Accounts).await;
    let long = "p".repeat(129);
    let too_long_email = format!("{}@example.org", "e".repeat(250));
    for (email, password, field) in [
        ("not-an-email", PASSWORD, "email"),
        (too_long_email.as_str(), PASSWORD, "email"),
        ("dan@example.org", "short", "password"),
        ("dan@example.org", long.as_str(), "password"),
    ] {
        let answer = web.call(None, "sign_up", &[("email", email), ("password", password)]).await;
        assert_eq!(answer.status, 422, "{email}: {}", answer.body);
        assert_eq!(answer.body["InvalidInput"]["field"], field, "{}", answer.body);
        assert!(answer.set_cookie().is_none());
    }
    web.sign_up("dan@example.org").await;
    let again = web.call(None, "sign_up", &[("email", "DAN@example.org"), ("password", PASSWORD)]).await;
    assert_eq!(again.status, 422, "one account per email: {}", again.body);
    assert_eq!(sentence(&again.body), "An account with this email already exists; sign in instead.");
}

#[tokio::test(flavor = "multi_thread")]
async fn signed_out_visitors_go_to_sign_in_and_server_functions_say_401() {
    let env = env().await;
    let web = Web::start(&env, AuthMode::Accounts).await;
    let page = web.get(None, "/videos/abc?branch=alt", &[]).await;
    assert_eq!(page.status, 303);
    assert_eq!(page.headers["location"], "/signin?next=/videos/abc%3Fbranch%3Dalt");
    assert_eq!(web.get(None, "/signin", &[]).await.status, 200);
    let answer = web.call(None, "create_video", &[("prompt", "Nobody's video"), ("beats", "2")]).await;
    assert_eq!(answer.status, 401, "{}", answer.body);
    assert_eq!(web.call(Some("reelsmith_session=forged"), "list_videos", &[]).await.status, 401);
}

/// A's video with a storyboard: (video id, script checkpoint id, a storyboard artifact URL).
async fn video_with_storyboard(web: &Web, env: &crate::common::TestEnv, cookie: &str) -> (String, String, String) {
    let video = create(web, cookie, "A lighthouse keeper's secret").await;
    drain(&env.engine).await;
    let status = web.call(Some(cookie), "get_status", &[("video_id", video.as_str())]).await;
    let script = status.body["current_checkpoint"]["id"].as_str().unwrap().to_string();
    let answer = web
        .call(Some(cookie), "continue_video", &[("video_id", video.as_str()), ("checkpoint_id", script.as_str()), ("force_retry", "false")])
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    drain(&env.engine).await;
    let status = web.call(Some(cookie), "get_status", &[("video_id", video.as_str())]).await;
    let url = status.body["artifacts"]["storyboard"][0].as_str().expect("a storyboard frame").to_string();
    (video, script, url)
}

/// Every server function that takes a video id, called with `video` (and `checkpoint`).
fn calls_on<'a>(video: &'a str, checkpoint: &'a str) -> Vec<(&'static str, Vec<(&'static str, &'a str)>)> {
    vec![
        ("get_status", vec![("video_id", video)]),
        ("continue_video", vec![("video_id", video), ("checkpoint_id", checkpoint), ("force_retry", "true")]),
        ("edit_script", vec![("video_id", video), ("checkpoint_id", checkpoint), ("script_json", "{}")]),
        ("create_branch", vec![("video_id", video), ("checkpoint_id", checkpoint), ("name", "mine")]),
        ("cancel_run", vec![("video_id", video)]),
        ("set_auto_continue", vec![("video_id", video), ("on", "true")]),
        ("set_budget", vec![("video_id", video), ("dollars", "1")]),
        ("regenerate_beat", vec![("video_id", video), ("checkpoint_id", checkpoint), ("beat", "0")]),
        ("delete_video", vec![("video_id", video)]),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn another_accounts_video_is_not_found_everywhere_and_changes_nothing() {
    let env = env().await;
    let web = Web::start(&env, AuthMode::Accounts).await;
    let (a, b) = (web.sign_up("a@example.org").await, web.sign_up("b@example.org").await);
    let (video, script, artifact) = video_with_storyboard(&web, &env, &a).await;
    let b_video = create(&web, &b, "B's own video").await;
    let unknown = uuid::Uuid::new_v4().to_string();
    let before = snapshot(&env.engine).await;
    for ((name, foreign), (_, missing)) in calls_on(&video, &script).into_iter().zip(calls_on(&unknown, &script)) {
        let answer = web.call(Some(&b), name, &foreign).await;
        let unknown_answer = web.call(Some(&b), name, &missing).await;
        assert_eq!(answer.status, 404, "{name}: {}", answer.body);
        assert_eq!(answer.body["NotFound"]["what"], "video", "{name}: {}", answer.body);
        let shape = |body: &Value, id: &str| body.to_string().replace(id, "ID");
        assert_eq!(shape(&answer.body, &video), shape(&unknown_answer.body, &unknown), "{name}: foreign reads as unknown");
    }
    assert_eq!(snapshot(&env.engine).await, before, "B's calls changed nothing");
    assert_eq!(list(&web, &a).await, vec![video.clone()], "A sees only A's video");
    assert_eq!(list(&web, &b).await, vec![b_video], "B sees only B's video");
    assert_eq!(web.get(Some(&a), &artifact, &[]).await.status, 200, "A gets A's artifact");
    // A frame this small is kept in its database row: served whole, and by range, all the same.
    let sha = artifact.rsplit('/').next().unwrap().split('.').next().unwrap();
    let (status, headers, whole) = web.get_bytes(&a, &artifact, None).await;
    assert_eq!((status, headers["content-type"].to_str().unwrap()), (200, "image/png"));
    assert_eq!(headers["x-content-type-options"], "nosniff", "served as what it is, never sniffed");
    assert!(
        whole.len() as u64 <= storage::INLINE_BLOB_MAX
            && storage::inline_blob(&mut env.engine.store.read().await.unwrap(), sha).await.unwrap() == Some(whole.clone())
    );
    assert_eq!(reelsmith::pipeline::blobs::hash(&whole), sha, "the bytes its name says");
    let (status, headers, part) = web.get_bytes(&a, &artifact, Some("bytes=2-5")).await;
    assert_eq!(
        (status, &part[..], headers["content-range"].to_str().unwrap()),
        (206, &whole[2..6], &*format!("bytes 2-5/{}", whole.len()))
    );
    let (status, ..) = web.get_bytes(&a, &artifact, Some(&format!("bytes={}-", whole.len()))).await;
    assert_eq!(status, 416, "a range past the end");
    assert_eq!(web.get(Some(&b), &artifact, &[]).await.status, 404, "B does not");
    assert_eq!(web.get(None, &artifact, &[]).await.status, 404, "nor does a stranger");
    let moved = artifact.replace(&video, &uuid::Uuid::new_v4().to_string());
    assert_eq!(web.get(Some(&a), &moved, &[]).await.status, 404, "a blob is served only under a video that holds it");
    let page = web.get(Some(&b), &format!("/videos/{video}"), &[]).await;
    assert_eq!(page.status, 404, "B's status page for A's video is the not-found page");
    assert!(page.body.as_str().unwrap().contains("Video not found"));
}

/// A video holds a blob only when one of its manifests names it as a blob: a hash typed into
/// the script's text does not open another account's artifact under one's own video.
#[tokio::test(flavor = "multi_thread")]
async fn a_hash_typed_into_a_script_does_not_open_another_accounts_artifact() {
    let env = env().await;
    let web = Web::start(&env, AuthMode::Accounts).await;
    let (a, b) = (web.sign_up("a@example.org").await, web.sign_up("b@example.org").await);
    let (a_video, _, artifact) = video_with_storyboard(&web, &env, &a).await;
    let sha = artifact.rsplit('/').next().unwrap().split('.').next().unwrap().to_string();
    let b_video = create(&web, &b, "B's own video").await;
    drain(&env.engine).await;
    let status = web.call(Some(&b), "get_status", &[("video_id", b_video.as_str())]).await;
    let script = status.body["current_checkpoint"]["id"].as_str().unwrap().to_string();
    let video_id = reelsmith::domain::VideoId::parse("video", &b_video).unwrap();
    let state = env.engine.video_state(video_id).await.unwrap();
    let checkpoint = state.checkpoints.iter().find(|c| c.id.to_string() == script).unwrap();
    let mut doc = serde_json::to_value(checkpoint.manifest.script().unwrap()).unwrap();
    doc["title"] = Value::String(sha.clone());
    let answer = web
        .call(
            Some(&b),
            "edit_script",
            &[("video_id", b_video.as_str()), ("checkpoint_id", script.as_str()), ("script_json", &doc.to_string())],
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let borrowed = artifact.replace(&a_video, &b_video);
    assert_ne!(borrowed, artifact);
    assert_eq!(web.get(Some(&b), &borrowed, &[]).await.status, 404, "B's script names the hash, but holds no such blob");
    assert_eq!(web.get(Some(&a), &artifact, &[]).await.status, 200, "A still gets A's artifact");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cross_site_form_post_is_refused_and_changes_nothing() {
    let env = env().await;
    let web = Web::start(&env, AuthMode::Accounts).await;
    let a = web.sign_up("eve-target@example.org").await;
    let before = snapshot(&env.engine).await;
    let fields = [("prompt", "Made by another site"), ("beats", "2")];
    for headers in [
        vec![("origin", "https://evil.example")],
        vec![("origin", "null")],
        vec![("sec-fetch-site", "cross-site")],
        vec![("sec-fetch-site", "same-site")],
    ] {
        let answer = web.call_with(Some(&a), "create_video", &fields, &headers).await;
        assert_eq!(answer.status, 403, "{headers:?}: {}", answer.body);
    }
    assert_eq!(snapshot(&env.engine).await, before, "nothing was made");
    assert!(list(&web, &a).await.is_empty());
    let same = web.call_with(Some(&a), "create_video", &fields, &[("sec-fetch-site", "same-origin")]).await;
    assert_eq!(same.status, 200, "the page's own requests pass: {}", same.body);
}

/// Signing up or in with JavaScript off lands, signed in, on the page asked for (`next`, or `/`);
/// it went back to the form it came from, which still asked to sign in (SPEC §8: "both land on
/// `/` on success"). A refused one goes back to the form and signs nobody in.
#[tokio::test(flavor = "multi_thread")]
async fn signing_up_and_in_without_javascript_lands_on_the_page_asked_for() {
    let env = env().await;
    let web = Web::start(&env, AuthMode::Accounts).await;
    let location = |a: &crate::web::Answer| a.headers.get("location").map(|l| l.to_str().unwrap().to_string());
    let made = web.post_form(None, "sign_up", &[("email", "nojs@example.org"), ("password", PASSWORD), ("next", "")], "/signup").await;
    assert!(matches!(made.status, 302 | 303), "{} {}", made.status, made.body);
    assert_eq!(location(&made).as_deref(), Some("/"));
    let cookie = made.session_cookie().expect("signed in");
    let video = create(&web, &cookie, "Asked for before signing in").await;
    let asked = format!("/videos/{video}");
    let fields = [("email", "nojs@example.org"), ("password", PASSWORD), ("next", asked.as_str())];
    let signed_in = web.post_form(None, "sign_in", &fields, &format!("/signin?next={asked}")).await;
    assert!(matches!(signed_in.status, 302 | 303), "{}", signed_in.status);
    assert_eq!(location(&signed_in), Some(asked.clone()));
    let page = web.get(signed_in.session_cookie().as_deref(), &asked, &[]).await;
    assert_eq!(page.status, 200, "the new session opens the page asked for");
    let wrong = [("email", "nojs@example.org"), ("password", "not the password"), ("next", asked.as_str())];
    let refused = web.post_form(None, "sign_in", &wrong, &format!("/signin?next={asked}")).await;
    let back = location(&refused).unwrap_or_default();
    assert!(back.starts_with(&format!("{}/signin?", web.origin())) && back.contains("__err="), "back to the form, with its error: {back}");
    assert_eq!(refused.session_cookie(), None, "nobody signed in");
    let form = web.get(None, back.strip_prefix(&web.origin()).unwrap(), &[]).await;
    let form = form.body.as_str().unwrap_or_default();
    assert_eq!(form.matches("Email or password is incorrect.").count(), 1, "said once, by the form: {form}");
    // An address anyone could write does not put its own words under the form.
    use base64::Engine;
    use leptos::server_fn::ServerFn;
    let crafted = r#"{"InvalidInput":{"field":"email","message":"your account is locked: call 555-0100"}}"#;
    let err = base64::engine::general_purpose::URL_SAFE.encode(crafted);
    let spoofed = web.get(None, &format!("/signin?__path={}&__err={err}", reelsmith::api::SignIn::PATH), &[]).await;
    let spoofed = spoofed.body.as_str().unwrap_or_default();
    assert!(!spoofed.contains("555-0100") && spoofed.contains("What the form sent was not accepted"), "{spoofed}");
}

/// The status page's forms posted without JavaScript (budget, Approve & Continue) are answered
/// with that page, whatever the `Referer` says: a browser may send none, and the answer was then
/// the list of videos.
#[tokio::test(flavor = "multi_thread")]
async fn a_status_page_form_posted_without_javascript_goes_back_to_that_page() {
    let env = env().await;
    let web = Web::start(&env, AuthMode::None).await;
    let made = web.call(None, "create_video", &[("prompt", "Approved by a plain form"), ("beats", "2")]).await;
    let video = made.body.as_str().expect("the new video's id").to_string();
    step(&env.engine).await;
    let location = |a: &crate::web::Answer| a.headers.get("location").map(|l| l.to_str().unwrap().to_string());
    let budget = web.post_form(None, "set_budget", &[("video_id", &video), ("dollars", "5")], "/").await;
    assert_eq!((budget.status, location(&budget)), (302, Some(format!("/videos/{video}"))));
    let id = reelsmith::domain::VideoId::parse("video", &video).unwrap();
    let head = env.engine.video_state(id).await.unwrap().branches[0].head_id.expect("the script").to_string();
    let fields = [("video_id", video.as_str()), ("branch", "main"), ("checkpoint_id", head.as_str()), ("force_retry", "false")];
    let approved = web.post_form(None, "continue_video", &fields, "/").await;
    assert_eq!((approved.status, location(&approved)), (302, Some(format!("/videos/{video}?branch=main"))));
    let state = env.engine.video_state(id).await.unwrap();
    assert_eq!((state.runs.len(), state.video.budget_micros), (2, Some(5_000_000)), "both posts did their work");
}

/// A status-page form posted without JavaScript that the server refuses comes back to the page,
/// which says why (it used to come back unchanged, as if the click had been lost), and nothing
/// is done.
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_form_posted_without_javascript_says_why_on_its_page() {
    let env = env().await;
    let web = Web::start(&env, AuthMode::None).await;
    let made = web.call(None, "create_video", &[("prompt", "Refused by a plain form"), ("beats", "2")]).await;
    let video = made.body.as_str().expect("the new video's id").to_string();
    step(&env.engine).await;
    let id = reelsmith::domain::VideoId::parse("video", &video).unwrap();
    let page = format!("/videos/{video}?branch=main");
    // Nothing runs on the branch: a cancel is refused.
    let refused = web.post_form(None, "cancel_run", &[("video_id", video.as_str()), ("branch", "main")], &page).await;
    assert_eq!(refused.status, 302);
    let back = refused.headers.get("location").map(|l| l.to_str().unwrap().to_string()).unwrap_or_default();
    let back = back.strip_prefix(&web.origin()).unwrap_or(&back).to_string();
    assert!(back.starts_with(&page), "back to the page it was posted from: {back}");
    let shown = web.get(None, &back, &[]).await;
    assert_eq!(shown.status, 200);
    let body = shown.body.as_str().unwrap_or_default().to_string();
    assert!(body.contains("That was not done") && body.contains("Nothing is running on this branch."), "{body}");
    let plain = web.get(None, &page, &[]).await;
    assert!(!plain.body.as_str().unwrap_or_default().contains("That was not done"), "only the answer to the post says it");
    let state = env.engine.video_state(id).await.unwrap();
    assert_eq!(state.runs.len(), 1, "nothing was started or ended");
}

/// No other site may show these pages in a frame: a click there would be a request from this
/// page's own origin (with `--auth none`, no cookie even stands in the way).
#[tokio::test(flavor = "multi_thread")]
async fn no_answer_may_be_framed_by_another_site() {
    let env = env().await;
    let web = Web::start(&env, AuthMode::None).await;
    for (path, status) in [("/", 200), ("/settings", 200), ("/videos/abc", 404), ("/health", 200)] {
        let answer = web.get(None, path, &[("accept", "text/html")]).await;
        assert_eq!(answer.status, status, "{path}");
        assert_eq!(answer.headers["x-frame-options"], "DENY", "{path}");
        assert_eq!(answer.headers["content-security-policy"], "frame-ancestors 'none'", "{path}");
        assert_eq!(answer.headers["x-content-type-options"], "nosniff", "{path}");
    }
    let refused = web.get(None, "/", &[("host", "evil.example")]).await;
    assert_eq!((refused.status, &refused.headers["x-frame-options"]), (403, &"DENY".parse().unwrap()));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_for_another_host_is_refused() {
    let env = env().await;
    let web = Web::start(&env, AuthMode::None).await;
    for path in ["/", "/health", "/signin"] {
        let answer = web.get(None, path, &[("host", "evil.example")]).await;
        assert_eq!(answer.status, 403, "{path}");
    }
    let post = web.call_with(None, "create_video", &[("prompt", "Rebound"), ("beats", "2")], &[("host", "evil.example:80")]).await;
    assert_eq!(post.status, 403);
    assert_eq!(env.engine.video_page(AccountId::LOCAL, 0).await.unwrap().total, 0, "nothing was made");
    for host in ["localhost", "127.0.0.1", "[::1]"] {
        let port = web.addr.port();
        assert_eq!(web.get(None, "/health", &[("host", &format!("{host}:{port}"))]).await.status, 200, "{host}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn with_auth_none_the_app_needs_no_account() {
    let env = env().await;
    let web = Web::start(&env, AuthMode::None).await;
    assert_eq!(web.get(None, "/", &[]).await.status, 200);
    let answer = web.call(None, "create_video", &[("prompt", "A laptop's own video"), ("beats", "2")]).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(web.call(None, "list_videos", &[]).await.body["total"], 1);
    let who = web.call(None, "whoami", &[]).await;
    assert_eq!((who.body["email"].clone(), who.body["accounts"].clone()), (Value::Null, Value::Bool(false)));
}

async fn account(engine: &Engine, email: &str) -> AccountId {
    let key = engine.sign_up(email, PASSWORD, std::net::Ipv4Addr::LOCALHOST.into()).await.unwrap();
    engine.session_account(&key).await.unwrap().unwrap()
}

async fn make(engine: &Engine, owner: AccountId, prompt: &str) -> Result<reelsmith::domain::VideoId, CoreError> {
    engine.create_video(owner, NewVideo::parse(prompt, 2, false, None, true).unwrap(), Some(1)).await
}

fn limited(quotas: Quotas) -> reelsmith::pipeline::EngineConfig {
    reelsmith::pipeline::EngineConfig { quotas, ..fast_config() }
}

fn refused_by(result: Result<impl std::fmt::Debug, CoreError>) -> LimitReached {
    match result {
        Err(CoreError::Limit(limit)) => limit,
        other => panic!("expected a limit, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn videos_per_hour_and_active_runs_are_limited_per_account() {
    let env = env_with(Providers::instant(), limited(Quotas { videos_per_hour: 3, active_runs: 2, ..Quotas::default() })).await;
    let (e, a, b) = (&env.engine, account(&env.engine, "a@example.org").await, account(&env.engine, "b@example.org").await);
    make(e, a, "one").await.unwrap();
    make(e, a, "two").await.unwrap();
    let before = snapshot(e).await;
    assert_eq!(refused_by(make(e, a, "three").await), LimitReached::ActiveRuns { limit: 2 });
    assert_eq!(snapshot(e).await, before, "a refused video leaves nothing behind");
    make(e, b, "B is not held back by A").await.unwrap();
    drain(e).await;
    make(e, a, "three").await.unwrap();
    assert_eq!(refused_by(make(e, a, "four").await), LimitReached::VideosPerHour { limit: 3 });
}

#[tokio::test(flavor = "multi_thread")]
async fn edits_branches_and_regenerations_are_limited_per_video() {
    let quotas = Quotas { edits_per_video: 1, branches_per_video: 2, regenerations_per_video: 1, ..Quotas::default() };
    let env = env_with(Providers::instant(), limited(quotas)).await;
    let e = &env.engine;
    let owner = account(e, "c@example.org").await;
    let video = make(e, owner, "Limits per video").await.unwrap();
    drain(e).await;
    let state = e.video_state(video).await.unwrap();
    let script = state.branch_named("main").unwrap().head_id.unwrap();
    let reelsmith::domain::Manifest::Script { script: old, .. } = &state.checkpoint(script).unwrap().manifest else { unreachable!() };
    let edit = |title: &str| {
        let mut s = serde_json::to_value(old).unwrap();
        s["title"] = Value::String(title.into());
        s.to_string()
    };
    let edited = e.edit_script(video, None, script, &edit("First edit")).await.unwrap();
    assert_eq!(refused_by(e.edit_script(video, None, edited, &edit("Second edit")).await), LimitReached::Edits { limit: 1 });
    e.create_branch(video, script, "alt").await.unwrap();
    assert_eq!(refused_by(e.create_branch(video, script, "third").await), LimitReached::Branches { limit: 2 });
    e.continue_video(video, Some(edited), None, false).await.unwrap();
    let board = crate::common::step_ok(e).await;
    e.regenerate_beat(video, None, board, 0).await.unwrap();
    drain(e).await;
    let state = e.video_state(video).await.unwrap();
    let head = state.branch_named("main").unwrap().head_id.unwrap();
    assert_eq!(refused_by(e.regenerate_beat(video, None, head, 1).await), LimitReached::Regenerations { limit: 1 });
}

#[tokio::test(flavor = "multi_thread")]
async fn storage_is_limited_per_account_and_the_limit_answers_429() {
    let env = env_with(Providers::instant(), limited(Quotas { storage_bytes: 1, ..Quotas::default() })).await;
    let web = Web::start(&env, AuthMode::Accounts).await;
    let a = web.sign_up("d@example.org").await;
    let (video, _, _) = video_with_storyboard(&web, &env, &a).await;
    let answer = web.call(Some(&a), "create_video", &[("prompt", "One too many"), ("beats", "2")]).await;
    assert_eq!(answer.status, 429, "{}", answer.body);
    assert_eq!(sentence(&answer.body), "Your videos use 1 MB of the 0 MB allowed.");
    let status = web.call(Some(&a), "get_status", &[("video_id", video.as_str())]).await;
    let board = status.body["current_checkpoint"]["id"].as_str().unwrap();
    let next =
        web.call(Some(&a), "continue_video", &[("video_id", video.as_str()), ("checkpoint_id", board), ("force_retry", "false")]).await;
    assert_eq!(next.status, 429, "no more phases either: {}", next.body);
    let b = web.sign_up("e@example.org").await;
    create(&web, &b, "Another account still has room").await;
}

/// Auto-continue queues the next phase as an approve & continue would, so the same storage limit
/// stops it: the video waits at its storyboard, whose continue answers 429.
#[tokio::test(flavor = "multi_thread")]
async fn auto_continue_stops_at_the_storage_limit_as_a_continue_would() {
    let env = env_with(Providers::instant(), limited(Quotas { storage_bytes: 1, ..Quotas::default() })).await;
    let e = &env.engine;
    let owner = account(e, "auto@example.org").await;
    let video = e.create_video(owner, NewVideo::parse("Runs on by itself", 2, true, None, true).unwrap(), Some(1)).await.unwrap();
    drain(e).await;
    let state = e.video_state(video).await.unwrap();
    let phases: Vec<_> = state.checkpoints.iter().map(|c| (c.phase.label(), c.status)).collect();
    use reelsmith::domain::CheckpointStatus::{Approved, Pending};
    assert_eq!(phases, vec![("Script", Approved), ("Storyboard", Pending)], "the storyboard's frames fill the 1 byte allowed");
    assert!(state.runs.iter().all(|r| !r.status.is_active()), "nothing is queued");
    let board = state.checkpoints.iter().find(|c| c.status == Pending).unwrap().id;
    assert!(matches!(refused_by(e.continue_video(video, Some(board), None, false).await), LimitReached::Storage { limit: 1, .. }));
}

#[tokio::test(flavor = "multi_thread")]
async fn one_accounts_fifty_videos_do_not_hold_up_anothers_single_run() {
    let env = env_with(Providers::instant(), limited(Quotas::UNLIMITED)).await;
    let e = &env.engine;
    let (a, b) = (account(e, "busy@example.org").await, account(e, "quiet@example.org").await);
    let mut a_videos = Vec::new();
    for i in 0..50 {
        a_videos.push(make(e, a, &format!("A's video {i}")).await.unwrap());
    }
    // B's video is queued before A's first run's checkpoint, whose commit claims the worker's
    // next run by the fair order: B's. (A run queued just after that commit would also wait for
    // the run it claimed, A's second: in a worker loop that window is the moment between the
    // commit and the next step.)
    let b_video = make(e, b, "B's only video").await.unwrap();
    step(e).await;
    step(e).await;
    let b_state = e.video_state(b_video).await.unwrap();
    assert_eq!(b_state.checkpoints.len(), 1, "B's run was the very next one claimed, after the one unit of A's already under way");
    let a_done = futures::future::join_all(a_videos.iter().map(|v| e.video_state(*v))).await;
    assert_eq!(a_done.iter().filter(|s| s.as_ref().unwrap().checkpoints.len() == 1).count(), 1, "A had one run done meanwhile");
}

/// A claim takes the run it picked and reads that run's video, also on a connection that claimed
/// before (on SQLite the pick waits in a temporary table of the write connection for the
/// statements after the claim): A's run, claimed and handed back, is claimable again, but B's
/// account has its turn, so the next claim is B's run, with B's video's state.
#[tokio::test]
async fn a_claim_takes_the_run_it_picked_and_reads_that_runs_video() {
    let env = env().await;
    let e = &env.engine;
    let (a, b) = (account(e, "first@example.org").await, account(e, "second@example.org").await);
    let a_video = make(e, a, "A's video").await.unwrap();
    let b_video = make(e, b, "B's video").await.unwrap();
    let now = reelsmith::pipeline::now_ms();
    let mut tx = e.store.write().await.unwrap();
    let (a_run, a_lease, a_state) = storage::claim_run_with_state(&mut tx, "w", now, 10_000).await.unwrap().expect("A's run, the oldest");
    assert_eq!((a_run.video_id, a_state.video.id), (a_video, a_video));
    assert!(storage::release_run(&mut tx, &a_lease).await.unwrap());
    tx.commit().await.unwrap();
    let mut tx = e.store.write().await.unwrap();
    let (b_run, b_lease, b_state) = storage::claim_run_with_state(&mut tx, "w", now + 1, 10_000).await.unwrap().expect("B's turn");
    assert_eq!((b_run.video_id, b_state.video.id, b_lease.token), (b_video, b_video, 1));
    let read = storage::load_video_state(&mut tx, b_video).await.unwrap().expect("B's video");
    assert_eq!(format!("{b_state:?}"), format!("{read:?}"), "the state read with the claim is B's video after it");
    tx.commit().await.unwrap();
    let a_after = e.video_state(a_video).await.unwrap();
    assert_eq!((a_after.runs[0].status, a_after.runs[0].lease_token), (reelsmith::domain::RunStatus::Queued, 1), "A's run stays queued");
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_a_video_removes_all_of_it_and_only_it() {
    let env = env().await;
    let web = Web::start(&env, AuthMode::Accounts).await;
    let (a, b) = (web.sign_up("del-a@example.org").await, web.sign_up("del-b@example.org").await);
    let (video, _, artifact) = video_with_storyboard(&web, &env, &a).await;
    let kept = create(&web, &a, "The one that stays").await;
    let running = web.call(Some(&a), "delete_video", &[("video_id", kept.as_str())]).await;
    assert_eq!(running.status, 409, "a video with a queued phase is not deleted: {}", running.body);
    let before = snapshot(&env.engine).await;
    assert_eq!(web.call(Some(&b), "delete_video", &[("video_id", video.as_str())]).await.status, 404, "not B's to delete");
    assert_eq!(web.call(Some(&a), "delete_video", &[("video_id", "not-a-uuid")]).await.status, 422);
    assert_eq!(snapshot(&env.engine).await, before, "refused deletes change nothing");

    let gone = web.call(Some(&a), "delete_video", &[("video_id", video.as_str())]).await;
    assert_eq!(gone.status, 200, "{}", gone.body);
    let rows = snapshot(&env.engine).await;
    assert!(rows.iter().all(|row| !row.contains(&video)), "no row names the deleted video");
    assert!(rows.iter().any(|row| row.contains(&kept)), "the other video is untouched");
    assert_eq!(list(&web, &a).await, vec![kept]);
    assert_eq!(web.call(Some(&a), "get_status", &[("video_id", video.as_str())]).await.status, 404);
    assert_eq!(web.get(Some(&a), &artifact, &[]).await.status, 404, "its artifact URLs are gone too");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_list_reads_the_newest_videos_of_the_account_and_no_others() {
    let env = env_with(Providers::instant(), limited(Quotas::UNLIMITED)).await;
    let e = &env.engine;
    let (a, b) = (account(e, "list-a@example.org").await, account(e, "list-b@example.org").await);
    let mut mine = Vec::new();
    for i in 0..3 {
        mine.push(make(e, a, &format!("A's video {i}")).await.unwrap());
        make(e, b, &format!("B's video {i}")).await.unwrap();
        drain(e).await;
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    let listed = e.video_page(a, 0).await.unwrap();
    assert_eq!((listed.total, listed.page), (3, 0));
    let ids: Vec<_> = listed.videos.iter().map(|v| v.video.id).collect();
    assert_eq!(ids, vec![mine[2], mine[1], mine[0]], "A's videos, newest first, and none of B's");
    for (slice, id) in listed.videos.iter().zip(&ids) {
        let whole = e.video_state(*id).await.unwrap();
        assert_eq!(summary(slice), summary(&whole), "each card says what the video's whole history says");
    }
    assert!(e.video_page(a, 1).await.unwrap().videos.is_empty(), "a page past the end is empty");
}

/// Twelve creates race for an hourly limit with room for three: exactly three pass, on SQLite
/// (one writer at a time) and on PostgreSQL (the account's row is locked while its limits are
/// checked).
#[tokio::test(flavor = "multi_thread")]
async fn racing_creates_never_pass_the_hourly_limit() {
    let env = env_with(Providers::instant(), limited(Quotas { videos_per_hour: 3, ..Quotas::UNLIMITED })).await;
    let owner = account(&env.engine, "racer@example.org").await;
    let racers: Vec<_> = (0..12)
        .map(|i| {
            let engine = env.engine.clone();
            tokio::spawn(async move { make(&engine, owner, &format!("Racer {i}")).await })
        })
        .collect();
    let mut made = 0;
    for racer in racers {
        match racer.await.unwrap() {
            Ok(_) => made += 1,
            Err(CoreError::Limit(LimitReached::VideosPerHour { .. })) => {}
            Err(other) => panic!("a racer failed for another reason: {other:?}"),
        }
    }
    assert_eq!(made, 3);
    assert_eq!(env.engine.video_page(owner, 0).await.unwrap().total, 3);
}

/// A storyboard artist whose first drawing waits for the test to say go.
struct Gated {
    started: Arc<tokio::sync::Notify>,
    go: Arc<tokio::sync::Notify>,
}

impl StoryboardArtist for Gated {
    fn id(&self) -> String {
        "gated/1".into()
    }
    fn draw(&self, call: &UnitCall, script: reelsmith::domain::Script, index: usize, seed: u64, w: u32, h: u32) -> Answer<Vec<u8>> {
        let drawn = Instant.draw(call, script, index, seed, w, h);
        let (started, go) = (self.started.clone(), self.go.clone());
        Box::pin(async move {
            if index == 0 {
                started.notify_one();
                go.notified().await;
            }
            drawn.await
        })
    }
}

/// Fair to one unit's time: another account's run queued while a phase is under way waits for
/// the unit in progress, not the whole phase. The phase hands its run back and resumes from the
/// memo afterwards, remaking nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_phase_yields_to_another_accounts_run_after_one_unit() {
    let (started, go) = (Arc::new(tokio::sync::Notify::new()), Arc::new(tokio::sync::Notify::new()));
    let artist = Gated { started: started.clone(), go: go.clone() };
    let providers = Providers::new(Arc::new(Instant), Arc::new(artist), Arc::new(Instant), Arc::new(Instant));
    let config = reelsmith::pipeline::EngineConfig { unit_concurrency: 1, ..limited(Quotas::UNLIMITED) };
    let env = env_with(providers, config).await;
    let e = &env.engine;
    let (a, b) = (account(e, "busy@example.org").await, account(e, "waiting@example.org").await);
    let long = e.create_video(a, NewVideo::parse("Four beats", 4, true, None, true).unwrap(), Some(1)).await.unwrap();
    assert!(matches!(step(e).await, WorkOutcome::Succeeded { .. }), "A's script");
    let worker = tokio::spawn({
        let e = e.clone();
        async move { step(&e).await }
    });
    started.notified().await;
    let short = make(e, b, "One quick video").await.unwrap();
    go.notify_one();
    assert!(matches!(worker.await.unwrap(), WorkOutcome::Stopped), "A's storyboard yields after its first unit");
    assert!(matches!(step(e).await, WorkOutcome::Succeeded { .. }), "B's script runs next");
    assert_eq!(e.video_state(short).await.unwrap().checkpoints.len(), 1);
    assert!(matches!(step(e).await, WorkOutcome::Succeeded { .. }), "then A's storyboard resumes");
    let state = e.video_state(long).await.unwrap();
    let storyboard = state.runs.iter().find(|r| r.phase == reelsmith::domain::Phase::Storyboard).unwrap();
    assert_eq!(storyboard.status, reelsmith::domain::RunStatus::Succeeded);
    let tries = e.unit_tries(long).await.unwrap();
    let made: Vec<u32> = tries.iter().filter(|t| t.run_id == storyboard.id && t.outcome == TryOutcome::Ok).map(|t| t.unit).collect();
    let mut sorted = made.clone();
    sorted.sort();
    assert_eq!(sorted, (0..8).collect::<Vec<u32>>(), "every still and narration made once: {tries:?}");
    assert!(tries.iter().any(|t| t.run_id == storyboard.id && t.unit == 0 && t.outcome == TryOutcome::Memo), "beat 0 reused on resume");
    let paid: i64 = tries.iter().filter(|t| t.run_id == storyboard.id).map(|t| t.cost_micros).sum();
    assert!(paid > 0 && tries.iter().any(|t| t.run_id == storyboard.id && t.unit == 0 && t.outcome == TryOutcome::Ok && t.cost_micros > 0));
    assert_eq!(storyboard.cost_micros, paid, "the run's cost keeps what it paid before it yielded: {tries:?}");
}

/// The address's words reach the islands' props (`data-props`, read by the browser) only as
/// escaped text: a hostile branch name or `next` adds no element to the page.
#[tokio::test(flavor = "multi_thread")]
async fn what_the_address_says_reaches_the_islands_escaped() {
    let env = env().await;
    let web = Web::start(&env, AuthMode::Accounts).await;
    let a = web.sign_up("islands@example.org").await;
    let id = create(&web, &a, "An island's props").await;
    let hostile = "%22%3E%3Cscript%3Ealert(1)%3C%2Fscript%3E";
    let html = |answer: &crate::web::Answer| answer.body.as_str().expect("an HTML page").to_string();

    let page = web.get(Some(&a), &format!("/videos/{id}"), &[]).await;
    assert_eq!(page.status, 200);
    assert!(html(&page).contains("<leptos-island data-component=\"Live"), "the live indicator is an island");
    assert!(html(&page).contains(&format!("data-props=\"{{&quot;video_id&quot;:&quot;{id}&quot;}}\"")), "its props: the video");
    let branch = web.get(Some(&a), &format!("/videos/{id}?branch={hostile}&tree=%27"), &[]).await;
    assert_eq!(branch.status, 404, "no such branch: {}", html(&branch).split("<main").nth(1).unwrap_or_default());
    let signin = web.get(None, &format!("/signin?next={hostile}"), &[]).await;
    assert_eq!(signin.status, 200);
    for (what, body) in [("status page", html(&branch)), ("sign-in page", html(&signin))] {
        assert!(!body.contains("<script>alert"), "{what}: the address made an element");
    }
    // The status page's islands get their props from the stored video, not from the address;
    // the sign-in form's `next` comes from the address.
    assert!(html(&signin).contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "sign-in page: the props carry the words, escaped");
}

/// Pages render while other routers are being made in the same process (each test's server
/// makes one; so did every `Web::start`). Leptos marks a route list being made with one
/// process-wide flag that keeps every resource from loading while it is up (leptos-rs/leptos#4773),
/// so a page whose resource first polled then never finished: this suite hung twice in
/// `what_the_address_says_reaches_the_islands_escaped`, every thread idle. The route list is now
/// made once per process.
#[tokio::test(flavor = "multi_thread")]
async fn pages_render_while_other_servers_start() {
    let env = env().await;
    let web = Web::start(&env, AuthMode::Accounts).await;
    let a = web.sign_up("routes@example.org").await;
    let id = create(&web, &a, "Routes made meanwhile").await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let starter = {
        let (env_engine, stop) = (env.engine.clone(), stop.clone());
        tokio::spawn(async move {
            let mut started = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let guard = reelsmith::server::guard::Guard {
                    engine: env_engine.clone(),
                    mode: AuthMode::Accounts,
                    scheme: "http".into(),
                    host: "127.0.0.1".into(),
                };
                let options = leptos::prelude::LeptosOptions::builder().output_name("reelsmith").build();
                drop(reelsmith::server::router(guard, options, "test"));
                started += 1;
                tokio::task::yield_now().await;
            }
            started
        })
    };
    for path in [format!("/videos/{id}"), "/".to_string(), "/signin?next=%2F".to_string()].iter().cycle().take(30) {
        let cookie = (!path.starts_with("/signin")).then_some(a.as_str());
        let page = tokio::time::timeout(std::time::Duration::from_secs(10), web.get(cookie, path, &[])).await;
        assert!(page.is_ok_and(|page| page.status == 200), "{path} did not render while other servers started");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(starter.await.unwrap() > 0, "other servers started meanwhile");
}

/// A status page the server cannot read (here a video row no longer reads as its type) answers
/// 500 with a sentence that names no cause: never 200, which would tell a monitor, a cache or a
/// test that the page is fine. The cause goes to the server's log only.
#[tokio::test(flavor = "multi_thread")]
async fn a_status_page_that_cannot_be_read_answers_500_and_names_no_cause() {
    let env = env().await;
    let web = Web::start(&env, AuthMode::Accounts).await;
    let a = web.sign_up("broken@example.org").await;
    let id = create(&web, &a, "A video whose row breaks").await;
    assert_eq!(web.get(Some(&a), &format!("/videos/{id}"), &[]).await.status, 200);
    let mut tx = env.engine.store.write().await.unwrap();
    sqlx::query("UPDATE videos SET fault_plan = '{' WHERE id = $1").bind(&id).execute(&mut *tx).await.unwrap();
    tx.commit().await.unwrap();

    let page = web.get(Some(&a), &format!("/videos/{id}"), &[]).await;
    let body = page.body.as_str().expect("an HTML page").to_string();
    assert_eq!(page.status, 500, "{}", body.split("<main").nth(1).unwrap_or_default());
    assert!(body.contains("class=\"error-text\""), "the page says something went wrong");
    for secret in ["fault_plan", "column", "read as its type"] {
        assert!(!body.contains(secret), "the cause ({secret}) stays in the log");
    }
}
