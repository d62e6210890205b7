//! The web UI under `/ui/` on `serve`'s port: the SLO list (worst first, polled for fresh
//! numbers), an SLO's detail with its charts, incidents, freezes. Pages are rendered on the
//! server from the store (the same source as the API, so every replica shows the same); the
//! charts are SVG drawn here; the little JavaScript there is (polling, the token, buttons
//! that call the API) is served from the binary. Nothing is fetched from elsewhere.
//!
//! Reads follow `--protect-reads`: with it, a page asks for a token and loads itself again
//! with it. Actions are API calls with the tab's token, so they land on the timeline under
//! the token's name.
//!
//! Owns: the UI's routes and what each page reads. Must not touch: evaluation, the API's
//! rules (actions go through the API).

pub mod chart;
pub mod pages;
pub mod view;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use maud::Markup;

use crate::http::auth;
use crate::http::state::ServiceState;
use crate::ports::{EvaluationPoint, Freezes, IncidentFilter, IncidentRecord, Operations, Store};
use pages::Section;
use view::{Filter, SloRow};

const CSS: &str = include_str!("assets/app.css");
const JS: &str = include_str!("assets/app.js");

/// `/` and the `/ui/` pages.
pub fn router(state: Arc<ServiceState>) -> Router<Arc<ServiceState>> {
    let pages = Router::new()
        .route("/ui/", get(slo_list))
        .route("/ui/rows", get(slo_rows))
        .route("/ui/slos/{key}", get(slo_detail))
        .route("/ui/incidents", get(incidents))
        .route("/ui/incidents/{id}", get(incident))
        .route("/ui/freezes", get(freezes))
        .route("/ui/backtest", get(backtest).post(backtest_posted))
        .route_layer(axum::middleware::from_fn_with_state(state, require_reader));
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/") }))
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route(
            "/ui/assets/app.css",
            get(|| async { asset(CSS, "text/css") }),
        )
        .route(
            "/ui/assets/app.js",
            get(|| async { asset(JS, "text/javascript") }),
        )
        .merge(pages)
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("max-age=300"),
            ),
        ],
        body,
    )
        .into_response()
}

/// With `--protect-reads`, a page without a valid token is the token page (401).
async fn require_reader(
    State(state): State<Arc<ServiceState>>,
    request: Request,
    next: Next,
) -> Response {
    if !state.api_auth.protect_reads {
        return next.run(request).await;
    }
    let accepted = auth::credentials(request.headers(), "Bearer")
        .and_then(|token| state.api_auth.accepts(token))
        .is_some();
    if accepted {
        next.run(request).await
    } else {
        (StatusCode::UNAUTHORIZED, html(pages::token_page())).into_response()
    }
}

fn html(markup: Markup) -> Html<String> {
    Html(markup.into_string())
}

/// A store failure, as a page.
fn failed(error: impl std::fmt::Display) -> Response {
    tracing::warn!(%error, "a UI page could not read the store");
    let body = pages::layout(
        "Unavailable",
        Section::Slos,
        maud::html! { h1 { "The store could not be read" } p { "Try again in a moment; burnguard's log says why." } },
    );
    (StatusCode::SERVICE_UNAVAILABLE, html(body)).into_response()
}

fn not_found(what: String) -> Response {
    let body = pages::layout("Not found", Section::Slos, maud::html! { h1 { (what) } });
    (StatusCode::NOT_FOUND, html(body)).into_response()
}

/// Every SLO's latest evaluation as a row, worst first.
async fn rows(state: &ServiceState) -> Result<Vec<SloRow>, crate::ports::StoreError> {
    let latest = state.latest_points().await?;
    let incidents = state.store.unresolved_incidents().await?;
    let by_key: HashMap<String, &IncidentRecord> =
        incidents.iter().map(|i| (i.slo.clone(), i)).collect();
    let freezes = state.store.active_freezes().await?;
    let labels = state.slo_labels();
    let mut rows: Vec<SloRow> = latest
        .iter()
        .map(|p: &EvaluationPoint| {
            let name = p.snapshot["name"].as_str().unwrap_or_default();
            view::row(
                &p.snapshot,
                p.evaluated_at,
                labels.get(name),
                &by_key,
                &freezes,
            )
        })
        .collect();
    view::rank(&mut rows);
    Ok(rows)
}

async fn slo_list(
    State(state): State<Arc<ServiceState>>,
    Query(filter): Query<Filter>,
) -> Response {
    let rows = match rows(&state).await {
        Ok(rows) => rows,
        Err(error) => return failed(error),
    };
    let services: BTreeSet<String> = rows.iter().map(|r| r.service.clone()).collect();
    let teams: BTreeSet<String> = rows.iter().filter_map(|r| r.team.clone()).collect();
    let shown: Vec<SloRow> = rows.into_iter().filter(|r| filter.matches(r)).collect();
    let services: Vec<String> = services.into_iter().collect();
    let teams: Vec<String> = teams.into_iter().collect();
    html(pages::layout(
        "SLOs",
        Section::Slos,
        pages::slo_list(&shown, &filter, &services, &teams),
    ))
    .into_response()
}

/// The list's rows alone, for the page's polling.
async fn slo_rows(
    State(state): State<Arc<ServiceState>>,
    Query(filter): Query<Filter>,
) -> Response {
    match rows(&state).await {
        Ok(rows) => {
            let shown: Vec<SloRow> = rows.into_iter().filter(|r| filter.matches(r)).collect();
            html(pages::slo_rows(&shown)).into_response()
        }
        Err(error) => failed(error),
    }
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct RangeQuery {
    range: String,
}

/// The ranges the detail page offers; `window` is the SLO's own: the rolling window up to
/// now, or the whole current calendar period (its future part empty).
pub const RANGES: [&str; 6] = ["1h", "6h", "1d", "3d", "7d", "window"];

/// The chart span `[from, to]` for a range name at `now`; one day unless it is one of
/// [`RANGES`].
pub fn chart_span(
    range: &str,
    now: i64,
    slo: Option<&crate::domain::policy::Slo>,
) -> (&'static str, i64, i64) {
    let back = |name: &'static str, seconds: i64| (name, now - seconds, now);
    match range {
        "1h" => back("1h", 3_600),
        "6h" => back("6h", 6 * 3_600),
        "3d" => back("3d", 3 * 86_400),
        "7d" => back("7d", 7 * 86_400),
        "window" => match slo {
            Some(slo) => match slo.calendar.as_ref().map(|c| c.period_at(now)) {
                Some(Ok(period)) => ("window", period.start, period.end),
                _ => back(
                    "window",
                    i64::try_from(slo.window.as_secs()).unwrap_or(i64::MAX / 2),
                ),
            },
            None => back("1d", 86_400),
        },
        _ => back("1d", 86_400),
    }
}

/// The calendar ideal: the budget left if it were spent evenly over each period, from 100%
/// at the period's start to 0% at its end; one run per period in `[from, to]`, broken
/// between periods (the budget resets there).
pub fn ideal_line(
    calendar: &crate::domain::calendar::CalendarWindow,
    from: i64,
    to: i64,
) -> Points {
    let mut points = Vec::new();
    let mut at = from;
    while at < to {
        let Ok(period) = calendar.period_at(at) else {
            break;
        };
        let (start, end) = (at.max(period.start), to.min(period.end));
        let left = |t: i64| 1.0 - period.elapsed(t) as f64 / period.length() as f64;
        if !points.is_empty() {
            points.push((start, None));
        }
        points.push((start, Some(left(start))));
        points.push((end, Some(left(end))));
        if period.end <= at {
            break;
        }
        at = period.end;
    }
    points
}

/// At most this many points per line: enough for the chart's width.
const CHART_POINTS: usize = 720;

async fn slo_detail(
    State(state): State<Arc<ServiceState>>,
    Path(key): Path<String>,
    Query(q): Query<RangeQuery>,
) -> Response {
    let all = match rows(&state).await {
        Ok(rows) => rows,
        Err(error) => return failed(error),
    };
    let Some(row) = all.iter().find(|r| r.key == key) else {
        return not_found(format!("No SLO `{key}` has been evaluated"));
    };
    let slo = state.slo(&row.name);
    let (range, from, to) = chart_span(&q.range, chrono::Utc::now().timestamp(), slo.as_ref());
    let history = match state.store.evaluation_history(&key, from, to, 50_000).await {
        Ok(points) => points,
        Err(error) => return failed(error),
    };
    let incidents = match state
        .store
        .list_incidents(&IncidentFilter {
            status: None,
            slo: Some(key.clone()),
            limit: Some(100),
        })
        .await
    {
        Ok(incidents) => incidents,
        Err(error) => return failed(error),
    };
    let active = match state.store.active_freezes().await {
        Ok(active) => active,
        Err(error) => return failed(error),
    };
    let mut marks = match event_marks(&state, row, &incidents, &active, from, to).await {
        Ok(marks) => marks,
        Err(error) => return failed(error),
    };
    let freezes: Vec<crate::ports::FreezeRecord> = active
        .into_iter()
        .filter(|f| row.freezes.contains(&f.id))
        .collect();
    marks.ideal = slo
        .as_ref()
        .and_then(|s| s.calendar.as_ref())
        .map(|calendar| ideal_line(calendar, from, to));
    let stored = stored_series(row, &history);
    let (series, source) = match (&slo, &state.prometheus) {
        (Some(slo), Some(prometheus)) => {
            let step = backtest_step(to - from, 0);
            let replays = crate::engine::backtest::backtest(
                prometheus,
                std::slice::from_ref(slo),
                from,
                to,
                step,
                4,
            )
            .await;
            let group_text = |b: &crate::engine::backtest::SloBacktest| {
                b.group
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            match replays.iter().find(|b| group_text(b) == row.group) {
                Some(replay) if replay.error.is_none() => (
                    replayed_series(row, replay, slo.error_budget().ratio(), stored),
                    pages::ChartSource::Replayed { step },
                ),
                found => (
                    stored,
                    pages::ChartSource::Stored {
                        why: found
                            .and_then(|b| b.error.clone())
                            .unwrap_or_else(|| "Prometheus returned no series for it".into()),
                    },
                ),
            }
        }
        _ => (
            stored,
            pages::ChartSource::Stored {
                why: "this burnguard has no Prometheus to read history from".into(),
            },
        ),
    };
    let charts = detail_charts(row, &series, from, to, &marks);
    let policy = slo
        .as_ref()
        .and_then(|s| crate::domain::spec::v1::write_slo(s).ok());
    let rules = slo.as_ref().and_then(|s| {
        let file = crate::domain::rules::rule_file(std::slice::from_ref(s));
        crate::domain::rules::to_yaml(&file, &s.name).ok()
    });
    let detail = pages::SloDetail {
        row,
        range,
        charts,
        incidents: &incidents,
        freezes: &freezes,
        policy,
        rules,
        calendar: marks.ideal.is_some(),
        source,
    };
    html(pages::layout(
        &row.key,
        Section::Slos,
        pages::slo_detail(&detail),
    ))
    .into_response()
}

/// Every `step`-th point, so a line has at most [`CHART_POINTS`].
fn thin(history: &[EvaluationPoint]) -> impl Iterator<Item = &EvaluationPoint> {
    let step = history.len().div_ceil(CHART_POINTS).max(1);
    history.iter().step_by(step)
}

/// How many playbook steps the detail page marks.
const MARKED_STEPS: i64 = 500;
/// How many lifted freezes the detail page looks through for this SLO's.
const MARKED_FREEZES: i64 = 200;

/// What the detail charts draw besides the series: event markers and, for a calendar SLO,
/// the ideal burn-down.
#[derive(Debug, Default)]
struct Marks {
    markers: Vec<chart::Marker>,
    ideal: Option<Points>,
}

/// Markers for the incidents opened, playbook steps run and freezes set or lifted for this
/// SLO within `[from, to]`; `active` are the active freezes the page already read.
async fn event_marks(
    state: &ServiceState,
    row: &SloRow,
    incidents: &[IncidentRecord],
    active: &[crate::ports::FreezeRecord],
    from: i64,
    to: i64,
) -> Result<Marks, crate::ports::StoreError> {
    use chart::Marker;
    let within = |t: i64| (from..=to).contains(&t);
    let mut markers: Vec<Marker> = incidents
        .iter()
        .filter(|i| within(i.opened_at))
        .map(|i| Marker {
            at: i.opened_at,
            label: format!("incident #{} opened ({})", i.id, i.severity),
            class: format!("incident {}", i.severity),
        })
        .collect();
    for action in state
        .store
        .slo_actions(&row.key, from, to, MARKED_STEPS)
        .await?
    {
        markers.push(Marker {
            at: action.started_at.unwrap_or(action.created_at),
            label: format!(
                "step {} ({}): {}{}",
                action.step,
                action.kind,
                action.status,
                if action.dry_run { ", dry run" } else { "" }
            ),
            class: "step".into(),
        });
    }
    let lifted = state.store.lifted_freezes(MARKED_FREEZES).await?;
    for freeze in active
        .iter()
        .chain(&lifted)
        .filter(|f| f.slo.as_deref() == Some(row.name.as_str()))
    {
        if within(freeze.created_at) {
            markers.push(Marker {
                at: freeze.created_at,
                label: format!("freeze #{} set: {}", freeze.id, freeze.reason),
                class: "freeze".into(),
            });
        }
        if let Some(lifted) = freeze.lifted_at.filter(|t| within(*t)) {
            markers.push(Marker {
                at: lifted,
                label: format!("freeze #{} lifted", freeze.id),
                class: "freeze lifted".into(),
            });
        }
    }
    markers.sort_by_key(|m| m.at);
    Ok(Marks {
        markers,
        ideal: None,
    })
}

/// A line's points, `(unix seconds, value)`, `None` for no data.
type Points = Vec<(i64, Option<f64>)>;
/// A window's name and its line.
type NamedLine = (String, Points);

/// The lines a detail page draws: budget left, and burn rate and error ratio per alert
/// window (by window name), each `(unix seconds, value)` with `None` for no data.
#[derive(Debug, Default)]
struct DetailSeries {
    budget: Points,
    burn: Vec<NamedLine>,
    ratio: Vec<NamedLine>,
}

/// The alert windows of an SLO's rows, shortest first, each once.
fn row_windows(row: &SloRow) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    for a in &row.alerts {
        for w in [&a.long_window, &a.short_window] {
            if !seen.contains(w) {
                seen.push(w.clone());
            }
        }
    }
    seen.sort_by_key(|w| {
        crate::domain::policy::Window::parse(w)
            .map(|w| w.as_secs())
            .unwrap_or(u64::MAX)
    });
    seen
}

/// The lines from the evaluations burnguard stored.
fn stored_series(row: &SloRow, history: &[EvaluationPoint]) -> DetailSeries {
    let points: Vec<&EvaluationPoint> = thin(history).collect();
    let per_window = |field: &str| -> Vec<NamedLine> {
        row_windows(row)
            .into_iter()
            .map(|w| {
                let line = points
                    .iter()
                    .map(|p| (p.evaluated_at, number_at(&p.snapshot[field][&w])))
                    .collect();
                (w, line)
            })
            .collect()
    };
    DetailSeries {
        budget: points
            .iter()
            .map(|p| (p.evaluated_at, p.error_budget_remaining))
            .collect(),
        burn: per_window("burn_rate"),
        ratio: per_window("error_ratio"),
    }
}

fn number_at(value: &serde_json::Value) -> Option<f64> {
    value.as_f64().filter(|v| v.is_finite())
}

/// The lines from a replay over Prometheus's history (the `backtest` engine): the burn
/// rate of each alert window at every step, the error ratio it comes from, and the budget
/// (rolling SLOs; a calendar SLO's budget is not replayed, so it comes from `stored`).
fn replayed_series(
    row: &SloRow,
    replay: &crate::engine::backtest::SloBacktest,
    error_budget: f64,
    stored: DetailSeries,
) -> DetailSeries {
    let by_name: std::collections::BTreeMap<String, &Points> = replay
        .burn_rates
        .iter()
        .map(|(w, points)| (w.to_string(), points))
        .collect();
    let windows = row_windows(row);
    let burn: Vec<NamedLine> = windows
        .iter()
        .filter_map(|w| by_name.get(w).map(|p| (w.clone(), thin_points(p))))
        .collect();
    let ratio = burn
        .iter()
        .map(|(w, points)| {
            let line = points
                .iter()
                .map(|(t, b)| (*t, b.map(|b| b * error_budget)))
                .collect();
            (w.clone(), line)
        })
        .collect();
    let replayed_budget: Points = replay.budget.iter().map(|p| (p.at, p.remaining)).collect();
    DetailSeries {
        budget: if replayed_budget.iter().any(|(_, v)| v.is_some()) {
            thin_points(&replayed_budget)
        } else {
            stored.budget
        },
        burn,
        ratio,
    }
}

/// At most [`CHART_POINTS`] of a line, evenly picked.
fn thin_points(points: &[(i64, Option<f64>)]) -> Points {
    let step = points.len().div_ceil(CHART_POINTS).max(1);
    points.iter().step_by(step).copied().collect()
}

/// The budget, burn-rate and error-ratio charts of an SLO over `[from, to]`, with the alert
/// thresholds, events and (calendar SLOs) the ideal burn-down drawn on them.
fn detail_charts(
    row: &SloRow,
    series: &DetailSeries,
    from: i64,
    to: i64,
    marks: &Marks,
) -> Vec<String> {
    use chart::{Chart, Level, Line};
    let markers = marks.markers.clone();
    let budget = Chart {
        title: "Error budget left".into(),
        from,
        to,
        lines: std::iter::once(Line {
            name: "budget".into(),
            class: "budget".into(),
            points: series.budget.clone(),
        })
        .chain(marks.ideal.iter().map(|ideal| Line {
            name: "ideal".into(),
            class: "ideal".into(),
            points: ideal.clone(),
        }))
        .collect(),
        levels: vec![Level {
            value: 0.0,
            label: "budget spent".into(),
            class: "zero".into(),
        }],
        markers: markers.clone(),
        percent: true,
    };
    let lines = |lines: &[NamedLine]| -> Vec<Line> {
        lines
            .iter()
            .enumerate()
            .map(|(k, (w, points))| Line {
                name: w.clone(),
                class: format!("w{}", k % 8),
                points: points.clone(),
            })
            .collect()
    };
    let burn = Chart {
        title: "Burn rate per window".into(),
        from,
        to,
        lines: lines(&series.burn),
        levels: row
            .alerts
            .iter()
            .map(|a| Level {
                value: a.factor,
                label: format!(
                    "{} at {}x ({} and {})",
                    a.severity, a.factor, a.long_window, a.short_window
                ),
                class: a.severity.clone(),
            })
            .collect(),
        markers: markers.clone(),
        percent: false,
    };
    let ratio = Chart {
        title: "Error ratio per window".into(),
        from,
        to,
        lines: lines(&series.ratio),
        levels: vec![Level {
            value: 1.0 - row.objective,
            label: "the error budget (1 - objective)".into(),
            class: "objective".into(),
        }],
        markers,
        percent: true,
    };
    vec![chart::svg(&budget), chart::svg(&burn), chart::svg(&ratio)]
}

async fn incidents(State(state): State<Arc<ServiceState>>) -> Response {
    let filter = IncidentFilter {
        status: None,
        slo: None,
        limit: Some(200),
    };
    match state.store.list_incidents(&filter).await {
        Ok(list) => html(pages::layout(
            "Incidents",
            Section::Incidents,
            pages::incidents_page(&list),
        ))
        .into_response(),
        Err(error) => failed(error),
    }
}

async fn incident(State(state): State<Arc<ServiceState>>, Path(raw): Path<String>) -> Response {
    let Ok(id) = raw.parse::<i64>() else {
        return not_found(format!("`{raw}` is not an incident id"));
    };
    match state.store.incident(id).await {
        Ok(Some(detail)) => html(pages::layout(
            &format!("Incident #{id}"),
            Section::Incidents,
            pages::incident_page(&detail),
        ))
        .into_response(),
        Ok(None) => not_found(format!("No incident #{id}")),
        Err(error) => failed(error),
    }
}

/// How many lifted freezes the freezes page lists.
const PAST_FREEZES: i64 = 50;

async fn freezes(State(state): State<Arc<ServiceState>>) -> Response {
    let active = match state.store.active_freezes().await {
        Ok(list) => list,
        Err(error) => return failed(error),
    };
    match state.store.lifted_freezes(PAST_FREEZES).await {
        Ok(past) => html(pages::layout(
            "Freezes",
            Section::Freezes,
            pages::freezes_page(&active, &past),
        ))
        .into_response(),
        Err(error) => failed(error),
    }
}

/// The backtest form, from the query string (a chosen SLO) or a posted form (a pasted
/// policy).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct BacktestQuery {
    slo: String,
    policy: String,
    range: String,
    step: u64,
}

/// The longest period a backtest replays, and the most points per line it draws.
const BACKTEST_RANGES: [(&str, i64); 6] = [
    ("6h", 6 * 3_600),
    ("1d", 86_400),
    ("3d", 3 * 86_400),
    ("7d", 7 * 86_400),
    ("14d", 14 * 86_400),
    ("30d", 30 * 86_400),
];

/// At most this many SLOs (groups included) are replayed from one pasted policy.
const BACKTEST_MAX_SLOS: usize = 10;

/// A step that gives about 480 points over `seconds`: whole minutes, at least one.
pub fn backtest_step(seconds: i64, asked: u64) -> u64 {
    if asked > 0 {
        return asked.max(15);
    }
    let raw = (seconds / 480).max(60) as u64;
    raw.div_ceil(60) * 60
}

async fn backtest(
    State(state): State<Arc<ServiceState>>,
    Query(q): Query<BacktestQuery>,
) -> Response {
    run_backtest(&state, q).await
}

async fn backtest_posted(
    State(state): State<Arc<ServiceState>>,
    axum::Form(q): axum::Form<BacktestQuery>,
) -> Response {
    run_backtest(&state, q).await
}

async fn run_backtest(state: &ServiceState, q: BacktestQuery) -> Response {
    let mut names: Vec<String> = state.slo_names().keys().cloned().collect();
    names.sort();
    let (range, seconds) = BACKTEST_RANGES
        .iter()
        .find(|(r, _)| *r == q.range)
        .copied()
        .unwrap_or(BACKTEST_RANGES[1]);
    let step = backtest_step(seconds, q.step);
    let form = pages::BacktestForm {
        slos: &names,
        slo: &q.slo,
        policy: &q.policy,
        range,
        step: q.step,
    };
    let render = |period, problems: &[String], results: &[pages::BacktestResult<'_>]| {
        html(pages::layout(
            "Backtest",
            Section::Backtest,
            pages::backtest_page(&form, period, problems, results),
        ))
        .into_response()
    };
    // What to replay: a pasted policy, else a loaded SLO, else only the form.
    let slos: Vec<crate::domain::policy::Slo> = if !q.policy.trim().is_empty() {
        let sources = vec![("pasted policy".to_string(), q.policy.clone())];
        let (loaded, _, problems) =
            crate::policies::parse_sources(&sources, &crate::policies::LoadOptions::default());
        if !problems.is_empty() {
            let problems: Vec<String> = problems.iter().map(ToString::to_string).collect();
            return (StatusCode::BAD_REQUEST, render(None, &problems, &[])).into_response();
        }
        if loaded.is_empty() {
            return (
                StatusCode::BAD_REQUEST,
                render(None, &["the pasted policy holds no SLO".to_string()], &[]),
            )
                .into_response();
        }
        loaded
            .into_iter()
            .map(|l| l.slo)
            .take(BACKTEST_MAX_SLOS)
            .collect()
    } else if q.slo.is_empty() {
        return render(None, &[], &[]);
    } else {
        match state.slo(&q.slo) {
            Some(slo) => vec![slo],
            None => {
                let problem = format!("no loaded SLO is named `{}`", q.slo);
                return (StatusCode::NOT_FOUND, render(None, &[problem], &[])).into_response();
            }
        }
    };
    let Some(prometheus) = &state.prometheus else {
        let problem = "this burnguard has no Prometheus to replay against".to_string();
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            render(None, &[problem], &[]),
        )
            .into_response();
    };
    let to = chrono::Utc::now().timestamp();
    let to = to - to % step as i64;
    let from = to - seconds;
    let replays = crate::engine::backtest::backtest(prometheus, &slos, from, to, step, 4).await;
    let results: Vec<pages::BacktestResult<'_>> = replays
        .iter()
        .take(BACKTEST_MAX_SLOS)
        .map(|b| {
            let slo = slos.iter().find(|s| s.name == b.name);
            pages::BacktestResult {
                replay: b,
                charts: slo
                    .map(|s| backtest_charts(s, b, from, to))
                    .unwrap_or_default(),
            }
        })
        .collect();
    render(Some((from, to, step)), &[], &results)
}

/// A replay's burn rate per alert window with the thresholds, the moments rows fired as
/// markers, and its budget.
fn backtest_charts(
    slo: &crate::domain::policy::Slo,
    b: &crate::engine::backtest::SloBacktest,
    from: i64,
    to: i64,
) -> Vec<String> {
    use crate::engine::backtest::Change;
    use chart::{Chart, Level, Line, Marker};
    let markers: Vec<Marker> = b
        .transitions
        .iter()
        .filter(|t| t.change == Change::Fired)
        .map(|t| Marker {
            at: t.at,
            label: format!(
                "{} row {} / {} fired",
                t.severity, t.long_window, t.short_window
            ),
            class: format!("incident {}", t.severity),
        })
        .collect();
    let burn = Chart {
        title: "Burn rate per window (replayed)".into(),
        from,
        to,
        lines: b
            .burn_rates
            .iter()
            .enumerate()
            .map(|(k, (window, points))| Line {
                name: window.to_string(),
                class: format!("w{}", k % 8),
                points: thin_points(points),
            })
            .collect(),
        levels: slo
            .alerting
            .windows
            .iter()
            .map(|row| Level {
                value: row.burn_rate_threshold,
                label: format!("{} at {}x", row.severity.as_str(), row.burn_rate_threshold),
                class: row.severity.as_str().to_string(),
            })
            .collect(),
        markers: markers.clone(),
        percent: false,
    };
    let budget_points: Points = b.budget.iter().map(|p| (p.at, p.remaining)).collect();
    let budget = Chart {
        title: "Error budget left (replayed)".into(),
        from,
        to,
        lines: vec![Line {
            name: "budget".into(),
            class: "budget".into(),
            points: thin_points(&budget_points),
        }],
        levels: vec![Level {
            value: 0.0,
            label: "budget spent".into(),
            class: "zero".into(),
        }],
        markers,
        percent: true,
    };
    vec![chart::svg(&burn), chart::svg(&budget)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backtest_draws_about_480_points_in_whole_minutes() {
        assert_eq!(backtest_step(86_400, 0), 180);
        assert_eq!(backtest_step(6 * 3_600, 0), 60);
        assert_eq!(backtest_step(30 * 86_400, 0), 5_400);
        assert_eq!(backtest_step(86_400, 5), 15, "no step below 15s");
        assert_eq!(backtest_step(86_400, 300), 300);
    }

    #[test]
    fn ranges_default_to_a_day() {
        assert_eq!(
            chart_span("6h", 100_000, None),
            ("6h", 100_000 - 21_600, 100_000)
        );
        assert_eq!(
            chart_span("<script>", 100_000, None),
            ("1d", 100_000 - 86_400, 100_000)
        );
        // Without the SLO, its window is unknown: a day.
        assert_eq!(chart_span("window", 100_000, None).0, "1d");
    }

    fn berlin_month() -> crate::domain::calendar::CalendarWindow {
        use crate::domain::calendar::{CalendarPeriod, CalendarWindow};
        CalendarWindow::new(CalendarPeriod::Month, "Europe/Berlin").unwrap()
    }

    /// 2024-03-01T00:00 in Berlin (UTC+1) is 2024-02-29T23:00Z.
    const MARCH_2024_BERLIN: i64 = 1_709_247_600;
    /// 2024-04-01T00:00 in Berlin (UTC+2, after the DST change) is 2024-03-31T22:00Z.
    const APRIL_2024_BERLIN: i64 = 1_711_922_400;

    #[test]
    fn the_ideal_falls_from_full_to_empty_across_the_period() {
        let line = ideal_line(&berlin_month(), MARCH_2024_BERLIN, APRIL_2024_BERLIN);
        assert_eq!(
            line,
            vec![
                (MARCH_2024_BERLIN, Some(1.0)),
                (APRIL_2024_BERLIN, Some(0.0))
            ]
        );
        // Halfway through March (30 days 23 hours long) half the budget is left.
        let half = MARCH_2024_BERLIN + (APRIL_2024_BERLIN - MARCH_2024_BERLIN) / 2;
        let line = ideal_line(&berlin_month(), half, APRIL_2024_BERLIN);
        assert_eq!(line[0], (half, Some(0.5)));
    }

    #[test]
    fn the_ideal_resets_at_each_period_start_with_a_gap_between() {
        let day = 86_400;
        let line = ideal_line(
            &berlin_month(),
            APRIL_2024_BERLIN - 3 * day,
            APRIL_2024_BERLIN + 3 * day,
        );
        assert_eq!(line.len(), 5, "{line:?}");
        assert_eq!(line[1], (APRIL_2024_BERLIN, Some(0.0)));
        assert_eq!(line[2], (APRIL_2024_BERLIN, None));
        assert_eq!(line[3], (APRIL_2024_BERLIN, Some(1.0)));
        // April has 30 days: 3 of them spent leaves 90%.
        let left = line[4].1.unwrap();
        assert!((left - 0.9).abs() < 1e-12, "{left}");
    }

    #[test]
    fn a_calendar_window_range_is_the_whole_current_period() {
        let text = "apiVersion: burnguard.dev/v1\nkind: SLO\nmetadata: {name: s}\nspec:\n  service: s\n  objective: 99.9\n  window: {calendar: month, timeZone: Europe/Berlin}\n  indicator: {ratio: {errors: 'sum(rate(e[{{.window}}]))', total: 'sum(rate(t[{{.window}}]))'}}\n";
        let (loaded, problems) = crate::policies::parse_source("t.yaml", text);
        assert!(problems.is_empty(), "{problems:?}");
        let slo = &loaded[0].slo;
        let (name, from, to) = chart_span("window", MARCH_2024_BERLIN + 5, Some(slo));
        assert_eq!(
            (name, from, to),
            ("window", MARCH_2024_BERLIN, APRIL_2024_BERLIN)
        );
    }
}
