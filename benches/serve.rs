//! What `serve` itself holds in memory: its resident set after several cycles in rules mode
//! over 1,000 and 10,000 SLOs whose recorded series exist, beside the targets (64 MiB at
//! 10,000), with the cycle time from its own metrics.
//!
//! For each N it writes the synthetic fleet (`tests/common/fleet.rs`) as a policy file, the
//! series rules mode reads (each SLO's recorded error ratio per window and its objective) for
//! the last 15 minutes into a fresh Prometheus (promtool backfill, a free 127.0.0.1 port), and
//! starts the release `burnguard serve --mode rules --interval 5s` on SQLite. After 5 cycles
//! (`burnguard_evaluation_duration_seconds_count`) it reads `VmRSS` and `VmHWM` of the serve
//! process from `/proc`. A cycle with failed queries prints a `WARNING` line. It asserts
//! nothing.
//!
//! ```text
//! cargo bench --bench serve
//! ```

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::prometheus::{PrometheusServer, Series};
use common::serve::{Serve, value};

const SIZES: [usize; 2] = [1_000, 10_000];

/// `BURNGUARD_BENCH_SIZES=1000` runs only the sizes listed.
fn sizes() -> Vec<usize> {
    std::env::var("BURNGUARD_BENCH_SIZES")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| SIZES.to_vec())
}
const CYCLES: f64 = 5.0;

/// What rules mode reads for every SLO, constant over the last 15 minutes.
fn recorded(slos: &[burnguard::domain::policy::Slo], end: i64) -> Vec<Series> {
    let times: Vec<i64> = (0..=15).map(|k| end - 900 + k * 60).collect();
    slos.iter()
        .enumerate()
        .flat_map(|(i, slo)| {
            let ratio = if i % 10 == 0 { 0.02 } else { 0.0002 };
            common::fleet::recorded_series(slo, &slo.service, ratio, &times)
        })
        .collect()
}

fn proc_mib(pid: u32, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    println!("| N | RSS MiB after {CYCLES} cycles | peak RSS MiB | mean cycle s | target RSS |");
    println!("|---:|---:|---:|---:|---|");
    for n in sizes() {
        let slos = common::fleet::slos(n);
        let now = chrono::Utc::now().timestamp();
        let prometheus = PrometheusServer::start(&recorded(&slos, now - now % 60));
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("slos.yaml"), common::fleet::yaml(n)).unwrap();
        drop(slos);
        let db = common::db::TestDb::sqlite();
        let policies = dir.path().display().to_string();
        // `BURNGUARD_BENCH_SERVE_UNDER="valgrind --tool=massif --massif-out-file=F"` runs serve
        // under a heap profiler (the figures are then the profiler's, not serve's).
        let under = std::env::var("BURNGUARD_BENCH_SERVE_UNDER").unwrap_or_default();
        let wrapper: Vec<&str> = under.split_whitespace().collect();
        let serve = Serve::start_under(
            &wrapper,
            &[
                "--listen",
                "127.0.0.1:0",
                "--interval",
                "5s",
                "--mode",
                "rules",
                "--prometheus",
                &prometheus.url,
                "--db",
                db.url(),
                "--policies",
                &policies,
            ],
            &[],
        );
        let deadline = Instant::now() + Duration::from_secs(600);
        let metrics = loop {
            let (_, body) = serve.get("/metrics");
            let cycles = value(&body, "burnguard_evaluation_duration_seconds_count").unwrap_or(0.0);
            if cycles >= CYCLES || Instant::now() > deadline {
                break body;
            }
            serve.skip_logs();
            std::thread::sleep(Duration::from_millis(500));
        };
        let pid = serve.child.id();
        let (rss, peak) = (proc_mib(pid, "VmRSS:"), proc_mib(pid, "VmHWM:"));
        let cycles = value(&metrics, "burnguard_evaluation_duration_seconds_count").unwrap_or(0.0);
        let seconds = value(&metrics, "burnguard_evaluation_duration_seconds_sum").unwrap_or(0.0);
        let failed: f64 = metrics
            .lines()
            .filter(|l| l.starts_with("burnguard_query_errors_total"))
            .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
            .sum();
        if cycles < CYCLES || failed > 0.0 {
            println!("WARNING: N={n}: {cycles} cycles, {failed} failed queries");
        }
        let show = |v: Option<f64>| v.map_or("?".into(), |v| format!("{v:.0}"));
        println!(
            "| {n} | {} | {} | {:.2} | {} |",
            show(rss),
            show(peak),
            seconds / cycles.max(1.0),
            match n {
                10_000 => "64 MiB",
                100_000 => "400 MiB",
                _ => "—",
            }
        );
        if !wrapper.is_empty() {
            // A profiler writes its report when the program exits: stop serve gracefully.
            let mut serve = serve;
            serve.signal("TERM");
            serve.wait_exit(Duration::from_secs(300));
        } else {
            drop(serve);
        }
        drop(prometheus);
    }
}
