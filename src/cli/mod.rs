//! The `burnguard` command line: argument parsing and one file per subcommand.
//!
//! Owns: flags, exit codes, what is printed. Must not touch: policy meaning or math (those
//! are `domain`), file formats (those are `policies`).

mod rules;
mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// SLO monitoring and auto-remediation: error-budget burn rates, Prometheus rules, incidents.
#[derive(Debug, Parser)]
#[command(name = "burnguard", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check SLO policies and report every problem with its file, line and field.
    Validate {
        /// Policy files or directories (searched for *.yaml and *.yml).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Generate Prometheus recording and alerting rules for SLO policies.
    Rules {
        /// Policy files or directories (searched for *.yaml and *.yml).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Write the rule file here instead of standard output.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
}

/// Runs a parsed command line and returns the process exit code.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Validate { paths } => Ok(validate::run(&paths)),
        Command::Rules { paths, output } => rules::run(&paths, output.as_deref()),
    }
}

/// Prints every load problem to stderr with a closing count.
fn report_problems(error: &crate::policies::LoadError) {
    for problem in &error.problems {
        eprintln!("{problem}");
    }
    eprintln!("{} problem(s) found", error.problems.len());
}
