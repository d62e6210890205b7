//! Replaying policies over history: range queries for every window of every SLO, then the
//! same assessment a live cycle makes, at every step. What a team sees before adopting a
//! policy: when it would have paged, for how long, and how low the budget went.
//!
//! Backtests read raw queries (recording rules may not have existed over the period).

use std::collections::BTreeMap;

use futures_util::stream::{self, StreamExt};
use serde::Serialize;

use crate::domain::burn;
use crate::domain::policy::{Severity, Slo, Window};
use crate::domain::sli;
use crate::ports::{MetricsError, MetricsSource, UnixSeconds};

/// Prometheus refuses more than 11,000 points per series; stay under it.
const MAX_POINTS_PER_QUERY: i64 = 10_000;

/// Whether an alert row started or stopped firing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    Fired,
    Resolved,
}

/// One alert row changing state at one step.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Transition {
    pub at: UnixSeconds,
    pub change: Change,
    pub severity: &'static str,
    pub long_window: String,
    pub short_window: String,
}

/// Budget remaining over the SLO window at one step (`None`: no data).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BudgetPoint {
    pub at: UnixSeconds,
    pub remaining: Option<f64>,
}

/// What the replay adds up to.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Summary {
    /// Episodes during which at least one page row fired.
    pub pages: usize,
    /// Episodes during which at least one ticket row fired.
    pub tickets: usize,
    pub time_paging_seconds: u64,
    pub time_ticketing_seconds: u64,
    pub time_without_data_seconds: u64,
    pub lowest_budget_remaining: Option<f64>,
    pub lowest_budget_at: Option<UnixSeconds>,
}

/// One SLO's replay.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SloBacktest {
    pub name: String,
    /// A grouped SLO's group (one replay per group); empty otherwise.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub group: Group,
    pub service: String,
    pub transitions: Vec<Transition>,
    pub budget: Vec<BudgetPoint>,
    /// The burn rate of each alert window at every step (`None`: no data), for drawing.
    #[serde(skip)]
    pub burn_rates: BTreeMap<Window, Vec<(UnixSeconds, Option<f64>)>>,
    pub summary: Summary,
    pub error: Option<String>,
}

/// Points of one window's error ratio, by time.
pub type WindowPoints = BTreeMap<UnixSeconds, f64>;

/// A grouped SLO's group: its `groupBy` labels' values (empty for an ungrouped SLO).
pub type Group = BTreeMap<String, String>;

/// One window's points, per group.
type GroupPoints = BTreeMap<Group, WindowPoints>;

/// The steps of a replay: `from`, `from + step`, ... up to and including `to`.
pub fn steps(from: UnixSeconds, to: UnixSeconds, step: u64) -> Vec<UnixSeconds> {
    let step = step.max(1) as i64;
    (0..)
        .map(|i| from + i * step)
        .take_while(|t| *t <= to)
        .collect()
}

/// Replays every SLO over `[from, to]`. Each SLO fails on its own if one of its queries does.
pub async fn backtest<M: MetricsSource>(
    source: &M,
    slos: &[Slo],
    from: UnixSeconds,
    to: UnixSeconds,
    step: u64,
    concurrency: usize,
) -> Vec<SloBacktest> {
    let jobs: Vec<(usize, Window, String)> = slos
        .iter()
        .enumerate()
        .flat_map(|(i, slo)| {
            slo.windows()
                .into_iter()
                .map(move |w| (i, w, sli::error_ratio(&slo.indicator, w, slo.min_events)))
        })
        .collect();
    let answers: Vec<(usize, Window, Result<GroupPoints, String>)> = stream::iter(jobs)
        .map(|(i, w, expr)| async move {
            let result = range_chunked(source, &expr, &slos[i].group_by, from, to, step).await;
            (
                i,
                w,
                result.map_err(|e| format!("querying the {w} error ratio: {e}")),
            )
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;

    // Per SLO: per group, per window.
    type PerGroup = BTreeMap<Group, BTreeMap<Window, WindowPoints>>;
    let mut per_slo: Vec<Result<PerGroup, String>> = vec![Ok(BTreeMap::new()); slos.len()];
    for (i, window, result) in answers {
        match (&mut per_slo[i], result) {
            (Ok(groups), Ok(points)) => {
                for (group, points) in points {
                    groups.entry(group).or_default().insert(window, points);
                }
            }
            (slot @ Ok(_), Err(e)) => *slot = Err(e),
            (Err(_), _) => {}
        }
    }
    let timeline = steps(from, to, step);
    slos.iter()
        .zip(per_slo)
        .flat_map(|(slo, data)| match data {
            Ok(groups) if groups.len() > slo.max_groups => vec![failed(
                slo,
                format!(
                    "{} groups by {}, more than maxGroups ({})",
                    groups.len(),
                    slo.group_by.join(", "),
                    slo.max_groups
                ),
            )],
            Ok(groups) if groups.is_empty() => {
                vec![replay(slo, &BTreeMap::new(), &timeline, step)]
            }
            Ok(groups) => groups
                .into_iter()
                .map(|(group, windows)| {
                    // A window the group has no series in has no data there.
                    let mut windows = windows;
                    for w in slo.windows() {
                        windows.entry(w).or_default();
                    }
                    let mut replayed = replay(slo, &windows, &timeline, step);
                    replayed.group = group;
                    replayed
                })
                .collect(),
            Err(error) => vec![failed(slo, error)],
        })
        .collect()
}

fn failed(slo: &Slo, error: String) -> SloBacktest {
    SloBacktest {
        name: slo.name.clone(),
        group: Group::new(),
        service: slo.service.clone(),
        transitions: Vec::new(),
        budget: Vec::new(),
        burn_rates: BTreeMap::new(),
        summary: Summary::default(),
        error: Some(error),
    }
}

/// One range query split into chunks Prometheus accepts; points keyed by group, then time.
/// An ungrouped SLO's query must answer at most one series (its group is empty); a grouped
/// SLO's one series per group, each with the `group_by` labels.
async fn range_chunked<M: MetricsSource>(
    source: &M,
    expr: &str,
    group_by: &[String],
    from: UnixSeconds,
    to: UnixSeconds,
    step: u64,
) -> Result<GroupPoints, MetricsError> {
    let mut points: GroupPoints = BTreeMap::new();
    let span = MAX_POINTS_PER_QUERY * step.max(1) as i64;
    let mut start = from;
    while start <= to {
        let end = (start + span - step as i64).min(to);
        let series = source.range(expr, start, end, step).await?;
        if group_by.is_empty() && series.len() > 1 {
            return Err(MetricsError::BadResponse(format!(
                "{} series returned; the SLO's queries must aggregate to one series (wrap them in sum())",
                series.len()
            )));
        }
        let mut seen = std::collections::BTreeSet::new();
        for s in series {
            let group: Option<Group> = group_by
                .iter()
                .map(|label| s.labels.get(label).map(|v| (label.clone(), v.clone())))
                .collect();
            let Some(group) = group else {
                return Err(MetricsError::BadResponse(format!(
                    "a series has no {} label; the queries must aggregate by {} (sum by ({}) (...))",
                    group_by.join(", "),
                    group_by.join(", "),
                    group_by.join(", ")
                )));
            };
            if !seen.insert(group.clone()) {
                return Err(MetricsError::BadResponse(
                    "two series for one group; the queries must aggregate by exactly the groupBy labels".into(),
                ));
            }
            points.entry(group).or_default().extend(s.points);
        }
        start = end + step as i64;
    }
    Ok(points)
}

/// Assesses the SLO at every step from the windows' points. Pure.
pub fn replay(
    slo: &Slo,
    windows: &BTreeMap<Window, WindowPoints>,
    timeline: &[UnixSeconds],
    step: u64,
) -> SloBacktest {
    let mut transitions = Vec::new();
    let mut budget = Vec::with_capacity(timeline.len());
    let mut summary = Summary::default();
    let mut was_firing = vec![false; slo.alerting.windows.len()];
    let error_budget = slo.error_budget().ratio();
    let mut burn_rates: BTreeMap<Window, Vec<(UnixSeconds, Option<f64>)>> = slo
        .alerting
        .windows
        .iter()
        .flat_map(|row| [row.long, row.short])
        .map(|w| (w, Vec::with_capacity(timeline.len())))
        .collect();
    let (mut was_paging, mut was_ticketing) = (false, false);
    for &at in timeline {
        let ratios: BTreeMap<Window, Option<f64>> = windows
            .iter()
            .map(|(w, points)| (*w, points.get(&at).copied()))
            .collect();
        // A calendar SLO's budget is not replayed: its period ratio would take a query per
        // step. Its alert rows, which decide pages and tickets, are.
        let reading = match slo.calendar {
            None => burn::BudgetReading::rolling(slo, &ratios, at),
            Some(_) => burn::BudgetReading {
                error_ratio: None,
                span: slo.budget_span(at),
                at,
            },
        };
        let assessment = burn::assess(slo, &ratios, reading);
        for (window, points) in &mut burn_rates {
            let ratio = ratios.get(window).copied().flatten();
            points.push((at, ratio.map(|r| r / error_budget)));
        }
        for (k, state) in assessment.alerts.iter().enumerate() {
            if state.firing() != was_firing[k] {
                transitions.push(Transition {
                    at,
                    change: if state.firing() {
                        Change::Fired
                    } else {
                        Change::Resolved
                    },
                    severity: state.window.severity.as_str(),
                    long_window: state.window.long.to_string(),
                    short_window: state.window.short.to_string(),
                });
                was_firing[k] = state.firing();
            }
        }
        let firing = |severity: Severity| {
            assessment
                .alerts
                .iter()
                .any(|a| a.firing() && a.window.severity == severity)
        };
        let (paging, ticketing) = (firing(Severity::Page), firing(Severity::Ticket));
        summary.pages += usize::from(paging && !was_paging);
        summary.tickets += usize::from(ticketing && !was_ticketing);
        summary.time_paging_seconds += if paging { step } else { 0 };
        summary.time_ticketing_seconds += if ticketing { step } else { 0 };
        if !assessment.status.is_decisive() {
            summary.time_without_data_seconds += step;
        }
        (was_paging, was_ticketing) = (paging, ticketing);
        if let Some(remaining) = assessment.budget_remaining
            && summary
                .lowest_budget_remaining
                .is_none_or(|low| remaining < low)
        {
            summary.lowest_budget_remaining = Some(remaining);
            summary.lowest_budget_at = Some(at);
        }
        budget.push(BudgetPoint {
            at,
            remaining: assessment.budget_remaining,
        });
    }
    SloBacktest {
        name: slo.name.clone(),
        group: Group::new(),
        service: slo.service.clone(),
        transitions,
        budget,
        burn_rates,
        summary,
        error: None,
    }
}
