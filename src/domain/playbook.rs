//! Remediation, as data: playbooks (ordered steps) and the budget rules of an SLO that say
//! when to run one or to freeze deployments. Validated; nothing here runs anything.
//!
//! Owns: [`Playbook`], [`Step`], [`BudgetRule`], and which step kinds are safe to repeat.
//! Must not touch: HTTP, Kubernetes, the store.

use std::collections::BTreeMap;
use std::fmt;

use super::policy::{Severity, Window};

/// How a playbook's steps are allowed to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlaybookMode {
    /// Steps run as soon as the trigger fires.
    Auto,
    /// Steps wait until a person approves them (API).
    Approve,
    /// Steps are journaled and put on the timeline as what would have run; nothing is called.
    DryRun,
}

impl PlaybookMode {
    pub fn as_str(self) -> &'static str {
        match self {
            PlaybookMode::Auto => "auto",
            PlaybookMode::Approve => "approve",
            PlaybookMode::DryRun => "dry-run",
        }
    }
}

/// A named, ordered list of remediation steps.
#[derive(Clone, Debug, PartialEq)]
pub struct Playbook {
    pub name: String,
    pub mode: PlaybookMode,
    /// Not run again for the same SLO within this.
    pub cooldown: Option<Window>,
    pub steps: Vec<Step>,
}

/// One step of a playbook.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    pub name: String,
    pub action: StepAction,
    /// Keep going with the next steps when this one fails.
    pub continue_on_error: bool,
    /// Declared safe to run twice (for steps whose kind is not idempotent by nature).
    pub idempotent: bool,
}

impl Step {
    /// Whether running this step again after a crash mid-run is safe: freeze and scale to an
    /// absolute number are idempotent by nature; others only when the policy says so.
    pub fn safe_to_repeat(&self) -> bool {
        self.idempotent
            || matches!(
                self.action,
                StepAction::Freeze(_) | StepAction::Scale { .. } | StepAction::Verify { .. }
            )
    }
}

/// What a step does.
#[derive(Clone, Debug, PartialEq)]
pub enum StepAction {
    Http(HttpStep),
    Rollback {
        namespace: String,
        deployment: String,
    },
    Scale {
        namespace: String,
        deployment: String,
        replicas: u32,
    },
    Freeze(FreezeTarget),
    /// Wait until the burn rate over `window` is below `burn_rate_below`, for at most `within`;
    /// the playbook fails otherwise.
    Verify {
        window: Window,
        burn_rate_below: f64,
        within: Window,
    },
}

impl StepAction {
    pub fn kind(&self) -> &'static str {
        match self {
            StepAction::Http(_) => "http",
            StepAction::Rollback { .. } => "rollback",
            StepAction::Scale { .. } => "scale",
            StepAction::Freeze(_) => "freeze",
            StepAction::Verify { .. } => "verify",
        }
    }
}

/// An outbound HTTP call. `url`, header values and `body` may hold `${VAR}`, read from the
/// environment when the step runs (and never logged or stored).
#[derive(Clone, Debug, PartialEq)]
pub struct HttpStep {
    pub method: String,
    pub url: String,
    pub headers: BTreeMap<String, String>,
    pub body: Option<String>,
    pub expect_status: Vec<u16>,
    pub timeout: std::time::Duration,
}

/// What a freeze covers. With only `service`, it is a gate-only freeze (CI/CD asks the gate);
/// with a namespace and deployments or a selector it is also applied to Kubernetes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FreezeTarget {
    pub service: Option<String>,
    pub namespace: Option<String>,
    pub deployments: Vec<String>,
    pub selector: Option<String>,
}

impl FreezeTarget {
    /// Whether the freeze reaches Kubernetes objects, not only the gate.
    pub fn touches_kubernetes(&self) -> bool {
        self.namespace.is_some() && (!self.deployments.is_empty() || self.selector.is_some())
    }
}

impl fmt::Display for FreezeTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(s) = &self.service {
            parts.push(format!("service {s}"));
        }
        if let Some(ns) = &self.namespace {
            if !self.deployments.is_empty() {
                parts.push(format!("deployments {}/{}", ns, self.deployments.join(",")));
            }
            if let Some(sel) = &self.selector {
                parts.push(format!("selector {sel} in {ns}"));
            }
        }
        write!(f, "{}", parts.join(", "))
    }
}

/// When a budget rule acts.
#[derive(Clone, Debug, PartialEq)]
pub enum Trigger {
    /// The SLO's incident reaches this severity (a ticket rule also acts on a page).
    Alert(Severity),
    /// The budget left over the SLO window drops below this fraction (0.15 for 15%).
    BudgetRemainingBelow(f64),
    /// The burn rate over `window` stays above `rate` for `duration`.
    BurnRateAbove {
        rate: f64,
        duration: Window,
        window: Window,
    },
}

/// What a budget rule does.
#[derive(Clone, Debug, PartialEq)]
pub enum Response {
    Run(String),
    Freeze(FreezeTarget),
}

/// One entry of an SLO's `budgetPolicy`.
#[derive(Clone, Debug, PartialEq)]
pub struct BudgetRule {
    /// The rule's identity: its `id`, else [`derived_rule_id`]. Journal entries, playbook runs
    /// and freezes are keyed by it, never by the rule's position, so inserting, removing or
    /// reordering rules does not make one rule's past another's.
    pub id: String,
    pub when: Trigger,
    pub then: Response,
}

impl Trigger {
    /// The trigger in its policy spelling, as a canonical one-line text.
    pub fn canonical(&self) -> String {
        match self {
            Trigger::Alert(severity) => format!("alert={severity}"),
            Trigger::BudgetRemainingBelow(t) => format!("budgetRemainingBelow={t}"),
            Trigger::BurnRateAbove {
                rate,
                duration,
                window,
            } => format!("burnRateAbove={rate},for={duration},window={window}"),
        }
    }
}

/// The identity of a rule without an `id`: a stable hash of its trigger and of what it does
/// (the playbook's name, or "freeze" whatever the freeze covers, so that widening a freeze
/// keeps the rule's identity and its active freeze).
pub fn derived_rule_id(when: &Trigger, then: &Response) -> String {
    use sha2::Digest as _;
    let does = match then {
        Response::Run(playbook) => format!("run={playbook}"),
        Response::Freeze(_) => "freeze".to_string(),
    };
    let digest = sha2::Sha256::digest(format!("{}|{does}", when.canonical()).as_bytes());
    format!("when-{}", hex::encode(&digest[..6]))
}

/// Names `${VAR}` references in a template, or says what is malformed. `${group.<label>}`
/// (a grouped SLO's label, see [`expand_group`]) is not an environment variable and is skipped.
pub fn env_references(template: &str) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| "has `${` without a closing `}`".to_string())?;
        let name = &after[..end];
        if let Some(label) = name.strip_prefix("group.") {
            let label_like = label
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !label_like {
                return Err(format!(
                    "has `${{{name}}}`, whose `{label}` is not a label name"
                ));
            }
            rest = &after[end + 1..];
            continue;
        }
        let valid = !name.is_empty()
            && name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(format!(
                "has `${{{name}}}`, which is not an environment variable name"
            ));
        }
        names.push(name.to_string());
        rest = &after[end + 1..];
    }
    Ok(names)
}

/// Replaces `${VAR}` with `lookup(VAR)`; the first missing variable is the error.
pub fn expand_env(
    template: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or("unclosed `${`")?;
        let name = &after[..end];
        let value =
            lookup(name).ok_or_else(|| format!("environment variable {name} is not set"))?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// How a step names a grouped SLO's label: `${group.route}`. Environment variables keep the
/// plain `${VAR}` form, so the two never meet.
pub const GROUP_TEMPLATE_START: &str = "${group.";

/// The group labels `text` refers to, in order.
pub fn group_refs(text: &str) -> Vec<String> {
    let mut refs = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(GROUP_TEMPLATE_START) {
        let after = &rest[start + GROUP_TEMPLATE_START.len()..];
        match after.find('}') {
            Some(end) => {
                refs.push(after[..end].to_string());
                rest = &after[end + 1..];
            }
            None => break,
        }
    }
    refs
}

/// The texts of a step that may hold group templates.
fn template_texts(action: &StepAction) -> Vec<&str> {
    match action {
        StepAction::Http(h) => std::iter::once(h.url.as_str())
            .chain(h.headers.values().map(String::as_str))
            .chain(h.body.as_deref())
            .collect(),
        StepAction::Rollback {
            namespace,
            deployment,
        }
        | StepAction::Scale {
            namespace,
            deployment,
            ..
        } => vec![namespace, deployment],
        StepAction::Freeze(t) => t
            .service
            .as_deref()
            .into_iter()
            .chain(t.namespace.as_deref())
            .chain(t.deployments.iter().map(String::as_str))
            .collect(),
        StepAction::Verify { .. } => Vec::new(),
    }
}

/// Every group label a playbook's steps refer to.
pub fn playbook_group_refs(playbook: &Playbook) -> std::collections::BTreeSet<String> {
    playbook
        .steps
        .iter()
        .flat_map(|s| template_texts(&s.action))
        .flat_map(group_refs)
        .collect()
}

/// Whether a label value may be put into a step: letters, digits and `.-_~:/@`, at most 128
/// characters. Label values come from the monitored service's series (a route is a request
/// path): nothing that could close a quoted string, add a header line, a query parameter or
/// a path segment like `..` gets through.
pub fn safe_group_value(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 128
        && !value.contains("..")
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-_~:/@".contains(c))
}

/// The step's action with each `${group.<label>}` replaced by the group's value. An error
/// names the label when the group has none of that name or its value is not safe to put in
/// (see [`safe_group_value`]): the step then fails, and nothing is sent.
pub fn expand_group(
    action: &StepAction,
    group: &BTreeMap<String, String>,
) -> Result<StepAction, String> {
    for label in template_texts(action).into_iter().flat_map(group_refs) {
        match group.get(&label) {
            None => {
                return Err(format!(
                    "`${{group.{label}}}` names no label of this SLO's group ({})",
                    if group.is_empty() {
                        "the SLO is not grouped".to_string()
                    } else {
                        group.keys().cloned().collect::<Vec<_>>().join(", ")
                    }
                ));
            }
            Some(value) if !safe_group_value(value) => {
                return Err(format!(
                    "the group's {label} value {value:?} is not safe to put into a step (letters, digits and .-_~:/@ only, no `..`)"
                ));
            }
            Some(_) => {}
        }
    }
    let fill = |text: &str| {
        group.iter().fold(text.to_string(), |t, (k, v)| {
            t.replace(&format!("{GROUP_TEMPLATE_START}{k}}}"), v)
        })
    };
    Ok(match action {
        StepAction::Http(h) => StepAction::Http(HttpStep {
            url: fill(&h.url),
            headers: h
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), fill(v)))
                .collect(),
            body: h.body.as_deref().map(fill),
            ..h.clone()
        }),
        StepAction::Rollback {
            namespace,
            deployment,
        } => StepAction::Rollback {
            namespace: fill(namespace),
            deployment: fill(deployment),
        },
        StepAction::Scale {
            namespace,
            deployment,
            replicas,
        } => StepAction::Scale {
            namespace: fill(namespace),
            deployment: fill(deployment),
            replicas: *replicas,
        },
        StepAction::Freeze(t) => StepAction::Freeze(FreezeTarget {
            service: t.service.as_deref().map(fill),
            namespace: t.namespace.as_deref().map(fill),
            deployments: t.deployments.iter().map(|d| fill(d)).collect(),
            selector: t.selector.clone(),
        }),
        verify @ StepAction::Verify { .. } => verify.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_templates_fill_in_safe_values_and_refuse_the_rest() {
        let action = StepAction::Http(HttpStep {
            method: "POST".into(),
            url: "http://flags/api/${group.route}?token=${TOKEN}".into(),
            headers: BTreeMap::from([("X-Route".to_string(), "${group.route}".to_string())]),
            body: Some(r#"{"route": "${group.route}", "off": true}"#.into()),
            expect_status: vec![200],
            timeout: std::time::Duration::from_secs(1),
        });
        let group = |v: &str| BTreeMap::from([("route".to_string(), v.to_string())]);
        let StepAction::Http(h) = expand_group(&action, &group("/pay")).unwrap() else {
            unreachable!()
        };
        // Environment templates stay for the actuator to fill.
        assert_eq!(h.url, "http://flags/api//pay?token=${TOKEN}");
        assert_eq!(h.headers["X-Route"], "/pay");
        assert_eq!(h.body.unwrap(), r#"{"route": "/pay", "off": true}"#);
        for hostile in [
            r#"/pay", "off": false, "x": ""#,
            "/pay?all=1",
            "/../admin",
            "a\r\nX-Evil: 1",
            "",
        ] {
            let e = expand_group(&action, &group(hostile)).unwrap_err();
            assert!(e.contains("not safe"), "{hostile:?}: {e}");
        }
        let e = expand_group(&action, &BTreeMap::new()).unwrap_err();
        assert!(e.contains("not grouped"), "{e}");
        assert_eq!(
            group_refs("a ${group.x} b ${group.y} ${ENV}"),
            vec!["x", "y"]
        );
    }

    #[test]
    fn a_derived_rule_id_depends_on_the_trigger_and_the_playbook_only() {
        let page = Trigger::Alert(Severity::Page);
        let run = Response::Run("degrade".into());
        let id = derived_rule_id(&page, &run);
        assert!(id.starts_with("when-") && id.len() == 17, "{id}");
        assert_eq!(derived_rule_id(&page, &run), id, "stable");
        assert_ne!(derived_rule_id(&Trigger::Alert(Severity::Ticket), &run), id);
        assert_ne!(derived_rule_id(&page, &Response::Run("other".into())), id);
        let narrow = Response::Freeze(FreezeTarget {
            service: Some("a".into()),
            ..FreezeTarget::default()
        });
        let wide = Response::Freeze(FreezeTarget {
            service: Some("b".into()),
            ..FreezeTarget::default()
        });
        assert_eq!(
            derived_rule_id(&page, &narrow),
            derived_rule_id(&page, &wide)
        );
    }

    #[test]
    fn env_references_are_found_and_checked() {
        assert_eq!(
            env_references("Bearer ${FLAGS_TOKEN}").unwrap(),
            vec!["FLAGS_TOKEN"]
        );
        assert_eq!(env_references("${A}-${B_2}").unwrap(), vec!["A", "B_2"]);
        assert!(env_references("${}").is_err());
        assert!(env_references("${1A}").is_err());
        assert!(env_references("${OPEN").is_err());
        assert!(env_references("no vars").unwrap().is_empty());
    }

    #[test]
    fn env_expansion_names_the_missing_variable_not_values() {
        let lookup = |name: &str| (name == "TOKEN").then(|| "s3cret".to_string());
        assert_eq!(
            expand_env("Bearer ${TOKEN}", lookup).unwrap(),
            "Bearer s3cret"
        );
        let error = expand_env("${TOKEN} ${OTHER}", lookup).unwrap_err();
        assert_eq!(error, "environment variable OTHER is not set");
        assert!(!error.contains("s3cret"));
    }

    #[test]
    fn freeze_and_scale_are_safe_to_repeat_http_and_rollback_are_not() {
        let step = |action| Step {
            name: "s".into(),
            action,
            continue_on_error: false,
            idempotent: false,
        };
        assert!(step(StepAction::Freeze(FreezeTarget::default())).safe_to_repeat());
        assert!(
            step(StepAction::Scale {
                namespace: "n".into(),
                deployment: "d".into(),
                replicas: 3
            })
            .safe_to_repeat()
        );
        assert!(
            !step(StepAction::Rollback {
                namespace: "n".into(),
                deployment: "d".into()
            })
            .safe_to_repeat()
        );
        let mut http = step(StepAction::Http(HttpStep {
            method: "PUT".into(),
            url: "http://x".into(),
            headers: BTreeMap::new(),
            body: None,
            expect_status: vec![200],
            timeout: std::time::Duration::from_secs(5),
        }));
        assert!(!http.safe_to_repeat());
        http.idempotent = true;
        assert!(http.safe_to_repeat());
    }
}
