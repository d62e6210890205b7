//! A whole `serve` cycle beside what Prometheus alone needs to answer the same queries, and
//! what `serve` holds in memory: its resident set after several cycles in rules mode (or auto
//! mode, `BURNGUARD_BENCH_MODE=auto`) over N SLOs whose recorded series exist, beside the
//! targets (64 MiB at 10,000, 400 MiB at 100,000).
//!
//! For each N it writes the synthetic fleet (`tests/common/fleet.rs`) as a policy file, the
//! series rules mode reads (each SLO's recorded error ratio per window, and its objective with
//! the fingerprint of its rules, as the generated rules record them) for the last 15 minutes
//! into a fresh Prometheus (promtool backfill, a free 127.0.0.1 port), and starts the release
//! `burnguard serve --mode rules` (or `auto`) on SQLite. Every cycle is timed by serve itself
//! (its `evaluation cycle done millis=` log line: queries, verdicts, store writes, incident
//! decisions, the state `/metrics` renders), and split by the same line into the wait for
//! Prometheus's last answer, the verdicts after it, and the store's part. Right after each
//! cycle, while serve sleeps until the next, the bench
//! - sends the same queries to Prometheus with reqwest (the client serve uses) as serve sends
//!   them (in auto mode the recorded objectives first, then the others all at once), and
//!   times them until every answer's body has arrived: what Prometheus alone needs to return
//!   the data;
//! - scrapes `/metrics` once, as Prometheus would, timing it and the CPU serve spends on it;
//! - waits [`IDLE`] with nothing running, and sends the same queries again: serve's cycle comes
//!   after seconds in which Prometheus and the machine were idle, while the run right after it
//!   finds them busy and warm, so the ratio is printed against both runs.
//!
//! After the cycles it reads `VmRSS` and `VmHWM` of the serve process from `/proc`, and prints
//! a second table: the CPU time (every thread, from `/proc/<pid>/stat`) serve spends per steady
//! cycle beside what Prometheus spends answering it, and answering the bench alone. A cycle
//! with failed queries prints a `WARNING` line. It asserts nothing.
//!
//! ```text
//! cargo bench --bench serve
//! BURNGUARD_BENCH_SIZES=1000,10000,100000 cargo bench --bench serve
//! BURNGUARD_BENCH_SIZES=10000 BURNGUARD_BENCH_CYCLES=16 cargo bench --bench serve
//! BURNGUARD_BENCH_MODE=auto cargo bench --bench serve
//! ```

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::prometheus::{PrometheusServer, Series, http_get_within};
use common::serve::{Serve, value};

const SIZES: [usize; 2] = [1_000, 10_000];
/// How long nothing runs before the bench's second Prometheus-alone run.
const IDLE: Duration = Duration::from_secs(2);
/// Cycles per size, unless `BURNGUARD_BENCH_CYCLES` says otherwise.
const CYCLES: usize = 6;

fn cycles() -> usize {
    std::env::var("BURNGUARD_BENCH_CYCLES")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .filter(|&n| n >= 2)
        .unwrap_or(CYCLES)
}

/// `BURNGUARD_BENCH_SIZES=1000` runs only the sizes listed.
fn sizes() -> Vec<usize> {
    std::env::var("BURNGUARD_BENCH_SIZES")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| SIZES.to_vec())
}

/// What rules mode reads for every SLO, constant over the last 15 minutes.
fn recorded(slos: &[burnguard::domain::policy::Slo], end: i64) -> Vec<Series> {
    let times: Vec<i64> = (0..=15).map(|k| end - 900 + k * 60).collect();
    slos.iter()
        .enumerate()
        .flat_map(|(i, slo)| {
            let ratio = if i % 10 == 0 { 0.02 } else { 0.0002 };
            // As the generated rules record it: auto mode reads the SLO from them only when
            // the fingerprint matches its rules as they are now.
            common::fleet::recorded_by_rules(slo, &slo.service, ratio, &times)
        })
        .collect()
}

fn proc_mib(pid: u32, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Which read mode serve runs in: `BURNGUARD_BENCH_MODE=auto` (serve's default), or rules.
fn mode() -> &'static str {
    match std::env::var("BURNGUARD_BENCH_MODE").as_deref() {
        Ok("auto") => "auto",
        _ => "rules",
    }
}

/// The queries of one cycle as serve sends them: `first` on its own (auto mode's check of
/// the recorded rules), then `queries` all at once. The time until the last body arrived,
/// and the bytes of all bodies.
async fn prometheus_alone(
    client: &reqwest::Client,
    url: &str,
    first: Option<&str>,
    queries: &[String],
) -> (Duration, usize) {
    let started = Instant::now();
    let at = chrono::Utc::now().timestamp().to_string();
    let ask = |q: &str| {
        let form = [("query", q.to_string()), ("time", at.clone())];
        let q = q.to_string();
        async move {
            let response = client
                .post(format!("{url}/api/v1/query"))
                .form(&form)
                .send()
                .await
                .expect("Prometheus answers");
            assert!(response.status().is_success(), "{q}: {}", response.status());
            response.bytes().await.expect("the whole body").len()
        }
    };
    let first_bytes = match first {
        Some(q) => ask(q).await,
        None => 0,
    };
    let answers = futures_util::future::join_all(queries.iter().map(|q| ask(q))).await;
    (
        started.elapsed(),
        first_bytes + answers.iter().sum::<usize>(),
    )
}

/// CPU time (user and system, every thread) the process has used so far, in milliseconds.
fn cpu_ms(pid: u32) -> f64 {
    // `/proc/<pid>/stat`: fields 14 and 15 after the command (which may hold spaces, so
    // count from its closing parenthesis), in USER_HZ ticks (100 a second on Linux).
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after_command = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_command.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    (ticks(11) + ticks(12)) * 10.0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    burnguard::adapters::prometheus::install_crypto_provider();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = reqwest::Client::new();
    let cycles = cycles();
    println!(
        "| N | serve cycle ms (median, min–max of {cycles}) | of which waiting for answers / verdicts / storing ms (medians) | Prometheus alone ms (median, min–max) | ratio of medians | median of each steady cycle's ratio to the Prometheus-alone run after it | Prometheus alone after {}s idle ms (median, min–max) | paired ratio to it | answer MiB | /metrics MiB | scrape ms (serve CPU ms), medians | RSS MiB after {cycles} cycles | peak RSS MiB | target RSS |",
        IDLE.as_secs()
    );
    println!("|---:|---|---|---|---:|---:|---|---:|---:|---:|---|---:|---:|---|");
    let mut cpu_rows = Vec::new();
    for n in sizes() {
        let slos = common::fleet::slos(n);
        // Exactly what a rules-mode cycle asks; auto mode asks for the recorded objectives
        // first.
        let queries = burnguard::engine::evaluate::rules_queries(&slos);
        let first = (mode() == "auto").then(burnguard::engine::evaluate::recorded_objectives_query);
        let now = chrono::Utc::now().timestamp();
        let prometheus = PrometheusServer::start(&recorded(&slos, now - now % 60));
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("slos.yaml"), common::fleet::yaml(n)).unwrap();
        drop(slos);
        let db = common::db::TestDb::sqlite();
        let policies = dir.path().display().to_string();
        // `BURNGUARD_BENCH_SERVE_UNDER="valgrind --tool=massif --massif-out-file=F"` (or
        // `heaptrack -o F`) runs serve under a heap profiler (the figures are then the
        // profiler's, not serve's).
        let under = std::env::var("BURNGUARD_BENCH_SERVE_UNDER").unwrap_or_default();
        let wrapper: Vec<&str> = under.split_whitespace().collect();
        // A cycle must end well before the next one starts, leaving room for the bench's own
        // queries in between: two runs of them, the scrape and the idle pause (at 100,000
        // SLOs about 4 + 3.5 + 0.3 + 2 + 3.5 s).
        let interval = format!("{}s", 5 + 2 * n / 10_000);
        let serve = Serve::start_under(
            &wrapper,
            &[
                "--listen",
                "127.0.0.1:0",
                "--interval",
                &interval,
                "--mode",
                mode(),
                "--prometheus",
                &prometheus.url,
                "--db",
                db.url(),
                "--policies",
                &policies,
            ],
            &[],
        );
        let (mut cycle_ms, mut alone_ms, mut idle_alone_ms) = (Vec::new(), Vec::new(), Vec::new());
        let (mut read_ms, mut store_ms, mut answered_ms) = (Vec::new(), Vec::new(), Vec::new());
        let (mut answer_bytes, mut metrics_bytes, mut failed) = (0, 0, 0usize);
        let mut metrics = String::new();
        let (mut scrape_ms, mut scrape_cpu) = (Vec::new(), Vec::new());
        // CPU per cycle: serve's from the end of one scrape to the next cycle's end (it only
        // sleeps in between), Prometheus's meanwhile (answering serve) and while it answers
        // the bench alone. The first cycle opens incidents: left out.
        let (serve_pid, prometheus_pid) = (serve.child.id(), prometheus.pid());
        let (mut serve_cpu, mut prometheus_cpu, mut alone_cpu) = (0.0, 0.0, 0.0);
        for cycle in 0..cycles {
            let (serve_before, prometheus_before) = (cpu_ms(serve_pid), cpu_ms(prometheus_pid));
            let line = serve.wait_log("evaluation cycle done", Duration::from_secs(900));
            let (serve_after, prometheus_after) = (cpu_ms(serve_pid), cpu_ms(prometheus_pid));
            let field = |name: &str| -> f64 {
                line.split(&format!(" {name}="))
                    .nth(1)
                    .and_then(|rest| rest.split_whitespace().next())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(f64::NAN)
            };
            cycle_ms.push(field("millis"));
            read_ms.push(field("read_millis"));
            answered_ms.push(field("answered_millis"));
            store_ms.push(field("store_millis"));
            failed += field("failed") as usize;
            let alone_before = cpu_ms(prometheus_pid);
            let (took, bytes) = runtime.block_on(prometheus_alone(
                &client,
                &prometheus.url,
                first.as_deref(),
                &queries,
            ));
            if cycle > 0 {
                serve_cpu += serve_after - serve_before;
                prometheus_cpu += prometheus_after - prometheus_before;
                alone_cpu += cpu_ms(prometheus_pid) - alone_before;
            }
            alone_ms.push(took.as_secs_f64() * 1e3);
            answer_bytes = bytes;
            let (scrape_started, cpu_before) = (Instant::now(), cpu_ms(serve_pid));
            if let Some((200, body)) =
                http_get_within(&serve.addr, "/metrics", Duration::from_secs(300))
            {
                scrape_ms.push(scrape_started.elapsed().as_secs_f64() * 1e3);
                scrape_cpu.push(cpu_ms(serve_pid) - cpu_before);
                metrics_bytes = body.len();
                metrics = body;
            }
            std::thread::sleep(IDLE);
            let (took, _) = runtime.block_on(prometheus_alone(
                &client,
                &prometheus.url,
                first.as_deref(),
                &queries,
            ));
            idle_alone_ms.push(took.as_secs_f64() * 1e3);
        }
        let (rss, peak) = (proc_mib(serve_pid, "VmRSS:"), proc_mib(serve_pid, "VmHWM:"));
        let counted = value(&metrics, "burnguard_evaluation_duration_seconds_count").unwrap_or(0.0);
        if failed > 0 || counted < cycles as f64 - 1.0 {
            println!("WARNING: N={n}: {failed} failed queries; /metrics counted {counted} cycles");
        }
        // Each steady cycle beside the bench's own run right after it: the machine's load
        // drifts less between the two than over the whole run.
        let paired = |alone: &[f64]| -> Vec<f64> {
            cycle_ms
                .iter()
                .zip(alone)
                .skip(1)
                .map(|(cycle, alone)| cycle / alone)
                .collect()
        };
        let show = |v: Option<f64>| v.map_or("?".into(), |v| format!("{v:.0}"));
        let spread = |v: &[f64]| {
            let (lo, hi) = v
                .iter()
                .fold((f64::MAX, f64::MIN), |(lo, hi), x| (lo.min(*x), hi.max(*x)));
            format!("{:.0} ({lo:.0}–{hi:.0})", median(v.to_vec()))
        };
        let mib = |bytes: usize| bytes as f64 / (1024.0 * 1024.0);
        let steady = (cycles - 1) as f64;
        cpu_rows.push(format!(
            "| {n} | {:.0} | {:.0} | {:.0} | {:.2} |",
            serve_cpu / steady,
            prometheus_cpu / steady,
            alone_cpu / steady,
            serve_cpu / alone_cpu
        ));
        println!(
            "| {n} | {} | {:.0} / {:.0} / {:.0} | {} | {:.2} | {:.2} | {} | {:.2} | {:.1} | {:.1} | {:.0} ({:.0}) | {} | {} | {} |",
            spread(&cycle_ms),
            median(answered_ms.clone()),
            median(
                read_ms
                    .iter()
                    .zip(&answered_ms)
                    .map(|(r, a)| r - a)
                    .collect()
            ),
            median(store_ms),
            spread(&alone_ms),
            median(cycle_ms.clone()) / median(alone_ms.clone()),
            median(paired(&alone_ms)),
            spread(&idle_alone_ms),
            median(paired(&idle_alone_ms)),
            mib(answer_bytes),
            mib(metrics_bytes),
            median(scrape_ms),
            median(scrape_cpu),
            show(rss),
            show(peak),
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
    println!();
    println!(
        "| N | serve CPU ms per cycle | Prometheus CPU ms answering serve | Prometheus CPU ms answering the same queries alone | serve / Prometheus alone |"
    );
    println!("|---:|---:|---:|---:|---:|");
    for row in cpu_rows {
        println!("{row}");
    }
}
