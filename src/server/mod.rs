//! Start-up, serving and shutdown: options → data dir → database → engine → workers + HTTP.
pub mod artifacts;
pub mod guard;
pub mod options;

use axum::Router;
use leptos::prelude::*;
use leptos_axum::{LeptosRoutes, generate_route_list};
use std::path::Path;
use tokio::sync::watch;

use crate::app::{App, shell};
use crate::pipeline::providers::Providers;
use crate::pipeline::providers::remote::ProvidersFile;
use crate::pipeline::{Engine, EngineConfig, blobs::BlobStore};
use crate::storage::{Backend, Store};
use guard::Guard;
use options::{Options, Role};

/// A start-up problem, said in one line.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot use data directory {path}: {why}")]
    DataDir { path: String, why: String },
    #[error("{0}")]
    Database(String),
    #[error("cannot listen on {addr}: {why}")]
    Listen { addr: String, why: String },
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Io(String),
    #[error("the site files are missing: {0} (run `make build`, which builds the pages' WASM and CSS)")]
    SiteMissing(String),
}

/// The name every build gives the site's files (`/pkg/reelsmith.{js,wasm,css}`), whichever
/// command built the binary.
pub const SITE_NAME: &str = "reelsmith";

/// The database connections a server process pools (a LISTEN connection on PostgreSQL is apart).
pub const POOL_CONNECTIONS: u32 = 8;

/// The pages ask for these files; a binary that would serve pages that never hydrate refuses to
/// start instead.
fn check_site(options: &LeptosOptions) -> Result<(), StartError> {
    let pkg = Path::new(options.site_root.as_ref()).join(options.site_pkg_dir.as_ref());
    let missing: Vec<String> = ["js", "wasm", "css"]
        .iter()
        .map(|ext| pkg.join(format!("{SITE_NAME}.{ext}")))
        .filter(|p| !p.is_file())
        .map(|p| p.display().to_string())
        .collect();
    if missing.is_empty() { Ok(()) } else { Err(StartError::SiteMissing(missing.join(", "))) }
}

/// Identifies this process start: worker lease owners and `/health` carry it, so two processes
/// (or a restarted one) are never mistaken for each other.
pub fn new_instance_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn prepare_data_dir(dir: &Path) -> Result<(), StartError> {
    let fail = |why: String| StartError::DataDir { path: dir.display().to_string(), why };
    std::fs::create_dir_all(dir.join("blobs")).map_err(|e| fail(e.to_string()))?;
    let probe = dir.join(format!(".write-test-{}", std::process::id()));
    std::fs::write(&probe, b"ok").map_err(|e| fail(format!("not writable ({e})")))?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

/// Opens the database and builds the engine: `providers` for every phase the providers file
/// (`--providers`) leaves out, or all of them without one.
pub async fn engine_from(options: &Options, providers: Providers) -> Result<Engine, StartError> {
    let providers = match &options.providers {
        Some(path) => ProvidersFile::load(path).map_err(StartError::Config)?.build(providers, &|name| std::env::var(name).ok()),
        None => providers,
    };
    prepare_data_dir(&options.data_dir)?;
    let (width, height) = options.video_size().map_err(StartError::Config)?;
    let url = options.database_url();
    let store = Store::open(&url, POOL_CONNECTIONS).await.map_err(|e| StartError::Database(e.to_string()))?;
    let config = EngineConfig {
        retry_limit: options.retry_limit,
        fault_injection: options.fault_injection,
        lease_ms: options.lease_ms.max(200),
        backoff_base_ms: options.backoff_ms,
        width,
        height,
        quotas: options.limits.quotas(),
        ..EngineConfig::default()
    };
    let blobs = BlobStore::open(options.blob_url.as_deref(), &options.data_dir).await.map_err(StartError::Config)?;
    let engine = Engine::new(store, blobs, providers, config);
    if engine.store.backend() == Backend::Postgres {
        engine.events.share_through_postgres(&url).await.map_err(StartError::Database)?;
    }
    Ok(engine)
}

/// The whole app: pages (server-rendered, with the engine in context), server functions,
/// artifacts, and the site's static files, all behind the guard (hosts, origins, sessions).
pub fn router(guard: Guard, leptos_options: LeptosOptions, instance: &str) -> Router {
    // Made once per process. Leptos marks a route list being made with one process-wide flag
    // that keeps every resource from loading while it is up (leptos-rs/leptos#4773), so a page
    // rendered meanwhile by another router in the process (the test suites start many) never
    // finished.
    static ROUTES: std::sync::OnceLock<Vec<leptos_axum::AxumRouteListing>> = std::sync::OnceLock::new();
    let routes = ROUTES.get_or_init(|| generate_route_list(App)).clone();
    let engine = guard.engine.clone();
    let context_engine = engine.clone();
    Router::new()
        .leptos_routes_with_context(&leptos_options, routes, move || provide_context(context_engine.clone()), {
            let leptos_options = leptos_options.clone();
            move || shell(leptos_options.clone())
        })
        .merge(health_only(instance))
        .nest_service("/artifacts/videos", artifacts::service(engine))
        .fallback(leptos_axum::file_and_error_handler(shell))
        .with_state(leptos_options)
        .layer(axum::middleware::from_fn_with_state(std::sync::Arc::new(guard), guard::guard))
}

/// A worker-only process answers `/health` (for whoever supervises it) and nothing else.
fn health_only<S: Clone + Send + Sync + 'static>(instance: &str) -> Router<S> {
    let health = format!("reelsmith {instance}");
    Router::new().route("/health", axum::routing::get(move || std::future::ready(health.clone())))
}

pub async fn serve(options: Options) -> Result<(), StartError> {
    let engine = engine_from(&options, Providers::local()).await?;
    let conf = get_configuration(None).map_err(|e| StartError::Config(format!("leptos configuration: {e}")))?;
    let mut leptos_options = conf.leptos_options;
    leptos_options.output_name = SITE_NAME.into();
    if options.role != Role::Worker {
        check_site(&leptos_options)?;
    }
    if let Some(addr) = options.addr {
        leptos_options.site_addr = addr;
    } else if std::env::var("LEPTOS_SITE_ADDR").is_err() {
        leptos_options.site_addr = "127.0.0.1:3000".parse().expect("valid address");
    }
    let wanted = leptos_options.site_addr;
    options.check_auth(wanted).map_err(StartError::Config)?;
    let listener =
        tokio::net::TcpListener::bind(wanted).await.map_err(|e| StartError::Listen { addr: wanted.to_string(), why: e.to_string() })?;
    // With port 0 the system picks the port: the real address is what tests and people need.
    let addr = listener.local_addr().map_err(|e| StartError::Listen { addr: wanted.to_string(), why: e.to_string() })?;
    leptos_options.site_addr = addr;
    let public = options.public_url(addr).map_err(StartError::Config)?;
    let instance = new_instance_id();

    let guard = Guard { engine: engine.clone(), mode: options.auth, scheme: public.scheme, host: public.host };
    let app = match options.role {
        Role::Worker => health_only(&instance),
        Role::Web | Role::All => router(guard, leptos_options, &instance),
    };

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let workers: Vec<_> = (0..options.workers())
        .map(|i| {
            let owner = format!("{}-{}-{instance}-w{i}", hostname(), std::process::id());
            let (engine, shutdown) = (engine.clone(), shutdown_rx.clone());
            tokio::spawn(supervise(owner.clone(), shutdown.clone(), move || engine.clone().run_worker(owner.clone(), shutdown.clone())))
        })
        .collect();
    // One line on stdout, for whoever started us with port 0: the address and who answers there.
    println!("reelsmith: listening on http://{addr} instance {instance}");
    tracing::info!(%addr, role = ?options.role, blobs = %engine.blobs.describe(), workers = workers.len(), fault_injection = options.fault_injection, "Reelsmith is serving on http://{addr}");

    let served = axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>())
        .with_graceful_shutdown(shutdown_signal())
        .await;
    tracing::info!("shutting down: handing running phases back to the queue");
    let _ = shutdown_tx.send(true);
    for w in workers {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), w).await;
    }
    engine.store.close().await;
    served.map_err(|e| StartError::Io(e.to_string()))
}

/// Runs a worker loop made by `start`; when it panics, logs that and starts a new one (a bug hit
/// by one run must not leave the server without workers; the run it held is taken over when its
/// lease expires). Returns when the loop ends on its own (shutdown).
pub async fn supervise<F>(name: String, shutdown: watch::Receiver<bool>, start: impl Fn() -> F)
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    loop {
        match tokio::spawn(start()).await {
            Err(e) if e.is_panic() && !*shutdown.borrow() => {
                tracing::error!(worker = %name, "a worker panicked; starting it again");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            _ => return,
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname").map(|s| s.trim().to_string()).unwrap_or_else(|_| "host".into())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

pub async fn gc(options: Options) -> Result<(), StartError> {
    let engine = engine_from(&options, Providers::local()).await?;
    let report = engine.gc(None).await.map_err(|e| StartError::Io(e.to_string()))?;
    let text = format!(
        "removed: {} blobs\nfreed: {} bytes\nkept: {} blobs\nforgotten: {} memo entries\n",
        report.removed, report.freed_bytes, report.kept, report.forgotten_memo
    );
    // The collection is done whether or not anyone still reads its report (`reelsmith gc | head
    // -1` closes the pipe early: `println!` would panic there).
    let _ = std::io::Write::write_all(&mut std::io::stdout().lock(), text.as_bytes());
    Ok(())
}

/// The `reelsmith` command (serve, gc, bench): parses the arguments, sets up logging and the
/// runtime, and runs the command. It lives here, not in `main.rs`, so the binary's own crate is
/// one call: compiled there, `block_on` and the command futures took 30 s of a release build
/// (55 CPU-seconds), every time the library changed.
pub fn main() -> std::process::ExitCode {
    use clap::Parser;
    use options::{Cli, Command};
    use std::process::ExitCode;
    use tracing_subscriber::EnvFilter;

    let cli = Cli::parse();
    // The benchmark prints figures on stdout; its own progress logs would only add noise.
    let default_filter =
        if matches!(cli.command, Some(Command::Bench { .. } | Command::BenchWorker)) { "error" } else { "info,sqlx=warn,tower_http=warn" };
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter)))
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("reelsmith: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let options = cli.options;
    let result = runtime.block_on(async move {
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => serve(options).await,
            Command::Gc => gc(options).await,
            Command::Bench { quick, only } => crate::bench::run(options, quick, only).await,
            Command::BenchWorker => crate::bench::worker(options).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("reelsmith: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn a_panicking_worker_is_started_again_until_it_ends_on_its_own() {
        let starts = Arc::new(AtomicU32::new(0));
        let (_tx, rx) = tokio::sync::watch::channel(false);
        let counted = starts.clone();
        super::supervise("w0".into(), rx, move || {
            let n = counted.fetch_add(1, Ordering::SeqCst);
            async move { assert!(n >= 2, "a bug in run {n}") }
        })
        .await;
        assert_eq!(starts.load(Ordering::SeqCst), 3, "two panics, two restarts, then a clean end");
    }
}
