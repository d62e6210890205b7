//! A playbook step's life in the journal, as a pure state machine: given what the journal holds
//! for a step (if anything), the step's nature, the run's mode and what the guards say, what
//! happens next. The engine asks [`next_move`] and carries the answer out against the store.
//!
//! ```text
//!            ┌──────────── dry run ───────────▶ dry_run ──▶ (next step)
//!  (none) ───┼──────────── approve ───────────▶ awaiting_approval ──(a person)──▶ approved ─┐
//!            ├── guard says no ──▶ skipped ──(guard allows, checked every cycle)───────────┤
//!            └── guard allows ───────────────────────────────────────────────▶ started ◀──┘
//!  started ──▶ succeeded | failed           (settled by the instance that started it)
//!  started ──▶ unknown                      (its instance died, or shut down mid-step)
//!  unknown ──▶ started                      (only when the step is safe to repeat)
//! ```
//!
//! Owns: which transitions exist and what may run next. Must not touch: storage, time, I/O.

use super::playbook::PlaybookMode;

/// A journal row's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StepStatus {
    Started,
    Succeeded,
    Failed,
    /// Found `started` after its instance died: it may or may not have happened.
    Unknown,
    /// Dry run: journaled and on the timeline, never called.
    DryRun,
    /// Waiting for a person to approve it.
    AwaitingApproval,
    /// A guard (cooldown, hourly cap) kept it from running so far; checked again each cycle.
    Skipped,
    /// A person approved it; it runs on the next cycle.
    Approved,
}

impl StepStatus {
    pub const ALL: [StepStatus; 8] = [
        StepStatus::Started,
        StepStatus::Succeeded,
        StepStatus::Failed,
        StepStatus::Unknown,
        StepStatus::DryRun,
        StepStatus::AwaitingApproval,
        StepStatus::Skipped,
        StepStatus::Approved,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Started => "started",
            StepStatus::Succeeded => "succeeded",
            StepStatus::Failed => "failed",
            StepStatus::Unknown => "unknown",
            StepStatus::DryRun => "dry_run",
            StepStatus::AwaitingApproval => "awaiting_approval",
            StepStatus::Skipped => "skipped",
            StepStatus::Approved => "approved",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Whether the step is over for good for this incident.
    pub fn is_settled(self) -> bool {
        matches!(
            self,
            StepStatus::Succeeded | StepStatus::Failed | StepStatus::DryRun
        )
    }
}

/// What the machine needs to know of the step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StepNature {
    /// Running it twice does no harm (freeze, scale to a number, verify, `idempotent: true`).
    pub safe_to_repeat: bool,
    pub continue_on_error: bool,
}

/// What to do with a step now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Move {
    /// Journal it as `started` and run it, if the guards (cooldown, hourly cap) allow, in the
    /// same transaction; otherwise it is journaled `skipped` with their reason.
    Start,
    /// Journal it with this status, which runs nothing (dry run, awaiting approval).
    Journal(StepStatus),
    /// Take the existing row from `from` to `started` (a compare-and-set) and run it;
    /// `guarded`: only if the guards allow now.
    Claim { from: StepStatus, guarded: bool },
    /// The step is done with: go on to the next one.
    Next,
    /// The playbook does not go past this step now; it is looked at again next cycle.
    Wait(WaitReason),
    /// The playbook stops here for this incident.
    Stop(StopReason),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitReason {
    /// A person must approve it first.
    Approval,
    /// It is running (here or in another replica).
    Running,
    /// Skipped by a guard while the run is not in auto mode: it waits for auto mode.
    SkippedOutsideAuto,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// It failed and the playbook does not continue on its errors.
    Failed,
    /// It was interrupted, may have taken effect, and is not safe to repeat: a person decides.
    UnknownNotRepeatable,
}

/// The rule. `existing` is the step's journal row, if any; `mode` the run's mode now (a
/// service-wide dry run is `DryRun`, whose rows are journaled apart from real ones).
pub fn next_move(existing: Option<StepStatus>, nature: StepNature, mode: PlaybookMode) -> Move {
    match existing {
        None => match mode {
            PlaybookMode::DryRun => Move::Journal(StepStatus::DryRun),
            PlaybookMode::Approve => Move::Journal(StepStatus::AwaitingApproval),
            PlaybookMode::Auto => Move::Start,
        },
        Some(StepStatus::Succeeded | StepStatus::DryRun) => Move::Next,
        Some(StepStatus::Failed) if nature.continue_on_error => Move::Next,
        Some(StepStatus::Failed) => Move::Stop(StopReason::Failed),
        Some(StepStatus::Started) => Move::Wait(WaitReason::Running),
        Some(StepStatus::AwaitingApproval) => Move::Wait(WaitReason::Approval),
        // A person's approval is the guard.
        Some(StepStatus::Approved) => Move::Claim {
            from: StepStatus::Approved,
            guarded: false,
        },
        // The same action again, not a new one: it counted when it first started.
        Some(StepStatus::Unknown) if nature.safe_to_repeat => Move::Claim {
            from: StepStatus::Unknown,
            guarded: false,
        },
        Some(StepStatus::Unknown) => Move::Stop(StopReason::UnknownNotRepeatable),
        Some(StepStatus::Skipped) => match mode {
            PlaybookMode::Auto => Move::Claim {
                from: StepStatus::Skipped,
                guarded: true,
            },
            PlaybookMode::DryRun | PlaybookMode::Approve => {
                Move::Wait(WaitReason::SkippedOutsideAuto)
            }
        },
    }
}

/// A step journaled earlier in the same run, as the rename check sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PastStep {
    pub name: String,
    /// What the step does, without its name (kind and action as journaled).
    pub action: String,
    pub status: StepStatus,
}

/// The earlier step a new step is a renaming of: a step of this run that is no longer in the
/// playbook and did exactly what the new step does. A rename must not run an action twice.
pub fn renamed_from<'a>(
    action: &str,
    current_names: &[&str],
    past: &'a [PastStep],
) -> Option<&'a PastStep> {
    past.iter()
        .find(|p| p.action == action && !current_names.contains(&p.name.as_str()))
}

/// The run's mode after a step: once a person approved a step (or it succeeded after
/// approval), the rest of the run does not ask again.
pub fn mode_after(mode: PlaybookMode, step: StepStatus) -> PlaybookMode {
    match (mode, step) {
        (PlaybookMode::Approve, StepStatus::Approved | StepStatus::Succeeded) => PlaybookMode::Auto,
        (mode, _) => mode,
    }
}

/// The statuses a step may move to from `from` (the store enforces these as compare-and-set).
pub fn may_transition(from: StepStatus, to: StepStatus) -> bool {
    use StepStatus::*;
    matches!(
        (from, to),
        (Started, Succeeded | Failed | Unknown)
            | (AwaitingApproval, Approved)
            | (Approved | Unknown | Skipped, Started)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use PlaybookMode::{Approve, Auto};

    const DRY: PlaybookMode = PlaybookMode::DryRun;
    use StepStatus::*;

    const PLAIN: StepNature = StepNature {
        safe_to_repeat: false,
        continue_on_error: false,
    };
    const REPEATABLE: StepNature = StepNature {
        safe_to_repeat: true,
        continue_on_error: false,
    };
    const CARRY_ON: StepNature = StepNature {
        safe_to_repeat: false,
        continue_on_error: true,
    };

    #[test]
    fn what_happens_next_for_every_journal_state() {
        let claim = |from, guarded| Move::Claim { from, guarded };
        let table: Vec<(Option<StepStatus>, StepNature, PlaybookMode, Move)> = vec![
            (None, PLAIN, Auto, Move::Start),
            (None, PLAIN, DRY, Move::Journal(DryRun)),
            (None, PLAIN, Approve, Move::Journal(AwaitingApproval)),
            (Some(Succeeded), PLAIN, Auto, Move::Next),
            (Some(DryRun), PLAIN, DRY, Move::Next),
            (Some(Failed), PLAIN, Auto, Move::Stop(StopReason::Failed)),
            (Some(Failed), CARRY_ON, Auto, Move::Next),
            (Some(Started), PLAIN, Auto, Move::Wait(WaitReason::Running)),
            (
                Some(AwaitingApproval),
                PLAIN,
                Approve,
                Move::Wait(WaitReason::Approval),
            ),
            (Some(Approved), PLAIN, Approve, claim(Approved, false)),
            (Some(Unknown), REPEATABLE, Auto, claim(Unknown, false)),
            (
                Some(Unknown),
                PLAIN,
                Auto,
                Move::Stop(StopReason::UnknownNotRepeatable),
            ),
            // Guards are checked each time: a skipped step is claimed when they allow.
            (Some(Skipped), PLAIN, Auto, claim(Skipped, true)),
            (
                Some(Skipped),
                PLAIN,
                Approve,
                Move::Wait(WaitReason::SkippedOutsideAuto),
            ),
            (
                Some(Skipped),
                PLAIN,
                DRY,
                Move::Wait(WaitReason::SkippedOutsideAuto),
            ),
        ];
        for (existing, nature, mode, expected) in table {
            assert_eq!(
                next_move(existing, nature, mode),
                expected,
                "{existing:?} {nature:?} {mode:?}"
            );
        }
    }

    #[test]
    fn every_claim_is_an_allowed_transition_and_done_steps_never_restart() {
        for existing in StepStatus::ALL {
            for nature in [PLAIN, REPEATABLE, CARRY_ON] {
                for mode in [Auto, Approve, DRY] {
                    let next = next_move(Some(existing), nature, mode);
                    if let Move::Claim { from, .. } = next {
                        assert_eq!(from, existing);
                        assert!(may_transition(from, Started), "{from:?}");
                    }
                    if existing == Succeeded {
                        assert_eq!(next, Move::Next, "a succeeded step is never run again");
                    }
                }
            }
        }
        assert!(!may_transition(Succeeded, Started));
        assert!(!may_transition(Failed, Started));
        assert!(!may_transition(DryRun, Started));
    }

    #[test]
    fn a_renamed_step_is_found_by_what_it_does_and_only_when_its_old_name_is_gone() {
        let past = vec![
            PastStep {
                name: "turn off recs".into(),
                action: "http PUT /flags/recs".into(),
                status: Succeeded,
            },
            PastStep {
                name: "scale".into(),
                action: "scale shop/web 6".into(),
                status: Succeeded,
            },
        ];
        // "turn off recs" renamed to "disable recommendations".
        let found = renamed_from(
            "http PUT /flags/recs",
            &["disable recommendations", "scale"],
            &past,
        );
        assert_eq!(found.map(|p| p.name.as_str()), Some("turn off recs"));
        // The old step is still there: a second step doing the same is a new step.
        assert_eq!(
            renamed_from("http PUT /flags/recs", &["turn off recs", "again"], &past),
            None
        );
        // Something else entirely.
        assert_eq!(renamed_from("http DELETE /x", &["new"], &past), None);
    }

    #[test]
    fn approval_carries_the_rest_of_the_run() {
        assert_eq!(mode_after(Approve, Approved), Auto);
        assert_eq!(mode_after(Approve, Succeeded), Auto);
        assert_eq!(mode_after(Approve, AwaitingApproval), Approve);
        assert_eq!(mode_after(DRY, Succeeded), DRY);
    }

    #[test]
    fn statuses_round_trip_through_text() {
        for status in StepStatus::ALL {
            assert_eq!(StepStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(StepStatus::parse("bogus"), None);
    }
}
