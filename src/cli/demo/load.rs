//! `burnguard demo load`: a steady stream of GET requests, each on its own task so a slow
//! answer never slows the stream, with a count of answers logged every 10 seconds.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Args;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::config::LogFormat;

#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    /// The URL to send GET requests to.
    #[arg(long)]
    target: String,
    /// Requests per second.
    #[arg(long, default_value_t = 25, value_parser = clap::value_parser!(u32).range(1..=1000))]
    rps: u32,
}

pub fn run(args: LoadArgs) -> anyhow::Result<ExitCode> {
    crate::telemetry::init(LogFormat::Pretty);
    super::runtime()?.block_on(async move {
        let client = super::client(Duration::from_secs(5))?;
        let shutdown = CancellationToken::new();
        crate::service::cancel_on_signals(shutdown.clone());
        // Answers by status code ("error" when there was none).
        let answers: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
        let mut tick = tokio::time::interval(Duration::from_secs(1) / args.rps);
        tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
        let mut report = tokio::time::interval(Duration::from_secs(10));
        report.tick().await;
        info!(target = %args.target, rps = args.rps, "sending load");
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = report.tick() => {
                    let counts = answers.lock().map(|a| format!("{a:?}")).unwrap_or_default();
                    info!(answers = %counts, "answers so far");
                }
                _ = tick.tick() => {
                    let (client, target, answers) = (client.clone(), args.target.clone(), answers.clone());
                    tokio::spawn(async move {
                        let key = match client.get(&target).send().await {
                            Ok(response) => response.status().as_u16().to_string(),
                            Err(_) => "error".to_string(),
                        };
                        if let Ok(mut answers) = answers.lock() {
                            *answers.entry(key).or_default() += 1;
                        }
                    });
                }
            }
        }
        info!("load stopped");
        Ok(ExitCode::SUCCESS)
    })
}
