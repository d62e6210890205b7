//! The freeze, enforced: which Deployments a freeze covers, and whether a change to a
//! Deployment is admitted while it is frozen.
//!
//! Covered: a Deployment in the freeze's namespace that the freeze names, that it was applied
//! to, or whose labels its selector matches. Denied: an UPDATE of a frozen Deployment that
//! changes its pod template (a rollout). Allowed: everything else (scaling, metadata, other
//! kinds, creation, deletion), changes by burnguard itself, and a change carrying
//! `burnguard.dev/break-glass: "<reason>"`, which is recorded on the incident. Pure: the HTTP
//! handlers extract the facts and read the freezes; nothing here touches the store.

use super::selector::{LabelSelector, Labels};

/// What a freeze covers, as recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FreezeScope<'a> {
    pub namespace: Option<&'a str>,
    /// The Deployments it names and those it was applied to.
    pub deployments: Vec<&'a str>,
    /// Its label selector, as stored.
    pub selector: Option<&'a str>,
}

/// Whether the freeze covers Deployment `namespace/name`. `label_sets` are the labels the
/// Deployment has (for a change: before and after it); empty when they are unknown, and then
/// only names count. A stored selector that no longer parses covers every Deployment of its
/// namespace whose labels are known: a freeze fails closed.
pub fn covers(
    scope: &FreezeScope<'_>,
    namespace: &str,
    name: &str,
    label_sets: &[&Labels],
) -> bool {
    if scope.namespace != Some(namespace) {
        return false;
    }
    if scope.deployments.contains(&name) {
        return true;
    }
    let Some(selector) = scope.selector else {
        return false;
    };
    match LabelSelector::parse(selector) {
        Ok(selector) => label_sets.iter().any(|labels| selector.matches(labels)),
        Err(_) => !label_sets.is_empty(),
    }
}

/// What the admission handler found in the request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangeFacts {
    /// An UPDATE of an apps/v1 Deployment.
    pub deployment_update: bool,
    /// Whether `spec.template` differs between the old and the new object.
    pub template_changed: bool,
    /// The request comes from burnguard's own service account.
    pub by_burnguard: bool,
    /// The break-glass annotation's reason, when present and not empty.
    pub break_glass: Option<String>,
}

/// The freeze that covers the Deployment, if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActiveFreeze {
    pub id: i64,
    pub reason: String,
    pub incident: Option<i64>,
    /// RFC 3339.
    pub since: String,
}

/// The answer to the API server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admission {
    Allow,
    /// Allowed because someone broke the glass; the reason goes on the incident.
    AllowBreakGlass {
        reason: String,
    },
    Deny {
        message: String,
    },
}

pub fn admit(facts: &ChangeFacts, freeze: Option<&ActiveFreeze>) -> Admission {
    let Some(freeze) = freeze else {
        return Admission::Allow;
    };
    if !facts.deployment_update || !facts.template_changed || facts.by_burnguard {
        return Admission::Allow;
    }
    if let Some(reason) = &facts.break_glass {
        return Admission::AllowBreakGlass {
            reason: reason.clone(),
        };
    }
    let incident = freeze
        .incident
        .map(|i| format!(" (incident {i})"))
        .unwrap_or_default();
    Admission::Deny {
        message: format!(
            "deployments are frozen by burnguard since {}{incident}: {}. To deploy anyway, add the annotation burnguard.dev/break-glass: \"<why>\"",
            freeze.since, freeze.reason
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(update: bool, template: bool, ours: bool, glass: Option<&str>) -> ChangeFacts {
        ChangeFacts {
            deployment_update: update,
            template_changed: template,
            by_burnguard: ours,
            break_glass: glass.map(String::from),
        }
    }

    fn frozen() -> ActiveFreeze {
        ActiveFreeze {
            id: 1,
            reason: "checkout burns its budget".into(),
            incident: Some(7),
            since: "2026-01-04T00:00:00Z".into(),
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn freezes_cover_deployments_by_name_or_by_label() {
        let named = FreezeScope {
            namespace: Some("shop"),
            deployments: vec!["checkout"],
            selector: None,
        };
        let by_label = FreezeScope {
            namespace: Some("shop"),
            deployments: vec![],
            selector: Some("app.kubernetes.io/part-of=shop,!canary"),
        };
        let unreadable = FreezeScope {
            selector: Some("part-of in shop"),
            ..by_label.clone()
        };
        let gate_only = FreezeScope {
            namespace: None,
            deployments: vec![],
            selector: None,
        };
        let shop = labels(&[("app.kubernetes.io/part-of", "shop")]);
        let shop_canary = labels(&[("app.kubernetes.io/part-of", "shop"), ("canary", "1")]);
        let other = labels(&[("app.kubernetes.io/part-of", "blog")]);
        /// (case, freeze, namespace, deployment, its label sets, covered)
        type Case<'a> = (
            &'a str,
            &'a FreezeScope<'a>,
            &'a str,
            &'a str,
            &'a [&'a Labels],
            bool,
        );
        let cases: &[Case<'_>] = &[
            (
                "a named deployment is covered",
                &named,
                "shop",
                "checkout",
                &[],
                true,
            ),
            (
                "another name is not",
                &named,
                "shop",
                "cart",
                &[&shop],
                false,
            ),
            (
                "the same name in another namespace is not",
                &named,
                "blog",
                "checkout",
                &[],
                false,
            ),
            (
                "matching labels are covered",
                &by_label,
                "shop",
                "cart",
                &[&shop],
                true,
            ),
            (
                "labels the selector excludes are not",
                &by_label,
                "shop",
                "cart",
                &[&shop_canary],
                false,
            ),
            (
                "other labels are not",
                &by_label,
                "shop",
                "cart",
                &[&other],
                false,
            ),
            (
                "matching labels in another namespace are not",
                &by_label,
                "blog",
                "cart",
                &[&shop],
                false,
            ),
            (
                "unknown labels do not match a selector",
                &by_label,
                "shop",
                "cart",
                &[],
                false,
            ),
            (
                "labels matching before the change are enough",
                &by_label,
                "shop",
                "cart",
                &[&other, &shop],
                true,
            ),
            (
                "an unreadable selector covers its namespace",
                &unreadable,
                "shop",
                "cart",
                &[&other],
                true,
            ),
            (
                "an unreadable selector without labels covers nothing",
                &unreadable,
                "shop",
                "cart",
                &[],
                false,
            ),
            (
                "a gate-only freeze covers no deployment",
                &gate_only,
                "shop",
                "checkout",
                &[&shop],
                false,
            ),
        ];
        for (name, scope, namespace, deployment, label_sets, want) in cases {
            assert_eq!(
                covers(scope, namespace, deployment, label_sets),
                *want,
                "{name}"
            );
        }
    }

    #[test]
    fn admission_table() {
        let f = frozen();
        let cases = [
            (
                "rollout of a frozen deployment",
                facts(true, true, false, None),
                Some(&f),
                "deny",
            ),
            (
                "rollout when nothing is frozen",
                facts(true, true, false, None),
                None,
                "allow",
            ),
            (
                "scaling a frozen deployment",
                facts(true, false, false, None),
                Some(&f),
                "allow",
            ),
            (
                "burnguard's own rollback",
                facts(true, true, true, None),
                Some(&f),
                "allow",
            ),
            (
                "break glass",
                facts(true, true, false, Some("hotfix for INC-9")),
                Some(&f),
                "glass",
            ),
            (
                "not an update",
                facts(false, true, false, None),
                Some(&f),
                "allow",
            ),
        ];
        for (name, facts, freeze, want) in cases {
            let got = match admit(&facts, freeze) {
                Admission::Allow => "allow",
                Admission::AllowBreakGlass { .. } => "glass",
                Admission::Deny { .. } => "deny",
            };
            assert_eq!(got, want, "{name}");
        }
        let Admission::Deny { message } = admit(&facts(true, true, false, None), Some(&f)) else {
            panic!()
        };
        assert!(
            message.contains("incident 7") && message.contains("break-glass"),
            "{message}"
        );
    }
}
