//! The per-SLO part of `/metrics`, written as OpenMetrics text in pieces.
//!
//! Every series here is one Prometheus keeps in its head for as long as burnguard runs, so the
//! default ([`SloSeries::Summary`]) carries only what the dashboards and alerting read: each
//! SLO's current status, objective, budget left, time to exhaustion, alert rows and store
//! counts, about 14 series an SLO. Each window's error ratio and burn rate (16 more an SLO at
//! the default windows) are the same numbers the recording rules already record, and are
//! exported only when asked for ([`SloSeries::PerWindow`], `--metrics-per-window`), for raw
//! mode, where no rules record them.
//!
//! At 10,000 SLOs the families come to about 13 MiB of text and 140,000 samples (30 MiB and
//! 350,000 with the windows). Building them whole per scrape (a label vector per sample, then
//! one string) made each scrape the largest allocation of the process. Instead, [`SloFamilies`] holds shared
//! handles to the latest evaluations (taken in one short read of the map) and yields the text
//! a few hundred SLOs of one family at a time, so a scrape holds one piece at a time and a
//! slow scraper holds only the handles.
//!
//! The text is what prometheus-client writes for a gauge family (`# HELP`, `# TYPE`, one line
//! per sample, label values escaped, numbers as `dtoa` prints them); a family with no sample
//! is left out. The store's counts ([`StoreCounts`]) add the open incidents and freezes per SLO
//! and two store-wide families at the end; the iterator's last piece is `# EOF`.
//!
//! Owns: the per-SLO family names, their help text and their samples. Must not touch: I/O.

use std::fmt::Write as _;
use std::sync::Arc;

use crate::engine::evaluate::SloEvaluation;
use crate::ports::StoreCounts;

/// SLOs per piece of one family.
pub const PIECE: usize = 500;

/// Which per-SLO series a scrape carries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SloSeries {
    /// What the dashboards and alerting read: status, objective, budget, alert rows, counts.
    #[default]
    Summary,
    /// The summary, and each window's error ratio and burn rate.
    PerWindow,
}

/// Receives one sample: its labels besides the SLO's, and its value. Those label values are
/// written as they are: text burnguard makes itself (window notations, severities, statuses),
/// or escaped by the family before (see [`escaped`]).
type SampleSink<'a> = dyn FnMut(&[(&str, &str)], f64) + 'a;

/// One per-SLO gauge family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    ErrorRatio,
    BurnRate,
    BudgetRemaining,
    AlertFiring,
    Status,
    Objective,
    TimeToExhaustion,
    AlertThreshold,
    OpenIncidents,
    ActiveFreezes,
}

const FAMILIES: [Family; 10] = [
    Family::ErrorRatio,
    Family::BurnRate,
    Family::BudgetRemaining,
    Family::AlertFiring,
    Family::Status,
    Family::Objective,
    Family::TimeToExhaustion,
    Family::AlertThreshold,
    Family::OpenIncidents,
    Family::ActiveFreezes,
];

impl Family {
    /// Whether `series` carries this family.
    fn is_in(self, series: SloSeries) -> bool {
        match self {
            Family::ErrorRatio | Family::BurnRate => series == SloSeries::PerWindow,
            _ => true,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Family::ErrorRatio => "burnguard_slo_error_ratio",
            Family::BurnRate => "burnguard_slo_burn_rate",
            Family::BudgetRemaining => "burnguard_slo_error_budget_remaining",
            Family::AlertFiring => "burnguard_slo_alert_firing",
            Family::Status => "burnguard_slo_status",
            Family::Objective => "burnguard_slo_objective",
            Family::TimeToExhaustion => "burnguard_slo_time_to_exhaustion_seconds",
            Family::AlertThreshold => "burnguard_slo_alert_threshold",
            Family::OpenIncidents => "burnguard_slo_open_incidents",
            Family::ActiveFreezes => "burnguard_slo_active_freezes",
        }
    }

    fn help(self) -> &'static str {
        match self {
            Family::ErrorRatio => "Error ratio over the window (absent: no data)",
            Family::BurnRate => "Error-budget burn rate over the window (1 = exactly sustainable)",
            Family::BudgetRemaining => {
                "Fraction of the SLO window's error budget left (negative: overspent)"
            }
            Family::AlertFiring => {
                "1 when the alert row fires, 0 when quiet (absent when a window has no data)"
            }
            Family::Status => {
                "The SLO's current status (ok, ticket, page, no_data, partial, error) as its `status` label, value 1"
            }
            Family::Objective => {
                "The SLO's objective as a ratio (0.999); `window` is its SLO window"
            }
            Family::TimeToExhaustion => {
                "Seconds until the budget is spent at the burn rate of the shortest long alert window (absent: no data or not burning)"
            }
            Family::AlertThreshold => {
                "Burn-rate threshold of the alert row: it fires when both windows burn faster"
            }
            Family::OpenIncidents => "Unresolved incidents of the SLO in the store",
            Family::ActiveFreezes => {
                "Active deployment freezes the SLO's budget rules or playbooks made"
            }
        }
    }

    /// Calls `sample` with the extra labels and the value of each sample of `e`.
    fn samples(self, e: &SloEvaluation, counts: Option<&StoreCounts>, sample: &mut SampleSink<'_>) {
        match self {
            Family::ErrorRatio | Family::BurnRate => {
                let values = if self == Family::ErrorRatio {
                    &e.error_ratio.0
                } else {
                    &e.burn_rate.0
                };
                for (window, value) in values {
                    if let Some(v) = value {
                        sample(&[("window", &window.notation())], *v);
                    }
                }
            }
            Family::BudgetRemaining => {
                if let Some(b) = e.error_budget_remaining {
                    sample(&[], b);
                }
            }
            Family::AlertFiring | Family::AlertThreshold => {
                for alert in &e.alerts {
                    let (long, short) = (alert.long.notation(), alert.short.notation());
                    let labels = [
                        ("severity", alert.severity),
                        ("long_window", &*long),
                        ("short_window", &*short),
                    ];
                    if self == Family::AlertThreshold {
                        sample(&labels, alert.factor);
                    } else if alert.has_data {
                        sample(&labels, if alert.firing { 1.0 } else { 0.0 });
                    }
                }
            }
            Family::Status => sample(&[("status", e.status.as_str())], 1.0),
            Family::Objective => sample(&[("window", &escaped(&slo_window_label(e)))], e.objective),
            Family::TimeToExhaustion => {
                if let Some(seconds) = e.time_to_exhaustion_seconds.filter(|s| s.is_finite()) {
                    sample(&[], seconds);
                }
            }
            Family::OpenIncidents | Family::ActiveFreezes => {
                if let Some(counts) = counts {
                    let by_slo = if self == Family::OpenIncidents {
                        &counts.open_incidents
                    } else {
                        &counts.active_freezes
                    };
                    let count = by_slo.get(e.key_text().as_ref()).copied().unwrap_or(0);
                    sample(&[], count as f64);
                }
            }
        }
    }
}

/// The SLO window as a Prometheus duration (dashboards use it as a time range): a calendar
/// SLO's nominal length (30d for months, 7d for weeks).
fn slo_window_label(e: &SloEvaluation) -> std::borrow::Cow<'_, str> {
    e.budget_period
        .as_ref()
        .and_then(|p| crate::domain::calendar::CalendarPeriod::parse(p.calendar))
        .map(|p| crate::domain::policy::Window::from_secs(p.nominal_seconds()).to_string())
        .map_or(
            std::borrow::Cow::Borrowed(e.window.as_str()),
            std::borrow::Cow::Owned,
        )
}

/// The per-SLO families and the store-wide ones, as pieces of text ending with `# EOF`.
pub struct SloFamilies {
    evaluations: Vec<Arc<SloEvaluation>>,
    counts: Option<StoreCounts>,
    series: SloSeries,
    /// Index into [`FAMILIES`]; `FAMILIES.len()` for the store-wide families, one more for
    /// the end.
    family: usize,
    /// The first SLO of the next piece of `family`.
    from: usize,
    /// Whether `family`'s `# HELP` and `# TYPE` are written.
    described: bool,
    /// Bytes of the largest piece yielded so far.
    largest_piece: usize,
}

impl SloFamilies {
    pub fn new(
        evaluations: Vec<Arc<SloEvaluation>>,
        counts: Option<StoreCounts>,
        series: SloSeries,
    ) -> Self {
        Self {
            evaluations,
            counts,
            series,
            family: 0,
            from: 0,
            described: false,
            largest_piece: 0,
        }
    }

    /// The store-wide families: journaled steps by SLO, kind and status, and the outbox.
    fn store_wide(&self) -> String {
        let mut out = String::new();
        let Some(counts) = &self.counts else {
            return out;
        };
        if !counts.actions.is_empty() {
            describe(
                &mut out,
                "burnguard_actions",
                "Remediation steps in the journal by SLO, kind and status (succeeded, failed, skipped, ...)",
            );
            let mut labels = String::new();
            for ((slo, kind, status), n) in &counts.actions {
                labels.clear();
                for (key, value) in [("slo", slo), ("kind", kind), ("status", status)] {
                    push_label(&mut labels, key, value);
                }
                write_sample(&mut out, "burnguard_actions", &labels, &[], *n as f64);
            }
        }
        describe(
            &mut out,
            "burnguard_notification_outbox_pending",
            "Notification deliveries not yet delivered",
        );
        write_sample(
            &mut out,
            "burnguard_notification_outbox_pending",
            "",
            &[],
            counts.outbox_pending as f64,
        );
        out
    }
}

impl Iterator for SloFamilies {
    type Item = String;

    fn next(&mut self) -> Option<String> {
        loop {
            let Some(&family) = FAMILIES.get(self.family) else {
                return match self.family - FAMILIES.len() {
                    0 => {
                        self.family += 1;
                        let mut out = self.store_wide();
                        out.push_str("# EOF\n");
                        Some(out)
                    }
                    _ => None,
                };
            };
            if !family.is_in(self.series) {
                self.family += 1;
                continue;
            }
            let until = (self.from + PIECE).min(self.evaluations.len());
            // Sized like the largest piece so far: a piece is written without regrowing.
            let mut out = String::with_capacity(self.largest_piece);
            // The SLO's own labels, escaped once for all its samples in this family.
            let mut labels = String::new();
            for e in &self.evaluations[self.from..until] {
                labels.clear();
                push_label(&mut labels, "slo", &e.name);
                push_label(&mut labels, "service", &e.service);
                for (key, value) in &e.group {
                    push_label(&mut labels, key, value);
                }
                family.samples(e, self.counts.as_ref(), &mut |extra, value| {
                    if !self.described {
                        describe(&mut out, family.name(), family.help());
                        self.described = true;
                    }
                    write_sample(&mut out, family.name(), &labels, extra, value);
                });
            }
            self.largest_piece = self.largest_piece.max(out.len());
            if until >= self.evaluations.len() {
                (self.family, self.from, self.described) = (self.family + 1, 0, false);
            } else {
                self.from = until;
            }
            if !out.is_empty() {
                return Some(out);
            }
        }
    }
}

fn describe(out: &mut String, name: &str, help: &str) {
    let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n");
}

/// One sample line: `name{labels,extra} value`, where `labels` is already written as
/// `key="value"` pairs separated by commas (see [`push_label`]), and may be empty, and the
/// `extra` values need no escaping (a scrape writes hundreds of thousands of them: window
/// notations and burnguard's own words; anything else goes through [`escaped`] first).
fn write_sample(out: &mut String, name: &str, labels: &str, extra: &[(&str, &str)], value: f64) {
    out.push_str(name);
    if !labels.is_empty() || !extra.is_empty() {
        out.push('{');
        out.push_str(labels);
        let mut first = labels.is_empty();
        for (key, label_value) in extra {
            if !first {
                out.push(',');
            }
            first = false;
            debug_assert!(is_escaped(label_value), "{key}={label_value:?}");
            out.push_str(key);
            out.push_str("=\"");
            out.push_str(label_value);
            out.push('"');
        }
        out.push('}');
    }
    out.push(' ');
    out.push_str(dtoa::Buffer::new().format(value));
    out.push('\n');
}

/// Appends `key="value"` to a label list, with a comma before it unless it is the first.
fn push_label(labels: &mut String, key: &str, value: &str) {
    if !labels.is_empty() {
        labels.push(',');
    }
    labels.push_str(key);
    labels.push_str("=\"");
    push_escaped(labels, value);
    labels.push('"');
}

/// Whether a label value holds a `\`, `"` or newline (each SLO's name and service are
/// checked once per family on every scrape: a vectorised search).
fn needs_escaping(value: &str) -> bool {
    memchr::memchr3(b'\\', b'"', b'\n', value.as_bytes()).is_some()
}

/// Whether a label value can be written between quotes as it is: no newline, every `"` and
/// `\` escaped by a `\`.
fn is_escaped(value: &str) -> bool {
    let mut bytes = value.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'\\' if matches!(bytes.next(), Some(b'\\' | b'"' | b'n')) => {}
            b'\\' | b'"' | b'\n' => return false,
            _ => {}
        }
    }
    true
}

/// A label value escaped, borrowed when it needs nothing.
fn escaped(value: &str) -> std::borrow::Cow<'_, str> {
    if !needs_escaping(value) {
        return std::borrow::Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len() + 2);
    push_escaped(&mut out, value);
    std::borrow::Cow::Owned(out)
}

/// A label value with `\`, `"` and newlines escaped.
fn push_escaped(out: &mut String, value: &str) {
    if !needs_escaping(value) {
        out.push_str(value);
        return;
    }
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::burn::Status;
    use crate::engine::evaluate::EvalStatus;

    #[test]
    fn a_sample_line_escapes_label_values_and_prints_numbers_as_prometheus_client_does() {
        let mut out = String::new();
        let mut labels = String::new();
        push_label(&mut labels, "slo", "a\"b\\c\nd");
        write_sample(&mut out, "m", &labels, &[("window", "5m")], 0.05);
        write_sample(&mut out, "n", "", &[], 1.0);
        write_sample(&mut out, "o", "", &[("window", "1h")], 2.0);
        assert_eq!(
            out,
            "m{slo=\"a\\\"b\\\\c\\nd\",window=\"5m\"} 0.05\nn 1.0\no{window=\"1h\"} 2.0\n"
        );
    }

    /// Every one of `lines` is a whole line of `text`.
    fn assert_has_lines(text: &str, lines: &[&str]) {
        for line in lines {
            assert!(
                text.lines().any(|l| l == *line),
                "{line} missing from:\n{text}"
            );
        }
    }

    #[test]
    fn an_slo_window_as_the_policy_wrote_it_is_escaped_and_store_counts_are_found_by_key() {
        let mut odd = evaluation("odd", "s", &[("route", "/pay")], Status::Ok);
        odd.window = "30\"d".into();
        let counts = StoreCounts {
            open_incidents: [(odd.key(), 2)].into_iter().collect(),
            ..StoreCounts::default()
        };
        let text: String =
            SloFamilies::new(vec![Arc::new(odd)], Some(counts), SloSeries::Summary).collect();
        assert_has_lines(
            &text,
            &[
                "burnguard_slo_objective{slo=\"odd\",service=\"s\",route=\"/pay\",window=\"30\\\"d\"} 0.999",
                "burnguard_slo_open_incidents{slo=\"odd\",service=\"s\",route=\"/pay\"} 2.0",
                "burnguard_slo_active_freezes{slo=\"odd\",service=\"s\",route=\"/pay\"} 0.0",
            ],
        );
    }

    #[test]
    fn escaped_label_values_are_told_from_raw_ones() {
        for raw in ["5m", "", "a\"b", "a\\b", "a\nb", "x\\", "\\q"] {
            assert!(is_escaped(&escaped(raw)), "{raw:?}");
        }
        for raw in ["a\"b", "a\nb", "x\\", "\\q"] {
            assert!(!is_escaped(raw), "{raw:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_label_value_is_escaped_exactly_when_it_holds_a_backslash_quote_or_newline(
            value in "[a-z\\\\\"\n\u{e9}]{0,24}"
        ) {
            let has = value.chars().any(|c| matches!(c, '\\' | '"' | '\n'));
            proptest::prop_assert_eq!(needs_escaping(&value), has);
            let written = escaped(&value);
            proptest::prop_assert!(is_escaped(&written));
            proptest::prop_assert_eq!(has, written != value);
            // Read back as Prometheus reads a quoted label value.
            let mut read_back = String::new();
            let mut chars = written.chars();
            while let Some(c) = chars.next() {
                read_back.push(match (c, c == '\\') {
                    (_, true) => match chars.next() {
                        Some('n') => '\n',
                        Some(other) => other,
                        None => '\\',
                    },
                    (c, false) => c,
                });
            }
            proptest::prop_assert_eq!(read_back, value);
        }
    }

    #[test]
    fn nothing_loaded_is_the_end_marker_alone() {
        let pieces: Vec<String> =
            SloFamilies::new(Vec::new(), None, SloSeries::PerWindow).collect();
        assert_eq!(pieces, vec!["# EOF\n".to_string()]);
    }

    fn evaluation(
        name: &str,
        service: &str,
        group: &[(&str, &str)],
        status: Status,
    ) -> SloEvaluation {
        use crate::engine::evaluate::WindowValues;
        let five_minutes = crate::domain::policy::Window::from_secs(300);
        SloEvaluation {
            name: name.into(),
            group: group
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            service: service.into(),
            objective: 0.999,
            window: "30d".into(),
            status: EvalStatus::Assessed(status),
            source: None,
            error_ratio: WindowValues(vec![(five_minutes, Some(0.002))]),
            burn_rate: WindowValues(vec![(five_minutes, Some(2.0))]),
            error_budget_remaining: None,
            time_to_exhaustion_seconds: None,
            budget_period: None,
            alerts: Vec::new(),
            error: None,
        }
    }

    fn two_slos() -> Vec<Arc<SloEvaluation>> {
        vec![
            Arc::new(evaluation("a", "s", &[("route", "/p\"ay")], Status::Page)),
            Arc::new(evaluation("b", "t", &[], Status::Ok)),
        ]
    }

    fn sample_lines(text: &str) -> Vec<&str> {
        text.lines().filter(|l| !l.starts_with('#')).collect()
    }

    #[test]
    fn each_slo_s_samples_carry_its_own_labels_and_group_before_the_family_s() {
        let text: String = SloFamilies::new(two_slos(), None, SloSeries::PerWindow).collect();
        assert_has_lines(
            &text,
            &[
                "burnguard_slo_error_ratio{slo=\"a\",service=\"s\",route=\"/p\\\"ay\",window=\"5m\"} 0.002",
                "burnguard_slo_error_ratio{slo=\"b\",service=\"t\",window=\"5m\"} 0.002",
                "burnguard_slo_burn_rate{slo=\"b\",service=\"t\",window=\"5m\"} 2.0",
                "burnguard_slo_status{slo=\"a\",service=\"s\",route=\"/p\\\"ay\",status=\"page\"} 1.0",
                "burnguard_slo_status{slo=\"b\",service=\"t\",status=\"ok\"} 1.0",
                "burnguard_slo_objective{slo=\"b\",service=\"t\",window=\"30d\"} 0.999",
            ],
        );
        // Every sample line of the two SLOs: a ratio, a burn rate, a status, an objective each.
        assert_eq!(sample_lines(&text).len(), 8, "{text}");
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn the_summary_leaves_out_the_per_window_families_and_nothing_else() {
        let per_window: String = SloFamilies::new(two_slos(), None, SloSeries::PerWindow).collect();
        let summary: String = SloFamilies::new(two_slos(), None, SloSeries::Summary).collect();
        let windowed = |l: &&str| {
            l.starts_with("burnguard_slo_error_ratio") || l.starts_with("burnguard_slo_burn_rate")
        };
        let expected: Vec<&str> = sample_lines(&per_window)
            .into_iter()
            .filter(|l| !windowed(l))
            .collect();
        assert_eq!(sample_lines(&summary), expected);
        assert_eq!(expected.len(), 4, "{summary}");
        assert!(
            !summary.contains("# HELP burnguard_slo_error_ratio"),
            "{summary}"
        );
        assert!(
            !summary.contains("# HELP burnguard_slo_burn_rate"),
            "{summary}"
        );
        assert!(summary.ends_with("# EOF\n"));
    }

    #[test]
    fn ten_thousand_slos_export_one_status_each_and_windows_only_when_asked() {
        let n = 10_000;
        let evaluations: Vec<Arc<SloEvaluation>> = (0..n)
            .map(|i| Arc::new(evaluation(&format!("slo-{i}"), "s", &[], Status::Ok)))
            .collect();
        let count = |text: &str, family: &str| {
            let prefix = format!("{family}{{");
            text.lines().filter(|l| l.starts_with(&prefix)).count()
        };
        let summary: String =
            SloFamilies::new(evaluations.clone(), None, SloSeries::Summary).collect();
        let statuses: std::collections::BTreeSet<&str> = summary
            .lines()
            .filter(|l| l.starts_with("burnguard_slo_status{"))
            .collect();
        assert_eq!(statuses.len(), n);
        assert_eq!(count(&summary, "burnguard_slo_status"), n);
        assert_eq!(count(&summary, "burnguard_slo_objective"), n);
        assert_eq!(count(&summary, "burnguard_slo_error_ratio"), 0);
        assert_eq!(count(&summary, "burnguard_slo_burn_rate"), 0);
        let per_window: String =
            SloFamilies::new(evaluations, None, SloSeries::PerWindow).collect();
        assert_eq!(count(&per_window, "burnguard_slo_error_ratio"), n);
        assert_eq!(count(&per_window, "burnguard_slo_burn_rate"), n);
        assert_eq!(count(&per_window, "burnguard_slo_status"), n);
    }

    #[test]
    fn an_slo_has_one_status_sample_its_current_one() {
        for (status, word) in [
            (EvalStatus::Assessed(Status::Ok), "ok"),
            (EvalStatus::Assessed(Status::Ticket), "ticket"),
            (EvalStatus::Assessed(Status::Page), "page"),
            (EvalStatus::Assessed(Status::NoData), "no_data"),
            (EvalStatus::Assessed(Status::Partial), "partial"),
            (EvalStatus::Error, "error"),
        ] {
            let mut e = evaluation("a", "s", &[], Status::Ok);
            e.status = status;
            let text: String =
                SloFamilies::new(vec![Arc::new(e)], None, SloSeries::Summary).collect();
            let statuses: Vec<&str> = sample_lines(&text)
                .into_iter()
                .filter(|l| l.starts_with("burnguard_slo_status"))
                .collect();
            assert_eq!(
                statuses,
                [format!(
                    "burnguard_slo_status{{slo=\"a\",service=\"s\",status=\"{word}\"}} 1.0"
                )],
            );
        }
    }
}
