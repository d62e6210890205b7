//! Which revision a Deployment rollback goes to, so that automation never flips back to a bad
//! version.
//!
//! Kubernetes keeps one ReplicaSet per pod template, labelled with its `pod-template-hash` and
//! annotated with its revision. Going back to an old template renumbers it: its ReplicaSet
//! takes the newest number (highest + 1), its old number moves to the
//! `deployment.kubernetes.io/revision-history` annotation, and the Deployment's revision
//! becomes the new number. So after v1 (1), v2 (2), v3 (3, bad) and one undo, v2 is revision 4
//! and the revision before it is the bad v3: a second `kubectl rollout undo` brings it back.
//!
//! The rule here: go to the newest revision older than the current one, skipping the current
//! template and every template in `avoid` (those burnguard itself rolled away from). A gap in
//! the revision numbers on the way is a ReplicaSet that is gone (garbage-collected past
//! `revisionHistoryLimit`): what it ran cannot be known, so the answer is a refusal rather than
//! a jump further back. Pure: the Kubernetes adapter reads the ReplicaSets and applies the
//! answer. Owns the choice only; must not touch the API or the journal.

use std::collections::BTreeSet;

/// One ReplicaSet of the Deployment, as the rollback needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaSetRevision {
    /// Its `deployment.kubernetes.io/revision`.
    pub revision: u64,
    /// The numbers it had before (`deployment.kubernetes.io/revision-history`).
    pub history: Vec<u64>,
    /// Its `pod-template-hash` label.
    pub template_hash: String,
    /// It still carries a pod template to go back to (false while it is being deleted).
    pub has_template: bool,
}

/// Where the Deployment is now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CurrentRevision {
    /// The Deployment's `deployment.kubernetes.io/revision`.
    pub revision: u64,
    /// The `pod-template-hash` of the ReplicaSet whose template the Deployment's
    /// `spec.template` is; `None` when no ReplicaSet has it yet.
    pub spec_hash: Option<String>,
}

/// A pod template by its revision and hash.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TemplateRevision {
    pub revision: u64,
    pub template_hash: String,
}

/// Where to go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RollbackChoice {
    /// The revision rolled away from.
    pub from: TemplateRevision,
    /// The revision whose template to write.
    pub to: TemplateRevision,
    /// The Deployment's `spec.template` is already `to`'s (someone, or an earlier attempt, asked
    /// for it and the controller has not renumbered yet): there is nothing to write.
    pub already_requested: bool,
}

/// Why there is no revision to go to.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RollbackRefusal {
    #[error("no ReplicaSet has its current revision {revision}, so what it runs now is unknown")]
    CurrentUnknown { revision: u64 },
    #[error(
        "its pod template changed after revision {revision} and the Deployment controller has not rolled that change out yet; try again once it has"
    )]
    ChangeNotRolledOut { revision: u64 },
    #[error(
        "revision {revision}, the next one back, has no ReplicaSet any more (garbage-collected past revisionHistoryLimit, or deleted), so whether it is safe cannot be told; roll back by hand"
    )]
    Collected { revision: u64 },
    #[error("no revision before {current} to go back to{}", avoided_note(.avoided))]
    NothingLeft {
        current: u64,
        /// Revisions skipped because burnguard rolled away from their templates before.
        avoided: Vec<u64>,
    },
}

fn avoided_note(avoided: &[u64]) -> String {
    if avoided.is_empty() {
        return String::new();
    }
    let list: Vec<String> = avoided.iter().map(u64::to_string).collect();
    format!(
        ": the earlier ones ({}) run templates burnguard rolled away from before",
        list.join(", ")
    )
}

/// Chooses the revision to roll back to: the newest one below the current revision, never
/// the current template, never a template in `avoid` (pod-template-hashes burnguard rolled
/// away from). See the module documentation for the gaps and the refusals.
pub fn choose_target(
    current: &CurrentRevision,
    candidates: &[ReplicaSetRevision],
    avoid: &[String],
) -> Result<RollbackChoice, RollbackRefusal> {
    let current_rs = candidates
        .iter()
        .find(|c| c.revision == current.revision)
        .ok_or(RollbackRefusal::CurrentUnknown {
            revision: current.revision,
        })?;
    let from = TemplateRevision {
        revision: current.revision,
        template_hash: current_rs.template_hash.clone(),
    };
    let to = previous(&from, candidates, avoid)?;
    let spec_is = |hash: &str| current.spec_hash.as_deref() == Some(hash);
    if spec_is(&from.template_hash) {
        return Ok(RollbackChoice {
            from,
            to,
            already_requested: false,
        });
    }
    if spec_is(&to.template_hash) {
        return Ok(RollbackChoice {
            from,
            to,
            already_requested: true,
        });
    }
    Err(RollbackRefusal::ChangeNotRolledOut {
        revision: current.revision,
    })
}

/// Walks the revision numbers down from `from`: each number belongs to the ReplicaSet that
/// has it now or had it before; the first eligible template is the answer.
fn previous(
    from: &TemplateRevision,
    candidates: &[ReplicaSetRevision],
    avoid: &[String],
) -> Result<TemplateRevision, RollbackRefusal> {
    let avoid: BTreeSet<&str> = avoid.iter().map(String::as_str).collect();
    let mut avoided = Vec::new();
    // Bounded by the ReplicaSets' numbers: the first number nobody holds ends the walk.
    for revision in (1..from.revision).rev() {
        let holder = candidates
            .iter()
            .find(|c| c.revision == revision)
            .or_else(|| candidates.iter().find(|c| c.history.contains(&revision)));
        let Some(holder) = holder else {
            return Err(RollbackRefusal::Collected { revision });
        };
        // An old number of a template that has a newer one: seen (or skipped) there.
        if holder.revision != revision || holder.template_hash == from.template_hash {
            continue;
        }
        if avoid.contains(holder.template_hash.as_str()) {
            avoided.push(revision);
            continue;
        }
        if !holder.has_template {
            return Err(RollbackRefusal::Collected { revision });
        }
        return Ok(TemplateRevision {
            revision,
            template_hash: holder.template_hash.clone(),
        });
    }
    Err(RollbackRefusal::NothingLeft {
        current: from.revision,
        avoided,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// `(hash, revision, history)`, as the Deployment controller leaves them.
    fn sets(rows: &[(&str, u64, &[u64])]) -> Vec<ReplicaSetRevision> {
        rows.iter()
            .map(|(hash, revision, history)| ReplicaSetRevision {
                revision: *revision,
                history: history.to_vec(),
                template_hash: hash.to_string(),
                has_template: true,
            })
            .collect()
    }

    fn at(revision: u64, spec: Option<&str>) -> CurrentRevision {
        CurrentRevision {
            revision,
            spec_hash: spec.map(String::from),
        }
    }

    fn rev(revision: u64, hash: &str) -> TemplateRevision {
        TemplateRevision {
            revision,
            template_hash: hash.into(),
        }
    }

    fn roll(from: (u64, &str), to: (u64, &str)) -> Result<RollbackChoice, RollbackRefusal> {
        Ok(RollbackChoice {
            from: rev(from.0, from.1),
            to: rev(to.0, to.1),
            already_requested: false,
        })
    }

    #[test]
    fn rollbacks_choose_the_newest_earlier_revision_that_is_not_avoided() {
        // v1 = "v1hash", and so on; v3 is the bad release.
        let fresh = sets(&[("v1", 1, &[]), ("v2", 2, &[]), ("v3", 3, &[])]);
        let after_undo = sets(&[("v1", 1, &[]), ("v2", 4, &[2]), ("v3", 3, &[])]);
        let after_manual_redo = sets(&[("v1", 1, &[]), ("v2", 4, &[2]), ("v3", 5, &[3])]);
        let v1_collected = sets(&[("v2", 4, &[2]), ("v3", 3, &[])]);
        let first_release = sets(&[("v1", 1, &[])]);
        let v1_gone_long_ago = sets(&[("v2", 2, &[]), ("v3", 3, &[])]);
        let mut v1_deleting = after_undo.clone();
        v1_deleting[0].has_template = false;
        let avoid = |hashes: &[&str]| hashes.iter().map(|h| h.to_string()).collect::<Vec<_>>();
        type Case<'a> = (
            &'a str,
            CurrentRevision,
            &'a [ReplicaSetRevision],
            Vec<String>,
            Result<RollbackChoice, RollbackRefusal>,
        );
        let cases: Vec<Case<'_>> = vec![
            (
                "a bad third release goes back to the second",
                at(3, Some("v3")),
                &fresh,
                avoid(&[]),
                roll((3, "v3"), (2, "v2")),
            ),
            (
                "after an undo, avoiding the bad release goes on to the first",
                at(4, Some("v2")),
                &after_undo,
                avoid(&["v3"]),
                roll((4, "v2"), (1, "v1")),
            ),
            (
                "after an undo, without the avoid list the second undo flips back to the bad release",
                at(4, Some("v2")),
                &after_undo,
                avoid(&[]),
                roll((4, "v2"), (3, "v3")),
            ),
            (
                "a manual undo that brought the bad release back goes to the second again",
                at(5, Some("v3")),
                &after_manual_redo,
                avoid(&["v3"]),
                roll((5, "v3"), (4, "v2")),
            ),
            (
                "a manual undo with both later releases avoided goes to the first",
                at(5, Some("v3")),
                &after_manual_redo,
                avoid(&["v3", "v2"]),
                roll((5, "v3"), (1, "v1")),
            ),
            (
                "an avoided template is never chosen, even when nothing else is left",
                at(4, Some("v2")),
                &after_undo,
                avoid(&["v3", "v1"]),
                Err(RollbackRefusal::NothingLeft {
                    current: 4,
                    avoided: vec![3, 1],
                }),
            ),
            (
                "a first release has nothing to go back to",
                at(1, Some("v1")),
                &first_release,
                avoid(&[]),
                Err(RollbackRefusal::NothingLeft {
                    current: 1,
                    avoided: vec![],
                }),
            ),
            (
                "a garbage-collected target is refused, never skipped",
                at(4, Some("v2")),
                &v1_collected,
                avoid(&["v3"]),
                Err(RollbackRefusal::Collected { revision: 1 }),
            ),
            (
                "a target being deleted is refused",
                at(4, Some("v2")),
                &v1_deleting,
                avoid(&["v3"]),
                Err(RollbackRefusal::Collected { revision: 1 }),
            ),
            (
                "a gap older than the target does not matter",
                at(3, Some("v3")),
                &v1_gone_long_ago,
                avoid(&[]),
                roll((3, "v3"), (2, "v2")),
            ),
            (
                "a template already asked for but not yet renumbered is nothing to do",
                at(3, Some("v2")),
                &fresh,
                avoid(&[]),
                Ok(RollbackChoice {
                    from: rev(3, "v3"),
                    to: rev(2, "v2"),
                    already_requested: true,
                }),
            ),
            (
                "a new template the controller has not seen yet is refused",
                at(3, None),
                &fresh,
                avoid(&[]),
                Err(RollbackRefusal::ChangeNotRolledOut { revision: 3 }),
            ),
            (
                "an undo in flight to an avoided template is refused",
                at(4, Some("v3")),
                &after_undo,
                avoid(&["v3"]),
                Err(RollbackRefusal::ChangeNotRolledOut { revision: 4 }),
            ),
            (
                "a current revision without a ReplicaSet is refused",
                at(7, Some("v3")),
                &fresh,
                avoid(&[]),
                Err(RollbackRefusal::CurrentUnknown { revision: 7 }),
            ),
        ];
        for (name, current, candidates, avoid, want) in cases {
            assert_eq!(choose_target(&current, candidates, &avoid), want, "{name}");
        }
    }

    #[test]
    fn refusals_say_why() {
        let text = RollbackRefusal::NothingLeft {
            current: 4,
            avoided: vec![3, 1],
        }
        .to_string();
        assert!(text.ends_with(
                "no revision before 4 to go back to: the earlier ones (3, 1) run templates burnguard rolled away from before"
            ), "{text}");
        let text = RollbackRefusal::Collected { revision: 1 }.to_string();
        assert!(
            text.contains("revision 1") && text.contains("revisionHistoryLimit"),
            "{text}"
        );
    }

    #[test]
    fn a_huge_revision_number_ends_at_the_first_gap() {
        let candidates = sets(&[("v1", 1, &[]), ("big", u64::MAX - 1, &[])]);
        let got = choose_target(&at(u64::MAX - 1, Some("big")), &candidates, &[]);
        assert_eq!(
            got,
            Err(RollbackRefusal::Collected {
                revision: u64::MAX - 2
            })
        );
    }

    proptest! {
        #[test]
        fn the_target_is_older_and_neither_current_nor_avoided(
            // A release history: each step deploys a new template (None) or undoes to the
            // template of an earlier step (Some(index)), renumbered as the controller does.
            steps in proptest::collection::vec(proptest::option::of(0usize..8), 1..12),
            avoid_mask in 0u16..1024,
            collected_mask in 0u16..1024,
        ) {
            let mut sets: Vec<ReplicaSetRevision> = Vec::new();
            let mut current = 0usize;
            for (n, step) in steps.iter().enumerate() {
                let revision = n as u64 + 1;
                match step.map(|i| i % sets.len().max(1)) {
                    Some(i) if !sets.is_empty() && i != current => {
                        let old = sets[i].revision;
                        sets[i].history.push(old);
                        sets[i].revision = revision;
                        current = i;
                    }
                    _ => {
                        sets.push(ReplicaSetRevision {
                            revision,
                            history: vec![],
                            template_hash: format!("t{}", sets.len()),
                            has_template: true,
                        });
                        current = sets.len() - 1;
                    }
                }
                // Renumbering only happens when the template changes, so numbers may be unused
                // at the end; the current one is always the highest.
            }
            let top = sets[current].revision;
            let avoid: Vec<String> = (0..sets.len())
                .filter(|i| avoid_mask & (1 << i) != 0)
                .map(|i| format!("t{i}"))
                .collect();
            let kept: Vec<ReplicaSetRevision> = sets
                .iter()
                .enumerate()
                .filter(|(i, _)| *i == current || collected_mask & (1 << i) == 0)
                .map(|(_, s)| s.clone())
                .collect();
            let hash = sets[current].template_hash.clone();
            if let Ok(choice) = choose_target(&at(top, Some(&hash)), &kept, &avoid) {
                prop_assert!(choice.to.revision < top);
                prop_assert_ne!(&choice.to.template_hash, &hash);
                prop_assert!(!avoid.contains(&choice.to.template_hash));
                prop_assert!(!choice.already_requested);
                // Nothing newer than the target was eligible.
                for s in &sets {
                    if s.revision > choice.to.revision && s.revision < top {
                        prop_assert!(s.template_hash == hash || avoid.contains(&s.template_hash));
                    }
                }
            }
        }
    }
}
