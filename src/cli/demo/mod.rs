//! `burnguard demo ...` (hidden): the small programs `scripts/demo` runs around a real
//! Prometheus, Alertmanager and `burnguard serve`.
//!
//! - [`workload`]: a checkout service that answers HTTP, counts its requests and their latency
//!   for Prometheus to scrape, and has a feature flag that really changes its error rate;
//! - [`load`]: a steady stream of requests to it;
//! - [`story`]: drives the demo's story and narrates what burnguard reports, step by step,
//!   each step waiting (bounded) for something it can see;
//! - `free-port` and `probe`: what the script needs to pick ports and wait for readiness
//!   without curl or jq on a fresh machine.
//!
//! They are subcommands of the one binary rather than example programs so that the single
//! `cargo build` the demo does builds everything it runs.
//!
//! Owns: the demo's own programs. Must not touch: anything `serve` does (the demo talks to it
//! only over HTTP, as a user would).

mod load;
mod story;
mod workload;

use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;

use super::args::parse_duration;

#[derive(Debug, Subcommand)]
pub enum DemoCommand {
    /// A demo checkout service: GET /checkout, a feature flag at /flags/recommendations, a
    /// fault switch at /faults/recommendations, and its metrics at /metrics.
    Workload(workload::WorkloadArgs),
    /// Sends a steady stream of requests to a URL.
    Load(load::LoadArgs),
    /// Runs the demo's story against running services and narrates it.
    Story(Box<story::StoryArgs>),
    /// Prints a free loopback TCP port.
    FreePort,
    /// Exits 0 when a GET of URL answers 2xx within the timeout, 1 otherwise.
    Probe {
        url: String,
        #[arg(long, value_parser = parse_duration, default_value = "2s")]
        timeout: Duration,
    },
}

pub fn run(command: DemoCommand) -> anyhow::Result<ExitCode> {
    match command {
        DemoCommand::Workload(args) => workload::run(args),
        DemoCommand::Load(args) => load::run(args),
        DemoCommand::Story(args) => story::run(*args),
        DemoCommand::FreePort => {
            let port = std::net::TcpListener::bind("127.0.0.1:0")?
                .local_addr()?
                .port();
            println!("{port}");
            Ok(ExitCode::SUCCESS)
        }
        DemoCommand::Probe { url, timeout } => runtime()?.block_on(async move {
            let ok = client(timeout)?
                .get(&url)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// A plain-HTTP client with a per-request timeout.
fn client(timeout: Duration) -> anyhow::Result<reqwest::Client> {
    crate::adapters::prometheus::install_crypto_provider();
    Ok(reqwest::Client::builder()
        .timeout(timeout)
        .no_proxy()
        .build()?)
}
