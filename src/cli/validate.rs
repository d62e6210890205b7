//! `burnguard validate PATH...`: every problem, or one line per valid SLO.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::domain::policy::Slo;
use crate::domain::sli::promql_number;
use crate::policies;

pub fn run(paths: &[PathBuf]) -> ExitCode {
    match policies::load(paths) {
        Ok(set) => {
            for loaded in &set.slos {
                println!("ok  {}  ({})", summary(&loaded.slo), loaded.origin.source);
            }
            println!("{} SLO(s) valid", set.slos.len());
            ExitCode::SUCCESS
        }
        Err(error) => {
            super::report_problems(&error);
            ExitCode::FAILURE
        }
    }
}

/// `checkout-availability service=checkout objective=99.9% window=30d indicator=ratio alerts=[...]`
pub fn summary(slo: &Slo) -> String {
    let alerts: Vec<String> = slo
        .alerting
        .windows
        .iter()
        .map(|w| {
            format!(
                "{} {}/{} x{}",
                w.severity,
                w.long,
                w.short,
                promql_number(w.burn_rate_threshold)
            )
        })
        .collect();
    format!(
        "{} service={} objective={}% window={} indicator={} alerts=[{}]",
        slo.name,
        slo.service,
        promql_number(slo.objective.percent()),
        slo.window,
        slo.indicator.kind(),
        alerts.join(", ")
    )
}
