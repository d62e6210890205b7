//! Reading Prometheus's answers: what reading one rules-mode window's answer costs serve's
//! CPU, by the compact reader (the shape Prometheus writes) beside the general reader (serde)
//! on the same series. A cycle over N SLOs reads about eight such answers while Prometheus is
//! still computing the others, on the same cores.
//!
//! The answer has N series of one `slo` label each, as `max by (slo) (...)` returns them. The
//! general reader is given the same answer with one space after the result list's opening
//! bracket, which the compact reader does not take: JSON-equal, so the two read the same
//! series. It asserts nothing beyond both reading all N.
//!
//! ```text
//! cargo bench --bench answers
//! ```

use std::time::Instant;

use burnguard::adapters::prometheus::instant_answer;

const SIZES: [usize; 3] = [1_000, 10_000, 100_000];
const ROUNDS: usize = 20;

/// One window's answer over `n` SLOs, as Prometheus writes it.
fn answer(n: usize) -> String {
    let series: Vec<String> = (0..n)
        .map(|i| {
            let ratio = if i % 10 == 0 {
                "0.02"
            } else {
                "0.00019999999999999998"
            };
            format!(r#"{{"metric":{{"slo":"shop-{i:06}"}},"value":[1765108800.123,"{ratio}"]}}"#)
        })
        .collect();
    format!(
        r#"{{"status":"success","data":{{"resultType":"vector","result":[{}]}}}}"#,
        series.join(",")
    )
}

/// Median milliseconds of reading `body` over [`ROUNDS`] rounds.
fn read_ms(body: &[u8], n: usize) -> f64 {
    let mut took: Vec<f64> = (0..ROUNDS)
        .map(|_| {
            let started = Instant::now();
            let samples = instant_answer(200, body, 10).expect("a valid answer");
            let ms = started.elapsed().as_secs_f64() * 1e3;
            assert_eq!(samples.len(), n);
            drop(samples);
            ms
        })
        .collect();
    took.sort_by(f64::total_cmp);
    took[ROUNDS / 2]
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    println!(
        "| series | answer MiB | compact reader ms | general reader ms | general / compact | compact MiB/s |"
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    for n in SIZES {
        let compact = answer(n);
        let spaced = compact.replacen(r#""result":["#, r#""result":[ "#, 1);
        let mib = compact.len() as f64 / (1024.0 * 1024.0);
        let fast = read_ms(compact.as_bytes(), n);
        let general = read_ms(spaced.as_bytes(), n);
        println!(
            "| {n} | {mib:.2} | {fast:.2} | {general:.2} | {:.1} | {:.0} |",
            general / fast,
            mib / (fast / 1e3)
        );
    }
}
