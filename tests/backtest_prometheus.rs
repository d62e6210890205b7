//! `backtest` against a REAL Prometheus: a constructed history with one error burst. When the
//! fast page fires and resolves is worked out here, step by step, from the samples this file
//! generated and the workbook's factor; burnguard must agree at every step.

mod common;

use std::process::Command;

use burnguard::adapters::prometheus::{Prometheus, PrometheusConfig};
use burnguard::engine::backtest::{self, Change};
use burnguard::policies;
use common::prometheus::{PrometheusServer, Series, counter, labels};

const STEP: i64 = 60;
/// 2026-01-04T00:00:00Z.
const END: i64 = 1_767_484_800;
const START: i64 = END - 2 * 86_400;
/// The burst: 2% errors for 90 minutes, starting 10h before the end; 0.05% otherwise.
const BURST_FROM: i64 = END - 10 * 3_600;
const BURST_TO: i64 = BURST_FROM + 90 * 60;
const BUDGET: f64 = 0.001;
const PAGE_FACTOR: f64 = 14.4;

const POLICY: &str = r#"apiVersion: burnguard.dev/v1
kind: SLO
metadata: {name: checkout-availability}
spec:
  service: checkout
  objective: 99.9
  indicator:
    ratio:
      errors: sum(rate(http_requests_total{job="checkout",code="500"}[{{.window}}]))
      total: sum(rate(http_requests_total{job="checkout"}[{{.window}}]))
"#;

fn history() -> (Series, Series) {
    let in_burst = |t: i64| (BURST_FROM..BURST_TO).contains(&t);
    let errors = counter(
        "http_requests_total",
        labels(&[("job", "checkout"), ("code", "500")]),
        START,
        END,
        STEP,
        1e6,
        move |t| if in_burst(t) { 0.2 } else { 0.005 },
    );
    let ok = counter(
        "http_requests_total",
        labels(&[("job", "checkout"), ("code", "200")]),
        START,
        END,
        STEP,
        1e6,
        move |t| if in_burst(t) { 9.8 } else { 9.995 },
    );
    (errors, ok)
}

/// Whether the 1h/5m page row fires at `at`, from the generated samples alone.
fn page_fires(errors: &Series, ok: &Series, at: i64) -> bool {
    let ratio = |window: i64| {
        let bad = errors.increase_in(at, window)?;
        let total = bad + ok.increase_in(at, window)?;
        (total > 0.0).then(|| bad / total)
    };
    let limit = PAGE_FACTOR * BUDGET;
    matches!((ratio(3_600), ratio(300)), (Some(l), Some(s)) if l > limit && s > limit)
}

#[tokio::test]
async fn the_fast_page_fires_and_resolves_when_the_history_says() {
    let (errors, ok) = history();
    let prometheus = PrometheusServer::start(&[errors.clone(), ok.clone()]);
    let (loaded, problems) = policies::parse_source("p.yaml", POLICY);
    assert!(problems.is_empty());
    let slos: Vec<_> = loaded.into_iter().map(|l| l.slo).collect();

    // Replay the last 24h at 5m steps, half a minute off the samples.
    let (from, to, step) = (END - 86_400 + 30, END + 30, 300u64);
    let source = Prometheus::new(&PrometheusConfig::new(&prometheus.url)).unwrap();
    let result = backtest::backtest(&source, &slos, from, to, step, 4).await;
    let replay = &result[0];
    assert_eq!(replay.error, None);

    // Expected transitions of the 1h/5m row, step by step.
    let mut expected = Vec::new();
    let mut firing = false;
    for at in backtest::steps(from, to, step) {
        let now = page_fires(&errors, &ok, at);
        if now != firing {
            expected.push((at, if now { Change::Fired } else { Change::Resolved }));
            firing = now;
        }
    }
    assert_eq!(
        expected.len(),
        2,
        "the burst should page once: {expected:?}"
    );
    // Sanity of the scenario: the page starts about 43 minutes into the burst (when 71% of
    // the last hour is burst), and stops within minutes of its end.
    assert!(expected[0].0 > BURST_FROM + 40 * 60 && expected[0].0 <= BURST_FROM + 50 * 60);
    assert!(expected[1].0 > BURST_TO && expected[1].0 <= BURST_TO + 10 * 60);

    let got: Vec<(i64, Change)> = replay
        .transitions
        .iter()
        .filter(|t| t.long_window == "1h" && t.short_window == "5m")
        .map(|t| (t.at, t.change))
        .collect();
    assert_eq!(got, expected);

    // One page episode, and at least as long as the 1h/5m row fired.
    assert_eq!(replay.summary.pages, 1);
    assert!(replay.summary.time_paging_seconds >= (expected[1].0 - expected[0].0) as u64);
    // The budget curve: one point per step, lowest after the burst.
    assert_eq!(replay.budget.len(), backtest::steps(from, to, step).len());
    let lowest_at = replay.summary.lowest_budget_at.unwrap();
    assert!(lowest_at >= BURST_TO, "lowest budget at {lowest_at}");
    // The 30d ratio at the end covers the whole history: check the budget there independently.
    let bad = errors.increase_in(to, 30 * 86_400).unwrap();
    let total = bad + ok.increase_in(to, 30 * 86_400).unwrap();
    let want = 1.0 - (bad / total) / BUDGET;
    let have = replay.budget.last().unwrap().remaining.unwrap();
    assert!((have - want).abs() < 1e-9, "{have} != {want}");
}

#[tokio::test]
async fn the_backtest_command_prints_a_summary_and_json() {
    let (errors, ok) = history();
    let prometheus = PrometheusServer::start(&[errors, ok]);
    let dir = tempfile::tempdir().unwrap();
    let policy = common::write(dir.path(), "p.yaml", POLICY);
    let from = (END - 86_400 + 30).to_string();
    let to = (END + 30).to_string();
    let run = |output: &str| {
        common::run(
            Command::new(env!("CARGO_BIN_EXE_burnguard"))
                .args([
                    "backtest", "--from", &from, "--to", &to, "--step", "5m", "--output", output,
                ])
                .args(["--prometheus", &prometheus.url])
                .arg(&policy),
        )
    };
    let (ok_table, table) = run("table");
    assert!(ok_table, "{table}");
    assert!(
        table.contains("checkout-availability (checkout): 1 page(s)"),
        "{table}"
    );
    assert!(table.contains("fired     page    1h/5m"), "{table}");
    let (ok_json, json) = run("json");
    assert!(ok_json, "{json}");
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(report["step_seconds"], 300);
    assert_eq!(report["slos"][0]["summary"]["pages"], 1);
    assert!(
        report["slos"][0]["transitions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["change"] == "fired")
    );
}
