//! Persisting a cycle: every SLO's evaluation goes to the store together with what it means
//! for the SLO's incident (the domain's lifecycle rule, applied inside the store's transaction).

use foldhash::{HashMap, HashMapExt, HashSet};

use tracing::{info, warn};

use super::evaluate::{EvalStatus, Evaluation, SloEvaluation};
use crate::domain::burn::Status;
use crate::domain::incident::{self, Decision, Observation};
use crate::domain::policy::{self, Severity, Slo};
use crate::ports::{CommandOutcome, EvaluationRecord, Operations, Store};

/// What one evaluation says for incidents.
pub fn observation(e: &SloEvaluation) -> Observation {
    match e.status {
        EvalStatus::Error => Observation::Failed {
            reason: e.error.clone().unwrap_or_else(|| "unknown error".into()),
        },
        EvalStatus::Assessed(Status::NoData) => Observation::NoData,
        EvalStatus::Assessed(Status::Partial) => Observation::Partial,
        EvalStatus::Assessed(Status::Ok) => Observation::Quiet {
            budget_remaining: e.error_budget_remaining,
        },
        EvalStatus::Assessed(status @ (Status::Page | Status::Ticket)) => {
            let burn_rate = e
                .alerts
                .iter()
                .filter(|a| a.firing)
                .filter_map(|a| e.burn_rate.get(a.long))
                .fold(0.0_f64, f64::max);
            Observation::Firing {
                severity: if status == Status::Page {
                    Severity::Page
                } else {
                    Severity::Ticket
                },
                burn_rate,
                budget_remaining: e.error_budget_remaining,
            }
        }
    }
}

/// The stored form of one evaluation.
pub fn evaluation_record(e: &SloEvaluation, at: i64) -> EvaluationRecord<'_> {
    EvaluationRecord {
        snapshot: snapshot(e),
        ..evaluation_row(e, at)
    }
}

/// The stored form of one evaluation without its snapshot (made only where it is written),
/// borrowing its key, service and status from the evaluation.
fn evaluation_row(e: &SloEvaluation, at: i64) -> EvaluationRecord<'_> {
    EvaluationRecord {
        slo: e.key_text(),
        service: std::borrow::Cow::Borrowed(&e.service),
        evaluated_at: at,
        status: std::borrow::Cow::Borrowed(e.status.as_str()),
        error_budget_remaining: e.error_budget_remaining,
        snapshot: String::new(),
    }
}

/// The whole evaluation as JSON text: what the history, the stored latest state and incident
/// timelines keep.
fn snapshot(e: &SloEvaluation) -> String {
    // A derived Serialize of plain data does not fail; `{}` keeps the column valid JSON.
    serde_json::to_string(e).unwrap_or_else(|_| "{}".into())
}

/// Counts of what a cycle did to incidents.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recorded {
    pub opened: usize,
    pub escalated: usize,
    pub resolved: usize,
    /// SLOs whose record failed (logged); their evaluation is not stored.
    pub failed: usize,
}

/// Which evaluations the store keeps: an SLO's history and its stored latest state take one
/// evaluation per `resolution` (the UI's charts, the API's history) plus every change of
/// status (and the store adds every evaluation that changes an incident), so the record of
/// when an SLO paged, recovered or lost its data stays exact while a fleet evaluated every
/// 30 s does not write a row per SLO per cycle. The freshest evaluation of every SLO is the
/// evaluating replica's, in memory: what `/metrics`, the API and the UI serve.
///
/// Each SLO's slots are offset by a stable hash of its key, so a fleet's rows spread over the
/// cycles of a resolution instead of all landing in one. What was kept lives in memory: after
/// a restart every SLO's first evaluation is kept again.
#[derive(Debug, Default)]
pub struct HistoryCadence {
    resolution: u64,
    kept: HashMap<String, Kept>,
}

/// The last evaluation of one SLO that went to the history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Kept {
    slot: i64,
    status: EvalStatus,
}

impl HistoryCadence {
    /// One history row per SLO per `resolution` (whole seconds); zero keeps every evaluation.
    pub fn new(resolution: std::time::Duration) -> Self {
        Self {
            resolution: resolution.as_secs(),
            kept: HashMap::new(),
        }
    }

    /// Whether the evaluation of `key` at `at` with `status` goes to the history: the SLO's
    /// first, a changed status, or the first in a new slot of the resolution.
    pub fn keeps(&self, key: &str, status: EvalStatus, at: i64) -> bool {
        match self.kept.get(key) {
            _ if self.resolution == 0 => true,
            None => true,
            Some(kept) => kept.status != status || kept.slot != self.slot(key, at),
        }
    }

    /// Notes that the evaluation went to the history (call once its write committed).
    pub fn kept(&mut self, key: &str, status: EvalStatus, at: i64) {
        if self.resolution == 0 {
            return;
        }
        let slot = self.slot(key, at);
        match self.kept.get_mut(key) {
            Some(kept) => *kept = Kept { slot, status },
            None => {
                self.kept.insert(key.to_string(), Kept { slot, status });
            }
        }
    }

    /// Forgets SLOs that are no longer evaluated (a reload removed them, a group vanished).
    pub fn retain(&mut self, mut evaluated: impl FnMut(&str) -> bool) {
        self.kept.retain(|key, _| evaluated(key));
    }

    /// The slot of the resolution `at` falls in, shifted by the key's offset.
    fn slot(&self, key: &str, at: i64) -> i64 {
        let offset = (fnv1a(key.as_bytes()) % self.resolution) as i64;
        (at + offset).div_euclid(self.resolution as i64)
    }
}

/// FNV-1a, 64 bits: the same offset for a key in every process and every release.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Evaluations per store transaction: a cycle of 10,000 SLOs is two batches, so no batch
/// holds SQLite's write lock (which webhook intake also waits for) for long.
pub const RECORD_BATCH: usize = 5_000;

/// Stores every SLO evaluation of a cycle and drives its incident's lifecycle, in batches of
/// [`RECORD_BATCH`] evaluations, each one transaction: a crash mid-cycle leaves every batch
/// stored whole or not at all, and the next cycle decides again from what is stored. When a
/// batch fails, its SLOs are recorded one by one, so one bad record costs only itself.
pub async fn record_cycle<S: Store>(
    store: &S,
    slos: &[Slo],
    evaluation: &Evaluation,
    history: &mut HistoryCadence,
) -> Recorded {
    let by_name: HashMap<&str, &Slo> = slos.iter().map(|s| (s.name.as_str(), s)).collect();
    let at = evaluation.at;
    // The evaluations of loaded SLOs, with what each says for its incident, in key order: a
    // batch then covers one range of keys, and the store reads only that range's incidents.
    let mut known: Vec<(&SloEvaluation, Observation, u64)> = evaluation
        .slos
        .iter()
        .filter_map(|e| {
            let slo = by_name.get(e.name.as_str())?;
            Some((e.as_ref(), observation(e), slo.resolve_after.as_secs()))
        })
        .collect();
    known.sort_by_cached_key(|&(e, ..)| e.key_text());
    let mut recorded = Recorded::default();
    for batch in known.chunks(RECORD_BATCH) {
        let mut records: Vec<EvaluationRecord> =
            batch.iter().map(|(e, ..)| evaluation_row(e, at)).collect();
        let kept: Vec<bool> = records
            .iter()
            .zip(batch)
            .map(|(r, (e, ..))| history.keeps(&r.slo, e.status, at))
            .collect();
        // Only what the store keeps is serialized up front; it asks for the others it needs.
        for (i, record) in records.iter_mut().enumerate() {
            if kept[i] {
                record.snapshot = snapshot(batch[i].0);
            }
        }
        let decide = |i: usize, open: Option<&incident::OpenIncident>| {
            let (_, seen, resolve_after) = &batch[i];
            incident::decide(open, seen, at, *resolve_after)
        };
        let snapshot_of = |i: usize| snapshot(batch[i].0);
        match store
            .record_batch(&records, &kept, decide, snapshot_of)
            .await
        {
            Ok(done) => {
                for (i, ((e, ..), done)) in batch.iter().zip(done).enumerate() {
                    if kept[i] {
                        history.kept(&records[i].slo, e.status, at);
                    }
                    count(&mut recorded, e, &done);
                }
            }
            Err(error) => {
                warn!(%error, slos = batch.len(), "recording the cycle's batch failed; recording its SLOs one by one");
                for (i, (e, ..)) in batch.iter().enumerate() {
                    // One by one, every evaluation goes to the history, as `record` stores it.
                    let mut record = records[i].clone();
                    if record.snapshot.is_empty() {
                        record.snapshot = snapshot(e);
                    }
                    match store.record(&record, |open| decide(i, open)).await {
                        Ok(done) => {
                            history.kept(&records[i].slo, e.status, at);
                            count(&mut recorded, e, &done)
                        }
                        Err(error) => {
                            recorded.failed += 1;
                            warn!(slo = %e.key(), %error, "recording the evaluation failed");
                        }
                    }
                }
            }
        }
    }
    recorded
}

/// Counts and logs what recording one evaluation did to its incident.
fn count(recorded: &mut Recorded, e: &SloEvaluation, done: &crate::ports::Transitioned) {
    match done.decision {
        Decision::Open { severity, .. } => {
            recorded.opened += 1;
            info!(slo = %e.key(), incident = ?done.incident_id, %severity, "incident opened");
        }
        Decision::Escalate { to, .. } => {
            recorded.escalated += 1;
            info!(slo = %e.key(), incident = ?done.incident_id, severity = %to, "incident escalated");
        }
        Decision::Resolve { .. } => {
            recorded.resolved += 1;
            info!(slo = %e.key(), incident = ?done.incident_id, "incident resolved");
        }
        _ => {}
    }
}

/// Resolves the unresolved incidents that an SLO's `groupBy` edit left behind: keyed by a
/// shape the SLO no longer has (`checkout` once it is grouped by route, or
/// `checkout{route="/pay"}` once it is not), no evaluation will ever carry them again. Only
/// once the SLO in its new shape was assessed on whole data this cycle: an SLO without data
/// keeps its old incidents. Returns how many were resolved.
pub async fn retire_reshaped<S: Store + Operations>(
    store: &S,
    slos: &[Slo],
    evaluation: &Evaluation,
    at: i64,
) -> usize {
    // A plain key can be reshaped only into a grouped SLO: a fleet without one reads only
    // the incidents of group keys (usually none), and builds nothing more when there are none.
    let grouped_only = slos.iter().all(|slo| slo.group_by.is_empty());
    let unresolved = match store.unresolved_keys(grouped_only).await {
        Ok(found) => found,
        Err(error) => {
            warn!(%error, "listing unresolved incidents failed; reshaped SLOs are checked next cycle");
            return 0;
        }
    };
    if unresolved.is_empty() {
        return 0;
    }
    // One pass over the evaluations, one over the SLOs: linear at any fleet size.
    let on_data: HashSet<&str> = evaluation
        .slos
        .iter()
        .filter(|e| {
            matches!(
                e.status,
                EvalStatus::Assessed(Status::Ok | Status::Ticket | Status::Page)
            )
        })
        .map(|e| e.name.as_str())
        .collect();
    let assessed: HashMap<&str, &Slo> = slos
        .iter()
        .filter(|slo| on_data.contains(slo.name.as_str()))
        .map(|slo| (slo.name.as_str(), slo))
        .collect();
    let mut retired = 0;
    for (id, key) in unresolved {
        let Some((name, _)) = policy::split_group_key(&key) else {
            continue;
        };
        let Some(slo) = assessed.get(name) else {
            continue;
        };
        if !policy::is_reshaped_key(&key, slo) {
            continue;
        }
        let note = reshaped_note(slo);
        match store.resolve_by_hand(id, ACTOR, Some(&note), at).await {
            Ok(CommandOutcome::Done(_)) => {
                retired += 1;
                info!(slo = %key, incident = id, "incident resolved: its SLO's groupBy changed");
            }
            // Another replica resolved it first.
            Ok(_) => {}
            Err(error) => {
                warn!(slo = %key, %error, "resolving a reshaped SLO's incident failed")
            }
        }
    }
    retired
}

/// Who resolves what nobody else did.
const ACTOR: &str = "burnguard";

/// Why a reshaped SLO's incident was resolved, for its timeline.
fn reshaped_note(slo: &Slo) -> String {
    if slo.group_by.is_empty() {
        format!(
            "groupBy changed: {} is no longer grouped; this group's incident is resolved and the SLO as a whole is evaluated in its place",
            slo.name
        )
    } else {
        format!(
            "groupBy changed: {} is now grouped by [{}]; this incident's key names no group of it, so it is resolved and each group is evaluated on its own",
            slo.name,
            slo.group_by.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const OK: EvalStatus = EvalStatus::Assessed(Status::Ok);
    const PAGE: EvalStatus = EvalStatus::Assessed(Status::Page);

    /// Runs `cycles` evaluations `interval` seconds apart from `start`, all with `status`,
    /// and returns the times kept.
    fn kept_times(
        history: &mut HistoryCadence,
        key: &str,
        start: i64,
        interval: i64,
        cycles: i64,
    ) -> Vec<i64> {
        (0..cycles)
            .map(|k| start + k * interval)
            .filter(|&at| {
                let keep = history.keeps(key, OK, at);
                if keep {
                    history.kept(key, OK, at);
                }
                keep
            })
            .collect()
    }

    #[test]
    fn one_row_per_resolution_after_the_first() {
        let mut history = HistoryCadence::new(Duration::from_secs(300));
        // 30 s cycles for an hour: the first, then one per 5-minute slot of this key.
        let kept = kept_times(&mut history, "checkout", 1_000_000, 30, 120);
        assert_eq!(kept[0], 1_000_000);
        // 12 slots begin within the hour (one of them possibly in the first cycle's slot).
        assert!((12..=13).contains(&kept.len()), "{kept:?}");
        for pair in kept.windows(2).skip(1) {
            assert_eq!(pair[1] - pair[0], 300, "{kept:?}");
        }
    }

    #[test]
    fn a_change_of_status_is_always_kept_and_starts_nothing_new() {
        let mut history = HistoryCadence::new(Duration::from_secs(300));
        let at = 2_000_000;
        history.kept("checkout", OK, at);
        assert!(!history.keeps("checkout", OK, at + 1));
        assert!(history.keeps("checkout", PAGE, at + 1));
        history.kept("checkout", PAGE, at + 1);
        assert!(!history.keeps("checkout", PAGE, at + 2));
        assert!(history.keeps("checkout", OK, at + 2));
        assert!(history.keeps("checkout", EvalStatus::Error, at + 2));
    }

    #[test]
    fn zero_resolution_keeps_every_evaluation() {
        let mut history = HistoryCadence::new(Duration::ZERO);
        assert_eq!(kept_times(&mut history, "checkout", 0, 30, 10).len(), 10);
    }

    #[test]
    fn a_fleet_s_rows_spread_over_the_cycles_of_a_resolution() {
        let history = HistoryCadence::new(Duration::from_secs(300));
        // Which of ten 30 s cycles starts each of 10,000 keys' slots.
        let mut per_cycle = [0usize; 10];
        for i in 0..10_000 {
            let key = format!("slo-{i}");
            let first = (0..10)
                .find(|k| {
                    history.slot(&key, 300 * 100 + k * 30)
                        != history.slot(&key, 300 * 100 - 30 + k * 30)
                })
                .expect("a slot starts within one resolution");
            per_cycle[first as usize] += 1;
        }
        // Evenly spread is 1,000 per cycle; no cycle carries more than a fifth of the fleet.
        assert!(
            per_cycle.iter().all(|&n| (500..2_000).contains(&n)),
            "{per_cycle:?}"
        );
    }

    #[test]
    fn forgotten_keys_are_kept_again() {
        let mut history = HistoryCadence::new(Duration::from_secs(300));
        history.kept("gone", OK, 10);
        history.kept("stays", OK, 10);
        history.retain(|key| key == "stays");
        assert!(history.keeps("gone", OK, 11));
        assert!(!history.keeps("stays", OK, 11));
    }
}
