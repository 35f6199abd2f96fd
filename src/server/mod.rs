//! Start-up, serving and shutdown: options → data dir → database → engine → workers + HTTP.
pub mod artifacts;
pub mod options;

use axum::Router;
use leptos::prelude::*;
use leptos_axum::{LeptosRoutes, generate_route_list};
use std::path::Path;
use tokio::sync::watch;

use crate::app::{App, shell};
use crate::pipeline::providers::Providers;
use crate::pipeline::{Engine, EngineConfig, blobs::BlobStore};
use crate::storage::Store;
use options::Options;

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
}

fn prepare_data_dir(dir: &Path) -> Result<(), StartError> {
    let fail = |why: String| StartError::DataDir { path: dir.display().to_string(), why };
    std::fs::create_dir_all(dir.join("blobs")).map_err(|e| fail(e.to_string()))?;
    let probe = dir.join(format!(".write-test-{}", std::process::id()));
    std::fs::write(&probe, b"ok").map_err(|e| fail(format!("not writable ({e})")))?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

/// Opens the database and builds the engine with the local providers.
pub async fn engine_from(options: &Options, providers: Providers) -> Result<Engine, StartError> {
    prepare_data_dir(&options.data_dir)?;
    let (width, height) = options.video_size().map_err(StartError::Config)?;
    let url = options.database_url();
    let store = Store::open(&url, 8).await.map_err(|e| StartError::Database(e.to_string()))?;
    let config = EngineConfig {
        retry_limit: options.retry_limit,
        fault_injection: options.fault_injection,
        lease_ms: options.lease_ms.max(200),
        backoff_base_ms: options.backoff_ms,
        width,
        height,
        ..EngineConfig::default()
    };
    Ok(Engine::new(store, BlobStore::new(&options.data_dir), providers, config))
}

/// The whole app: pages (server-rendered, with the engine in context), server functions,
/// artifacts, and the site's static files.
pub fn router(engine: Engine, leptos_options: LeptosOptions) -> Router {
    let routes = generate_route_list(App);
    let context_engine = engine.clone();
    Router::new()
        .leptos_routes_with_context(&leptos_options, routes, move || provide_context(context_engine.clone()), {
            let leptos_options = leptos_options.clone();
            move || shell(leptos_options.clone())
        })
        .nest_service("/artifacts/blobs", artifacts::service(engine.blobs.clone()))
        .fallback(leptos_axum::file_and_error_handler(shell))
        .with_state(leptos_options)
}

pub async fn serve(options: Options) -> Result<(), StartError> {
    let engine = engine_from(&options, Providers::local()).await?;
    let conf = get_configuration(None).map_err(|e| StartError::Config(format!("leptos configuration: {e}")))?;
    let mut leptos_options = conf.leptos_options;
    if let Some(addr) = options.addr {
        leptos_options.site_addr = addr;
    } else if std::env::var("LEPTOS_SITE_ADDR").is_err() {
        leptos_options.site_addr = "127.0.0.1:3000".parse().expect("valid address");
    }
    let addr = leptos_options.site_addr;
    let listener =
        tokio::net::TcpListener::bind(addr).await.map_err(|e| StartError::Listen { addr: addr.to_string(), why: e.to_string() })?;

    let app = router(engine.clone(), leptos_options);

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let workers: Vec<_> = (0..options.workers())
        .map(|i| {
            let owner = format!("{}-{}-w{i}", hostname(), std::process::id());
            tokio::spawn(engine.clone().run_worker(owner, shutdown_rx.clone()))
        })
        .collect();
    tracing::info!(%addr, data_dir = %options.data_dir.display(), workers = workers.len(), fault_injection = options.fault_injection, "Reelsmith is serving on http://{addr}");

    let served = axum::serve(listener, app.into_make_service()).with_graceful_shutdown(shutdown_signal()).await;
    tracing::info!("shutting down: handing running phases back to the queue");
    let _ = shutdown_tx.send(true);
    for w in workers {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), w).await;
    }
    engine.store.close().await;
    served.map_err(|e| StartError::Io(e.to_string()))
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
    println!("removed: {} blobs", report.removed);
    println!("freed: {} bytes", report.freed_bytes);
    println!("kept: {} blobs", report.kept);
    Ok(())
}
