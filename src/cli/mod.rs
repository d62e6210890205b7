//! The `burnguard` command line: argument parsing and one file per subcommand.
//!
//! Owns: flags, exit codes, what is printed. Must not touch: policy meaning or math (those
//! are `domain`), file formats (those are `policies`).

pub mod args;
mod backtest;
mod crds;
mod dashboards;
mod demo;
mod eval;
mod export;
mod import;
mod incidents;
mod rules;
mod serve;
mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::engine::ReadMode;
use args::{FormatArgs, Output, PrometheusArgs};

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
    ///
    /// Reads burnguard files, and Sloth, Pyrra and OpenSLO files as they are.
    Validate {
        /// Policy files or directories (searched for *.yaml and *.yml).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        #[command(flatten)]
        formats: FormatArgs,
    },
    /// Generate Prometheus recording and alerting rules for SLO policies.
    Rules {
        /// Policy files or directories (searched for *.yaml and *.yml).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Write the rule file here instead of standard output.
        #[arg(short, long)]
        output: Option<PathBuf>,
        #[command(flatten)]
        formats: FormatArgs,
    },
    /// Write Sloth, Pyrra and OpenSLO files as burnguard.dev/v1 documents.
    ///
    /// Every SLO is written with a comment naming the file and document it came from; nothing
    /// is written when any field cannot be mapped (each is reported).
    Import {
        /// Files or directories of Sloth, Pyrra or OpenSLO documents.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Write one file per input file into this directory instead of standard output.
        #[arg(short, long, value_name = "DIR")]
        output: Option<PathBuf>,
        #[command(flatten)]
        formats: FormatArgs,
    },
    /// Write SLOs (of any format burnguard reads) in another format.
    Export {
        /// The format to write.
        #[arg(long, value_enum)]
        to: export::Target,
        /// Policy files or directories.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Write one file per input file into this directory instead of standard output.
        #[arg(short, long, value_name = "DIR")]
        output: Option<PathBuf>,
        #[command(flatten)]
        formats: FormatArgs,
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
    /// Print the CustomResourceDefinitions of `ServiceLevelObjective` and `Playbook`
    /// (`burnguard.dev/v1`) as YAML, for `kubectl apply -f -`.
    ///
    /// The same text is committed as deploy/kubernetes/crds/burnguard.dev.yaml.
    Crds {
        /// Write to this file instead of standard output.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
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
        #[command(flatten)]
        formats: FormatArgs,
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
        #[command(flatten)]
        formats: FormatArgs,
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
        Command::Validate { paths, formats } => Ok(validate::run(&paths, &formats.options())),
        Command::Rules {
            paths,
            output,
            formats,
        } => rules::run(&paths, output.as_deref(), &formats.options()),
        Command::Import {
            paths,
            output,
            formats,
        } => import::run(&paths, output.as_deref(), &formats.options()),
        Command::Export {
            to,
            paths,
            output,
            formats,
        } => export::run(to, &paths, output.as_deref(), &formats.options()),
        Command::Dashboards { output } => dashboards::run(&output),
        Command::Crds { output } => crds::run(output.as_deref()),
        Command::Eval {
            paths,
            prometheus,
            formats,
            at,
            output,
            mode,
            concurrency,
        } => runtime()?.block_on(eval::run(eval::EvalArgs {
            paths,
            prometheus,
            options: formats.options(),
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
            formats,
            from,
            to,
            step,
            output,
            concurrency,
        } => runtime()?.block_on(backtest::run(backtest::BacktestArgs {
            paths,
            prometheus,
            options: formats.options(),
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

/// Where a file goes in an output directory: its own name, or an error when two inputs share
/// one (they would overwrite each other).
fn output_files(
    dir: &std::path::Path,
    sources: &[String],
) -> anyhow::Result<std::collections::BTreeMap<String, PathBuf>> {
    let mut taken: std::collections::BTreeMap<PathBuf, &str> = std::collections::BTreeMap::new();
    let mut files = std::collections::BTreeMap::new();
    for source in sources {
        let name = std::path::Path::new(source)
            .file_name()
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("policies.yaml"));
        let target = dir.join(name);
        if let Some(other) = taken.insert(target.clone(), source) {
            anyhow::bail!(
                "{other} and {source} would both be written to {}; give them separately",
                target.display()
            );
        }
        files.insert(source.clone(), target);
    }
    Ok(files)
}

/// Writes one text per input file: all to standard output, or each to its own file in
/// `dir` (named after the input), saying how many SLOs went where.
fn write_per_source(
    texts: &std::collections::BTreeMap<String, (String, usize)>,
    dir: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    use std::io::Write;

    use anyhow::Context;

    let Some(dir) = dir else {
        let mut out = std::io::stdout().lock();
        for (text, _) in texts.values() {
            out.write_all(text.as_bytes())
                .context("writing to standard output")?;
        }
        return Ok(());
    };
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let sources: Vec<String> = texts.keys().cloned().collect();
    let targets = output_files(dir, &sources)?;
    for (source, (text, slos)) in texts {
        let target = &targets[source];
        std::fs::write(target, text).with_context(|| format!("writing {}", target.display()))?;
        eprintln!("wrote {slos} SLO(s) from {source} to {}", target.display());
    }
    Ok(())
}

/// Prints every load problem to stderr with a closing count.
fn report_problems(error: &crate::policies::LoadError) {
    for problem in &error.problems {
        eprintln!("{problem}");
    }
    eprintln!("{} problem(s) found", error.problems.len());
}
