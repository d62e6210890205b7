//! Freezes as desired state. The store's active freezes are the truth; this module works out
//! what must change in Kubernetes to match it, and the engine only carries that out:
//!
//! - an active freeze that reaches Kubernetes but is not applied (a crash between record and
//!   apply, an API error, a freeze made through the API) is applied;
//! - a lifted freeze still applied has its marks removed, except on Deployments another active
//!   freeze also covers: those keep their marks, and that freeze is applied again so that the
//!   marks name it.
//!
//! Removals come before applies. All marks are applied under one field manager, so on a
//! Deployment the last apply of a pass is what stays: a removal after an apply would strip the
//! marks of an active freeze not applied yet (its Deployments, by name or selector, are known
//! only once it is applied) from a Deployment the lifted freeze also marked.
//!
//! Owns: [`freeze_operations`]. Must not touch: the store, the Kubernetes API.

use std::collections::BTreeSet;

/// What a freeze put on Kubernetes: its namespace and the Deployments it marked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AppliedMarks {
    pub namespace: String,
    pub deployments: Vec<String>,
    /// `false` when applying stopped partway (an API error after some Deployments): the
    /// freeze is applied again, and what is listed is removed when it lifts.
    pub complete: bool,
}

/// A freeze as the reconcile pass sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FreezeState {
    pub id: i64,
    /// It names Deployments (or a selector) in a namespace, not only a service.
    pub reaches_kubernetes: bool,
    /// What is on Kubernetes for it now, as recorded.
    pub applied: Option<AppliedMarks>,
}

/// One change to make in Kubernetes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FreezeOperation {
    /// Apply the active freeze's marks.
    Apply { id: i64 },
    /// Remove the lifted freeze's marks from these Deployments (maybe none, when others
    /// cover them all), then record the marks as removed.
    Remove {
        id: i64,
        namespace: String,
        deployments: Vec<String>,
    },
}

/// The changes that make Kubernetes match the active freezes, removals before applies.
pub fn freeze_operations(active: &[FreezeState], lifted: &[FreezeState]) -> Vec<FreezeOperation> {
    let mut apply: BTreeSet<i64> = active
        .iter()
        .filter(|f| f.reaches_kubernetes && f.applied.as_ref().is_none_or(|m| !m.complete))
        .map(|f| f.id)
        .collect();
    let mut removals = Vec::new();
    for freeze in lifted {
        let Some(marks) = &freeze.applied else {
            continue;
        };
        let mut keep = Vec::new();
        let mut remove = Vec::new();
        for deployment in &marks.deployments {
            let covering: Vec<i64> = active
                .iter()
                .filter(|a| {
                    a.applied.as_ref().is_some_and(|m| {
                        m.namespace == marks.namespace && m.deployments.contains(deployment)
                    })
                })
                .map(|a| a.id)
                .collect();
            if covering.is_empty() {
                remove.push(deployment.clone());
            } else {
                keep.push(deployment.clone());
                apply.extend(covering);
            }
        }
        removals.push(FreezeOperation::Remove {
            id: freeze.id,
            namespace: marks.namespace.clone(),
            deployments: remove,
        });
    }
    removals
        .into_iter()
        .chain(apply.into_iter().map(|id| FreezeOperation::Apply { id }))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marks(deployments: &[&str]) -> Option<AppliedMarks> {
        Some(AppliedMarks {
            namespace: "shop".into(),
            deployments: deployments.iter().map(|d| d.to_string()).collect(),
            complete: true,
        })
    }

    fn freeze(id: i64, applied: Option<AppliedMarks>) -> FreezeState {
        FreezeState {
            id,
            reaches_kubernetes: true,
            applied,
        }
    }

    #[test]
    fn an_active_freeze_lost_in_a_crash_is_applied() {
        let ops = freeze_operations(&[freeze(1, None), freeze(2, marks(&["web"]))], &[]);
        assert_eq!(ops, vec![FreezeOperation::Apply { id: 1 }]);
    }

    #[test]
    fn a_gate_only_freeze_has_nothing_to_apply() {
        let gate_only = FreezeState {
            id: 1,
            reaches_kubernetes: false,
            applied: None,
        };
        assert!(freeze_operations(&[gate_only], &[]).is_empty());
    }

    #[test]
    fn a_lifted_freeze_loses_its_marks() {
        let ops = freeze_operations(&[], &[freeze(3, marks(&["web", "api"]))]);
        assert_eq!(
            ops,
            vec![FreezeOperation::Remove {
                id: 3,
                namespace: "shop".into(),
                deployments: vec!["web".into(), "api".into()],
            }]
        );
    }

    #[test]
    fn marks_another_active_freeze_covers_stay_and_name_that_freeze() {
        let ops = freeze_operations(
            &[freeze(5, marks(&["api"]))],
            &[freeze(3, marks(&["web", "api"]))],
        );
        assert_eq!(
            ops,
            vec![
                FreezeOperation::Remove {
                    id: 3,
                    namespace: "shop".into(),
                    deployments: vec!["web".into()],
                },
                FreezeOperation::Apply { id: 5 },
            ]
        );
    }

    #[test]
    fn a_freeze_not_applied_yet_is_applied_after_a_lifted_freezes_marks_come_off() {
        // Freeze 5 (not applied yet) may mark what freeze 3 marked: applied first, its marks
        // would be stripped by the removal that follows.
        let ops = freeze_operations(&[freeze(5, None)], &[freeze(3, marks(&["web"]))]);
        assert_eq!(
            ops,
            vec![
                FreezeOperation::Remove {
                    id: 3,
                    namespace: "shop".into(),
                    deployments: vec!["web".into()],
                },
                FreezeOperation::Apply { id: 5 },
            ]
        );
    }

    #[test]
    fn a_freeze_applied_partway_is_applied_again_and_its_marks_come_off_when_lifted() {
        let partial = Some(AppliedMarks {
            namespace: "shop".into(),
            deployments: vec!["cart".into()],
            complete: false,
        });
        assert_eq!(
            freeze_operations(&[freeze(1, partial.clone())], &[]),
            vec![FreezeOperation::Apply { id: 1 }]
        );
        assert_eq!(
            freeze_operations(&[], &[freeze(1, partial)]),
            vec![FreezeOperation::Remove {
                id: 1,
                namespace: "shop".into(),
                deployments: vec!["cart".into()],
            }]
        );
    }

    #[test]
    fn a_lifted_freeze_never_applied_needs_nothing() {
        assert!(freeze_operations(&[], &[freeze(3, None)]).is_empty());
    }
}
