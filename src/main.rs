//! The `ztv` binary: everything lives in the library; this only hands over to the CLI.

/// mimalloc rather than glibc's allocator: a request allocates and frees dozens of small
/// objects on the runtime's threads, which mimalloc serves from per-thread free lists. Its
/// build options are in `.cargo/config.toml`.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    ztv::cli::main()
}
