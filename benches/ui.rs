//! What the web UI's SLO list costs the server: the first render of `/ui/` (the store read,
//! the rows, the HTML) for 1,000 and 10,000 SLOs, beside the 200 ms target for 1,000 and the
//! same store read the API's `/api/v1/slos` makes.
//!
//! For each N it writes N SLOs' latest evaluations into a fresh SQLite store (a tenth paging,
//! a tenth with an open incident), serves the real router on a 127.0.0.1 port, and times 20
//! GETs of each page after one warm-up, printing the median, p95 and max with the page size.
//! A page that does not answer 200 with every SLO prints a `WARNING` line. It asserts
//! nothing.
//!
//! ```text
//! cargo bench --bench ui
//! ```

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use burnguard::adapters::store::SqlStore;
use burnguard::engine::record::{HistoryCadence, record_cycle};
use burnguard::http::state::ServiceState;
use common::db::TestDb;
use common::fleet::{evaluation, slos};

const SIZES: [usize; 2] = [1_000, 10_000];
const RUNS: usize = 20;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1_000.0
}

async fn time_page(
    client: &reqwest::Client,
    url: &str,
    n: usize,
    marker: &str,
) -> (Vec<Duration>, usize) {
    let mut times = Vec::new();
    let mut size = 0;
    for run in 0..=RUNS {
        let started = Instant::now();
        let response = client.get(url).send().await.unwrap();
        let status = response.status();
        let body = response.text().await.unwrap();
        let took = started.elapsed();
        let rows = body.matches(marker).count();
        if status != 200 || rows != n {
            println!("WARNING: {url} answered {status} with {rows} rows, {n} expected");
        }
        size = body.len();
        if run > 0 {
            times.push(took);
        }
    }
    times.sort();
    (times, size)
}

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
        burnguard::adapters::prometheus::install_crypto_provider();
        let client = reqwest::Client::new();
        println!("| page | N | median ms | p95 ms | max ms | page KiB | target |");
        println!("|---|---:|---:|---:|---:|---:|---|");
        for n in SIZES {
            let db = TestDb::sqlite();
            let store = Arc::new(SqlStore::open(db.url()).await.unwrap());
            let slos = slos(n);
            let at = chrono::Utc::now().timestamp();
            let recorded = record_cycle(
                store.as_ref(),
                &slos,
                &evaluation(&slos, at),
                &mut HistoryCadence::default(),
            )
            .await;
            assert_eq!(recorded.failed, 0);
            let state = ServiceState::new(store.clone(), "bench".into());
            state.set_slos(Arc::new(slos.clone()));
            let router = burnguard::http::router(Arc::new(state));
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let base = format!("http://{}", listener.local_addr().unwrap());
            let server = tokio::spawn(async move { axum::serve(listener, router).await });
            for (page, marker, target) in [
                (
                    "/ui/",
                    "<tr class=\"row-",
                    if n == 1_000 { "< 200 ms" } else { "—" },
                ),
                (
                    "/api/v1/slos",
                    "\"name\":",
                    "(the same store read, as JSON)",
                ),
            ] {
                let (times, size) = time_page(&client, &format!("{base}{page}"), n, marker).await;
                println!(
                    "| `{page}` | {n} | {:.1} | {:.1} | {:.1} | {:.0} | {target} |",
                    ms(percentile(&times, 0.5)),
                    ms(percentile(&times, 0.95)),
                    ms(*times.last().unwrap()),
                    size as f64 / 1024.0
                );
            }
            server.abort();
        }
    });
}
