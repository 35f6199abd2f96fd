//! The scale-out drill: one PostgreSQL database, one S3-compatible server (moto, started by
//! `make test-scaleout`), two web processes and two worker processes of the real binary. Twenty
//! videos, created and retried through both web processes, with injected failures; one worker is
//! killed with SIGKILL mid-phase. Every video completes, no unit is made twice, every artifact is
//! stored once under its hash, and every page's socket saw every phase within a second.
use futures::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use super::{Server, call, create, head_of, retry, scratch, start_process, status};
use reelsmith::pipeline::blobs::BlobStore;

const VIDEOS: usize = 20;

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

/// The drill's prerequisites, or a panic naming the missing one (never a silent pass).
fn required(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run this drill with `make test-scaleout`"))
}

/// A page's live channel: the arrival time (ms) of every new counter the server sent.
fn watch(addr: SocketAddr, video: String) -> tokio::task::JoinHandle<Vec<i64>> {
    tokio::spawn(async move {
        let mut request = format!("ws://{addr}/api/watch_video").into_client_request().unwrap();
        request.headers_mut().insert("Origin", format!("http://{addr}").parse().unwrap());
        let (mut socket, _) = tokio_tungstenite::connect_async(request).await.expect("open the live channel");
        // server_fn's framing: a tag byte (0: Ok) before each JSON message, both ways.
        let hello = [&[0u8][..], serde_json::json!({ "video_id": video }).to_string().as_bytes()].concat();
        socket.send(Message::binary(hello)).await.unwrap();
        let (mut arrivals, mut last) = (Vec::new(), -1);
        while let Some(Ok(message)) = socket.next().await {
            let Message::Binary(bytes) = message else { continue };
            let Some(json) = bytes.strip_prefix(&[0u8]) else { panic!("live channel of {video}: an error {bytes:?}") };
            // Only a higher counter is news (pings repeat the last one).
            let changes = serde_json::from_slice::<serde_json::Value>(json).ok().and_then(|v| v["changes"].as_i64()).unwrap_or(-1);
            if changes > last {
                (last, arrivals) = (changes, [arrivals, vec![now_ms()]].concat());
            }
        }
        arrivals
    })
}

/// The plan for video `i`: a slow clip on video 0 (the one whose worker is killed), one failing
/// storyboard image or clip on every other video.
fn plan(i: usize) -> &'static str {
    match i % 4 {
        _ if i == 0 => r#"[{"phase":3,"beat":2,"action":"delay","ms":4000}]"#,
        1 => r#"[{"phase":2,"beat":0,"action":"fail","times":1}]"#,
        3 => r#"[{"phase":3,"beat":1,"action":"fail","times":1}]"#,
        _ => "",
    }
}

async fn db(url: &str) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    sqlx::any::AnyPoolOptions::new().max_connections(2).connect(url).await.expect("connect to the drill's database")
}

/// Kills (SIGKILL) the worker process holding video 0's clips run once it is mid-phase.
async fn kill_the_worker_of(pool: &sqlx::AnyPool, video: &str, workers: &mut [Server]) -> usize {
    let deadline = Instant::now() + Duration::from_secs(120);
    let owner = loop {
        let q = "SELECT lease_owner FROM runs WHERE video_id = $1 AND phase = 3 AND status = 'running' AND units_done >= 1";
        if let Ok(Some(owner)) = sqlx::query_scalar::<_, Option<String>>(q).bind(video).fetch_optional(pool).await.map(Option::flatten) {
            break owner;
        }
        assert!(Instant::now() < deadline, "video 0 never reached its clips");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let pid: u32 = owner.rsplit('-').nth(2).and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("owner {owner}"));
    let i = workers.iter().position(|w| w.child.id() == pid).unwrap_or_else(|| panic!("no worker process has pid {pid} ({owner})"));
    workers[i].child.kill().unwrap();
    workers[i].child.wait().unwrap();
    i
}

/// Retries every failed video through the other web process until all are complete.
async fn finish_all(webs: [SocketAddr; 2], videos: &[String]) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let mut done = Vec::new();
        for (i, video) in videos.iter().enumerate() {
            let s = status(webs[i % 2], video).await;
            match s["status"].as_str() {
                Some("failed") => drop(retry(webs[(i + 1) % 2], video, &head_of(&s)).await),
                Some("completed") => done.push(s),
                _ => {}
            }
        }
        if done.len() == videos.len() {
            return done;
        }
        assert!(Instant::now() < deadline, "{} of {} videos completed in 240 s", done.len(), videos.len());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// For every phase a worker finished after the page opened its channel: how long until the
/// page's channel said so, in ms.
/// Each phase's time from its checkpoint to the first new counter on its page (sorted), and a
/// line for each that took a second or more (which video and phase, when, and what arrived).
async fn live_latencies(pool: &sqlx::AnyPool, videos: &[String], seen: &[(i64, Vec<i64>)]) -> (Vec<i64>, Vec<String>) {
    let (mut latencies, mut slow) = (Vec::new(), Vec::new());
    for (video, (opened, arrivals)) in videos.iter().zip(seen) {
        let q = "SELECT created_at, phase FROM checkpoints WHERE video_id = $1 ORDER BY created_at";
        let made: Vec<(i64, i64)> = sqlx::query_as(q).bind(video).fetch_all(pool).await.unwrap();
        for &(at, phase) in made.iter().filter(|(at, _)| at > opened) {
            let first = arrivals.iter().find(|&&a| a >= at);
            let first =
                first.unwrap_or_else(|| panic!("video {video}: no live update after {at} (opened {opened}, {arrivals:?}, {made:?})"));
            if first - at >= 1_000 {
                slow.push(format!("video {video} phase {phase}: checkpoint made at {at}, news at {first}; arrivals {arrivals:?}"));
            }
            latencies.push(first - at);
        }
    }
    latencies.sort_unstable();
    (latencies, slow)
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// The sessions opened to the drill's database so far (PostgreSQL counts one when a session
/// starts and reports it at the latest when it ends, so this may undercount the open ones), at
/// most what the processes' pools keep: 4 processes, each a pool of `POOL_CONNECTIONS` and a LISTEN connection
/// (with a reconnect each to spare), and the harness's pool. A pool that closed its connections
/// instead of reusing them opened over a thousand here.
async fn sessions_opened(pool: &sqlx::AnyPool) -> i64 {
    let q = "SELECT sessions FROM pg_stat_database WHERE datname = current_database()";
    let sessions: i64 = sqlx::query_scalar(q).fetch_one(pool).await.unwrap();
    let most = 4 * (i64::from(reelsmith::server::POOL_CONNECTIONS) + 1 + 2) + 2;
    assert!(sessions <= most, "{sessions} sessions opened to the database, at most {most} expected: connections are not being reused");
    sessions
}

/// No unit of any phase of any video was made (successfully) twice, across all processes.
async fn assert_no_unit_made_twice(pool: &sqlx::AnyPool) {
    let q = "SELECT r.video_id || ' phase ' || CAST(r.phase AS TEXT) || ' unit ' || CAST(t.unit AS TEXT) FROM unit_tries t \
             JOIN runs r ON r.id = t.run_id WHERE t.outcome = 'ok' GROUP BY r.video_id, r.phase, t.unit HAVING COUNT(*) > 1";
    let twice: Vec<String> = sqlx::query_scalar(q).fetch_all(pool).await.unwrap();
    assert!(twice.is_empty(), "made twice: {twice:?}");
}

/// Every object in the bucket's prefix is the bytes its name's hash says, so no artifact exists
/// twice; every checkpoint's blob is there.
async fn assert_artifacts_stored_once(pool: &sqlx::AnyPool, blob_url: &str) -> usize {
    let blobs = BlobStore::open(Some(blob_url), std::path::Path::new("/nonexistent")).await.unwrap();
    let listed = blobs.list().await.unwrap();
    for (sha, _) in &listed {
        blobs.read_hash(sha).await.unwrap_or_else(|e| panic!("object {sha}: {e}"));
    }
    let referenced: Vec<String> = sqlx::query_scalar("SELECT sha256 FROM blobs WHERE content IS NULL").fetch_all(pool).await.unwrap();
    let names: std::collections::HashSet<&String> = listed.iter().map(|(sha, _)| sha).collect();
    assert!(referenced.iter().all(|sha| names.contains(sha)), "every recorded blob is in the bucket");
    // The small ones are kept in their rows instead: their bytes are what their hash says.
    let rows: Vec<(String, Vec<u8>)> =
        sqlx::query_as("SELECT sha256, content FROM blobs WHERE content IS NOT NULL").fetch_all(pool).await.unwrap();
    assert!(
        rows.iter().all(|(sha, bytes)| *sha == reelsmith::pipeline::blobs::hash(bytes) && !names.contains(sha)),
        "rows hold their bytes"
    );
    assert_eq!(names.len(), listed.len());
    listed.len()
}

/// The final MP4 through web B, first 100 bytes by Range, equals the stored object's.
async fn assert_range_through(web: SocketAddr, video: &str, blob_url: &str, pool: &sqlx::AnyPool) {
    let q = "SELECT manifest FROM checkpoints WHERE video_id = $1 AND phase = 4";
    let manifest: String = sqlx::query_scalar(q).bind(video).fetch_one(pool).await.unwrap();
    let manifest: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    let sha = manifest["video"]["sha256"].as_str().unwrap_or_else(|| panic!("{manifest}"));
    let url = format!("http://{web}/artifacts/videos/{video}/{}/{sha}.mp4", &sha[..2]);
    let response = reqwest::Client::new().get(url).header("Range", "bytes=0-99").send().await.unwrap();
    assert_eq!(response.status().as_u16(), 206);
    let part = response.bytes().await.unwrap();
    let blobs = BlobStore::open(Some(blob_url), std::path::Path::new("/nonexistent")).await.unwrap();
    assert_eq!(&part[..], &blobs.read_hash(sha).await.unwrap()[..100]);
}

#[tokio::test]
#[ignore = "needs PostgreSQL and an S3-compatible server: make test-scaleout"]
async fn two_web_and_two_worker_processes_share_postgres_and_s3() {
    let started = Instant::now();
    let (admin, bucket) = (required("REELSMITH_TEST_DATABASE_URL"), required("REELSMITH_TEST_BLOB_URL"));
    assert!(admin.starts_with("postgres") && bucket.starts_with("s3://"), "PostgreSQL and S3 are what this drill is about");
    let data = scratch("scaleout");
    let database = crate::common::fresh_url(&data).await;
    let blob_url = format!("{bucket}/drill-{}", uuid::Uuid::new_v4().simple());
    let shared = ["--database-url", database.as_str(), "--blob-url", blob_url.as_str()];
    let start = |name: &'static str, role: &'static str| {
        let (dir, args) = (data.join(name), [&shared[..], &["--role", role]].concat());
        async move { start_process(&dir, 1_000, &args).await }
    };
    let webs = [start("web-a", "web").await, start("web-b", "web").await];
    let mut workers = vec![start("worker-1", "worker").await, start("worker-2", "worker").await];
    let addrs = [webs[0].addr, webs[1].addr];
    let (code, body) = call(workers[0].addr, "get_status", &[("video_id", "x"), ("branch", "main")]).await;
    assert_eq!(code, 404, "a worker process serves no pages: {body}");
    let pool = db(&database).await;

    let mut videos = Vec::new();
    let mut sockets = Vec::new();
    for i in 0..VIDEOS {
        let video = create(addrs[i % 2], "3", plan(i)).await;
        sockets.push((now_ms(), watch(addrs[i % 2], video.clone())));
        videos.push(video);
    }
    let killed = kill_the_worker_of(&pool, &videos[0], &mut workers).await;
    let done = finish_all(addrs, &videos).await;

    let clips: Vec<&serde_json::Value> = done[0]["runs"].as_array().unwrap().iter().filter(|r| r["phase"] == "phase3_clips").collect();
    assert_eq!(clips.len(), 1, "the killed worker's run was taken over, not replaced: {clips:?}");
    assert_eq!(clips[0]["calls"], 3, "each clip of the taken-over run was made once");
    assert_no_unit_made_twice(&pool).await;
    let objects = assert_artifacts_stored_once(&pool, &blob_url).await;
    assert_range_through(addrs[1], &videos[2], &blob_url, &pool).await;
    let sessions = sessions_opened(&pool).await;

    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(webs);
    let mut seen = Vec::new();
    for (opened, socket) in sockets {
        seen.push((opened, socket.await.unwrap()));
    }
    let (latencies, slow) = live_latencies(&pool, &videos, &seen).await;
    let worst = *latencies.last().unwrap();
    assert!(worst < 1_000, "every page saw every phase within a second; the slowest took {worst} ms:\n{}", slow.join("\n"));
    println!(
        "scaleout_drill: {VIDEOS} videos, 2 web + 2 worker processes (worker {} killed), {objects} objects, {sessions} database sessions, {:.1} s",
        killed + 1,
        started.elapsed().as_secs_f64()
    );
    println!(
        "live_update_ms: p50 {} p99 {} max {worst} over {} phases",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.len()
    );
    drop(workers);
}
