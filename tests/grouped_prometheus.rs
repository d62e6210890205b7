//! Grouped SLOs against a REAL Prometheus: one definition, one objective per `route`.
//!
//! Six hours of a shop's requests on three routes at 10 requests a second each: `/pay` fails
//! 5% over the last 30 minutes (0.05% before), `/cart` and `/search` 0.05% throughout. Expected
//! ratios come from the samples this file generates:
//! - raw evaluation gives one evaluation per route with that route's numbers; `/pay` pages;
//! - the same SLO written for Pyrra with `grouping: [route]` gives the same;
//! - the generated rules pass promtool and, evaluated by Prometheus, record one series per
//!   route that rules mode reads back to the same ratios;
//! - incidents are one per route: `/pay` opens a page incident, the others none;
//! - past `maxGroups`, or with queries that drop the group label, the SLO is an error that
//!   says why, never a verdict;
//! - editing `groupBy` while an incident is open resolves the old shape's incident (on SQLite
//!   and PostgreSQL) once the new shape is assessed on data, never before.

mod common;

use std::collections::BTreeMap;

use burnguard::adapters::prometheus::{Prometheus, PrometheusConfig};
use burnguard::adapters::store::SqlStore;
use burnguard::domain::policy::{Slo, Window};
use burnguard::domain::rules;
use burnguard::engine::evaluate::{Evaluator, ReadMode, SloEvaluation};
use burnguard::engine::record::{HistoryCadence, record_cycle, retire_reshaped};
use burnguard::policies::{self, LoadOptions};
use burnguard::ports::MetricsSource;
use burnguard::ports::{IncidentFilter, IncidentRecord, Operations, Store};
use common::db::TestDb;
use common::prometheus::{PrometheusServer, Series, counter, labels};

const STEP: i64 = 60;
/// 2026-01-04T00:00:00Z: the last sample.
const END: i64 = 1_767_484_800;
const START: i64 = END - 6 * 3_600;
const AT: i64 = END + 30;
const ROUTES: [&str; 3] = ["/cart", "/pay", "/search"];

fn errors_per_second(route: &str, t: i64) -> f64 {
    if route == "/pay" && t >= END - 30 * 60 {
        0.5
    } else {
        0.005
    }
}

fn history() -> Vec<Series> {
    let mut series = Vec::new();
    for route in ROUTES {
        series.push(counter(
            "http_requests_total",
            labels(&[("job", "shop"), ("route", route), ("code", "500")]),
            START,
            END,
            STEP,
            100.0,
            move |t| errors_per_second(route, t),
        ));
        series.push(counter(
            "http_requests_total",
            labels(&[("job", "shop"), ("route", route), ("code", "200")]),
            START,
            END,
            STEP,
            100.0,
            move |t| 10.0 - errors_per_second(route, t),
        ));
    }
    series
}

/// The error ratio of `route` over `window` seconds before `AT`, from the samples.
fn expected(history: &[Series], route: &str, window: i64) -> f64 {
    let of = |code: &str| {
        history
            .iter()
            .find(|s| s.labels["route"] == route && s.labels["code"] == code)
            .unwrap()
            .increase_in(AT, window)
            .unwrap()
    };
    let (errors, ok) = (of("500"), of("200"));
    errors / (errors + ok)
}

fn burnguard_slo(max_groups: Option<u32>, by: &str) -> String {
    let max = max_groups.map_or(String::new(), |m| format!("  maxGroups: {m}\n"));
    format!(
        r#"apiVersion: burnguard.dev/v1
kind: SLO
metadata: {{name: shop-routes}}
spec:
  service: shop
  objective: 99.9
  window: 7d
  groupBy: [route]
{max}  indicator:
    ratio:
      errors: 'sum {by} (rate(http_requests_total{{job="shop",code="500"}}[{{{{.window}}}}]))'
      total: 'sum {by} (rate(http_requests_total{{job="shop"}}[{{{{.window}}}}]))'
  alerting:
    windows:
      - {{severity: page, long: 1h, short: 5m, burnRate: 14.4}}
      - {{severity: ticket, long: 6h, short: 30m, burnRate: 6}}
"#
    )
}

const PYRRA: &str = r#"apiVersion: pyrra.dev/v1alpha1
kind: ServiceLevelObjective
metadata: {name: shop-routes-pyrra, namespace: shop, labels: {pyrra.dev/service: shop}}
spec:
  target: "99.9"
  window: 7d
  indicator:
    ratio:
      grouping: [route]
      errors: {metric: 'http_requests_total{job="shop",code="500"}'}
      total: {metric: 'http_requests_total{job="shop"}'}
"#;

fn load(text: &str) -> Slo {
    let sources = vec![("slo.yaml".to_string(), text.to_string())];
    let (loaded, _, problems) = policies::parse_sources(&sources, &LoadOptions::default());
    assert!(problems.is_empty(), "{problems:?}");
    loaded[0].slo.clone()
}

fn client(url: &str) -> Prometheus {
    let mut config = PrometheusConfig::new(url);
    config.timeout = std::time::Duration::from_secs(10);
    Prometheus::new(&config).unwrap()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * a.abs().max(b.abs()).max(1e-12)
}

fn by_route(evaluations: &[std::sync::Arc<SloEvaluation>]) -> BTreeMap<String, &SloEvaluation> {
    evaluations
        .iter()
        .map(|e| {
            (
                e.group.get("route").cloned().unwrap_or_default(),
                e.as_ref(),
            )
        })
        .collect()
}

fn window(text: &str) -> Window {
    Window::parse(text).unwrap()
}

#[tokio::test]
async fn one_definition_evaluates_to_one_objective_per_route() {
    let history = history();
    let prometheus = PrometheusServer::start(&history);
    let slos = vec![load(&burnguard_slo(None, "by (route)")), load(PYRRA)];
    let evaluation = Evaluator::new(client(&prometheus.url), ReadMode::Raw, 4)
        .evaluate(&slos, AT)
        .await;
    for name in ["shop-routes", "shop-routes-pyrra"] {
        let ours: Vec<std::sync::Arc<SloEvaluation>> = evaluation
            .slos
            .iter()
            .filter(|e| e.name == name)
            .cloned()
            .collect();
        let routes = by_route(&ours);
        assert_eq!(
            routes.keys().map(String::as_str).collect::<Vec<_>>(),
            ROUTES.to_vec(),
            "{name}: {ours:#?}"
        );
        for route in ROUTES {
            let e = routes[route];
            assert_eq!(e.error, None, "{e:?}");
            // Every window up to 6h (the 7d one reaches before the history).
            let windows: Vec<Window> = e
                .error_ratio
                .0
                .iter()
                .map(|(w, _)| *w)
                .filter(|w| (window("5m")..=window("6h")).contains(w))
                .collect();
            assert!(windows.len() >= 3, "{name}: {windows:?}");
            for w in windows {
                let got = e.error_ratio.get(w).unwrap();
                let want = expected(&history, route, w.as_secs() as i64);
                assert!(close(got, want), "{name} {route} {w}: {got} vs {want}");
            }
            // Pyrra's rows scaled to 7 days include a 1m short window, which a 60s scrape
            // cannot fill: the quiet routes are `partial` there, not `ok`.
            let status = match (route, name) {
                ("/pay", _) => "page",
                (_, "shop-routes") => "ok",
                _ => "partial",
            };
            assert_eq!(e.status.as_str(), status, "{name} {route}");
            assert_eq!(e.key(), format!("{name}{{route={route:?}}}"));
        }
    }
    // The JSON carries the group.
    let pay = evaluation
        .slos
        .iter()
        .find(|e| e.group.get("route").map(String::as_str) == Some("/pay"))
        .unwrap();
    let json = serde_json::to_value(pay).unwrap();
    assert_eq!(json["group"]["route"], "/pay");

    // One incident per group: /pay pages, the others stay quiet.
    let db = TestDb::sqlite();
    let store = SqlStore::open(db.url()).await.unwrap();
    let recorded = record_cycle(&store, &slos, &evaluation, &mut HistoryCadence::default()).await;
    assert_eq!(recorded.opened, 2, "one for each definition's /pay");
    let incidents = store
        .list_incidents(&IncidentFilter {
            status: None,
            slo: None,
            limit: None,
        })
        .await
        .unwrap();
    let mut keys: Vec<&str> = incidents.iter().map(|i| i.slo.as_str()).collect();
    keys.sort();
    assert_eq!(
        keys,
        vec![
            "shop-routes-pyrra{route=\"/pay\"}",
            "shop-routes{route=\"/pay\"}"
        ]
    );
    assert!(incidents.iter().all(|i| i.severity == "page"));
}

#[tokio::test]
async fn too_many_groups_or_a_query_without_the_group_label_is_an_error_not_a_verdict() {
    let prometheus = PrometheusServer::start(&history());
    let evaluator = Evaluator::new(client(&prometheus.url), ReadMode::Raw, 4);
    let limited = load(&burnguard_slo(Some(2), "by (route)"));
    let evaluation = evaluator.evaluate(std::slice::from_ref(&limited), AT).await;
    assert_eq!(evaluation.slos.len(), 1);
    let e = &evaluation.slos[0];
    assert_eq!(e.status.as_str(), "error");
    let error = e.error.as_deref().unwrap();
    assert!(
        error.contains("3 groups by route, more than maxGroups (2)"),
        "{error}"
    );

    // Summed without `by (route)`: one series with no route label.
    let flat = load(&burnguard_slo(None, ""));
    let evaluation = evaluator.evaluate(std::slice::from_ref(&flat), AT).await;
    let e = &evaluation.slos[0];
    assert_eq!(e.status.as_str(), "error");
    let error = e.error.as_deref().unwrap();
    assert!(error.contains("no `route` label"), "{error}");
    assert!(error.contains("sum by (route)"), "{error}");
    // An error opens nothing.
    let db = TestDb::sqlite();
    let store = SqlStore::open(db.url()).await.unwrap();
    let recorded = record_cycle(
        &store,
        std::slice::from_ref(&flat),
        &evaluation,
        &mut HistoryCadence::default(),
    )
    .await;
    assert_eq!(recorded.opened, 0);
}

#[tokio::test]
async fn the_rules_record_one_series_per_route_that_rules_mode_reads_back() {
    let history = history();
    let mut prometheus = PrometheusServer::start(&history);
    let slo = load(&burnguard_slo(None, "by (route)"));
    let file = rules::rule_file(std::slice::from_ref(&slo));
    common::prometheus::promtool_checks(&file);
    // The windows of this SLO (up to 6h, and the 7d window from the 5m base) come in two
    // passes: what reads the raw series, then what reads recorded ones.
    for pass in common::prometheus::rule_passes(&file) {
        let yaml = rules::to_yaml(&pass, "a test").unwrap();
        prometheus.backfill_rules(&yaml, START, END, STEP as u64);
    }
    // Ten minutes before the end: a time every pass recorded a sample at.
    let at = END - 600;
    let prometheus_client = client(&prometheus.url);
    let evaluation = Evaluator::new(client(&prometheus.url), ReadMode::Rules, 4)
        .evaluate(std::slice::from_ref(&slo), at)
        .await;
    let routes = by_route(&evaluation.slos);
    assert_eq!(routes.len(), 3, "{:#?}", evaluation.slos);
    for route in ROUTES {
        let e = routes[route];
        assert_eq!(e.error, None, "{e:?}");
        let got = e.error_ratio.get(window("1h")).unwrap();
        // Recorded at the last rule evaluation before `at` (promtool picks the instants),
        // over the hour before that.
        let recorded_at = prometheus_client
            .instant(
                &format!("timestamp(burnguard:sli_error:ratio_rate1h{{route=\"{route}\"}})"),
                at,
            )
            .await
            .unwrap()[0]
            .value;
        assert!((at as f64) - recorded_at < 60.0, "{recorded_at}");
        let of = |code: &str| {
            history
                .iter()
                .find(|s| s.labels["route"] == route && s.labels["code"] == code)
                .unwrap()
                .increase_within(recorded_at, 3_600.0)
                .unwrap()
        };
        let want = of("500") / (of("500") + of("200"));
        assert!(close(got, want), "{route}: recorded {got}, samples {want}");
        let status = if route == "/pay" { "page" } else { "ok" };
        assert_eq!(e.status.as_str(), status, "{route}");
    }
}

/// Two hours of traffic on the three routes up to now; `/pay` fails 5% throughout.
fn recent_routes() -> Vec<Series> {
    let now = chrono::Utc::now().timestamp();
    let end = now - now % 60;
    let start = end - 2 * 3_600;
    let mut series = Vec::new();
    for route in ROUTES {
        let errors = if route == "/pay" { 0.5 } else { 0.005 };
        for (code, per_second) in [("500", errors), ("200", 10.0 - errors)] {
            series.push(counter(
                "http_requests_total",
                labels(&[("job", "shop"), ("route", route), ("code", code)]),
                start,
                end,
                STEP,
                1e6,
                move |_| per_second,
            ));
        }
    }
    series
}

#[test]
fn serve_keeps_one_state_incident_and_metric_series_per_group() {
    let prometheus = PrometheusServer::start(&recent_routes());
    let dir = tempfile::tempdir().unwrap();
    let policies = common::write(dir.path(), "slo.yaml", &burnguard_slo(None, "by (route)"));
    let db = TestDb::sqlite();
    let serve = common::serve::Serve::start(
        &[
            "--listen",
            "127.0.0.1:0",
            "--interval",
            "1s",
            "--prometheus",
            &prometheus.url,
            "--db",
            db.url(),
            "--policies",
            policies.to_str().unwrap(),
        ],
        &[],
    );
    let metrics = serve.metrics_until("a page status for /pay", |m| {
        common::serve::value(
            m,
            r#"burnguard_slo_status{slo="shop-routes",service="shop",route="/pay",status="page"}"#,
        ) == Some(1.0)
    });
    for route in ["/cart", "/search"] {
        let series = format!(
            r#"burnguard_slo_status{{slo="shop-routes",service="shop",route="{route}",status="ok"}}"#
        );
        assert_eq!(
            common::serve::value(&metrics, &series),
            Some(1.0),
            "{series}"
        );
    }
    // The API: one entry per group.
    let (status, body) = serve.get("/api/v1/slos/shop-routes");
    assert_eq!(status, 200, "{body}");
    let slo: serde_json::Value = serde_json::from_str(&body).unwrap();
    let mut routes: Vec<&str> = slo["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["group"]["route"].as_str().unwrap())
        .collect();
    routes.sort();
    assert_eq!(routes, ROUTES.to_vec(), "{body}");
    // One incident, /pay's.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let incidents = loop {
        let (status, body) = serve.get("/api/v1/incidents");
        assert_eq!(status, 200, "{body}");
        let list: serde_json::Value = serde_json::from_str(&body).unwrap();
        let items = list["incidents"].as_array().cloned().unwrap_or_default();
        if !items.is_empty() {
            break items;
        }
        assert!(std::time::Instant::now() < deadline, "no incident: {body}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert_eq!(incidents.len(), 1, "{incidents:?}");
    assert_eq!(incidents[0]["slo"], "shop-routes{route=\"/pay\"}");
    assert_eq!(incidents[0]["severity"], "page");
}

#[tokio::test]
async fn a_backtest_replays_each_group_on_its_own() {
    let prometheus = PrometheusServer::start(&history());
    let slo = load(&burnguard_slo(None, "by (route)"));
    let replays = burnguard::engine::backtest::backtest(
        &client(&prometheus.url),
        std::slice::from_ref(&slo),
        START + 3_600,
        END,
        60,
        4,
    )
    .await;
    let mut by_route: BTreeMap<String, &burnguard::engine::backtest::SloBacktest> = BTreeMap::new();
    for r in &replays {
        assert_eq!(r.error, None, "{r:?}");
        by_route.insert(r.group["route"].clone(), r);
    }
    assert_eq!(
        by_route.keys().map(String::as_str).collect::<Vec<_>>(),
        ROUTES.to_vec()
    );
    // /pay pages once, from when its 5% began (the 1h and 5m rows both past 14.4x).
    assert_eq!(by_route["/pay"].summary.pages, 1);
    let fired = by_route["/pay"].transitions[0].at;
    assert!(
        (END - 30 * 60..END).contains(&fired),
        "fired at {fired}, the burn began at {}",
        END - 30 * 60
    );
    for route in ["/cart", "/search"] {
        assert_eq!(by_route[route].summary.pages, 0, "{route}");
        assert!(by_route[route].transitions.is_empty(), "{route}");
    }
    // Past maxGroups, the SLO is one error.
    let limited = load(&burnguard_slo(Some(2), "by (route)"));
    let replays = burnguard::engine::backtest::backtest(
        &client(&prometheus.url),
        std::slice::from_ref(&limited),
        START + 3_600,
        END,
        60,
        4,
    )
    .await;
    assert_eq!(replays.len(), 1);
    assert!(
        replays[0]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("more than maxGroups (2)")),
        "{:?}",
        replays[0].error
    );
}

/// The rules of `file` recording one of `names`, as a rule file of one group (for staged
/// backfills).
fn only(file: &rules::RuleFile, names: &[&str]) -> String {
    let group = file.groups.last().unwrap();
    let picked: Vec<rules::Rule> = file
        .groups
        .iter()
        .flat_map(|g| &g.rules)
        .filter(|r| matches!(r, rules::Rule::Recording { record, .. } if names.contains(&record.as_str())))
        .cloned()
        .collect();
    assert_eq!(picked.len(), names.len(), "{names:?}");
    let one = rules::RuleFile {
        groups: vec![rules::RuleGroup {
            name: group.name.clone(),
            interval: group.interval,
            rules: picked,
        }],
    };
    rules::to_yaml(&one, "a test").unwrap()
}

fn expr_of(file: &rules::RuleFile, name: &str) -> String {
    file.groups
        .last()
        .unwrap()
        .rules
        .iter()
        .find_map(|r| match r {
            rules::Rule::Recording { record, expr, .. } if record == name => Some(expr.clone()),
            _ => None,
        })
        .unwrap()
}

#[tokio::test]
async fn a_grouped_calendar_slo_records_a_budget_per_group_as_burnguard_reads_it() {
    use rules::{
        BAD_RATE_SERIES, BUDGET_REMAINING_SERIES, CALENDAR_LENGTH_SERIES,
        CALENDAR_RUN_START_SERIES, PERIOD_LENGTH_SERIES, PERIOD_RATIO_SERIES, PERIOD_START_SERIES,
        TOTAL_RATE_SERIES,
    };
    let mut prometheus = PrometheusServer::start(&history());
    let slo = load(&burnguard_slo(None, "by (route)").replace(
        "  window: 7d\n",
        "  window: {calendar: month, timeZone: UTC}\n",
    ));
    let file = rules::rule_file(std::slice::from_ref(&slo));
    common::prometheus::promtool_checks(&file);
    prometheus.backfill_rules(
        &only(&file, &[BAD_RATE_SERIES, TOTAL_RATE_SERIES]),
        START,
        END,
        STEP as u64,
    );
    let at = END - 600;
    let (from, until) = (at - 1_200, at + 120);
    prometheus.backfill_rules(
        &only(&file, &[CALENDAR_RUN_START_SERIES, CALENDAR_LENGTH_SERIES]),
        from,
        until,
        STEP as u64,
    );
    prometheus.backfill_rules(
        &only(&file, &[PERIOD_START_SERIES, PERIOD_LENGTH_SERIES]),
        from,
        until,
        STEP as u64,
    );
    // The budget rule as Prometheus evaluates it at `at`, its period ratio in place.
    let selector = "{slo=\"shop-routes\"}";
    let budget = expr_of(&file, BUDGET_REMAINING_SERIES).replace(
        &format!("{PERIOD_RATIO_SERIES}{selector}"),
        &format!("({})", expr_of(&file, PERIOD_RATIO_SERIES)),
    );
    let recorded = client(&prometheus.url).instant(&budget, at).await.unwrap();
    let ours = Evaluator::new(client(&prometheus.url), ReadMode::Raw, 4)
        .evaluate(std::slice::from_ref(&slo), at)
        .await;
    let ours = by_route(&ours.slos);
    assert_eq!(recorded.len(), 3, "one budget per route: {recorded:?}");
    for sample in &recorded {
        let route = sample.labels.get("route").unwrap();
        let mine = ours[route].error_budget_remaining.unwrap();
        // The rules count whole 5m steps, burnguard the exact range: the budget spent agrees
        // within 2%.
        assert!(
            (sample.value - mine).abs() <= 0.02 * (1.0 - mine).abs(),
            "{route}: rules {}, burnguard {mine}",
            sample.value
        );
    }
}

/// `shop-routes` as an edit would leave it: `group_by` is the `groupBy` line's list (none
/// when empty), `job` the selector's job.
fn reshaped_slo(group_by: &str, route: Option<&str>, job: &str) -> String {
    let group_line = if group_by.is_empty() {
        String::new()
    } else {
        format!("  groupBy: [{group_by}]\n")
    };
    let by = if group_by.is_empty() {
        String::new()
    } else {
        format!("by ({group_by}) ")
    };
    let route = route.map_or(String::new(), |r| format!(",route=\"{r}\""));
    format!(
        r#"apiVersion: burnguard.dev/v1
kind: SLO
metadata: {{name: shop-routes}}
spec:
  service: shop
  objective: 99.9
  window: 7d
{group_line}  indicator:
    ratio:
      errors: 'sum {by}(rate(http_requests_total{{job="{job}",code="500"{route}}}[{{{{.window}}}}]))'
      total: 'sum {by}(rate(http_requests_total{{job="{job}"{route}}}[{{{{.window}}}}]))'
  alerting:
    windows:
      - {{severity: page, long: 1h, short: 5m, burnRate: 14.4}}
      - {{severity: ticket, long: 6h, short: 30m, burnRate: 6}}
"#
    )
}

async fn unresolved(store: &SqlStore) -> Vec<IncidentRecord> {
    let mut all = store
        .list_incidents(&IncidentFilter {
            status: None,
            slo: None,
            limit: None,
        })
        .await
        .unwrap();
    all.retain(|i| i.status != "resolved");
    all
}

/// Evaluates `slo` in raw mode at `AT`, records it and retires reshaped incidents, as a
/// serve cycle does; returns how many were retired.
async fn cycle(store: &SqlStore, evaluator: &Evaluator<Prometheus>, slo: &Slo) -> (usize, String) {
    let slos = std::slice::from_ref(slo);
    let evaluation = evaluator.evaluate(slos, AT).await;
    record_cycle(store, slos, &evaluation, &mut HistoryCadence::default()).await;
    let statuses: Vec<&str> = evaluation.slos.iter().map(|e| e.status.as_str()).collect();
    (
        retire_reshaped(store, slos, &evaluation, AT).await,
        statuses.join(","),
    )
}

#[tokio::test]
async fn editing_group_by_with_an_incident_open_resolves_the_old_shape_once_the_new_one_has_data() {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let prometheus = PrometheusServer::start(&history());
    let evaluator = Evaluator::new(client(&prometheus.url), ReadMode::Raw, 4);
    let only_pay = load(&reshaped_slo("", Some("/pay"), "shop"));
    let by_route_without_data = load(&reshaped_slo("route", None, "gone"));
    let by_route = load(&reshaped_slo("route", None, "shop"));
    let whole_shop = load(&reshaped_slo("", None, "shop"));
    let pay_key = "shop-routes{route=\"/pay\"}";
    for db in TestDb::both().await {
        let store = SqlStore::open(db.url()).await.unwrap();
        // Ungrouped, reading /pay alone: it pages, as `shop-routes`.
        assert_eq!(
            cycle(&store, &evaluator, &only_pay).await,
            (0, "page".into())
        );
        let open = unresolved(&store).await;
        assert_eq!(open.len(), 1, "{open:?}");
        assert_eq!(open[0].slo, "shop-routes");
        let ungrouped_id = open[0].id;

        // Grouped by route, but its series are gone: nothing resolves on missing data.
        let (retired, status) = cycle(&store, &evaluator, &by_route_without_data).await;
        assert_eq!((retired, status.as_str()), (0, "no_data"));
        assert_eq!(unresolved(&store).await, open);

        // Grouped by route with data: the old `shop-routes` incident is resolved with the
        // reason on its timeline, and /pay opens its own.
        let (retired, status) = cycle(&store, &evaluator, &by_route).await;
        assert_eq!(retired, 1, "{status}");
        let open = unresolved(&store).await;
        let keys: Vec<&str> = open.iter().map(|i| i.slo.as_str()).collect();
        assert_eq!(keys, vec![pay_key], "{} {status}", db.url());
        let detail = store.incident(ungrouped_id).await.unwrap().unwrap();
        assert_eq!(detail.incident.status, "resolved");
        let last = detail.timeline.last().unwrap();
        assert_eq!(last.kind, "resolved");
        assert_eq!(last.actor.as_deref(), Some("burnguard"));
        assert!(
            last.message.contains("groupBy changed") && last.message.contains("[route]"),
            "{}",
            last.message
        );

        // Acknowledged, then the grouping is dropped again: the /pay incident goes, and the
        // shop as a whole (1/3 of /pay's errors) is judged on its own numbers.
        let pay_id = open[0].id;
        store.acknowledge(pay_id, "alice", None, AT).await.unwrap();
        let (retired, status) = cycle(&store, &evaluator, &whole_shop).await;
        assert_eq!(retired, 1, "{status}");
        let detail = store.incident(pay_id).await.unwrap().unwrap();
        assert_eq!(detail.incident.status, "resolved");
        assert!(
            detail
                .timeline
                .last()
                .unwrap()
                .message
                .contains("no longer grouped"),
            "{:?}",
            detail.timeline.last()
        );
        for incident in unresolved(&store).await {
            assert_eq!(incident.slo, "shop-routes", "only the new shape is open");
        }
        // A second replica running the same cycle finds nothing left to retire.
        assert_eq!(cycle(&store, &evaluator, &whole_shop).await.0, 0);
    }
}

/// 10,000 grouped SLOs, two routes each, in rules mode against a real Prometheus holding the
/// recorded series the rules would write: every group of every SLO gets its own numbers for
/// every window, and exactly the burning groups open incidents, keyed by group.
#[tokio::test]
async fn ten_thousand_grouped_slos_read_back_every_group_from_the_recorded_series() {
    use burnguard::domain::rules::{OBJECTIVE_SERIES, error_ratio_series};
    use common::prometheus::gauge;
    const N: usize = 10_000;
    let slos = shop_slos(N, Some("route"));

    // Every tenth SLO's /pay fails 2% (20x the budget: a page), the rest a distinct quiet
    // ratio per SLO and route, so a group reading another's series would show.
    let ratio = |i: usize, route: &str| -> f64 {
        match route {
            "/pay" if i.is_multiple_of(10) => 0.02,
            "/pay" => 1e-5 * (1 + i % 50) as f64,
            _ => 2e-5 * (1 + i % 20) as f64,
        }
    };
    let times: Vec<i64> = (0..5).map(|k| END - 240 + 60 * k).collect();
    let mut history = Vec::new();
    for (i, slo) in slos.iter().enumerate() {
        for route in ["/pay", "/cart"] {
            let labels = labels(&[("slo", &slo.name), ("service", "shop"), ("route", route)]);
            let value = ratio(i, route);
            for window in slo.windows() {
                history.push(gauge(
                    &error_ratio_series(window),
                    labels.clone(),
                    times.iter().map(|t| (*t, value)).collect(),
                ));
            }
        }
        history.push(gauge(
            OBJECTIVE_SERIES,
            labels(&[("slo", &slo.name), ("service", "shop")]),
            times.iter().map(|t| (*t, 0.999)).collect(),
        ));
    }
    let evaluation = read_in_rules_mode(&history, &slos).await;
    assert_eq!(evaluation.slos.len(), 2 * N, "one evaluation per group");
    let by_key: BTreeMap<String, &SloEvaluation> = evaluation
        .slos
        .iter()
        .map(|e| (e.key(), e.as_ref()))
        .collect();
    for (i, slo) in slos.iter().enumerate() {
        for route in ["/pay", "/cart"] {
            let key = format!("{}{{route={route:?}}}", slo.name);
            let e = by_key
                .get(&key)
                .unwrap_or_else(|| panic!("no evaluation for {key}"));
            assert_eq!(e.error, None, "{key}");
            for window in slo.windows() {
                assert_eq!(
                    e.error_ratio.get(window),
                    Some(ratio(i, route)),
                    "{key} {window}"
                );
            }
            let want = if ratio(i, route) > 0.0144 {
                "page"
            } else {
                "ok"
            };
            assert_eq!(e.status.as_str(), want, "{key}");
        }
    }

    let open = open_incidents_after(&slos, &evaluation, N / 10).await;
    for incident in open {
        let (name, route) = incident.slo.split_once('{').unwrap();
        assert_eq!(route, "route=\"/pay\"}");
        let i: usize = name.trim_start_matches("shop-").parse().unwrap();
        assert_eq!(i % 10, 0, "{}", incident.slo);
    }
}

/// What rules mode reads for `slos` from a fresh Prometheus holding `history`, at [`AT`];
/// every query answered.
async fn read_in_rules_mode(
    history: &[Series],
    slos: &[Slo],
) -> burnguard::engine::evaluate::Evaluation {
    let prometheus = PrometheusServer::start(history);
    let evaluation = Evaluator::new(client(&prometheus.url), ReadMode::Rules, 4)
        .evaluate(slos, AT)
        .await;
    assert_eq!(evaluation.failed_queries, 0);
    evaluation
}

/// The incidents open after recording `evaluation` as one cycle in a fresh SQLite store,
/// which must open `opened` of them.
async fn open_incidents_after(
    slos: &[Slo],
    evaluation: &burnguard::engine::evaluate::Evaluation,
    opened: usize,
) -> Vec<IncidentRecord> {
    let db = TestDb::sqlite();
    let store = SqlStore::open(db.url()).await.unwrap();
    let recorded = record_cycle(&store, slos, evaluation, &mut HistoryCadence::default()).await;
    assert_eq!((recorded.opened, recorded.failed), (opened, 0));
    let open = unresolved(&store).await;
    assert_eq!(open.len(), opened);
    open
}

/// `n` availability SLOs `shop-0..` of service `shop`, each on its own `job`, grouped by
/// `group_by` when given, loaded by the real policy loader.
fn shop_slos(n: usize, group_by: Option<&str>) -> Vec<Slo> {
    let (group_line, by) = match group_by {
        Some(label) => (format!("  groupBy: [{label}]\n"), format!(" by ({label})")),
        None => (String::new(), String::new()),
    };
    let text: String = (0..n)
        .map(|i| {
            format!(
                "apiVersion: burnguard.dev/v1\nkind: SLO\nmetadata: {{name: shop-{i}}}\nspec:\n  service: shop\n  objective: 99.9\n{group_line}  indicator:\n    ratio:\n      errors: 'sum{by} (rate(http_requests_total{{job=\"shop-{i}\",code=\"500\"}}[{{{{.window}}}}]))'\n      total: 'sum{by} (rate(http_requests_total{{job=\"shop-{i}\"}}[{{{{.window}}}}]))'\n"
            )
        })
        .collect::<Vec<_>>()
        .join("---\n");
    let slos = common::load_slos(text);
    assert_eq!(slos.len(), n);
    slos
}

/// Thousands of plain (ungrouped) SLOs in rules mode, enough for the verdicts to be split
/// over the cores: each SLO reads back its own number for every window (each is distinct,
/// so an answer matched to the wrong SLO or a value read from a neighbour's slot would
/// show), SLOs with no recorded series are no data rather than quiet, and exactly the
/// burning ones open incidents.
#[tokio::test]
async fn thousands_of_plain_slos_read_back_each_its_own_numbers_from_the_recorded_series() {
    use burnguard::domain::rules::{OBJECTIVE_SERIES, error_ratio_series};
    use common::prometheus::gauge;
    const N: usize = 3_000;
    let slos = shop_slos(N, None);

    // Every tenth SLO burns at 20x its 0.1% budget or more (a page); every tenth from the
    // seventh has no recorded series at all; the rest are quiet. Each value is the SLO's own.
    let has_series = |i: usize| i % 10 != 7;
    let ratio = |i: usize| -> f64 {
        if i.is_multiple_of(10) {
            0.02 + 1e-7 * i as f64
        } else {
            1e-7 * (1 + i) as f64
        }
    };
    let times: Vec<i64> = (0..5).map(|k| END - 240 + 60 * k).collect();
    let mut history = Vec::new();
    for (i, slo) in slos.iter().enumerate().filter(|(i, _)| has_series(*i)) {
        let labels = labels(&[("slo", &slo.name), ("service", "shop")]);
        for window in slo.windows() {
            history.push(gauge(
                &error_ratio_series(window),
                labels.clone(),
                times.iter().map(|t| (*t, ratio(i))).collect(),
            ));
        }
        history.push(gauge(
            OBJECTIVE_SERIES,
            labels,
            times.iter().map(|t| (*t, 0.999)).collect(),
        ));
    }
    let evaluation = read_in_rules_mode(&history, &slos).await;
    assert_eq!(evaluation.slos.len(), N, "one evaluation per SLO");
    let by_name: BTreeMap<&str, &SloEvaluation> = evaluation
        .slos
        .iter()
        .map(|e| (e.name.as_str(), e.as_ref()))
        .collect();
    for (i, slo) in slos.iter().enumerate() {
        let e = by_name
            .get(slo.name.as_str())
            .unwrap_or_else(|| panic!("no evaluation for {}", slo.name));
        assert_eq!(e.error, None, "{}", slo.name);
        if !has_series(i) {
            assert_eq!(e.status.as_str(), "no_data", "{}: {e:?}", slo.name);
            assert!(e.error_budget_remaining.is_none(), "{}: {e:?}", slo.name);
            continue;
        }
        for window in slo.windows() {
            assert_eq!(
                e.error_ratio.get(window),
                Some(ratio(i)),
                "{} {window}",
                slo.name
            );
        }
        let want = if ratio(i) > 0.0144 { "page" } else { "ok" };
        assert_eq!(e.status.as_str(), want, "{}", slo.name);
    }

    let open = open_incidents_after(&slos, &evaluation, N / 10).await;
    for incident in open {
        let i: usize = incident.slo.trim_start_matches("shop-").parse().unwrap();
        assert_eq!(i % 10, 0, "{}", incident.slo);
    }
}

/// The windows over 6h that the rules derive from recorded rates, against the counters: the
/// 1d window from the 5m series and the 3d (SLO) window from the hourly series, per route.
/// Four days of traffic whose error rate changes every hour, so a window that slid, doubled
/// or missed an hour would show; the expected ratios are the counters' increases over the
/// span each recorded sample covers, and the hourly one ends under an hour before `at`.
#[tokio::test]
async fn the_long_windows_come_from_recorded_rates_within_the_documented_bound() {
    let start = END - 4 * 86_400;
    // Errors per second by hour: 0.2 every fifth hour, 0.02 otherwise (of 10 a second).
    let errors = |route: &str, t: i64| match (route, (t / 3_600) % 5) {
        ("/pay", 0) => 0.2,
        _ => 0.02,
    };
    let mut history = Vec::new();
    for route in ["/cart", "/pay"] {
        for code in ["500", "200"] {
            history.push(counter(
                "http_requests_total",
                labels(&[("job", "shop"), ("route", route), ("code", code)]),
                start,
                END,
                STEP,
                100.0,
                move |t| match code {
                    "500" => errors(route, t),
                    _ => 10.0 - errors(route, t),
                },
            ));
        }
    }
    let mut prometheus = PrometheusServer::start(&history);
    let slo = load(
        &burnguard_slo(None, "by (route)")
            .replace("window: 7d", "window: 3d")
            .replace(
                "      - {severity: ticket, long: 6h, short: 30m, burnRate: 6}\n",
                "      - {severity: ticket, long: 6h, short: 30m, burnRate: 6}\n      - {severity: ticket, long: 1d, short: 2h, burnRate: 3}\n",
            ),
    );
    let file = rules::rule_file(std::slice::from_ref(&slo));
    common::prometheus::promtool_checks(&file);
    assert_eq!(
        file.groups
            .iter()
            .map(|g| g.name.as_str())
            .collect::<Vec<_>>(),
        ["burnguard-shop-routes", "burnguard-shop-routes-hourly"]
    );
    assert_eq!(file.groups[1].interval, Some(window("1h")));
    for pass in common::prometheus::rule_passes(&file) {
        let yaml = rules::to_yaml(&pass, "a test").unwrap();
        prometheus.backfill_rules(&yaml, start + 3_600, END, STEP as u64);
    }
    let at = END - 600;
    let prometheus_client = client(&prometheus.url);
    let instant_at = |expr: String, at: i64| {
        let prometheus_client = &prometheus_client;
        async move {
            let answer = prometheus_client.instant(&expr, at).await.unwrap();
            assert_eq!(answer.len(), 1, "{expr}: {answer:?}");
            answer[0].value
        }
    };
    let instant = |expr: String| instant_at(expr, at);
    let evaluation = Evaluator::new(client(&prometheus.url), ReadMode::Rules, 4)
        .evaluate(std::slice::from_ref(&slo), at)
        .await;
    let routes = by_route(&evaluation.slos);
    assert_eq!(routes.len(), 2, "{:#?}", evaluation.slos);
    for route in ["/cart", "/pay"] {
        let e = routes[route];
        assert_eq!(e.error, None, "{e:?}");
        let selector = format!("{{route=\"{route}\"}}");
        // The counters' error ratio over the `window` seconds up to `until`.
        let ratio = |until: f64, window: f64| {
            let of = |code: &str| {
                history
                    .iter()
                    .find(|s| s.labels["route"] == route && s.labels["code"] == code)
                    .unwrap()
                    .increase_within(until, window)
                    .unwrap()
            };
            of("500") / (of("500") + of("200"))
        };

        // The hourly series has one sample an hour, the last one under an hour before `at`.
        let hourly = instant(format!(
            "count_over_time({}{selector}[1d])",
            rules::HOURLY_BAD_RATE_SERIES
        ))
        .await;
        assert_eq!(hourly, 24.0, "{route}: hourly samples in a day");
        // The 3d ratio read at `at` was recorded at most one evaluation interval before it,
        // over the hourly samples up to then. Rule groups are evaluated at an offset of their
        // own (hashed from the group and its file, here a temp path), so an hourly sample can
        // fall between that recording and `at`: the last hourly sample is the last one as of
        // the recording, read raw (a range selector's samples carry their own timestamps).
        let recorded_3d_at = instant(format!(
            "timestamp(burnguard:sli_error:ratio_rate3d{selector})"
        ))
        .await;
        let last_hour = last_sample_time(
            &prometheus.url,
            &format!("{}{selector}[2h]", rules::HOURLY_BAD_RATE_SERIES),
            recorded_3d_at,
        );
        assert!(recorded_3d_at - last_hour < 3_600.0, "{route}: {last_hour}");
        // 3d: the 72 hours up to that sample, exactly but for rate()'s extrapolation.
        let got = e.error_ratio.get(window("3d")).unwrap();
        let want = ratio(last_hour, 3.0 * 86_400.0);
        assert!(
            (got - want).abs() <= 1e-3 * want,
            "{route} 3d: recorded {got}, counters {want}"
        );
        // 1d: the 5m series' samples over the day before the recorded sample; the day's
        // edges count partly (at most 5m of the day's events).
        let recorded_at = instant(format!(
            "timestamp(burnguard:sli_error:ratio_rate1d{selector})"
        ))
        .await;
        let got = e.error_ratio.get(window("1d")).unwrap();
        let want = ratio(recorded_at, 86_400.0);
        assert!(
            (got - want).abs() <= 300.0 / 86_400.0 * 0.2 / 0.02 * want,
            "{route} 1d: recorded {got}, counters {want}"
        );
    }
}

/// The timestamp (seconds, to the millisecond) of the last raw sample that `range_selector` (one
/// series) selects at `at`.
fn last_sample_time(prometheus: &str, range_selector: &str, at: f64) -> f64 {
    let query: String = range_selector
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b':' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let addr = prometheus.trim_start_matches("http://");
    let (status, body) =
        common::prometheus::http_get(addr, &format!("/api/v1/query?query={query}&time={at:.3}"))
            .expect("prometheus answers");
    assert_eq!(status, 200, "{range_selector}: {body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    let values = answer["data"]["result"][0]["values"]
        .as_array()
        .unwrap_or_else(|| panic!("{range_selector}: {body}"));
    let last = values
        .last()
        .unwrap_or_else(|| panic!("{range_selector}: {body}"));
    last[0].as_f64().unwrap()
}
