//! Proves the generated rules behave: for constructed input series, `promtool test rules`
//! (Prometheus's own rule engine) must see exactly the alerts and ratios worked out here by
//! hand from the SRE Workbook table. Nothing in this file asks burnguard what to expect;
//! burnguard only produces the rules under test (and the annotation text, which promtool
//! insists on comparing and which no test here is about).

mod common;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::Command;

use burnguard::domain::rules::{self, Rule};
use burnguard::policies;

/// The workbook's factors for a 30-day window, from the published table.
const PAGE_1H_5M: f64 = 14.4;
const PAGE_6H_30M: f64 = 6.0;
const TICKET_1D_2H: f64 = 3.0;
const TICKET_3D_6H: f64 = 1.0;
/// 99.9% objective.
const BUDGET: f64 = 0.001;

/// SLOs, one per scenario, all 99.9% over 30 days with the workbook alert windows.
fn policy(name: &str, job: &str, extra: &str) -> String {
    format!(
        r#"---
apiVersion: burnguard.dev/v1
kind: SLO
metadata: {{name: {name}}}
spec:
  service: {job}
  objective: 99.9
  {extra}
  indicator:
    ratio:
      errors: sum(rate(http_requests_total{{job="{job}",code="500"}}[{{{{.window}}}}]))
      total: sum(rate(http_requests_total{{job="{job}"}}[{{{{.window}}}}]))
"#
    )
}

/// An expected alert: (slo, severity, long window, short window).
type ExpectedAlert = (&'static str, &'static str, &'static str, &'static str);
/// An expected sample: (labels, value).
type ExpectedSample = (String, f64);

struct Scenario {
    /// promtool input series: (series, values) in promtool's expanding notation.
    series: Vec<(String, String)>,
    /// (eval time, every alert expected to fire then).
    alerts: Vec<(&'static str, Vec<ExpectedAlert>)>,
    /// (eval time, expression, expected samples).
    exprs: Vec<(&'static str, String, Vec<ExpectedSample>)>,
}

fn counter(job: &str, code: &str, values: &str) -> (String, String) {
    (
        format!("http_requests_total{{job=\"{job}\",code=\"{code}\"}}"),
        values.to_string(),
    )
}

/// Runs promtool on the rules generated for `policies` and the scenario, panicking with
/// promtool's own report on failure.
fn promtool_test(policy_text: &str, scenario: Scenario, alert_names: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let policy_path = common::write(dir.path(), "slos.yaml", policy_text);
    let set = policies::load(&[policy_path]).unwrap_or_else(|e| panic!("{:?}", e.problems));
    let file = rules::rule_file(&set.slos());
    let yaml = rules::to_yaml(&file, "test").unwrap();
    common::write(dir.path(), "rules.yaml", &yaml);

    // promtool compares annotations too; take them from the generated rules.
    let mut annotations: BTreeMap<(String, String, String), BTreeMap<String, String>> =
        BTreeMap::new();
    for group in &file.groups {
        for rule in &group.rules {
            if let Rule::Alerting {
                labels,
                annotations: a,
                ..
            } = rule
            {
                annotations.insert(
                    (
                        labels["slo"].clone(),
                        labels["long_window"].clone(),
                        labels["short_window"].clone(),
                    ),
                    a.clone(),
                );
            }
        }
    }

    let mut test = String::from(
        "rule_files: [rules.yaml]\nevaluation_interval: 1m\ntests:\n- interval: 1m\n  input_series:\n",
    );
    for (series, values) in &scenario.series {
        writeln!(test, "  - series: '{series}'\n    values: '{values}'").unwrap();
    }
    test.push_str("  alert_rule_test:\n");
    for (at, expected) in &scenario.alerts {
        for name in alert_names {
            writeln!(
                test,
                "  - eval_time: {at}\n    alertname: {name}\n    exp_alerts:"
            )
            .unwrap();
            for (slo, severity, long, short) in expected {
                let service = slo_service(policy_text, slo);
                writeln!(
                    test,
                    "    - exp_labels: {{slo: {slo}, service: {service}, severity: {severity}, long_window: {long}, short_window: {short}}}"
                )
                .unwrap();
                let a = &annotations[&(slo.to_string(), long.to_string(), short.to_string())];
                writeln!(
                    test,
                    "      exp_annotations: {}",
                    serde_json::to_string(a).unwrap()
                )
                .unwrap();
            }
            if expected.is_empty() {
                test.push_str("    []\n");
            }
        }
    }
    if !scenario.exprs.is_empty() {
        test.push_str("  promql_expr_test:\n");
        for (at, expr, samples) in &scenario.exprs {
            writeln!(
                test,
                "  - eval_time: {at}\n    expr: '{expr}'\n    exp_samples:"
            )
            .unwrap();
            for (labels, value) in samples {
                writeln!(test, "    - labels: '{labels}'\n      value: {value}").unwrap();
            }
            if samples.is_empty() {
                test.push_str("    []\n");
            }
        }
    }
    // `exp_alerts:` followed by `[]` on its own line is not YAML; fold it onto the key.
    let test = test
        .replace("exp_alerts:\n    []", "exp_alerts: []")
        .replace("exp_samples:\n    []", "exp_samples: []");
    common::write(dir.path(), "test.yaml", &test);

    let (ok, output) = common::run(
        Command::new(common::tool("promtool"))
            .current_dir(dir.path())
            .args(["test", "rules", "test.yaml"]),
    );
    assert!(
        ok,
        "promtool test rules failed:\n{output}\n--- test.yaml ---\n{test}\n--- rules.yaml ---\n{yaml}"
    );
}

/// An expression that is 1 when `expr` is within 1e-9 of `value` (0 otherwise).
fn within(expr: &str, value: f64) -> String {
    format!("abs({expr} - {value}) < bool 1e-9")
}

fn slo_service<'a>(policy_text: &'a str, slo: &str) -> &'a str {
    // Each scenario's service is the job named in its policy; find it after the SLO's name.
    let after = &policy_text[policy_text.find(&format!("name: {slo}}}")).unwrap()..];
    let line = after
        .lines()
        .find(|l| l.trim_start().starts_with("service:"))
        .unwrap();
    line.trim_start().trim_start_matches("service:").trim()
}

#[test]
fn a_fast_burn_pages_and_a_slow_burn_opens_a_ticket() {
    // fast: 600 requests/min, 12 failing: 2% errors, burn rate 20.
    // slow: 600 requests/min, 1.2 failing: 0.2% errors, burn rate 2.
    // healthy: 600 requests/min, 0.3 failing: 0.05%, burn rate 0.5.
    let (fast, slow, healthy) = (
        12.0 / 600.0 / BUDGET,
        1.2 / 600.0 / BUDGET,
        0.3 / 600.0 / BUDGET,
    );
    assert!(fast > PAGE_1H_5M);
    assert!(slow > TICKET_3D_6H && slow < TICKET_1D_2H);
    assert!(healthy < TICKET_3D_6H);

    let text = [
        policy("fast-burn", "fast", ""),
        policy("slow-burn", "slow", ""),
        policy("healthy", "healthy", ""),
    ]
    .concat();
    let scenario = Scenario {
        series: vec![
            counter("fast", "200", "0+588x400"),
            counter("fast", "500", "0+12x400"),
            counter("slow", "200", "0+598.8x400"),
            counter("slow", "500", "0+1.2x400"),
            counter("healthy", "200", "0+599.7x400"),
            counter("healthy", "500", "0+0.3x400"),
        ],
        alerts: vec![(
            "3h",
            vec![
                ("fast-burn", "page", "1h", "5m"),
                ("fast-burn", "page", "6h", "30m"),
                ("fast-burn", "ticket", "1d", "2h"),
                ("fast-burn", "ticket", "3d", "6h"),
                ("slow-burn", "ticket", "3d", "6h"),
            ],
        )],
        // promtool compares exactly; compare within 1e-9 in PromQL instead.
        exprs: vec![(
            "3h",
            within(
                "burnguard:sli_error:ratio_rate1h{slo=\"slow-burn\"}",
                1.2 / 600.0,
            ),
            vec![("{slo=\"slow-burn\", service=\"slow\"}".into(), 1.0)],
        )],
    };
    promtool_test(&text, scenario, &["ErrorBudgetBurn"]);
}

#[test]
fn recovery_clears_each_page_within_about_its_short_window() {
    // 2% errors for the first 2h, then none. The 1h/5m row must stop within ~5m of recovery.
    // The 6h/30m row keeps firing while the last 30m still hold more than 6 * 0.1% errors:
    // 2% * (30 - x) / 30 > 0.6% while x < 21 minutes; it must be quiet well after that.
    let quiet_after_minutes = 30.0 * (1.0 - PAGE_6H_30M * BUDGET / 0.02);
    assert!((quiet_after_minutes - 21.0_f64).abs() < 1e-9);

    let text = policy("recovering", "recovering", "");
    let scenario = Scenario {
        series: vec![
            counter("recovering", "200", "0+588x120 70560+600x200"),
            counter("recovering", "500", "0+12x120 1440+0x200"),
        ],
        alerts: vec![
            (
                "1h50m",
                vec![
                    ("recovering", "page", "1h", "5m"),
                    ("recovering", "page", "6h", "30m"),
                    ("recovering", "ticket", "1d", "2h"),
                    ("recovering", "ticket", "3d", "6h"),
                ],
            ),
            // 10 minutes after recovery: the fast page is gone, the 6h/30m page is not yet.
            (
                "2h10m",
                vec![
                    ("recovering", "page", "6h", "30m"),
                    ("recovering", "ticket", "1d", "2h"),
                    ("recovering", "ticket", "3d", "6h"),
                ],
            ),
            // 35 minutes after recovery no page fires; tickets (2h/6h short windows) remain.
            (
                "2h35m",
                vec![
                    ("recovering", "ticket", "1d", "2h"),
                    ("recovering", "ticket", "3d", "6h"),
                ],
            ),
        ],
        exprs: vec![],
    };
    promtool_test(&text, scenario, &["ErrorBudgetBurn"]);
}

#[test]
fn no_traffic_is_no_data_and_a_missing_error_series_is_zero_errors() {
    // idle: counters exist but never move. clean: traffic, and no 500 series at all.
    let text = [policy("idle", "idle", ""), policy("clean", "clean", "")].concat();
    let scenario = Scenario {
        series: vec![
            counter("idle", "200", "100+0x200"),
            counter("idle", "500", "7+0x200"),
            counter("clean", "200", "0+600x200"),
        ],
        alerts: vec![("2h", vec![])],
        exprs: vec![
            (
                "2h",
                "burnguard:sli_error:ratio_rate5m{slo=\"idle\"}".into(),
                vec![],
            ),
            (
                "2h",
                "burnguard:slo_error_budget_remaining:ratio{slo=\"idle\"}".into(),
                vec![],
            ),
            (
                "2h",
                "burnguard:sli_error:ratio_rate5m{slo=\"clean\"}".into(),
                vec![(
                    "burnguard:sli_error:ratio_rate5m{slo=\"clean\", service=\"clean\"}".into(),
                    0.0,
                )],
            ),
            (
                "2h",
                "burnguard:slo_error_budget_remaining:ratio{slo=\"clean\"}".into(),
                vec![(
                    "burnguard:slo_error_budget_remaining:ratio{slo=\"clean\", service=\"clean\"}"
                        .into(),
                    1.0,
                )],
            ),
        ],
    };
    promtool_test(&text, scenario, &["ErrorBudgetBurn"]);
}

#[test]
fn a_quiet_service_under_min_events_does_not_page_on_one_failure() {
    // One request every 10 minutes, and the one at minute 50 fails: within the last 5m and
    // 1h that is 100% / ~17% errors, far above 14.4x. With minEvents: 20, the 5m window
    // (at most one event) and the 1h window (6 events) have no data, so nothing fires;
    // the same service without minEvents pages.
    let text = [
        policy("quiet-guarded", "quiet", "minEvents: 20"),
        policy("quiet-unguarded", "quiet", ""),
    ]
    .concat();
    let scenario = Scenario {
        series: vec![
            counter(
                "quiet",
                "200",
                "0 0 0 0 0 0 0 0 0 0 1 1 1 1 1 1 1 1 1 1 2 2 2 2 2 2 2 2 2 2 3 3 3 3 3 3 3 3 3 3 4 4 4 4 4 4 4 4 4 4 4 4 4 4 4",
            ),
            counter(
                "quiet",
                "500",
                "0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 1 1 1 1 1",
            ),
        ],
        alerts: vec![(
            "52m",
            vec![
                ("quiet-unguarded", "page", "1h", "5m"),
                ("quiet-unguarded", "page", "6h", "30m"),
                ("quiet-unguarded", "ticket", "1d", "2h"),
                ("quiet-unguarded", "ticket", "3d", "6h"),
            ],
        )],
        exprs: vec![(
            "52m",
            "burnguard:sli_error:ratio_rate1h{slo=\"quiet-guarded\"}".into(),
            vec![],
        )],
    };
    promtool_test(&text, scenario, &["ErrorBudgetBurn"]);
}
