//! `burnguard validate PATH...`: every problem, or one line per valid SLO.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::domain::policy::Slo;
use crate::domain::sli::promql_number;
use crate::policies;

pub fn run(paths: &[PathBuf], options: &policies::LoadOptions) -> ExitCode {
    match policies::load_with(paths, options) {
        Ok(set) => {
            for loaded in &set.slos {
                let from = if loaded.format.is_foreign() {
                    format!(", {}", loaded.format)
                } else {
                    String::new()
                };
                println!(
                    "ok  {}  ({}{from})",
                    summary(&loaded.slo),
                    loaded.origin.source
                );
            }
            for loaded in &set.playbooks {
                let p = &loaded.playbook;
                let steps: Vec<&str> = p.steps.iter().map(|s| s.action.kind()).collect();
                println!(
                    "ok  playbook {} mode={} steps=[{}]  ({})",
                    p.name,
                    p.mode.as_str(),
                    steps.join(", "),
                    loaded.origin.source
                );
            }
            println!(
                "{} SLO(s) and {} playbook(s) valid",
                set.slos.len(),
                set.playbooks.len()
            );
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
    let budget_policy = if slo.budget_policy.is_empty() {
        String::new()
    } else {
        format!(" budgetPolicy={} rule(s)", slo.budget_policy.len())
    };
    format!(
        "{} service={} objective={}% window={} indicator={} alerts=[{}]{budget_policy}",
        slo.name,
        slo.service,
        promql_number(slo.objective.percent()),
        slo.window_name(),
        slo.indicator.kind(),
        alerts.join(", ")
    )
}
