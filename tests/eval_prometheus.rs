//! `eval` against a REAL Prometheus holding four days of constructed history. Every figure is
//! compared with what this file computes from the history it generated (increases between
//! samples, the workbook's factors), never with what burnguard says elsewhere.

mod common;

use std::collections::BTreeMap;
use std::process::Command;

use burnguard::adapters::prometheus::{Prometheus, PrometheusConfig};
use burnguard::engine::evaluate::{
    EvalStatus, Evaluator, ReadMode, ReadPlan, SliSource, SloEvaluation,
};
use burnguard::policies;
use common::prometheus::{PrometheusServer, Series, counter, free_port, gauge, labels};

const STEP: i64 = 60;
/// 2026-01-04T00:00:00Z: the last sample of the history.
const END: i64 = 1_767_484_800;
const START: i64 = END - 4 * 86_400;
/// Evaluate half a step after the last sample, so no window edge falls on a sample.
const AT: i64 = END + 30;
const BASE: f64 = 1_000_000.0;

const MINUTE: i64 = 60;
const HOUR: i64 = 3_600;
const DAY: i64 = 86_400;
/// The windows of the workbook table plus 30d, as (name, seconds).
const WINDOWS: [(&str, i64); 8] = [
    ("5m", 5 * MINUTE),
    ("30m", 30 * MINUTE),
    ("1h", HOUR),
    ("2h", 2 * HOUR),
    ("6h", 6 * HOUR),
    ("1d", DAY),
    ("3d", 3 * DAY),
    ("30d", 30 * DAY),
];
/// (severity, long, short, factor) from the SRE Workbook for a 30-day window.
const ROWS: [(&str, &str, &str, f64); 4] = [
    ("page", "1h", "5m", 14.4),
    ("page", "6h", "30m", 6.0),
    ("ticket", "1d", "2h", 3.0),
    ("ticket", "3d", "6h", 1.0),
];

fn requests(service: &str, code: &str, per_second: impl Fn(i64) -> f64) -> Series {
    counter(
        "http_requests_total",
        labels(&[("job", service), ("code", code)]),
        START,
        END,
        STEP,
        BASE,
        per_second,
    )
}

struct Fixture {
    series: Vec<Series>,
    /// SLO name -> which series count how.
    expectations: BTreeMap<&'static str, Expect>,
}

struct Expect {
    /// Error series.
    bad: Vec<usize>,
    /// Series of the other events (for latency: all events, with `good` the fast ones).
    total: Vec<usize>,
    /// Subtracted from total instead of counted as bad (latency: good = bucket).
    good: Option<usize>,
    min_events: f64,
}

fn fixture() -> Fixture {
    let mut series = Vec::new();
    let mut expectations = BTreeMap::new();
    let mut add = |name: &'static str,
                   bad: Vec<Series>,
                   total: Vec<Series>,
                   min_events: f64,
                   series: &mut Vec<Series>| {
        let b: Vec<usize> = bad
            .into_iter()
            .map(|s| {
                series.push(s);
                series.len() - 1
            })
            .collect();
        let t: Vec<usize> = total
            .into_iter()
            .map(|s| {
                series.push(s);
                series.len() - 1
            })
            .collect();
        expectations.insert(
            name,
            Expect {
                bad: b,
                total: t,
                good: None,
                min_events,
            },
        );
    };
    // 10 req/s; 0.1% errors until 20 minutes before the end, then 10%.
    let spike_from = END - 20 * MINUTE;
    add(
        "spike",
        vec![requests("spike", "500", move |t| {
            if t >= spike_from { 1.0 } else { 0.01 }
        })],
        vec![requests("spike", "200", move |t| {
            if t >= spike_from { 9.0 } else { 9.99 }
        })],
        0.0,
        &mut series,
    );
    // 0.2% errors all along: burn rate 2.
    add(
        "slow-burn",
        vec![requests("slow", "500", |_| 0.02)],
        vec![requests("slow", "200", |_| 9.98)],
        0.0,
        &mut series,
    );
    // 0.01% errors: burn rate 0.1.
    add(
        "healthy",
        vec![requests("healthy", "500", |_| 0.001)],
        vec![requests("healthy", "200", |_| 9.999)],
        0.0,
        &mut series,
    );
    // Traffic and no 500 series at all.
    add(
        "no-errors",
        vec![],
        vec![requests("clean", "200", |_| 10.0)],
        0.0,
        &mut series,
    );
    // 1% errors, and all traffic stops 3h before the end (counters still scraped, flat).
    let stop = END - 3 * HOUR;
    add(
        "stopped",
        vec![requests(
            "stopped",
            "500",
            move |t| if t < stop { 0.1 } else { 0.0 },
        )],
        vec![requests(
            "stopped",
            "200",
            move |t| if t < stop { 9.9 } else { 0.0 },
        )],
        0.0,
        &mut series,
    );
    // 0.01 req/s, half of them failing, minEvents 100: short windows have too few events.
    add(
        "quiet",
        vec![requests("quiet", "500", |_| 0.005)],
        vec![requests("quiet", "200", |_| 0.005)],
        100.0,
        &mut series,
    );
    // A classic histogram: 10 req/s, 1% slower than 0.3s.
    let hist = |le: &str, per_second: f64| {
        let mut s = counter(
            "rpc_duration_seconds_bucket",
            labels(&[("job", "rpc"), ("le", le)]),
            START,
            END,
            STEP,
            BASE,
            move |_| per_second,
        );
        s.family = "rpc_duration_seconds".into();
        s.kind = "histogram";
        s
    };
    let mut count = counter(
        "rpc_duration_seconds_count",
        labels(&[("job", "rpc")]),
        START,
        END,
        STEP,
        BASE,
        |_| 10.0,
    );
    count.family = "rpc_duration_seconds".into();
    count.kind = "histogram";
    let mut sum = counter(
        "rpc_duration_seconds_sum",
        labels(&[("job", "rpc")]),
        START,
        END,
        STEP,
        BASE,
        |_| 1.5,
    );
    sum.family = "rpc_duration_seconds".into();
    sum.kind = "histogram";
    for s in [hist("0.1", 8.0), hist("1", 9.99), hist("+Inf", 10.0), sum] {
        series.push(s);
    }
    series.push(hist("0.3", 9.9));
    let good = series.len() - 1;
    series.push(count);
    let total = series.len() - 1;
    expectations.insert(
        "rpc-latency",
        Expect {
            bad: vec![],
            total: vec![total],
            good: Some(good),
            min_events: 0.0,
        },
    );
    Fixture {
        series,
        expectations,
    }
}

const POLICIES: &str = r#"
---
apiVersion: burnguard.dev/v1
kind: SLO
metadata: {name: spike}
spec:
  service: spike
  objective: 99.9
  indicator:
    ratio:
      errors: sum(rate(http_requests_total{job="spike",code="500"}[{{.window}}]))
      total: sum(rate(http_requests_total{job="spike"}[{{.window}}]))
---
apiVersion: burnguard.dev/v1
kind: SLO
metadata: {name: slow-burn}
spec:
  service: slow
  objective: 99.9
  indicator:
    ratio:
      errors: sum(rate(http_requests_total{job="slow",code="500"}[{{.window}}]))
      total: sum(rate(http_requests_total{job="slow"}[{{.window}}]))
---
apiVersion: burnguard.dev/v1
kind: SLO
metadata: {name: healthy}
spec:
  service: healthy
  objective: 99.9
  indicator:
    ratio:
      errors: sum(rate(http_requests_total{job="healthy",code="500"}[{{.window}}]))
      total: sum(rate(http_requests_total{job="healthy"}[{{.window}}]))
---
apiVersion: burnguard.dev/v1
kind: SLO
metadata: {name: no-errors}
spec:
  service: clean
  objective: 99.9
  indicator:
    ratio:
      errors: sum(rate(http_requests_total{job="clean",code="500"}[{{.window}}]))
      total: sum(rate(http_requests_total{job="clean"}[{{.window}}]))
---
apiVersion: burnguard.dev/v1
kind: SLO
metadata: {name: stopped}
spec:
  service: stopped
  objective: 99.9
  indicator:
    ratio:
      errors: sum(rate(http_requests_total{job="stopped",code="500"}[{{.window}}]))
      total: sum(rate(http_requests_total{job="stopped"}[{{.window}}]))
---
apiVersion: burnguard.dev/v1
kind: SLO
metadata: {name: quiet}
spec:
  service: quiet
  objective: 99.9
  minEvents: 100
  indicator:
    ratio:
      good: sum(rate(http_requests_total{job="quiet",code="200"}[{{.window}}]))
      total: sum(rate(http_requests_total{job="quiet"}[{{.window}}]))
---
apiVersion: burnguard.dev/v1
kind: SLO
metadata: {name: rpc-latency}
spec:
  service: rpc
  objective: 99.9
  indicator:
    latency:
      histogram: rpc_duration_seconds
      selector: '{job="rpc"}'
      threshold: 0.3
---
apiVersion: burnguard.dev/v1
kind: SLO
metadata: {name: ghost}
spec:
  service: ghost
  objective: 99.9
  indicator:
    ratio:
      errors: sum(rate(ghost_requests_total{code="500"}[{{.window}}]))
      total: sum(rate(ghost_requests_total[{{.window}}]))
"#;

fn slos() -> Vec<burnguard::domain::policy::Slo> {
    let (loaded, problems) = policies::parse_source("eval.yaml", POLICIES);
    assert!(problems.is_empty(), "{problems:?}");
    loaded.into_iter().map(|l| l.slo).collect()
}

/// The error ratio this file expects for one window: increases between samples.
fn expected_ratio(fx: &Fixture, e: &Expect, window: i64) -> Option<f64> {
    let sum = |idx: &[usize]| -> Option<f64> {
        idx.iter()
            .map(|i| fx.series[*i].increase_in(AT, window))
            .sum()
    };
    // `total` lists the series of events that are not errors; the errors are added to them.
    let bad_increase = sum(&e.bad).unwrap_or(0.0);
    let total = sum(&e.total)? + if e.good.is_some() { 0.0 } else { bad_increase };
    let bad = match e.good {
        Some(good) => total - fx.series[good].increase_in(AT, window)?,
        None => bad_increase,
    };
    // Events in the window as Prometheus extrapolates them (to the window's length); our
    // scenarios sit far from the minEvents threshold so the exact extrapolation does not matter.
    let events = total * window as f64 / (window - STEP).max(STEP) as f64;
    (total > 0.0 && events >= e.min_events).then(|| bad / total)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1e-12)
}

fn check(fx: &Fixture, got: &SloEvaluation) {
    let name = got.name.as_str();
    let budget = 0.001;
    if name == "ghost" {
        assert_eq!(
            got.status,
            EvalStatus::Assessed(burnguard::domain::burn::Status::NoData),
            "{got:?}"
        );
        assert!(got.error_ratio.0.iter().all(|(_, v)| v.is_none()));
        assert_eq!(got.error_budget_remaining, None);
        return;
    }
    let e = &fx.expectations[name];
    let mut expected: BTreeMap<&str, Option<f64>> = BTreeMap::new();
    for (w, seconds) in WINDOWS {
        let want = expected_ratio(fx, e, seconds);
        expected.insert(w, want);
        let window = burnguard::domain::policy::Window::parse(w).unwrap();
        let have = got.error_ratio.get(window);
        match (have, want) {
            (Some(h), Some(w2)) => {
                assert!(close(h, w2), "{name} {w}: error ratio {h} != expected {w2}")
            }
            (h, w2) => assert_eq!(h, w2, "{name} {w}: error ratio"),
        }
        let burn = got.burn_rate.get(window);
        match (burn, want) {
            (Some(b), Some(w2)) => assert!(close(b, w2 / budget), "{name} {w}: burn rate {b}"),
            (b, w2) => assert_eq!(b, w2, "{name} {w}: burn rate"),
        }
    }
    let remaining = expected["30d"].map(|r| 1.0 - r / budget);
    match (got.error_budget_remaining, remaining) {
        (Some(h), Some(w)) => assert!(close(h, w), "{name}: budget remaining {h} != {w}"),
        (h, w) => assert_eq!(h, w, "{name}: budget remaining"),
    }
    let tte = match (remaining, expected["1h"]) {
        (Some(r), _) if r <= 0.0 => Some(0.0),
        (Some(r), Some(ratio)) if ratio > 0.0 => Some(r * 30.0 * DAY as f64 / (ratio / budget)),
        _ => None,
    };
    match (got.time_to_exhaustion_seconds, tte) {
        (Some(h), Some(w)) => assert!(close(h, w), "{name}: time to exhaustion {h} != {w}"),
        (h, w) => assert_eq!(h, w, "{name}: time to exhaustion"),
    }
    let mut worst = if expected.values().any(Option::is_some) {
        "ok"
    } else {
        "no_data"
    };
    assert_eq!(got.alerts.len(), ROWS.len());
    for ((severity, long, short, factor), alert) in ROWS.iter().zip(&got.alerts) {
        assert_eq!(
            (
                alert.severity,
                &*alert.long.notation(),
                &*alert.short.notation()
            ),
            (*severity, *long, *short)
        );
        let firing = match (expected[long], expected[short]) {
            (Some(l), Some(s)) => l > factor * budget && s > factor * budget,
            _ => false,
        };
        assert_eq!(alert.firing, firing, "{name}: {severity} {long}/{short}");
        if firing && (*severity == "page" || worst != "page") {
            worst = severity;
        }
    }
    assert_eq!(got.status.as_str(), worst, "{name}: status");
    assert_eq!(got.error, None);
}

fn evaluator(url: &str, mode: ReadMode) -> Evaluator<Prometheus> {
    let mut config = PrometheusConfig::new(url);
    config.timeout = std::time::Duration::from_secs(10);
    Evaluator::new(Prometheus::new(&config).unwrap(), mode, 8)
}

#[tokio::test]
async fn raw_evaluation_matches_the_history_for_every_scenario() {
    let fx = fixture();
    let prometheus = PrometheusServer::start(&fx.series);
    let slos = slos();
    let evaluation = evaluator(&prometheus.url, ReadMode::Raw)
        .evaluate(&slos, AT)
        .await;
    assert_eq!(evaluation.failed_queries, 0);
    // 8 SLOs x 8 windows.
    assert_eq!(evaluation.queries, 64);
    for got in &evaluation.slos {
        assert_eq!(got.source, Some(SliSource::Raw));
        check(&fx, got);
    }
    // The scenarios mean what they say.
    let status = |n: &str| {
        evaluation
            .slos
            .iter()
            .find(|s| s.name == n)
            .unwrap()
            .status
            .as_str()
    };
    assert_eq!(status("spike"), "page");
    assert_eq!(status("slow-burn"), "ticket");
    assert_eq!(status("healthy"), "ok");
    assert_eq!(status("no-errors"), "ok");
    assert_eq!(status("ghost"), "no_data");
    let no_errors = evaluation
        .slos
        .iter()
        .find(|s| s.name == "no-errors")
        .unwrap();
    assert!(
        no_errors.error_ratio.0.iter().all(|(_, v)| *v == Some(0.0)),
        "{no_errors:?}"
    );
    let stopped = evaluation
        .slos
        .iter()
        .find(|s| s.name == "stopped")
        .unwrap();
    assert_eq!(
        stopped
            .error_ratio
            .get(burnguard::domain::policy::Window::parse("5m").unwrap()),
        None
    );
    assert!(
        stopped
            .error_ratio
            .get(burnguard::domain::policy::Window::parse("6h").unwrap())
            .is_some()
    );
    let quiet = evaluation.slos.iter().find(|s| s.name == "quiet").unwrap();
    assert_eq!(
        quiet
            .error_ratio
            .get(burnguard::domain::policy::Window::parse("1h").unwrap()),
        None
    );
}

#[tokio::test]
async fn the_eval_command_prints_the_documented_json() {
    let fx = fixture();
    let prometheus = PrometheusServer::start(&fx.series);
    let dir = tempfile::tempdir().unwrap();
    let policy = common::write(dir.path(), "slos.yaml", POLICIES);
    let (ok, output) = common::run(
        Command::new(env!("CARGO_BIN_EXE_burnguard"))
            .args([
                "eval",
                "--mode",
                "raw",
                "--output",
                "json",
                "--at",
                "2026-01-04T00:00:30Z",
                "--prometheus",
            ])
            .arg(&prometheus.url)
            .arg(&policy),
    );
    assert!(ok, "{output}");
    assert!(!output.contains("NaN"), "{output}");
    let report: serde_json::Value = serde_json::from_str(&output).unwrap();
    assert_eq!(report["evaluated_at"], "2026-01-04T00:00:30Z");
    let spike = &report["slos"][0];
    assert_eq!(spike["name"], "spike");
    assert_eq!(spike["service"], "spike");
    assert_eq!(spike["objective"], 0.999);
    assert_eq!(spike["window"], "30d");
    assert_eq!(spike["status"], "page");
    assert!(spike["error"].is_null());
    let keys: Vec<&str> = spike["error_ratio"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut expected_keys: Vec<&str> = WINDOWS.iter().map(|(w, _)| *w).collect();
    expected_keys.sort_unstable();
    let mut sorted = keys.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, expected_keys);
    assert_eq!(spike["alerts"][0]["severity"], "page");
    assert_eq!(spike["alerts"][0]["long_window"], "1h");
    assert_eq!(spike["alerts"][0]["short_window"], "5m");
    assert_eq!(spike["alerts"][0]["factor"], 14.4);
    assert_eq!(spike["alerts"][0]["firing"], true);
    let ghost = report["slos"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "ghost")
        .unwrap();
    assert!(ghost["error_ratio"]["5m"].is_null());
    assert!(ghost["error_budget_remaining"].is_null());
    assert_eq!(ghost["status"], "no_data");

    // The table is for people: status first, aligned.
    let (ok, table) = common::run(
        Command::new(env!("CARGO_BIN_EXE_burnguard"))
            .args([
                "eval",
                "--output",
                "table",
                "--at",
                "2026-01-04T00:00:30Z",
                "--prometheus",
            ])
            .arg(&prometheus.url)
            .arg(&policy),
    );
    assert!(ok, "{table}");
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[1].starts_with("STATUS"), "{table}");
    assert!(lines[2].starts_with("page"), "{table}");
}

#[tokio::test]
async fn rules_mode_reads_recorded_series_with_one_query_per_window() {
    // What `burnguard rules` would have recorded: constant ratios per window for two SLOs.
    let recorded = |slo: &str, service: &str, window: &str, value: f64| {
        let samples = (0..=60).map(|i| (END - 3_600 + i * 60, value)).collect();
        gauge(
            &format!("burnguard:sli_error:ratio_rate{window}"),
            labels(&[("slo", slo), ("service", service)]),
            samples,
        )
    };
    let by_name = |name: &str| slos().into_iter().find(|s| s.name == name).unwrap();
    let slos = vec![by_name("spike"), by_name("healthy"), by_name("slow-burn")];
    let objective = |slo: &str, value: f64, hash: &str| {
        let samples = (0..=60).map(|i| (END - 3_600 + i * 60, value)).collect();
        gauge(
            "burnguard:slo_objective:ratio",
            labels(&[
                ("slo", slo),
                ("service", "x"),
                ("burnguard_rules_hash", hash),
            ]),
            samples,
        )
    };
    let fingerprint = |i: usize| burnguard::domain::rules::rules_fingerprint(&slos[i]);
    let mut series = Vec::new();
    // spike burns at 20x on short windows, 0.5x over 30d.
    for (w, _) in WINDOWS {
        let v = match w {
            "5m" | "30m" | "1h" => 0.02,
            "30d" => 0.0005,
            _ => 0.004,
        };
        series.push(recorded("spike", "spike", w, v));
        series.push(recorded("healthy", "healthy", w, 0.0001));
    }
    series.push(objective("spike", 0.999, &fingerprint(0)));
    series.push(objective("healthy", 0.999, &fingerprint(1)));
    // Rules from an older slow-burn policy: the objective still matches, but the fingerprint
    // of its queries does not, so auto must not trust them.
    series.push(objective(
        "slow-burn",
        slos[2].objective.ratio(),
        "0000000000000000",
    ));
    let prometheus = PrometheusServer::start(&series);

    let rules = evaluator(&prometheus.url, ReadMode::Rules)
        .evaluate(&slos, AT)
        .await;
    assert_eq!(
        rules.queries,
        WINDOWS.len() + 1,
        "one query per window for all SLOs, and one that checks their series are unique"
    );
    let spike = &rules.slos[0];
    assert_eq!(spike.source, Some(SliSource::Rules));
    assert_eq!(spike.status.as_str(), "page");
    assert!(close(
        spike
            .error_ratio
            .get(burnguard::domain::policy::Window::parse("1h").unwrap())
            .unwrap(),
        0.02
    ));
    assert!(close(
        spike.error_budget_remaining.unwrap(),
        1.0 - 0.0005 / 0.001
    ));
    // 1h burn rate 20, 50% left of 30 days: 0.5 * 30d / 20.
    assert!(close(
        spike.time_to_exhaustion_seconds.unwrap(),
        0.5 * 30.0 * DAY as f64 / 20.0
    ));
    assert_eq!(rules.slos[1].status.as_str(), "ok");
    // No recorded series for slow-burn: rules mode honestly says no data.
    assert_eq!(rules.slos[2].status.as_str(), "no_data");

    let auto = evaluator(&prometheus.url, ReadMode::Auto)
        .evaluate(&slos, AT)
        .await;
    assert_eq!(auto.slos[0].source, Some(SliSource::Rules));
    assert_eq!(auto.slos[1].source, Some(SliSource::Rules));
    assert_eq!(
        auto.slos[2].source,
        Some(SliSource::Raw),
        "stale rules fall back to raw"
    );
    // 1 objective query + 8 window queries + the uniqueness check + 8 raw queries for
    // slow-burn.
    assert_eq!(auto.queries, 1 + 8 + 1 + 8);
    // The plan a service keeps with its policies, made for these SLOs: the same reading. One
    // made for another list (here without slow-burn) is not used: the cycle plans afresh.
    let planned = evaluator(&prometheus.url, ReadMode::Auto)
        .evaluate_planned(&slos, &ReadPlan::of(&slos), AT)
        .await;
    assert_eq!(planned.slos, auto.slos);
    let misplanned = evaluator(&prometheus.url, ReadMode::Auto)
        .evaluate_planned(&slos, &ReadPlan::of(&slos[..2]), AT)
        .await;
    assert_eq!(misplanned.slos, auto.slos);
    drop(prometheus);

    // A second copy of spike's rules (another rule file, another burnguard) records the same
    // SLO under another service label. Rules mode asks Prometheus only for `slo` (`max by`),
    // which alone would merge the copies; the uniqueness check makes spike an error instead,
    // and leaves healthy alone.
    let mut doubled = series.clone();
    for (w, _) in WINDOWS {
        doubled.push(recorded("spike", "spike-copy", w, 0.0001));
    }
    let mut copy = objective("spike", 0.999, &fingerprint(0));
    copy.labels.insert("service".into(), "spike-copy".into());
    doubled.push(copy);
    let prometheus = PrometheusServer::start(&doubled);
    for mode in [ReadMode::Rules, ReadMode::Auto] {
        let read = evaluator(&prometheus.url, mode).evaluate(&slos, AT).await;
        assert_eq!(
            read.slos[0].status,
            EvalStatus::Error,
            "{mode:?}: {:?}",
            read.slos[0]
        );
        let error = read.slos[0].error.as_deref().unwrap_or_default();
        assert!(
            error.contains("not unique") && error.contains("2 series"),
            "{error}"
        );
        assert_eq!(read.slos[1].status.as_str(), "ok", "{mode:?}");
    }
}

#[tokio::test]
async fn prometheus_down_is_an_error_never_a_verdict() {
    let url = format!("http://127.0.0.1:{}", free_port());
    let evaluation = evaluator(&url, ReadMode::Raw).evaluate(&slos(), AT).await;
    for slo in &evaluation.slos {
        assert_eq!(slo.status, EvalStatus::Error, "{slo:?}");
        assert!(slo.alerts.is_empty());
        assert_eq!(slo.error_budget_remaining, None);
        let error = slo.error.as_deref().unwrap();
        assert!(error.contains("cannot reach"), "{error}");
    }
    let auto = evaluator(&url, ReadMode::Auto).evaluate(&slos(), AT).await;
    assert!(auto.slos.iter().all(|s| s.status == EvalStatus::Error));
}

#[tokio::test]
async fn a_prometheus_too_slow_to_answer_times_out_into_an_error() {
    // A server that accepts connections and never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let holder = std::thread::spawn(move || {
        let mut held = Vec::new();
        listener.set_nonblocking(true).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while std::time::Instant::now() < deadline {
            if let Ok((stream, _)) = listener.accept() {
                held.push(stream);
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    });
    let mut config = PrometheusConfig::new(&url);
    config.timeout = std::time::Duration::from_millis(500);
    let evaluator = Evaluator::new(Prometheus::new(&config).unwrap(), ReadMode::Raw, 8);
    let slos: Vec<_> = slos().into_iter().take(1).collect();
    let evaluation = evaluator.evaluate(&slos, AT).await;
    let slo = &evaluation.slos[0];
    assert_eq!(slo.status, EvalStatus::Error);
    assert!(
        slo.error.as_deref().unwrap().contains("timed out"),
        "{:?}",
        slo.error
    );
    holder.join().unwrap();
}

/// The uniqueness check is what makes `max by` safe, so an answer to it that cannot be trusted
/// leaves no number trusted: a partial answer (Thanos' or Mimir's `warnings`) gives no data, a
/// failed one an error; a clean one lets the same recorded numbers through. A small fake
/// speaks the query API here, since a real Prometheus cannot be made to answer one query
/// partially and another whole.
#[tokio::test]
async fn an_untrustworthy_uniqueness_check_leaves_rules_mode_without_numbers() {
    use axum::body::Bytes;
    use axum::http::{StatusCode, header};
    use axum::routing::post;

    let answer = |check: &'static str| {
        post(move |body: Bytes| async move {
            let form = String::from_utf8_lossy(&body).to_string();
            let json = |result: &str, warnings: &str| {
                format!(
                    r#"{{"status":"success","data":{{"resultType":"vector","result":[{result}]}},"warnings":[{warnings}]}}"#
                )
            };
            let quiet = r#"{"metric":{"slo":"spike"},"value":[1,"0.0001"]}"#;
            let (status, body) = match (form.contains("count"), check) {
                (false, _) => (StatusCode::OK, json(quiet, "")),
                (true, "clean") => (StatusCode::OK, json("", "")),
                (true, "partial") => (
                    StatusCode::OK,
                    json("", r#""No StoreAPIs matched for this query""#),
                ),
                (true, _) => (
                    StatusCode::BAD_GATEWAY,
                    "<html>502 Bad Gateway</html>".into(),
                ),
            };
            (status, [(header::CONTENT_TYPE, "application/json")], body)
        })
    };
    let app = axum::Router::new()
        .route("/clean/api/v1/query", answer("clean"))
        .route("/partial/api/v1/query", answer("partial"))
        .route("/failing/api/v1/query", answer("failing"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let spike: Vec<_> = slos().into_iter().filter(|s| s.name == "spike").collect();
    let read = |path: &str| {
        let url = format!("{base}/{path}");
        let slos = spike.clone();
        async move { evaluator(&url, ReadMode::Rules).evaluate(&slos, AT).await }
    };
    let clean = read("clean").await;
    assert_eq!(clean.slos[0].status.as_str(), "ok", "{:?}", clean.slos[0]);
    assert_eq!(clean.slos[0].source, Some(SliSource::Rules));

    let partial = read("partial").await;
    assert_eq!(
        partial.slos[0].status.as_str(),
        "no_data",
        "{:?}",
        partial.slos[0]
    );
    assert!(partial.slos[0].error_budget_remaining.is_none());

    let failing = read("failing").await;
    assert_eq!(failing.slos[0].status, EvalStatus::Error);
    let error = failing.slos[0].error.as_deref().unwrap_or_default();
    assert!(
        error.contains("checking that recorded series are unique"),
        "{error}"
    );
    assert_eq!(failing.failed_queries, 1);
}
