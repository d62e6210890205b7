//! The pages' markup (maud, checked at compile time): the layout every page shares, the SLO
//! list and its rows, an SLO's detail, an incident, the freezes, and the token page that
//! `--protect-reads` puts in front of them.
//!
//! Owns: HTML. Must not touch: I/O; numbers are formatted by `view`.

use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::view::{self, Filter, SloRow};
use crate::ports::{ActionRecord, FreezeRecord, IncidentDetail, IncidentRecord};

/// Which part of the site a page belongs to, for the navigation.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Slos,
    Incidents,
    Freezes,
    Backtest,
}

/// The frame of every page: navigation, theme and token controls, the page's scripts.
pub fn layout(title: &str, section: Section, body: Markup) -> Markup {
    let nav = |target: Section, href: &str, label: &str| {
        html! {
            a href=(href) aria-current=[(section == target).then_some("page")] { (label) }
        }
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · burnguard" }
                link rel="stylesheet" href="/ui/assets/app.css";
                script src="/ui/assets/app.js" defer {}
            }
            body {
                header.top {
                    a.brand href="/ui/" { "burnguard" }
                    nav {
                        (nav(Section::Slos, "/ui/", "SLOs"))
                        (nav(Section::Incidents, "/ui/incidents", "Incidents"))
                        (nav(Section::Freezes, "/ui/freezes", "Freezes"))
                        (nav(Section::Backtest, "/ui/backtest", "Backtest"))
                    }
                    span.spacer {}
                    button #theme type="button" title="Switch between dark and light" { "Theme" }
                    button #token-button type="button" title="The API token actions use (kept for this tab only)" { "Token" }
                }
                div #notice role="status" aria-live="polite" {}
                dialog #token-dialog {
                    form method="dialog" {
                        label for="token-input" { "API token (kept for this tab only)" }
                        input #token-input type="password" autocomplete="off" required;
                        div.buttons {
                            button type="submit" value="ok" { "Use token" }
                            button type="submit" value="cancel" formnovalidate { "Cancel" }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

fn status_badge(status: &str) -> Markup {
    html! { span class={ "badge status-" (status) } { (status) } }
}

/// A link to an SLO's detail page.
pub fn slo_href(key: &str) -> String {
    format!("/ui/slos/{}", view::url_encode(key))
}

/// The SLO list: filters, then the table whose body the page polls for.
pub fn slo_list(rows: &[SloRow], filter: &Filter, services: &[String], teams: &[String]) -> Markup {
    let select = |name: &str, label: &str, options: &[String], current: &str| {
        html! {
            label {
                (label) " "
                select name=(name) {
                    option value="" { "all" }
                    @for option in options {
                        option value=(option) selected[option == current] { (option) }
                    }
                }
            }
        }
    };
    let statuses: Vec<String> = ["page", "ticket", "error", "no_data", "partial", "ok"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    html! {
        form.filters method="get" action="/ui/" {
            (select("service", "Service", services, &filter.service))
            (select("team", "Team", teams, &filter.team))
            (select("status", "Status", &statuses, &filter.status))
            label { "Name " input type="search" name="q" value=(filter.q) placeholder="part of a name"; }
            button type="submit" { "Filter" }
            span.muted #updated { (rows.len()) " SLOs" }
        }
        table.slos #slo-table data-poll=(format!("/ui/rows?{}", filter.query())) {
            thead {
                tr {
                    th { "SLO" }
                    th { "Status" }
                    th { "Objective" }
                    th.budget { "Budget left" }
                    th { "Exhausted in" }
                    th { "Burn rate (long / short) vs threshold" }
                    th { "Incident" }
                    th { "Freeze" }
                }
            }
            tbody #slo-rows { (slo_rows(rows)) }
        }
    }
}

/// The list's rows (also served alone, for polling).
pub fn slo_rows(rows: &[SloRow]) -> Markup {
    html! {
        @if rows.is_empty() {
            tr { td colspan="8" .muted { "No SLO has been evaluated yet, or none matches the filter." } }
        }
        @for r in rows {
            tr class={ "row-" (r.status) } data-key=(r.key) {
                td.name {
                    a href=(slo_href(&r.key)) { (r.name) }
                    @if !r.group.is_empty() { " " span.group { (r.group) } }
                    div.muted { (r.service) @if let Some(team) = &r.team { " · " (team) } }
                }
                td { (status_badge(&r.status))
                    @if let Some(error) = &r.error { div.error-text title=(error) { (error) } }
                }
                td { (view::objective(r.objective)) div.muted { (r.window) } }
                td.budget data-budget=[r.budget_remaining] {
                    div.bar { div class={ "fill" @if r.budget_remaining.unwrap_or(0.0) < 0.25 { " low" } } style=(format!("width:{:.1}%", view::bar_width(r.budget_remaining))) {} }
                    span.budget-text { (view::percent(r.budget_remaining)) }
                }
                td { (view::duration(r.time_to_exhaustion)) }
                td.burn {
                    @for a in &r.alerts {
                        div class={ "alert-row" @if a.firing { " firing" } } data-severity=(a.severity) data-long=(a.long_window) {
                            span.sev { (a.severity) }
                            " " (a.long_window) " " span.burn-long { (view::burn(a.long_burn)) }
                            " / " (a.short_window) " " span.burn-short { (view::burn(a.short_burn)) }
                            " " span.threshold { "≥ " (view::burn(Some(a.factor))) }
                        }
                    }
                }
                td {
                    @if let Some((id, severity, status)) = &r.incident {
                        a href=(format!("/ui/incidents/{id}")) { "#" (id) } " " (severity) " · " (status)
                    } @else { span.muted { "none" } }
                }
                td {
                    @if r.freezes.is_empty() { span.muted { "—" } }
                    @else { a href="/ui/freezes" .frozen { "frozen" } }
                }
            }
        }
    }
}

/// An SLO's detail: its numbers, charts, incidents, policy and rules.
pub struct SloDetail<'a> {
    pub row: &'a SloRow,
    pub range: &'a str,
    pub charts: Vec<String>,
    pub incidents: &'a [IncidentRecord],
    pub freezes: &'a [FreezeRecord],
    pub policy: Option<String>,
    pub rules: Option<String>,
    /// A calendar SLO: its budget chart has the ideal line.
    pub calendar: bool,
    pub source: ChartSource,
}

/// Where the detail charts' lines come from.
#[derive(Clone, Debug, PartialEq)]
pub enum ChartSource {
    /// Replayed over Prometheus's history at this step, as `burnguard backtest` does.
    Replayed { step: u64 },
    /// burnguard's stored evaluations, because the replay could not run.
    Stored { why: String },
}

pub fn slo_detail(d: &SloDetail<'_>) -> Markup {
    let r = d.row;
    html! {
        h1 { (r.name) @if !r.group.is_empty() { " " span.group { (r.group) } } " " (status_badge(&r.status)) }
        div.tiles {
            div.tile { div.label { "Objective" } div.value { (view::objective(r.objective)) } div.muted { "over " (r.window) } }
            div.tile { div.label { "Budget left" } div.value data-budget=[r.budget_remaining] { (view::percent(r.budget_remaining)) } }
            div.tile { div.label { "Exhausted in" } div.value { (view::duration(r.time_to_exhaustion)) } }
            div.tile { div.label { "Evaluated" } div.value.small { (view::time(r.evaluated_at)) } }
        }
        @if let Some(error) = &r.error { p.error-text { (error) } }
        form.filters method="get" {
            label { "Range "
                select name="range" {
                    @for option in super::RANGES {
                        option value=(option) selected[option == d.range] {
                            @if option == "window" { "the SLO's window (" (r.window) ")" } @else { (option) }
                        }
                    }
                }
            }
            button type="submit" { "Show" }
        }
        @for chart in &d.charts { figure { (PreEscaped(chart)) } }
        p.muted.source {
            @match &d.source {
                ChartSource::Replayed { step } => {
                    "Replayed from Prometheus's history every " (view::duration(Some(*step as f64)))
                    ", as " code { "burnguard backtest" } " does"
                    @if d.calendar { " (the calendar budget: burnguard's stored evaluations)" }
                    ". "
                }
                ChartSource::Stored { why } => {
                    "From burnguard's stored evaluations (kept for its evaluation retention): " (why) ". "
                }
            }
            "Markers: incidents opened, playbook steps, freezes set and lifted. "
            @if d.calendar { "The dashed line is the ideal: the budget spent evenly over the period." }
            @else { "A rolling window has no start to burn down from, so there is no ideal line: each point is the budget left of the window ending then." }
        }
        h2 { "Alert rows" }
        table {
            thead { tr { th { "Severity" } th { "Long window" } th { "Short window" } th { "Threshold" } th { "Firing" } } }
            tbody {
                @for a in &r.alerts {
                    tr class={ @if a.firing { "firing" } } {
                        td { (a.severity) }
                        td { (a.long_window) ": " (view::burn(a.long_burn)) }
                        td { (a.short_window) ": " (view::burn(a.short_burn)) }
                        td { (view::burn(Some(a.factor))) }
                        td { @if a.firing { "yes" } @else { "no" } }
                    }
                }
            }
        }
        h2 { "Incidents" }
        (incident_table(d.incidents))
        h2 { "Freezes" }
        (freeze_table(d.freezes, false))
        @if let Some(policy) = &d.policy { h2 { "Policy as loaded" } pre.code { (policy) } }
        @if let Some(rules) = &d.rules { h2 { "Generated rules" } pre.code { (rules) } }
    }
}

pub fn incident_table(incidents: &[IncidentRecord]) -> Markup {
    html! {
        @if incidents.is_empty() { p.muted { "None." } }
        @else {
            table.incidents {
                thead { tr { th { "#" } th { "SLO" } th { "Severity" } th { "Status" } th { "Opened" } th { "Resolved" } th { "Peak burn" } } }
                tbody {
                    @for i in incidents {
                        tr class={ "incident-" (i.status) } {
                            td { a href=(format!("/ui/incidents/{}", i.id)) { "#" (i.id) } }
                            td { a href=(slo_href(&i.slo)) { (i.slo) } }
                            td { (i.severity) }
                            td { (i.status) }
                            td { (view::time(i.opened_at)) }
                            td { @if let Some(at) = i.resolved_at { (view::time(at)) } @else { "—" } }
                            td { (view::burn(Some(i.peak_burn_rate))) }
                        }
                    }
                }
            }
        }
    }
}

fn action_row(a: &ActionRecord) -> Markup {
    html! {
        tr class={ "action-" (a.status) } data-action=(a.id) {
            td { (a.step) }
            td { (a.kind) }
            td.action-status { (a.status) @if a.dry_run { " (dry run)" } }
            td { (view::time(a.created_at)) }
            td { @if let Some(outcome) = &a.outcome { code { (outcome.to_string()) } } }
        }
    }
}

/// A button that calls the API (`method path` with the form's note) once a token is known.
fn api_button(label: &str, method: &str, path: &str, class: &str) -> Markup {
    html! {
        button type="button" class={ "api " (class) } data-method=(method) data-path=(path) { (label) }
    }
}

pub fn incident_page(d: &IncidentDetail) -> Markup {
    let i = &d.incident;
    let waiting = d.actions.iter().any(|a| a.status == "awaiting_approval");
    let base = format!("/api/v1/incidents/{}", i.id);
    html! {
        h1 { "Incident #" (i.id) " " span class={ "badge status-" (i.severity) } { (i.severity) } " " span.badge { (i.status) } }
        p {
            "SLO " a href=(slo_href(&i.slo)) { (i.slo) } " · service " (i.service)
            " · opened " (view::time(i.opened_at))
            @if let Some(at) = i.acknowledged_at { " · acknowledged " (view::time(at)) }
            @if let Some(at) = i.resolved_at { " · resolved " (view::time(at)) }
            " · peak burn " (view::burn(Some(i.peak_burn_rate)))
            " · budget at open " (view::percent(i.budget_remaining_at_open))
        }
        form.actions data-api-form {
            label for="note" { "Note (required to add one; optional for the others)" }
            textarea #note name="note" rows="2" maxlength="4096" {}
            div.buttons {
                @if i.status == "open" { (api_button("Acknowledge", "POST", &format!("{base}/ack"), "ack")) }
                @if waiting { (api_button("Approve waiting steps", "POST", &format!("{base}/approve"), "approve")) }
                @if i.status != "resolved" { (api_button("Resolve", "POST", &format!("{base}/resolve"), "resolve")) }
                (api_button("Add note", "POST", &format!("{base}/notes"), "note"))
            }
        }
        h2 { "Playbook steps" }
        @if d.actions.is_empty() { p.muted { "No step has been journaled." } }
        @else {
            table.actions {
                thead { tr { th { "Step" } th { "Kind" } th { "Journal state" } th { "Journaled" } th { "Outcome" } } }
                tbody { @for a in &d.actions { (action_row(a)) } }
            }
        }
        h2 { "Timeline" }
        ol.timeline {
            @for e in &d.timeline {
                li class={ "event-" (e.kind) } {
                    time { (view::time(e.at)) } " "
                    span.kind { (e.kind) } " "
                    (e.message)
                    @if let Some(actor) = &e.actor { " " span.muted { "— " (actor) } }
                    @if let Some(detail) = &e.detail {
                        details { summary { "detail" } pre.code { (serde_json::to_string_pretty(detail).unwrap_or_default()) } }
                    }
                }
            }
        }
    }
}

pub fn incidents_page(incidents: &[IncidentRecord]) -> Markup {
    html! {
        h1 { "Incidents" }
        (incident_table(incidents))
    }
}

fn freeze_table(freezes: &[FreezeRecord], with_lift: bool) -> Markup {
    html! {
        @if freezes.is_empty() { p.muted { "None active." } }
        @else {
            table.freezes {
                thead { tr { th { "#" } th { "Covers" } th { "Why" } th { "Since" } th { "By" } @if with_lift { th {} } } }
                tbody {
                    @for f in freezes {
                        tr data-freeze=(f.id) {
                            td { (f.id) }
                            td { (covers(f)) }
                            td { (f.reason)
                                @if let Some(id) = f.incident_id { " (" a href=(format!("/ui/incidents/{id}")) { "incident #" (id) } ")" } }
                            td { (view::time(f.created_at)) }
                            td { (f.created_by) }
                            @if with_lift {
                                td { form data-api-form { (api_button("Lift", "DELETE", &format!("/api/v1/freezes/{}", f.id), "lift")) } }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// What a freeze covers, in words.
fn covers(f: &FreezeRecord) -> String {
    let mut parts = Vec::new();
    if let Some(service) = &f.service {
        parts.push(format!("service {service}"));
    }
    if let Some(slo) = &f.slo {
        parts.push(format!("SLO {slo}"));
    }
    if let Some(ns) = &f.namespace {
        parts.push(format!("namespace {ns}"));
    }
    if !f.deployments.is_empty() {
        parts.push(format!("deployments {}", f.deployments.join(", ")));
    }
    if let Some(selector) = &f.selector {
        parts.push(format!("selector {selector}"));
    }
    if parts.is_empty() {
        "everything".into()
    } else {
        parts.join("; ")
    }
}

pub fn freezes_page(freezes: &[FreezeRecord], past: &[FreezeRecord]) -> Markup {
    html! {
        h1 { "Freezes" }
        p.muted { "A freeze makes the CI gate answer 423 and the admission webhook refuse changes to what it covers, until it is lifted." }
        (freeze_table(freezes, true))
        h2 { "Lifted" }
        @if past.is_empty() { p.muted { "None." } }
        @else {
            table.freezes.past {
                thead { tr { th { "#" } th { "Covered" } th { "Why" } th { "From" } th { "Lifted" } th { "By" } } }
                tbody {
                    @for f in past {
                        tr data-lifted=(f.id) {
                            td { (f.id) }
                            td { (covers(f)) }
                            td { (f.reason) }
                            td { (view::time(f.created_at)) " by " (f.created_by) }
                            td { @if let Some(at) = f.lifted_at { (view::time(at)) } }
                            td { (f.lifted_by.as_deref().unwrap_or("")) }
                        }
                    }
                }
            }
        }
        h2 { "Freeze by hand" }
        form.freeze-form data-api-form data-method="POST" data-path="/api/v1/freezes" {
            label { "Service " input name="service" placeholder="checkout"; }
            label { "Namespace " input name="namespace" placeholder="shop"; }
            label { "Deployments " input name="deployments" placeholder="web, worker"; }
            label { "Selector " input name="selector" placeholder="app=web"; }
            label { "Reason " input name="reason" required placeholder="why, for whoever asks"; }
            button type="button" class="api freeze" data-method="POST" data-path="/api/v1/freezes" data-form-json { "Freeze" }
        }
    }
}

/// What `--protect-reads` shows without a token: a form that asks for one, then loads the
/// page with it.
pub fn token_page() -> Markup {
    layout(
        "Token needed",
        Section::Slos,
        html! {
            h1 { "A token is needed to read" }
            p { "This burnguard protects reads. Give an API token; the page keeps it for this tab only." }
            p { button #token-load type="button" { "Give a token" } }
        },
    )
}

/// The backtest form's choices, as the page was asked.
pub struct BacktestForm<'a> {
    pub slos: &'a [String],
    pub slo: &'a str,
    pub policy: &'a str,
    pub range: &'a str,
    pub step: u64,
}

/// One replayed SLO (group): its summary, transitions and charts.
pub struct BacktestResult<'a> {
    pub replay: &'a crate::engine::backtest::SloBacktest,
    pub charts: Vec<String>,
}

pub fn backtest_page(
    form: &BacktestForm<'_>,
    period: Option<(i64, i64, u64)>,
    problems: &[String],
    results: &[BacktestResult<'_>],
) -> Markup {
    html! {
        h1 { "Backtest" }
        p.muted { "Replays an SLO's alert rows and budget over Prometheus's history with the same assessment a live cycle makes: when it would have paged and ticketed, and how low the budget went. Nothing is recorded or run." }
        form.backtest method="post" action="/ui/backtest" {
            label { "Loaded SLO "
                select name="slo" {
                    option value="" { "—" }
                    @for name in form.slos { option value=(name) selected[name == form.slo] { (name) } }
                }
            }
            label { "Period ending now "
                select name="range" {
                    @for option in ["6h", "1d", "3d", "7d", "14d", "30d"] {
                        option value=(option) selected[option == form.range] { (option) }
                    }
                }
            }
            label { "Step (seconds, 0: automatic) " input type="number" name="step" min="0" value=(form.step); }
            label.wide { "Or paste a policy (burnguard, Sloth, Pyrra or OpenSLO YAML); it replaces the SLO chosen above"
                textarea name="policy" rows="8" maxlength="200000" { (form.policy) }
            }
            button type="submit" { "Replay" }
        }
        @for problem in problems { p.error-text { (problem) } }
        @if let Some((from, to, step)) = period {
            p.muted.period data-from=(from) data-to=(to) data-step=(step) {
                "Replayed " (view::time(from)) " to " (view::time(to)) " every " (view::duration(Some(step as f64))) "."
            }
        }
        @for r in results {
            @let b = r.replay;
            section.replay data-slo=(b.name) {
                h2 { (b.name)
                    @if !b.group.is_empty() {
                        " " span.group { (b.group.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ")) }
                    }
                }
                @if let Some(error) = &b.error { p.error-text { (error) } }
                @else {
                    table.summary {
                        tbody {
                            tr { th { "Would have paged" } td.pages data-pages=(b.summary.pages) { (view::times(b.summary.pages as u64)) ", " (view::duration(Some(b.summary.time_paging_seconds as f64))) " in all" } }
                            tr { th { "Would have ticketed" } td.tickets data-tickets=(b.summary.tickets) { (view::times(b.summary.tickets as u64)) ", " (view::duration(Some(b.summary.time_ticketing_seconds as f64))) " in all" } }
                            tr { th { "Without whole data" } td { (view::duration(Some(b.summary.time_without_data_seconds as f64))) } }
                            tr { th { "Lowest budget" } td { (view::percent(b.summary.lowest_budget_remaining))
                                @if let Some(at) = b.summary.lowest_budget_at { " at " (view::time(at)) } } }
                        }
                    }
                    @for chart in &r.charts { figure { (PreEscaped(chart)) } }
                    @if !b.transitions.is_empty() {
                        table.transitions {
                            thead { tr { th { "When" } th { "Alert row" } th { "Change" } } }
                            tbody {
                                @for t in &b.transitions {
                                    tr class={ "change-" (t.severity) } {
                                        td { (view::time(t.at)) }
                                        td { (t.severity) " " (t.long_window) " / " (t.short_window) }
                                        td { (format!("{:?}", t.change).to_lowercase()) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
