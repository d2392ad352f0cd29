//! `boxoffice`: the one binary. See the crate library for what each subcommand does.

use clap::Parser;

/// mimalloc rather than the system allocator: searches build short-lived buffers on the search
/// threads while the runtime's threads build responses, and glibc's per-thread arenas spend
/// a measurable share of a search in `malloc`/`free` (see `bench/RESULTS.md`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = boxoffice::cli::Cli::parse();
    boxoffice::cli::run(cli)
}
