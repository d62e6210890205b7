//! Grafana dashboards for burnguard, as JSON built from the series names the rules record
//! ([`super::rules`]) and the names burnguard exports at `/metrics` ([`exported`]):
//!
//! - **SLO overview**: every SLO, worst first: status, budget remaining, burn rate per window,
//!   firing alert rows, open incidents, active freezes; filtered by team and service;
//! - **SLO detail** (variable `slo`): error ratio and burn rate per window against each alert
//!   row's threshold, the budget burn-down over the SLO window beside the ideal straight line,
//!   time to exhaustion; incidents, playbook steps, freezes and pages as annotations;
//! - **burnguard health**: evaluation duration and lag, queries and query errors by reason,
//!   remediation steps by status, webhook intake, the notification outbox, policy reloads.
//!
//! The dashboards are generic (template variables, not one panel per SLO), so one set serves
//! every policy set and regenerating is only needed when burnguard changes. SLO numbers come
//! from the recording rules (which carry the SLO's `metadata.labels`, so `team` filters them);
//! what burnguard decided and did (status, alert rows, thresholds, incidents, freezes, steps)
//! comes from its `/metrics`, joined to the rules on `slo`. Panels say which source they read,
//! and rows group them by source where both exist. Series scraped from several replicas are
//! folded with `max by`, since every replica reports the same store.
//!
//! Classic dashboard JSON, schemaVersion 39 (Grafana 10 and later import it).
//!
//! Owns: dashboard layout and the PromQL of every panel. Must not touch: I/O.

use serde_json::{Value, json};

use super::policy::BASE_WINDOW;
use super::rules::{
    BUDGET_REMAINING_SERIES, OBJECTIVE_SERIES, PERIOD_LENGTH_SERIES, PERIOD_START_SERIES,
    error_ratio_series,
};

/// Names of the series burnguard exports at `/metrics` that the dashboards read: none is one
/// of the per-window families `serve` leaves out unless `--metrics-per-window` is given.
pub mod exported {
    pub const SLO_STATUS: &str = "burnguard_slo_status";
    pub const SLO_ALERT_FIRING: &str = "burnguard_slo_alert_firing";
    pub const SLO_ALERT_THRESHOLD: &str = "burnguard_slo_alert_threshold";
    pub const SLO_OBJECTIVE: &str = "burnguard_slo_objective";
    pub const SLO_TIME_TO_EXHAUSTION: &str = "burnguard_slo_time_to_exhaustion_seconds";
    pub const SLO_OPEN_INCIDENTS: &str = "burnguard_slo_open_incidents";
    pub const SLO_ACTIVE_FREEZES: &str = "burnguard_slo_active_freezes";
    pub const ACTIONS: &str = "burnguard_actions";
    pub const EVALUATION_DURATION_BUCKET: &str = "burnguard_evaluation_duration_seconds_bucket";
    pub const LAST_SUCCESS: &str = "burnguard_last_successful_evaluation_timestamp_seconds";
    pub const QUERIES: &str = "burnguard_queries_total";
    pub const QUERY_ERRORS: &str = "burnguard_query_errors_total";
    pub const POLICY_RELOADS: &str = "burnguard_policy_reloads_total";
    pub const SLOS_LOADED: &str = "burnguard_slos_loaded";
    pub const STORE_ERRORS: &str = "burnguard_store_errors_total";
    pub const WEBHOOK_REQUESTS: &str = "burnguard_webhook_requests_total";
    pub const OUTBOX_PENDING: &str = "burnguard_notification_outbox_pending";

    /// Every name above.
    pub const ALL: [&str; 17] = [
        SLO_STATUS,
        SLO_ALERT_FIRING,
        SLO_ALERT_THRESHOLD,
        SLO_OBJECTIVE,
        SLO_TIME_TO_EXHAUSTION,
        SLO_OPEN_INCIDENTS,
        SLO_ACTIVE_FREEZES,
        ACTIONS,
        EVALUATION_DURATION_BUCKET,
        LAST_SUCCESS,
        QUERIES,
        QUERY_ERRORS,
        POLICY_RELOADS,
        SLOS_LOADED,
        STORE_ERRORS,
        WEBHOOK_REQUESTS,
        OUTBOX_PENDING,
    ];
}

use exported::*;

/// The dashboard JSON version written; Grafana migrates it forward on import.
pub const SCHEMA_VERSION: u32 = 39;

pub const OVERVIEW_UID: &str = "burnguard-slo-overview";
pub const DETAIL_UID: &str = "burnguard-slo-detail";
pub const HEALTH_UID: &str = "burnguard-health";

/// One dashboard and the file it is written to.
#[derive(Debug, Clone, PartialEq)]
pub struct Dashboard {
    pub file_name: &'static str,
    pub json: Value,
}

/// Every dashboard, in a fixed order.
pub fn all() -> Vec<Dashboard> {
    vec![
        Dashboard {
            file_name: "slo-overview.json",
            json: overview(),
        },
        Dashboard {
            file_name: "slo-detail.json",
            json: detail(),
        },
        Dashboard {
            file_name: "burnguard-health.json",
            json: health(),
        },
    ]
}

/// The file text of a dashboard: pretty JSON with keys sorted, ending in a newline.
pub fn to_text(dashboard: &Value) -> String {
    let mut text = serde_json::to_string_pretty(dashboard).unwrap_or_default();
    text.push('\n');
    text
}

// ---------------------------------------------------------------------------------------------
// PromQL

/// The recorded error-ratio series' name without its window (`burnguard:sli_error:ratio_rate`).
pub fn error_ratio_prefix() -> String {
    let full = error_ratio_series(BASE_WINDOW);
    let window = BASE_WINDOW.to_string();
    full[..full.len() - window.len()].to_string()
}

/// Every recorded error ratio of the SLOs `selector` picks, one series per window, with the
/// window as a `window` label (it is part of the series name in the rules).
fn error_ratios(selector: &str) -> String {
    let prefix = error_ratio_prefix();
    format!(
        r#"label_replace({{__name__=~"{prefix}.+", {selector}}}, "window", "$1", "__name__", "{prefix}(.+)")"#
    )
}

/// The recorded objective series of the SLOs `selector` picks.
fn objective(selector: &str) -> String {
    format!("{OBJECTIVE_SERIES}{{{selector}}}")
}

/// The budget left of the SLOs `selector` picks; panels take the `min` per SLO, so a grouped
/// SLO shows its worst group (and duplicate series from Prometheus replicas collapse).
fn budget_remaining(selector: &str) -> String {
    format!("{BUDGET_REMAINING_SERIES}{{{selector}}}")
}

/// The overview's filter on the recorded series: the SLO labels `team` and `service`.
const OVERVIEW_FILTER: &str = r#"team=~"$team", service=~"$service""#;
/// The detail dashboard's SLO.
const ONE_SLO: &str = r#"slo="$slo""#;
/// The health dashboard's burnguard instances.
const INSTANCES: &str = r#"instance=~"$instance""#;

/// Keeps `/metrics` series of the SLOs the overview's filter picks (those series carry no
/// `team`; the recorded objective does).
fn filtered(expr: &str) -> String {
    format!("{expr} and on (slo) {}", objective(OVERVIEW_FILTER))
}

/// The error budget `1 - objective` of the detail dashboard's SLO, as a label-less series.
fn detail_budget() -> String {
    format!("(1 - max({}))", objective(ONE_SLO))
}

/// A line falling straight from 1 at the start of the panel's range to 0 at its end: the
/// budget a steady burn rate of 1 would leave. `@ start()` and `@ end()` follow the panel's
/// own range (Grafana's `$__from` does not follow a panel's relative time).
/// The ideal line: a calendar SLO's from full at each period start to none at its end (the
/// rules record the period's bounds); a rolling SLO's from full at the start of the panel's
/// range (the SLO window) to none at its end.
fn ideal_burn_down(selector: &str) -> String {
    let at = |edge: &str| format!("max_over_time(vector(time())[1m:1m] @ {edge}())");
    let (start, end) = (at("start"), at("end"));
    format!(
        "max(1 - (time() - {PERIOD_START_SERIES}{{{selector}}}) / {PERIOD_LENGTH_SERIES}{{{selector}}}) or clamp(1 - (time() - {start}) / ({end} - {start}), 0, 1)"
    )
}

// ---------------------------------------------------------------------------------------------
// Grafana JSON pieces

fn datasource() -> Value {
    json!({"type": "prometheus", "uid": "${datasource}"})
}

#[derive(Clone, Copy)]
enum Query {
    /// A range query: one point per step.
    Range,
    /// An instant query at the range's end.
    Instant,
    /// An instant query shown as a table (labels become columns).
    Table,
}

fn target(ref_id: &str, expr: String, legend: &str, query: Query) -> Value {
    let (instant, format) = match query {
        Query::Range => (false, "time_series"),
        Query::Instant => (true, "time_series"),
        Query::Table => (true, "table"),
    };
    json!({
        "datasource": datasource(),
        "editorMode": "code",
        "expr": expr,
        "format": format,
        "instant": instant,
        "legendFormat": legend,
        "range": !instant,
        "refId": ref_id,
    })
}

fn panel(kind: &str, title: &str, description: &str, targets: Vec<Value>) -> Value {
    json!({
        "type": kind,
        "title": title,
        "description": description,
        "datasource": datasource(),
        "targets": targets,
        "fieldConfig": {"defaults": {}, "overrides": []},
        "options": {},
    })
}

fn thresholds(steps: &[(&str, Option<f64>)]) -> Value {
    let steps: Vec<Value> = steps
        .iter()
        .map(|(color, value)| json!({"color": color, "value": value}))
        .collect();
    json!({"mode": "absolute", "steps": steps})
}

/// Red below 0, orange below a quarter left, green above.
fn budget_thresholds() -> Value {
    thresholds(&[("red", None), ("orange", Some(0.0)), ("green", Some(0.25))])
}

/// Green below 1 (sustainable), yellow, orange at the ticket rows, red at the fast page.
fn burn_rate_thresholds() -> Value {
    thresholds(&[
        ("green", None),
        ("yellow", Some(1.0)),
        ("orange", Some(3.0)),
        ("red", Some(14.4)),
    ])
}

fn stat(title: &str, description: &str, expr: String, unit: &str, thresholds: Value) -> Value {
    let mut p = panel(
        "stat",
        title,
        description,
        vec![target("A", expr, "", Query::Instant)],
    );
    p["fieldConfig"]["defaults"] = json!({
        "unit": unit,
        "thresholds": thresholds,
        "color": {"mode": "thresholds"},
        "noValue": "0",
    });
    p["options"] = json!({
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": false},
        "colorMode": "value",
        "graphMode": "none",
        "justifyMode": "auto",
        "orientation": "auto",
        "textMode": "auto",
    });
    p
}

fn timeseries(title: &str, description: &str, unit: &str, targets: Vec<Value>) -> Value {
    let mut p = panel("timeseries", title, description, targets);
    p["fieldConfig"]["defaults"] = json!({
        "unit": unit,
        "color": {"mode": "palette-classic"},
        "custom": {
            "drawStyle": "line",
            "lineWidth": 1,
            "fillOpacity": 0,
            "showPoints": "never",
            "spanNulls": false,
            "axisSoftMin": 0,
        },
    });
    p["options"] = json!({
        "legend": {"displayMode": "list", "placement": "bottom", "showLegend": true},
        "tooltip": {"mode": "multi", "sort": "desc"},
    });
    p
}

/// Draws the series of query `ref_id` dashed in `color` (thresholds, ideal lines).
fn dashed(panel: &mut Value, ref_id: &str, color: &str) {
    if !panel["fieldConfig"]["overrides"].is_array() {
        panel["fieldConfig"]["overrides"] = json!([]);
    }
    let Some(overrides) = panel["fieldConfig"]["overrides"].as_array_mut() else {
        return;
    };
    overrides.push(json!({
        "matcher": {"id": "byFrameRefID", "options": ref_id},
        "properties": [
            {"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}},
            {"id": "color", "value": {"mode": "fixed", "fixedColor": color}},
        ],
    }));
}

fn state_timeline(title: &str, description: &str, expr: String, legend: &str) -> Value {
    let mut p = panel(
        "state-timeline",
        title,
        description,
        vec![target("A", expr, legend, Query::Range)],
    );
    p["fieldConfig"]["defaults"] = json!({
        "color": {"mode": "thresholds"},
        "thresholds": thresholds(&[("green", None), ("red", Some(1.0))]),
        "mappings": [{"type": "value", "options": {
            "0": {"text": "quiet", "color": "green", "index": 0},
            "1": {"text": "firing", "color": "red", "index": 1},
        }}],
        "custom": {"fillOpacity": 70, "lineWidth": 0},
    });
    p["options"] = json!({
        "showValue": "never",
        "mergeValues": true,
        "rowHeight": 0.9,
        "legend": {"displayMode": "list", "placement": "bottom", "showLegend": false},
        "tooltip": {"mode": "single", "sort": "none"},
    });
    p
}

/// Colours for the statuses burnguard reports.
fn status_mappings() -> Value {
    json!([{"type": "value", "options": {
        "page": {"color": "red", "index": 0},
        "ticket": {"color": "orange", "index": 1},
        "ok": {"color": "green", "index": 2},
        "partial": {"color": "yellow", "index": 3},
        "no_data": {"color": "blue", "index": 4},
        "error": {"color": "purple", "index": 5},
    }}])
}

fn datasource_variable() -> Value {
    json!({
        "type": "datasource",
        "name": "datasource",
        "label": "Prometheus",
        "description": "The Prometheus (or Thanos, Mimir, VictoriaMetrics) that evaluates burnguard's recording rules and scrapes burnguard's /metrics",
        "query": "prometheus",
        "hide": 0,
        "includeAll": false,
        "multi": false,
        "refresh": 1,
        "regex": "",
        "options": [],
    })
}

fn query_variable(name: &str, label: &str, description: &str, query: String, all: bool) -> Value {
    let mut v = json!({
        "type": "query",
        "name": name,
        "label": label,
        "description": description,
        "datasource": datasource(),
        "query": query,
        "refresh": 2,
        "sort": 1,
        "hide": 0,
        "multi": all,
        "includeAll": all,
        "regex": "",
        "options": [],
    });
    if all {
        v["allValue"] = json!(".*");
        v["current"] = json!({"selected": true, "text": ["All"], "value": ["$__all"]});
    }
    v
}

fn builtin_annotation() -> Value {
    json!({
        "builtIn": 1,
        "datasource": {"type": "grafana", "uid": "-- Grafana --"},
        "enable": true,
        "hide": true,
        "iconColor": "rgba(0, 211, 255, 1)",
        "name": "Annotations & Alerts",
        "type": "dashboard",
    })
}

/// A Prometheus annotation: a region wherever `expr` has a sample.
fn annotation(name: &str, expr: String, color: &str, title: &str, text: &str) -> Value {
    json!({
        "datasource": datasource(),
        "enable": true,
        "hide": false,
        "iconColor": color,
        "name": name,
        "expr": expr,
        "step": "1m",
        "titleFormat": title,
        "textFormat": text,
        "tagKeys": "slo",
        "useValueForTime": false,
    })
}

/// Places panels left to right in rows of the 24-column grid, numbering them.
struct Layout {
    panels: Vec<Value>,
    x: u32,
    y: u32,
    line_height: u32,
}

impl Layout {
    fn new() -> Self {
        Self {
            panels: Vec::new(),
            x: 0,
            y: 0,
            line_height: 0,
        }
    }

    fn new_line(&mut self) {
        self.y += self.line_height;
        self.x = 0;
        self.line_height = 0;
    }

    fn row(&mut self, title: &str) {
        if self.x > 0 {
            self.new_line();
        }
        let id = self.panels.len() + 1;
        self.panels.push(json!({
            "type": "row",
            "id": id,
            "title": title,
            "collapsed": false,
            "panels": [],
            "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y},
        }));
        self.y += 1;
    }

    fn add(&mut self, w: u32, h: u32, mut panel: Value) {
        if self.x + w > 24 {
            self.new_line();
        }
        panel["id"] = json!(self.panels.len() + 1);
        panel["gridPos"] = json!({"h": h, "w": w, "x": self.x, "y": self.y});
        self.panels.push(panel);
        self.x += w;
        self.line_height = self.line_height.max(h);
    }
}

fn dashboard(
    uid: &str,
    title: &str,
    description: &str,
    variables: Vec<Value>,
    annotations: Vec<Value>,
    layout: Layout,
) -> Value {
    json!({
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["burnguard", "slo"],
        "editable": true,
        "fiscalYearStartMonth": 0,
        "graphTooltip": 1,
        "liveNow": false,
        "refresh": "1m",
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "time": {"from": "now-24h", "to": "now"},
        "timepicker": {},
        "timezone": "browser",
        "links": [{
            "title": "burnguard dashboards",
            "type": "dashboards",
            "tags": ["burnguard"],
            "asDropdown": true,
            "icon": "external link",
            "includeVars": false,
            "keepTime": true,
            "targetBlank": false,
            "tooltip": "",
        }],
        "annotations": {"list": annotations},
        "templating": {"list": variables},
        "panels": layout.panels,
    })
}

// ---------------------------------------------------------------------------------------------
// SLO overview

fn overview() -> Value {
    let f = OVERVIEW_FILTER;
    let mut l = Layout::new();

    l.row("Now");
    let from_metrics = "From burnguard's /metrics, for the SLOs the team and service filters pick (the recorded objective carries the SLO labels).";
    l.add(
        4,
        4,
        stat(
            "SLOs",
            "SLOs whose recording rules Prometheus evaluates.",
            format!("count({})", objective(f)),
            "none",
            thresholds(&[("text", None)]),
        ),
    );
    l.add(
        4,
        4,
        stat(
            "Paging",
            &format!("SLOs whose worst firing alert row is a page. {from_metrics}"),
            format!(
                "count({})",
                filtered(&format!(
                    "max by (slo) ({SLO_STATUS}{{status=\"page\"}} == 1)"
                ))
            ),
            "none",
            thresholds(&[("green", None), ("red", Some(1.0))]),
        ),
    );
    l.add(
        4,
        4,
        stat(
            "Ticket",
            &format!("SLOs whose worst firing alert row is a ticket. {from_metrics}"),
            format!(
                "count({})",
                filtered(&format!(
                    "max by (slo) ({SLO_STATUS}{{status=\"ticket\"}} == 1)"
                ))
            ),
            "none",
            thresholds(&[("green", None), ("orange", Some(1.0))]),
        ),
    );
    l.add(
        4,
        4,
        stat(
            "Budget spent",
            "SLOs with no error budget left over their SLO window (recording rules).",
            format!("count(min by (slo) ({}) < 0)", budget_remaining(f)),
            "none",
            thresholds(&[("green", None), ("red", Some(1.0))]),
        ),
    );
    l.add(
        4,
        4,
        stat(
            "Open incidents",
            &format!("Unresolved incidents of these SLOs. {from_metrics}"),
            format!(
                "sum({})",
                filtered(&format!("max by (slo) ({SLO_OPEN_INCIDENTS})"))
            ),
            "none",
            thresholds(&[("green", None), ("red", Some(1.0))]),
        ),
    );
    l.add(
        4,
        4,
        stat(
            "Active freezes",
            &format!(
                "Deployment freezes these SLOs' budget rules and playbooks hold. {from_metrics}"
            ),
            format!(
                "sum({})",
                filtered(&format!("max by (slo) ({SLO_ACTIVE_FREEZES})"))
            ),
            "none",
            thresholds(&[("green", None), ("blue", Some(1.0))]),
        ),
    );

    l.row("SLOs, worst first");
    l.add(24, 10, slo_table());
    l.add(14, 9, burn_rate_matrix());
    let mut budgets = panel(
        "bargauge",
        "Error budget remaining, worst first",
        "Budget left over each SLO's window (recording rules): 100% untouched, 0 spent, below 0 overspent.",
        vec![target(
            "A",
            format!("sort(min by (slo) ({}))", budget_remaining(f)),
            "{{slo}}",
            Query::Instant,
        )],
    );
    budgets["fieldConfig"]["defaults"] = json!({
        "unit": "percentunit",
        "min": -1,
        "max": 1,
        "thresholds": budget_thresholds(),
        "color": {"mode": "thresholds"},
    });
    budgets["options"] = json!({
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": false},
        "orientation": "horizontal",
        "displayMode": "lcd",
        "showUnfilled": true,
        "valueMode": "color",
    });
    l.add(10, 9, budgets);

    l.row("Over time");
    let mut budget_history = timeseries(
        "Error budget remaining",
        "Budget left over each SLO's window at every moment (recording rules).",
        "percentunit",
        vec![target(
            "A",
            format!("min by (slo) ({})", budget_remaining(f)),
            "{{slo}}",
            Query::Range,
        )],
    );
    budget_history["fieldConfig"]["defaults"]["custom"]["axisSoftMin"] = json!(null);
    l.add(12, 8, budget_history);
    let one_hour = error_ratio_series(super::policy::Window::from_secs(3_600));
    l.add(
        12,
        8,
        timeseries(
            "Burn rate over 1h",
            "Error ratio over the last hour divided by the error budget (recording rules): 1 spends the budget exactly over the SLO window; the workbook's fast page fires above 14.4 (with the 5m window agreeing).",
            "none",
            vec![target(
                "A",
                format!(
                    "max by (slo) ({one_hour}{{{f}}}) / on (slo) (1 - max by (slo) ({}))",
                    objective(f)
                ),
                "{{slo}}",
                Query::Range,
            )],
        ),
    );

    let variables = vec![
        datasource_variable(),
        query_variable(
            "team",
            "Team",
            "The `team` label of the SLOs (metadata.labels), from the recorded objective",
            format!("label_values({OBJECTIVE_SERIES}, team)"),
            true,
        ),
        query_variable(
            "service",
            "Service",
            "The SLOs' service",
            format!("label_values({OBJECTIVE_SERIES}{{team=~\"$team\"}}, service)"),
            true,
        ),
    ];
    dashboard(
        OVERVIEW_UID,
        "burnguard / SLO overview",
        "Every SLO, worst first: status, error budget, burn rate per window, alerts, incidents and freezes. Needs burnguard's recording rules loaded in Prometheus and burnguard's /metrics scraped.",
        variables,
        vec![builtin_annotation()],
        l,
    )
}

/// One row per SLO: the recorded numbers and burnguard's decisions, merged on `slo`, sorted by
/// budget remaining (worst first).
fn slo_table() -> Value {
    let f = OVERVIEW_FILTER;
    let targets = vec![
        target(
            "A",
            format!("min by (slo, service, team) ({})", budget_remaining(f)),
            "",
            Query::Table,
        ),
        target(
            "B",
            format!("max by (slo) ({})", objective(f)),
            "",
            Query::Table,
        ),
        target(
            "C",
            filtered(&format!("max by (slo, status) ({SLO_STATUS} == 1)")),
            "",
            Query::Table,
        ),
        target(
            "D",
            filtered(&format!(
                "sum by (slo) (max by (slo, severity, long_window, short_window) ({SLO_ALERT_FIRING}))"
            )),
            "",
            Query::Table,
        ),
        target(
            "E",
            filtered(&format!("max by (slo) ({SLO_OPEN_INCIDENTS})")),
            "",
            Query::Table,
        ),
        target(
            "F",
            filtered(&format!("max by (slo) ({SLO_ACTIVE_FREEZES})")),
            "",
            Query::Table,
        ),
        target(
            "G",
            filtered(&format!("min by (slo) ({SLO_TIME_TO_EXHAUSTION})")),
            "",
            Query::Table,
        ),
    ];
    let mut p = panel(
        "table",
        "SLOs",
        "Budget remaining and objective from the recording rules; status, firing alert rows, open incidents, active freezes and time to exhaustion from burnguard's /metrics. Sorted by budget remaining, worst first; the SLO name opens its detail dashboard.",
        targets,
    );
    p["transformations"] = json!([
        {"id": "merge", "options": {}},
        {"id": "organize", "options": {
            "excludeByName": {"Time": true, "Value #C": true},
            "indexByName": {
                "slo": 0, "service": 1, "team": 2, "status": 3, "Value #A": 4, "Value #B": 5,
                "Value #G": 6, "Value #D": 7, "Value #E": 8, "Value #F": 9,
            },
            "renameByName": {
                "slo": "SLO",
                "service": "Service",
                "team": "Team",
                "status": "Status",
                "Value #A": "Budget remaining",
                "Value #B": "Objective",
                "Value #D": "Firing alert rows",
                "Value #E": "Open incidents",
                "Value #F": "Active freezes",
                "Value #G": "Time to exhaustion",
            },
        }},
    ]);
    let by_name = |name: &str, properties: Value| json!({"matcher": {"id": "byName", "options": name}, "properties": properties});
    p["fieldConfig"]["defaults"] = json!({
        "custom": {"align": "auto", "cellOptions": {"type": "auto"}},
        "thresholds": thresholds(&[("green", None), ("red", Some(1.0))]),
    });
    p["fieldConfig"]["overrides"] = json!([
        by_name(
            "Budget remaining",
            json!([
                {"id": "unit", "value": "percentunit"},
                {"id": "thresholds", "value": budget_thresholds()},
                {"id": "custom.cellOptions", "value": {"type": "color-background", "mode": "basic"}},
            ])
        ),
        by_name(
            "Objective",
            json!([
                {"id": "unit", "value": "percentunit"},
                {"id": "decimals", "value": 2},
            ])
        ),
        by_name(
            "Time to exhaustion",
            json!([{"id": "unit", "value": "dtdurations"}])
        ),
        by_name(
            "Status",
            json!([
                {"id": "mappings", "value": status_mappings()},
                {"id": "custom.cellOptions", "value": {"type": "color-text"}},
            ])
        ),
        by_name(
            "Firing alert rows",
            json!([
                {"id": "custom.cellOptions", "value": {"type": "color-text"}},
            ])
        ),
        by_name(
            "Open incidents",
            json!([
                {"id": "custom.cellOptions", "value": {"type": "color-text"}},
            ])
        ),
        by_name(
            "SLO",
            json!([{"id": "links", "value": [{
                "title": "SLO detail",
                "url": format!("/d/{DETAIL_UID}/{DETAIL_UID}?var-slo=${{__value.raw}}&${{datasource:queryparam}}&${{__url_time_range}}"),
            }]}])
        ),
    ]);
    p["options"] = json!({
        "showHeader": true,
        "cellHeight": "sm",
        "sortBy": [{"displayName": "Budget remaining", "desc": false}],
        "footer": {"show": false, "reducer": ["sum"], "fields": ""},
    });
    p
}

/// Burn rate per SLO (rows) and window (columns), from the recording rules.
fn burn_rate_matrix() -> Value {
    let f = OVERVIEW_FILTER;
    let mut p = panel(
        "table",
        "Burn rate per window",
        "Error ratio over each window the rules record, divided by the error budget: 1 spends the budget exactly over the SLO window. Windows are the SLO's alert windows, 5m and the SLO window.",
        vec![target(
            "A",
            format!(
                "max by (slo, window) ({}) / on (slo) group_left () (1 - max by (slo) ({}))",
                error_ratios(f),
                objective(f)
            ),
            "",
            Query::Table,
        )],
    );
    p["transformations"] = json!([
        {"id": "groupingToMatrix", "options": {
            "columnField": "window", "rowField": "slo", "valueField": "Value",
        }},
    ]);
    p["fieldConfig"]["defaults"] = json!({
        "decimals": 2,
        "thresholds": burn_rate_thresholds(),
        "custom": {"align": "auto", "cellOptions": {"type": "color-text"}},
    });
    p["options"] = json!({"showHeader": true, "cellHeight": "sm"});
    p
}

// ---------------------------------------------------------------------------------------------
// SLO detail

fn detail() -> Value {
    let s = ONE_SLO;
    let budget = detail_budget();
    let mut l = Layout::new();

    l.row("Now");
    let mut status = panel(
        "stat",
        "Status",
        "burnguard's verdict at its last evaluation (/metrics): page or ticket (worst firing alert row), ok, partial (some alert row lacks data), no_data or error.",
        vec![target(
            "A",
            format!("max by (status) ({SLO_STATUS}{{{s}}}) == 1"),
            "{{status}}",
            Query::Instant,
        )],
    );
    status["fieldConfig"]["defaults"] = json!({"color": {"mode": "fixed", "fixedColor": "text"}});
    status["fieldConfig"]["overrides"] = json!(
        [
            ("page", "red"),
            ("ticket", "orange"),
            ("ok", "green"),
            ("partial", "yellow"),
            ("no_data", "blue"),
            ("error", "purple"),
        ]
        .iter()
        .map(|(name, color)| json!({
            "matcher": {"id": "byName", "options": name},
            "properties": [{"id": "color", "value": {"mode": "fixed", "fixedColor": color}}],
        }))
        .collect::<Vec<_>>()
    );
    status["options"] = json!({
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": false},
        "colorMode": "background",
        "graphMode": "none",
        "justifyMode": "center",
        "orientation": "auto",
        "textMode": "name",
    });
    l.add(4, 4, status);
    let mut objective_stat = stat(
        "Objective",
        "The SLO's objective (recording rules).",
        format!("max({})", objective(s)),
        "percentunit",
        thresholds(&[("text", None)]),
    );
    objective_stat["fieldConfig"]["defaults"]["decimals"] = json!(3);
    l.add(3, 4, objective_stat);
    l.add(
        4,
        4,
        stat(
            "Budget remaining",
            "Error budget left over the SLO window (recording rules): 100% untouched, 0 spent, below 0 overspent.",
            format!("min({})", budget_remaining(s)),
            "percentunit",
            budget_thresholds(),
        ),
    );
    let mut exhaustion = stat(
        "Time to exhaustion",
        "How long the budget left lasts at the burn rate of the shortest long alert window, as burnguard computed it (/metrics); 0 once spent, empty when nothing burns.",
        format!("min({SLO_TIME_TO_EXHAUSTION}{{{s}}})"),
        "dtdurations",
        thresholds(&[
            ("red", None),
            ("orange", Some(86_400.0)),
            ("green", Some(604_800.0)),
        ]),
    );
    exhaustion["fieldConfig"]["defaults"]["noValue"] = json!("not burning");
    l.add(4, 4, exhaustion);
    l.add(
        3,
        4,
        stat(
            "Firing alert rows",
            "Alert rows whose long and short windows both burn faster than the row's threshold (/metrics).",
            format!(
                "sum(max by (severity, long_window, short_window) ({SLO_ALERT_FIRING}{{{s}}}))"
            ),
            "none",
            thresholds(&[("green", None), ("red", Some(1.0))]),
        ),
    );
    l.add(
        3,
        4,
        stat(
            "Open incidents",
            "Unresolved incidents of the SLO (/metrics).",
            format!("max({SLO_OPEN_INCIDENTS}{{{s}}})"),
            "none",
            thresholds(&[("green", None), ("red", Some(1.0))]),
        ),
    );
    l.add(
        3,
        4,
        stat(
            "Active freezes",
            "Deployment freezes the SLO's budget rules and playbooks hold (/metrics).",
            format!("max({SLO_ACTIVE_FREEZES}{{{s}}})"),
            "none",
            thresholds(&[("green", None), ("blue", Some(1.0))]),
        ),
    );

    l.row("Error ratio and burn rate (recording rules)");
    let mut ratios = timeseries(
        "Error ratio per window",
        "Bad events over all events in each window the rules record; dashed: the error budget (1 - objective), which a window crosses when it burns faster than 1.",
        "percentunit",
        vec![
            target(
                "A",
                format!("max by (window) ({})", error_ratios(s)),
                "{{window}}",
                Query::Range,
            ),
            target("B", budget.clone(), "error budget", Query::Range),
        ],
    );
    dashed(&mut ratios, "B", "red");
    l.add(12, 9, ratios);
    let mut burn = timeseries(
        "Burn rate per window",
        "Error ratio divided by the error budget, per window (recording rules); dashed: each alert row's threshold (/metrics). A row fires when both its long and short window are above its threshold.",
        "none",
        vec![
            target(
                "A",
                format!(
                    "max by (window) ({}) / on () group_left () {budget}",
                    error_ratios(s)
                ),
                "{{window}}",
                Query::Range,
            ),
            target(
                "B",
                format!(
                    "max by (severity, long_window, short_window) ({SLO_ALERT_THRESHOLD}{{{s}}})"
                ),
                "{{severity}} {{long_window}}/{{short_window}} threshold",
                Query::Range,
            ),
        ],
    );
    dashed(&mut burn, "B", "red");
    l.add(12, 9, burn);
    let mut row = timeseries(
        "Alert row $alert_row",
        "The row's long and short window burn rates (recording rules) against its threshold (dashed, /metrics): it fires while both lines are above the threshold.",
        "none",
        vec![
            target(
                "A",
                format!(
                    "max({}${{alert_row}}{{{s}}}) / {budget}",
                    error_ratio_prefix()
                ),
                "long window $alert_row",
                Query::Range,
            ),
            target(
                "B",
                format!(
                    "max by (window) ({} and on (window) label_replace({SLO_ALERT_THRESHOLD}{{{s}, long_window=\"$alert_row\"}}, \"window\", \"$1\", \"short_window\", \"(.+)\")) / on () group_left () {budget}",
                    error_ratios(s)
                ),
                "short window {{window}}",
                Query::Range,
            ),
            target(
                "C",
                format!(
                    "max by (severity) ({SLO_ALERT_THRESHOLD}{{{s}, long_window=\"$alert_row\"}})"
                ),
                "{{severity}} threshold",
                Query::Range,
            ),
        ],
    );
    dashed(&mut row, "C", "red");
    row["repeat"] = json!("alert_row");
    row["repeatDirection"] = json!("h");
    row["maxPerRow"] = json!(4);
    l.add(6, 8, row);

    l.row("Error budget");
    let mut burn_down = timeseries(
        "Budget burn-down over the SLO window ($window)",
        "Error budget remaining over the SLO window at every moment (recording rules), beside the ideal straight line: what a steady burn rate of 1 would leave, from a full budget at the start of the window to none at its end (for a calendar SLO, of each week or month: the budget resets at the period's start). Below the line the budget goes faster than it should.",
        "percentunit",
        vec![
            target(
                "A",
                format!("min({})", budget_remaining(s)),
                "budget remaining",
                Query::Range,
            ),
            target("B", ideal_burn_down(s), "ideal", Query::Range),
        ],
    );
    dashed(&mut burn_down, "B", "green");
    burn_down["timeFrom"] = json!("$window");
    burn_down["fieldConfig"]["defaults"]["custom"]["axisSoftMin"] = json!(null);
    burn_down["fieldConfig"]["defaults"]["custom"]["fillOpacity"] = json!(10);
    l.add(16, 9, burn_down);
    l.add(
        8,
        9,
        timeseries(
            "Time to exhaustion",
            "How long the budget left would last at the burn rate of the shortest long alert window (/metrics); absent while nothing burns.",
            "s",
            vec![target(
                "A",
                format!("min({SLO_TIME_TO_EXHAUSTION}{{{s}}})"),
                "time to exhaustion",
                Query::Range,
            )],
        ),
    );

    // A grouped SLO's groups, each with its labels as columns; one row for an ungrouped SLO.
    let mut groups = panel(
        "table",
        "Budget per group, worst first",
        "Error budget remaining of each group of a grouped SLO (groupBy), with the group's labels as columns, worst first (recording rules). An ungrouped SLO has one row.",
        vec![target(
            "A",
            format!("sort(min without (__name__) ({}))", budget_remaining(s)),
            "",
            Query::Table,
        )],
    );
    groups["fieldConfig"]["defaults"]["unit"] = json!("percentunit");
    groups["transformations"] = json!([
        {"id": "organize", "options": {"excludeByName": {"Time": true}, "renameByName": {"Value": "Budget remaining"}}}
    ]);
    l.add(24, 6, groups);

    l.row("burnguard's view (/metrics)");
    l.add(
        24,
        7,
        state_timeline(
            "Alert rows",
            "Each alert row as burnguard judged it at every evaluation: firing when both windows burn faster than the row's threshold.",
            format!("max by (severity, long_window, short_window) ({SLO_ALERT_FIRING}{{{s}}})"),
            "{{severity}} {{long_window}}/{{short_window}}",
        ),
    );

    let variables = vec![
        datasource_variable(),
        query_variable(
            "service",
            "Service",
            "Narrows the SLO list",
            format!("label_values({OBJECTIVE_SERIES}, service)"),
            true,
        ),
        query_variable(
            "slo",
            "SLO",
            "The SLO shown",
            format!("label_values({OBJECTIVE_SERIES}{{service=~\"$service\"}}, slo)"),
            false,
        ),
        {
            let mut v = query_variable(
                "window",
                "SLO window",
                "The SLO's window, from burnguard's /metrics: the burn-down panel's time range",
                format!("label_values({SLO_OBJECTIVE}{{{s}}}, window)"),
                false,
            );
            v["hide"] = json!(2);
            v
        },
        query_variable(
            "alert_row",
            "Alert rows (long window)",
            "One panel per alert row of the SLO, by its long window",
            format!("label_values({SLO_ALERT_THRESHOLD}{{{s}}}, long_window)"),
            true,
        ),
    ];
    let annotations = vec![
        builtin_annotation(),
        annotation(
            "Incidents",
            format!("max({SLO_OPEN_INCIDENTS}{{{s}}}) > 0"),
            "red",
            "Incident open",
            "An incident of $slo is open",
        ),
        annotation(
            "Playbook steps",
            {
                // A status whose count grew, or that appeared, within 5 minutes.
                let now = format!("max by (kind, status) ({ACTIONS}{{{s}}})");
                let before = format!("max by (kind, status) ({ACTIONS}{{{s}}} offset 5m)");
                format!("({now} - {before} > 0) or ({now} unless {before})")
            },
            "orange",
            "Playbook step {{kind}}: {{status}}",
            "A remediation step of $slo became {{status}}",
        ),
        annotation(
            "Freezes",
            format!("max({SLO_ACTIVE_FREEZES}{{{s}}}) > 0"),
            "blue",
            "Deployments frozen",
            "A freeze of $slo's budget rules or playbooks is active",
        ),
        annotation(
            "Pages",
            format!(
                "max by (long_window, short_window) ({SLO_ALERT_FIRING}{{{s}, severity=\"page\"}}) == 1"
            ),
            "purple",
            "Page: {{long_window}}/{{short_window}}",
            "The page alert row {{long_window}}/{{short_window}} fires",
        ),
    ];
    dashboard(
        DETAIL_UID,
        "burnguard / SLO detail",
        "One SLO: error ratio and burn rate per window against each alert row's threshold, the budget burn-down over the SLO window, time to exhaustion; incidents, playbook steps, freezes and pages as annotations.",
        variables,
        annotations,
        l,
    )
}

// ---------------------------------------------------------------------------------------------
// burnguard health

fn health() -> Value {
    let i = INSTANCES;
    let mut l = Layout::new();

    l.row("Evaluation");
    l.add(
        4,
        4,
        stat(
            "SLOs loaded",
            "SLO policies loaded per instance, summed.",
            format!("sum({SLOS_LOADED}{{{i}}})"),
            "none",
            thresholds(&[("text", None)]),
        ),
    );
    l.add(
        4,
        4,
        stat(
            "Evaluation lag",
            "Time since the last cycle in which every query succeeded, worst instance.",
            format!("max(time() - {LAST_SUCCESS}{{{i}}})"),
            "s",
            thresholds(&[
                ("green", None),
                ("orange", Some(120.0)),
                ("red", Some(600.0)),
            ]),
        ),
    );
    l.add(
        8,
        8,
        timeseries(
            "Evaluation duration",
            "Time one evaluation cycle takes: median and 99th percentile per instance.",
            "s",
            vec![
                target(
                    "A",
                    format!(
                        "histogram_quantile(0.5, sum by (le, instance) (rate({EVALUATION_DURATION_BUCKET}{{{i}}}[$__rate_interval])))"
                    ),
                    "p50 {{instance}}",
                    Query::Range,
                ),
                target(
                    "B",
                    format!(
                        "histogram_quantile(0.99, sum by (le, instance) (rate({EVALUATION_DURATION_BUCKET}{{{i}}}[$__rate_interval])))"
                    ),
                    "p99 {{instance}}",
                    Query::Range,
                ),
            ],
        ),
    );
    l.add(
        8,
        8,
        timeseries(
            "Evaluation lag",
            "Seconds since the last fully successful cycle: it grows while Prometheus cannot be reached or answers with errors.",
            "s",
            vec![target(
                "A",
                format!("time() - {LAST_SUCCESS}{{{i}}}"),
                "{{instance}}",
                Query::Range,
            )],
        ),
    );

    l.row("Prometheus queries");
    l.add(
        12,
        8,
        timeseries(
            "Queries",
            "Queries burnguard sends to Prometheus per second.",
            "reqps",
            vec![target(
                "A",
                format!("sum by (instance) (rate({QUERIES}{{{i}}}[$__rate_interval]))"),
                "{{instance}}",
                Query::Range,
            )],
        ),
    );
    l.add(
        12,
        8,
        timeseries(
            "Query errors by reason",
            "Failed or partial answers per second: timeout, unreachable, rejected, bad_response, partial_response. Such a window has no data; nothing is decided on it.",
            "reqps",
            vec![target(
                "A",
                format!("sum by (reason) (rate({QUERY_ERRORS}{{{i}}}[$__rate_interval]))"),
                "{{reason}}",
                Query::Range,
            )],
        ),
    );

    l.row("Remediation, webhooks and notifications");
    l.add(
        8,
        8,
        timeseries(
            "Remediation steps by status",
            "Steps in the action journal by status (succeeded, failed, skipped, awaiting approval, ...). Every replica reports the same store, so replicas are folded with max.",
            "none",
            vec![target(
                "A",
                format!("sum by (status) (max by (slo, kind, status) ({ACTIONS}{{{i}}}))"),
                "{{status}}",
                Query::Range,
            )],
        ),
    );
    l.add(
        8,
        8,
        timeseries(
            "Webhook intake",
            "Webhook requests per second by source (alertmanager, pagerduty, opsgenie) and HTTP status: 2xx accepted, 401 refused credentials, 400 malformed.",
            "reqps",
            vec![target(
                "A",
                format!(
                    "sum by (source, code) (rate({WEBHOOK_REQUESTS}{{{i}}}[$__rate_interval]))"
                ),
                "{{source}} {{code}}",
                Query::Range,
            )],
        ),
    );
    l.add(
        8,
        8,
        timeseries(
            "Notification outbox",
            "Notifications not yet delivered (all channels): it grows while a pager or webhook receiver is down, and empties as retries succeed.",
            "none",
            vec![target(
                "A",
                format!("max({OUTBOX_PENDING}{{{i}}})"),
                "pending",
                Query::Range,
            )],
        ),
    );

    l.row("Policies and store");
    l.add(
        12,
        7,
        timeseries(
            "Policy reloads",
            "Reloads on SIGHUP or file change by result: applied, or rejected (the new set did not validate and the old one kept running).",
            "none",
            vec![target(
                "A",
                format!(
                    "sum by (result) (increase({POLICY_RELOADS}{{{i}}}[$__rate_interval]))"
                ),
                "{{result}}",
                Query::Range,
            )],
        ),
    );
    l.add(
        12,
        7,
        timeseries(
            "Store errors",
            "Evaluations, incident changes or counts that could not be written to or read from the database.",
            "none",
            vec![target(
                "A",
                format!(
                    "sum by (instance) (increase({STORE_ERRORS}{{{i}}}[$__rate_interval]))"
                ),
                "{{instance}}",
                Query::Range,
            )],
        ),
    );

    let variables = vec![
        datasource_variable(),
        query_variable(
            "instance",
            "Instance",
            "burnguard instances Prometheus scrapes",
            format!("label_values({SLOS_LOADED}, instance)"),
            true,
        ),
    ];
    dashboard(
        HEALTH_UID,
        "burnguard / health",
        "burnguard itself, from its /metrics: evaluation duration and lag, Prometheus queries and errors, remediation steps, webhook intake, the notification outbox, policy reloads, store errors.",
        variables,
        vec![builtin_annotation()],
        l,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `expr` in a dashboard: panel targets and annotations.
    fn exprs(dashboard: &Value) -> Vec<String> {
        let mut out = Vec::new();
        for panel in dashboard["panels"].as_array().unwrap() {
            for target in panel["targets"].as_array().into_iter().flatten() {
                out.push(target["expr"].as_str().unwrap().to_string());
            }
        }
        for a in dashboard["annotations"]["list"].as_array().unwrap() {
            if let Some(expr) = a["expr"].as_str() {
                out.push(expr.to_string());
            }
        }
        out
    }

    /// Grafana's substitution, with one plausible value per variable.
    fn substitute(expr: &str) -> String {
        expr.replace("${alert_row}", "1h")
            .replace("$alert_row", "1h")
            .replace("$__rate_interval", "5m")
            .replace("$slo", "checkout")
            .replace("$team", ".*")
            .replace("$service", ".*")
            .replace("$instance", ".*")
    }

    #[test]
    fn every_query_parses_as_promql_once_its_variables_are_substituted() {
        for d in all() {
            for expr in exprs(&d.json) {
                let text = substitute(&expr);
                assert!(
                    promql_parser::parser::parse(&text).is_ok(),
                    "{}: {text}: {:?}",
                    d.file_name,
                    promql_parser::parser::parse(&text).err()
                );
            }
        }
    }

    #[test]
    fn panels_have_unique_ids_and_fit_the_grid() {
        for d in all() {
            let panels = d.json["panels"].as_array().unwrap();
            let mut ids: Vec<u64> = panels.iter().map(|p| p["id"].as_u64().unwrap()).collect();
            let count = ids.len();
            ids.sort();
            ids.dedup();
            assert_eq!(ids.len(), count, "{}", d.file_name);
            for p in panels {
                let grid = &p["gridPos"];
                let (x, w) = (grid["x"].as_u64().unwrap(), grid["w"].as_u64().unwrap());
                assert!(x + w <= 24, "{}: {}", d.file_name, p["title"]);
            }
        }
    }

    #[test]
    fn only_exported_burnguard_series_are_read() {
        for d in all() {
            for expr in exprs(&d.json) {
                for word in expr.split(|c: char| !(c.is_alphanumeric() || c == '_')) {
                    if word.starts_with("burnguard_") && word != "burnguard_rules_hash" {
                        assert!(
                            exported::ALL.contains(&word),
                            "{}: {word} is not in `exported`",
                            d.file_name
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn the_recorded_series_come_from_the_rules_names() {
        assert_eq!(error_ratio_prefix(), "burnguard:sli_error:ratio_rate");
        let overview = to_text(&overview());
        assert!(overview.contains(BUDGET_REMAINING_SERIES));
        assert!(overview.contains(OBJECTIVE_SERIES));
    }

    #[test]
    fn the_output_is_the_same_every_time() {
        let first: Vec<String> = all().iter().map(|d| to_text(&d.json)).collect();
        let second: Vec<String> = all().iter().map(|d| to_text(&d.json)).collect();
        assert_eq!(first, second);
    }
}
