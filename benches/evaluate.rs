//! How long one evaluation cycle takes, and how much memory the evaluating process needs, for
//! 100, 1,000 and 10,000 SLOs against a REAL Prometheus, in both read modes:
//!
//! - `raw`: every SLO's own ratio queries, one per window (8 windows each with the default
//!   catalogue over 30d), 16 in flight;
//! - `rules`: the `burnguard:sli_error:ratio_rate<W>` series the generated recording rules
//!   would have written, one query per window for all SLOs.
//!
//! For each size the bench writes synthetic history (2 hours of per-SLO request counters at
//! 60 s resolution, plus the last 15 minutes of recorded ratios and objectives), turns it into
//! TSDB blocks with `promtool tsdb create-blocks-from openmetrics` and serves it from a
//! `prometheus` on a free 127.0.0.1 port, through the integration tests' harness
//! (`tests/common/prometheus.rs`); the server is killed when the size is done. Each
//! (mode, size) runs one warm-up cycle, then 3 measured cycles, or 1 when the warm-up took
//! longer than 3 minutes (the line says so).
//!
//! It prints figures and never asserts on them; a cycle with failed queries or SLOs without
//! numbers prints a `WARNING` line, so a figure is never silently taken from a broken run.
//! Peak RSS is this process's `VmHWM`, reset (via `/proc/self/clear_refs`) before each case;
//! Prometheus's own memory is not included.
//!
//! Run (needs `prometheus` and `promtool` on PATH):
//!
//! ```text
//! CARGO_TARGET_DIR=/tmp/bench-target cargo bench --bench evaluate
//! ```
//!
//! `BURNGUARD_BENCH_SIZES=100,1000` measures other sizes.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use burnguard::adapters::prometheus::{Prometheus, PrometheusConfig};
use burnguard::domain::policy::Slo;
use burnguard::engine::evaluate::{EvalStatus, Evaluation, Evaluator, ReadMode};
use burnguard::policies;
use common::prometheus::{PrometheusServer, Series, counter, labels};

/// SLO counts measured, unless `BURNGUARD_BENCH_SIZES` (e.g. `100,1000`) says otherwise.
const SIZES: [usize; 3] = [100, 1_000, 10_000];
/// Sample spacing of all history, seconds.
const STEP: i64 = 60;
/// 2026-01-04T00:00:00Z: the last sample of the history.
const END: i64 = 1_767_484_800;
/// Request counters cover this much history.
const COUNTER_HISTORY: i64 = 2 * 3_600;
/// Recorded ratios and objectives cover this much (an instant query looks back 5 minutes).
const RECORDED_HISTORY: i64 = 15 * 60;
/// Evaluate half a step after the last sample.
const AT: i64 = END + 30;
/// Requests per second of every SLO.
const TRAFFIC: f64 = 10.0;
const OBJECTIVE_PERCENT: f64 = 99.9;
/// Queries in flight.
const CONCURRENCY: usize = 16;
const MEASURED_CYCLES: usize = 3;
/// A warm-up cycle slower than this gets a single measured cycle.
const LONG_CYCLE: Duration = Duration::from_secs(180);

/// Error ratio of SLO `i`: 0.02% to 0.4%, i.e. burn rates 0.2 to 4 against a 99.9% objective.
fn error_ratio(i: usize) -> f64 {
    0.0002 * (1 + i % 20) as f64
}

fn slo_name(i: usize) -> String {
    format!("s{i}")
}

fn policy_text(n: usize) -> String {
    let mut text = String::new();
    for i in 0..n {
        let name = slo_name(i);
        text.push_str(&format!(
            "---\n\
             apiVersion: burnguard.dev/v1\n\
             kind: SLO\n\
             metadata: {{name: {name}}}\n\
             spec:\n  \
               service: svc{service}\n  \
               objective: {OBJECTIVE_PERCENT}\n  \
               indicator:\n    \
                 ratio:\n      \
                   errors: sum(rate(bench_requests_total{{slo=\"{name}\",code=\"500\"}}[{{{{.window}}}}]))\n      \
                   total: sum(rate(bench_requests_total{{slo=\"{name}\"}}[{{{{.window}}}}]))\n",
            service = i % 50,
        ));
    }
    text
}

fn load_slos(n: usize) -> anyhow::Result<Vec<Slo>> {
    let (loaded, problems) = policies::parse_source("bench.yaml", &policy_text(n));
    anyhow::ensure!(problems.is_empty(), "generated policies: {problems:?}");
    anyhow::ensure!(
        loaded.len() == n,
        "{} SLOs parsed, {n} expected",
        loaded.len()
    );
    Ok(loaded.into_iter().map(|l| l.slo).collect())
}

/// What raw mode reads (two counters per SLO) and what rules mode reads (a recorded ratio per
/// window the SLO needs, plus its objective), for every SLO.
fn history(slos: &[Slo]) -> Vec<Series> {
    let mut series = Vec::new();
    let recorded_times: Vec<i64> = (0..=RECORDED_HISTORY / STEP)
        .map(|k| END - RECORDED_HISTORY + k * STEP)
        .collect();
    for (i, slo) in slos.iter().enumerate() {
        let ratio = error_ratio(i);
        let service = format!("svc{}", i % 50);
        for (code, rate) in [("500", TRAFFIC * ratio), ("200", TRAFFIC * (1.0 - ratio))] {
            series.push(counter(
                "bench_requests_total",
                labels(&[("slo", &slo.name), ("code", code)]),
                END - COUNTER_HISTORY,
                END,
                STEP,
                1_000.0,
                move |_| rate,
            ));
        }
        series.extend(common::fleet::recorded_series(
            slo,
            &service,
            ratio,
            &recorded_times,
        ));
    }
    series
}

fn proc_status_mib(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Resets `VmHWM` to the current RSS; false where the kernel does not allow it.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// The first three fields of `/proc/loadavg`: other work on the machine skews the figures.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "n/a".into())
}

fn mib(value: Option<f64>) -> String {
    value.map_or_else(|| "n/a".into(), |v| format!("{v:.1}"))
}

/// Why a cycle's figures should not be trusted, if they should not.
fn problems(evaluation: &Evaluation, n: usize) -> Vec<String> {
    let mut found = Vec::new();
    if evaluation.failed_queries > 0 {
        found.push(format!("{} failed queries", evaluation.failed_queries));
    }
    if evaluation.slos.len() != n {
        found.push(format!(
            "{} SLOs evaluated, {n} expected",
            evaluation.slos.len()
        ));
    }
    let errors: Vec<_> = evaluation
        .slos
        .iter()
        .filter(|s| s.status == EvalStatus::Error)
        .collect();
    if let Some(first) = errors.first() {
        found.push(format!(
            "{} SLOs in error, e.g. {}: {}",
            errors.len(),
            first.name,
            first.error.as_deref().unwrap_or("?")
        ));
    }
    let missing = evaluation
        .slos
        .iter()
        .flat_map(|s| &s.error_ratio.0)
        .filter(|(_, v)| v.is_none())
        .count();
    if missing > 0 {
        found.push(format!(
            "{missing} (SLO, window) error ratios without a number"
        ));
    }
    found
}

fn statuses(evaluation: &Evaluation) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for slo in &evaluation.slos {
        *counts.entry(slo.status.as_str()).or_default() += 1;
    }
    counts
        .iter()
        .map(|(status, count)| format!("{status}={count}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1_000.0
}

async fn measure(url: &str, mode: ReadMode, slos: &[Slo]) -> anyhow::Result<String> {
    let label = match mode {
        ReadMode::Raw => "raw",
        ReadMode::Rules => "rules",
        ReadMode::Auto => "auto",
    };
    let n = slos.len();
    let evaluator = Evaluator::new(
        Prometheus::new(&PrometheusConfig::new(url))?,
        mode,
        CONCURRENCY,
    );
    let peak_reset = reset_peak_rss();
    let rss_before = proc_status_mib("VmRSS:");

    let started = Instant::now();
    let warm_up = evaluator.evaluate(slos, AT).await;
    let warm_up_time = started.elapsed();
    eprintln!(
        "  {label} N={n}: warm-up {:.0} ms, {} queries, statuses {}",
        ms(warm_up_time),
        warm_up.queries,
        statuses(&warm_up)
    );
    let mut warnings: Vec<String> = problems(&warm_up, n)
        .into_iter()
        .map(|p| format!("warm-up: {p}"))
        .collect();
    drop(warm_up);

    let cycles = if warm_up_time > LONG_CYCLE {
        1
    } else {
        MEASURED_CYCLES
    };
    let mut times = Vec::with_capacity(cycles);
    let mut queries = 0;
    let mut failed = 0;
    for cycle in 1..=cycles {
        let started = Instant::now();
        let evaluation = evaluator.evaluate(slos, AT).await;
        times.push(started.elapsed());
        queries = evaluation.queries;
        failed += evaluation.failed_queries;
        warnings.extend(
            problems(&evaluation, n)
                .into_iter()
                .map(|p| format!("cycle {cycle}: {p}")),
        );
    }
    let peak = proc_status_mib("VmHWM:");

    for warning in &warnings {
        println!("WARNING {label} N={n}: {warning}");
    }
    let mean = times.iter().map(|t| ms(*t)).sum::<f64>() / times.len() as f64;
    let min = times.iter().map(|t| ms(*t)).fold(f64::INFINITY, f64::min);
    let max = times.iter().map(|t| ms(*t)).fold(0.0, f64::max);
    let note = if cycles < MEASURED_CYCLES {
        format!(
            " 1 cycle only (warm-up took {:.0} s)",
            warm_up_time.as_secs_f64()
        )
    } else {
        String::new()
    };
    Ok(format!(
        "| {label:<5} | {n:>6} | {queries:>7} | {failed:>6} | {cycles:>6} | {mean:>9.1} | {min:>9.1} | {max:>9.1} | {rss:>13} | {peak:>12} |{note}",
        rss = mib(rss_before),
        peak = if peak_reset {
            mib(peak)
        } else {
            format!("{}*", mib(peak))
        },
    ))
}

fn sizes() -> anyhow::Result<Vec<usize>> {
    match std::env::var("BURNGUARD_BENCH_SIZES") {
        Ok(list) => list.split(',').map(|n| Ok(n.trim().parse()?)).collect(),
        Err(_) => Ok(SIZES.to_vec()),
    }
}

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this binary without it,
    // and a test run must not spend minutes measuring.
    if !std::env::args().any(|a| a == "--bench") {
        println!("benchmark skipped: run it with `cargo bench --bench evaluate`");
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let bench_started = Instant::now();
    let load_at_start = load_average();
    let mut rows = Vec::new();
    for n in sizes()? {
        let slos = load_slos(n)?;
        let started = Instant::now();
        let series = history(&slos);
        let samples: usize = series.iter().map(|s| s.samples.len()).sum();
        let prometheus = PrometheusServer::start(&series);
        eprintln!(
            "N={n}: {} series, {samples} samples; history written and Prometheus ready at {} in {:.1} s",
            series.len(),
            prometheus.url,
            started.elapsed().as_secs_f64()
        );
        drop(series);
        for mode in [ReadMode::Rules, ReadMode::Raw] {
            let row = runtime.block_on(measure(&prometheus.url, mode, &slos))?;
            println!("{row}");
            rows.push(row);
        }
        // Dropping the handle kills Prometheus and removes its data.
        drop(prometheus);
    }
    println!();
    println!(
        "| mode  |      N | queries | failed | cycles |   mean ms |    min ms |    max ms | start RSS MiB | peak RSS MiB |"
    );
    println!(
        "|-------|-------:|--------:|-------:|-------:|----------:|----------:|----------:|--------------:|-------------:|"
    );
    for row in &rows {
        println!("{row}");
    }
    println!(
        "\nqueries: sent per cycle; failed: summed over the measured cycles; concurrency {CONCURRENCY}; \
         start RSS: this process's VmRSS before the warm-up (SLOs loaded, history freed); \
         peak RSS: its VmHWM over warm-up and measured cycles, reset before each case \
         (* where it could not be reset). Prometheus's memory is not included."
    );
    println!(
        "total bench time {:.0} s; load average (1, 5, 15 min) at start {load_at_start}, at end {}",
        bench_started.elapsed().as_secs_f64(),
        load_average()
    );
    Ok(())
}
