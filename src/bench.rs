//! `reelsmith bench`: figures for orchestration, retry, status rendering and local media.
use crate::server::StartError;
use crate::server::options::Options;

pub async fn run(_options: Options, _quick: bool) -> Result<(), StartError> {
    println!("bench: not yet available");
    Ok(())
}
