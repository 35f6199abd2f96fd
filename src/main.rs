//! The `reelsmith` binary: serve (default), bench, gc.
use clap::Parser;
use reelsmith::server::options::{Cli, Command};
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
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
            Command::Serve => reelsmith::server::serve(options).await,
            Command::Gc => reelsmith::server::gc(options).await,
            Command::Bench { quick, only } => reelsmith::bench::run(options, quick, only).await,
            Command::BenchWorker => reelsmith::bench::worker(options).await,
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
