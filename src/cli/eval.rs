//! `burnguard eval`: one evaluation of the policies against Prometheus, as JSON or a table.

use std::path::PathBuf;
use std::process::ExitCode;

use serde::Serialize;

use super::args::{Output, PrometheusArgs, rfc3339};
use crate::adapters::prometheus::Prometheus;
use crate::domain::sli::promql_number;
use crate::engine::evaluate::{EvalStatus, Evaluation, Evaluator, ReadMode, SloEvaluation};
use crate::policies;

pub struct EvalArgs {
    pub paths: Vec<PathBuf>,
    pub prometheus: PrometheusArgs,
    pub options: policies::LoadOptions,
    pub at: Option<i64>,
    pub output: Output,
    pub mode: ReadMode,
    pub concurrency: usize,
}

#[derive(Serialize)]
struct Report<'a> {
    evaluated_at: String,
    slos: Vec<&'a SloEvaluation>,
}

pub async fn run(args: EvalArgs) -> anyhow::Result<ExitCode> {
    let set = match policies::load_with(&args.paths, &args.options) {
        Ok(set) => set,
        Err(error) => {
            super::report_problems(&error);
            return Ok(ExitCode::FAILURE);
        }
    };
    let source = Prometheus::new(&args.prometheus.config()?)?;
    let at = args.at.unwrap_or_else(|| chrono::Utc::now().timestamp());
    let evaluator = Evaluator::new(source, args.mode, args.concurrency);
    let evaluation = evaluator.evaluate(&set.slos(), at).await;
    match args.output {
        Output::Json => {
            let report = Report {
                evaluated_at: rfc3339(evaluation.at),
                slos: evaluation.slos.iter().map(|e| e.as_ref()).collect(),
            };
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        Output::Table => print!("{}", table(&evaluation)),
    }
    // Exit 2 tells scripts that some SLO could not be evaluated (its numbers are unknown).
    let any_error = evaluation
        .slos
        .iter()
        .any(|s| s.status == EvalStatus::Error);
    Ok(if any_error {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

/// Aligned columns, status first, for people.
pub fn table(evaluation: &Evaluation) -> String {
    let mut rows = vec![vec![
        "STATUS".to_string(),
        "SLO".into(),
        "SERVICE".into(),
        "OBJECTIVE".into(),
        "BUDGET LEFT".into(),
        "BURN RATE (window=rate)".into(),
        "FIRING".into(),
    ]];
    for slo in &evaluation.slos {
        let burn: Vec<String> = slo
            .burn_rate
            .0
            .iter()
            .map(|(w, r)| format!("{w}={}", r.map_or("-".into(), |r| format!("{r:.2}"))))
            .collect();
        let firing: Vec<String> = slo
            .alerts
            .iter()
            .filter(|a| a.firing)
            .map(|a| format!("{} {}/{}", a.severity, a.long, a.short))
            .collect();
        let last = match &slo.error {
            Some(error) => format!("error: {error}"),
            None if firing.is_empty() => "-".into(),
            None => firing.join(", "),
        };
        rows.push(vec![
            slo.status.as_str().to_string(),
            slo.key(),
            slo.service.clone(),
            format!("{}%", promql_number(slo.objective * 100.0)),
            slo.error_budget_remaining
                .map_or("-".into(), |b| format!("{:.1}%", b * 100.0)),
            if burn.is_empty() {
                "-".into()
            } else {
                burn.join(" ")
            },
            last,
        ]);
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = format!("evaluated at {}\n", rfc3339(evaluation.at));
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}
