//! The freeze, enforced: whether a change to a Deployment is admitted while it is frozen.
//!
//! Denied: an UPDATE of a frozen Deployment that changes its pod template (a rollout).
//! Allowed: everything else (scaling, metadata, other kinds, creation, deletion), changes by
//! burnguard itself, and a change carrying `burnguard.dev/break-glass: "<reason>"`, which is
//! recorded on the incident. Pure: the HTTP handler extracts the facts and looks the freeze up.

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
