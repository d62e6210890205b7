//! Error-budget arithmetic and alert verdicts, as pure functions of numbers already read.
//!
//! The vocabulary (Google SRE Workbook): with objective `O`, the error budget is `B = 1 - O`;
//! the error ratio of a window is bad events over all events; the burn rate is the error ratio
//! over `B` (1.0 spends exactly the budget over the SLO window); the budget remaining over the
//! SLO window is `1 - E(window) / B`, negative once overspent.
//!
//! "No data" is its own state, carried as `None`: no series, NaN, no traffic, or fewer events
//! than `minEvents`. It is never read as zero errors nor as all errors, and an alert row with a
//! no-data side does not fire.
//!
//! Owns: the formulas and the verdict. Must not touch: I/O, the clock.

use std::collections::BTreeMap;

use super::policy::{AlertWindow, BudgetSpan, ErrorBudget, Severity, Slo, Window};

/// The error ratio of one window from per-second event rates, as Prometheus `rate()` gives them.
///
/// - `total` missing, NaN or not positive: no data (no traffic is not "no errors");
/// - fewer than `min_events` events in the window: no data;
/// - `bad` missing while `total` is present: zero errors (error counters commonly appear only
///   with the first error);
/// - `bad` NaN: no data.
pub fn error_ratio(
    bad: Option<f64>,
    total: Option<f64>,
    window: Window,
    min_events: u64,
) -> Option<f64> {
    let total = total.filter(|t| t.is_finite() && *t > 0.0)?;
    if total * window.as_secs_f64() < min_events as f64 {
        return None;
    }
    let bad = bad.unwrap_or(0.0);
    if !bad.is_finite() {
        return None;
    }
    Some(bad / total).filter(|r| r.is_finite())
}

/// How far outside `[0, 1]` an error ratio may stray and still be read as a ratio: `rate()`
/// extrapolates each series on its own, so errors can exceed the total by a hair.
pub const RATIO_TOLERANCE: f64 = 0.01;

/// An error ratio no real service can have.
#[derive(Clone, Copy, Debug, PartialEq, thiserror::Error)]
pub enum ImpossibleRatio {
    #[error("inconsistent data: errors exceed total (error ratio {0})")]
    AboveOne(f64),
    #[error("inconsistent data: negative error ratio ({0})")]
    Negative(f64),
}

/// Accepts an error ratio within `[0, 1]` give or take [`RATIO_TOLERANCE`] (clamped into
/// range); anything further out is an error, never a burn rate of 10,000.
pub fn checked_ratio(ratio: f64) -> Result<f64, ImpossibleRatio> {
    if ratio > 1.0 + RATIO_TOLERANCE {
        Err(ImpossibleRatio::AboveOne(ratio))
    } else if ratio < -RATIO_TOLERANCE {
        Err(ImpossibleRatio::Negative(ratio))
    } else {
        Ok(ratio.clamp(0.0, 1.0))
    }
}

/// Keeps a reading only when it is a real number.
pub fn finite(ratio: Option<f64>) -> Option<f64> {
    ratio.filter(|r| r.is_finite())
}

/// How many times faster than sustainable the budget burns: `error_ratio / budget`.
pub fn burn_rate(error_ratio: f64, budget: ErrorBudget) -> f64 {
    error_ratio / budget.ratio()
}

/// The fraction of the SLO window's budget left, from the error ratio over that whole window.
/// 1.0 is untouched, 0.0 spent, below 0 overspent.
pub fn budget_remaining(slo_window_error_ratio: f64, budget: ErrorBudget) -> f64 {
    1.0 - slo_window_error_ratio / budget.ratio()
}

/// The fraction of a calendar period's budget left when `elapsed_share` of the period has
/// passed with `error_ratio` over that part: `1 - BR * elapsed / length`. The events still to
/// come are taken to arrive at the rate seen so far, so burning at exactly the sustainable rate
/// spends the budget evenly and ends the period at 0 (the burn-down's ideal line), and a
/// finished period gives the plain `1 - ratio / budget`. With `elapsed_share` 1 it is
/// [`budget_remaining`].
pub fn period_budget_remaining(error_ratio: f64, budget: ErrorBudget, elapsed_share: f64) -> f64 {
    1.0 - burn_rate(error_ratio, budget) * elapsed_share
}

/// Seconds until the budget left is gone if the current burn rate holds: `remaining * P / BR`.
/// `Some(0)` when already spent, `None` when it never runs out (burn rate 0 or less).
pub fn time_to_exhaustion(remaining: f64, slo_window: Window, burn_rate: f64) -> Option<f64> {
    time_to_exhaustion_secs(remaining, slo_window.as_secs_f64(), burn_rate)
}

fn time_to_exhaustion_secs(remaining: f64, length_seconds: f64, burn_rate: f64) -> Option<f64> {
    if remaining <= 0.0 {
        return Some(0.0);
    }
    (burn_rate.is_finite() && burn_rate > 0.0).then(|| remaining * length_seconds / burn_rate)
}

/// The error ratio over what an SLO's budget counts at one instant, with that span.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BudgetReading {
    /// Over [`BudgetSpan::range`]; `None` without data (or before it can be read).
    pub error_ratio: Option<f64>,
    pub span: BudgetSpan,
    /// When it was read (unix seconds).
    pub at: i64,
}

impl BudgetReading {
    /// For a rolling SLO, whose budget window is one of `ratios`' keys.
    pub fn rolling(slo: &Slo, ratios: &BTreeMap<Window, Option<f64>>, at: i64) -> Self {
        Self {
            error_ratio: ratios.get(&slo.window).copied().flatten(),
            span: slo.budget_span(at),
            at,
        }
    }
}

/// The state of one alert row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PairVerdict {
    /// Both windows burn faster than the threshold.
    Firing,
    /// Both windows have data and at least one is under the threshold.
    Quiet,
    /// At least one window has no data; the row cannot fire.
    NoData,
}

/// One alert row and its verdict.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertState {
    pub window: AlertWindow,
    pub verdict: PairVerdict,
}

impl AlertState {
    pub fn firing(&self) -> bool {
        self.verdict == PairVerdict::Firing
    }
}

/// The verdict for one row, from the error ratios of its two windows.
pub fn pair_verdict(
    row: &AlertWindow,
    long: Option<f64>,
    short: Option<f64>,
    budget: ErrorBudget,
) -> PairVerdict {
    match (finite(long), finite(short)) {
        (Some(long), Some(short)) => {
            let limit = row.burn_rate_threshold * budget.ratio();
            if long > limit && short > limit {
                PairVerdict::Firing
            } else {
                PairVerdict::Quiet
            }
        }
        _ => PairVerdict::NoData,
    }
}

/// Verdicts for every row, reading each window's error ratio through `ratio_of`.
pub fn alert_states(
    rows: &[AlertWindow],
    budget: ErrorBudget,
    ratio_of: impl Fn(Window) -> Option<f64>,
) -> Vec<AlertState> {
    rows.iter()
        .map(|row| AlertState {
            window: row.clone(),
            verdict: pair_verdict(row, ratio_of(row.long), ratio_of(row.short), budget),
        })
        .collect()
}

/// The SLO's overall state after one evaluation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Status {
    /// No window had data.
    NoData,
    /// Nothing fires, but some alert row lacks data on a side, so it could not have fired:
    /// not quiet, only not known to burn. Nothing resolves, lifts or passes on it.
    Partial,
    /// Every alert row has data on both sides, and nothing fires.
    Ok,
    /// The worst firing row is a ticket.
    Ticket,
    /// A page row fires.
    Page,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::NoData => "no_data",
            Status::Partial => "partial",
            Status::Ok => "ok",
            Status::Ticket => "ticket",
            Status::Page => "page",
        }
    }
}

/// Worst firing severity wins. With nothing firing it is `Ok` only when every alert row had
/// data on both sides; `Partial` when some row could not be judged but some window had data;
/// `NoData` when no window had any.
pub fn status(states: &[AlertState], any_window_has_data: bool) -> Status {
    let worst = states
        .iter()
        .filter(|s| s.firing())
        .map(|s| s.window.severity)
        .max();
    let every_row_judged = states.iter().all(|s| s.verdict != PairVerdict::NoData);
    match worst {
        Some(Severity::Page) => Status::Page,
        Some(Severity::Ticket) => Status::Ticket,
        None if !any_window_has_data => Status::NoData,
        None if every_row_judged => Status::Ok,
        None => Status::Partial,
    }
}

impl Status {
    /// Whether this status is a judgement made on data: firing, or every row quiet with data.
    /// `NoData` and `Partial` are not, and nothing may resolve, lift or pass on them.
    pub fn is_decisive(self) -> bool {
        !matches!(self, Status::NoData | Status::Partial)
    }
}

/// Everything one evaluation says about an SLO, from the error ratio of each of its windows.
#[derive(Clone, Debug, PartialEq)]
pub struct Assessment {
    /// Burn rate per window, `None` where the window has no data.
    pub burn_rates: BTreeMap<Window, Option<f64>>,
    /// Over the SLO window; `None` without data there.
    pub budget_remaining: Option<f64>,
    /// At the current burn rate (see [`current_burn_window`]); `None` when it never runs out or
    /// either number is unknown.
    pub time_to_exhaustion: Option<f64>,
    pub alerts: Vec<AlertState>,
    pub status: Status,
}

/// The window whose burn rate counts as "current" for time to exhaustion: the shortest long
/// window of the alert rows (1h with the workbook table), recent yet not as jumpy as 5m.
pub fn current_burn_window(slo: &Slo) -> Window {
    slo.alerting
        .windows
        .iter()
        .map(|row| row.long)
        .min()
        .unwrap_or(slo.window)
}

/// Assesses an SLO from its windows' error ratios (`None` = no data; missing keys likewise)
/// and the reading of its budget.
///
/// Time to exhaustion of a calendar budget is `None` when the period ends first: the budget
/// resets before the current burn rate could spend it.
pub fn assess(
    slo: &Slo,
    ratios: &BTreeMap<Window, Option<f64>>,
    reading: BudgetReading,
) -> Assessment {
    let budget = slo.error_budget();
    let ratio_of = |w: Window| finite(ratios.get(&w).copied().flatten());
    let burn_rates = ratios
        .keys()
        .map(|w| (*w, ratio_of(*w).map(|r| burn_rate(r, budget))))
        .collect();
    let span = reading.span;
    let budget_remaining = finite(reading.error_ratio)
        .filter(|_| span.range.is_some())
        .map(|r| period_budget_remaining(r, budget, span.elapsed_share));
    let current = ratio_of(current_burn_window(slo)).map(|r| burn_rate(r, budget));
    let time_to_exhaustion = match (budget_remaining, current) {
        (Some(remaining), _) if remaining <= 0.0 => Some(0.0),
        (Some(remaining), Some(rate)) => {
            time_to_exhaustion_secs(remaining, span.length_seconds, rate)
                .filter(|t| span.seconds_left(reading.at).is_none_or(|left| *t <= left))
        }
        _ => None,
    };
    let alerts = alert_states(&slo.alerting.windows, budget, ratio_of);
    let any_data = ratios.keys().any(|w| ratio_of(*w).is_some());
    let status = status(&alerts, any_data);
    Assessment {
        burn_rates,
        budget_remaining,
        time_to_exhaustion,
        alerts,
        status,
    }
}

/// The share of a sustained-burn period that samples must cover for the burn to count as
/// held: a gap in the data is not "held".
pub const SUSTAINED_COVERAGE: f64 = 0.9;

/// Whether a burn rate stayed above a limit for a whole period.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Sustained {
    /// Samples cover the period and even the lowest burn rate is above the limit.
    Held { lowest_burn_rate: f64 },
    /// Samples cover the period and the burn rate dipped to or below the limit.
    NotHeld { lowest_burn_rate: f64 },
    /// Too few samples to say (`coverage` is the share of expected steps seen, if known).
    Unknown { coverage: Option<f64> },
}

/// Judges a sustained burn from the lowest error ratio over the period's steps, how many
/// steps had a sample and how many there are.
pub fn sustained(
    lowest_error_ratio: Option<f64>,
    samples: Option<f64>,
    expected_steps: u64,
    budget: ErrorBudget,
    limit: f64,
) -> Sustained {
    let coverage = samples
        .filter(|n| n.is_finite())
        .map(|n| n / expected_steps.max(1) as f64);
    match (finite(lowest_error_ratio), coverage) {
        (Some(lowest), Some(coverage)) if coverage >= SUSTAINED_COVERAGE => {
            let lowest_burn_rate = burn_rate(lowest, budget);
            if lowest_burn_rate > limit {
                Sustained::Held { lowest_burn_rate }
            } else {
                Sustained::NotHeld { lowest_burn_rate }
            }
        }
        _ => Sustained::Unknown { coverage },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::policy::Objective;
    use crate::domain::windows::{GOOGLE, resolve};
    use proptest::prelude::*;

    const HOUR: Window = Window::from_secs(3_600);
    const THIRTY_DAYS: Window = Window::from_secs(30 * 86_400);

    fn budget(percent: f64) -> ErrorBudget {
        Objective::from_percent(percent).unwrap().error_budget()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9 * a.abs().max(b.abs()).max(1.0)
    }

    #[test]
    fn error_ratio_table() {
        // (name, bad, total, min_events, expected)
        type Case = (&'static str, Option<f64>, Option<f64>, u64, Option<f64>);
        let cases: [Case; 9] = [
            (
                "one percent of traffic fails",
                Some(1.0),
                Some(100.0),
                0,
                Some(0.01),
            ),
            (
                "no error series with traffic is zero errors",
                None,
                Some(100.0),
                0,
                Some(0.0),
            ),
            ("no traffic series is no data", Some(1.0), None, 0, None),
            (
                "zero traffic is no data, not zero errors",
                Some(0.0),
                Some(0.0),
                0,
                None,
            ),
            ("NaN traffic is no data", Some(0.0), Some(f64::NAN), 0, None),
            ("NaN errors is no data", Some(f64::NAN), Some(1.0), 0, None),
            // 0.01 req/s over an hour is 36 events.
            (
                "fewer events than minEvents is no data",
                Some(0.01),
                Some(0.01),
                37,
                None,
            ),
            (
                "exactly minEvents events counts",
                Some(0.01),
                Some(0.01),
                36,
                Some(1.0),
            ),
            (
                "every request failing is a ratio of one",
                Some(5.0),
                Some(5.0),
                0,
                Some(1.0),
            ),
        ];
        for (name, bad, total, min_events, expected) in cases {
            let got = error_ratio(bad, total, HOUR, min_events);
            match (got, expected) {
                (Some(g), Some(e)) => assert!(close(g, e), "{name}: {g} != {e}"),
                (g, e) => assert_eq!(g, e, "{name}"),
            }
        }
    }

    #[test]
    fn burning_exactly_the_budget_is_a_burn_rate_of_one() {
        assert!(close(burn_rate(0.001, budget(99.9)), 1.0));
        assert!(close(burn_rate(0.0144, budget(99.9)), 14.4));
    }

    #[test]
    fn budget_remaining_table() {
        let b = budget(99.9);
        assert!(close(budget_remaining(0.0, b), 1.0));
        assert!(close(budget_remaining(0.00055, b), 0.45));
        assert!(close(budget_remaining(0.001, b), 0.0));
        assert!(close(budget_remaining(0.002, b), -1.0));
    }

    #[test]
    fn time_to_exhaustion_table() {
        // Half the budget left, burning 14.4x: 0.5 * 30d / 14.4 = 25h.
        let t = time_to_exhaustion(0.5, THIRTY_DAYS, 14.4).unwrap();
        assert!(close(t, 25.0 * 3_600.0), "{t}");
        assert_eq!(time_to_exhaustion(0.5, THIRTY_DAYS, 0.0), None);
        assert_eq!(time_to_exhaustion(-0.2, THIRTY_DAYS, 3.0), Some(0.0));
    }

    fn google_30d() -> Vec<AlertWindow> {
        resolve(&GOOGLE, THIRTY_DAYS)
    }

    #[test]
    fn fast_burn_over_14_4x_in_both_windows_pages() {
        let rows = google_30d();
        let states = alert_states(&rows, budget(99.9), |_| Some(0.02));
        assert!(states[0].firing());
        assert_eq!(status(&states, true), Status::Page);
    }

    #[test]
    fn fast_burn_in_the_long_window_only_does_not_page() {
        let rows = google_30d();
        let states = alert_states(&rows, budget(99.9), |w| {
            if w == Window::from_secs(300) {
                Some(0.0)
            } else {
                Some(0.02)
            }
        });
        assert_eq!(states[0].verdict, PairVerdict::Quiet);
        // The 6h/30m page row still sees 2% over both of its windows.
        assert!(states[1].firing());
    }

    #[test]
    fn slow_burn_between_1x_and_3x_opens_a_ticket() {
        let rows = google_30d();
        // 0.2% errors = burn rate 2: only the 3d/6h row (threshold 1) fires.
        let states = alert_states(&rows, budget(99.9), |_| Some(0.002));
        let firing: Vec<_> = states.iter().filter(|s| s.firing()).collect();
        assert_eq!(firing.len(), 1);
        assert_eq!(firing[0].window.long, Window::from_secs(3 * 86_400));
        assert_eq!(status(&states, true), Status::Ticket);
    }

    #[test]
    fn a_no_data_side_never_fires_even_when_the_other_burns() {
        let rows = google_30d();
        let states = alert_states(&rows, budget(99.9), |w| {
            if w == Window::from_secs(300) {
                None
            } else {
                Some(1.0)
            }
        });
        assert_eq!(states[0].verdict, PairVerdict::NoData);
    }

    #[test]
    fn no_window_with_data_is_no_data_not_ok() {
        let rows = google_30d();
        let states = alert_states(&rows, budget(99.9), |_| None);
        assert_eq!(status(&states, false), Status::NoData);
    }

    #[test]
    fn impossible_ratios_are_errors_and_extrapolation_noise_is_clamped() {
        assert_eq!(checked_ratio(0.25), Ok(0.25));
        assert_eq!(checked_ratio(1.005), Ok(1.0));
        assert_eq!(checked_ratio(-0.001), Ok(0.0));
        assert_eq!(checked_ratio(5.0), Err(ImpossibleRatio::AboveOne(5.0)));
        assert_eq!(checked_ratio(-0.5), Err(ImpossibleRatio::Negative(-0.5)));
        assert!(
            checked_ratio(3.0)
                .unwrap_err()
                .to_string()
                .contains("errors exceed total")
        );
    }

    #[test]
    fn a_sustained_burn_holds_only_over_a_period_the_samples_cover() {
        let b = budget(99.9);
        // 72h at 5m steps = 864 steps; 90% is 777.6.
        let cases = [
            (Some(0.004), Some(864.0), "held"),      // lowest burn 4 > 3.6
            (Some(0.004), Some(778.0), "held"),      // 90.04% covered
            (Some(0.004), Some(777.0), "unknown"),   // 89.9%: a gap is not "held"
            (Some(0.0035), Some(864.0), "not held"), // dipped to 3.5
            (Some(0.001), Some(864.0), "not held"),
            (None, Some(864.0), "unknown"),
            (Some(f64::NAN), Some(864.0), "unknown"),
            (Some(0.004), None, "unknown"),
        ];
        for (lowest, samples, expected) in cases {
            let verdict = sustained(lowest, samples, 864, b, 3.6);
            let kind = match verdict {
                Sustained::Held { .. } => "held",
                Sustained::NotHeld { .. } => "not held",
                Sustained::Unknown { .. } => "unknown",
            };
            assert_eq!(kind, expected, "{lowest:?} {samples:?}: {verdict:?}");
        }
    }

    #[test]
    fn quiet_needs_every_alert_row_judged_on_data() {
        let rows = google_30d();
        let short = [300, 1_800, 7_200, 21_600].map(Window::from_secs);
        // (what has data, expected status)
        type Ratios<'a> = &'a dyn Fn(Window) -> Option<f64>;
        let cases: [(Ratios, Status); 4] = [
            // The short windows are empty (a broken scrape), the long ones still remember
            // traffic: no row can be judged, so it is partial, not ok.
            (&|w| (!short.contains(&w)).then_some(0.0), Status::Partial),
            // Only the 5m window is empty: the 1h/5m page row is blind, the rest are quiet.
            (&|w| (w != short[0]).then_some(0.0), Status::Partial),
            // Every row quiet on data: ok.
            (&|_| Some(0.0), Status::Ok),
            // A blind page row does not hide a firing ticket row.
            (&|w| (w != short[0]).then_some(0.002), Status::Ticket),
        ];
        for (ratio, expected) in cases {
            let states = alert_states(&rows, budget(99.9), ratio);
            assert_eq!(status(&states, true), expected);
            assert_eq!(expected.is_decisive(), !matches!(expected, Status::Partial));
        }
        assert!(!Status::NoData.is_decisive());
    }

    #[test]
    fn exactly_at_the_threshold_does_not_fire() {
        let row = AlertWindow {
            severity: Severity::Page,
            long: HOUR,
            short: Window::from_secs(300),
            burn_rate_threshold: 10.0,
        };
        let b = budget(99.0);
        let at = 10.0 * b.ratio();
        assert_eq!(
            pair_verdict(&row, Some(at), Some(at), b),
            PairVerdict::Quiet
        );
    }

    fn assess_rolling(slo: &Slo, ratios: &BTreeMap<Window, Option<f64>>) -> Assessment {
        assess(slo, ratios, BudgetReading::rolling(slo, ratios, 0))
    }

    fn slo_99_9() -> Slo {
        let text = "apiVersion: burnguard.dev/v1\nkind: SLO\nmetadata: {name: s}\nspec:\n  service: s\n  objective: 99.9\n  indicator: {raw: {errorRatio: 'x[{{.window}}]'}}\n";
        let (loaded, problems) = crate::policies::parse_source("t.yaml", text);
        assert!(problems.is_empty(), "{problems:?}");
        loaded[0].slo.clone()
    }

    fn ratios(pairs: &[(u64, Option<f64>)]) -> BTreeMap<Window, Option<f64>> {
        pairs
            .iter()
            .map(|(s, r)| (Window::from_secs(*s), *r))
            .collect()
    }

    #[test]
    fn a_calendar_budget_spends_evenly_at_the_sustainable_rate_and_resets_with_the_period() {
        let b = budget(99.9);
        // Burning at exactly 1x, a third of the way through: two thirds left (the ideal line).
        assert!(close(
            period_budget_remaining(0.001, b, 1.0 / 3.0),
            2.0 / 3.0
        ));
        // 10x for the first tenth of the period: all of it gone, however quiet the rest.
        assert!(close(period_budget_remaining(0.01, b, 0.1), 0.0));
        // At the period's end it is the plain budget left.
        assert!(close(
            period_budget_remaining(0.0004, b, 1.0),
            budget_remaining(0.0004, b)
        ));
    }

    #[test]
    fn a_calendar_budget_that_outlasts_its_period_has_no_time_to_exhaustion() {
        let text = "apiVersion: burnguard.dev/v1\nkind: SLO\nmetadata: {name: s}\nspec:\n  service: s\n  objective: 99.9\n  window: {calendar: month, timeZone: UTC}\n  indicator: {raw: {errorRatio: 'x[{{.window}}]'}}\n";
        let (loaded, problems) = crate::policies::parse_source("t.yaml", text);
        assert!(problems.is_empty(), "{problems:?}");
        let slo = &loaded[0].slo;
        // 2026-04-11T00:00Z: ten days into a 30-day April.
        let at = 1_775_865_600;
        let reading = |period_ratio: f64| BudgetReading {
            error_ratio: Some(period_ratio),
            span: slo.budget_span(at),
            at,
        };
        // 1x so far: two thirds left. At 2x from now it runs out in 2/3 * 30d / 2 = 10 days,
        // before the period ends (20 days left).
        let r = ratios(&[(3_600, Some(0.002))]);
        let a = assess(slo, &r, reading(0.001));
        assert!(close(a.budget_remaining.unwrap(), 2.0 / 3.0));
        assert!(close(a.time_to_exhaustion.unwrap(), 10.0 * 86_400.0));
        // At 0.5x it would take 40 days: the budget resets first.
        let r = ratios(&[(3_600, Some(0.0005))]);
        assert_eq!(assess(slo, &r, reading(0.001)).time_to_exhaustion, None);
    }

    #[test]
    fn assess_a_fast_burn_with_half_the_budget_left() {
        let slo = slo_99_9();
        // 2% over the short windows, 0.15% over the long ones, 0.05% over the 30 days: half
        // the budget left, burning 20x; the 1h/5m page and the 3d/6h ticket fire.
        let r = ratios(&[
            (300, Some(0.02)),
            (1_800, Some(0.02)),
            (3_600, Some(0.02)),
            (7_200, Some(0.0015)),
            (21_600, Some(0.0015)),
            (86_400, Some(0.0015)),
            (259_200, Some(0.0015)),
            (2_592_000, Some(0.0005)),
        ]);
        let a = assess_rolling(&slo, &r);
        assert_eq!(a.status, Status::Page);
        assert!(close(a.budget_remaining.unwrap(), 0.5));
        // 0.5 * 30d / 20 = 18h.
        assert!(close(a.time_to_exhaustion.unwrap(), 18.0 * 3_600.0));
        assert!(close(
            a.burn_rates[&Window::from_secs(3_600)].unwrap(),
            20.0
        ));
        let firing: Vec<bool> = a.alerts.iter().map(|s| s.firing()).collect();
        assert_eq!(firing, vec![true, false, false, true]);
    }

    #[test]
    fn assess_without_any_data_is_no_data_with_no_numbers() {
        let slo = slo_99_9();
        let a = assess_rolling(
            &slo,
            &ratios(&[(300, None), (3_600, None), (2_592_000, None)]),
        );
        assert_eq!(a.status, Status::NoData);
        assert_eq!(a.budget_remaining, None);
        assert_eq!(a.time_to_exhaustion, None);
        assert!(a.burn_rates.values().all(Option::is_none));
    }

    #[test]
    fn an_overspent_budget_is_exhausted_even_when_the_current_window_has_no_data() {
        let slo = slo_99_9();
        let a = assess_rolling(&slo, &ratios(&[(3_600, None), (2_592_000, Some(0.002))]));
        assert_eq!(a.time_to_exhaustion, Some(0.0));
        assert!(close(a.budget_remaining.unwrap(), -1.0));
    }

    proptest! {
        #[test]
        fn burn_rate_times_budget_is_the_error_ratio(ratio in 0.0f64..1.0, objective in 50.0f64..99.999) {
            let b = budget(objective);
            prop_assert!((burn_rate(ratio, b) * b.ratio() - ratio).abs() < 1e-9);
        }

        #[test]
        fn more_errors_never_leave_more_budget(a in 0.0f64..1.0, d in 0.0f64..1.0, objective in 50.0f64..99.999) {
            let b = budget(objective);
            prop_assert!(budget_remaining(a + d, b) <= budget_remaining(a, b));
        }

        #[test]
        fn a_row_fires_only_when_both_windows_exceed_its_threshold(
            long in proptest::option::of(0.0f64..1.0),
            short in proptest::option::of(0.0f64..1.0),
            threshold in 0.1f64..50.0,
        ) {
            let b = budget(99.0);
            let row = AlertWindow { severity: Severity::Page, long: HOUR, short: Window::from_secs(300), burn_rate_threshold: threshold };
            let verdict = pair_verdict(&row, long, short, b);
            let limit = threshold * b.ratio();
            let expected = match (long, short) {
                (Some(l), Some(s)) if l > limit && s > limit => PairVerdict::Firing,
                (Some(_), Some(_)) => PairVerdict::Quiet,
                _ => PairVerdict::NoData,
            };
            prop_assert_eq!(verdict, expected);
        }

        #[test]
        fn error_ratio_is_no_data_or_a_real_number(
            bad in proptest::option::of(proptest::num::f64::ANY),
            total in proptest::option::of(proptest::num::f64::ANY),
            min_events in 0u64..1000,
        ) {
            if let Some(r) = error_ratio(bad, total, HOUR, min_events) {
                prop_assert!(r.is_finite());
            }
        }
    }
}
