//! What the pages show, read out of the stored evaluation snapshots: one row per SLO (per
//! group of a grouped SLO), ranked worst first, filtered, and the numbers formatted the one
//! way every page writes them.
//!
//! Owns: rows, ranking, filters and number formats. Must not touch: I/O, markup.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use crate::ports::{FreezeRecord, IncidentRecord};

/// One alert row of an SLO as the list shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertRow {
    pub severity: String,
    pub long_window: String,
    pub short_window: String,
    /// The burn-rate threshold.
    pub factor: f64,
    pub long_burn: Option<f64>,
    pub short_burn: Option<f64>,
    pub firing: bool,
}

/// One SLO (one group of a grouped SLO) as the list shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct SloRow {
    /// `checkout` or `checkout{route="/pay"}`: what incidents are keyed by.
    pub key: String,
    pub name: String,
    /// A grouped SLO's labels, `route=/pay`; empty otherwise.
    pub group: String,
    pub service: String,
    pub team: Option<String>,
    pub status: String,
    pub objective: f64,
    pub window: String,
    pub budget_remaining: Option<f64>,
    pub time_to_exhaustion: Option<f64>,
    pub alerts: Vec<AlertRow>,
    pub error: Option<String>,
    pub evaluated_at: i64,
    /// The unresolved incident: id, severity, status.
    pub incident: Option<(i64, String, String)>,
    /// Active freezes that name this SLO or its service.
    pub freezes: Vec<i64>,
}

/// `never`, `once`, `3 times`.
pub fn times(count: u64) -> String {
    match count {
        0 => "never".into(),
        1 => "once".into(),
        n => format!("{n} times"),
    }
}

fn number(value: &Value) -> Option<f64> {
    value.as_f64().filter(|v| v.is_finite())
}

fn text(value: &Value, field: &str) -> String {
    value[field].as_str().unwrap_or_default().to_string()
}

/// The group part of a snapshot: `route=/pay, method=GET`.
fn group_text(snapshot: &Value) -> String {
    snapshot["group"]
        .as_object()
        .map(|g| {
            g.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

/// The key of a snapshot, as `policy::group_key` writes it.
fn key_of(snapshot: &Value) -> String {
    let name = text(snapshot, "name");
    let group: BTreeMap<String, String> = snapshot["group"]
        .as_object()
        .map(|g| {
            g.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default();
    crate::domain::policy::group_key(&name, &group)
}

/// A row from one stored snapshot (the JSON of an evaluation), the SLO's labels, and the
/// open incidents and active freezes.
pub fn row(
    snapshot: &Value,
    evaluated_at: i64,
    labels: Option<&BTreeMap<String, String>>,
    incidents: &HashMap<String, &IncidentRecord>,
    freezes: &[FreezeRecord],
) -> SloRow {
    let name = text(snapshot, "name");
    let service = text(snapshot, "service");
    let key = key_of(snapshot);
    let burn = |window: &str| number(&snapshot["burn_rate"][window]);
    let alerts = snapshot["alerts"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .map(|a| {
                    let long_window = text(a, "long_window");
                    let short_window = text(a, "short_window");
                    AlertRow {
                        severity: text(a, "severity"),
                        long_burn: burn(&long_window),
                        short_burn: burn(&short_window),
                        long_window,
                        short_window,
                        factor: number(&a["factor"]).unwrap_or_default(),
                        firing: a["firing"].as_bool().unwrap_or(false),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    SloRow {
        incident: incidents
            .get(&key)
            .map(|i| (i.id, i.severity.clone(), i.status.clone())),
        freezes: freezes
            .iter()
            .filter(|f| {
                f.slo.as_deref() == Some(name.as_str())
                    || (f.service.as_deref() == Some(service.as_str()) && f.slo.is_none())
            })
            .map(|f| f.id)
            .collect(),
        group: group_text(snapshot),
        team: labels.and_then(|l| l.get("team")).cloned(),
        status: snapshot["status"].as_str().unwrap_or("error").to_string(),
        objective: number(&snapshot["objective"]).unwrap_or_default(),
        window: text(snapshot, "window"),
        budget_remaining: number(&snapshot["error_budget_remaining"]),
        time_to_exhaustion: number(&snapshot["time_to_exhaustion_seconds"]),
        error: snapshot["error"].as_str().map(str::to_string),
        alerts,
        evaluated_at,
        key,
        name,
        service,
    }
}

/// How bad a status is: a page first, `ok` last.
pub fn status_rank(status: &str) -> u8 {
    match status {
        "page" => 0,
        "ticket" => 1,
        "error" => 2,
        "no_data" => 3,
        "partial" => 4,
        "ok" => 5,
        _ => 6,
    }
}

/// Worst first: by status, then the least budget left (unknown budget after known), then
/// by key.
pub fn rank(rows: &mut [SloRow]) {
    rows.sort_by(|a, b| {
        status_rank(&a.status)
            .cmp(&status_rank(&b.status))
            .then(
                a.budget_remaining
                    .unwrap_or(f64::INFINITY)
                    .total_cmp(&b.budget_remaining.unwrap_or(f64::INFINITY)),
            )
            .then_with(|| a.key.cmp(&b.key))
    });
}

/// The list's filters, from the query string; empty fields match everything.
#[derive(Clone, Debug, Default, PartialEq, serde::Deserialize)]
#[serde(default)]
pub struct Filter {
    pub service: String,
    pub team: String,
    pub status: String,
    /// Part of the SLO's name.
    pub q: String,
}

impl Filter {
    pub fn matches(&self, row: &SloRow) -> bool {
        (self.service.is_empty() || row.service == self.service)
            && (self.team.is_empty() || row.team.as_deref() == Some(self.team.as_str()))
            && (self.status.is_empty() || row.status == self.status)
            && (self.q.is_empty() || row.key.contains(self.q.as_str()))
    }

    /// The filter as a query string (`service=a&status=page`), for links and polling.
    pub fn query(&self) -> String {
        let pairs = [
            ("service", &self.service),
            ("team", &self.team),
            ("status", &self.status),
            ("q", &self.q),
        ];
        pairs
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| format!("{k}={}", url_encode(v)))
            .collect::<Vec<_>>()
            .join("&")
    }
}

/// Percent-encodes a query value.
pub fn url_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A ratio as a percent with one decimal (`93.4%`); `—` when unknown.
pub fn percent(value: Option<f64>) -> String {
    match value {
        Some(v) => format!("{:.1}%", v * 100.0),
        None => "—".into(),
    }
}

/// An objective as people write it: `99.9%`, `99.95%`.
pub fn objective(ratio: f64) -> String {
    let text = format!("{:.4}", ratio * 100.0);
    format!("{}%", text.trim_end_matches('0').trim_end_matches('.'))
}

/// A burn rate (`12.3x`); `—` when unknown.
pub fn burn(value: Option<f64>) -> String {
    match value {
        Some(v) if v >= 100.0 => format!("{v:.0}x"),
        Some(v) => format!("{v:.1}x"),
        None => "—".into(),
    }
}

/// A duration in seconds, the largest two units (`3d 4h`, `25m`); `—` when unknown.
pub fn duration(seconds: Option<f64>) -> String {
    let Some(seconds) = seconds.filter(|s| s.is_finite() && *s >= 0.0) else {
        return "—".into();
    };
    let s = seconds as u64;
    let (d, h, m) = (s / 86_400, s % 86_400 / 3_600, s % 3_600 / 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

/// The budget bar's width in percent: the budget left, clamped to the bar.
pub fn bar_width(budget: Option<f64>) -> f64 {
    (budget.unwrap_or(0.0) * 100.0).clamp(0.0, 100.0)
}

/// A time as `2026-01-04 10:00:00 UTC`.
pub fn time(at: i64) -> String {
    chrono::DateTime::from_timestamp(at, 0)
        .map(|d| d.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| at.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn snapshot(name: &str, status: &str, budget: Option<f64>) -> Value {
        json!({
            "name": name, "service": "shop", "objective": 0.999, "window": "30d",
            "status": status, "error_budget_remaining": budget,
            "time_to_exhaustion_seconds": 7200.0,
            "burn_rate": {"5m": 20.0, "1h": 15.0, "30m": null, "6h": 2.0},
            "alerts": [
                {"severity": "page", "long_window": "1h", "short_window": "5m", "factor": 14.4, "firing": true, "has_data": true},
                {"severity": "ticket", "long_window": "6h", "short_window": "30m", "factor": 6.0, "firing": false, "has_data": false}
            ],
            "error": null
        })
    }

    fn rows(snapshots: &[Value]) -> Vec<SloRow> {
        snapshots
            .iter()
            .map(|s| row(s, 0, None, &HashMap::new(), &[]))
            .collect()
    }

    #[test]
    fn a_row_carries_each_alert_rows_burn_rates_beside_its_threshold() {
        let r = &rows(&[snapshot("checkout", "page", Some(0.4))])[0];
        assert_eq!(r.key, "checkout");
        assert_eq!(r.alerts.len(), 2);
        assert_eq!(
            (
                r.alerts[0].long_burn,
                r.alerts[0].short_burn,
                r.alerts[0].factor
            ),
            (Some(15.0), Some(20.0), 14.4)
        );
        // A window without data stays unknown, not zero.
        assert_eq!(r.alerts[1].short_burn, None);
        assert_eq!(r.time_to_exhaustion, Some(7200.0));
    }

    #[test]
    fn the_worst_slo_comes_first_then_the_least_budget() {
        let mut list = rows(&[
            snapshot("a-ok", "ok", Some(0.9)),
            snapshot("b-ticket", "ticket", Some(0.5)),
            snapshot("c-page", "page", Some(0.8)),
            snapshot("d-page", "page", Some(0.1)),
            snapshot("e-nodata", "no_data", None),
            snapshot("f-ok", "ok", Some(0.2)),
            snapshot("g-ok-unknown", "ok", None),
        ]);
        rank(&mut list);
        let order: Vec<&str> = list.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            order,
            [
                "d-page",
                "c-page",
                "b-ticket",
                "e-nodata",
                "f-ok",
                "a-ok",
                "g-ok-unknown"
            ]
        );
    }

    #[test]
    fn a_grouped_slos_row_is_keyed_like_its_incident() {
        let mut s = snapshot("checkout", "page", Some(0.1));
        s["group"] = json!({"route": "/pay"});
        let incident = IncidentRecord {
            id: 7,
            slo: "checkout{route=\"/pay\"}".into(),
            service: "shop".into(),
            severity: "page".into(),
            status: "open".into(),
            opened_at: 0,
            acknowledged_at: None,
            resolved_at: None,
            last_firing_at: 0,
            peak_burn_rate: 20.0,
            budget_remaining_at_open: None,
            budget_remaining_at_resolve: None,
        };
        let incidents = HashMap::from([(incident.slo.clone(), &incident)]);
        let r = row(&s, 0, None, &incidents, &[]);
        assert_eq!(r.group, "route=/pay");
        assert_eq!(r.incident, Some((7, "page".into(), "open".into())));
    }

    #[test]
    fn filters_match_service_team_status_and_part_of_the_name() {
        let mut labels = BTreeMap::new();
        labels.insert("team".to_string(), "payments".to_string());
        let r = row(
            &snapshot("checkout", "page", Some(0.1)),
            0,
            Some(&labels),
            &HashMap::new(),
            &[],
        );
        let filter = |service: &str, team: &str, status: &str, q: &str| Filter {
            service: service.into(),
            team: team.into(),
            status: status.into(),
            q: q.into(),
        };
        assert!(filter("", "", "", "").matches(&r));
        assert!(filter("shop", "payments", "page", "check").matches(&r));
        assert!(!filter("search", "", "", "").matches(&r));
        assert!(!filter("", "core", "", "").matches(&r));
        assert!(!filter("", "", "ok", "").matches(&r));
        assert!(!filter("", "", "", "cart").matches(&r));
        assert_eq!(
            filter("a b", "", "page", "/pay").query(),
            "service=a%20b&status=page&q=%2Fpay"
        );
    }

    #[test]
    fn numbers_are_written_one_way() {
        assert_eq!(percent(Some(0.93449)), "93.4%");
        assert_eq!(percent(Some(-0.5)), "-50.0%");
        assert_eq!(percent(None), "—");
        assert_eq!(objective(0.999), "99.9%");
        assert_eq!(objective(0.9995), "99.95%");
        assert_eq!(objective(0.99), "99%");
        assert_eq!(burn(Some(14.44)), "14.4x");
        assert_eq!(burn(Some(250.0)), "250x");
        assert_eq!(duration(Some(90_000.0)), "1d 1h");
        assert_eq!(duration(Some(1_500.0)), "25m");
        assert_eq!(duration(None), "—");
        assert_eq!(bar_width(Some(-0.2)), 0.0);
        assert_eq!(bar_width(Some(0.5)), 50.0);
    }
}
