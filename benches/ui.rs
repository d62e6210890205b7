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
use burnguard::domain::burn::Status;
use burnguard::engine::evaluate::{
    AlertReport, EvalStatus, Evaluation, SloEvaluation, WindowValues,
};
use burnguard::engine::record::record_cycle;
use burnguard::http::state::ServiceState;
use burnguard::policies::{self, LoadOptions};
use common::db::TestDb;

const SIZES: [usize; 2] = [1_000, 10_000];
const RUNS: usize = 20;

fn slos(n: usize) -> Vec<burnguard::domain::policy::Slo> {
    let text: String = (0..n)
        .map(|i| {
            format!(
                "apiVersion: burnguard.dev/v1\nkind: SLO\nmetadata: {{name: slo-{i}, labels: {{team: team-{}}}}}\nspec:\n  service: svc-{}\n  objective: 99.9\n  indicator:\n    ratio:\n      errors: 'sum(rate(r{{slo=\"{i}\",code=\"500\"}}[{{{{.window}}}}]))'\n      total: 'sum(rate(r{{slo=\"{i}\"}}[{{{{.window}}}}]))'\n",
                i % 20,
                i % 50
            )
        })
        .collect::<Vec<_>>()
        .join("---\n");
    let (loaded, _, problems) =
        policies::parse_sources(&[("bench.yaml".into(), text)], &LoadOptions::default());
    assert!(problems.is_empty(), "{:?}", problems.first());
    loaded.into_iter().map(|l| l.slo).collect()
}

fn evaluation(slos: &[burnguard::domain::policy::Slo], at: i64) -> Evaluation {
    let evaluations = slos
        .iter()
        .enumerate()
        .map(|(i, slo)| {
            let paging = i % 10 == 0;
            let ratio = if paging {
                0.02
            } else {
                0.0002 * (1 + i % 5) as f64
            };
            let windows: Vec<_> = slo
                .windows()
                .into_iter()
                .map(|w| (w, Some(ratio)))
                .collect();
            let burn: Vec<_> = windows
                .iter()
                .map(|(w, r)| (*w, r.map(|r| r / 0.001)))
                .collect();
            SloEvaluation {
                name: slo.name.clone(),
                group: Default::default(),
                service: slo.service.clone(),
                objective: 0.999,
                window: "30d".into(),
                status: EvalStatus::Assessed(if paging { Status::Page } else { Status::Ok }),
                source: None,
                error_ratio: WindowValues(windows),
                burn_rate: WindowValues(burn),
                error_budget_remaining: Some(1.0 - ratio / 0.001),
                time_to_exhaustion_seconds: Some(86_400.0),
                budget_period: None,
                alerts: slo
                    .alerting
                    .windows
                    .iter()
                    .map(|row| AlertReport {
                        long: row.long,
                        severity: row.severity.as_str(),
                        long_window: row.long.to_string(),
                        short_window: row.short.to_string(),
                        factor: row.burn_rate_threshold,
                        firing: paging && row.burn_rate_threshold < 20.0,
                        has_data: true,
                    })
                    .collect(),
                error: None,
            }
        })
        .collect();
    Evaluation {
        at,
        slos: evaluations,
        queries: 0,
        failed_queries: 0,
        query_errors: Default::default(),
    }
}

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
            let recorded = record_cycle(store.as_ref(), &slos, &evaluation(&slos, at)).await;
            assert_eq!(recorded.failed, 0);
            let state = ServiceState::new(store.clone(), "bench".into());
            state.set_slos(&slos);
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
