//! The `reelsmith` binary: serve (default), bench, gc. The command line lives in the library
//! (`server::main`), so this crate only links it.
fn main() -> std::process::ExitCode {
    reelsmith::server::main()
}
