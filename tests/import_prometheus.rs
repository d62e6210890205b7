//! Switching without rewriting gives the same numbers. Against a REAL Prometheus holding four
//! days of constructed history:
//! - one SLO written in burnguard's format, Sloth's, Pyrra's and OpenSLO's evaluates to the
//!   same error ratios and budget, and those are the ratios this file computes from the
//!   samples it generated;
//! - burnguard's numbers for a Sloth SLO are what Sloth's own recording rules would record:
//!   the test builds Sloth's rule expressions from Sloth's documented shape
//!   (`(error_query) / (total_query)` per window, the budget as
//!   `1 - ratio(period) / (1 - objective)`) and has Prometheus evaluate them.

mod common;

use std::collections::BTreeMap;

use burnguard::adapters::prometheus::{Prometheus, PrometheusConfig};
use burnguard::domain::policy::Window;
use burnguard::domain::spec::SourceFormat;
use burnguard::engine::evaluate::{Evaluator, ReadMode, SloEvaluation};
use burnguard::policies::{self, LoadOptions};
use burnguard::ports::MetricsSource;
use common::prometheus::{PrometheusServer, Series, counter, labels};

const STEP: i64 = 60;
/// 2026-01-04T00:00:00Z: the last sample.
const END: i64 = 1_767_484_800;
const START: i64 = END - 4 * 86_400;
/// Half a step after the last sample, so no window edge falls on a sample.
const AT: i64 = END + 30;
const BUDGET: f64 = 0.001;

/// 10 requests a second for the shop: 0.05% errors, 1% over the last day but the last two
/// hours, and 8% over the last 20 minutes (the burn pages).
fn history() -> Vec<Series> {
    let errors_per_second = |t: i64| {
        if t >= END - 20 * 60 {
            0.8
        } else if (END - 86_400..END - 2 * 3_600).contains(&t) {
            0.1
        } else {
            0.005
        }
    };
    let series = |code: &str, per_second: Box<dyn Fn(i64) -> f64>| {
        counter(
            "http_requests_total",
            labels(&[("job", "shop"), ("code", code)]),
            START,
            END,
            STEP,
            1_000_000.0,
            per_second,
        )
    };
    vec![
        series("500", Box::new(errors_per_second)),
        series("200", Box::new(move |t| 10.0 - errors_per_second(t))),
    ]
}

/// The error ratio over `window` seconds from the samples: increases between the first and
/// last sample inside the window (rate()'s extrapolation scales both sides alike).
fn expected_ratio(history: &[Series], window: i64) -> f64 {
    let errors = history[0].increase_in(AT, window).unwrap();
    let ok = history[1].increase_in(AT, window).unwrap();
    errors / (errors + ok)
}

const ERRORS: &str = r#"sum(rate(http_requests_total{job="shop",code="500"}[{{.window}}]))"#;
const TOTAL: &str = r#"sum(rate(http_requests_total{job="shop"}[{{.window}}]))"#;

/// The same SLO, 99.9% of the shop's requests without a 500 over 30 days, four times.
fn four_formats() -> Vec<(String, String)> {
    let burnguard = format!(
        r#"apiVersion: burnguard.dev/v1
kind: SLO
metadata: {{name: shop-burnguard}}
spec:
  service: shop
  objective: 99.9
  window: 30d
  indicator:
    ratio:
      errors: '{ERRORS}'
      total: '{TOTAL}'
"#
    );
    let sloth = format!(
        r#"version: prometheus/v1
service: shop
slos:
  - name: sloth
    objective: 99.9
    sli:
      events:
        error_query: '{ERRORS}'
        total_query: '{TOTAL}'
    alerting:
      name: ShopBurn
      page_alert: {{labels: {{severity: critical}}}}
      ticket_alert: {{labels: {{severity: warning}}}}
"#
    );
    let pyrra = r#"apiVersion: pyrra.dev/v1alpha1
kind: ServiceLevelObjective
metadata: {name: shop-pyrra, namespace: shop, labels: {pyrra.dev/service: shop}}
spec:
  target: "99.9"
  window: 30d
  indicator:
    ratio:
      errors: {metric: 'http_requests_total{job="shop",code="500"}'}
      total: {metric: 'http_requests_total{job="shop"}'}
"#
    .to_string();
    let openslo = r#"apiVersion: openslo/v1
kind: SLO
metadata: {name: shop-openslo}
spec:
  service: shop
  indicatorRef: shop-requests
  timeWindow: [{duration: 30d, isRolling: true}]
  budgetingMethod: Occurrences
  objectives: [{target: 0.999}]
---
apiVersion: openslo/v1
kind: SLI
metadata: {name: shop-requests}
spec:
  ratioMetric:
    counter: true
    bad: {metricSource: {type: Prometheus, spec: {query: 'http_requests_total{job="shop",code="500"}'}}}
    total: {metricSource: {type: Prometheus, spec: {query: 'http_requests_total{job="shop"}'}}}
"#
    .to_string();
    vec![
        ("burnguard.yaml".into(), burnguard),
        ("sloth.yaml".into(), sloth),
        ("pyrra.yaml".into(), pyrra),
        ("openslo.yaml".into(), openslo),
    ]
}

fn prometheus_client(url: &str) -> Prometheus {
    let mut config = PrometheusConfig::new(url);
    config.timeout = std::time::Duration::from_secs(10);
    Prometheus::new(&config).unwrap()
}

fn close(a: f64, b: f64, tolerance: f64) -> bool {
    (a - b).abs() <= tolerance * a.abs().max(b.abs()).max(1e-12)
}

fn window(text: &str) -> Window {
    Window::parse(text).unwrap()
}

#[tokio::test]
async fn one_slo_in_four_formats_evaluates_to_the_same_ratios_and_budget() {
    let history = history();
    let prometheus = PrometheusServer::start(&history);
    let (loaded, _, problems) = policies::parse_sources(&four_formats(), &LoadOptions::default());
    assert!(problems.is_empty(), "{problems:?}");
    let formats: Vec<SourceFormat> = loaded.iter().map(|l| l.format).collect();
    assert_eq!(
        formats,
        [
            SourceFormat::Burnguard,
            SourceFormat::Sloth,
            SourceFormat::Pyrra,
            SourceFormat::OpenSlo
        ]
    );
    let slos: Vec<_> = loaded.into_iter().map(|l| l.slo).collect();
    let evaluation = Evaluator::new(prometheus_client(&prometheus.url), ReadMode::Raw, 8)
        .evaluate(&slos, AT)
        .await;
    assert_eq!(evaluation.failed_queries, 0);
    let by_name: BTreeMap<&str, &SloEvaluation> = evaluation
        .slos
        .iter()
        .map(|s| (s.name.as_str(), s.as_ref()))
        .collect();
    let reference = by_name["shop-burnguard"];

    // burnguard's own numbers are the history's.
    for (w, seconds) in [
        ("5m", 300),
        ("30m", 1_800),
        ("1h", 3_600),
        ("2h", 7_200),
        ("6h", 21_600),
        ("1d", 86_400),
        ("3d", 259_200),
        ("30d", 2_592_000),
    ] {
        let have = reference.error_ratio.get(window(w)).unwrap();
        let want = expected_ratio(&history, seconds);
        assert!(close(have, want, 1e-9), "{w}: {have} != {want}");
    }
    let budget = reference.error_budget_remaining.unwrap();
    assert!(
        close(
            budget,
            1.0 - expected_ratio(&history, 2_592_000) / BUDGET,
            1e-9
        ),
        "{budget}"
    );
    assert_eq!(reference.status.as_str(), "page");

    // Every format: the same ratio on every window both read, the same budget.
    for name in ["shop-sloth", "shop-pyrra", "shop-openslo"] {
        let other = by_name[name];
        assert!(other.error.is_none(), "{name}: {:?}", other.error);
        let mut shared = 0;
        for (w, ratio) in &reference.error_ratio.0 {
            if let Some(theirs) = other.error_ratio.get(*w) {
                let ours = ratio.unwrap();
                assert!(close(ours, theirs, 1e-9), "{name} {w}: {theirs} != {ours}");
                shared += 1;
            }
        }
        assert!(shared >= 2, "{name} shares {shared} windows");
        let theirs = other.error_budget_remaining.unwrap();
        assert!(
            close(theirs, budget, 1e-9),
            "{name}: budget {theirs} != {budget}"
        );
    }
    // Sloth and OpenSLO alert on the workbook's windows, like burnguard; Pyrra on its own
    // scaled ones, whose ratios are the history's too.
    for name in ["shop-sloth", "shop-openslo"] {
        assert_eq!(by_name[name].error_ratio.0.len(), 8, "{name}");
        assert_eq!(by_name[name].status.as_str(), "page", "{name}");
    }
    let pyrra = by_name["shop-pyrra"];
    for (w, ratio) in &pyrra.error_ratio.0 {
        let want = expected_ratio(&history, w.as_secs() as i64);
        assert!(close(ratio.unwrap(), want, 1e-9), "pyrra {w}");
    }
    assert!(pyrra.error_ratio.get(window("1h4m")).is_some());
    assert_eq!(pyrra.status.as_str(), "page");
}

#[tokio::test]
async fn a_sloth_slo_gives_what_sloths_own_recording_rules_evaluate_to() {
    let history = history();
    let prometheus = PrometheusServer::start(&history);
    let sloth = &four_formats()[1];
    for sloth_window in ["30d", "28d"] {
        let options = LoadOptions {
            sloth_window: window(sloth_window),
        };
        let (loaded, _, problems) = policies::parse_sources(std::slice::from_ref(sloth), &options);
        assert!(problems.is_empty(), "{problems:?}");
        let slo = loaded[0].slo.clone();
        let evaluation = Evaluator::new(prometheus_client(&prometheus.url), ReadMode::Raw, 8)
            .evaluate(std::slice::from_ref(&slo), AT)
            .await;
        let ours = &evaluation.slos[0];

        // Sloth records `slo:sli_error:ratio_rate<W>` as `(error_query) / (total_query)` with
        // the window in place, for the alert windows and the period; its budget remaining is
        // `1 - ratio(period) / (1 - objective)`.
        let client = prometheus_client(&prometheus.url);
        let sloth_rule = |w: &str| {
            format!(
                "({})\n/\n({})",
                ERRORS.replace("{{.window}}", w),
                TOTAL.replace("{{.window}}", w)
            )
        };
        for w in ["5m", "30m", "1h", "2h", "6h", "1d", "3d", sloth_window] {
            let answer = client.instant(&sloth_rule(w), AT).await.unwrap();
            assert_eq!(answer.len(), 1, "{w}: {answer:?}");
            let theirs = answer[0].value;
            let have = ours.error_ratio.get(window(w)).unwrap();
            assert!(
                close(have, theirs, 1e-9),
                "{sloth_window} {w}: burnguard {have}, Sloth's rule {theirs}"
            );
        }
        let budget = format!("1 - ({}) / (1 - 0.999)", sloth_rule(sloth_window));
        let theirs = client.instant(&budget, AT).await.unwrap()[0].value;
        let have = ours.error_budget_remaining.unwrap();
        assert!(
            close(have, theirs, 1e-9),
            "{sloth_window} budget: burnguard {have}, Sloth {theirs}"
        );
        // Sloth's alert thresholds for the window (factors x budget): 14.4/6/3/1 on 30d,
        // 13.44/5.6/2.8/0.933 on 28d.
        let factors: Vec<f64> = ours.alerts.iter().map(|a| a.factor).collect();
        let expected: &[f64] = if sloth_window == "30d" {
            &[14.4, 6.0, 3.0, 1.0]
        } else {
            &[13.44, 5.6, 2.8, 0.9333333333333333]
        };
        for (have, want) in factors.iter().zip(expected) {
            assert!(close(*have, *want, 1e-9), "{sloth_window}: {factors:?}");
        }
    }
}

/// The four files on disk.
fn four_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    four_formats()
        .iter()
        .map(|(name, text)| common::write(dir, name, text))
        .collect()
}

#[tokio::test]
async fn eval_and_backtest_read_the_foreign_files_as_they_are() {
    let history = history();
    let prometheus = PrometheusServer::start(&history);
    let dir = tempfile::tempdir().unwrap();
    let files = four_files(dir.path());

    let (ok, output) = common::run(
        std::process::Command::new(env!("CARGO_BIN_EXE_burnguard"))
            .args(["eval", "--mode", "raw", "--output", "json", "--at"])
            .arg(AT.to_string())
            .args(["--prometheus", &prometheus.url])
            .args(&files),
    );
    assert!(ok, "{output}");
    let report: serde_json::Value = serde_json::from_str(&output).unwrap();
    let statuses: Vec<(String, String)> = report["slos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_string(),
                s["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let page = |name: &str| (name.to_string(), "page".to_string());
    assert_eq!(
        statuses,
        [
            page("shop-burnguard"),
            page("shop-sloth"),
            page("shop-pyrra"),
            page("shop-openslo")
        ]
    );

    // The spike of the last 20 minutes pages in every format's backtest.
    let (ok, output) = common::run(
        std::process::Command::new(env!("CARGO_BIN_EXE_burnguard"))
            .args(["backtest", "--output", "json", "--step", "5m", "--from"])
            .arg((END - 3_600).to_string())
            .arg("--to")
            .arg(AT.to_string())
            .args(["--prometheus", &prometheus.url])
            .args(&files),
    );
    assert!(ok, "{output}");
    let report: serde_json::Value = serde_json::from_str(&output).unwrap();
    let slos = report["slos"].as_array().unwrap();
    assert_eq!(slos.len(), 4, "{output}");
    for slo in slos {
        assert!(
            slo["summary"]["pages"].as_u64().unwrap() >= 1,
            "{}: {output}",
            slo["name"]
        );
    }
}

#[test]
fn serve_evaluates_foreign_files_with_the_sloth_window_and_reloads_their_edits() {
    let prometheus = PrometheusServer::start(&common::prometheus::recent_traffic("shop", 0.5));
    let dir = tempfile::tempdir().unwrap();
    let files = four_files(dir.path());
    let db = format!("sqlite://{}", dir.path().join("burnguard.db").display());
    let policies: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    let serve = common::serve::Serve::start(
        &[
            "--db",
            &db,
            "--policies",
            &policies.join(","),
            "--prometheus",
            &prometheus.url,
            "--listen",
            "127.0.0.1:0",
            "--interval",
            "1s",
            "--mode",
            "raw",
            "--window",
            "28d",
        ],
        &[],
    );
    let metrics = serve.metrics_until("every format paging", |m| {
        ["shop-burnguard", "shop-sloth", "shop-pyrra", "shop-openslo"]
            .iter()
            .all(|slo| {
                m.contains(&format!(
                    "burnguard_slo_status{{slo=\"{slo}\",service=\"shop\",status=\"page\"}} 1"
                ))
            })
    });
    // The Sloth SLO has the 28d window it was given; the others keep their own 30d.
    assert!(
        metrics
            .contains(r#"burnguard_slo_objective{slo="shop-sloth",service="shop",window="28d"}"#),
        "{metrics}"
    );
    assert!(
        metrics
            .contains(r#"burnguard_slo_objective{slo="shop-openslo",service="shop",window="30d"}"#),
        "{metrics}"
    );

    // An edit that cannot be mapped is refused on reload and the running set is kept.
    let openslo = &files[3];
    let text = std::fs::read_to_string(openslo).unwrap();
    std::fs::write(openslo, text.replace("type: Prometheus", "type: Datadog")).unwrap();
    serve.metrics_until("the reload refused", |m| {
        common::serve::value(m, r#"burnguard_policy_reloads_total{result="rejected"}"#)
            .is_some_and(|v| v >= 1.0)
    });
    let metrics = serve.get("/metrics").1;
    assert!(metrics.contains(r#"slo="shop-openslo""#), "{metrics}");
    // A valid edit applies: without its SLO document, the OpenSLO SLO goes away.
    let sli_only = &text[text.find("apiVersion: openslo/v1\nkind: SLI").unwrap()..];
    std::fs::write(openslo, sli_only).unwrap();
    serve.metrics_until("the OpenSLO SLO removed", |m| {
        !m.contains(r#"slo="shop-openslo""#) && m.contains(r#"slo="shop-pyrra""#)
    });
}

/// Sloth records the SLO period's ratio "optimized" by default: the time average of its 5m
/// ratio, `sum_over_time(slo:sli_error:ratio_rate5m[30d]) / count_over_time(...)`, where
/// burnguard (and the workbook) take the ratio of the period's sums. Both are worked out here
/// from the samples: Prometheus gives Sloth's rule exactly its definition, burnguard gives its
/// own, and the two differ by how the period is weighed (here by about 1%: the paging spike in
/// the last 20 minutes falls in fewer 5m windows than the rest). Sloth's non-optimized rules
/// (`--disable-optimizations`) are the ones burnguard matches exactly (the test above).
#[tokio::test]
async fn sloths_optimized_period_ratio_is_the_time_average_of_its_5m_ratio() {
    let history = history();
    let mut prometheus = PrometheusServer::start(&history);
    // Sloth's 5m recording rule for this SLO, backfilled over the history by promtool.
    let rules = format!(
        "groups:\n  - name: sloth-slo-sli-recordings-shop-sloth\n    rules:\n      - record: slo:sli_error:ratio_rate5m\n        expr: |\n          ({})\n          /\n          ({})\n        labels:\n          sloth_id: shop-sloth\n          sloth_service: shop\n          sloth_slo: sloth\n          sloth_window: 5m\n",
        ERRORS.replace("{{.window}}", "5m"),
        TOTAL.replace("{{.window}}", "5m")
    );
    prometheus.backfill_rules(&rules, START, END, STEP as u64);
    let recorded = r#"slo:sli_error:ratio_rate5m{sloth_id="shop-sloth"}"#;
    let optimized = format!(
        "sum_over_time({recorded}[30d]) / ignoring (sloth_window) count_over_time({recorded}[30d])"
    );
    let client = prometheus_client(&prometheus.url);
    let answer = client.instant(&optimized, AT).await.unwrap();
    assert_eq!(answer.len(), 1, "{answer:?}");
    let theirs = answer[0].value;

    // Every recorded 5m ratio, read back with its time, against the samples' own.
    let encoded: String = format!("{recorded}[30d]")
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'-' | b'.' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect();
    let addr = prometheus.url.trim_start_matches("http://");
    let (status, body) =
        common::prometheus::http_get(addr, &format!("/api/v1/query?query={encoded}&time={AT}"))
            .unwrap();
    assert_eq!(status, 200, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    let points = body["data"]["result"][0]["values"].as_array().unwrap();
    assert!(points.len() > 5_000, "{} recorded points", points.len());
    let mut from_samples = Vec::new();
    for point in points {
        // The rule's own evaluation instant, to the millisecond (see `increase_within`).
        let t = point[0].as_f64().unwrap();
        let value: f64 = point[1].as_str().unwrap().parse().unwrap();
        let errors = history[0].increase_within(t, 300.0).unwrap();
        let ok = history[1].increase_within(t, 300.0).unwrap();
        let want = errors / (errors + ok);
        assert!(
            close(value, want, 1e-9),
            "at {t}: recorded {value}, samples {want}"
        );
        from_samples.push(want);
    }
    let sloth_from_samples = from_samples.iter().sum::<f64>() / from_samples.len() as f64;
    assert!(
        close(theirs, sloth_from_samples, 1e-9),
        "Sloth's optimized ratio {theirs}, its definition on the samples {sloth_from_samples}"
    );

    let sloth = &four_formats()[1];
    let options = LoadOptions {
        sloth_window: window("30d"),
    };
    let (loaded, _, problems) = policies::parse_sources(std::slice::from_ref(sloth), &options);
    assert!(problems.is_empty(), "{problems:?}");
    let evaluation = Evaluator::new(prometheus_client(&prometheus.url), ReadMode::Raw, 8)
        .evaluate(std::slice::from_ref(&loaded[0].slo), AT)
        .await;
    let ours = evaluation.slos[0].error_ratio.get(window("30d")).unwrap();
    let period = expected_ratio(&history, 30 * 86_400);
    assert!(
        close(ours, period, 1e-9),
        "burnguard {ours}, the period's sums {period}"
    );
    assert!(
        (ours - theirs).abs() / ours < 0.05,
        "the two definitions should be near on steady traffic: {ours} vs {theirs}"
    );
}
