//! Validated SLO policy types: what the rest of burnguard works with once a spec has passed
//! validation. Every value here is known to be in range, so downstream code never re-checks it.
//!
//! Owns: [`Slo`], [`Objective`], [`ErrorBudget`], [`Window`], [`Indicator`], [`AlertWindow`].
//! Must not touch: YAML, files, the clock or the network.

use std::collections::BTreeMap;
use std::fmt;

use super::calendar::{CalendarWindow, Period};

/// Placeholder that SLI query templates carry where the window goes (Sloth's convention).
pub const WINDOW_PLACEHOLDER: &str = "{{.window}}";

/// A duration in Prometheus notation (`5m`, `1h30m`, `30d`), whole seconds, never zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Window {
    seconds: u64,
}

/// Why a window string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    #[error("is empty; expected a duration such as 5m, 1h or 30d")]
    Empty,
    #[error(
        "`{0}` is not a duration; expected whole numbers with units s, m, h, d or w, largest first (5m, 1h30m, 30d)"
    )]
    Malformed(String),
    #[error("`{0}` is zero; a window must be longer than that")]
    Zero(String),
}

const UNITS: [(char, u64); 5] = [
    ('w', 7 * 86_400),
    ('d', 86_400),
    ('h', 3_600),
    ('m', 60),
    ('s', 1),
];

impl Window {
    /// A window of `seconds` seconds. Panics on zero: only for constants and tests.
    pub const fn from_secs(seconds: u64) -> Self {
        assert!(seconds > 0, "a window is never empty");
        Self { seconds }
    }

    /// Parses Prometheus duration notation. Units must appear largest first and at most once,
    /// which is what Prometheus itself accepts (`1h30m` yes, `30m1h` no). Milliseconds and
    /// years are refused: SLO windows are neither.
    pub fn parse(text: &str) -> Result<Self, WindowError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(WindowError::Empty);
        }
        let malformed = || WindowError::Malformed(text.to_string());
        let mut seconds: u64 = 0;
        let mut digits = String::new();
        let mut last_unit_index: Option<usize> = None;
        for c in text.chars() {
            if c.is_ascii_digit() {
                digits.push(c);
                continue;
            }
            let unit_index = UNITS
                .iter()
                .position(|(u, _)| *u == c)
                .ok_or_else(malformed)?;
            if digits.is_empty() || last_unit_index.is_some_and(|last| unit_index <= last) {
                return Err(malformed());
            }
            let count: u64 = digits.parse().map_err(|_| malformed())?;
            seconds = count
                .checked_mul(UNITS[unit_index].1)
                .and_then(|s| seconds.checked_add(s))
                .ok_or_else(malformed)?;
            digits.clear();
            last_unit_index = Some(unit_index);
        }
        if !digits.is_empty() || last_unit_index.is_none() {
            return Err(malformed());
        }
        if seconds == 0 {
            return Err(WindowError::Zero(text.to_string()));
        }
        Ok(Self { seconds })
    }

    pub const fn as_secs(self) -> u64 {
        self.seconds
    }

    pub fn as_secs_f64(self) -> f64 {
        self.seconds as f64
    }
}

impl fmt::Display for Window {
    /// Canonical Prometheus notation, largest units first: 5400 s is `1h30m`, 30 days is `30d`
    /// (weeks are not used on output so `28d` stays `28d`, as people write it).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.notation())
    }
}

impl Window {
    /// The window in Prometheus notation without allocating or going through `core::fmt`:
    /// for code that prints many (every SLO's windows, twice, on each `/metrics` scrape).
    pub fn notation(self) -> WindowNotation {
        let mut text = WindowNotation {
            bytes: [0; WindowNotation::CAPACITY],
            len: 0,
        };
        let mut rest = self.seconds;
        for (unit, size) in UNITS.iter().skip(1) {
            if rest >= *size {
                text.push_number(rest / size);
                text.push(*unit as u8);
                rest %= size;
            }
        }
        text
    }
}

impl serde::Serialize for Window {
    /// As its notation (`1h30m`).
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.notation())
    }
}

/// A window's notation on the stack (see [`Window::notation`]).
#[derive(Clone, Copy)]
pub struct WindowNotation {
    bytes: [u8; Self::CAPACITY],
    len: usize,
}

impl WindowNotation {
    /// The longest notation, of `u64::MAX` seconds, is 21 characters.
    const CAPACITY: usize = 32;

    /// Appends an ASCII byte (a unit letter).
    fn push(&mut self, byte: u8) {
        self.bytes[self.len] = byte;
        self.len += 1;
    }

    /// Appends `n` in decimal.
    fn push_number(&mut self, mut n: u64) {
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        loop {
            at -= 1;
            digits[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        let count = digits.len() - at;
        self.bytes[self.len..self.len + count].copy_from_slice(&digits[at..]);
        self.len += count;
    }
}

impl std::ops::Deref for WindowNotation {
    type Target = str;
    fn deref(&self) -> &str {
        // Only whole `str`s are ever written.
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or_default()
    }
}

/// The SLO target as a fraction of good events, strictly between 0 and 1 (99.9% is 0.999).
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
pub struct Objective(f64);

impl Objective {
    /// From a percentage as people write it in policies (`99.9`). `None` outside (0, 100).
    pub fn from_percent(percent: f64) -> Option<Self> {
        (percent.is_finite() && percent > 0.0 && percent < 100.0).then(|| Self(percent / 100.0))
    }

    /// From a fraction (`0.999`), as OpenSLO's `target` writes it. Goes through the percent
    /// so that every objective is `from_percent` of some number, which is what lets writers
    /// print a percent that reads back to exactly this objective.
    pub fn from_ratio(ratio: f64) -> Option<Self> {
        Self::from_percent(ratio * 100.0)
    }

    /// The shortest percent that reads back (through [`Objective::from_percent`]) to exactly
    /// this objective: `99.9`, not `99.90000000000001`.
    pub fn percent_text(self) -> String {
        let nearest = self.percent();
        let mut candidates = vec![
            crate::domain::sli::promql_number(nearest),
            format!("{nearest}"),
        ];
        // `percent()` may be an ulp or two off the number the objective came from.
        let (mut up, mut down) = (nearest, nearest);
        for _ in 0..4 {
            up = up.next_up();
            down = down.next_down();
            candidates.push(format!("{up}"));
            candidates.push(format!("{down}"));
        }
        candidates
            .into_iter()
            .find(|text| {
                text.parse::<f64>()
                    .ok()
                    .and_then(Self::from_percent)
                    .is_some_and(|o| o == self)
            })
            .unwrap_or_else(|| format!("{nearest}"))
    }

    pub fn ratio(self) -> f64 {
        self.0
    }

    pub fn percent(self) -> f64 {
        self.0 * 100.0
    }

    /// The share of events allowed to fail: `1 - objective`.
    pub fn error_budget(self) -> ErrorBudget {
        ErrorBudget(1.0 - self.0)
    }
}

/// The error budget as a fraction of events (0.001 for a 99.9% objective). Always in (0, 1).
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
pub struct ErrorBudget(f64);

impl ErrorBudget {
    pub fn ratio(self) -> f64 {
        self.0
    }
}

/// Alert severities, in the SRE-workbook sense: a page wakes someone now, a ticket is for
/// the next working hours.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Ticket,
    Page,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Page => "page",
            Severity::Ticket => "ticket",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One row of a multi-window multi-burn-rate alert: it fires when both the long and the short
/// window burn faster than `burn_rate_threshold` times the sustainable rate.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertWindow {
    pub severity: Severity,
    pub long: Window,
    pub short: Window,
    /// How many times faster than sustainable the budget must burn for this row to fire.
    pub burn_rate_threshold: f64,
}

impl AlertWindow {
    /// The share of the whole SLO-period budget that is gone when this row fires after
    /// burning at exactly its threshold for the whole long window.
    pub fn budget_share(&self, slo_window: Window) -> f64 {
        self.burn_rate_threshold * self.long.as_secs_f64() / slo_window.as_secs_f64()
    }
}

/// A PromQL expression with `{{.window}}` where the range goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryTemplate(String);

impl QueryTemplate {
    /// Wraps a template that validation has already checked.
    pub fn new(template: impl Into<String>) -> Self {
        Self(template.into())
    }

    pub fn template(&self) -> &str {
        &self.0
    }

    /// The expression for one window: `{{.window}}` replaced by its Prometheus notation.
    pub fn render(&self, window: Window) -> String {
        self.0.replace(WINDOW_PLACEHOLDER, &window.to_string())
    }
}

/// How bad events are counted for a ratio indicator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BadEvents {
    /// A query for the rate of failed events.
    Errors(QueryTemplate),
    /// A query for the rate of good events; bad = total - good.
    Good(QueryTemplate),
}

/// The service level indicator: what counts as an error.
#[derive(Clone, Debug, PartialEq)]
pub enum Indicator {
    /// Event counts: failed (or good) events over all events.
    Ratio {
        bad: BadEvents,
        total: QueryTemplate,
    },
    /// A classic Prometheus histogram: events slower than `threshold` seconds are errors.
    Latency {
        /// Base metric name; `_bucket` and `_count` are appended.
        histogram: String,
        /// Label matchers without braces (`job="search"`), possibly empty.
        matchers: String,
        /// Seconds; an existing `le` bucket boundary.
        threshold: f64,
    },
    /// A query that returns the error ratio itself.
    Raw { error_ratio: QueryTemplate },
}

impl Indicator {
    pub fn kind(&self) -> &'static str {
        match self {
            Indicator::Ratio { .. } => "ratio",
            Indicator::Latency { .. } => "latency",
            Indicator::Raw { .. } => "raw",
        }
    }
}

/// Alerting settings of one SLO, with the alert windows resolved to numbers.
#[derive(Clone, Debug, PartialEq)]
pub struct Alerting {
    pub name: String,
    /// May be empty: an SLO whose alerts are switched off still records its series.
    pub windows: Vec<AlertWindow>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// Extra labels and annotations for the page rows only.
    pub page: AlertRoute,
    /// Extra labels and annotations for the ticket rows only.
    pub ticket: AlertRoute,
}

impl Alerting {
    /// The labels and annotations of one severity's rows.
    pub fn route(&self, severity: Severity) -> &AlertRoute {
        match severity {
            Severity::Page => &self.page,
            Severity::Ticket => &self.ticket,
        }
    }
}

/// Labels and annotations added to the alerts of one severity, after the SLO's own; its
/// `severity` label, when set, replaces burnguard's (so existing routes on `critical` or
/// `warning` keep working).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AlertRoute {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

/// An SLO's `metadata.labels`, sorted by name, each name once. A sorted slice rather than a
/// map: an SLO carries a few labels at most, and a map's first node takes about 540 bytes
/// however few it holds, 54 MB at 100,000 SLOs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SloLabels(Box<[(String, String)]>);

impl SloLabels {
    /// The value of label `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .binary_search_by(|(key, _)| key.as_str().cmp(name))
            .ok()
            .map(|at| self.0[at].1.as_str())
    }

    /// Each label's name and value, by name.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The labels as a map, for code that adds to them.
    pub fn to_map(&self) -> BTreeMap<String, String> {
        self.0.iter().cloned().collect()
    }
}

impl From<BTreeMap<String, String>> for SloLabels {
    fn from(labels: BTreeMap<String, String>) -> Self {
        Self(labels.into_iter().collect())
    }
}

impl FromIterator<(String, String)> for SloLabels {
    /// Sorted by name; of a name given twice, the last value.
    fn from_iter<I: IntoIterator<Item = (String, String)>>(labels: I) -> Self {
        labels.into_iter().collect::<BTreeMap<_, _>>().into()
    }
}

impl serde::Serialize for SloLabels {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

/// A validated service level objective.
#[derive(Clone, Debug, PartialEq)]
pub struct Slo {
    pub name: String,
    pub service: String,
    pub description: String,
    pub labels: SloLabels,
    pub objective: Objective,
    /// The rolling period the objective and the error budget are measured over; for a
    /// calendar SLO, the period's nominal length (7d or 30d), which sizes the alert rows.
    pub window: Window,
    /// When set, the budget is counted per calendar week or month in a time zone and resets
    /// at each period's start; alert rows stay rolling.
    pub calendar: Option<CalendarWindow>,
    pub indicator: Indicator,
    /// A window with fewer events than this has no data (never alerts); 0 means any traffic counts.
    pub min_events: u64,
    /// Cron expression (seconds first, `0 */5 * * * *`) when this SLO is evaluated on its own
    /// schedule instead of the service's interval. Validated.
    pub schedule: Option<String>,
    /// Nothing may fire for this long before the SLO's open incident resolves.
    pub resolve_after: Window,
    /// When to run playbooks or freeze deployments for this SLO.
    pub budget_policy: Vec<crate::domain::playbook::BudgetRule>,
    pub alerting: Alerting,
    /// Label names that split the SLO into one objective per value combination (a grouped
    /// SLO); empty for one objective. Every query answers one series per group.
    pub group_by: Vec<String>,
    /// The most groups an evaluation accepts; more is an error for the whole SLO.
    pub max_groups: usize,
}

impl Slo {
    pub fn error_budget(&self) -> ErrorBudget {
        self.objective.error_budget()
    }

    /// Every rolling window burnguard reads for this SLO, shortest first: both sides of each
    /// alert row, the SLO window itself (not for calendar SLOs, whose budget is read over the
    /// period so far), and the 5m base that long windows are derived from.
    pub fn windows(&self) -> smallvec::SmallVec<[Window; 10]> {
        let budget_window = self.calendar.is_none().then_some(self.window);
        // Inline up to 10: four alert rows, the budget window and the base, read every
        // cycle for every SLO, without an allocation.
        let mut windows: smallvec::SmallVec<[Window; 10]> = self
            .alerting
            .windows
            .iter()
            .flat_map(|w| [w.long, w.short])
            .chain(budget_window)
            .chain([BASE_WINDOW])
            .collect();
        windows.sort_unstable();
        windows.dedup();
        windows
    }

    /// The budget window as people read it: `30d`, or `month in Europe/Berlin`.
    pub fn window_name(&self) -> String {
        match &self.calendar {
            None => self.window.to_string(),
            Some(c) => format!("{} in {}", c.period.as_str(), c.zone_name),
        }
    }

    /// What the error budget is counted over at `at`: the rolling window, or the part of the
    /// calendar period that has passed.
    pub fn budget_span(&self, at: i64) -> BudgetSpan {
        match &self.calendar {
            None => BudgetSpan {
                range: Some(self.window),
                elapsed_share: 1.0,
                length_seconds: self.window.as_secs_f64(),
                period: None,
            },
            Some(calendar) => match calendar.period_at(at) {
                Ok(period) => {
                    let elapsed = period.elapsed(at);
                    // Under 5 minutes into a period there is too little to read: unknown,
                    // not "untouched".
                    let range = u64::try_from(elapsed)
                        .ok()
                        .filter(|e| *e >= BASE_WINDOW.as_secs())
                        .map(Window::from_secs);
                    BudgetSpan {
                        range,
                        elapsed_share: elapsed as f64 / period.length() as f64,
                        length_seconds: period.length() as f64,
                        period: Some(period),
                    }
                }
                Err(_) => BudgetSpan {
                    range: None,
                    elapsed_share: 1.0,
                    length_seconds: self.window.as_secs_f64(),
                    period: None,
                },
            },
        }
    }
}

/// The stretch of time an SLO's error budget is counted over at one instant.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BudgetSpan {
    /// The range to read the error ratio over; `None` when it cannot be read yet (the first
    /// minutes of a calendar period).
    pub range: Option<Window>,
    /// How much of the budget's period has passed: 1 for rolling windows.
    pub elapsed_share: f64,
    /// The length of the whole window or period, in seconds.
    pub length_seconds: f64,
    /// The calendar period, for calendar SLOs.
    pub period: Option<Period>,
}

impl BudgetSpan {
    /// Seconds until the budget resets: `None` for rolling windows, which never do.
    pub fn seconds_left(&self, at: i64) -> Option<f64> {
        self.period.map(|p| (p.end - at).max(0) as f64)
    }
}

/// What an SLO's group is known by in records, incidents and the latest state:
/// `checkout{route="/pay"}`; the SLO's name when it is not grouped.
pub fn group_key(slo: &str, group: &BTreeMap<String, String>) -> String {
    if group.is_empty() {
        return slo.to_string();
    }
    let pairs: Vec<String> = group.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{slo}{{{}}}", pairs.join(","))
}

/// Whether `key` names one group of a grouped SLO (written by [`group_key`] with labels);
/// SLO names cannot hold `{`.
pub fn is_group_key(key: &str) -> bool {
    key.contains('{')
}

/// The SLO name and label names of a key written by [`group_key`]; `None` when the text
/// is not such a key.
pub fn split_group_key(key: &str) -> Option<(&str, Vec<&str>)> {
    let Some(open) = key.find('{') else {
        return Some((key, Vec::new()));
    };
    let (name, rest) = key.split_at(open);
    let mut rest = rest.strip_prefix('{')?.strip_suffix('}')?;
    let mut labels = Vec::new();
    while !rest.is_empty() {
        let (label, after) = rest.split_once("=\"")?;
        let valid = label.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return None;
        }
        // The value is Rust-quoted: skip escaped characters up to the closing quote.
        let mut chars = after.char_indices();
        let close = loop {
            match chars.next()? {
                (_, '\\') => {
                    chars.next()?;
                }
                (i, '"') => break i,
                _ => {}
            }
        };
        labels.push(label);
        rest = &after[close + 1..];
        if !rest.is_empty() {
            rest = rest.strip_prefix(',')?;
        }
    }
    Some((name, labels))
}

/// Whether `key` (an incident's or a record's) is `slo`'s but no longer fits its shape:
/// written before `groupBy` changed, so no evaluation will ever carry it again.
pub fn is_reshaped_key(key: &str, slo: &Slo) -> bool {
    match split_group_key(key) {
        Some((name, mut labels)) if name == slo.name => {
            let mut group_by: Vec<&str> = slo.group_by.iter().map(String::as_str).collect();
            labels.sort_unstable();
            group_by.sort_unstable();
            labels != group_by
        }
        _ => false,
    }
}

/// How many groups a grouped SLO may have unless it says otherwise.
pub const DEFAULT_MAX_GROUPS: usize = 100;

/// The short window every SLO records; longer windows are averaged from it (see `rules`).
pub const BASE_WINDOW: Window = Window::from_secs(300);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn slo_labels_are_found_by_name_in_name_order_and_serialize_as_a_map() {
        let labels: SloLabels = [("tier", "1"), ("team", "payments"), ("app", "shop")]
            .into_iter()
            .chain([("tier", "2")])
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(labels.len(), 3, "a name given twice is kept once");
        assert_eq!(labels.get("tier"), Some("2"), "the last value wins");
        assert_eq!(labels.get("team"), Some("payments"));
        assert_eq!(labels.get("app"), Some("shop"));
        assert_eq!(labels.get("zone"), None);
        assert_eq!(labels.get(""), None);
        assert_eq!(
            labels.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            ["app", "team", "tier"]
        );
        assert_eq!(
            serde_json::to_string(&labels).unwrap(),
            r#"{"app":"shop","team":"payments","tier":"2"}"#
        );
        assert_eq!(SloLabels::from(labels.to_map()), labels);
        assert!(SloLabels::default().is_empty());
        assert_eq!(SloLabels::default().get("team"), None);
    }

    #[test]
    fn windows_parse_in_prometheus_notation() {
        let cases = [
            ("5m", 300),
            ("1h", 3_600),
            ("1h30m", 5_400),
            ("30d", 2_592_000),
            ("4w", 2_419_200),
            ("90s", 90),
            ("1d12h", 129_600),
        ];
        for (text, seconds) in cases {
            assert_eq!(Window::parse(text).unwrap().as_secs(), seconds, "{text}");
        }
    }

    #[test]
    fn windows_that_prometheus_would_refuse_are_refused() {
        for text in [
            "", "5", "m", "5x", "30m1h", "1h1h", "-5m", "5.5m", "1ms", "1y", "0m", "5 m",
        ] {
            assert!(Window::parse(text).is_err(), "{text:?} should be refused");
        }
    }

    #[test]
    fn windows_print_in_canonical_notation() {
        for (seconds, notation) in [
            (1, "1s"),
            (59, "59s"),
            (300, "5m"),
            (3_600, "1h"),
            (5_400, "1h30m"),
            (86_401, "1d1s"),
            (90_061, "1d1h1m1s"),
            (7 * 86_400, "7d"),
            (28 * 86_400, "28d"),
            (1_000 * 86_400 + 10 * 3_600, "1000d10h"),
            (u64::MAX, "213503982334601d7h15s"),
        ] {
            let window = Window::from_secs(seconds);
            assert_eq!(&*window.notation(), notation, "{seconds}");
            assert_eq!(window.to_string(), notation, "{seconds}");
        }
    }

    #[test]
    fn objective_must_be_strictly_between_0_and_100_percent() {
        assert!(Objective::from_percent(0.0).is_none());
        assert!(Objective::from_percent(100.0).is_none());
        assert!(Objective::from_percent(f64::NAN).is_none());
        assert!(Objective::from_percent(-1.0).is_none());
        let o = Objective::from_percent(99.9).unwrap();
        assert!((o.error_budget().ratio() - 0.001).abs() < 1e-12);
    }

    #[test]
    fn objectives_print_as_people_write_them() {
        for (percent, text) in [
            (99.9, "99.9"),
            (99.95, "99.95"),
            (99.0, "99"),
            (95.5, "95.5"),
        ] {
            assert_eq!(
                Objective::from_percent(percent).unwrap().percent_text(),
                text
            );
        }
    }

    #[test]
    fn query_templates_render_every_placeholder() {
        let q = QueryTemplate::new("a[{{.window}}] / b[{{.window}}]");
        assert_eq!(q.render(Window::from_secs(3_600)), "a[1h] / b[1h]");
    }

    proptest! {
        #[test]
        fn printed_windows_parse_back_to_the_same_duration(secs in 1u64..100_000_000) {
            let w = Window::from_secs(secs);
            prop_assert_eq!(Window::parse(&w.to_string()).unwrap(), w);
        }

        #[test]
        fn an_objective_prints_as_a_percent_that_reads_back_to_it(percent in 0.0001f64..99.9999) {
            let objective = Objective::from_percent(percent).unwrap();
            let text = objective.percent_text();
            let back = Objective::from_percent(text.parse().unwrap()).unwrap();
            prop_assert_eq!(back, objective, "{} printed as {}", percent, text);
        }

        #[test]
        fn a_fraction_objective_prints_as_a_percent_that_reads_back_to_it(ratio in 0.0001f64..0.9999) {
            let objective = Objective::from_ratio(ratio).unwrap();
            let back = Objective::from_percent(objective.percent_text().parse().unwrap()).unwrap();
            prop_assert_eq!(back, objective);
        }

        #[test]
        fn window_parsing_never_panics(text in "\\PC{0,12}") {
            let _ = Window::parse(&text);
        }
    }

    fn grouped(group_by: &[&str]) -> Slo {
        let text = format!(
            "apiVersion: burnguard.dev/v1\nkind: SLO\nmetadata: {{name: checkout}}\nspec:\n  service: s\n  objective: 99.9\n  groupBy: [{}]\n  indicator: {{raw: {{errorRatio: 'sum by ({}) (rate(x[{{{{.window}}}}]))'}}}}\n",
            group_by.join(", "),
            group_by.join(", ")
        );
        let text = if group_by.is_empty() {
            text.replace("  groupBy: []\n", "")
        } else {
            text
        };
        let (loaded, problems) = crate::policies::parse_source("t.yaml", &text);
        assert!(problems.is_empty(), "{problems:?}");
        loaded[0].slo.clone()
    }

    #[test]
    fn a_group_key_splits_back_into_its_slo_and_label_names() {
        let group = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let cases = [
            (group(&[]), vec![]),
            (group(&[("route", "/pay")]), vec!["route"]),
            (
                group(&[("route", "a\"b,c=\"d}"), ("method", "\\")]),
                vec!["method", "route"],
            ),
        ];
        for (labels, names) in cases {
            let key = group_key("checkout", &labels);
            assert_eq!(split_group_key(&key), Some(("checkout", names)), "{key}");
        }
        for malformed in [
            "checkout{",
            "checkout{route}",
            "checkout{route=\"x}",
            "checkout{1a=\"x\"}",
        ] {
            assert_eq!(split_group_key(malformed), None, "{malformed}");
        }
    }

    #[test]
    fn a_key_written_before_group_by_changed_no_longer_fits_the_slo() {
        let plain = grouped(&[]);
        let by_route = grouped(&["route"]);
        let by_route_and_method = grouped(&["route", "method"]);
        let route_key = "checkout{route=\"/pay\"}";
        let both_key = "checkout{method=\"GET\",route=\"/pay\"}";
        // (key, SLO, reshaped?)
        let cases = [
            ("checkout", &plain, false),
            ("checkout", &by_route, true),
            (route_key, &plain, true),
            (route_key, &by_route, false),
            (route_key, &by_route_and_method, true),
            (both_key, &by_route_and_method, false),
            (both_key, &by_route, true),
            // Another SLO's keys are never this one's to retire.
            ("checkout-eu", &plain, false),
            ("checkout-eu{route=\"/pay\"}", &by_route_and_method, false),
        ];
        for (key, slo, reshaped) in cases {
            assert_eq!(
                is_reshaped_key(key, slo),
                reshaped,
                "{key} against groupBy {:?}",
                slo.group_by
            );
        }
    }
}
