//! Reliability drills against the real server binary over HTTP: kill mid-phase and restart,
//! 50 concurrent retries, a full disk and a read-only database during a phase, and the HTTP status
//! each kind of error answers with.
//!
//! Each server is started on `127.0.0.1:0`: the system picks a port nobody else holds, the server
//! prints `reelsmith: listening on http://ADDR instance ID` on stdout, and the drill is ready only
//! when `GET /health` at that address names that instance. The drills run in parallel and one
//! restarts its server, so a free-port guess or a bare "something accepts TCP" probe could talk
//! to another drill's server.
use crate::common::Immutable;
use serde_json::Value;
use std::io::BufRead;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

mod multi;

const LISTENING: &str = "reelsmith: listening on http://";

struct Server {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Waits (off the async threads) for the process to end on its own.
    async fn exited(mut self) -> ExitStatus {
        tokio::task::spawn_blocking(move || self.child.wait().expect("wait for the server")).await.unwrap()
    }
}

/// A drill's data directory in the system's temporary one, with the server's log beside it
/// (`<dir>.log`): both removed when the drill passes, both kept, and named, when it fails.
/// Declared before the servers that use it, it outlives them: they are stopped first.
struct Scratch(PathBuf);

fn scratch(tag: &str) -> Scratch {
    let dir = std::env::temp_dir().join(format!("reelsmith-drill-{tag}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    Scratch(dir)
}

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.0.with_extension("log");
            let logs =
                if log.exists() { format!("the server's log: {}", log.display()) } else { "any server's log is inside it".to_string() };
            eprintln!("the drill's data is kept for a look: {} ({logs})", self.0.display());
            return;
        }
        let _ = std::fs::remove_dir_all(&self.0);
        let _ = std::fs::remove_file(self.0.with_extension("log"));
    }
}

/// The last lines of the server's log (its stderr), for failure messages.
fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// `reelsmith: listening on http://127.0.0.1:PORT instance ID` → (address, instance id).
fn parse_listening(line: &str) -> Option<(SocketAddr, String)> {
    let (addr, instance) = line.strip_prefix(LISTENING)?.trim_end().split_once(" instance ")?;
    let instance = instance.trim();
    let hex = instance.len() == 32 && instance.bytes().all(|b| b.is_ascii_hexdigit());
    Some((addr.parse().ok()?, instance.to_string())).filter(|_| hex)
}

/// Starts the server on a port of the system's choosing, learns the port and the instance id
/// from its stdout, and returns once `/health` there answers with that instance.
async fn start(data: &Path) -> Server {
    start_with_lease(data, 1_000).await
}

/// `start` with a lease of `lease_ms`.
async fn start_with_lease(data: &Path, lease_ms: u32) -> Server {
    start_process(data, lease_ms, &[]).await
}

/// `start` with a lease of `lease_ms` and more options.
async fn start_process(data: &Path, lease_ms: u32, more: &[&str]) -> Server {
    let log_path = data.with_extension("log");
    let log = std::fs::OpenOptions::new().create(true).append(true).open(&log_path).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_reelsmith"))
        .args(["--addr", "127.0.0.1:0", "--data-dir", data.to_str().unwrap(), "--fault-injection", "--workers", "2", "--auth", "none"])
        .args(more)
        .env("REELSMITH_LEASE_MS", lease_ms.to_string())
        .env("REELSMITH_BACKOFF_MS", "20")
        .env("REELSMITH_VIDEO_SIZE", "320x180")
        .env("RUST_LOG", "warn")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("start the server");
    let listening = first_listening_line(child.stdout.take().unwrap());
    let mut server = Server { child, addr: SocketAddr::from(([127, 0, 0, 1], 0)), log: log_path };
    let line = server.listening(listening).await;
    let (addr, instance) = parse_listening(&line).unwrap_or_else(|| panic!("an unexpected first line on stdout: {line:?}"));
    server.addr = addr;
    server.wait_ready(&instance).await;
    server
}

/// A thread reads stdout to its end, so the server never blocks on a full pipe; the first
/// "listening" line goes back to us.
fn first_listening_line(stdout: ChildStdout) -> tokio::sync::oneshot::Receiver<String> {
    let (tx, rx) = tokio::sync::oneshot::channel::<String>();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.starts_with(LISTENING)
                && let Some(tx) = tx.take()
            {
                let _ = tx.send(line);
            }
        }
    });
    rx
}

impl Server {
    /// The "listening" line, or a panic that says why the server printed none.
    async fn listening(&mut self, line: tokio::sync::oneshot::Receiver<String>) -> String {
        match tokio::time::timeout(Duration::from_secs(60), line).await {
            Ok(Ok(line)) => line,
            Ok(Err(_)) => {
                // Stdout closed without the line: the process is ending or has ended.
                let status = tokio::time::timeout(Duration::from_secs(5), async {
                    loop {
                        if let Some(s) = self.child.try_wait().unwrap() {
                            return s;
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                })
                .await
                .map_or_else(|_| "still running 5 s after closing its stdout".to_string(), |s| s.to_string());
                panic!(
                    "the server exited ({status}) before printing its address; the end of {}:\n{}",
                    self.log.display(),
                    log_tail(&self.log)
                );
            }
            Err(_) => panic!("the server printed no address within 60 s; the end of {}:\n{}", self.log.display(), log_tail(&self.log)),
        }
    }

    /// Returns once `/health` at the server's address answers with its instance id.
    async fn wait_ready(&mut self, instance: &str) {
        let (addr, expected) = (self.addr, format!("reelsmith {instance}"));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match get(addr, "/health").await {
                Ok((200, body)) if body.trim() == expected => return,
                Ok((200, body)) => panic!("{addr}/health answers {body:?}, not our server ({expected:?})"),
                Ok(other) => assert!(Instant::now() < deadline, "{addr}/health still answers {other:?}"),
                Err(e) => {
                    if let Some(status) = self.child.try_wait().unwrap() {
                        panic!(
                            "the server exited ({status}) before it was ready; the end of {}:\n{}",
                            self.log.display(),
                            log_tail(&self.log)
                        );
                    }
                    assert!(Instant::now() < deadline, "{addr}/health did not answer within 30 s: {e}");
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// `GET` with a real HTTP client: (status, body).
async fn get(addr: SocketAddr, path: &str) -> reqwest::Result<(u16, String)> {
    let response = reqwest::get(format!("http://{addr}{path}")).await?;
    let status = response.status().as_u16();
    Ok((status, response.text().await?))
}

/// A server-function call, posted as a form like the pages' own: (status, JSON body).
async fn call(addr: SocketAddr, name: &str, fields: &[(&str, &str)]) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("http://{addr}/api/{name}"))
        .header("Accept", "application/json")
        .form(fields)
        .send()
        .await
        .expect("a server-function call");
    let status = response.status().as_u16();
    let body = response.text().await.expect("a server-function answer");
    (status, serde_json::from_str(&body).unwrap_or(Value::String(body)))
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
    let server = start(&data).await;
    let video = create(server.addr, "4", r#"[{"phase":3,"beat":2,"action":"crash"}]"#).await;
    let exit = server.exited().await;
    assert!(!exit.success(), "the crash rule aborted the process: {exit:?}");
    // The restarted server gets a port of its own the same way; the video is found by id.
    let server = start(&data).await;
    let addr = server.addr;
    let s = wait_for(addr, &video, "completed", 90).await;
    let runs = s["runs"].as_array().unwrap();
    let clips: Vec<&Value> = runs.iter().filter(|r| r["phase"] == "phase3_clips").collect();
    assert_eq!(clips.len(), 1, "the interrupted run was resumed, not replaced: {runs:?}");
    assert_eq!(clips[0]["calls"], 4, "each clip was made exactly once across both processes");
    assert!(clips[0]["memo_hits"].as_u64().unwrap() >= 1, "finished clips came from the memo");
    assert_eq!(runs.iter().filter(|r| r["phase"] == "phase2_storyboard").count(), 1, "phase 2 was not run again");
    assert!(runs.iter().all(|r| r["status"] != "running" && r["status"] != "queued"), "nothing stuck");
    drop(server);
}

#[tokio::test]
async fn fifty_concurrent_retries_over_http_make_one_run() {
    let data = scratch("fifty");
    let server = start(&data).await;
    let addr = server.addr;
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
}

/// An error answers with its HTTP status (404 not found, 422 invalid, 409 refused), and its body
/// is still the typed error the page shows.
#[tokio::test]
async fn errors_answer_with_their_http_status() {
    let data = scratch("statuses");
    let server = start(&data).await;
    let addr = server.addr;
    let (code, body) = call(addr, "get_status", &[("video_id", "00000000-0000-0000-0000-000000000000"), ("branch", "main")]).await;
    assert_eq!((code, &body["NotFound"]["what"]), (404, &Value::from("video")), "{body}");
    let (code, body) = call(addr, "get_status", &[("video_id", "not-a-uuid"), ("branch", "main")]).await;
    assert_eq!((code, &body["InvalidInput"]["field"]), (422, &Value::from("video_id")), "{body}");
    // Phase 1 stays busy long enough for the first cancel to find it running.
    let video = create(addr, "2", r#"[{"phase":1,"action":"delay","ms":5000}]"#).await;
    let cancel = [("video_id", video.as_str()), ("branch", "main")];
    let (code, body) = call(addr, "cancel_run", &cancel).await;
    assert_eq!(code, 200, "{body}");
    let (code, body) = call(addr, "cancel_run", &cancel).await;
    assert_eq!((code, &body["Refused"]["reason"]), (409, &Value::from("nothing_to_cancel")), "{body}");
    drop(server);
}

/// A small tmpfs mounted for the length of a drill; unmounted when dropped (a failing drill too).
struct Tmpfs(PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Mounts a tmpfs or fails the drill: it needs root with mount rights, which CI has. A drill that
/// cannot set up must not pass.
fn mount_tmpfs(dir: &Path, size: &str) -> Tmpfs {
    std::fs::create_dir_all(dir).unwrap();
    let out = Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs", dir.to_str().unwrap()]).output();
    match out {
        Ok(o) if o.status.success() => Tmpfs(dir.to_path_buf()),
        Ok(o) => panic!(
            "cannot set up the full-disk drill: `mount -t tmpfs` on {} failed ({}): {} — it needs root with mount rights (CI runs as root)",
            dir.display(),
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => {
            panic!("cannot set up the full-disk drill: running `mount` failed: {e} — it needs root with mount rights (CI runs as root)")
        }
    }
}

#[tokio::test]
async fn a_full_disk_fails_the_run_clearly_and_a_retry_succeeds_once_there_is_room() {
    let data = scratch("full");
    let blobs = data.join("blobs");
    let tmpfs = mount_tmpfs(&blobs, "4m");
    let filler = blobs.join("filler");
    let server = start(&data).await;
    let addr = server.addr;
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
    drop(tmpfs);
}

#[tokio::test]
async fn a_read_only_database_fails_the_run_clearly_and_a_retry_succeeds_after() {
    let data = scratch("readonly");
    // The lease outlives the 2.5 s read-only spell, so the worker keeps its run and records the
    // failure once the database takes writes again. (With a shorter lease it stops renewing,
    // hands the run over and the takeover completes it: see tests/trust.rs.)
    let server = start_with_lease(&data, 8_000).await;
    let addr = server.addr;
    let video = create(addr, "3", r#"[{"phase":2,"beat":2,"action":"delay","ms":1500}]"#).await;
    // Phase 2 is under way when the database files turn read-only.
    let deadline = Instant::now() + Duration::from_secs(30);
    while status(addr, &video).await["current_phase"] != "phase2_storyboard" {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let db = data.join("reelsmith.db");
    assert!(db.exists(), "the database is at {}", db.display());
    let read_only = Immutable::set(&[db, data.join("reelsmith.db-wal")]);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    read_only.release();
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
}

/// A binary started where the site's files are missing would serve pages that never hydrate
/// (every button dead): it refuses to start instead, in one line that says what to run.
#[test]
fn the_server_refuses_to_start_without_the_site_files_its_pages_ask_for() {
    let empty = scratch("nosite");
    let output = Command::new(env!("CARGO_BIN_EXE_reelsmith"))
        .args(["--addr", "127.0.0.1:0", "--data-dir", empty.join("data").to_str().unwrap()])
        .current_dir(&empty)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run the server");
    assert!(!output.status.success(), "it must not start");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("site files are missing") && stderr.contains("make build"), "{stderr}");
    assert!(stderr.contains("target/site/pkg/reelsmith.wasm"), "names the missing file: {stderr}");
    assert!(output.stdout.is_empty(), "it never said it was listening");
}

/// `reelsmith bench | head -1`: the reader goes after the first figure. The section whose
/// figure finds the pipe closed finishes and no other starts (the first section's few lines
/// usually fit in the pipe before the reader goes, so that is the second); the benchmark says
/// so, removes its scratch data and exits 0: no panic from a print into a closed pipe, nothing
/// left in the temporary directory.
#[test]
fn the_benchmark_stops_cleanly_when_its_reader_goes() {
    let tmp = scratch("benchpipe");
    let mut child = Command::new(env!("CARGO_BIN_EXE_reelsmith"))
        .args(["bench", "--quick"])
        .env("TMPDIR", &*tmp)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the benchmark");
    let mut first = String::new();
    {
        // The reader takes one line and goes, as `head -1` does.
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let _ = out.read_line(&mut first);
    }
    // Waited for before any assertion, so a failing one leaves no benchmark running.
    let output = child.wait_with_output().expect("the benchmark ends");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(first.starts_with("run_overhead_us: "), "{first}: {stderr}");
    assert!(output.status.success(), "{:?}: {stderr}", output.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
    // `--quick` runs eight sections; whichever found the pipe closed, at least the last is skipped.
    assert!(stderr.contains("the output was closed, so "), "{stderr}");
    let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.is_empty(), "scratch data left behind: {left:?}");
}

/// `--auth none` gives whoever connects every video: on an address others can reach, the server
/// refuses to start, in one line saying why; bad public URLs are refused the same way.
#[test]
fn the_server_refuses_auth_none_on_a_network_address_and_a_bad_public_url() {
    let data = scratch("authnone");
    for (args, says) in [
        (vec!["--addr", "0.0.0.0:0", "--auth", "none"], "--auth none is allowed only on a loopback address"),
        (vec!["--addr", "127.0.0.1:0", "--public-url", "ftp://videos.example.org"], "--public-url must look like"),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_reelsmith"))
            .args(args.iter().copied().chain(["--data-dir", data.to_str().unwrap()]))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("RUST_LOG", "warn")
            .output()
            .expect("run the server");
        assert!(!output.status.success(), "{args:?} must not start");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
        assert!(stderr.contains(says), "{stderr}");
        assert!(output.stdout.is_empty(), "it never said it was listening");
    }
}
