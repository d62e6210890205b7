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

use crate::domain::incident::IncidentStatus;
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

/// Every unresolved incident, by key.
async fn unresolved(state: &ServiceState) -> Result<Vec<IncidentRecord>, crate::ports::StoreError> {
    let mut all = Vec::new();
    for status in [IncidentStatus::Open, IncidentStatus::Acknowledged] {
        let filter = IncidentFilter {
            status: Some(status),
            slo: None,
            limit: None,
        };
        all.extend(state.store.list_incidents(&filter).await?);
    }
    Ok(all)
}

/// Every SLO's latest evaluation as a row, worst first.
async fn rows(state: &ServiceState) -> Result<Vec<SloRow>, crate::ports::StoreError> {
    let latest = state.store.latest_evaluations().await?;
    let incidents = unresolved(state).await?;
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

/// A chart range's length in seconds; one day unless it is one of the offered ranges.
fn range_seconds(range: &str) -> (&'static str, i64) {
    match range {
        "1h" => ("1h", 3_600),
        "6h" => ("6h", 6 * 3_600),
        "3d" => ("3d", 3 * 86_400),
        "7d" => ("7d", 7 * 86_400),
        _ => ("1d", 86_400),
    }
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
    let (range, seconds) = range_seconds(&q.range);
    let to = chrono::Utc::now().timestamp();
    let from = to - seconds;
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
    let freezes: Vec<crate::ports::FreezeRecord> = match state.store.active_freezes().await {
        Ok(freezes) => freezes
            .into_iter()
            .filter(|f| row.freezes.contains(&f.id))
            .collect(),
        Err(error) => return failed(error),
    };
    let charts = detail_charts(row, &history, from, to, &incidents);
    let slo = state.slo(&row.name);
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

/// The budget, burn-rate and error-ratio charts of an SLO over `[from, to]`, from its stored
/// evaluations, with the alert thresholds and incidents drawn on them.
fn detail_charts(
    row: &SloRow,
    history: &[EvaluationPoint],
    from: i64,
    to: i64,
    incidents: &[IncidentRecord],
) -> Vec<String> {
    use chart::{Chart, Level, Line, Marker};
    let markers: Vec<Marker> = incidents
        .iter()
        .map(|i| Marker {
            at: i.opened_at,
            label: format!("incident #{} opened ({})", i.id, i.severity),
            class: format!("incident {}", i.severity),
        })
        .collect();
    let points: Vec<&EvaluationPoint> = thin(history).collect();
    let budget = Chart {
        title: "Error budget left".into(),
        from,
        to,
        lines: vec![Line {
            name: "budget".into(),
            class: "budget".into(),
            points: points
                .iter()
                .map(|p| (p.evaluated_at, p.error_budget_remaining))
                .collect(),
        }],
        levels: vec![Level {
            value: 0.0,
            label: "budget spent".into(),
            class: "zero".into(),
        }],
        markers: markers.clone(),
        percent: true,
    };
    let windows: Vec<String> = {
        let mut seen = Vec::new();
        for a in &row.alerts {
            for w in [&a.long_window, &a.short_window] {
                if !seen.contains(w) {
                    seen.push(w.clone());
                }
            }
        }
        seen
    };
    let per_window = |field: &str| -> Vec<Line> {
        windows
            .iter()
            .enumerate()
            .map(|(k, w)| Line {
                name: w.clone(),
                class: format!("w{}", k % 8),
                points: points
                    .iter()
                    .map(|p| (p.evaluated_at, p.snapshot[field][w].as_f64()))
                    .collect(),
            })
            .collect()
    };
    let burn = Chart {
        title: "Burn rate per window".into(),
        from,
        to,
        lines: per_window("burn_rate"),
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
        lines: per_window("error_ratio"),
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
    let mut names: Vec<String> = state.slo_names().into_keys().collect();
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
    let thin = |points: &[(i64, Option<f64>)]| -> Vec<(i64, Option<f64>)> {
        let step = points.len().div_ceil(CHART_POINTS).max(1);
        points.iter().step_by(step).copied().collect()
    };
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
                points: thin(points),
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
    let budget_points: Vec<(i64, Option<f64>)> =
        b.budget.iter().map(|p| (p.at, p.remaining)).collect();
    let budget = Chart {
        title: "Error budget left (replayed)".into(),
        from,
        to,
        lines: vec![Line {
            name: "budget".into(),
            class: "budget".into(),
            points: thin(&budget_points),
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
        assert_eq!(range_seconds("6h"), ("6h", 21_600));
        assert_eq!(range_seconds("<script>"), ("1d", 86_400));
    }
}
