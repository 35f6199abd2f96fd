//! Command-line options and subcommands (SPEC §7); each option also reads an environment variable.
use clap::{ArgAction, Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(name = "reelsmith", version, about = "Prompt to short video, in four checkpointed phases")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub options: Options,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the app (the default).
    Serve,
    /// Measure orchestration, retry, rendering and media speed; prints `name: value unit` lines.
    Bench {
        /// Finish in under a minute.
        #[arg(long)]
        quick: bool,
        /// Run one section only: overhead, retry, render, throughput, media.
        #[arg(long)]
        only: Option<String>,
    },
    /// Remove artifact blobs that nothing references; prints what it freed.
    Gc,
}

#[derive(Clone, Debug, Args)]
pub struct Options {
    /// Address to listen on.
    #[arg(long, env = "REELSMITH_ADDR", global = true)]
    pub addr: Option<SocketAddr>,
    /// Directory for the SQLite database and artifact files.
    #[arg(long, env = "REELSMITH_DATA_DIR", default_value = "./data", global = true)]
    pub data_dir: PathBuf,
    /// sqlite://… (default: <data-dir>/reelsmith.db) or postgres://…
    #[arg(long, env = "DATABASE_URL", global = true)]
    pub database_url: Option<String>,
    /// Accept fault plans on new videos (dev and tests only).
    #[arg(long, env = "REELSMITH_FAULT_INJECTION", action = ArgAction::SetTrue, global = true)]
    pub fault_injection: bool,
    /// Retries allowed from one checkpoint on one branch.
    #[arg(long, env = "REELSMITH_RETRY_LIMIT", default_value_t = 5, global = true)]
    pub retry_limit: u32,
    /// Worker tasks claiming runs (default: number of cores).
    #[arg(long, env = "REELSMITH_WORKERS", global = true)]
    pub workers: Option<usize>,
    /// How long a worker's claim on a run lasts without a heartbeat, in ms.
    #[arg(long, env = "REELSMITH_LEASE_MS", default_value_t = 10_000, hide = true, global = true)]
    pub lease_ms: i64,
    /// First back-off after a transient provider error, in ms.
    #[arg(long, env = "REELSMITH_BACKOFF_MS", default_value_t = 200, hide = true, global = true)]
    pub backoff_ms: u64,
    /// A TOML file choosing remote providers per phase (SPEC §7); without it every phase is local.
    #[arg(long, env = "REELSMITH_PROVIDERS", global = true)]
    pub providers: Option<PathBuf>,
    /// Video size as WIDTHxHEIGHT.
    #[arg(long, env = "REELSMITH_VIDEO_SIZE", default_value = "1280x720", hide = true, global = true)]
    pub video_size: String,
}

impl Options {
    pub fn database_url(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| format!("sqlite://{}/reelsmith.db", self.data_dir.display()))
    }

    pub fn workers(&self) -> usize {
        self.workers.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)).max(1)
    }

    pub fn video_size(&self) -> Result<(u32, u32), String> {
        let bad = || format!("--video-size must look like 1280x720, not \"{}\"", self.video_size);
        let (w, h) = self.video_size.split_once('x').ok_or_else(bad)?;
        let (w, h): (u32, u32) = (w.parse().map_err(|_| bad())?, h.parse().map_err(|_| bad())?);
        if !(16..=3840).contains(&w) || !(16..=2160).contains(&h) || w % 2 != 0 || h % 2 != 0 {
            return Err(format!("--video-size {w}x{h} is out of range (even sizes, 16x16 to 3840x2160)"));
        }
        Ok((w, h))
    }
}
