//! The `roster` binary: the allocator, and the command line over the library.

mod cli;

// Entries are allocated on the plugin thread and freed on the staging thread; mimalloc
// handles that hand-over far better than the system allocator.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(cli::main());
}
