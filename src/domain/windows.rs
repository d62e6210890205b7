//! The multi-window multi-burn-rate catalogue, as data, and the arithmetic that turns a row of
//! it into a burn-rate threshold for a given SLO window.
//!
//! The `google` catalogue is the Google SRE Workbook's table ("Alerting on SLOs"). It is written
//! as budget shares, not factors, so it means the same thing for any SLO window: a row fires
//! when the long window alone has spent `budget_share` of the whole period's budget. For a
//! 30-day window that reproduces the workbook's factors 14.4, 6, 3 and 1; for a 28-day window
//! it gives 13.44, 5.6, 2.8 and 0.933 (what Sloth does, with the same windows).
//!
//! Owns: the catalogue and `threshold = share * period / long`. Must not touch: I/O.

use super::policy::{AlertWindow, Severity, Window};

/// A catalogue row before it is tied to an SLO window.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CatalogueRow {
    pub severity: Severity,
    pub long: Window,
    pub short: Window,
    /// Fraction of the period's error budget spent in `long` at the threshold rate.
    pub budget_share: f64,
}

const MINUTE: u64 = 60;
const HOUR: u64 = 3_600;
const DAY: u64 = 86_400;

/// The SRE Workbook's four rows. The short window is 1/12 of the long one, so an alert stops
/// soon after the burn stops.
pub const GOOGLE: [CatalogueRow; 4] = [
    CatalogueRow {
        severity: Severity::Page,
        long: Window::from_secs(HOUR),
        short: Window::from_secs(5 * MINUTE),
        budget_share: 0.02,
    },
    CatalogueRow {
        severity: Severity::Page,
        long: Window::from_secs(6 * HOUR),
        short: Window::from_secs(30 * MINUTE),
        budget_share: 0.05,
    },
    CatalogueRow {
        severity: Severity::Ticket,
        long: Window::from_secs(DAY),
        short: Window::from_secs(2 * HOUR),
        budget_share: 0.10,
    },
    CatalogueRow {
        severity: Severity::Ticket,
        long: Window::from_secs(3 * DAY),
        short: Window::from_secs(6 * HOUR),
        budget_share: 0.10,
    },
];

/// The burn-rate threshold at which `long` alone spends `budget_share` of a `slo_window` budget.
pub fn burn_rate_threshold(budget_share: f64, slo_window: Window, long: Window) -> f64 {
    budget_share * slo_window.as_secs_f64() / long.as_secs_f64()
}

/// Ties catalogue rows to an SLO window.
pub fn resolve(rows: &[CatalogueRow], slo_window: Window) -> Vec<AlertWindow> {
    rows.iter()
        .map(|row| AlertWindow {
            severity: row.severity,
            long: row.long,
            short: row.short,
            burn_rate_threshold: burn_rate_threshold(row.budget_share, slo_window, row.long),
        })
        .collect()
}

/// The longest window the `google` catalogue reads; the SLO window may not be shorter.
pub fn google_longest_window() -> Window {
    GOOGLE
        .iter()
        .map(|row| row.long)
        .max()
        .unwrap_or(Window::from_secs(3 * DAY))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn thresholds(days: u64) -> Vec<f64> {
        resolve(&GOOGLE, Window::from_secs(days * DAY))
            .iter()
            .map(|w| w.burn_rate_threshold)
            .collect()
    }

    #[test]
    fn a_30_day_window_gets_the_workbook_factors() {
        let expected = [14.4, 6.0, 3.0, 1.0];
        for (got, want) in thresholds(30).iter().zip(expected) {
            assert!((got - want).abs() < 1e-9, "{got} != {want}");
        }
    }

    #[test]
    fn a_28_day_window_keeps_windows_and_budget_shares() {
        let expected = [13.44, 5.6, 2.8, 28.0 * 0.1 / 3.0];
        for (got, want) in thresholds(28).iter().zip(expected) {
            assert!((got - want).abs() < 1e-9, "{got} != {want}");
        }
    }

    #[test]
    fn budget_share_reads_back_from_the_threshold() {
        let window = Window::from_secs(30 * DAY);
        for (row, resolved) in GOOGLE.iter().zip(resolve(&GOOGLE, window)) {
            assert!((resolved.budget_share(window) - row.budget_share).abs() < 1e-12);
        }
    }

    #[test]
    fn short_windows_are_a_twelfth_of_long_ones() {
        for row in GOOGLE {
            assert_eq!(row.long.as_secs(), 12 * row.short.as_secs());
        }
    }
}
