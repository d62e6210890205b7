//! Sloth, Pyrra and OpenSLO files read as they are. Every fixture under
//! `tests/fixtures/import/` (written from each format's documented fields and examples) goes
//! import -> validate -> rules -> `promtool check rules`, and the imported burnguard documents
//! are the same SLOs as the foreign ones; every field that cannot be mapped is refused with its
//! exact path; an OpenSLO SLO finds its SLI in another file; export to OpenSLO reads back as the
//! same SLO.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use burnguard::domain::policy::{BadEvents, Indicator, Slo, Window};
use burnguard::domain::spec::SourceFormat;
use burnguard::policies::{self, FileProblem, LoadOptions};

fn burnguard() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_burnguard"));
    command.current_dir(common::repo_root());
    command
}

fn fixtures() -> PathBuf {
    common::repo_root().join("tests/fixtures/import")
}

fn render(problems: &[FileProblem]) -> String {
    problems.iter().map(|p| format!("  {p}\n")).collect()
}

/// The SLOs of `paths` by name, or a panic listing the problems.
fn slos_by_name(paths: &[PathBuf], options: &LoadOptions) -> BTreeMap<String, Slo> {
    let set =
        policies::load_with(paths, options).unwrap_or_else(|e| panic!("{}", render(&e.problems)));
    set.slos
        .into_iter()
        .map(|l| (l.slo.name.clone(), l.slo))
        .collect()
}

#[test]
fn every_fixture_imports_validates_and_its_rules_pass_promtool() {
    let mut fixture_files = Vec::new();
    for format in ["sloth", "pyrra", "openslo"] {
        let dir = fixtures().join(format);
        for entry in std::fs::read_dir(&dir).unwrap() {
            fixture_files.push(entry.unwrap().path());
        }
    }
    assert!(fixture_files.len() >= 5, "{fixture_files:?}");
    for format in ["sloth", "pyrra", "openslo"] {
        let input = fixtures().join(format);
        let out = tempfile::tempdir().unwrap();
        let (ok, output) = common::run(
            burnguard()
                .arg("import")
                .arg(&input)
                .arg("-o")
                .arg(out.path()),
        );
        assert!(ok, "import {format}:\n{output}");

        // Every imported file says where each document came from.
        for entry in std::fs::read_dir(out.path()).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            let source = input.join(path.file_name().unwrap());
            for line in text.lines().filter(|l| l.starts_with("# Imported")) {
                assert!(
                    line.contains(&source.display().to_string()) && line.contains(", document "),
                    "{line}"
                );
            }
            assert_eq!(
                text.matches("# Imported by burnguard from").count(),
                text.matches("kind: SLO").count(),
                "{text}"
            );
        }

        let (ok, output) = common::run(burnguard().arg("validate").arg(out.path()));
        assert!(ok, "validate the imported {format} files:\n{output}");

        let rules = out.path().join("rules.yml.out");
        let (ok, output) = common::run(
            burnguard()
                .arg("rules")
                .arg(out.path())
                .arg("-o")
                .arg(&rules),
        );
        assert!(ok, "rules {format}:\n{output}");
        let (ok, output) = common::run(
            Command::new(common::tool("promtool"))
                .args(["check", "rules"])
                .arg(&rules),
        );
        assert!(
            ok && output.contains("SUCCESS"),
            "promtool {format}:\n{output}"
        );

        // The imported documents are the same SLOs as the files they came from, and so are
        // the rules generated from either.
        let foreign = slos_by_name(std::slice::from_ref(&input), &LoadOptions::default());
        let imported = slos_by_name(&[out.path().to_path_buf()], &LoadOptions::default());
        assert_eq!(imported, foreign, "{format}");
        let (ok, direct) = common::run(burnguard().arg("rules").arg(&input));
        assert!(ok, "{direct}");
        let from_import = std::fs::read_to_string(&rules).unwrap();
        let body = |text: &str| text.lines().skip(1).collect::<Vec<_>>().join("\n");
        assert_eq!(body(&direct), body(&from_import), "{format}");
    }
}

#[test]
fn each_format_maps_its_fields_to_what_burnguard_means_by_them() {
    let slos = slos_by_name(&[fixtures()], &LoadOptions::default());
    let names: Vec<&str> = slos.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "checkout-availability",
            "checkout-cart-errors",
            "checkout-logins",
            "checkout-monthly",
            "checkout-payment-latency",
            "checkout-requests-availability",
            "search-index-freshness",
            "search-queries-availability",
            "token-refresh",
            "web-errors",
            "web-errors-by-route",
            "web-latency",
            "web-probe",
        ]
    );
    let rows = |slo: &Slo| -> Vec<String> {
        slo.alerting
            .windows
            .iter()
            .map(|w| {
                format!(
                    "{} {}/{} x{}",
                    w.severity,
                    w.long,
                    w.short,
                    burnguard::domain::sli::promql_number(w.burn_rate_threshold)
                )
            })
            .collect()
    };
    let google_30d = [
        "page 1h/5m x14.4",
        "page 6h/30m x6",
        "ticket 1d/2h x3",
        "ticket 3d/6h x1",
    ];

    // Sloth: `<service>-<name>`, merged labels, per-severity labels, disabled severities.
    let s = &slos["checkout-requests-availability"];
    assert_eq!(s.service, "checkout");
    assert!((s.objective.ratio() - 0.999).abs() < 1e-12);
    assert_eq!(s.window.to_string(), "30d");
    assert_eq!(rows(s), google_30d);
    assert_eq!(s.labels.get("owner"), Some("payments"));
    assert_eq!(s.labels.get("category"), Some("availability"));
    assert_eq!(s.alerting.name, "CheckoutAvailabilityBurn");
    assert_eq!(s.alerting.page.labels["severity"], "critical");
    assert_eq!(s.alerting.ticket.labels["severity"], "warning");
    assert_eq!(
        s.alerting.annotations["runbook"],
        "https://runbooks.example.com/checkout/availability"
    );
    assert_eq!(
        rows(&slos["checkout-payment-latency"]),
        ["page 1h/5m x14.4", "page 6h/30m x6"]
    );
    assert!(slos["checkout-cart-errors"].alerting.windows.is_empty());
    assert_eq!(slos["checkout-cart-errors"].indicator.kind(), "raw");
    assert_eq!(
        rows(&slos["search-index-freshness"]),
        ["ticket 1d/2h x3", "ticket 3d/6h x1"]
    );
    assert!((slos["search-queries-availability"].objective.ratio() - 0.9995).abs() < 1e-12);

    // Pyrra: propagated labels, its own scaled rows, alerts switched off.
    let w = &slos["web-errors"];
    assert_eq!(w.service, "web");
    assert_eq!(w.labels.get("team"), Some("frontend"));
    assert_eq!(w.labels.get("namespace"), Some("web"));
    assert!(
        w.labels.get("prometheus").is_none(),
        "Kubernetes labels stay behind"
    );
    assert_eq!(w.window.to_string(), "28d");
    assert_eq!(
        rows(w),
        [
            "page 1h/5m x14",
            "page 6h/30m x7",
            "ticket 1d/2h x2",
            "ticket 4d/6h x1"
        ]
    );
    assert_eq!(w.alerting.name, "WebErrorBudgetBurn");
    assert!(slos["web-probe"].alerting.windows.is_empty());
    assert_eq!(slos["web-probe"].service, "web-probe");

    // OpenSLO: target as a fraction, 4w windows, an SLI from the other file, raw success.
    let c = &slos["checkout-availability"];
    assert!((c.objective.ratio() - 0.999).abs() < 1e-12);
    assert_eq!(rows(c), google_30d);
    assert_eq!(slos["checkout-logins"].window.to_string(), "28d");
    // OpenSLO's calendar-aligned window: a month in Berlin; Pyrra's grouping: by route, with
    // the queries summed by it.
    assert_eq!(
        slos["checkout-monthly"].window_name(),
        "month in Europe/Berlin"
    );
    let by_route = &slos["web-errors-by-route"];
    assert_eq!(by_route.group_by, vec!["route".to_string()]);
    let Indicator::Ratio { bad, total } = &by_route.indicator else {
        panic!("{:?}", by_route.indicator)
    };
    assert!(
        total.template().starts_with("sum by (route) (rate("),
        "{total:?}"
    );
    assert!(matches!(bad, BadEvents::Errors(e) if e.template().starts_with("sum by (route) (")));
    assert_eq!(
        slos["checkout-logins"].indicator,
        burnguard::domain::policy::Indicator::Ratio {
            bad: burnguard::domain::policy::BadEvents::Good(
                burnguard::domain::policy::QueryTemplate::new(
                    "sum(rate(login_attempts_total{result=\"success\"}[{{.window}}]))"
                )
            ),
            total: burnguard::domain::policy::QueryTemplate::new(
                "sum(rate(login_attempts_total[{{.window}}]))"
            ),
        }
    );
    assert_eq!(
        slos["token-refresh"].indicator,
        burnguard::domain::policy::Indicator::Raw {
            error_ratio: burnguard::domain::policy::QueryTemplate::new(
                "1 - (avg_over_time(identity:token_refresh_success:ratio[{{.window}}]))"
            )
        }
    );
}

#[test]
fn the_sloth_window_comes_from_the_window_flag() {
    let file = fixtures().join("sloth/checkout.yaml");
    let options = LoadOptions {
        sloth_window: Window::parse("28d").unwrap(),
    };
    let slos = slos_by_name(std::slice::from_ref(&file), &options);
    let s = &slos["checkout-requests-availability"];
    assert_eq!(s.window.to_string(), "28d");
    let factors: Vec<String> = s
        .alerting
        .windows
        .iter()
        .map(|w| burnguard::domain::sli::promql_number(w.burn_rate_threshold))
        .collect();
    assert_eq!(factors, ["13.44", "5.6", "2.8", "0.933333333333"]);

    let (ok, output) = common::run(burnguard().args(["validate", "--window", "28d"]).arg(&file));
    assert!(ok, "{output}");
    assert!(output.contains("window=28d"), "{output}");
    assert!(output.contains("x13.44"), "{output}");

    // A window too short for Sloth's alert rows is refused at each SLO that alerts.
    let (ok, output) = common::run(burnguard().args(["validate", "--window", "1d"]).arg(&file));
    assert!(!ok);
    assert!(
        output.contains("document 1, slos[0]: the SLO window 1d (from --window"),
        "{output}"
    );
    assert!(
        !output.contains("slos[2]"),
        "alerts off, no window needed:\n{output}"
    );
}

/// One unmappable or wrong field: the file's text, the exact path, line, and words.
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

const SLOTH: &str = r#"version: prometheus/v1
service: checkout
slos:
  - name: requests
    objective: 99.9
    sli:
      events:
        error_query: sum(rate(http_requests_total{code=~"5.."}[{{.window}}]))
        total_query: sum(rate(http_requests_total[{{.window}}]))
    alerting:
      name: CheckoutBurn
"#;

const SLOTH_KUBE: &str = r#"apiVersion: sloth.slok.dev/v1
kind: PrometheusServiceLevel
metadata: {name: checkout}
spec:
  service: checkout
  slos:
    - name: requests
      objective: 99.9
      sli:
        events:
          errorQuery: sum(rate(http_requests_total{code=~"5.."}[{{.window}}]))
          totalQuery: sum(rate(http_requests_total[{{.window}}]))
"#;

const PYRRA: &str = r#"apiVersion: pyrra.dev/v1alpha1
kind: ServiceLevelObjective
metadata:
  name: api-errors
  namespace: api
spec:
  target: "99.9"
  window: 28d
  indicator:
    ratio:
      errors:
        metric: http_requests_total{job="api",code=~"5.."}
      total:
        metric: http_requests_total{job="api"}
"#;

const OPENSLO: &str = r#"apiVersion: openslo/v1
kind: SLO
metadata:
  name: api-availability
spec:
  service: api
  indicator:
    metadata: {name: api-errors}
    spec:
      ratioMetric:
        counter: true
        bad:
          metricSource:
            type: Prometheus
            spec:
              query: sum(rate(http_requests_total{code=~"5.."}[{{.window}}]))
        total:
          metricSource:
            type: Prometheus
            spec:
              query: sum(rate(http_requests_total[{{.window}}]))
  timeWindow:
    - duration: 30d
      isRolling: true
  budgetingMethod: Occurrences
  objectives:
    - target: 0.999
"#;

/// The OpenSLO SLO with `indicatorRef: api-errors` instead of its inline indicator.
fn with_indicator_ref(slo: &str) -> String {
    let start = slo.find("  indicator:\n").unwrap();
    let end = slo.find("  timeWindow:").unwrap();
    format!(
        "{}  indicatorRef: api-errors\n{}",
        &slo[..start],
        &slo[end..]
    )
}

/// `base` with `from` (which must occur once) replaced by `to`.
fn edit(base: &str, from: &str, to: &str) -> String {
    assert_eq!(base.matches(from).count(), 1, "{from:?} must occur once");
    base.replace(from, to)
}

#[test]
fn every_valid_base_document_imports() {
    for base in [SLOTH, SLOTH_KUBE, PYRRA, OPENSLO] {
        let (slos, problems) = policies::parse_source("base.yaml", base);
        assert!(problems.is_empty(), "{}", render(&problems));
        assert_eq!(slos.len(), 1, "{base}");
    }
}

#[test]
fn each_field_that_cannot_be_mapped_is_refused_at_its_path() {
    let cases = vec![
        // Sloth.
        case(
            "a Sloth SLI plugin",
            edit(
                SLOTH,
                "    sli:\n",
                "    sli:\n      plugin: {id: sloth-common/availability}\n",
            ),
            "slos[0].sli.plugin",
            Some(7),
            "plugins are not supported",
        ),
        case(
            "Sloth info labels",
            edit(
                SLOTH,
                "    objective: 99.9\n",
                "    objective: 99.9\n    infoLabels: {tier: gold}\n",
            ),
            "slos[0].infoLabels",
            Some(6),
            "no info series",
        ),
        case(
            "Sloth rule group intervals",
            edit(
                SLOTH,
                "    objective: 99.9\n",
                "    objective: 99.9\n    interval: {all: 1m}\n",
            ),
            "slos[0].interval",
            Some(6),
            "global evaluation interval",
        ),
        case(
            "a Sloth objective of 100",
            edit(SLOTH, "objective: 99.9", "objective: 100"),
            "slos[0].objective",
            Some(5),
            "leaves no error budget",
        ),
        case(
            "a Sloth id that is not a burnguard name",
            edit(SLOTH, "name: requests", "name: Requests_Total"),
            "slos[0].name",
            Some(4),
            "Sloth identifies this SLO as `checkout-Requests_Total`",
        ),
        case(
            "a Sloth label burnguard sets itself",
            edit(
                SLOTH,
                "service: checkout\n",
                "service: checkout\nlabels: {slo: x}\n",
            ),
            "labels.slo",
            None,
            "set by burnguard itself",
        ),
        case(
            "a Sloth page label burnguard sets itself",
            edit(
                SLOTH,
                "      name: CheckoutBurn\n",
                "      name: CheckoutBurn\n      page_alert: {labels: {long_window: x}}\n",
            ),
            "slos[0].alerting.page_alert.labels.long_window",
            None,
            "set by burnguard itself",
        ),
        case(
            "a Sloth query without the window",
            edit(
                SLOTH,
                "[{{.window}}]))\n        total",
                "[5m]))\n        total",
            ),
            "slos[0].sli.events.error_query",
            Some(8),
            "has no {{.window}} placeholder",
        ),
        case(
            "Sloth events and raw at once",
            edit(
                SLOTH,
                "    sli:\n",
                "    sli:\n      raw: {error_ratio_query: 'x[{{.window}}]'}\n",
            ),
            "slos[0].sli",
            None,
            "both events and raw",
        ),
        case(
            "a Kubernetes Sloth query in camelCase",
            edit(
                SLOTH_KUBE,
                "[{{.window}}]))\n          total",
                "[5m]))\n          total",
            ),
            "spec.slos[0].sli.events.errorQuery",
            Some(11),
            "has no {{.window}} placeholder",
        ),
        case(
            "a snake_case key in the Kubernetes form's metadata",
            edit(
                SLOTH_KUBE,
                "metadata: {name: checkout}",
                "metadata: {name: checkout, colour: red}",
            ),
            "metadata.colour",
            None,
            "unknown field",
        ),
        // Pyrra.
        case(
            "a Pyrra native histogram",
            edit(
                PYRRA,
                "    ratio:\n",
                "    latencyNative:\n      latency: 100ms\n      total: {metric: x_seconds}\n    ratio:\n",
            ),
            "spec.indicator.latencyNative",
            Some(11),
            "native histograms are not supported yet",
        ),
        case(
            "a Pyrra grouping by a label burnguard sets",
            edit(
                PYRRA,
                "    ratio:\n",
                "    ratio:\n      grouping: [route, slo]\n",
            ),
            "spec.indicator.ratio.grouping",
            Some(11),
            "`slo` cannot group an SLO",
        ),
        case(
            "a Pyrra absent alert",
            format!("{PYRRA}  alerting:\n    absent: true\n"),
            "spec.alerting.absent",
            Some(16),
            "no alert for a missing metric",
        ),
        case(
            "a Pyrra absent alert's name",
            format!("{PYRRA}  alerting:\n    absentName: Gone\n"),
            "spec.alerting.absentName",
            Some(16),
            "no alert for a missing metric",
        ),
        case(
            "Pyrra dynamic burn rates",
            format!("{PYRRA}  alerting:\n    burnRateType: dynamic\n"),
            "spec.alerting.burnRateType",
            Some(16),
            "thresholds are static",
        ),
        case(
            "a Pyrra target that is not a number",
            edit(PYRRA, "target: \"99.9\"", "target: \"high\""),
            "spec.target",
            Some(7),
            "is not a number",
        ),
        case(
            "a Pyrra metric that is a whole query",
            edit(
                PYRRA,
                "metric: http_requests_total{job=\"api\"}",
                "metric: sum(rate(http_requests_total[5m]))",
            ),
            "spec.indicator.ratio.total.metric",
            Some(14),
            "not a plain selector",
        ),
        case(
            "a Pyrra label burnguard sets itself",
            edit(
                PYRRA,
                "  namespace: api\n",
                "  namespace: api\n  labels: {pyrra.dev/slo: x}\n",
            ),
            "metadata.labels.pyrra.dev/slo",
            None,
            "set by burnguard itself",
        ),
        // OpenSLO.
        case(
            "a Datadog metric source",
            edit(
                OPENSLO,
                "            type: Prometheus\n            spec:\n              query: sum(rate(http_requests_total{code",
                "            type: Datadog\n            spec:\n              query: sum(rate(http_requests_total{code",
            ),
            "spec.indicator.spec.ratioMetric.bad.metricSource.type",
            Some(14),
            "`Datadog` is not a Prometheus source",
        ),
        case(
            "a metric source naming a Datadog DataSource",
            format!(
                "{}---\napiVersion: openslo/v1\nkind: DataSource\nmetadata: {{name: dd}}\nspec: {{type: Datadog, connectionDetails: {{site: eu}}}}\n",
                edit(
                    OPENSLO,
                    "            type: Prometheus\n            spec:\n              query: sum(rate(http_requests_total[",
                    "            metricSourceRef: dd\n            spec:\n              query: sum(rate(http_requests_total["
                )
            ),
            "spec.indicator.spec.ratioMetric.total.metricSource.metricSourceRef",
            Some(19),
            "names the DataSource in test.yaml document 2, whose type `Datadog` is not a Prometheus source",
        ),
        case(
            "a metric source field burnguard does not read",
            edit(
                OPENSLO,
                "              query: sum(rate(http_requests_total[",
                "              dataSourceID: 7\n              query: sum(rate(http_requests_total[",
            ),
            "spec.indicator.spec.ratioMetric.total.metricSource.spec.dataSourceID",
            None,
            "reads only `query`",
        ),
        case(
            "a calendar on a rolling window",
            edit(
                OPENSLO,
                "      isRolling: true\n",
                "      isRolling: true\n      calendar: {startTime: '2024-01-01 00:00:00', timeZone: UTC}\n",
            ),
            "spec.timeWindow[0].calendar",
            Some(25),
            "isRolling: false",
        ),
        case(
            "a window that is not rolling, without its calendar",
            edit(OPENSLO, "isRolling: true", "isRolling: false"),
            "spec.timeWindow[0].calendar",
            None,
            "needs calendar",
        ),
        case(
            "a rolling window in months",
            edit(OPENSLO, "duration: 30d", "duration: 1M"),
            "spec.timeWindow[0].duration",
            Some(23),
            "only calendar windows use",
        ),
        case(
            "a calendar quarter",
            edit(
                OPENSLO,
                "    - duration: 30d\n      isRolling: true\n",
                "    - duration: 1Q\n      isRolling: false\n      calendar: {startTime: '2024-01-01 00:00:00', timeZone: UTC}\n",
            ),
            "spec.timeWindow[0].duration",
            Some(23),
            "use 1M (a month) or 1w (a week)",
        ),
        case(
            "calendar weeks from a Tuesday",
            edit(
                OPENSLO,
                "    - duration: 30d\n      isRolling: true\n",
                "    - duration: 1w\n      isRolling: false\n      calendar: {startTime: '2024-01-02 00:00:00', timeZone: UTC}\n",
            ),
            "spec.timeWindow[0].calendar.startTime",
            Some(25),
            "start on Monday at 00:00",
        ),
        case(
            "a calendar in a zone that does not exist",
            edit(
                OPENSLO,
                "    - duration: 30d\n      isRolling: true\n",
                "    - duration: 1M\n      isRolling: false\n      calendar: {startTime: '2024-01-01 00:00:00', timeZone: Mars/Olympus_Mons}\n",
            ),
            "spec.timeWindow[0].calendar.timeZone",
            Some(25),
            "not a time zone of the IANA database",
        ),
        case(
            "timeslice budgeting",
            edit(
                OPENSLO,
                "budgetingMethod: Occurrences",
                "budgetingMethod: Timeslices",
            ),
            "spec.budgetingMethod",
            Some(25),
            "`Timeslices` is not supported yet",
        ),
        case(
            "ratio timeslice budgeting",
            edit(
                OPENSLO,
                "budgetingMethod: Occurrences",
                "budgetingMethod: RatioTimeslices",
            ),
            "spec.budgetingMethod",
            Some(25),
            "`RatioTimeslices` is not supported yet",
        ),
        case(
            "a time slice target",
            edit(
                OPENSLO,
                "    - target: 0.999\n",
                "    - target: 0.999\n      timeSliceTarget: 0.95\n",
            ),
            "spec.objectives[0].timeSliceTarget",
            Some(28),
            "time slices are not supported yet",
        ),
        case(
            "a threshold metric",
            edit(
                OPENSLO,
                "      ratioMetric:\n",
                "      thresholdMetric:\n        metricSource: {type: Prometheus, spec: {query: up}}\n      ratioMetric:\n",
            ),
            "spec.indicator.spec.thresholdMetric",
            Some(11),
            "threshold metrics are not supported yet",
        ),
        case(
            "a threshold objective",
            edit(
                OPENSLO,
                "    - target: 0.999\n",
                "    - target: 0.999\n      op: lte\n",
            ),
            "spec.objectives[0].op",
            Some(28),
            "threshold objectives",
        ),
        case(
            "two objectives",
            edit(
                OPENSLO,
                "    - target: 0.999\n",
                "    - target: 0.999\n    - target: 0.99\n",
            ),
            "spec.objectives[1]",
            Some(27),
            "several objectives per SLO are not supported yet",
        ),
        case(
            "an alert policy",
            format!("{OPENSLO}  alertPolicies:\n    - alertPolicyRef: page-on-burn\n"),
            "spec.alertPolicies",
            Some(29),
            "has no equivalent yet",
        ),
        case(
            "a list as a label value",
            edit(
                OPENSLO,
                "  name: api-availability\n",
                "  name: api-availability\n  labels: {tags: [auth, edge]}\n",
            ),
            "metadata.labels.tags",
            None,
            "is a list",
        ),
        case(
            "a label name Prometheus refuses",
            edit(
                OPENSLO,
                "  name: api-availability\n",
                "  name: api-availability\n  labels: {app.kubernetes.io/name: api}\n",
            ),
            "metadata.labels.app.kubernetes.io/name",
            None,
            "not a valid Prometheus label name",
        ),
        case(
            "a bare selector that is not marked a counter",
            edit(OPENSLO, "        counter: true\n", "").replace(
                "query: sum(rate(http_requests_total[{{.window}}]))",
                "query: http_requests_total",
            ),
            "spec.indicator.spec.ratioMetric.total.metricSource.spec.query",
            Some(20),
            "not marked `counter: true`",
        ),
        case(
            "an instant query on a counter",
            edit(
                OPENSLO,
                "query: sum(rate(http_requests_total[{{.window}}]))",
                "query: sum(http_requests_total)",
            ),
            "spec.indicator.spec.ratioMetric.total.metricSource.spec.query",
            Some(21),
            "not a plain selector",
        ),
        case(
            "a raw ratio without its type",
            edit(
                OPENSLO,
                "        bad:\n          metricSource:\n            type: Prometheus\n            spec:\n              query: sum(rate(http_requests_total{code=~\"5..\"}[{{.window}}]))\n        total:\n",
                "        raw:\n",
            ),
            "spec.indicator.spec.ratioMetric.rawType",
            None,
            "failure (the query is the error ratio)",
        ),
        case(
            "a target of one",
            edit(OPENSLO, "target: 0.999", "target: 1"),
            "spec.objectives[0].target",
            Some(27),
            "strictly between 0 and 1",
        ),
        case(
            "an SLI that is not loaded",
            with_indicator_ref(OPENSLO),
            "spec.indicatorRef",
            Some(7),
            "names no SLI in the files loaded",
        ),
        case(
            "an OpenSLO document of an older version",
            edit(
                OPENSLO,
                "apiVersion: openslo/v1",
                "apiVersion: openslo/v1alpha",
            ),
            "apiVersion",
            Some(1),
            "`openslo/v1`",
        ),
    ];
    let mut failures = Vec::new();
    for case in cases {
        let (slos, found) = policies::parse_source("test.yaml", &case.text);
        let Some(hit) = found.iter().find(|p| p.problem.path == case.path) else {
            failures.push(format!(
                "{}: no problem at `{}`; got:\n{}",
                case.name,
                case.path,
                render(&found)
            ));
            continue;
        };
        if hit.problem.line != case.line {
            failures.push(format!(
                "{}: line {:?}, expected {:?}:\n{}",
                case.name,
                hit.problem.line,
                case.line,
                render(&found)
            ));
        }
        if !hit.problem.message.contains(case.says) {
            failures.push(format!(
                "{}: message {:?} lacks {:?}",
                case.name, hit.problem.message, case.says
            ));
        }
        if hit.problem.document != 1 {
            failures.push(format!("{}: document {}", case.name, hit.problem.document));
        }
        if slos.iter().any(|l| l.origin.document == 1) {
            failures.push(format!("{}: the document loaded anyway", case.name));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn an_sli_in_another_file_is_found_and_its_problems_stay_in_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let slo = with_indicator_ref(OPENSLO);
    let sli = |query: &str| {
        format!(
            "apiVersion: openslo/v1\nkind: SLI\nmetadata: {{name: api-errors}}\nspec:\n  ratioMetric:\n    counter: true\n    bad: {{metricSource: {{metricSourceRef: prom, spec: {{query: '{query}'}}}}}}\n    total: {{metricSource: {{metricSourceRef: prom, spec: {{query: 'http_requests_total'}}}}}}\n---\napiVersion: openslo/v1\nkind: DataSource\nmetadata: {{name: prom}}\nspec: {{type: Prometheus}}\n"
        )
    };
    let a = common::write(dir.path(), "a-slo.yaml", &slo);
    let b = common::write(
        dir.path(),
        "b-sli.yaml",
        &sli("http_requests_total{code=~\"5..\"}"),
    );
    let slos = slos_by_name(&[a.clone(), b.clone()], &LoadOptions::default());
    assert_eq!(
        slos["api-availability"].indicator,
        burnguard::domain::policy::Indicator::Ratio {
            bad: burnguard::domain::policy::BadEvents::Errors(
                burnguard::domain::policy::QueryTemplate::new(
                    "sum(rate(http_requests_total{code=~\"5..\"}[{{.window}}]))"
                )
            ),
            total: burnguard::domain::policy::QueryTemplate::new(
                "sum(rate(http_requests_total[{{.window}}]))"
            ),
        }
    );

    // A broken SLI is reported in its own file; the SLO says which SLI it could not use.
    let b = common::write(dir.path(), "b-sli.yaml", &sli("sum(rate(x[5m]))"));
    let error = policies::load(&[a, b]).unwrap_err();
    let at = |file: &str, path: &str| {
        error
            .problems
            .iter()
            .find(|p| p.source.ends_with(file) && p.problem.path == path)
            .unwrap_or_else(|| panic!("no {file} {path}:\n{}", render(&error.problems)))
    };
    let sli_problem = at("b-sli.yaml", "spec.ratioMetric.bad.metricSource.spec.query");
    assert_eq!(sli_problem.problem.line, Some(7));
    assert_eq!(sli_problem.problem.document, 1);
    let slo_problem = at("a-slo.yaml", "spec.indicatorRef");
    assert!(
        slo_problem
            .problem
            .message
            .contains("b-sli.yaml document 1"),
        "{}",
        slo_problem.problem.message
    );

    // Two SLIs of one name are refused where the second is.
    let c = common::write(
        dir.path(),
        "c-dup.yaml",
        "apiVersion: openslo/v1\nkind: SLI\nmetadata: {name: api-errors}\nspec: {ratioMetric: {raw: {metricSource: {type: Prometheus, spec: {query: 'x[{{.window}}]'}}}, rawType: failure}}\n",
    );
    let b = common::write(
        dir.path(),
        "b-sli.yaml",
        &sli("http_requests_total{code=~\"5..\"}"),
    );
    let error = policies::load(&[dir.path().join("a-slo.yaml"), b, c]).unwrap_err();
    assert!(
        error
            .problems
            .iter()
            .any(|p| p.source.ends_with("c-dup.yaml")
                && p.problem.path == "metadata.name"
                && p.problem.message.contains("already defined in")),
        "{}",
        render(&error.problems)
    );
}

#[test]
fn a_yaml_list_of_documents_numbers_its_items_and_keeps_their_lines() {
    let text = format!(
        "# three documents in one list\n{}",
        [SLOTH, PYRRA, OPENSLO]
            .iter()
            .map(|doc| {
                let mut lines = doc.lines();
                let first = lines.next().unwrap();
                let rest: Vec<String> = lines.map(|l| format!("  {l}")).collect();
                format!("- {first}\n{}\n", rest.join("\n"))
            })
            .collect::<String>()
            .replace("target: \"99.9\"", "target: \"101\"")
    );
    let (slos, problems) = policies::parse_source("list.yaml", &text);
    let formats: Vec<(usize, SourceFormat)> =
        slos.iter().map(|l| (l.origin.document, l.format)).collect();
    assert_eq!(
        formats,
        [(1, SourceFormat::Sloth), (3, SourceFormat::OpenSlo)]
    );
    assert_eq!(problems.len(), 1, "{}", render(&problems));
    let p = &problems[0].problem;
    // The comment, 11 lines of Sloth, then Pyrra's `target` on the 7th line of its item.
    assert_eq!(
        (p.document, p.path.as_str(), p.line),
        (2, "spec.target", Some(19))
    );
}

#[test]
fn calendar_windows_read_the_same_from_openslo_and_burnguard() {
    let openslo = edit(
        OPENSLO,
        "    - duration: 30d\n      isRolling: true\n",
        "    - duration: 1M\n      isRolling: false\n      calendar: {startTime: '2022-03-01 00:00:00', timeZone: Europe/Berlin}\n",
    );
    let burnguard_text = r#"apiVersion: burnguard.dev/v1
kind: SLO
metadata: {name: api-availability}
spec:
  service: api
  objective: 99.9
  window: {calendar: month, timeZone: Europe/Berlin}
  indicator:
    ratio:
      errors: sum(rate(http_requests_total{code=~"5.."}[{{.window}}]))
      total: sum(rate(http_requests_total[{{.window}}]))
"#;
    let (a, problems) = policies::parse_source("openslo.yaml", &openslo);
    assert!(problems.is_empty(), "{}", render(&problems));
    let (b, problems) = policies::parse_source("burnguard.yaml", burnguard_text);
    assert!(problems.is_empty(), "{}", render(&problems));
    let (a, b) = (&a[0].slo, &b[0].slo);
    assert_eq!(a.window_name(), "month in Europe/Berlin");
    assert_eq!(a.calendar, b.calendar);
    // The alert rows stay rolling, sized for 30 days.
    assert_eq!(a.alerting.windows, b.alerting.windows);
    assert_eq!(a.window.as_secs(), 30 * 86_400);
    // Weeks, with the zone defaulting to UTC in burnguard's form.
    let week = burnguard_text.replace(
        "{calendar: month, timeZone: Europe/Berlin}",
        "{calendar: week}",
    );
    let (w, problems) = policies::parse_source("week.yaml", &week);
    assert!(problems.is_empty(), "{}", render(&problems));
    assert_eq!(w[0].slo.window_name(), "week in UTC");
    // burnguard's own refusals name the field.
    for (window, says) in [
        ("{calendar: fortnight}", "expected week or month"),
        (
            "{calendar: month, timeZone: Europe/Atlantis}",
            "Europe/Atlantis",
        ),
        ("{calendar: month, zone: UTC}", "zone"),
        // Zone names are looked up in the compiled-in database, never on disk.
        (
            "{calendar: month, timeZone: ../../../../etc/passwd}",
            "not a time zone",
        ),
        (
            "{calendar: month, timeZone: /etc/localtime}",
            "not a time zone",
        ),
        ("30 days", "calendar period"),
    ] {
        let text = burnguard_text.replace("{calendar: month, timeZone: Europe/Berlin}", window);
        let (_, problems) = policies::parse_source("bad.yaml", &text);
        let shown = render(&problems);
        assert!(
            problems
                .iter()
                .any(|p| p.problem.path.starts_with("spec.window")),
            "{window}: {shown}"
        );
        assert!(shown.contains(says), "{window}: {shown}");
    }
}

#[test]
fn export_to_openslo_reads_back_as_the_same_slo() {
    let root = common::repo_root();
    let mut originals: Vec<Slo> = Vec::new();
    for path in [root.join("policies"), fixtures()] {
        originals.extend(slos_by_name(&[path], &LoadOptions::default()).into_values());
    }
    let mut exported_whole = 0;
    for original in &originals {
        let (text, lost) = burnguard::domain::spec::openslo::export(original).unwrap();
        let (back, problems) = policies::parse_source("exported.yaml", &text);
        assert!(problems.is_empty(), "{}\n{text}", render(&problems));
        let back = &back[0].slo;
        assert_eq!(back.name, original.name);
        // What OpenSLO cannot hold is named; the rest reads back exactly.
        let lost: Vec<&str> = lost.iter().map(|p| p.path.as_str()).collect();
        let mut expected = original.clone();
        let defaults = &back;
        if lost.contains(&"spec.minEvents") {
            expected.min_events = 0;
        }
        if lost.contains(&"spec.budgetPolicy") {
            expected.budget_policy.clear();
        }
        if lost.contains(&"spec.schedule") {
            expected.schedule = None;
        }
        if lost.contains(&"spec.groupBy") {
            expected.group_by.clear();
        }
        if lost.contains(&"spec.resolveAfter") {
            expected.resolve_after = defaults.resolve_after;
        }
        if lost.iter().any(|p| p.starts_with("spec.alerting")) {
            expected.alerting = defaults.alerting.clone();
        }
        assert_eq!(back, &expected, "{}: lost {lost:?}\n{text}", original.name);
        if lost.is_empty() {
            exported_whole += 1;
            assert_eq!(back, original);
        }
    }
    assert!(exported_whole >= 4, "{exported_whole}");

    // Through the commands: export, then validate what was written.
    let out = tempfile::tempdir().unwrap();
    let (ok, output) = common::run(
        burnguard()
            .args(["export", "--to", "openslo", "policies", "-o"])
            .arg(out.path()),
    );
    assert!(ok, "{output}");
    assert!(
        output.contains(
            "policies/checkout-availability.yaml: document 1, spec.budgetPolicy: not exported"
        ),
        "{output}"
    );
    assert!(
        output.contains("policies/login.yaml: document 1, spec.alerting.windows: not exported"),
        "{output}"
    );
    let (ok, output) = common::run(burnguard().arg("validate").arg(out.path()));
    assert!(ok, "{output}");
    assert!(output.contains("OpenSLO openslo/v1"), "{output}");
    let names = |path: &Path| -> Vec<String> {
        slos_by_name(&[path.to_path_buf()], &LoadOptions::default())
            .into_keys()
            .collect()
    };
    assert_eq!(names(out.path()), names(&root.join("policies")));
}

#[test]
fn import_refuses_everything_when_one_field_cannot_be_mapped_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let bad = common::write(
        dir.path(),
        "pyrra.yaml",
        &edit(
            PYRRA,
            "    ratio:\n",
            "    ratio:\n      grouping: [service]\n",
        ),
    );
    let out = dir.path().join("out");
    let (ok, output) = common::run(burnguard().arg("import").arg(&bad).arg("-o").arg(&out));
    assert!(!ok);
    assert!(
        output.contains(&format!(
            "{}:11: document 1, spec.indicator.ratio.grouping: `service` cannot group an SLO",
            bad.display()
        )),
        "{output}"
    );
    assert!(!out.exists(), "nothing is written");
}

#[test]
fn thousands_of_slos_across_formats_and_files_load() {
    let n = 2_000;
    let sloth: String = (0..n)
        .map(|i| {
            format!(
                "  - name: s{i}\n    objective: 99.9\n    sli: {{events: {{error_query: 'sum(rate(e{{i=\"{i}\"}}[{{{{.window}}}}]))', total_query: 'sum(rate(t{{i=\"{i}\"}}[{{{{.window}}}}]))'}}}}\n"
            )
        })
        .collect();
    let sloth = format!("version: prometheus/v1\nservice: big\nslos:\n{sloth}");
    let slos: String = (0..n)
        .map(|i| {
            format!(
                "- apiVersion: openslo/v1\n  kind: SLO\n  metadata: {{name: o{i}}}\n  spec: {{service: big, indicatorRef: sli{i}, objectives: [{{target: 0.99}}]}}\n"
            )
        })
        .collect();
    let slis: String = (0..n)
        .map(|i| {
            format!(
                "---\napiVersion: openslo/v1\nkind: SLI\nmetadata: {{name: sli{i}}}\nspec: {{ratioMetric: {{raw: {{metricSource: {{type: Prometheus, spec: {{query: 'r{{i=\"{i}\"}}[{{{{.window}}}}]'}}}}}}, rawType: failure}}}}\n"
            )
        })
        .collect();
    let sources = vec![
        ("sloth.yaml".to_string(), sloth),
        ("slos.yaml".to_string(), slos),
        ("slis.yaml".to_string(), slis),
    ];
    let (loaded, _, problems) = policies::parse_sources(&sources, &LoadOptions::default());
    assert!(
        problems.is_empty(),
        "{}",
        render(&problems[..problems.len().min(5)])
    );
    assert_eq!(loaded.len(), 2 * n);
    assert_eq!(loaded[n].slo.name, "o0");
    assert_eq!(loaded[n].origin.document, 1);
    assert_eq!(loaded[2 * n - 1].origin.document, n);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]

    #[test]
    fn a_foreign_document_with_any_line_damaged_never_panics(
        which in 0usize..4,
        line in 0usize..30,
        junk in "[ -~]{0,40}",
    ) {
        let base = [SLOTH, SLOTH_KUBE, PYRRA, OPENSLO][which];
        let mut lines: Vec<String> = base.lines().map(String::from).collect();
        let at = line % lines.len();
        lines[at] = junk;
        let _ = policies::parse_source("fuzz.yaml", &lines.join("\n"));
    }

    #[test]
    fn a_foreign_document_cut_anywhere_never_panics(which in 0usize..4, cut in 0usize..900) {
        let base = [SLOTH, SLOTH_KUBE, PYRRA, OPENSLO][which];
        let mut end = cut.min(base.len());
        while !base.is_char_boundary(end) {
            end -= 1;
        }
        let _ = policies::parse_source("fuzz.yaml", &base[..end]);
        let listed = format!("- {}", base[..end].replace('\n', "\n  "));
        let _ = policies::parse_source("fuzz.yaml", &listed);
    }
}
