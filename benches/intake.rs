//! What webhook intake costs: Alertmanager deliveries of 1,000 and 5,000 alerts in one request,
//! and a stream of small deliveries, posted to an in-process server (the real router over the
//! real store on a 127.0.0.1 port), on SQLite and the REAL PostgreSQL side by side.
//!
//! For each backend it prints: the request time of a large delivery (mean and max of 3, every
//! alert new each time), alerts per second, how much the database grew per byte of body, and
//! for 1-alert deliveries sent 8 at a time: requests per second, p50 and p99 latency. A
//! delivery that does not answer 200 with every alert new prints a `WARNING` line, so a figure
//! never comes from a broken run. It prints figures and asserts nothing; the tests assert the
//! growth and the rows per alert as ratios.
//!
//! Run (PostgreSQL at 127.0.0.1:5432, or `BURNGUARD_TEST_POSTGRES_URL`):
//!
//! ```text
//! cargo bench --bench intake
//! ```

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use burnguard::adapters::store::SqlStore;
use burnguard::http::state::ServiceState;
use common::db::TestDb;

const TOKEN: &str = "bench-t0ken";
const LARGE: [usize; 2] = [1_000, 5_000];
const RUNS: usize = 3;
const SMALL_REQUESTS: usize = 2_000;
const SMALL_IN_FLIGHT: usize = 8;

struct Large {
    alerts: usize,
    body_bytes: usize,
    mean: Duration,
    max: Duration,
    growth_per_body_byte: f64,
}

struct Small {
    per_second: f64,
    p50: Duration,
    p99: Duration,
}

struct Figures {
    backend: &'static str,
    large: Vec<Large>,
    small: Small,
}

async fn start(db: &TestDb) -> (String, Arc<SqlStore>) {
    let store = Arc::new(SqlStore::open(db.url()).await.unwrap());
    let mut state = ServiceState::new(
        store.clone(),
        "system:serviceaccount:burnguard:burnguard".into(),
    );
    state.webhook_auth.alertmanager_token = Some(secrecy::SecretString::from(TOKEN));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/webhooks/alertmanager",
        listener.local_addr().unwrap()
    );
    let router = burnguard::http::router(Arc::new(state));
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (url, store)
}

/// Posts one delivery; warns unless every alert was new.
async fn deliver(client: &reqwest::Client, url: &str, body: String, alerts: usize) -> Duration {
    let started = Instant::now();
    let response = client
        .post(url)
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let answer: serde_json::Value = response.json().await.unwrap_or_default();
    let took = started.elapsed();
    if status != 200 || answer["new"] != alerts {
        println!("WARNING: {alerts} alerts answered {status} {answer}");
    }
    took
}

async fn measure(backend: &'static str, db: TestDb) -> Figures {
    let (url, store) = start(&db).await;
    let client = reqwest::Client::new();
    let mut tag = 0u32;
    let mut next_tag = || {
        tag += 1;
        tag
    };
    // Warm-up: tables and connections in use, first pages allocated.
    deliver(&client, &url, common::alerts::body(100, next_tag()), 100).await;

    let mut large = Vec::new();
    for alerts in LARGE {
        let mut times = Vec::new();
        let mut grown = 0u64;
        let mut body_bytes = 0;
        for _ in 0..RUNS {
            let body = common::alerts::body(alerts, next_tag());
            body_bytes = body.len();
            let before = store.size_bytes().await.unwrap();
            times.push(deliver(&client, &url, body, alerts).await);
            grown += store.size_bytes().await.unwrap().saturating_sub(before);
        }
        large.push(Large {
            alerts,
            body_bytes,
            mean: times.iter().sum::<Duration>() / RUNS as u32,
            max: times.iter().copied().max().unwrap(),
            growth_per_body_byte: grown as f64 / (body_bytes * RUNS) as f64,
        });
    }

    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let first = next_tag();
    for worker in 0..SMALL_IN_FLIGHT {
        let (client, url) = (client.clone(), url.clone());
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            for i in (worker..SMALL_REQUESTS).step_by(SMALL_IN_FLIGHT) {
                let body = common::alerts::delivery(vec![common::alerts::alert(i, first)]);
                latencies.push(deliver(&client, &url, body, 1).await);
            }
            latencies
        });
    }
    let mut latencies: Vec<Duration> = tasks.join_all().await.into_iter().flatten().collect();
    let elapsed = started.elapsed();
    latencies.sort();
    let at =
        |q: f64| latencies[((latencies.len() as f64 * q).ceil() as usize).min(latencies.len()) - 1];
    let small = Small {
        per_second: SMALL_REQUESTS as f64 / elapsed.as_secs_f64(),
        p50: at(0.50),
        p99: at(0.99),
    };
    store.close().await;
    Figures {
        backend,
        large,
        small,
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1_000.0)
}

fn main() {
    // `cargo test --all-targets` runs benches without `--bench`: return at once then.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    burnguard::adapters::prometheus::install_crypto_provider();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let figures = runtime.block_on(async {
        let sqlite = measure("sqlite", TestDb::sqlite()).await;
        let postgres = measure("postgres", TestDb::postgres().await).await;
        [sqlite, postgres]
    });

    println!(
        "\nintake: in-process server on 127.0.0.1, Alertmanager alerts of about {} bytes",
        common::alerts::alert(1, 1).to_string().len()
    );
    let mut rows: Vec<(String, Vec<String>)> = Vec::new();
    for (i, large) in figures[0].large.iter().enumerate() {
        let n = large.alerts;
        let each = |f: &dyn Fn(&Large) -> String| -> Vec<String> {
            figures.iter().map(|fig| f(&fig.large[i])).collect()
        };
        rows.push((
            format!("{n} alerts: body KB"),
            each(&|l| format!("{:.1}", l.body_bytes as f64 / 1024.0)),
        ));
        rows.push((
            format!("{n} alerts: request ms, mean of {RUNS}"),
            each(&|l| ms(l.mean)),
        ));
        rows.push((format!("{n} alerts: request ms, max"), each(&|l| ms(l.max))));
        rows.push((
            format!("{n} alerts: alerts/s"),
            each(&|l| format!("{:.0}", l.alerts as f64 / l.mean.as_secs_f64())),
        ));
        rows.push((
            format!("{n} alerts: DB bytes per body byte"),
            each(&|l| format!("{:.2}", l.growth_per_body_byte)),
        ));
    }
    let small = |f: &dyn Fn(&Small) -> String| -> Vec<String> {
        figures.iter().map(|fig| f(&fig.small)).collect()
    };
    let label = format!("1-alert deliveries ({SMALL_REQUESTS}, {SMALL_IN_FLIGHT} in flight)");
    rows.push((
        format!("{label}: requests/s"),
        small(&|s| format!("{:.0}", s.per_second)),
    ));
    rows.push((format!("{label}: p50 ms"), small(&|s| ms(s.p50))));
    rows.push((format!("{label}: p99 ms"), small(&|s| ms(s.p99))));

    let width = rows.iter().map(|(l, _)| l.len()).max().unwrap_or(0);
    println!(
        "| {:width$} | {:>10} | {:>10} |",
        "", figures[0].backend, figures[1].backend
    );
    println!("|{}|-----------:|-----------:|", "-".repeat(width + 2));
    for (label, values) in rows {
        println!("| {label:width$} | {:>10} | {:>10} |", values[0], values[1]);
    }
}
