//! A synthetic fleet for the benchmarks: N ratio SLOs as `burnguard.dev/v1` YAML, loaded by
//! the real policy loader, and one cycle's evaluations of them as the evaluator reports them.

use burnguard::domain::burn::Status;
use burnguard::engine::evaluate::{
    AlertReport, EvalStatus, Evaluation, SloEvaluation, WindowValues,
};
use burnguard::policies::{self, LoadOptions};

/// N SLOs `slo-0..`, spread over 20 teams and 50 services.
pub fn slos(n: usize) -> Vec<burnguard::domain::policy::Slo> {
    let (loaded, _, problems) =
        policies::parse_sources(&[("bench.yaml".into(), yaml(n))], &LoadOptions::default());
    assert!(problems.is_empty(), "{:?}", problems.first());
    loaded.into_iter().map(|l| l.slo).collect()
}

/// The policy file of [`slos`]: N documents, about 280 bytes each.
pub fn yaml(n: usize) -> String {
    (0..n)
        .map(|i| {
            format!(
                "apiVersion: burnguard.dev/v1\nkind: SLO\nmetadata: {{name: slo-{i}, labels: {{team: team-{}}}}}\nspec:\n  service: svc-{}\n  objective: 99.9\n  indicator:\n    ratio:\n      errors: 'sum(rate(r{{slo=\"{i}\",code=\"500\"}}[{{{{.window}}}}]))'\n      total: 'sum(rate(r{{slo=\"{i}\"}}[{{{{.window}}}}]))'\n",
                i % 20,
                i % 50
            )
        })
        .collect::<Vec<_>>()
        .join("---\n")
}

/// One cycle at `at`: a tenth of the SLOs paging at 2% errors, the rest at 0.02% to 0.1%.
pub fn evaluation(slos: &[burnguard::domain::policy::Slo], at: i64) -> Evaluation {
    let evaluations = slos
        .iter()
        .enumerate()
        .map(|(i, slo)| {
            let paging = i % 10 == 0;
            let ratio = if paging {
                0.02
            } else {
                0.0002 * (1 + i % 5) as f64
            };
            let windows: Vec<_> = slo
                .windows()
                .into_iter()
                .map(|w| (w, Some(ratio)))
                .collect();
            let burn: Vec<_> = windows
                .iter()
                .map(|(w, r)| (*w, r.map(|r| r / 0.001)))
                .collect();
            SloEvaluation {
                name: slo.name.clone(),
                group: Default::default(),
                service: slo.service.clone(),
                objective: 0.999,
                window: "30d".into(),
                status: EvalStatus::Assessed(if paging { Status::Page } else { Status::Ok }),
                source: None,
                error_ratio: WindowValues(windows),
                burn_rate: WindowValues(burn),
                error_budget_remaining: Some(1.0 - ratio / 0.001),
                time_to_exhaustion_seconds: Some(86_400.0),
                budget_period: None,
                alerts: slo
                    .alerting
                    .windows
                    .iter()
                    .map(|row| AlertReport {
                        long: row.long,
                        severity: row.severity.as_str(),
                        short: row.short,
                        factor: row.burn_rate_threshold,
                        firing: paging && row.burn_rate_threshold < 20.0,
                        has_data: true,
                    })
                    .collect(),
                error: None,
            }
        })
        .map(std::sync::Arc::new)
        .collect();
    Evaluation {
        at,
        slos: evaluations,
        queries: 0,
        failed_queries: 0,
        answered_after: std::time::Duration::ZERO,
        query_errors: Default::default(),
    }
}

/// What rules mode reads for one SLO: its recorded error ratio per window and its objective,
/// `ratio` at every one of `times`, labelled with `service`.
pub fn recorded_series(
    slo: &burnguard::domain::policy::Slo,
    service: &str,
    ratio: f64,
    times: &[i64],
) -> Vec<super::prometheus::Series> {
    use super::prometheus::{gauge, labels};
    use burnguard::domain::rules::{OBJECTIVE_SERIES, error_ratio_series};
    let constant = |v: f64| times.iter().map(|t| (*t, v)).collect::<Vec<_>>();
    let slo_labels = labels(&[("slo", &slo.name), ("service", service)]);
    let mut series: Vec<_> = slo
        .windows()
        .into_iter()
        .map(|window| {
            gauge(
                &error_ratio_series(window),
                slo_labels.clone(),
                constant(ratio),
            )
        })
        .collect();
    series.push(gauge(
        OBJECTIVE_SERIES,
        slo_labels,
        constant(slo.objective.ratio()),
    ));
    series
}

/// [`recorded_series`] as burnguard's generated rules record it: the objective carries the
/// fingerprint of the SLO's rules (`burnguard_rules_hash`), which auto mode compares with the
/// SLO's rules as they are now before it reads the SLO from its recorded series.
pub fn recorded_by_rules(
    slo: &burnguard::domain::policy::Slo,
    service: &str,
    ratio: f64,
    times: &[i64],
) -> Vec<super::prometheus::Series> {
    use burnguard::domain::rules::{OBJECTIVE_SERIES, RULES_HASH_LABEL, rules_fingerprint};
    let mut series = recorded_series(slo, service, ratio, times);
    for s in series.iter_mut().filter(|s| s.name == OBJECTIVE_SERIES) {
        s.labels
            .insert(RULES_HASH_LABEL.into(), rules_fingerprint(slo));
    }
    series
}
