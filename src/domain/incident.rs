//! The incident lifecycle, as pure rules: given the open incident of an SLO (if any) and what
//! one evaluation observed, what happens to it.
//!
//! - One open incident per SLO. It opens when an alert row of the SLO fires.
//! - It escalates (ticket -> page) and never de-escalates: the worst moment is what it was.
//! - It resolves once nothing has fired for `resolve_after`, so a flapping SLO keeps one
//!   incident instead of opening ten. Only quiet time seen on data counts: after a gap, the
//!   clock starts again when the data comes back.
//! - An evaluation without data (`no_data`), with some alert row blind (`partial`) or that
//!   failed (`error`) changes no incident; the first one during an incident is noted on its
//!   timeline, and so is the data coming back, with how long it was missing.
//!
//! Owns: [`decide`] and the incident vocabulary. Must not touch: storage, the clock.

use std::fmt;

use super::policy::Severity;

/// Where an incident is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IncidentStatus {
    Open,
    Acknowledged,
    Resolved,
}

impl IncidentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentStatus::Open => "open",
            IncidentStatus::Acknowledged => "acknowledged",
            IncidentStatus::Resolved => "resolved",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "open" => Some(IncidentStatus::Open),
            "acknowledged" => Some(IncidentStatus::Acknowledged),
            "resolved" => Some(IncidentStatus::Resolved),
            _ => None,
        }
    }
}

impl fmt::Display for IncidentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the lifecycle needs to know of an SLO's open incident.
#[derive(Clone, Debug, PartialEq)]
pub struct OpenIncident {
    pub id: i64,
    pub severity: Severity,
    pub status: IncidentStatus,
    pub opened_at: i64,
    /// The last evaluation at which an alert row of the SLO fired.
    pub last_firing_at: i64,
    pub peak_burn_rate: f64,
    /// Since when the evaluations have lacked data (none while they have it).
    pub data_missing_since: Option<i64>,
    /// When data last came back after a gap: quiet time counts from here.
    pub data_back_at: Option<i64>,
}

impl OpenIncident {
    /// Whether the last evaluation during the incident had no data, was partial or failed.
    pub fn data_missing(&self) -> bool {
        self.data_missing_since.is_some()
    }

    /// Since when the incident has been seen quiet on data: the last firing, or the data
    /// coming back after a gap, whichever is later.
    pub fn quiet_since(&self) -> i64 {
        self.last_firing_at
            .max(self.data_back_at.unwrap_or(i64::MIN))
    }
}

/// What one evaluation of an SLO observed, reduced to what incidents need.
#[derive(Clone, Debug, PartialEq)]
pub enum Observation {
    /// Some alert row fires; `severity` is the worst, `burn_rate` the highest burn rate over
    /// the long windows of the firing rows.
    Firing {
        severity: Severity,
        burn_rate: f64,
        budget_remaining: Option<f64>,
    },
    /// Every alert row judged on data, and nothing fires.
    Quiet { budget_remaining: Option<f64> },
    /// No window had data.
    NoData,
    /// Nothing fires, but some alert row had no data on a side, so it could not fire.
    Partial,
    /// The evaluation failed.
    Failed { reason: String },
}

/// What to do with the SLO's incidents after one evaluation.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// Nothing to record.
    Nothing,
    Open {
        severity: Severity,
        peak_burn_rate: f64,
        budget_remaining: Option<f64>,
    },
    Escalate {
        from: Severity,
        to: Severity,
        peak_burn_rate: f64,
    },
    /// Still firing at the same severity: refresh `last_firing_at` and the peak.
    StillFiring {
        peak_burn_rate: f64,
    },
    Resolve {
        budget_remaining: Option<f64>,
    },
    /// Data went missing during the incident (first such evaluation only).
    DataMissing {
        reason: String,
    },
    /// Data came back during the incident, after `missing_for` seconds without it.
    DataBack {
        missing_for: i64,
    },
}

/// The key burnguard's pager notifications use for an incident (PagerDuty dedup key,
/// Alertmanager label), and back.
pub fn incident_dedup_key(id: i64) -> String {
    format!("burnguard-incident-{id}")
}

/// The incident a dedup key names, if it is one of ours.
pub fn incident_of_key(key: &str) -> Option<i64> {
    key.strip_prefix("burnguard-incident-")?.parse().ok()
}

/// The lifecycle rule. `now` and `resolve_after` are seconds.
pub fn decide(
    open: Option<&OpenIncident>,
    observation: &Observation,
    now: i64,
    resolve_after: u64,
) -> Decision {
    match (open, observation) {
        (
            None,
            Observation::Firing {
                severity,
                burn_rate,
                budget_remaining,
            },
        ) => Decision::Open {
            severity: *severity,
            peak_burn_rate: *burn_rate,
            budget_remaining: *budget_remaining,
        },
        (None, _) => Decision::Nothing,
        (
            Some(incident),
            Observation::Firing {
                severity,
                burn_rate,
                ..
            },
        ) => {
            let peak = incident.peak_burn_rate.max(*burn_rate);
            if *severity > incident.severity {
                Decision::Escalate {
                    from: incident.severity,
                    to: *severity,
                    peak_burn_rate: peak,
                }
            } else {
                Decision::StillFiring {
                    peak_burn_rate: peak,
                }
            }
        }
        (
            Some(incident),
            Observation::NoData | Observation::Partial | Observation::Failed { .. },
        ) => {
            if incident.data_missing() {
                Decision::Nothing
            } else {
                let reason = match observation {
                    Observation::Failed { reason } => format!("evaluation failed: {reason}"),
                    Observation::Partial => {
                        "some alert rows have no data in a window, so they cannot fire".to_string()
                    }
                    _ => "no data in any window".to_string(),
                };
                Decision::DataMissing { reason }
            }
        }
        (Some(incident), Observation::Quiet { budget_remaining }) => {
            if let Some(since) = incident.data_missing_since {
                // The gap was not seen quiet: the resolve clock restarts now.
                Decision::DataBack {
                    missing_for: now - since,
                }
            } else if now - incident.quiet_since() >= resolve_after as i64 {
                Decision::Resolve {
                    budget_remaining: *budget_remaining,
                }
            } else {
                Decision::Nothing
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUARTER_HOUR: u64 = 900;

    fn open(severity: Severity, last_firing_at: i64) -> OpenIncident {
        OpenIncident {
            id: 1,
            severity,
            status: IncidentStatus::Open,
            opened_at: 0,
            last_firing_at,
            peak_burn_rate: 10.0,
            data_missing_since: None,
            data_back_at: None,
        }
    }

    fn firing(severity: Severity, burn_rate: f64) -> Observation {
        Observation::Firing {
            severity,
            burn_rate,
            budget_remaining: Some(0.8),
        }
    }

    fn quiet() -> Observation {
        Observation::Quiet {
            budget_remaining: Some(0.7),
        }
    }

    #[test]
    fn a_firing_row_opens_an_incident_when_none_is_open() {
        assert_eq!(
            decide(None, &firing(Severity::Ticket, 2.0), 100, QUARTER_HOUR),
            Decision::Open {
                severity: Severity::Ticket,
                peak_burn_rate: 2.0,
                budget_remaining: Some(0.8)
            }
        );
    }

    #[test]
    fn quiet_no_data_and_failures_open_nothing() {
        for observation in [
            quiet(),
            Observation::NoData,
            Observation::Failed {
                reason: "down".into(),
            },
        ] {
            assert_eq!(
                decide(None, &observation, 100, QUARTER_HOUR),
                Decision::Nothing
            );
        }
    }

    #[test]
    fn a_page_escalates_an_open_ticket_and_keeps_the_peak() {
        let incident = open(Severity::Ticket, 50);
        assert_eq!(
            decide(
                Some(&incident),
                &firing(Severity::Page, 20.0),
                100,
                QUARTER_HOUR
            ),
            Decision::Escalate {
                from: Severity::Ticket,
                to: Severity::Page,
                peak_burn_rate: 20.0
            }
        );
    }

    #[test]
    fn a_ticket_during_a_page_incident_does_not_de_escalate() {
        let incident = open(Severity::Page, 50);
        assert_eq!(
            decide(
                Some(&incident),
                &firing(Severity::Ticket, 3.0),
                100,
                QUARTER_HOUR
            ),
            Decision::StillFiring {
                peak_burn_rate: 10.0
            }
        );
    }

    #[test]
    fn flapping_inside_resolve_after_keeps_the_incident_open() {
        let incident = open(Severity::Page, 1_000);
        assert_eq!(
            decide(Some(&incident), &quiet(), 1_000 + 899, QUARTER_HOUR),
            Decision::Nothing
        );
        assert_eq!(
            decide(
                Some(&incident),
                &firing(Severity::Page, 5.0),
                1_000 + 899,
                QUARTER_HOUR
            ),
            Decision::StillFiring {
                peak_burn_rate: 10.0
            }
        );
    }

    #[test]
    fn quiet_for_resolve_after_resolves() {
        let incident = open(Severity::Page, 1_000);
        assert_eq!(
            decide(Some(&incident), &quiet(), 1_000 + 900, QUARTER_HOUR),
            Decision::Resolve {
                budget_remaining: Some(0.7)
            }
        );
    }

    #[test]
    fn missing_data_is_noted_once_and_never_resolves() {
        let mut incident = open(Severity::Page, 0);
        let later = 10 * QUARTER_HOUR as i64;
        assert!(matches!(
            decide(Some(&incident), &Observation::NoData, later, QUARTER_HOUR),
            Decision::DataMissing { .. }
        ));
        incident.data_missing_since = Some(later);
        assert_eq!(
            decide(
                Some(&incident),
                &Observation::Failed {
                    reason: "timeout".into()
                },
                later,
                QUARTER_HOUR
            ),
            Decision::Nothing
        );
    }

    #[test]
    fn data_coming_back_is_noted_while_the_incident_stays_open() {
        let mut incident = open(Severity::Page, 1_000);
        incident.data_missing_since = Some(1_050);
        assert_eq!(
            decide(Some(&incident), &quiet(), 1_100, QUARTER_HOUR),
            Decision::DataBack { missing_for: 50 }
        );
    }

    #[test]
    fn a_partial_evaluation_is_missing_data_not_quiet() {
        let incident = open(Severity::Page, 0);
        let long_after = 100 * QUARTER_HOUR as i64;
        assert!(matches!(
            decide(
                Some(&incident),
                &Observation::Partial,
                long_after,
                QUARTER_HOUR
            ),
            Decision::DataMissing { .. }
        ));
    }

    #[test]
    fn after_a_gap_the_quiet_clock_restarts_when_data_comes_back() {
        // Fired at 0, no data from 100 to 5_000: the gap is no evidence of quiet, so an hour
        // of missing data never resolves it and the first quiet evaluation only notes the
        // data coming back.
        let mut incident = open(Severity::Page, 0);
        incident.data_missing_since = Some(100);
        assert_eq!(
            decide(Some(&incident), &quiet(), 5_000, QUARTER_HOUR),
            Decision::DataBack { missing_for: 4_900 }
        );
        incident.data_missing_since = None;
        incident.data_back_at = Some(5_000);
        assert_eq!(
            decide(Some(&incident), &quiet(), 5_000 + 899, QUARTER_HOUR),
            Decision::Nothing
        );
        assert_eq!(
            decide(Some(&incident), &quiet(), 5_000 + 900, QUARTER_HOUR),
            Decision::Resolve {
                budget_remaining: Some(0.7)
            }
        );
    }
}
