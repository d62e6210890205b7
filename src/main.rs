//! The `burnguard` binary: parse the command line and hand over to [`burnguard::cli`].

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    burnguard::allocator::limit_arenas();
    let cli = burnguard::cli::Cli::parse();
    match burnguard::cli::run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
