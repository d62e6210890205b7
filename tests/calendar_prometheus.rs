//! Calendar SLOs against a REAL Prometheus: a month in Europe/Berlin whose budget resets on
//! 1 April 2026 00:00 local time (2026-03-31T22:00Z), a few days after the spring DST change.
//!
//! Four days of history around the reset: the shop fails 5% of its requests until minutes before
//! the reset and 0.02% after. The expected numbers are worked out here from the samples and from the
//! period bounds (taken from the IANA database with Python's zoneinfo, not from burnguard):
//! - burnguard's own evaluation (raw queries over the period so far) gives the period's error
//!   ratio, the budget left as `1 - burn rate * elapsed / length`, and no time to exhaustion
//!   when the period ends first; the same SLO written in OpenSLO's calendar form gives the same;
//! - the generated rules, as Prometheus evaluates them, record the same period bounds, the
//!   same ratio and the same budget.

mod common;

use burnguard::adapters::prometheus::{Prometheus, PrometheusConfig};
use burnguard::domain::rules::{
    self, BAD_RATE_SERIES, CALENDAR_LENGTH_SERIES, CALENDAR_RUN_START_SERIES, PERIOD_END_SERIES,
    PERIOD_LENGTH_SERIES, PERIOD_RATIO_SERIES, PERIOD_START_SERIES, Rule, RuleFile, RuleGroup,
    TOTAL_RATE_SERIES,
};
use burnguard::engine::evaluate::{Evaluator, ReadMode};
use burnguard::policies::{self, LoadOptions};
use burnguard::ports::MetricsSource;
use common::prometheus::{PrometheusServer, Series, counter, labels};

/// 2026-04-01T00:00 in Berlin (CEST, UTC+2).
const APRIL: i64 = 1_774_994_400;
/// 2026-05-01T00:00 in Berlin.
const MAY: i64 = 1_777_586_400;
/// 2026-03-01T00:00 in Berlin (CET, UTC+1): March is 31 days less the hour of the DST change.
const MARCH: i64 = 1_772_319_600;
const STEP: i64 = 60;
const START: i64 = APRIL - 2 * 86_400;
const END: i64 = APRIL + 2 * 86_400;
const BUDGET: f64 = 0.001;

/// 5% until four minutes before the reset, 0.02% after: a reading that let a step from
/// before the period in would see the last minute of the 5%.
fn errors_per_second(t: i64) -> f64 {
    if t < APRIL - 240 { 0.5 } else { 0.002 }
}

fn history() -> Vec<Series> {
    let series = |code: &str, per_second: Box<dyn Fn(i64) -> f64>| {
        counter(
            "http_requests_total",
            labels(&[("job", "shop"), ("code", code)]),
            START,
            END,
            STEP,
            1_000.0,
            per_second,
        )
    };
    vec![
        series("500", Box::new(errors_per_second)),
        series("200", Box::new(|t| 10.0 - errors_per_second(t))),
    ]
}

/// Errors over all requests in `(from, to]`, from the samples.
fn ratio_between(history: &[Series], from: i64, to: i64) -> f64 {
    let errors = history[0].increase_in(to, to - from).unwrap();
    let ok = history[1].increase_in(to, to - from).unwrap();
    errors / (errors + ok)
}

const BURNGUARD: &str = r#"apiVersion: burnguard.dev/v1
kind: SLO
metadata: {name: shop-month}
spec:
  service: shop
  objective: 99.9
  window: {calendar: month, timeZone: Europe/Berlin}
  indicator:
    ratio:
      errors: 'sum(rate(http_requests_total{job="shop",code="500"}[{{.window}}]))'
      total: 'sum(rate(http_requests_total{job="shop"}[{{.window}}]))'
"#;

const OPENSLO: &str = r#"apiVersion: openslo/v1
kind: SLO
metadata: {name: shop-month-openslo}
spec:
  service: shop
  budgetingMethod: Occurrences
  timeWindow:
    - duration: 1M
      isRolling: false
      calendar: {startTime: "2022-01-01 00:00:00", timeZone: Europe/Berlin}
  objectives: [{target: 0.999}]
  indicator:
    metadata: {name: shop-requests}
    spec:
      ratioMetric:
        counter: true
        bad: {metricSource: {type: Prometheus, spec: {query: 'sum(rate(http_requests_total{job="shop",code="500"}[{{.window}}]))'}}}
        total: {metricSource: {type: Prometheus, spec: {query: 'sum(rate(http_requests_total{job="shop"}[{{.window}}]))'}}}
"#;

fn load(text: &str, name: &str) -> burnguard::domain::policy::Slo {
    let sources = vec![(name.to_string(), text.to_string())];
    let (loaded, _, problems) = policies::parse_sources(&sources, &LoadOptions::default());
    assert!(problems.is_empty(), "{problems:?}");
    loaded[0].slo.clone()
}

fn client(url: &str) -> Prometheus {
    let mut config = PrometheusConfig::new(url);
    config.timeout = std::time::Duration::from_secs(10);
    Prometheus::new(&config).unwrap()
}

fn close(a: f64, b: f64, tolerance: f64) -> bool {
    (a - b).abs() <= tolerance * b.abs().max(1e-12)
}

#[tokio::test]
async fn a_month_in_berlin_resets_its_budget_at_local_midnight_and_counts_the_elapsed_part() {
    let history = history();
    let prometheus = PrometheusServer::start(&history);
    let slos = vec![
        load(BURNGUARD, "shop.yaml"),
        load(OPENSLO, "shop-openslo.yaml"),
    ];
    let evaluator = Evaluator::new(client(&prometheus.url), ReadMode::Raw, 4);

    // One day and 30 seconds into April.
    let at = APRIL + 86_400 + 30;
    let evaluation = evaluator.evaluate(&slos, at).await;
    let ratio = ratio_between(&history, APRIL, at);
    let elapsed = (at - APRIL) as f64 / (MAY - APRIL) as f64;
    let remaining = 1.0 - ratio / BUDGET * elapsed;
    for slo in &evaluation.slos {
        assert_eq!(slo.error, None, "{slo:?}");
        let period = slo
            .budget_period
            .as_ref()
            .expect("a calendar SLO reports its period");
        assert_eq!(period.start, "2026-03-31T22:00:00Z");
        assert_eq!(period.end, "2026-04-30T22:00:00Z");
        assert_eq!(period.time_zone, "Europe/Berlin");
        assert!(close(period.elapsed, elapsed, 1e-12));
        let got = period.error_ratio.unwrap();
        assert!(
            close(got, ratio, 1e-6),
            "{}: ratio {got}, samples {ratio}",
            slo.name
        );
        let budget = slo.error_budget_remaining.unwrap();
        assert!(
            close(budget, remaining, 1e-6),
            "{}: budget {budget}, expected {remaining}",
            slo.name
        );
        // March's 5% no longer counts: well over 90% of April's budget is left.
        assert!(budget > 0.99, "{budget}");
        // Burning at 0.2x, the budget lasts far beyond the end of April.
        assert_eq!(slo.time_to_exhaustion_seconds, None);
        assert_eq!(slo.window, "month in Europe/Berlin");
    }

    // The last minute of March: the whole of March's history (from the first sample) burns,
    // at 50x: over 29 days of a 31-day month (less an hour), long overspent.
    let at = APRIL - 60;
    let evaluation = evaluator.evaluate(&slos[..1], at).await;
    let slo = &evaluation.slos[0];
    let period = slo.budget_period.as_ref().unwrap();
    assert_eq!(period.start, "2026-02-28T23:00:00Z");
    let ratio = ratio_between(&history, START, at);
    let elapsed = (at - MARCH) as f64 / (APRIL - MARCH) as f64;
    assert!(close(period.error_ratio.unwrap(), ratio, 1e-6));
    let budget = slo.error_budget_remaining.unwrap();
    assert!(
        close(budget, 1.0 - ratio / BUDGET * elapsed, 1e-6),
        "{budget}"
    );
    assert!(budget < 0.0, "{budget}");
    assert_eq!(slo.time_to_exhaustion_seconds, Some(0.0));

    // No series at all for the SLO: no budget, no data, never "untouched".
    let missing = load(
        &BURNGUARD
            .replace("http_requests_total", "no_such_requests_total")
            .replace("shop-month", "shop-month-missing"),
        "missing.yaml",
    );
    let evaluation = evaluator
        .evaluate(std::slice::from_ref(&missing), APRIL + 86_400)
        .await;
    let e = &evaluation.slos[0];
    assert_eq!(e.error_budget_remaining, None);
    assert_eq!(e.budget_period.as_ref().unwrap().error_ratio, None);
    assert_eq!(e.status.as_str(), "no_data");

    // Two minutes into April, too little of the period to read: unknown, never "full".
    let evaluation = evaluator.evaluate(&slos[..1], APRIL + 120).await;
    assert_eq!(evaluation.slos[0].error_budget_remaining, None);
    assert_eq!(
        evaluation.slos[0]
            .budget_period
            .as_ref()
            .unwrap()
            .error_ratio,
        None
    );
}

/// The rules of `slo` whose record is one of `names`, as a rule file of one group.
fn only(group: &RuleGroup, names: &[&str]) -> String {
    let rules: Vec<Rule> = group
        .rules
        .iter()
        .filter(|r| matches!(r, Rule::Recording { record, .. } if names.contains(&record.as_str())))
        .cloned()
        .collect();
    assert_eq!(rules.len(), names.len(), "{names:?}");
    rules::to_yaml(
        &RuleFile {
            groups: vec![RuleGroup {
                name: group.name.clone(),
                interval: group.interval,
                rules,
            }],
        },
        "a test",
    )
    .unwrap()
}

fn expr_of(group: &RuleGroup, name: &str) -> String {
    group
        .rules
        .iter()
        .find_map(|r| match r {
            Rule::Recording { record, expr, .. } if record == name => Some(expr.clone()),
            _ => None,
        })
        .unwrap()
}

#[tokio::test]
async fn the_generated_rules_record_the_same_period_ratio_and_budget() {
    let history = history();
    let mut prometheus = PrometheusServer::start(&history);
    let slo = load(BURNGUARD, "shop.yaml");
    let file = rules::rule_file(std::slice::from_ref(&slo));
    common::prometheus::promtool_checks(&file);

    // One group of shared period bounds for the calendar, then the SLO's own and its hourly
    // group (its 3d alert window reads the hourly series).
    assert_eq!(file.groups.len(), 3);
    assert_eq!(file.groups[2].name, "burnguard-shop-month-hourly");
    let (calendar, group) = (&file.groups[0], &file.groups[1]);
    assert_eq!(calendar.name, "burnguard-calendar-month-Europe/Berlin");
    // The series the period rules read, recorded over the history as Prometheus would have.
    prometheus.backfill_rules(
        &only(group, &[BAD_RATE_SERIES, TOTAL_RATE_SERIES]),
        START,
        END,
        STEP as u64,
    );
    // The period series over the day the checks below read (each stage reads the one before).
    let (from, until) = (APRIL - 2 * 3_600, APRIL + 86_400 + 600);
    prometheus.backfill_rules(
        &only(
            calendar,
            &[CALENDAR_RUN_START_SERIES, CALENDAR_LENGTH_SERIES],
        ),
        from,
        until,
        STEP as u64,
    );
    prometheus.backfill_rules(
        &only(group, &[PERIOD_START_SERIES, PERIOD_LENGTH_SERIES]),
        from,
        until,
        STEP as u64,
    );
    let prometheus_client = client(&prometheus.url);
    let value = |answer: Vec<burnguard::ports::InstantSample>| {
        assert_eq!(answer.len(), 1, "{answer:?}");
        assert_eq!(answer[0].labels.get("slo"), Some("shop-month"));
        answer[0].value
    };

    // The period bounds, on both sides of the reset and across March's DST change.
    for (at, start, end) in [
        (APRIL - 3_600, MARCH, APRIL),
        // Five minutes in: promtool's staged backfill can miss the samples of the first
        // minute or so after a block boundary (the reset is one), which a recorded copy then
        // fills from before the reset by lookback; a live Prometheus has no such gap.
        (APRIL + 300, APRIL, MAY),
        (APRIL + 86_400, APRIL, MAY),
    ] {
        let recorded = format!("{PERIOD_START_SERIES} @ {at}");
        assert_eq!(
            value(prometheus_client.instant(&recorded, at).await.unwrap()) as i64,
            start,
            "start at {at}"
        );
        // The end rule reads the recorded start and length: evaluated as Prometheus
        // evaluates the rule.
        let end_expr = expr_of(group, PERIOD_END_SERIES);
        assert_eq!(
            value(prometheus_client.instant(&end_expr, at).await.unwrap()) as i64,
            end,
            "end at {at}"
        );
    }

    // The period ratio and the budget, as rule evaluation at `at` computes them (an instant
    // query: `@ end()` is the evaluation time, as it is for a rule). The recorded series the
    // budget rule reads are replaced by their own rules' expressions.
    let at = APRIL + 86_400;
    let ratio_expr = expr_of(group, PERIOD_RATIO_SERIES);
    let got = value(prometheus_client.instant(&ratio_expr, at).await.unwrap());
    let ratio = ratio_between(&history, APRIL, at);
    assert!(close(got, ratio, 1e-6), "rules {got}, samples {ratio}");
    let selector = "{slo=\"shop-month\"}";
    let budget_expr = expr_of(group, rules::BUDGET_REMAINING_SERIES).replace(
        &format!("{PERIOD_RATIO_SERIES}{selector}"),
        &format!("({ratio_expr})"),
    );
    let got = value(prometheus_client.instant(&budget_expr, at).await.unwrap());
    let remaining = 1.0 - ratio / BUDGET * (at - APRIL) as f64 / (MAY - APRIL) as f64;
    assert!(
        close(got, remaining, 1e-6),
        "rules {got}, expected {remaining}"
    );

    // burnguard's own reading at the same instant agrees.
    let evaluation = Evaluator::new(client(&prometheus.url), ReadMode::Raw, 4)
        .evaluate(std::slice::from_ref(&slo), at)
        .await;
    let ours = evaluation.slos[0].error_budget_remaining.unwrap();
    assert!(close(ours, got, 1e-6), "burnguard {ours}, rules {got}");
}

/// 10,000 calendar SLOs on three calendars: the costly period-bounds step sums appear once
/// per calendar, not once per SLO (20,000 sums of ~120 terms, about 9 ms each, would cost
/// Prometheus minutes of CPU per evaluation), and the whole file passes promtool.
#[test]
fn ten_thousand_calendar_slos_pay_for_their_period_bounds_once_per_calendar() {
    const N: usize = 10_000;
    let calendars = [
        "{calendar: month, timeZone: Europe/Berlin}",
        "{calendar: week, timeZone: UTC}",
        "{calendar: month, timeZone: America/New_York}",
    ];
    let text: String = (0..N)
        .map(|i| {
            BURNGUARD
                .replace("name: shop-month", &format!("name: shop-{i}"))
                .replace(
                    "{calendar: month, timeZone: Europe/Berlin}",
                    calendars[i % calendars.len()],
                )
                .replace("job=\"shop\"", &format!("job=\"shop-{i}\""))
        })
        .collect::<Vec<_>>()
        .join("---\n");
    let slos = common::load_slos(text);
    assert_eq!(slos.len(), N);
    let file = rules::rule_file(&slos);

    let shared: Vec<&RuleGroup> = file
        .groups
        .iter()
        .filter(|g| g.name.starts_with("burnguard-calendar-"))
        .collect();
    let mut names: Vec<&str> = shared.iter().map(|g| g.name.as_str()).collect();
    names.sort();
    assert_eq!(
        names,
        vec![
            "burnguard-calendar-month-America/New_York",
            "burnguard-calendar-month-Europe/Berlin",
            "burnguard-calendar-week-UTC",
        ]
    );
    // Each SLO's own group and its hourly one.
    assert_eq!(file.groups.len(), 2 * N + shared.len());
    // Every step term of the file is in the shared groups.
    let terms = |groups: &mut dyn Iterator<Item = &RuleGroup>| -> usize {
        groups
            .flat_map(|g| &g.rules)
            .map(|r| match r {
                Rule::Recording { expr, .. } | Rule::Alerting { expr, .. } => {
                    expr.matches(">= bool").count()
                }
            })
            .sum()
    };
    let in_shared = terms(&mut shared.iter().copied());
    let in_all = terms(&mut file.groups.iter());
    // Two month calendars, each a sum over its 120 month starts (run start) and over the
    // changes of month length (length); a week in UTC is one step and no term.
    assert!(in_shared > 300, "{in_shared}");
    assert_eq!(
        in_all, in_shared,
        "no SLO group computes its own period bounds"
    );
    common::prometheus::promtool_checks(&file);
}
