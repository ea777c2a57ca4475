//! The `ztv` binary: everything lives in the library; this only hands over to the CLI.

/// mimalloc rather than glibc's allocator: a request allocates and frees dozens of small
/// objects on the runtime's threads, and with glibc's (arenas, consolidation) the server
/// spent about 100 µs of CPU per signature request against about 83 µs with mimalloc
/// (perf and /proc CPU times under `bash bench/run.sh`'s load).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    ztv::cli::main()
}
