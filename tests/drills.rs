//! Reliability drills against the real server binary over HTTP: kill mid-phase and restart,
//! 50 concurrent retries, a full disk and a read-only database during a phase.
use serde_json::Value;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Server {
    child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("reelsmith-drill-{tag}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn start(data: &Path, addr: SocketAddr) -> Server {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(data.with_extension("log")).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_reelsmith"))
        .args(["--addr", &addr.to_string(), "--data-dir", data.to_str().unwrap(), "--fault-injection", "--workers", "2"])
        .env("REELSMITH_LEASE_MS", "1000")
        .env("REELSMITH_BACKOFF_MS", "20")
        .env("REELSMITH_VIDEO_SIZE", "320x180")
        .env("RUST_LOG", "warn")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start the server");
    let server = Server { child };
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(addr).await.is_err() {
        assert!(Instant::now() < deadline, "the server did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server
}

fn form(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| {
            let enc: String = v
                .bytes()
                .map(|b| if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
                .collect();
            format!("{k}={enc}")
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// A server-function call over plain HTTP/1.1: (status, JSON body).
async fn call(addr: SocketAddr, name: &str, fields: &[(&str, &str)]) -> (u16, Value) {
    let body = form(fields);
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let request = format!(
        "POST /api/{name} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\nAccept: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, mut payload) = text.split_once("\r\n\r\n").expect("an HTTP response");
    let status: u16 = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut decoded = String::new();
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        while let Some((size, rest)) = payload.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if n == 0 {
                break;
            }
            decoded.push_str(&rest[..n]);
            payload = &rest[n + 2..];
        }
    } else {
        decoded = payload.to_string();
    }
    (status, serde_json::from_str(&decoded).unwrap_or(Value::String(decoded)))
}

async fn create(addr: SocketAddr, beats: &str, plan: &str) -> String {
    let (status, id) =
        call(addr, "create_video", &[("prompt", "A drill in the rain"), ("beats", beats), ("auto_continue", "on"), ("fault_plan", plan)])
            .await;
    assert_eq!(status, 200, "{id}");
    id.as_str().unwrap().to_string()
}

async fn status(addr: SocketAddr, video: &str) -> Value {
    let (code, s) = call(addr, "get_status", &[("video_id", video), ("branch", "main")]).await;
    assert_eq!(code, 200, "{s}");
    s
}

async fn wait_for(addr: SocketAddr, video: &str, word: &str, secs: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let s = status(addr, video).await;
        if s["status"] == word {
            return s;
        }
        assert!(Instant::now() < deadline, "still {} after {secs} s, wanted {word}: {}", s["status"], s["error"]);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn head_of(s: &Value) -> String {
    s["active_branches"][0]["latest_checkpoint_id"].as_str().unwrap().to_string()
}

async fn retry(addr: SocketAddr, video: &str, checkpoint: &str) -> Value {
    let (code, r) =
        call(addr, "continue_video", &[("video_id", video), ("checkpoint_id", checkpoint), ("branch", "main"), ("force_retry", "true")])
            .await;
    assert_eq!(code, 200, "{r}");
    r
}

fn run_id(result: &Value) -> String {
    let inner = result.get("Started").or_else(|| result.get("AlreadyRunning")).unwrap_or_else(|| panic!("{result}"));
    inner["run_id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn killed_mid_phase_the_video_completes_after_restart_without_redoing_finished_units() {
    let data = scratch("crash");
    let addr = free_addr();
    let mut server = start(&data, addr).await;
    let video = create(addr, "4", r#"[{"phase":3,"beat":2,"action":"crash"}]"#).await;
    let exit = tokio::task::spawn_blocking(move || server.child.wait().unwrap()).await.unwrap();
    assert!(!exit.success(), "the crash rule aborted the process: {exit:?}");
    let server = start(&data, addr).await;
    let s = wait_for(addr, &video, "completed", 90).await;
    let runs = s["runs"].as_array().unwrap();
    let clips: Vec<&Value> = runs.iter().filter(|r| r["phase"] == "phase3_clips").collect();
    assert_eq!(clips.len(), 1, "the interrupted run was resumed, not replaced: {runs:?}");
    assert_eq!(clips[0]["calls"], 4, "each clip was made exactly once across both processes");
    assert!(clips[0]["memo_hits"].as_u64().unwrap() >= 1, "finished clips came from the memo");
    assert_eq!(runs.iter().filter(|r| r["phase"] == "phase2_storyboard").count(), 1, "phase 2 was not run again");
    assert!(runs.iter().all(|r| r["status"] != "running" && r["status"] != "queued"), "nothing stuck");
    drop(server);
    let _ = std::fs::remove_dir_all(&data);
}

#[tokio::test]
async fn fifty_concurrent_retries_over_http_make_one_run() {
    let data = scratch("fifty");
    let addr = free_addr();
    let server = start(&data, addr).await;
    // The retry stays busy long enough (beat 2 is slow) for all 50 calls to meet it running.
    let plan = r#"[{"phase":2,"beat":0,"action":"fail","times":1},{"phase":2,"beat":2,"action":"delay","ms":3000}]"#;
    let video = create(addr, "3", plan).await;
    let s = wait_for(addr, &video, "failed", 60).await;
    let head = head_of(&s);
    let calls = (0..50).map(|_| {
        let (video, head) = (video.clone(), head.clone());
        tokio::spawn(async move { run_id(&retry(addr, &video, &head).await) })
    });
    let ids: std::collections::HashSet<String> = futures::future::join_all(calls).await.into_iter().map(Result::unwrap).collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    let s = wait_for(addr, &video, "completed", 60).await;
    let retries = s["runs"].as_array().unwrap().iter().filter(|r| r["kind"] == "retry").count();
    assert_eq!(retries, 1);
    drop(server);
    let _ = std::fs::remove_dir_all(&data);
}

fn mount_tmpfs(dir: &Path, size: &str) -> bool {
    std::fs::create_dir_all(dir).unwrap();
    Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs", dir.to_str().unwrap()])
        .status()
        .is_ok_and(|s| s.success())
}

fn umount(dir: &Path) {
    let _ = Command::new("umount").arg(dir).status();
}

#[tokio::test]
async fn a_full_disk_fails_the_run_clearly_and_a_retry_succeeds_once_there_is_room() {
    let data = scratch("full");
    let blobs = data.join("blobs");
    if !mount_tmpfs(&blobs, "4m") {
        eprintln!("SKIPPED: mounting a small tmpfs needs root with mount rights");
        return;
    }
    let filler = blobs.join("filler");
    let addr = free_addr();
    let server = start(&data, addr).await;
    // Fill the blob store's disk to the last byte.
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0u8; 64 * 1024];
        while f.write_all(&chunk).is_ok() {}
        let byte = [0u8; 1];
        while f.write_all(&byte).is_ok() {}
    }
    let video = create(addr, "3", "").await;
    let s = wait_for(addr, &video, "failed", 60).await;
    let error = s["error"]["message"].as_str().unwrap().to_string();
    assert!(error.contains("No space left on device"), "the error names the cause: {error}");
    assert_eq!(s["error"]["phase"], "phase2_storyboard");
    std::fs::remove_file(&filler).unwrap();
    retry(addr, &video, &head_of(&s)).await;
    wait_for(addr, &video, "completed", 60).await;
    drop(server);
    umount(&blobs);
    let _ = std::fs::remove_dir_all(&data);
}

fn immutable(files: &[PathBuf], on: bool) -> bool {
    files
        .iter()
        .filter(|f| f.exists())
        .all(|f| Command::new("chattr").arg(if on { "+i" } else { "-i" }).arg(f).status().is_ok_and(|s| s.success()))
}

#[tokio::test]
async fn a_read_only_database_fails_the_run_clearly_and_a_retry_succeeds_after() {
    let data = scratch("readonly");
    let addr = free_addr();
    let server = start(&data, addr).await;
    let video = create(addr, "3", r#"[{"phase":2,"beat":2,"action":"delay","ms":1500}]"#).await;
    // Phase 2 is under way when the database files turn read-only (immutable: even root cannot
    // write them, through already-open descriptors too).
    let deadline = Instant::now() + Duration::from_secs(30);
    while status(addr, &video).await["current_phase"] != "phase2_storyboard" {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let files = [data.join("reelsmith.db"), data.join("reelsmith.db-wal")];
    if !immutable(&files, true) {
        immutable(&files, false);
        eprintln!("SKIPPED: chattr +i is not supported on this file system");
        return;
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(immutable(&files, false));
    let s = wait_for(addr, &video, "failed", 60).await;
    let error = s["error"]["message"].as_str().unwrap().to_lowercase();
    assert!(
        error.contains("disk i/o error") || error.contains("readonly") || error.contains("read-only") || error.contains("not permitted"),
        "the error names the cause: {error}"
    );
    retry(addr, &video, &head_of(&s)).await;
    let s = wait_for(addr, &video, "completed", 60).await;
    assert!(s["runs"].as_array().unwrap().iter().all(|r| r["status"] != "running"));
    drop(server);
    let _ = std::fs::remove_dir_all(&data);
}
