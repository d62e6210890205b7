//! The `burnguard` command line: argument parsing and one file per subcommand.
//!
//! Owns: flags, exit codes, what is printed. Must not touch: policy meaning or math (those
//! are `domain`), file formats (those are `policies`).

pub mod args;
mod backtest;
mod dashboards;
mod demo;
mod eval;
mod incidents;
mod rules;
mod serve;
mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::engine::ReadMode;
use args::{Output, PrometheusArgs};

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
    /// Write the Grafana dashboards (SLO overview, SLO detail, burnguard health) as JSON files.
    ///
    /// They read burnguard's recording rules and its /metrics through template variables, so
    /// they serve any set of policies.
    Dashboards {
        /// Directory to write the files into (created if missing).
        #[arg(short, long, value_name = "DIR")]
        output: PathBuf,
    },
    /// Evaluate SLO policies against Prometheus once: error ratios, burn rates, budget, alerts.
    ///
    /// Exits 0 after printing, 1 when the policies are invalid, 2 when some SLO could not be
    /// evaluated (its `status` is `error`).
    Eval {
        /// Policy files or directories.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        #[command(flatten)]
        prometheus: PrometheusArgs,
        /// Evaluation time: RFC 3339 or unix seconds (default: now).
        #[arg(long, value_parser = args::parse_time)]
        at: Option<i64>,
        #[arg(long, value_enum, default_value_t = Output::Json)]
        output: Output,
        /// raw: the SLOs' own queries; rules: burnguard's recorded series; auto: rules where present.
        #[arg(long, value_enum, default_value_t = ReadMode::Auto)]
        mode: ReadMode,
        /// Queries in flight at once.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
    },
    /// Evaluate SLOs continuously, record incidents, and serve /metrics, /healthz and /readyz.
    Serve(Box<serve::ServeArgs>),
    /// List or show incidents recorded by `serve`.
    Incidents {
        #[command(subcommand)]
        command: IncidentsCommand,
    },
    /// Create or upgrade the database schema (serve does this at start too).
    Migrate {
        /// sqlite://FILE or postgres://USER@HOST/DB.
        #[arg(long, env = "BURNGUARD_DB", default_value = DEFAULT_DB)]
        db: String,
    },
    /// Replay SLO policies over history: every alert transition, the budget curve, a summary.
    Backtest {
        /// Policy files or directories.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        #[command(flatten)]
        prometheus: PrometheusArgs,
        /// Start: RFC 3339 or unix seconds.
        #[arg(long, value_parser = args::parse_time)]
        from: i64,
        /// End: RFC 3339 or unix seconds.
        #[arg(long, value_parser = args::parse_time)]
        to: i64,
        /// Time between replayed evaluations.
        #[arg(long, value_parser = args::parse_duration, default_value = "5m")]
        step: std::time::Duration,
        #[arg(long, value_enum, default_value_t = Output::Table)]
        output: Output,
        /// Range queries in flight at once.
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
    },
    /// The programs `scripts/demo` runs: a demo workload, a load generator, the story.
    #[command(hide = true)]
    Demo {
        #[command(subcommand)]
        command: demo::DemoCommand,
    },
}

use crate::config::DEFAULT_DB;

#[derive(Debug, Subcommand)]
pub enum IncidentsCommand {
    /// Incidents, newest first.
    List {
        #[arg(long, value_enum, default_value_t = incidents::StatusFilter::Open)]
        status: incidents::StatusFilter,
        /// Only this SLO's incidents.
        #[arg(long)]
        slo: Option<String>,
        /// sqlite://FILE or postgres://USER@HOST/DB.
        #[arg(long, env = "BURNGUARD_DB", default_value = DEFAULT_DB)]
        db: String,
        #[arg(long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// One incident with its timeline and actions.
    Show {
        id: i64,
        #[arg(long, env = "BURNGUARD_DB", default_value = DEFAULT_DB)]
        db: String,
        #[arg(long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
}

/// Runs a parsed command line and returns the process exit code.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Validate { paths } => Ok(validate::run(&paths)),
        Command::Rules { paths, output } => rules::run(&paths, output.as_deref()),
        Command::Dashboards { output } => dashboards::run(&output),
        Command::Eval {
            paths,
            prometheus,
            at,
            output,
            mode,
            concurrency,
        } => runtime()?.block_on(eval::run(eval::EvalArgs {
            paths,
            prometheus,
            at,
            output,
            mode,
            concurrency,
        })),
        Command::Serve(args) => serve::run(*args),
        Command::Incidents { command } => runtime()?.block_on(async move {
            match command {
                IncidentsCommand::List {
                    status,
                    slo,
                    db,
                    output,
                } => incidents::list(&db, status, slo, output).await,
                IncidentsCommand::Show { id, db, output } => incidents::show(&db, id, output).await,
            }
        }),
        Command::Migrate { db } => runtime()?.block_on(incidents::migrate(&db)),
        Command::Backtest {
            paths,
            prometheus,
            from,
            to,
            step,
            output,
            concurrency,
        } => runtime()?.block_on(backtest::run(backtest::BacktestArgs {
            paths,
            prometheus,
            from,
            to,
            step: step.as_secs(),
            output,
            concurrency,
        })),
        Command::Demo { command } => demo::run(command),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Prints every load problem to stderr with a closing count.
fn report_problems(error: &crate::policies::LoadError) {
    for problem in &error.problems {
        eprintln!("{problem}");
    }
    eprintln!("{} problem(s) found", error.problems.len());
}
