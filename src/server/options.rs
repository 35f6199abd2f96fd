//! Command-line options and subcommands (SPEC §7); each option also reads an environment variable.
use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};
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
        /// Run one section only: overhead, retry, render, throughput, scale, processes, serve, media.
        #[arg(long)]
        only: Option<String>,
    },
    /// Worker loops with zero-work providers, for `bench`'s processes section.
    #[command(hide = true)]
    BenchWorker,
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
    /// Who may use the server: `accounts` (sign-up and sign-in; each person sees only their own
    /// videos) or `none` (a single person's app; loopback addresses only).
    #[arg(long, env = "REELSMITH_AUTH", value_enum, default_value_t = AuthMode::Accounts, global = true)]
    pub auth: AuthMode,
    /// The URL people use to reach the server (default http://<addr>); its host (and loopback
    /// names) are the only hosts answered, and https makes cookies Secure.
    #[arg(long, env = "REELSMITH_PUBLIC_URL", global = true)]
    pub public_url: Option<String>,
    #[command(flatten)]
    pub limits: LimitOptions,
    /// Where artifacts live: file:///path (default <data-dir>/blobs) or s3://bucket/prefix, with the
    /// endpoint, region and credentials from the usual AWS_* environment variables.
    #[arg(long, env = "REELSMITH_BLOB_URL", global = true)]
    pub blob_url: Option<String>,
    /// What this process does: `web` (pages and server functions), `worker` (runs phases; serves
    /// only /health) or `all`.
    #[arg(long, env = "REELSMITH_ROLE", value_enum, default_value_t = Role::All, global = true)]
    pub role: Role,
    /// Video size as WIDTHxHEIGHT.
    #[arg(long, env = "REELSMITH_VIDEO_SIZE", default_value = "1280x720", hide = true, global = true)]
    pub video_size: String,
}

impl Options {
    pub fn database_url(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| format!("sqlite://{}/reelsmith.db", self.data_dir.display()))
    }

    /// Worker tasks in this process: none for `--role web`.
    pub fn workers(&self) -> usize {
        if self.role == Role::Web {
            return 0;
        }
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

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Role {
    Web,
    Worker,
    All,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum AuthMode {
    Accounts,
    None,
}

/// What one account may use (SPEC §8); each refusal says which limit and what to do.
#[derive(Clone, Debug, Args)]
pub struct LimitOptions {
    /// New videos per account per hour.
    #[arg(long, env = "REELSMITH_MAX_VIDEOS_PER_HOUR", default_value_t = 30, global = true)]
    pub max_videos_per_hour: u32,
    /// Queued or running phases per account.
    #[arg(long, env = "REELSMITH_MAX_ACTIVE_RUNS", default_value_t = 10, global = true)]
    pub max_active_runs: u32,
    /// Script edits per video.
    #[arg(long, env = "REELSMITH_MAX_EDITS", default_value_t = 50, global = true)]
    pub max_edits: u32,
    /// Branches per video.
    #[arg(long, env = "REELSMITH_MAX_BRANCHES", default_value_t = 20, global = true)]
    pub max_branches: u32,
    /// Regenerated beats per video.
    #[arg(long, env = "REELSMITH_MAX_REGENERATIONS", default_value_t = 100, global = true)]
    pub max_regenerations: u32,
    /// Artifact storage per account, in MB.
    #[arg(long, env = "REELSMITH_MAX_STORAGE_MB", default_value_t = 2048, global = true)]
    pub max_storage_mb: u64,
    /// New accounts per client address per hour.
    #[arg(long, env = "REELSMITH_MAX_SIGN_UPS_PER_HOUR", default_value_t = 10, global = true)]
    pub max_sign_ups_per_hour: u32,
}

impl LimitOptions {
    pub fn unlimited() -> LimitOptions {
        LimitOptions {
            max_videos_per_hour: u32::MAX,
            max_active_runs: u32::MAX,
            max_edits: u32::MAX,
            max_branches: u32::MAX,
            max_regenerations: u32::MAX,
            max_storage_mb: u64::MAX,
            max_sign_ups_per_hour: u32::MAX,
        }
    }

    pub fn quotas(&self) -> crate::domain::Quotas {
        crate::domain::Quotas {
            videos_per_hour: self.max_videos_per_hour,
            active_runs: self.max_active_runs,
            edits_per_video: self.max_edits,
            branches_per_video: self.max_branches,
            regenerations_per_video: self.max_regenerations,
            storage_bytes: self.max_storage_mb.saturating_mul(1 << 20),
            sign_ups_per_hour: self.max_sign_ups_per_hour,
        }
    }
}

/// The public URL's scheme and host name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicUrl {
    pub scheme: String,
    pub host: String,
}

impl Options {
    /// The public URL (`--public-url`, or http:// and the address listened on).
    pub fn public_url(&self, listening: SocketAddr) -> Result<PublicUrl, String> {
        let raw = self.public_url.clone().unwrap_or_else(|| format!("http://{listening}"));
        let bad = || format!("--public-url must look like https://videos.example.org, not \"{raw}\"");
        let (scheme, rest) = raw.split_once("://").ok_or_else(bad)?;
        let scheme = scheme.to_ascii_lowercase();
        let authority = rest.split('/').next().unwrap_or_default();
        let host = super::guard::host_name(authority);
        if !matches!(scheme.as_str(), "http" | "https") || host.is_empty() || authority.contains('@') {
            return Err(bad());
        }
        Ok(PublicUrl { scheme, host })
    }

    /// `--auth none` gives everyone who can connect the whole app: only on a loopback address.
    pub fn check_auth(&self, listening: SocketAddr) -> Result<(), String> {
        if self.auth == AuthMode::None && !listening.ip().is_loopback() {
            return Err(format!(
                "--auth none is allowed only on a loopback address (127.0.0.1 or ::1), not {listening}: anyone who can reach it would see and change every video; use --auth accounts"
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(args: &[&str]) -> Options {
        Cli::try_parse_from(std::iter::once("reelsmith").chain(args.iter().copied())).expect("valid options").options
    }

    #[test]
    fn auth_defaults_to_accounts_and_none_needs_loopback() {
        let here: SocketAddr = "127.0.0.1:3000".parse().unwrap();
        let out: SocketAddr = "0.0.0.0:3000".parse().unwrap();
        assert_eq!(options(&[]).auth, AuthMode::Accounts);
        assert!(options(&[]).check_auth(out).is_ok());
        let none = options(&["--auth", "none"]);
        assert!(none.check_auth(here).is_ok());
        assert!(none.check_auth("[::1]:3000".parse().unwrap()).is_ok());
        let refused = none.check_auth(out).unwrap_err();
        assert!(refused.contains("only on a loopback address") && !refused.contains('\n'), "{refused}");
    }

    #[test]
    fn roles_decide_the_workers_and_a_bad_one_is_one_line() {
        assert_eq!(options(&[]).role, Role::All);
        assert_eq!(options(&["--role", "web", "--workers", "3"]).workers(), 0);
        assert_eq!(options(&["--role", "worker", "--workers", "3"]).workers(), 3);
        let e = Cli::try_parse_from(["reelsmith", "--role", "chef"]).unwrap_err().to_string();
        assert!(e.contains("invalid value 'chef' for '--role"), "{e}");
    }

    #[test]
    fn the_public_url_gives_the_scheme_and_host() {
        let here: SocketAddr = "127.0.0.1:3000".parse().unwrap();
        assert_eq!(options(&[]).public_url(here).unwrap(), PublicUrl { scheme: "http".into(), host: "127.0.0.1".into() });
        let public = options(&["--public-url", "HTTPS://Videos.Example.org/app"]).public_url(here).unwrap();
        assert_eq!(public, PublicUrl { scheme: "https".into(), host: "videos.example.org".into() });
        for bad in ["videos.example.org", "ftp://x.org", "https://", "https://user@x.org"] {
            assert!(options(&["--public-url", bad]).public_url(here).is_err(), "{bad}");
        }
    }
}
