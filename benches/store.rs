//! What recording one evaluation cycle costs the store: `record_cycle` (every SLO's
//! evaluation, its latest state and its incident decision) for 1,000 and 10,000 SLOs on SQLite
//! and on PostgreSQL, beside the 300 ms target for 10,000.
//!
//! For each backend and N it records a first cycle into a fresh store (a tenth of the SLOs
//! paging: that cycle opens their incidents), then 3 steady cycles a minute apart (the same
//! SLOs still firing), timing each and printing evaluations written per second. A cycle
//! with a failed write prints a `WARNING` line. It asserts nothing.
//!
//! ```text
//! cargo bench --bench store
//! ```

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

use burnguard::adapters::store::SqlStore;
use burnguard::engine::record::{HistoryCadence, record_cycle};
use common::db::TestDb;
use common::fleet::{evaluation, slos};

const SIZES: [usize; 2] = [1_000, 10_000];
const STEADY_CYCLES: i64 = 3;

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        println!("| backend | N | history | first cycle ms | steady cycles ms | evaluations/s (steady, best) | target |");
        println!("|---|---:|---|---:|---|---:|---|");
        for backend in ["sqlite", "postgres"] {
            for n in SIZES {
              for resolution in [0, 300] {
                let db = match backend {
                    "sqlite" => TestDb::sqlite(),
                    _ => TestDb::postgres().await,
                };
                let store = SqlStore::open(db.url()).await.unwrap();
                let slos = slos(n);
                let at = chrono::Utc::now().timestamp();
                // Every evaluation kept (`--history-resolution 0s`), cycles a minute apart; or
                // the default 5m resolution at a 30 s interval, over ten cycles (a cadence
                // spread over the fleet keeps about a tenth of the SLOs each cycle).
                let (cycles, every, history) = match resolution {
                    0 => (STEADY_CYCLES, 60, "every evaluation"),
                    _ => (10, 30, "5m resolution, 30 s interval"),
                };
                let mut cadence = HistoryCadence::new(std::time::Duration::from_secs(resolution));
                let started = Instant::now();
                let first = record_cycle(&store, &slos, &evaluation(&slos, at), &mut cadence).await;
                let first_ms = started.elapsed().as_secs_f64() * 1_000.0;
                if first.failed > 0 || first.opened != n / 10 {
                    println!(
                        "WARNING: the first cycle failed {} writes and opened {} incidents",
                        first.failed, first.opened
                    );
                }
                let mut steady = Vec::new();
                for k in 1..=cycles {
                    let cycle = evaluation(&slos, at + every * k);
                    let started = Instant::now();
                    let recorded = record_cycle(&store, &slos, &cycle, &mut cadence).await;
                    steady.push(started.elapsed().as_secs_f64() * 1_000.0);
                    if recorded.failed > 0 || recorded.opened > 0 {
                        println!(
                            "WARNING: a steady cycle failed {} writes and opened {}",
                            recorded.failed, recorded.opened
                        );
                    }
                }
                if std::env::var_os("BURNGUARD_BENCH_PARTS").is_some() {
                    let cycle = evaluation(&slos, at + 3_600);
                    let started = Instant::now();
                    let records: Vec<_> = cycle
                        .slos
                        .iter()
                        .map(|e| burnguard::engine::record::evaluation_record(e, at))
                        .collect();
                    let built = started.elapsed();
                    let started = Instant::now();
                    let text: usize = records.iter().map(|r| r.snapshot.to_string().len()).sum();
                    println!(
                        "parts: building {n} records {:.0} ms, their JSON text {:.0} ms ({} KiB)",
                        built.as_secs_f64() * 1e3,
                        started.elapsed().as_secs_f64() * 1e3,
                        text / 1024
                    );
                }
                let best = steady.iter().copied().fold(f64::INFINITY, f64::min);
                println!(
                    "| {backend} | {n} | {history} | {first_ms:.0} | {} | {:.0} | {} |",
                    steady
                        .iter()
                        .map(|ms| format!("{ms:.0}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    n as f64 / (best / 1_000.0),
                    if n == 10_000 { "under 300 ms" } else { "—" }
                );
              }
            }
        }
    });
}
