//! Broken policies: each must be refused with the exact field path (and line, where the
//! parser knows it) of what is wrong, and nothing may panic on any input.

mod common;

use std::process::Command;

use burnguard::policies::{self, FileProblem};
use proptest::prelude::*;

const VALID: &str = r#"apiVersion: burnguard.dev/v1
kind: SLO
metadata:
  name: checkout-availability
spec:
  service: checkout
  objective: 99.9
  indicator:
    ratio:
      errors: sum(rate(http_requests_total{code=~"5.."}[{{.window}}]))
      total: sum(rate(http_requests_total[{{.window}}]))
"#;

/// `VALID` with one line replaced (`from` must occur exactly once).
fn with(from: &str, to: &str) -> String {
    assert_eq!(VALID.matches(from).count(), 1, "{from:?} must occur once");
    VALID.replace(from, to)
}

fn problems(text: &str) -> Vec<FileProblem> {
    let (slos, problems) = policies::parse_source("test.yaml", text);
    assert!(
        problems.is_empty() != slos.is_empty() || text.contains("---"),
        "a single document is either valid or has problems"
    );
    problems
}

struct Case {
    name: &'static str,
    text: String,
    path: &'static str,
    line: Option<u64>,
    says: &'static str,
}

fn case(
    name: &'static str,
    text: String,
    path: &'static str,
    line: Option<u64>,
    says: &'static str,
) -> Case {
    Case {
        name,
        text,
        path,
        line,
        says,
    }
}

#[test]
fn each_broken_policy_names_the_field_that_is_wrong() {
    let cases = vec![
        case(
            "objective of 100% leaves no budget",
            with("objective: 99.9", "objective: 100"),
            "spec.objective",
            Some(7),
            "strictly between 0 and 100",
        ),
        case(
            "objective of 0",
            with("objective: 99.9", "objective: 0"),
            "spec.objective",
            Some(7),
            "out of range",
        ),
        case(
            "objective as a fraction string",
            with("objective: 99.9", "objective: \"99.9%\""),
            "spec.objective",
            Some(7),
            "a percentage as a number",
        ),
        case(
            "objective missing",
            with("  objective: 99.9\n", ""),
            "spec.objective",
            None,
            "is required",
        ),
        case(
            "service missing",
            with("  service: checkout\n", ""),
            "spec.service",
            None,
            "is required",
        ),
        case(
            "name missing",
            with("  name: checkout-availability\n", "  labels: {}\n"),
            "metadata.name",
            None,
            "is required",
        ),
        case(
            "name with capitals",
            with("name: checkout-availability", "name: Checkout"),
            "metadata.name",
            Some(4),
            "lowercase",
        ),
        case(
            "reserved label",
            with(
                "  name: checkout-availability\n",
                "  name: checkout-availability\n  labels: {severity: high}\n",
            ),
            "metadata.labels.severity",
            None,
            "set by burnguard",
        ),
        case(
            "window in bad notation",
            with(
                "  objective: 99.9\n",
                "  objective: 99.9\n  window: 30 days\n",
            ),
            "spec.window",
            Some(8),
            "not a duration",
        ),
        case(
            "grouped by a label burnguard sets",
            with(
                "  objective: 99.9\n",
                "  objective: 99.9\n  groupBy: [route, severity]\n",
            ),
            "spec.groupBy[1]",
            Some(8),
            "`severity` is a label burnguard sets itself",
        ),
        case(
            "grouped by the same label twice",
            with(
                "  objective: 99.9\n",
                "  objective: 99.9\n  groupBy: [route, route]\n",
            ),
            "spec.groupBy[1]",
            Some(8),
            "listed twice",
        ),
        case(
            "grouped by something that is not a label name",
            with(
                "  objective: 99.9\n",
                "  objective: 99.9\n  groupBy: [http.route]\n",
            ),
            "spec.groupBy[0]",
            Some(8),
            "not a Prometheus label name",
        ),
        case(
            "a group limit of zero",
            with(
                "  objective: 99.9\n",
                "  objective: 99.9\n  groupBy: [route]\n  maxGroups: 0\n",
            ),
            "spec.maxGroups",
            Some(9),
            "expected 1 to 10000",
        ),
        case(
            "window shorter than the catalogue",
            with("  objective: 99.9\n", "  objective: 99.9\n  window: 1d\n"),
            "spec.window",
            None,
            "shorter than the 3d window",
        ),
        case(
            "typo in a field name",
            with("  objective: 99.9\n", "  objectve: 99.9\n"),
            "spec.objectve",
            None,
            "unknown field",
        ),
        case(
            "unknown field deep down",
            with("      total:", "      totl:"),
            "spec.indicator.ratio.totl",
            None,
            "unknown field",
        ),
        case(
            "errors query without window",
            with("code=~\"5..\"}[{{.window}}]", "code=~\"5..\"}[5m]"),
            "spec.indicator.ratio.errors",
            Some(10),
            "no {{.window}}",
        ),
        case(
            "total query that is not PromQL",
            with(
                "total: sum(rate(http_requests_total[{{.window}}]))",
                "total: sum(rate(http_requests_total[{{.window}}])",
            ),
            "spec.indicator.ratio.total",
            Some(11),
            "not valid PromQL",
        ),
        case(
            "misspelt placeholder",
            with(
                "total: sum(rate(http_requests_total[{{.window}}]))",
                "total: sum(rate(http_requests_total[{{.Window}}]))",
            ),
            "spec.indicator.ratio.total",
            Some(11),
            "no {{.window}}",
        ),
        case(
            "errors and good together",
            with(
                "    ratio:\n",
                "    ratio:\n      good: sum(rate(ok[{{.window}}]))\n",
            ),
            "spec.indicator.ratio",
            None,
            "both errors and good",
        ),
        case(
            "two indicators",
            with(
                "  indicator:\n",
                "  indicator:\n    raw: {errorRatio: 'x[{{.window}}]'}\n",
            ),
            "spec.indicator",
            None,
            "exactly one",
        ),
        case(
            "no indicator",
            VALID.split("  indicator:").next().unwrap().to_string(),
            "spec.indicator",
            None,
            "is required",
        ),
        case(
            "minEvents negative",
            with(
                "  objective: 99.9\n",
                "  objective: 99.9\n  minEvents: -3\n",
            ),
            "spec.minEvents",
            Some(8),
            "whole number",
        ),
        case(
            "budget rule without a condition",
            with(
                "  objective: 99.9\n",
                "  objective: 99.9\n  budgetPolicy: [{run: x}]\n",
            ),
            "spec.budgetPolicy[0].when",
            None,
            "is required",
        ),
        case(
            "budget rule freezing nothing",
            with(
                "  objective: 99.9\n",
                "  objective: 99.9\n  budgetPolicy: [{when: {budgetRemainingBelow: 15}, freeze: {}}]\n",
            ),
            "spec.budgetPolicy[0].freeze",
            None,
            "freezes nothing",
        ),
        case(
            "budget rule with a bad selector",
            with(
                "  objective: 99.9\n",
                "  objective: 99.9\n  budgetPolicy: [{when: {alert: page}, freeze: {namespace: shop, selector: 'a b c'}}]\n",
            ),
            "spec.budgetPolicy[0].freeze.selector",
            Some(8),
            "not a label selector",
        ),
        case(
            "budget rule with a bad duration",
            with(
                "  objective: 99.9\n",
                "  objective: 99.9\n  budgetPolicy: [{when: {burnRateAbove: 3.6, for: 3 days, window: 1h}, run: x}]\n",
            ),
            "spec.budgetPolicy[0].when.for",
            Some(8),
            "not a duration",
        ),
        case(
            "budget below 100 percent",
            with(
                "  objective: 99.9\n",
                "  objective: 99.9\n  budgetPolicy: [{when: {budgetRemainingBelow: 150}, run: x}]\n",
            ),
            "spec.budgetPolicy[0].when.budgetRemainingBelow",
            Some(8),
            "out of range",
        ),
        case(
            "unknown alert catalogue",
            with(
                "  objective: 99.9\n",
                "  objective: 99.9\n  alerting: {windows: pyrra}\n",
            ),
            "spec.alerting.windows",
            None,
            "unknown catalogue",
        ),
        case(
            "short window not shorter",
            with(
                "  objective: 99.9\n",
                "  objective: 99.9\n  alerting:\n    windows: [{severity: page, long: 1h, short: 1h, budgetPercent: 2}]\n",
            ),
            "spec.alerting.windows[0].short",
            None,
            "not shorter than long",
        ),
        case(
            "long window past the SLO window",
            with(
                "  objective: 99.9\n",
                "  objective: 99.9\n  alerting:\n    windows: [{severity: page, long: 40d, short: 1h, budgetPercent: 2}]\n",
            ),
            "spec.alerting.windows[0].long",
            None,
            "longer than the SLO window",
        ),
        case(
            "severity people do not page on",
            with(
                "  objective: 99.9\n",
                "  objective: 99.9\n  alerting:\n    windows: [{severity: sms, long: 1h, short: 5m, burnRate: 14.4}]\n",
            ),
            "spec.alerting.windows[0].severity",
            Some(9),
            "page or ticket",
        ),
        case(
            "row with no threshold",
            with(
                "  objective: 99.9\n",
                "  objective: 99.9\n  alerting:\n    windows: [{severity: page, long: 1h, short: 5m}]\n",
            ),
            "spec.alerting.windows[0].budgetPercent",
            None,
            "is required",
        ),
        case(
            "a page label burnguard sets itself",
            with(
                "  objective: 99.9\n",
                "  objective: 99.9\n  alerting:\n    page: {labels: {slo: other}}\n",
            ),
            "spec.alerting.page.labels.slo",
            None,
            "set by burnguard itself",
        ),
        case(
            "an unknown alert catalogue",
            with(
                "  objective: 99.9\n",
                "  objective: 99.9\n  alerting:\n    windows: sloth\n",
            ),
            "spec.alerting.windows",
            None,
            "`none` (no alerts)",
        ),
        case(
            "wrong apiVersion",
            with(
                "apiVersion: burnguard.dev/v1",
                "apiVersion: monitoring.example.com/v1",
            ),
            "apiVersion",
            Some(1),
            "burnguard.dev/v1",
        ),
        case(
            "a burnguard kind under Sloth's apiVersion",
            with(
                "apiVersion: burnguard.dev/v1",
                "apiVersion: sloth.slok.dev/v1",
            ),
            "kind",
            Some(2),
            "expected `PrometheusServiceLevel`",
        ),
        case(
            "unknown kind in the right apiVersion",
            with("kind: SLO", "kind: Runbook"),
            "kind",
            Some(2),
            "expected `SLO` (or `ServiceLevelObjective`) or `Playbook`",
        ),
        case(
            "unknown kind",
            with("kind: SLO", "kind: Slo"),
            "kind",
            Some(2),
            "expected `SLO` (or `ServiceLevelObjective`) or `Playbook`",
        ),
        case(
            "not YAML",
            with("service: checkout", "service: [checkout"),
            "spec.service",
            Some(7),
            "illegal placement",
        ),
        case(
            "a list instead of a document",
            "- a\n- b\n".to_string(),
            "",
            Some(1),
            "a mapping with apiVersion",
        ),
    ];
    let latency = |body: &str| -> String {
        let base = VALID.split("  indicator:").next().unwrap();
        format!("{base}  indicator:\n    latency:\n{body}")
    };
    let latency_cases = vec![
        case(
            "histogram given with _bucket",
            latency("      histogram: rpc_seconds_bucket\n      threshold: 0.3\n"),
            "spec.indicator.latency.histogram",
            Some(10),
            "base name `rpc_seconds`",
        ),
        case(
            "selector without braces",
            latency(
                "      histogram: rpc_seconds\n      selector: 'job=\"x\"'\n      threshold: 0.3\n",
            ),
            "spec.indicator.latency.selector",
            Some(11),
            "in braces",
        ),
        case(
            "selector choosing le",
            latency(
                "      histogram: rpc_seconds\n      selector: '{le=\"1\"}'\n      threshold: 0.3\n",
            ),
            "spec.indicator.latency.selector",
            Some(11),
            "matches on `le`",
        ),
        case(
            "negative threshold",
            latency("      histogram: rpc_seconds\n      threshold: -0.3\n"),
            "spec.indicator.latency.threshold",
            Some(11),
            "positive number of seconds",
        ),
        case(
            "threshold missing",
            latency("      histogram: rpc_seconds\n"),
            "spec.indicator.latency.threshold",
            None,
            "is required",
        ),
    ];
    for case in cases.into_iter().chain(latency_cases) {
        let found = problems(&case.text);
        let hit = found.iter().find(|p| p.problem.path == case.path);
        let Some(hit) = hit else {
            panic!(
                "{}: no problem at `{}`; got:\n{}",
                case.name,
                case.path,
                render(&found)
            );
        };
        assert_eq!(
            hit.problem.line,
            case.line,
            "{}: line of {}",
            case.name,
            render(&found)
        );
        assert!(
            hit.problem.message.contains(case.says),
            "{}: message {:?} lacks {:?}",
            case.name,
            hit.problem.message,
            case.says
        );
        assert_eq!(hit.problem.document, 1, "{}", case.name);
    }
}

fn render(problems: &[FileProblem]) -> String {
    problems.iter().map(|p| format!("  {p}\n")).collect()
}

const PLAYBOOK: &str = r#"apiVersion: burnguard.dev/v1
kind: Playbook
metadata: {name: checkout-degrade}
spec:
  mode: auto
  cooldown: 30m
  steps:
    - name: turn off recommendations
      http: {method: PUT, url: "http://flags.internal/api/flags/recs", headers: {Authorization: "Bearer ${FLAGS_TOKEN}"}, body: '{"enabled": false}', expectStatus: [200, 204], timeout: 5s}
    - name: stop deploys
      freeze: {namespace: shop, deployments: [checkout]}
"#;

#[test]
fn each_broken_playbook_names_the_field_that_is_wrong() {
    let with_book = |from: &str, to: &str| {
        assert_eq!(PLAYBOOK.matches(from).count(), 1, "{from:?}");
        PLAYBOOK.replace(from, to)
    };
    let cases = vec![
        case(
            "mode nobody knows",
            with_book("mode: auto", "mode: yolo"),
            "spec.mode",
            Some(5),
            "auto, approve or dry-run",
        ),
        case(
            "cooldown in words",
            with_book("cooldown: 30m", "cooldown: half an hour"),
            "spec.cooldown",
            Some(6),
            "not a duration",
        ),
        case(
            "step with two actions",
            with_book(
                "      freeze: {namespace: shop, deployments: [checkout]}",
                "      freeze: {namespace: shop, deployments: [checkout]}\n      scale: {namespace: shop, deployment: checkout, replicas: 3}",
            ),
            "spec.steps[1]",
            None,
            "exactly one of",
        ),
        case(
            "step without a name",
            with_book("    - name: stop deploys\n", "    - idempotent: true\n"),
            "spec.steps[1].name",
            None,
            "is required",
        ),
        case(
            "url that is not http",
            with_book("http://flags.internal/api/flags/recs", "ftp://flags"),
            "spec.steps[0].http.url",
            Some(9),
            "not an http",
        ),
        case(
            "bad env reference",
            with_book("${FLAGS_TOKEN}", "${FLAGS TOKEN}"),
            "spec.steps[0].http.headers.Authorization",
            None,
            "not an environment variable",
        ),
        case(
            "status that is not HTTP",
            with_book("[200, 204]", "[200, 999]"),
            "spec.steps[0].http.expectStatus",
            None,
            "not an HTTP status",
        ),
        case(
            "freeze without a namespace",
            with_book(
                "{namespace: shop, deployments: [checkout]}",
                "{deployments: [checkout]}",
            ),
            "spec.steps[1].freeze.namespace",
            None,
            "is required",
        ),
        case(
            "rollback missing its deployment",
            with_book(
                "      freeze: {namespace: shop, deployments: [checkout]}",
                "      rollback: {namespace: shop}",
            ),
            "spec.steps[1].rollback.deployment",
            None,
            "is required",
        ),
        case(
            "scale without replicas",
            with_book(
                "      freeze: {namespace: shop, deployments: [checkout]}",
                "      scale: {namespace: shop, deployment: checkout}",
            ),
            "spec.steps[1].scale.replicas",
            None,
            "is required",
        ),
        case(
            "verify without a threshold",
            with_book(
                "      freeze: {namespace: shop, deployments: [checkout]}",
                "      verify: {window: 5m, within: 15m}",
            ),
            "spec.steps[1].verify.burnRateBelow",
            None,
            "is required",
        ),
    ];
    for case in cases {
        let (_, _, found) = policies::parse_policies("book.yaml", &case.text);
        let hit = found.iter().find(|p| p.problem.path == case.path);
        let Some(hit) = hit else {
            panic!(
                "{}: no problem at `{}`; got:\n{}",
                case.name,
                case.path,
                render(&found)
            );
        };
        assert_eq!(
            hit.problem.line,
            case.line,
            "{}: line of {}",
            case.name,
            render(&found)
        );
        assert!(
            hit.problem.message.contains(case.says),
            "{}: {:?} lacks {:?}",
            case.name,
            hit.problem.message,
            case.says
        );
    }
    let (_, books, found) = policies::parse_policies("book.yaml", PLAYBOOK);
    assert!(found.is_empty(), "{}", render(&found));
    assert_eq!(books[0].playbook.steps.len(), 2);
}

#[test]
fn a_budget_rule_must_name_a_loaded_playbook() {
    let dir = tempfile::tempdir().unwrap();
    let slo = with(
        "  objective: 99.9\n",
        "  objective: 99.9\n  budgetPolicy: [{when: {alert: page}, run: checkout-degrad}]\n",
    );
    let a = common::write(dir.path(), "slo.yaml", &slo);
    let b = common::write(dir.path(), "book.yaml", PLAYBOOK);
    let error = policies::load(&[a.clone(), b.clone()]).unwrap_err();
    assert_eq!(error.problems.len(), 1, "{:?}", error.problems);
    assert_eq!(error.problems[0].problem.path, "spec.budgetPolicy[0].run");
    assert!(
        error.problems[0]
            .problem
            .message
            .contains("known: checkout-degrade")
    );
    let fixed = common::write(
        dir.path(),
        "slo.yaml",
        &slo.replace("checkout-degrad}", "checkout-degrade}"),
    );
    let set = policies::load(&[fixed, b]).unwrap();
    assert_eq!(set.slos[0].slo.budget_policy.len(), 1);
    assert_eq!(set.playbooks.len(), 1);
}

#[test]
fn every_problem_of_a_document_is_reported_at_once() {
    let text = with("objective: 99.9", "objective: 120")
        .replace("service: checkout", "service: ''")
        .replace("  indicator:", "  window: 3x\n  extra: true\n  indicator:");
    let found = problems(&text);
    let paths: Vec<&str> = found.iter().map(|p| p.problem.path.as_str()).collect();
    for expected in [
        "spec.objective",
        "spec.service",
        "spec.window",
        "spec.extra",
    ] {
        assert!(
            paths.contains(&expected),
            "{expected} missing from {paths:?}"
        );
    }
}

#[test]
fn problems_in_later_documents_carry_their_document_number_and_file_line() {
    let second =
        with("objective: 99.9", "objective: 101").replace("checkout-availability", "second");
    let text = format!("{VALID}---\n{second}");
    let found = problems(&text);
    assert_eq!(found.len(), 1, "{}", render(&found));
    assert_eq!(found[0].problem.document, 2);
    // VALID is 11 lines and the marker is line 12, so the objective (line 7 of VALID) of the
    // second document is on line 12 + 7.
    assert_eq!(found[0].problem.line, Some(19));
}

#[test]
fn a_name_used_twice_across_files_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let a = common::write(dir.path(), "a.yaml", VALID);
    let b = common::write(dir.path(), "b.yaml", VALID);
    let error = policies::load(&[a, b]).unwrap_err();
    assert_eq!(error.problems.len(), 1);
    let problem = &error.problems[0];
    assert!(problem.source.ends_with("b.yaml"));
    assert_eq!(problem.problem.path, "metadata.name");
    assert!(
        problem.problem.message.contains("a.yaml"),
        "{}",
        problem.problem.message
    );
}

#[test]
fn validate_exits_1_and_prints_file_line_and_path() {
    let dir = tempfile::tempdir().unwrap();
    common::write(
        dir.path(),
        "bad.yaml",
        &with("objective: 99.9", "objective: 100"),
    );
    let (ok, output) = common::run(
        Command::new(env!("CARGO_BIN_EXE_burnguard"))
            .arg("validate")
            .arg(dir.path()),
    );
    assert!(!ok);
    let expected_prefix = format!(
        "{}:7: document 1, spec.objective: ",
        dir.path().join("bad.yaml").display()
    );
    assert!(output.contains(&expected_prefix), "{output}");
    assert!(output.contains("1 problem(s) found"), "{output}");
}

#[test]
fn a_missing_path_and_an_empty_directory_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let error =
        policies::load(&[dir.path().join("nope.yaml"), dir.path().to_path_buf()]).unwrap_err();
    assert_eq!(error.problems.len(), 2, "{:?}", error.problems);
    assert!(error.problems[0].problem.message.contains("cannot be read"));
    assert!(error.problems[1].problem.message.contains("no *.yaml"));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,300}") {
        let _ = policies::parse_source("fuzz.yaml", &text);
    }

    #[test]
    fn a_valid_policy_with_any_line_damaged_never_panics(line in 0usize..11, junk in "[ -~]{0,40}") {
        let mut lines: Vec<String> = VALID.lines().map(String::from).collect();
        lines[line] = junk;
        let _ = policies::parse_source("fuzz.yaml", &lines.join("\n"));
    }
}
