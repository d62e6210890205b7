//! What loading policies costs: `burnguard validate` (read, parse, validate, print a line per
//! SLO) on one file of 10,000 and of 100,000 SLOs, beside the 5 s target for 100,000; and,
//! for `serve --kubernetes`, joining the cluster's SLOs to the files' and planning the merged
//! set, beside the join as it was (each cluster SLO's name looked for by a scan of the files').
//!
//! It writes the synthetic fleet's YAML (`tests/common/fleet.rs`) into a temp dir and runs
//! the real binary on it 3 times per size, printing the wall time, SLOs per second and the
//! process's peak RSS. A run that does not exit 0 with every SLO valid prints a `WARNING`
//! line. It asserts nothing.
//!
//! ```text
//! cargo bench --bench load
//! ```

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::Command;
use std::time::Instant;

const SIZES: [usize; 2] = [10_000, 100_000];
const RUNS: usize = 3;

/// Peak RSS of the finished child in KiB, from `/usr/bin/time`'s `%M`, if it is there.
fn timed(binary: &str, dir: &str) -> (bool, String, Option<u64>) {
    let time = std::path::Path::new("/usr/bin/time");
    let output = if time.exists() {
        Command::new(time)
            .args(["-f", "maxrss=%M", binary, "validate", dir])
            .output()
    } else {
        Command::new(binary).args(["validate", dir]).output()
    }
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let rss = stderr
        .lines()
        .find_map(|l| l.strip_prefix("maxrss="))
        .and_then(|v| v.trim().parse().ok());
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    (output.status.success(), stdout, rss)
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let binary = env!("CARGO_BIN_EXE_burnguard");
    println!("| SLOs | file MiB | runs s | SLOs/s (best) | peak RSS MiB | target |");
    println!("|---:|---:|---|---:|---:|---|");
    for n in SIZES {
        let dir = tempfile::tempdir().unwrap();
        let text = common::fleet::yaml(n);
        std::fs::write(dir.path().join("slos.yaml"), &text).unwrap();
        let path = dir.path().display().to_string();
        let mut times = Vec::new();
        let mut peak = None;
        for _ in 0..RUNS {
            let started = Instant::now();
            let (ok, stdout, rss) = timed(binary, &path);
            times.push(started.elapsed().as_secs_f64());
            peak = peak.max(rss);
            if !ok || !stdout.contains(&format!("{n} SLO(s) and 0 playbook(s) valid")) {
                println!("WARNING: validate of {n} SLOs failed or found problems");
            }
        }
        let best = times.iter().copied().fold(f64::INFINITY, f64::min);
        println!(
            "| {n} | {:.1} | {} | {:.0} | {} | {} |",
            text.len() as f64 / 1_048_576.0,
            times
                .iter()
                .map(|t| format!("{t:.2}"))
                .collect::<Vec<_>>()
                .join(", "),
            n as f64 / best,
            peak.map_or("?".to_string(), |kib| format!("{:.0}", kib as f64 / 1024.0)),
            if n == 100_000 { "under 5 s" } else { "—" }
        );
    }
    merging();
}

/// N file SLOs joined by N cluster SLOs, a tenth of which share a file SLO's name (the
/// file's stays): the merge and the plan of the merged set, both made off serve's loop, and
/// the join by scan that the merge replaced.
fn merging() {
    use burnguard::engine::evaluate::ReadPlan;
    use burnguard::ports::ClusterPolicies;
    use burnguard::service::cluster;
    println!();
    println!(
        "| file SLOs + cluster SLOs | merge ms | plan ms | merged | join by scan ms (before) |"
    );
    println!("|---|---:|---:|---:|---:|");
    for n in SIZES {
        let files = common::fleet::slos(n);
        let cluster = ClusterPolicies {
            slos: files
                .iter()
                .enumerate()
                .map(|(i, slo)| {
                    let mut slo = slo.clone();
                    if i % 10 != 0 {
                        slo.name = format!("obj-{i}");
                    }
                    (slo.name.clone(), slo)
                })
                .collect(),
            playbooks: Default::default(),
        };
        let no_books = Default::default();
        let started = Instant::now();
        let (merged, _) = cluster::merge((&files, &no_books), &cluster);
        let merge_ms = started.elapsed().as_secs_f64() * 1e3;
        let started = Instant::now();
        let plan = ReadPlan::of(&merged);
        let plan_ms = started.elapsed().as_secs_f64() * 1e3;
        drop(plan);
        let started = Instant::now();
        let scanned = join_by_scan(&files, &cluster);
        let scan_ms = started.elapsed().as_secs_f64() * 1e3;
        if scanned != merged.len() || merged.len() != n + n - n / 10 {
            println!("WARNING: merged {} SLOs, the scan {scanned}", merged.len());
        }
        println!(
            "| {n} + {n} | {merge_ms:.0} | {plan_ms:.0} | {} | {scan_ms:.0} |",
            merged.len()
        );
    }
}

/// How many SLOs the join had before: every cluster SLO's name looked for among all the files'.
fn join_by_scan(
    files: &[burnguard::domain::policy::Slo],
    cluster: &burnguard::ports::ClusterPolicies,
) -> usize {
    let mut slos = files.to_vec();
    for (name, slo) in &cluster.slos {
        if !files.iter().any(|s| &s.name == name) {
            slos.push(slo.clone());
        }
    }
    slos.len()
}
