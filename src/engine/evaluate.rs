//! One evaluation cycle: read every SLO's error ratios at one instant and assess them.
//!
//! Two ways to read:
//! - `raw`: each SLO's own queries, one per window, at most `concurrency` in flight;
//! - `rules`: the `burnguard:sli_error:ratio_rate<W>` series recorded by the generated rules,
//!   one query per distinct window for all SLOs at once (and `burnguard:sli_error:ratio_period`
//!   for calendar SLOs), asking only for the labels read ([`rules_query`]), plus one query that
//!   finds SLOs whose rules are recorded twice ([`DUPLICATES_QUERY`]);
//! - `auto`: rules for SLOs whose recorded objective (`burnguard:slo_objective:ratio`) is
//!   present, matches the policy and carries the fingerprint of the policy's rules as they are
//!   now (`burnguard_rules_hash`); raw for the others (absent or stale rules).
//!
//! A failed query makes the SLOs that needed it `error`, with the reason; it is never read as
//! a number. A partial answer (Prometheus `warnings`) makes its window no data. A query
//! answering with more than one series for one SLO is an error too: which one would be the
//! SLO's is a guess we do not make.
//!
//! What a cycle works out about each SLO before it asks anything and that changes only with
//! its policy (the spans it reads, its rules' fingerprint) is a [`ReadPlan`], which a service
//! makes once per load of its policies.
//!
//! In rules mode each answer's series are matched to their SLOs as the answer arrives (while
//! Prometheus still works on the others), gathered SLO by SLO into one flat index with their
//! values (`AnswerIndex`), and the verdicts of a cycle over thousands of SLOs are worked out on
//! every core (`on_every_core`); each SLO's is a pure function of the answers, so none of this
//! changes anything but the time.

use std::collections::BTreeMap;

use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};

use futures_util::stream::{self, StreamExt};
use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

use crate::domain::burn::{self, AlertState, Assessment, BudgetReading, Status};
use crate::domain::cluster::rfc3339;
use crate::domain::policy::{Slo, Window};
use crate::domain::rules::{
    OBJECTIVE_SERIES, PERIOD_RATIO_SERIES, RULES_HASH_LABEL, error_ratio_series, rules_fingerprint,
};
use crate::domain::sli;
use crate::ports::{InstantSample, MetricsError, MetricsSource, UnixSeconds};

/// How SLI numbers are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadMode {
    Raw,
    Rules,
    #[default]
    Auto,
}

/// Where one SLO's numbers came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SliSource {
    Raw,
    Rules,
}

/// The state of an SLO after one cycle: an assessment, or the reason there is none.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EvalStatus {
    Assessed(Status),
    Error,
}

impl EvalStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            EvalStatus::Assessed(s) => s.as_str(),
            EvalStatus::Error => "error",
        }
    }
}

impl Serialize for EvalStatus {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// Per-window numbers, serialized as a JSON object in window order (`{"5m": .., "1h": ..}`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WindowValues(pub Vec<(Window, Option<f64>)>);

impl WindowValues {
    pub fn get(&self, window: Window) -> Option<f64> {
        self.0
            .iter()
            .find(|(w, _)| *w == window)
            .and_then(|(_, v)| *v)
    }
}

impl Serialize for WindowValues {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (window, value) in &self.0 {
            map.serialize_entry(&*window.notation(), value)?;
        }
        map.end()
    }
}

/// One alert row's state as reported.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AlertReport {
    pub severity: &'static str,
    /// Printed in Prometheus notation (`1h`), as `long_window` and `short_window`.
    #[serde(rename = "long_window")]
    pub long: Window,
    #[serde(rename = "short_window")]
    pub short: Window,
    /// The burn-rate threshold (the workbook's "factor").
    pub factor: f64,
    pub firing: bool,
    /// `false` when a window of the row had no data, so it could not fire.
    pub has_data: bool,
}

impl From<&AlertState> for AlertReport {
    fn from(state: &AlertState) -> Self {
        Self {
            long: state.window.long,
            severity: state.window.severity.as_str(),
            short: state.window.short,
            factor: state.window.burn_rate_threshold,
            firing: state.firing(),
            has_data: state.verdict != burn::PairVerdict::NoData,
        }
    }
}

/// One SLO after one cycle.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SloEvaluation {
    pub name: String,
    /// A grouped SLO's label values for this group (`{"route": "/pay"}`); empty otherwise.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub group: BTreeMap<String, String>,
    pub service: String,
    pub objective: f64,
    /// `30d`, or `month in Europe/Berlin` (see [`Slo::window_name`]).
    pub window: String,
    pub status: EvalStatus,
    pub source: Option<SliSource>,
    pub error_ratio: WindowValues,
    pub burn_rate: WindowValues,
    pub error_budget_remaining: Option<f64>,
    pub time_to_exhaustion_seconds: Option<f64>,
    /// For calendar SLOs: the period the budget counts and its error ratio so far. Boxed:
    /// most SLOs are rolling, and inline it would be a third of every evaluation's size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget_period: Option<Box<PeriodReport>>,
    pub alerts: Vec<AlertReport>,
    pub error: Option<String>,
}

/// The calendar period of a calendar SLO's budget, as one evaluation saw it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PeriodReport {
    /// `week` or `month`.
    pub calendar: &'static str,
    pub time_zone: String,
    /// RFC 3339, UTC.
    pub start: String,
    pub end: String,
    /// How much of the period has passed, 0 to 1.
    pub elapsed: f64,
    /// Over the period so far; `None` without data or in its first five minutes.
    pub error_ratio: Option<f64>,
}

impl PeriodReport {
    fn of(slo: &Slo, reading: &BudgetReading) -> Option<Self> {
        let calendar = slo.calendar.as_ref()?;
        let period = reading.span.period?;
        Some(Self {
            calendar: calendar.period.as_str(),
            time_zone: calendar.zone_name.clone(),
            start: rfc3339(period.start),
            end: rfc3339(period.end),
            elapsed: reading.span.elapsed_share,
            error_ratio: burn::finite(reading.error_ratio),
        })
    }
}

/// What one query reads for an SLO: the error ratio of a rolling window, or of a calendar
/// SLO's period so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Span {
    Window(Window),
    Period,
}

impl Span {
    /// The recorded series holding it (rules mode).
    fn series(self) -> String {
        match self {
            Self::Window(w) => error_ratio_series(w),
            Self::Period => PERIOD_RATIO_SERIES.to_string(),
        }
    }

    /// What it is called in errors.
    fn describe(self) -> String {
        match self {
            Self::Window(w) => format!("the {w} window"),
            Self::Period => "the calendar period so far".to_string(),
        }
    }

    /// Everything read for `slo`.
    fn of(slo: &Slo) -> impl Iterator<Item = Span> {
        slo.windows()
            .into_iter()
            .map(Span::Window)
            .chain(slo.calendar.is_some().then_some(Span::Period))
    }
}

impl SloEvaluation {
    /// What incidents, records and the latest state are kept under: the SLO's name, with the
    /// group's labels for a grouped SLO (`checkout{route="/pay"}`).
    pub fn key(&self) -> String {
        self.key_text().into_owned()
    }

    /// [`Self::key`], without a copy of the name for an ungrouped SLO.
    pub fn key_text(&self) -> std::borrow::Cow<'_, str> {
        if self.group.is_empty() {
            std::borrow::Cow::Borrowed(&self.name)
        } else {
            std::borrow::Cow::Owned(crate::domain::policy::group_key(&self.name, &self.group))
        }
    }

    fn assessed(slo: &Slo, source: SliSource, read: &Ratios, at: UnixSeconds) -> Self {
        let ratios = &read.windows;
        let reading = match slo.calendar {
            None => BudgetReading::rolling(slo, ratios, at),
            Some(_) => BudgetReading {
                error_ratio: read.period,
                span: slo.budget_span(at),
                at,
            },
        };
        let Assessment {
            burn_rates,
            budget_remaining,
            time_to_exhaustion,
            alerts,
            status,
        } = burn::assess(slo, ratios, reading);
        Self {
            name: slo.name.clone(),
            group: BTreeMap::new(),
            service: slo.service.clone(),
            objective: slo.objective.ratio(),
            window: slo.window_name(),
            status: EvalStatus::Assessed(status),
            source: Some(source),
            error_ratio: WindowValues(ratios.iter().map(|(w, r)| (*w, burn::finite(*r))).collect()),
            burn_rate: WindowValues(burn_rates.into_iter().collect()),
            error_budget_remaining: budget_remaining,
            time_to_exhaustion_seconds: time_to_exhaustion,
            budget_period: PeriodReport::of(slo, &reading).map(Box::new),
            alerts: alerts.iter().map(AlertReport::from).collect(),
            error: None,
        }
    }

    fn failed(slo: &Slo, source: Option<SliSource>, reason: String) -> Self {
        let empty = WindowValues(slo.windows().into_iter().map(|w| (w, None)).collect());
        Self {
            name: slo.name.clone(),
            group: BTreeMap::new(),
            service: slo.service.clone(),
            objective: slo.objective.ratio(),
            window: slo.window_name(),
            status: EvalStatus::Error,
            source,
            error_ratio: empty.clone(),
            burn_rate: empty,
            error_budget_remaining: None,
            time_to_exhaustion_seconds: None,
            budget_period: None,
            alerts: Vec::new(),
            error: Some(reason),
        }
    }
}

/// The result of one cycle over a set of SLOs.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Evaluation {
    /// Unix seconds; printed as RFC 3339 by the CLI.
    #[serde(skip)]
    pub at: UnixSeconds,
    /// Shared: the service keeps each as its SLO's latest without copying it.
    #[serde(serialize_with = "shared_evaluations")]
    pub slos: Vec<std::sync::Arc<SloEvaluation>>,
    /// How many queries the cycle sent, and how many failed (partial answers not counted:
    /// they reached the source).
    #[serde(skip)]
    pub queries: usize,
    #[serde(skip)]
    pub failed_queries: usize,
    /// Failed and partial answers by [`MetricsError::reason`].
    #[serde(skip)]
    pub query_errors: BTreeMap<&'static str, usize>,
    /// How long the cycle waited for its last answer: what is left of a cycle's time is
    /// burnguard's own (verdicts, and what the caller does after).
    #[serde(skip)]
    pub answered_after: std::time::Duration,
}

/// The evaluations as a list, as if they were not shared.
fn shared_evaluations<S: Serializer>(
    slos: &[std::sync::Arc<SloEvaluation>],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(slos.iter().map(std::sync::Arc::as_ref))
}

/// Reads and assesses SLOs through a [`MetricsSource`].
#[derive(Debug, Clone)]
pub struct Evaluator<M> {
    source: M,
    mode: ReadMode,
    concurrency: usize,
}

type QueryResult = Result<Vec<InstantSample>, MetricsError>;

impl<M: MetricsSource> Evaluator<M> {
    pub fn new(source: M, mode: ReadMode, concurrency: usize) -> Self {
        Self {
            source,
            mode,
            concurrency: concurrency.max(1),
        }
    }

    pub fn source(&self) -> &M {
        &self.source
    }

    /// Evaluates every SLO at `at`. Results come back in the order of `slos`.
    pub async fn evaluate(&self, slos: &[Slo], at: UnixSeconds) -> Evaluation {
        self.evaluate_planned(slos, &ReadPlan::of(slos), at).await
    }

    /// [`Self::evaluate`] with what each SLO reads worked out beforehand ([`ReadPlan::of`]
    /// these `slos`): a service evaluating the same policies every cycle builds it once per
    /// load. A plan of another number of SLOs is not used: the cycle plans afresh (debug
    /// builds also check each name, see [`ReadPlan`]).
    pub async fn evaluate_planned(
        &self,
        slos: &[Slo],
        plan: &ReadPlan,
        at: UnixSeconds,
    ) -> Evaluation {
        let fresh;
        let plan = if plan.fits(slos) {
            plan
        } else {
            tracing::warn!("the read plan was made for other SLOs; planning this cycle afresh");
            fresh = ReadPlan::of(slos);
            &fresh
        };
        let started = std::time::Instant::now();
        let mut answered_after = std::time::Duration::ZERO;
        let mut queries = 0usize;
        let mut errors = QueryErrors::default();
        let mut results: Vec<Option<Assessed>> = vec![None; slos.len()];

        let use_rules: Vec<bool> = match self.mode {
            ReadMode::Raw => vec![false; slos.len()],
            ReadMode::Rules => vec![true; slos.len()],
            ReadMode::Auto => {
                queries += 1;
                match self.source.instant(&recorded_objectives_query(), at).await {
                    Ok(samples) => {
                        let recorded: HashMap<&str, (f64, Option<&str>)> = samples
                            .iter()
                            .filter_map(|s| {
                                let hash = s.labels.get(RULES_HASH_LABEL);
                                Some((s.labels.get("slo")?, (s.value, hash)))
                            })
                            .collect();
                        slos.iter()
                            .zip(&plan.slos)
                            .map(|(slo, planned)| {
                                recorded.get(slo.name.as_str()).is_some_and(|(o, hash)| {
                                    (o - slo.objective.ratio()).abs() < 1e-9
                                        && *hash == Some(planned.rules_fingerprint.as_str())
                                })
                            })
                            .collect()
                    }
                    // A partial answer may lack some SLOs' rules: read them all raw.
                    Err(error @ MetricsError::PartialResponse(_)) => {
                        errors.count(&error);
                        vec![false; slos.len()]
                    }
                    Err(error) => {
                        errors.count(&error);
                        let reason = format!("checking for recorded rules: {error}");
                        let slos = slos
                            .iter()
                            .map(|slo| {
                                std::sync::Arc::new(SloEvaluation::failed(
                                    slo,
                                    None,
                                    reason.clone(),
                                ))
                            })
                            .collect();
                        return Evaluation {
                            at,
                            slos,
                            queries,
                            failed_queries: errors.failed,
                            query_errors: errors.by_reason,
                            answered_after: started.elapsed(),
                        };
                    }
                }
            }
        };

        // Rules: one query per distinct window across the SLOs read that way, and one that
        // finds SLOs whose recorded series are not unique.
        let rules_slos: Vec<usize> = (0..slos.len()).filter(|i| use_rules[*i]).collect();
        if !rules_slos.is_empty() {
            let read: Vec<&Slo> = rules_slos.iter().map(|i| &slos[*i]).collect();
            let spans_of: Vec<&[Span]> = rules_slos
                .iter()
                .map(|i| plan.slos[*i].spans.as_slice())
                .collect();
            let spans = distinct_spans(&spans_of);
            let labels = group_labels(read.iter().copied());
            let names = NameBlock::of(read.iter().map(|slo| slo.name.as_str()));
            let position = names.positions();
            let position = &position;
            let windows = stream::iter(spans)
                .map(|span| {
                    let query = rules_query(&span.series(), &labels);
                    async move {
                        let answer = self.source.instant(&query, at).await;
                        // Whose each series is, found while the other answers are still on
                        // their way rather than after the last one.
                        let owners = owners(&answer, position);
                        (span, answer, owners)
                    }
                })
                .buffer_unordered(self.concurrency)
                .collect::<Vec<(Span, QueryResult, Owners)>>();
            let (answers, duplicated) =
                futures_util::join!(windows, self.source.instant(DUPLICATES_QUERY, at));
            answered_after = started.elapsed();
            queries += answers.len() + 1;
            for (_, answer, _) in &answers {
                errors.record(answer);
            }
            errors.record(&duplicated);
            let (answers, owners): (HashMap<Span, QueryResult>, HashMap<Span, Owners>) = answers
                .into_iter()
                .map(|(span, answer, owners)| ((span, answer), (span, owners)))
                .unzip();
            let samples = index_by_slo(&answers, &owners, read.len());
            let uniqueness = Uniqueness::of(&duplicated);
            let assessed = on_every_core(read.len(), |k| {
                shared(from_rules(
                    read[k],
                    spans_of[k],
                    &answers,
                    samples.of(k),
                    &uniqueness,
                    at,
                ))
            });
            for (i, evaluations) in rules_slos.into_iter().zip(assessed) {
                results[i] = Some(evaluations);
            }
        }

        // Raw: every (SLO, window) query, bounded concurrency across all of them. A calendar
        // SLO's period is read over the part that has passed (none in its first minutes).
        let raw_jobs: Vec<(usize, Span, Option<String>)> = (0..slos.len())
            .filter(|i| !use_rules[*i])
            .flat_map(|i| {
                let slo = &slos[i];
                Span::of(slo).map(move |span| {
                    let range = match span {
                        Span::Window(w) => Some(w),
                        Span::Period => slo.budget_span(at).range,
                    };
                    let expr = range.map(|w| sli::error_ratio(&slo.indicator, w, slo.min_events));
                    (i, span, expr)
                })
            })
            .collect();
        if !raw_jobs.is_empty() {
            let answers: Vec<(usize, Span, Option<QueryResult>)> = stream::iter(raw_jobs)
                .map(|(i, span, expr)| async move {
                    let answer = match expr {
                        Some(expr) => Some(self.source.instant(&expr, at).await),
                        None => None,
                    };
                    (i, span, answer)
                })
                .buffer_unordered(self.concurrency)
                .collect()
                .await;
            answered_after = started.elapsed();
            for (_, _, answer) in &answers {
                if let Some(answer) = answer {
                    queries += 1;
                    errors.record(answer);
                }
            }
            let mut per_slo: BTreeMap<usize, Vec<(Span, Option<QueryResult>)>> = BTreeMap::new();
            for (i, span, r) in answers {
                per_slo.entry(i).or_default().push((span, r));
            }
            for (i, answers) in per_slo {
                results[i] = Some(shared(from_raw(&slos[i], &answers, at)));
            }
        }

        Evaluation {
            at,
            slos: results
                .into_iter()
                .zip(slos)
                .flat_map(|(r, slo)| {
                    r.unwrap_or_else(|| {
                        shared(vec![SloEvaluation::failed(
                            slo,
                            None,
                            "not evaluated".into(),
                        )])
                    })
                })
                .collect(),
            queries,
            failed_queries: errors.failed,
            query_errors: errors.by_reason,
            answered_after,
        }
    }
}

/// One SLO's evaluations (one per group of a grouped SLO), each shared as the cycle hands it
/// on: inline for an ungrouped SLO's one.
type Assessed = smallvec::SmallVec<[std::sync::Arc<SloEvaluation>; 1]>;

/// `evaluations`, shared. Made where they are assessed (on every core for a fleet), so the
/// cycle's list is put together from handles after the last verdict.
fn shared(evaluations: Vec<SloEvaluation>) -> Assessed {
    evaluations.into_iter().map(std::sync::Arc::new).collect()
}

/// `work(0..n)` in order, split over the machine's cores when `n` is large enough for that to
/// pay (assessing thousands of SLOs takes tens of milliseconds; a thread takes microseconds).
fn on_every_core<T: Send>(n: usize, work: impl Fn(usize) -> T + Sync) -> Vec<T> {
    const PER_THREAD: usize = 1_000;
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let threads = cores.min(n / PER_THREAD).max(1);
    if threads == 1 {
        return (0..n).map(work).collect();
    }
    let chunk = n.div_ceil(threads);
    let work = &work;
    std::thread::scope(|scope| {
        let parts: Vec<_> = (0..n)
            .step_by(chunk)
            .map(|start| scope.spawn(move || (start..n.min(start + chunk)).map(work).collect()))
            .collect();
        parts
            .into_iter()
            .flat_map(|part| -> Vec<T> {
                // A panic in `work` is a bug; it goes on as a panic here, as it would unsplit.
                part.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

/// Failed and partial answers of one cycle.
#[derive(Default)]
struct QueryErrors {
    /// Answers that did not come (partial ones did).
    failed: usize,
    by_reason: BTreeMap<&'static str, usize>,
}

impl QueryErrors {
    fn record(&mut self, answer: &QueryResult) {
        if let Err(error) = answer {
            self.count(error);
        }
    }

    fn count(&mut self, error: &MetricsError) {
        if !matches!(error, MetricsError::PartialResponse(_)) {
            self.failed += 1;
        }
        *self.by_reason.entry(error.reason()).or_default() += 1;
    }
}

/// What one SLO's queries read: each rolling window's error ratio, and a calendar SLO's
/// error ratio over its period so far.
#[derive(Default)]
struct Ratios {
    windows: BTreeMap<Window, Option<f64>>,
    period: Option<f64>,
}

impl Ratios {
    fn insert(&mut self, span: Span, ratio: Option<f64>) {
        match span {
            Span::Window(w) => {
                self.windows.insert(w, ratio);
            }
            Span::Period => self.period = ratio,
        }
    }
}

/// SLOs whose recorded objective has more than one series, with how many. Each SLO's rules
/// record exactly one; more means two rule files (or two burnguards) record it, or an HA pair
/// of Prometheus servers is read without deduplication. Its recorded ratios are then not
/// unique either, and which series would be the SLO's is a guess burnguard does not make.
pub const DUPLICATES_QUERY: &str = "count by (slo) (burnguard:slo_objective:ratio) > 1";

/// The `groupBy` labels of `slos`, each once, in order.
pub fn group_labels<'a>(slos: impl IntoIterator<Item = &'a Slo>) -> Vec<String> {
    slos.into_iter()
        .flat_map(|slo| slo.group_by.iter().cloned())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// What rules mode asks of one recorded `series` for every SLO at once: only the labels it
/// reads (`slo` and the `groupBy` labels), so that Prometheus encodes and sends a fraction of
/// each series. Series are unique per SLO (and group) unless [`DUPLICATES_QUERY`] says
/// otherwise, so `max` only drops labels.
pub fn rules_query(series: &str, group_labels: &[String]) -> String {
    let by = std::iter::once("slo")
        .chain(group_labels.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join(", ");
    format!("max by ({by}) ({series})")
}

/// What auto mode asks first: every SLO's recorded objective with the fingerprint of the rules
/// that record it, to tell which SLOs' rules are loaded as they are now.
pub fn recorded_objectives_query() -> String {
    format!("max by (slo, {RULES_HASH_LABEL}) ({OBJECTIVE_SERIES})")
}

/// Every query one rules-mode cycle sends for `slos` (the benches time Prometheus alone on
/// exactly these).
pub fn rules_queries(slos: &[Slo]) -> Vec<String> {
    let labels = group_labels(slos);
    slos.iter()
        .flat_map(Span::of)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .map(|span| rules_query(&span.series(), &labels))
        .chain([DUPLICATES_QUERY.to_string()])
        .collect()
}

/// What the cycle knows of whether each SLO's recorded series are unique.
enum Uniqueness<'a> {
    /// SLOs with more than one recorded objective, and how many.
    Checked(HashMap<&'a str, f64>),
    /// The check's answer was partial: it may miss an SLO's duplicates.
    Unknown,
    Failed(String),
}

impl<'a> Uniqueness<'a> {
    fn of(answer: &'a QueryResult) -> Self {
        match answer {
            Ok(samples) => Self::Checked(
                samples
                    .iter()
                    .filter_map(|s| Some((s.labels.get("slo")?, s.value)))
                    .collect(),
            ),
            Err(MetricsError::PartialResponse(_)) => Self::Unknown,
            Err(error) => {
                Self::Failed(format!("checking that recorded series are unique: {error}"))
            }
        }
    }
}

/// The spans one SLO reads: inline for up to four alert rows, the budget window and the base.
type SpanList = smallvec::SmallVec<[Span; 10]>;

/// What a cycle works out about each SLO before it asks Prometheus anything, and that changes
/// only with the SLO's policy: the spans it reads and the fingerprint of its rules as they are
/// now (which auto mode compares with the recorded one). Worked out for every SLO of a cycle,
/// it took longer than some of the cycle's queries: a fingerprint hashes the SLO's whole rule
/// group, built for the purpose. A service makes a plan when it loads its policies and keeps
/// it with them.
#[derive(Clone, Debug, Default)]
pub struct ReadPlan {
    /// In the order of the SLOs planned.
    slos: Vec<PlannedSlo>,
}

#[derive(Clone, Debug)]
struct PlannedSlo {
    /// Checked against the SLO evaluated at this position (see [`ReadPlan::fits`]).
    name: String,
    spans: SpanList,
    rules_fingerprint: String,
}

impl ReadPlan {
    /// The plan of `slos`, in their order, worked out on every core for a fleet.
    pub fn of(slos: &[Slo]) -> Self {
        Self {
            slos: on_every_core(slos.len(), |k| {
                let slo = &slos[k];
                PlannedSlo {
                    name: slo.name.clone(),
                    spans: Span::of(slo).collect(),
                    rules_fingerprint: rules_fingerprint(slo),
                }
            }),
        }
    }

    /// The plan of the SLOs at `positions` of the SLOs this plan was made for, in that order
    /// (the SLOs due in a cycle that does not evaluate them all).
    pub fn subset(&self, positions: &[usize]) -> Self {
        Self {
            slos: positions
                .iter()
                .filter_map(|&k| self.slos.get(k).cloned())
                .collect(),
        }
    }

    /// Whether this plan can be the plan of `slos`: as many. A plan is made with the list it
    /// plans (the service remakes both on every load, see its `schedule`), so this only
    /// catches a plan handed in with a list of another length; comparing every SLO's name
    /// every cycle would reach into each SLO's memory for that alone (milliseconds at 10,000
    /// SLOs). Debug builds, the tests', compare the names too.
    fn fits(&self, slos: &[Slo]) -> bool {
        let fits = self.slos.len() == slos.len();
        debug_assert!(
            !fits
                || self
                    .slos
                    .iter()
                    .zip(slos)
                    .all(|(planned, slo)| planned.name == slo.name),
            "a read plan handed in with SLOs it was not made for"
        );
        fits
    }
}

/// Every span of `spans_of`, once, in order. SLOs mostly read one set of spans, so only a
/// list unlike the one before it is merged in.
fn distinct_spans(spans_of: &[&[Span]]) -> std::collections::BTreeSet<Span> {
    let mut distinct = std::collections::BTreeSet::new();
    let mut last: &[Span] = &[];
    for &spans in spans_of {
        if spans != last {
            distinct.extend(spans.iter().copied());
            last = spans;
        }
    }
    distinct
}

/// The names of the SLOs read, side by side in one string: matching tens of thousands of
/// series to their SLO then compares against one compact block instead of each SLO's name
/// wherever it was allocated (each comparison waited on memory).
struct NameBlock {
    names: String,
    lengths: Vec<u32>,
}

impl NameBlock {
    fn of<'a>(names: impl Iterator<Item = &'a str> + Clone) -> Self {
        Self {
            lengths: names.clone().map(|name| name.len() as u32).collect(),
            names: names.collect(),
        }
    }

    /// Each name's position among the SLOs.
    fn positions(&self) -> HashMap<&str, u32> {
        let mut start = 0;
        let mut positions = HashMap::with_capacity(self.lengths.len());
        for (k, &length) in self.lengths.iter().enumerate() {
            let end = start + length as usize;
            positions.insert(&self.names[start..end], k as u32);
            start = end;
        }
        positions
    }
}

/// For each series of one answer, in answer order: the position of the SLO it belongs to
/// (or [`NOT_READ`]) and its value.
type Owners = Vec<(u32, f64)>;

/// Marks a series of no SLO this cycle reads.
const NOT_READ: u32 = u32::MAX;

/// For each series of `answer`, the position (in `position`) of the SLO its `slo` label names,
/// or [`NOT_READ`], with the series' value: read here, while the answer just parsed is still
/// in the cache, so that indexing the answers later does not wait on memory for it.
fn owners(answer: &QueryResult, position: &HashMap<&str, u32>) -> Owners {
    match answer {
        Ok(samples) => samples
            .iter()
            .map(|sample| {
                let owner = sample
                    .labels
                    .get("slo")
                    .and_then(|slo| position.get(slo))
                    .copied()
                    .unwrap_or(NOT_READ);
                (owner, sample.value)
            })
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// One series an SLO reads: its span, its value, and the series itself (whose labels name a
/// grouped SLO's group).
#[derive(Clone, Copy)]
struct Answered<'a> {
    span: Span,
    value: f64,
    series: &'a InstantSample,
}

/// The rules-mode answers' series of each SLO, SLO after SLO in one list. A list per SLO would
/// be an allocation per SLO each cycle; and each value is copied here, in a pass along each
/// answer, because reading it later through its series, SLO by SLO, waits on memory (most of
/// the verdicts' time, before).
struct AnswerIndex<'a> {
    /// SLO `k`'s series are `entries[starts[k]..starts[k + 1]]`.
    starts: Vec<u32>,
    /// All `Some` once built.
    entries: Vec<Option<Answered<'a>>>,
}

impl<'a> AnswerIndex<'a> {
    /// The series of the SLO at position `k`.
    fn of(&self, k: usize) -> impl Iterator<Item = &Answered<'a>> + Clone {
        let range = self.starts[k] as usize..self.starts[k + 1] as usize;
        self.entries[range].iter().flatten()
    }
}

/// The [`AnswerIndex`] of `n` SLOs (by position), from the owners found as each answer
/// arrived: one pass over the answers to count each SLO's series, one to place them.
fn index_by_slo<'a>(
    answers: &'a HashMap<Span, QueryResult>,
    owners: &HashMap<Span, Owners>,
    n: usize,
) -> AnswerIndex<'a> {
    let owned = || {
        answers
            .iter()
            .filter_map(|(span, result)| match (result, owners.get(span)) {
                (Ok(samples), Some(owners)) => Some((*span, samples.iter().zip(owners))),
                _ => None,
            })
    };
    let mut starts = vec![0u32; n + 1];
    for (_, series) in owned() {
        for (_, &(k, _)) in series {
            // `k + 1` is past the end for a series of no SLO read (`NOT_READ`).
            if let Some(count) = starts.get_mut(k as usize + 1) {
                *count += 1;
            }
        }
    }
    for k in 0..n {
        starts[k + 1] += starts[k];
    }
    let mut next: Vec<u32> = starts[..n].to_vec();
    let mut entries = vec![None; starts[n] as usize];
    for (span, series) in owned() {
        for (sample, &(k, value)) in series {
            if let Some(slot) = next.get_mut(k as usize) {
                entries[*slot as usize] = Some(Answered {
                    span,
                    value,
                    series: sample,
                });
                *slot += 1;
            }
        }
    }
    AnswerIndex { starts, entries }
}

/// What one span's query said for one SLO, before it is split into groups.
enum SpanAnswer<'a> {
    /// Each series' value and the series; inline for an ungrouped SLO's one series.
    Samples(smallvec::SmallVec<[(f64, &'a InstantSample); 1]>),
    /// A partial answer, or no query (too early in a calendar period).
    NoData,
    Failed(String),
}

fn from_rules<'a>(
    slo: &Slo,
    spans: &[Span],
    answers: &HashMap<Span, QueryResult>,
    samples: impl Iterator<Item = &'a Answered<'a>> + Clone,
    uniqueness: &Uniqueness,
    at: UnixSeconds,
) -> Vec<SloEvaluation> {
    let unique = match uniqueness {
        Uniqueness::Checked(duplicated) => match duplicated.get(slo.name.as_str()) {
            Some(count) => {
                return vec![SloEvaluation::failed(
                    slo,
                    Some(SliSource::Rules),
                    format!(
                        "its recorded series are not unique: {count} series record its objective \
                         (two rule files or two burnguards record this SLO, or replicas of Prometheus \
                         are read without deduplication)"
                    ),
                )];
            }
            None => true,
        },
        Uniqueness::Unknown => false,
        Uniqueness::Failed(reason) => {
            return vec![SloEvaluation::failed(
                slo,
                Some(SliSource::Rules),
                reason.clone(),
            )];
        }
    };
    let read: Vec<(Span, SpanAnswer)> = spans
        .iter()
        .map(|&span| {
            let answer = match answers.get(&span) {
                // Unverified uniqueness: no number is trusted.
                _ if !unique => SpanAnswer::NoData,
                Some(Err(MetricsError::PartialResponse(_))) => SpanAnswer::NoData,
                Some(Err(error)) => {
                    SpanAnswer::Failed(format!("reading {}: {error}", span.series()))
                }
                Some(Ok(_)) => SpanAnswer::Samples(
                    samples
                        .clone()
                        .filter(|a| a.span == span)
                        .map(|a| (a.value, a.series))
                        .collect(),
                ),
                None => SpanAnswer::Failed(format!("{} was not queried", span.describe())),
            };
            (span, answer)
        })
        .collect();
    assemble(slo, SliSource::Rules, read, at)
}

fn from_raw(
    slo: &Slo,
    answers: &[(Span, Option<QueryResult>)],
    at: UnixSeconds,
) -> Vec<SloEvaluation> {
    let read: Vec<(Span, SpanAnswer)> = answers
        .iter()
        .map(|(span, result)| {
            let answer = match result {
                None | Some(Err(MetricsError::PartialResponse(_))) => SpanAnswer::NoData,
                Some(Err(error)) => SpanAnswer::Failed(format!(
                    "querying the error ratio of {}: {error}",
                    span.describe()
                )),
                Some(Ok(samples)) => {
                    SpanAnswer::Samples(samples.iter().map(|s| (s.value, s)).collect())
                }
            };
            (*span, answer)
        })
        .collect();
    assemble(slo, SliSource::Raw, read, at)
}

/// The SLO's evaluations from what each span answered: one, or one per group of a grouped
/// SLO. A failed span fails the SLO; so does a series without the SLO's group labels, two
/// series for one group, or more groups than `maxGroups`. A group missing from a span has no
/// data there.
fn assemble(
    slo: &Slo,
    source: SliSource,
    read: Vec<(Span, SpanAnswer)>,
    at: UnixSeconds,
) -> Vec<SloEvaluation> {
    let fail = |reason: String| vec![SloEvaluation::failed(slo, Some(source), reason)];
    let mut by_group: BTreeMap<Group, Ratios> = BTreeMap::new();
    let mut spans = Vec::with_capacity(read.len());
    for (span, answer) in read {
        spans.push(span);
        let samples = match answer {
            SpanAnswer::Failed(reason) => return fail(reason),
            SpanAnswer::NoData => continue,
            SpanAnswer::Samples(samples) => samples,
        };
        if slo.group_by.is_empty() && samples.len() > 1 {
            return fail(format!(
                "{} has {} series for this SLO; its queries must aggregate to one series (wrap them in sum())",
                span.describe(),
                samples.len()
            ));
        }
        // Only a grouped SLO can have more than one series here (checked above).
        let mut seen: HashSet<Group> = HashSet::new();
        for (value, sample) in samples {
            let group = match group_of(slo, sample) {
                Ok(group) => group,
                Err(reason) => return fail(format!("{}: {reason}", span.describe())),
            };
            if !slo.group_by.is_empty() && !seen.insert(group.clone()) {
                return fail(format!(
                    "{} has two series for {}; the queries must aggregate by exactly {}",
                    span.describe(),
                    crate::domain::policy::group_key(&slo.name, &group),
                    slo.group_by.join(", ")
                ));
            }
            let entry = by_group.entry(group).or_default();
            match burn::finite(Some(value)).map(burn::checked_ratio) {
                None => entry.insert(span, None),
                Some(Ok(ratio)) => entry.insert(span, Some(ratio)),
                Some(Err(impossible)) => {
                    return fail(format!("{}: {impossible}", span.describe()));
                }
            }
        }
    }
    if by_group.len() > slo.max_groups {
        return fail(format!(
            "{} groups by {}, more than maxGroups ({}); raise maxGroups or group by fewer labels",
            by_group.len(),
            slo.group_by.join(", "),
            slo.max_groups
        ));
    }
    if by_group.is_empty() {
        by_group.insert(Group::new(), Ratios::default());
    }
    by_group
        .into_iter()
        .map(|(group, mut ratios)| {
            // Every span is present: missing ones have no data.
            for span in &spans {
                if let Span::Window(w) = span {
                    ratios.windows.entry(*w).or_insert(None);
                }
            }
            let mut evaluation = SloEvaluation::assessed(slo, source, &ratios, at);
            evaluation.group = group;
            evaluation
        })
        .collect()
}

/// Group label values of one series.
type Group = BTreeMap<String, String>;

/// The group a series belongs to: its values of the SLO's `groupBy` labels (none for an
/// ungrouped SLO).
fn group_of(slo: &Slo, sample: &InstantSample) -> Result<Group, String> {
    slo.group_by
        .iter()
        .map(|label| match sample.labels.get(label) {
            Some(value) if !value.is_empty() => Ok((label.clone(), value.to_string())),
            _ => Err(format!(
                "a series has no `{label}` label; the queries must aggregate by {} (sum by ({}) (...))",
                slo.group_by.join(", "),
                slo.group_by.join(", ")
            )),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::on_every_core;

    #[test]
    fn each_slo_name_is_found_at_its_position() {
        let names = ["checkout", "checkout-latency", "search", "é-accents"];
        let block = super::NameBlock::of(names.iter().copied());
        let positions = block.positions();
        for (k, name) in names.iter().enumerate() {
            assert_eq!(positions.get(name), Some(&(k as u32)), "{name}");
        }
        assert_eq!(positions.len(), names.len());
        assert_eq!(positions.get("check"), None);
        assert_eq!(positions.get("checkoutcheckout-latency"), None);
    }

    #[test]
    fn the_answers_are_indexed_slo_by_slo_with_each_value_and_series() {
        use super::{HashMap, NOT_READ, Owners, Span, index_by_slo};
        use crate::domain::policy::Window;
        use crate::ports::{InstantSample, MetricsError};
        let sample = |slo: &str, value: f64| InstantSample {
            labels: [("slo", slo)].into_iter().collect(),
            value,
        };
        let (short, long) = (Span::Window(Window::from_secs(300)), Span::Period);
        let answers: HashMap<Span, super::QueryResult> = [
            (
                short,
                Ok(vec![
                    sample("b", 0.2),
                    sample("gone", 9.0),
                    sample("a", 0.1),
                ]),
            ),
            (
                long,
                Ok(vec![sample("a", 0.3), sample("b", 0.4), sample("b", 0.5)]),
            ),
            (
                Span::Window(Window::from_secs(3_600)),
                Err(MetricsError::PartialResponse("one store was down".into())),
            ),
        ]
        .into_iter()
        .collect();
        // Positions: a = 0, b = 1, c = 2 (answered nowhere); `gone` is read by no SLO.
        let position: HashMap<&str, u32> = [("a", 0), ("b", 1), ("c", 2)].into_iter().collect();
        let owners: HashMap<Span, Owners> = answers
            .iter()
            .map(|(span, answer)| (*span, super::owners(answer, &position)))
            .collect();
        assert_eq!(owners[&short], [(1, 0.2), (NOT_READ, 9.0), (0, 0.1)]);
        assert_eq!(owners[&long], [(0, 0.3), (1, 0.4), (1, 0.5)]);
        let index = index_by_slo(&answers, &owners, 3);
        let of = |k: usize| {
            let mut found: Vec<(Span, f64, String)> = index
                .of(k)
                .map(|a| {
                    assert_eq!(a.value, a.series.value);
                    (
                        a.span,
                        a.value,
                        a.series.labels.get("slo").unwrap().to_string(),
                    )
                })
                .collect();
            found.sort_by(|x, y| x.partial_cmp(y).unwrap());
            found
        };
        assert_eq!(of(0), [(short, 0.1, "a".into()), (long, 0.3, "a".into())]);
        assert_eq!(
            of(1),
            [
                (short, 0.2, "b".into()),
                (long, 0.4, "b".into()),
                (long, 0.5, "b".into())
            ]
        );
        assert!(of(2).is_empty());
    }

    #[test]
    fn the_spans_of_a_fleet_are_each_queried_once_however_the_slos_share_them() {
        use super::{Span, SpanList, distinct_spans};
        use crate::domain::policy::Window;
        let w = |secs| Span::Window(Window::from_secs(secs));
        let common: SpanList = [w(300), w(3600), w(86_400)].into_iter().collect();
        let other: SpanList = [w(300), w(1_800), Span::Period].into_iter().collect();
        let fleet: [&[Span]; 5] = [&common, &common, &other, &common, &[]];
        let spans: Vec<Span> = distinct_spans(&fleet).into_iter().collect();
        assert_eq!(
            spans,
            [w(300), w(1_800), w(3600), w(86_400), Span::Period],
            "every span once, in order"
        );
        assert!(distinct_spans(&[]).is_empty());
    }

    /// SLOs `names`, each reading `ratio` through its own metric, so each has rules of its own.
    fn named(names: &[&str]) -> Vec<crate::domain::policy::Slo> {
        let text: String = names
            .iter()
            .map(|name| {
                format!(
                    "---\napiVersion: burnguard.dev/v1\nkind: SLO\nmetadata: {{name: {name}}}\nspec:\n  service: x\n  objective: 99\n  indicator: {{raw: {{errorRatio: '{name}_ratio[{{{{.window}}}}]'}}}}\n"
                )
            })
            .collect();
        let (loaded, problems) = crate::policies::parse_source("t.yaml", &text);
        assert!(problems.is_empty(), "{problems:?}");
        loaded.into_iter().map(|l| l.slo).collect()
    }

    #[test]
    fn a_plan_holds_each_slo_s_spans_and_rules_fingerprint_and_fits_only_the_slos_it_was_made_for()
    {
        use super::{ReadPlan, Span};
        use crate::domain::rules::rules_fingerprint;
        let slos = named(&["checkout", "search", "login"]);
        let plan = ReadPlan::of(&slos);
        for (planned, slo) in plan.slos.iter().zip(&slos) {
            assert_eq!(planned.name, slo.name);
            assert_eq!(planned.rules_fingerprint, rules_fingerprint(slo));
            assert_eq!(planned.spans.to_vec(), Span::of(slo).collect::<Vec<_>>());
        }
        let fingerprints: std::collections::BTreeSet<&str> = plan
            .slos
            .iter()
            .map(|p| p.rules_fingerprint.as_str())
            .collect();
        assert_eq!(fingerprints.len(), 3, "each SLO's rules are its own");
        assert!(plan.fits(&slos));
        assert!(!plan.fits(&slos[..2]), "one SLO fewer");
        // The plan of the SLOs due in a cycle that does not evaluate them all.
        let due = [slos[2].clone(), slos[0].clone()];
        let subset = plan.subset(&[2, 0]);
        assert!(subset.fits(&due));
        assert_eq!(
            subset.slos[0].rules_fingerprint,
            rules_fingerprint(&slos[2])
        );
        assert!(ReadPlan::of(&[]).fits(&[]));
    }

    /// Only debug builds (the tests') compare each name; a release build checks the length.
    #[cfg(debug_assertions)]
    #[test]
    #[should_panic(expected = "a read plan handed in with SLOs it was not made for")]
    fn a_plan_handed_in_with_the_same_number_of_other_slos_is_a_bug_caught_in_debug_builds() {
        let slos = named(&["checkout", "search", "login"]);
        let plan = super::ReadPlan::of(&slos);
        let mut reordered = slos.clone();
        reordered.swap(0, 2);
        plan.fits(&reordered);
    }

    #[test]
    fn work_split_over_cores_comes_back_whole_and_in_order() {
        for n in [0, 1, 999, 1_000, 2_001, 10_007] {
            let squares = on_every_core(n, |i| i * i);
            let expected: Vec<usize> = (0..n).map(|i| i * i).collect();
            assert_eq!(squares, expected, "n = {n}");
        }
    }
}
