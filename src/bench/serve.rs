//! The server's memory: `reelsmith serve` (this binary, `--role web --auth none`) started as a
//! child on a data directory holding many finished 3-beat videos, its RSS read from
//! `/proc/<pid>/status` once it is ready and again after the list page and the status page of
//! every video were each fetched once over HTTP. The bench process's own `peak_rss_mb` is not
//! this figure: it includes the harness and the media work.
use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::broadcast;

use super::{BenchResult, Calls, Scratch, Workers, engine, fail, line, new_video};
use crate::server::options::Options;

/// What the server prints on stdout once it listens (see `server::serve`).
const LISTENING: &str = "reelsmith: listening on http://";

/// The server child, killed and waited for however the section ends.
struct Server {
    child: Child,
    log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// An error naming `what` and the end of the server's log.
    fn failed(&mut self, what: impl std::fmt::Display) -> crate::server::StartError {
        let mut text = String::new();
        let _ = std::fs::File::open(&self.log).and_then(|mut f| f.read_to_string(&mut text));
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(10)..].join("\n");
        let exited = match self.child.try_wait() {
            Ok(Some(status)) => format!(" (the server exited: {status})"),
            _ => String::new(),
        };
        fail(format!("{what}{exited}; the end of the server's log:\n{tail}"))
    }

    /// (VmRSS, VmHWM) of the server process, in MB.
    fn rss_mb(&mut self) -> BenchResult<(f64, f64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).map_err(|e| self.failed(e))?;
        let kb = |key: &str| {
            status.lines().find(|l| l.starts_with(key)).and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok()).map(|kb| kb / 1024.0)
        };
        match (kb("VmRSS:"), kb("VmHWM:")) {
            (Some(rss), Some(hwm)) => Ok((rss, hwm)),
            _ => Err(self.failed("no VmRSS/VmHWM in the server's /proc status")),
        }
    }
}

/// The site files next to the binary (`target/site` for `target/release/reelsmith`), when they
/// are there; else whatever the environment or the current directory gives the server.
fn site_root(exe: &Path) -> Option<PathBuf> {
    if std::env::var_os("LEPTOS_SITE_ROOT").is_some() {
        return None;
    }
    let site = exe.parent()?.parent()?.join("site");
    site.join("pkg").join(format!("{}.js", crate::server::SITE_NAME)).is_file().then_some(site)
}

/// Starts `reelsmith serve` on `options`' data directory and database, on a port of the system's
/// choosing; returns once `/health` answers with the instance the server printed.
async fn start(options: &Options, client: &reqwest::Client) -> BenchResult<(Server, String)> {
    let exe = std::env::current_exe().map_err(fail)?;
    let log = options.data_dir.join("serve.log");
    let stderr = std::fs::File::create(&log).map_err(fail)?;
    let mut args = vec!["serve".to_string(), "--data-dir".into(), options.data_dir.display().to_string()];
    args.extend(["--database-url".into(), options.database_url(), "--auth".into(), "none".into()]);
    // Pages only: no worker loops (every video is finished), nothing in the background.
    args.extend(["--role".into(), "web".into(), "--addr".into(), "127.0.0.1:0".into()]);
    if let Some(blobs) = &options.blob_url {
        args.extend(["--blob-url".into(), blobs.clone()]);
    }
    let mut command = Command::new(&exe);
    command.args(&args).env_remove("REELSMITH_PUBLIC_URL").stdin(Stdio::null()).stdout(Stdio::piped()).stderr(stderr);
    if let Some(site) = site_root(&exe) {
        command.env("LEPTOS_SITE_ROOT", site);
    }
    let mut server = Server { child: command.spawn().map_err(fail)?, log };
    // A thread reads stdout to its end, so the server never blocks on a full pipe; the first
    // "listening" line comes back here.
    let stdout = server.child.stdout.take().ok_or_else(|| fail("no stdout"))?;
    let (tx, rx) = tokio::sync::oneshot::channel::<String>();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for l in std::io::BufReader::new(stdout).lines() {
            let Ok(l) = l else { break };
            if l.starts_with(LISTENING)
                && let Some(tx) = tx.take()
            {
                let _ = tx.send(l);
            }
        }
    });
    let listening = match tokio::time::timeout(Duration::from_secs(60), rx).await {
        Ok(Ok(l)) => l,
        Ok(Err(_)) => return Err(server.failed("the server closed its stdout without printing its address")),
        Err(_) => return Err(server.failed("the server printed no address within 60 s")),
    };
    let parsed = listening.strip_prefix(LISTENING).and_then(|rest| rest.trim_end().split_once(" instance "));
    let Some((addr, instance)) = parsed else {
        return Err(server.failed(format!("an unexpected first line on stdout: {listening:?}")));
    };
    let base = format!("http://{addr}");
    let expected = format!("reelsmith {}", instance.trim());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let answer = match client.get(format!("{base}/health")).send().await {
            Ok(r) => r.text().await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match answer {
            Ok(body) if body.trim() == expected => return Ok((server, base)),
            Ok(body) => return Err(server.failed(format!("{base}/health answers {body:?}, not our server ({expected:?})"))),
            Err(e) if tokio::time::Instant::now() >= deadline => return Err(server.failed(format!("{base}/health: {e}"))),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// GETs `path`: the page, or an error unless it answered 200 and contains one of `expect`.
async fn page(client: &reqwest::Client, server: &mut Server, base: &str, path: &str, expect: &[String]) -> BenchResult<()> {
    let response = client.get(format!("{base}{path}")).send().await.map_err(|e| server.failed(format!("GET {path}: {e}")))?;
    let status = response.status();
    let body = response.text().await.map_err(|e| server.failed(format!("GET {path}: {e}")))?;
    if status != reqwest::StatusCode::OK {
        return Err(server.failed(format!("GET {path} answered {status}")));
    }
    if !expect.iter().any(|e| body.contains(e.as_str())) {
        return Err(server.failed(format!("GET {path} answered 200 without naming the video ({} bytes)", body.len())));
    }
    Ok(())
}

/// Makes `videos` finished 3-beat videos (zero-work providers, the server's worker loops) in a
/// fresh data directory and closes the engine; their ids.
async fn finished_videos(options: &Options, scratch: &Scratch, videos: usize) -> BenchResult<Vec<String>> {
    let calls = Calls::default();
    let engine = engine(options, scratch, calls.providers(), false).await?;
    let mut events = engine.events.subscribe();
    let workers = Workers::start(&engine, options.workers(), "serve");
    let mut ids = Vec::with_capacity(videos);
    for _ in 0..videos {
        ids.push(new_video(&engine, 3, true, None).await?.to_string());
    }
    let count = || async {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM checkpoints WHERE phase = 4").fetch_one(engine.store.pool()).await.map_err(fail)
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
    // Reads the database only once every render has begun.
    while calls.renders.load(Ordering::Relaxed) < videos || (count().await? as usize) < videos {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Err(_) => return Err(fail(format!("{videos} videos did not finish in 10 minutes"))),
            Ok(Ok(_)) | Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
            Ok(Err(broadcast::error::RecvError::Closed)) => return Err(fail("the engine's events stopped")),
        }
    }
    workers.stop().await;
    let failed: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM runs WHERE status <> 'succeeded'").fetch_one(engine.store.pool()).await.map_err(fail)?;
    if failed > 0 {
        return Err(fail(format!("{failed} runs did not succeed")));
    }
    // The server gets the database to itself.
    engine.store.close().await;
    drop(engine);
    Ok(ids)
}

pub(super) async fn run(options: &Options, quick: bool) -> BenchResult<()> {
    let videos = if quick { 200 } else { 1_000 };
    let scratch = Scratch::new("serve");
    let ids = finished_videos(options, &scratch, videos).await?;
    // The data directory and database the videos were written to (as `engine()` chose them).
    let served = Options { data_dir: scratch.0.clone(), database_url: None, ..options.clone() };
    let client = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().map_err(fail)?;
    let (mut server, base) = start(&served, &client).await?;
    let (start_rss, _) = server.rss_mb()?;
    page(&client, &mut server, &base, "/", &ids).await?;
    let mut pages = 1;
    for id in &ids {
        page(&client, &mut server, &base, &format!("/videos/{id}"), std::slice::from_ref(id)).await?;
        pages += 1;
    }
    let (rss, hwm) = server.rss_mb()?;
    drop(server);
    line("serve_videos", ids.len(), "videos");
    line("serve_rss_start_mb", format!("{start_rss:.1}"), "MB");
    line("serve_rss_mb", format!("{rss:.1}"), "MB");
    line("serve_peak_rss_mb", format!("{hwm:.1}"), "MB");
    line("serve_pages_rendered", pages, "pages");
    Ok(())
}
