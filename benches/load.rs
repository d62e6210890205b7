//! What loading policies costs: `burnguard validate` (read, parse, validate, print a line per
//! SLO) on one file of 10,000 and of 100,000 SLOs, beside the 5 s target for 100,000.
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
}
