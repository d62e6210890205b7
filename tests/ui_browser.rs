//! The web UI in a REAL browser (Debian's Chromium through chromedriver) against a real
//! `serve`, a real Prometheus history and a real receiver for the playbook's call:
//! - `/` lands on the SLO list, burning SLO first, with the numbers the API gives;
//! - the SLO's detail page draws its burn rate per window with the page threshold on it;
//! - approving the incident's waiting step in the browser (the page asks for the token once)
//!   releases it: the receiver sees the call, the timeline names the token;
//! - a freeze made with the page's form turns the CI gate to 423, and lifting it in the
//!   browser turns it back to 200.
//!
//! Each page's screenshot goes to `$BURNGUARD_SCREENSHOTS` (`docs/ui` regenerates the
//! README's pictures), else under `target/ui-screenshots`.

mod common;

use std::time::{Duration, Instant};

use common::browser::Browser;
use common::prometheus::{PrometheusServer, Series, counter, labels};
use common::receiver::Receiver;
use common::serve::Serve;
use serde_json::Value;

const TOKEN: &str = "tok-alice-0123456789";

fn policies(receiver: &str) -> String {
    format!(
        r#"apiVersion: burnguard.dev/v1
kind: SLO
metadata: {{name: checkout, labels: {{team: payments}}}}
spec:
  service: checkout
  objective: 99.9
  indicator:
    ratio:
      errors: sum(rate(http_requests_total{{job="checkout",code="500"}}[{{{{.window}}}}]))
      total: sum(rate(http_requests_total{{job="checkout"}}[{{{{.window}}}}]))
  budgetPolicy:
    - when: {{alert: page}}
      run: checkout-degrade
---
apiVersion: burnguard.dev/v1
kind: SLO
metadata: {{name: search, labels: {{team: discovery}}}}
spec:
  service: search
  objective: 99.5
  indicator:
    ratio:
      errors: sum(rate(http_requests_total{{job="search",code="500"}}[{{{{.window}}}}]))
      total: sum(rate(http_requests_total{{job="search"}}[{{{{.window}}}}]))
---
apiVersion: burnguard.dev/v1
kind: Playbook
metadata: {{name: checkout-degrade}}
spec:
  mode: approve
  cooldown: 30m
  steps:
    - name: turn off recommendations
      http:
        method: PUT
        url: "{receiver}/api/flags/recs"
        body: '{{"enabled": false}}'
        expectStatus: [200, 204]
"#
    )
}

/// A day of a job's requests, 10 per second, with `errors(seconds ago)` of them failing.
fn traffic(job: &str, errors: impl Fn(i64) -> f64 + Copy) -> Vec<Series> {
    let now = chrono::Utc::now().timestamp();
    let end = now - now % 60;
    let start = end - 24 * 3_600;
    let series = |code: &str, per_second: Box<dyn Fn(i64) -> f64>| {
        counter(
            "http_requests_total",
            labels(&[("job", job), ("code", code)]),
            start,
            end,
            60,
            1e6,
            per_second,
        )
    };
    vec![
        series("500", Box::new(move |t| errors(end - t))),
        series("200", Box::new(move |t| 10.0 - errors(end - t))),
    ]
}

struct Setup {
    prometheus: Option<PrometheusServer>,
    prometheus_url: String,
    policy_dir: String,
    _dir: tempfile::TempDir,
    _db: common::db::TestDb,
    serve: Serve,
    base: String,
    http: reqwest::Client,
}

impl Setup {
    fn start(receiver: &Receiver) -> Self {
        let mut history: Vec<Series> = traffic("checkout", |ago| match ago {
            // A bad hour five hours ago (2% errors), and a burn for the last 90 minutes (5%).
            ..5_400 => 0.5,
            14_400..18_000 => 0.2,
            _ => 0.002,
        });
        history.extend(traffic("search", |ago| {
            0.001 + 0.004 * ((ago as f64 / 3_600.0).sin().max(0.0))
        }));
        let prometheus = PrometheusServer::start(&history);
        let dir = tempfile::tempdir().unwrap();
        let policy_dir = dir.path().join("policies");
        std::fs::create_dir(&policy_dir).unwrap();
        common::write(&policy_dir, "slos.yaml", &policies(&receiver.url));
        let db = common::db::TestDb::sqlite();
        let policy_arg = policy_dir.display().to_string();
        let serve = Serve::start(
            &[
                "--listen",
                "127.0.0.1:0",
                "--interval",
                "2s",
                "--prometheus",
                &prometheus.url,
                "--db",
                db.url(),
                "--policies",
                &policy_arg,
            ],
            &[("BURNGUARD_API_TOKENS", &format!("alice:{TOKEN}"))],
        );
        burnguard::adapters::prometheus::install_crypto_provider();
        let base = format!("http://{}", serve.addr);
        Self {
            prometheus_url: prometheus.url.clone(),
            policy_dir: policy_arg.clone(),
            prometheus: Some(prometheus),
            _dir: dir,
            _db: db,
            serve,
            base,
            http: reqwest::Client::new(),
        }
    }

    async fn api(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.base))
            .bearer_auth(TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn gate(&self) -> u16 {
        self.api("GET", "/api/v1/freeze-gate?service=checkout", None)
            .await
            .0
    }
}

async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn screenshot(browser: &Browser, name: &str) {
    let dir = std::env::var("BURNGUARD_SCREENSHOTS").map_or_else(
        |_| common::repo_root().join("target/ui-screenshots"),
        |d| common::repo_root().join(d),
    );
    std::fs::create_dir_all(&dir).unwrap();
    let png = browser.screenshot().await;
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

/// The API's value of an SLO's field, formatted as the UI writes percents.
fn percent(value: &Value) -> String {
    match value.as_f64() {
        Some(v) => format!("{:.1}%", v * 100.0),
        None => "—".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sre_sees_the_burning_slo_first_approves_its_step_and_lifts_a_freeze() {
    let receiver = Receiver::start().await;
    let mut s = Setup::start(&receiver);

    // The burning SLO's incident waits for approval before anything is shown.
    let deadline = Instant::now() + Duration::from_secs(60);
    let incident_id = loop {
        let (_, list) = s.api("GET", "/api/v1/incidents?status=open", None).await;
        if let Some(id) = list["incidents"][0]["id"].as_i64() {
            let (_, detail) = s.api("GET", &format!("/api/v1/incidents/{id}"), None).await;
            let waiting = detail["actions"]
                .as_array()
                .is_some_and(|a| a.iter().any(|a| a["status"] == "awaiting_approval"));
            if waiting {
                break id;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no incident waiting for approval"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        receiver.requests().is_empty(),
        "nothing called before approval"
    );

    let browser = Browser::start(1400, 900).await;

    // The list: `/` redirects to it; checkout (paging) is first, search (quiet) after.
    browser.goto(&format!("{}/", s.base)).await;
    browser
        .wait_for("#slo-rows tr[data-key]", Duration::from_secs(10))
        .await;
    assert!(
        browser.url().await.ends_with("/ui/"),
        "{}",
        browser.url().await
    );
    let rows = browser.find_all("#slo-rows tr[data-key]").await;
    let mut keys = Vec::new();
    for row in &rows {
        keys.push(browser.attribute(row, "data-key").await.unwrap_or_default());
    }
    assert_eq!(keys, ["checkout", "search"]);
    // The numbers are the API's (read on either side of the page, which a cycle may fall
    // between).
    let (_, before) = s.api("GET", "/api/v1/slos/checkout", None).await;
    browser.goto(&format!("{}/ui/", s.base)).await;
    let first = browser
        .wait_for("#slo-rows tr[data-key=checkout]", Duration::from_secs(10))
        .await;
    let (_, after) = s.api("GET", "/api/v1/slos/checkout", None).await;
    let budget_cell = browser
        .find_all("#slo-rows tr[data-key=checkout] .budget-text")
        .await;
    let shown_budget = browser.text(&budget_cell[0]).await;
    let shown_row = browser.text(&first).await;
    let candidates = [&before, &after];
    assert!(
        candidates
            .iter()
            .any(|api| percent(&api["error_budget_remaining"]) == shown_budget),
        "page shows {shown_budget}; API {} / {}",
        before["error_budget_remaining"],
        after["error_budget_remaining"]
    );
    assert!(shown_row.contains("page"), "{shown_row}");
    assert!(shown_row.contains("payments"), "{shown_row}");
    let long_burn = browser
        .find_all("#slo-rows tr[data-key=checkout] .alert-row[data-long='1h'] .burn-long")
        .await;
    let shown_burn = browser.text(&long_burn[0]).await;
    assert!(
        candidates.iter().any(|api| {
            let v = api["burn_rate"]["1h"].as_f64().unwrap();
            format!("{v:.1}x") == shown_burn
        }),
        "page shows 1h burn {shown_burn}; API {} / {}",
        before["burn_rate"]["1h"],
        after["burn_rate"]["1h"]
    );
    // Filtering by team leaves only that team's SLO.
    browser
        .goto(&format!("{}/ui/?team=discovery", s.base))
        .await;
    browser
        .wait_for("#slo-rows tr[data-key=search]", Duration::from_secs(10))
        .await;
    assert!(
        browser
            .find_all("#slo-rows tr[data-key=checkout]")
            .await
            .is_empty()
    );
    browser.goto(&format!("{}/ui/", s.base)).await;
    browser
        .wait_for("#slo-rows tr[data-key]", Duration::from_secs(10))
        .await;
    screenshot(&browser, "slo-list").await;

    // The detail page: burn rate per window, the page threshold on it, the budget chart.
    browser
        .goto(&format!("{}/ui/slos/checkout?range=1d", s.base))
        .await;
    browser
        .wait_for(
            "svg[data-chart='Burn rate per window'] g[data-series='1h'] polyline",
            Duration::from_secs(10),
        )
        .await;
    for series in ["5m", "1h", "6h"] {
        let found = browser
            .find_all(&format!(
                "svg[data-chart='Burn rate per window'] g[data-series='{series}'] polyline"
            ))
            .await;
        assert!(!found.is_empty(), "no {series} line");
    }
    assert!(
        !browser
            .find_all("svg[data-chart='Burn rate per window'] line[data-level='14.4']")
            .await
            .is_empty()
    );
    assert!(
        !browser
            .find_all("svg[data-chart='Error budget left'] g[data-series='budget'] polyline")
            .await
            .is_empty()
    );
    let source = browser.source().await;
    assert!(
        source.contains("burnguard:sli_error:ratio_rate1h"),
        "the generated rules are shown"
    );
    let source = browser.wait_for("p.source", Duration::from_secs(5)).await;
    let source = browser.text(&source).await;
    assert!(source.contains("Replayed from Prometheus"), "{source}");

    // The incident: approve the waiting step; the page asks for the token once.
    browser
        .goto(&format!("{}/ui/incidents/{incident_id}", s.base))
        .await;
    let approve = browser
        .wait_for("button.api.approve", Duration::from_secs(10))
        .await;
    let note = browser
        .wait_for("textarea#note", Duration::from_secs(5))
        .await;
    browser.type_text(&note, "approved from the UI test").await;
    screenshot(&browser, "incident").await;
    browser.click(&approve).await;
    let input = browser
        .wait_for("dialog[open] #token-input", Duration::from_secs(5))
        .await;
    browser.type_text(&input, TOKEN).await;
    let ok = browser
        .wait_for("dialog[open] button[value=ok]", Duration::from_secs(5))
        .await;
    browser.click(&ok).await;
    wait_until(
        "the receiver to see the approved step",
        Duration::from_secs(30),
        || async { !receiver.to("/api/flags/recs").is_empty() },
    )
    .await;
    let (_, detail) = s
        .api("GET", &format!("/api/v1/incidents/{incident_id}"), None)
        .await;
    let timeline = detail["timeline"].to_string();
    assert!(
        timeline.contains("alice approved the waiting playbook steps"),
        "{timeline}"
    );
    assert!(timeline.contains("approved from the UI test"), "{timeline}");

    // A note, with the token the tab already holds (no second prompt).
    browser
        .goto(&format!("{}/ui/incidents/{incident_id}", s.base))
        .await;
    let note = browser
        .wait_for("textarea#note", Duration::from_secs(5))
        .await;
    browser
        .type_text(&note, "flags off; watching the 1h window")
        .await;
    let add = browser
        .wait_for("button.api.note", Duration::from_secs(5))
        .await;
    browser.click(&add).await;
    wait_until(
        "the note on the timeline",
        Duration::from_secs(10),
        || async {
            let (_, detail) = s
                .api("GET", &format!("/api/v1/incidents/{incident_id}"), None)
                .await;
            detail["timeline"]
                .to_string()
                .contains("alice noted: flags off")
        },
    )
    .await;
    browser
        .wait_for("ol.timeline li.event-note", Duration::from_secs(10))
        .await;

    // Back on the detail page, the approved step is marked on the charts.
    browser
        .goto(&format!("{}/ui/slos/checkout?range=1d", s.base))
        .await;
    browser
        .wait_for(
            "svg[data-chart='Burn rate per window'] line.marker.step",
            Duration::from_secs(10),
        )
        .await;
    let page = browser.source().await;
    assert!(
        page.contains("<title>step turn off recommendations"),
        "the marker names the step"
    );
    screenshot(&browser, "slo-detail").await;

    // Freezes: the form freezes checkout (gate 423), the Lift button lifts it (gate 200).
    assert_eq!(s.gate().await, 200);
    browser.goto(&format!("{}/ui/freezes", s.base)).await;
    let service = browser
        .wait_for(
            "form.freeze-form input[name=service]",
            Duration::from_secs(5),
        )
        .await;
    browser.type_text(&service, "checkout").await;
    let reason = browser
        .wait_for(
            "form.freeze-form input[name=reason]",
            Duration::from_secs(5),
        )
        .await;
    browser
        .type_text(&reason, "release train paused by hand")
        .await;
    let freeze = browser
        .wait_for("button.api.freeze", Duration::from_secs(5))
        .await;
    browser.click(&freeze).await;
    wait_until("the gate to close", Duration::from_secs(10), || async {
        s.gate().await == 423
    })
    .await;
    let lift = browser
        .wait_for("tr[data-freeze] button.api.lift", Duration::from_secs(10))
        .await;
    screenshot(&browser, "freezes").await;
    browser.click(&lift).await;
    wait_until("the gate to open", Duration::from_secs(10), || async {
        s.gate().await == 200
    })
    .await;
    // The lifted freeze is listed with who lifted it.
    browser.goto(&format!("{}/ui/freezes", s.base)).await;
    let lifted = browser
        .wait_for("tr[data-lifted]", Duration::from_secs(10))
        .await;
    let text = browser.text(&lifted).await;
    assert!(
        text.contains("release train paused by hand") && text.contains("alice"),
        "{text}"
    );

    // Backtest: replaying checkout over the last 6h pages where the history burns, drawn on
    // the burn-rate chart, with the same counts the `backtest` command gives for that period.
    browser
        .goto(&format!("{}/ui/backtest?slo=checkout&range=6h", s.base))
        .await;
    let period = browser.wait_for("p.period", Duration::from_secs(30)).await;
    let mut bounds = Vec::new();
    for name in ["data-from", "data-to", "data-step"] {
        let value = browser.attribute(&period, name).await.unwrap();
        bounds.push(value.parse::<i64>().unwrap());
    }
    let pages_cell = browser
        .wait_for(
            "section.replay[data-slo=checkout] td.pages",
            Duration::from_secs(5),
        )
        .await;
    let shown_pages: u64 = browser
        .attribute(&pages_cell, "data-pages")
        .await
        .unwrap()
        .parse()
        .unwrap();
    assert!(shown_pages >= 1, "the burning history pages");
    let replayed = "svg[data-chart='Burn rate per window (replayed)']";
    assert!(
        !browser
            .find_all(&format!("{replayed} g[data-series='1h'] polyline"))
            .await
            .is_empty()
    );
    assert!(
        !browser
            .find_all(&format!("{replayed} line.marker.page"))
            .await
            .is_empty(),
        "the page firing is marked on the chart"
    );
    screenshot(&browser, "backtest").await;
    let (ok, out) = common::run(
        std::process::Command::new(env!("CARGO_BIN_EXE_burnguard")).args([
            "backtest",
            "--prometheus",
            &s.prometheus_url,
            "--from",
            &bounds[0].to_string(),
            "--to",
            &bounds[1].to_string(),
            "--step",
            &format!("{}s", bounds[2]),
            "--output",
            "json",
            &s.policy_dir,
        ]),
    );
    assert!(ok, "{out}");
    let report: Value = serde_json::from_str(&out).unwrap();
    let checkout = report["slos"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "checkout")
        .unwrap()
        .clone();
    assert_eq!(checkout["summary"]["pages"], shown_pages, "{checkout:#}");

    // With Prometheus gone, the detail page draws what burnguard stored, and says so.
    drop(s.prometheus.take());
    browser
        .goto(&format!("{}/ui/slos/checkout?range=1h", s.base))
        .await;
    let source = browser.wait_for("p.source", Duration::from_secs(30)).await;
    let source = browser.text(&source).await;
    assert!(
        source.contains("From burnguard's stored evaluations"),
        "{source}"
    );
    assert!(
        !browser
            .find_all("svg[data-chart='Error budget left'] g[data-series='budget'] polyline")
            .await
            .is_empty(),
        "the stored budget is drawn"
    );
    drop(browser);
    drop(s.serve);
}
