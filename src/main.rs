//! The `reelsmith` binary: serve (default), bench, gc. The command line lives in the library
//! (`server::main`), so this crate only links it.

/// mimalloc instead of glibc's malloc: a run's many small allocations cost less (README,
/// "Where the time goes").
#[cfg(feature = "ssr")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    reelsmith::server::main()
}
