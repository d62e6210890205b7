//! `burnguard backtest`: how the policies would have alerted over a stretch of history.

use std::path::PathBuf;
use std::process::ExitCode;

use serde::Serialize;

use super::args::{Output, PrometheusArgs, rfc3339};
use crate::adapters::prometheus::Prometheus;
use crate::domain::policy::group_key;
use crate::engine::backtest::{self, SloBacktest};
use crate::policies;

pub struct BacktestArgs {
    pub paths: Vec<PathBuf>,
    pub prometheus: PrometheusArgs,
    pub options: policies::LoadOptions,
    pub from: i64,
    pub to: i64,
    pub step: u64,
    pub output: Output,
    pub concurrency: usize,
}

#[derive(Serialize)]
struct Report<'a> {
    from: String,
    to: String,
    step_seconds: u64,
    slos: &'a [SloBacktest],
}

pub async fn run(args: BacktestArgs) -> anyhow::Result<ExitCode> {
    if args.to < args.from {
        anyhow::bail!(
            "--to ({}) is before --from ({})",
            rfc3339(args.to),
            rfc3339(args.from)
        );
    }
    if args.step == 0 {
        anyhow::bail!("--step must be longer than zero");
    }
    let set = match policies::load_with(&args.paths, &args.options) {
        Ok(set) => set,
        Err(error) => {
            super::report_problems(&error);
            return Ok(ExitCode::FAILURE);
        }
    };
    let source = Prometheus::new(&args.prometheus.config()?)?;
    let results = backtest::backtest(
        &source,
        &set.slos(),
        args.from,
        args.to,
        args.step,
        args.concurrency,
    )
    .await;
    match args.output {
        Output::Json => {
            let report = Report {
                from: rfc3339(args.from),
                to: rfc3339(args.to),
                step_seconds: args.step,
                slos: &results,
            };
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        Output::Table => print!("{}", table(&results, args.from, args.to)),
    }
    let any_error = results.iter().any(|r| r.error.is_some());
    Ok(if any_error {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

fn duration(seconds: u64) -> String {
    if seconds == 0 {
        return "0".into();
    }
    humantime::format_duration(std::time::Duration::from_secs(seconds)).to_string()
}

/// A summary line per SLO, then its alert transitions.
pub fn table(results: &[SloBacktest], from: i64, to: i64) -> String {
    let mut out = format!("backtest from {} to {}\n", rfc3339(from), rfc3339(to));
    for r in results {
        out.push('\n');
        if let Some(error) = &r.error {
            out.push_str(&format!(
                "{} ({}): error: {error}\n",
                group_key(&r.name, &r.group),
                r.service
            ));
            continue;
        }
        let s = &r.summary;
        let lowest = match (s.lowest_budget_remaining, s.lowest_budget_at) {
            (Some(b), Some(at)) => format!("{:.1}% at {}", b * 100.0, rfc3339(at)),
            _ => "no data".into(),
        };
        out.push_str(&format!(
            "{} ({}): {} page(s), paging for {}; {} ticket(s), open for {}; lowest budget {}; without data {}\n",
            group_key(&r.name, &r.group),
            r.service,
            s.pages,
            duration(s.time_paging_seconds),
            s.tickets,
            duration(s.time_ticketing_seconds),
            lowest,
            duration(s.time_without_data_seconds),
        ));
        for t in &r.transitions {
            out.push_str(&format!(
                "  {}  {:<8}  {:<6}  {}/{}\n",
                rfc3339(t.at),
                format!("{:?}", t.change).to_lowercase(),
                t.severity,
                t.long_window,
                t.short_window
            ));
        }
    }
    out
}
