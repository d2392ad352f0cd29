//! `boxoffice`: the one binary. See the crate library for what each subcommand does.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = boxoffice::cli::Cli::parse();
    boxoffice::cli::run(cli)
}
