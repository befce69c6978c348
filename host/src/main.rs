//! The `roster` binary: logging, the allocator, and the command line over the library.

mod cli;

// Entries are allocated on the plugin thread and freed on the staging thread; mimalloc
// handles that hand-over far better than the system allocator.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
                .unwrap_or_else(|_| "warn,roster::plugin=info".into()),
        )
        .init();
    std::process::exit(cli::main());
}
