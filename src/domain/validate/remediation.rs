//! Validation of remediation: `kind: Playbook` documents and an SLO's `spec.budgetPolicy`, and
//! the cross-document check that every `run:` names a playbook that exists.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use serde_saphyr::Spanned;

use super::Problems;
use crate::domain::playbook::{
    BudgetRule, FreezeTarget, HttpStep, Playbook, PlaybookMode, Response, Step, StepAction,
    Trigger, derived_rule_id, env_references,
};
use crate::domain::policy::{Severity, Window};
use crate::domain::problem::Problem;
use crate::domain::selector::LabelSelector;
use crate::domain::spec::SourceDocument;
use crate::domain::spec::v1::{
    BudgetRuleSpec, FreezeSpec, HttpSpec, PlaybookDocument, StepSpec, WhenSpec,
};

const HTTP_METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];
const DEFAULT_HTTP_TIMEOUT: Duration = Duration::from_secs(10);

fn window(
    p: &mut Problems<'_>,
    path: &str,
    value: &Option<Spanned<String>>,
    example: &str,
) -> Option<Window> {
    match value {
        None => {
            p.missing(path, &format!("a duration such as {example}"));
            None
        }
        Some(v) => match Window::parse(&v.value) {
            Ok(w) => Some(w),
            Err(why) => {
                p.at(path, v, why.to_string());
                None
            }
        },
    }
}

/// `spec.budgetPolicy` of an SLO. Playbook names are checked later, across documents.
pub(super) fn budget_policy(
    p: &mut Problems<'_>,
    rules: Vec<BudgetRuleSpec>,
) -> Option<Vec<BudgetRule>> {
    let mut out = Vec::new();
    let mut ids: Vec<String> = Vec::new();
    let mut ok = true;
    for (i, rule) in rules.into_iter().enumerate() {
        let path = format!("spec.budgetPolicy[{i}]");
        let when = match &rule.when {
            None => {
                p.missing(&format!("{path}.when"), "one of {alert: page}, {budgetRemainingBelow: 15} or {burnRateAbove: 3.6, for: 72h, window: 1h}");
                None
            }
            Some(when) => trigger(p, &format!("{path}.when"), when),
        };
        let then = match (&rule.run, &rule.freeze) {
            (Some(_), Some(_)) => {
                p.push(&path, "has both run and freeze; give one of them");
                None
            }
            (None, None) => {
                p.missing(
                    &format!("{path}.run"),
                    "the name of a Playbook to run (or give freeze)",
                );
                None
            }
            (Some(name), None) => {
                if super::check_slo_name(&name.value).is_ok() {
                    Some(Response::Run(name.value.clone()))
                } else {
                    p.at(
                        &format!("{path}.run"),
                        name,
                        format!("`{}` is not a playbook name", name.value),
                    );
                    None
                }
            }
            (None, Some(freeze)) => {
                freeze_target(p, &format!("{path}.freeze"), freeze).map(Response::Freeze)
            }
        };
        if let Some(id) = &rule.id
            && super::check_slo_name(&id.value).is_err()
        {
            p.at(
                &format!("{path}.id"),
                id,
                format!(
                    "`{}` is not a rule id; use lowercase letters, digits and '-'",
                    id.value
                ),
            );
            ok = false;
        }
        match (when, then) {
            (Some(when), Some(then)) => {
                let id = match &rule.id {
                    Some(id) => id.value.clone(),
                    None => derived_rule_id(&when, &then),
                };
                if let Some(first) = ids.iter().position(|seen| *seen == id) {
                    p.push(
                        &path,
                        format!(
                            "has the same identity (`{id}`) as spec.budgetPolicy[{first}]; give each rule its own `id`"
                        ),
                    );
                    ok = false;
                }
                ids.push(id.clone());
                out.push(BudgetRule { id, when, then });
            }
            _ => ok = false,
        }
    }
    ok.then_some(out)
}

fn trigger(p: &mut Problems<'_>, path: &str, when: &WhenSpec) -> Option<Trigger> {
    let given = [
        when.alert.is_some(),
        when.budget_remaining_below.is_some(),
        when.burn_rate_above.is_some(),
    ]
    .iter()
    .filter(|g| **g)
    .count();
    if given != 1 {
        p.push(path, format!("has {given} conditions; give exactly one of alert, budgetRemainingBelow or burnRateAbove"));
        return None;
    }
    if let Some(alert) = &when.alert {
        return match alert.value.as_str() {
            "page" => Some(Trigger::Alert(Severity::Page)),
            "ticket" => Some(Trigger::Alert(Severity::Ticket)),
            other => {
                p.at(
                    &format!("{path}.alert"),
                    alert,
                    format!("`{other}` is not a severity; expected page or ticket"),
                );
                None
            }
        };
    }
    if let Some(below) = &when.budget_remaining_below {
        if below.value.is_finite() && below.value > 0.0 && below.value < 100.0 {
            return Some(Trigger::BudgetRemainingBelow(below.value / 100.0));
        }
        p.at(
            &format!("{path}.budgetRemainingBelow"),
            below,
            format!("{} is out of range; expected a percent of the budget strictly between 0 and 100, such as 15", below.value),
        );
        return None;
    }
    let rate = when.burn_rate_above.as_ref()?;
    let rate_ok = rate.value.is_finite() && rate.value > 0.0;
    if !rate_ok {
        p.at(
            &format!("{path}.burnRateAbove"),
            rate,
            format!(
                "{} is not a burn rate; expected a positive factor such as 3.6",
                rate.value
            ),
        );
    }
    let duration = window(p, &format!("{path}.for"), &when.for_, "72h");
    let over = window(p, &format!("{path}.window"), &when.window, "1h");
    match (rate_ok, duration, over) {
        (true, Some(duration), Some(window)) => Some(Trigger::BurnRateAbove {
            rate: rate.value,
            duration,
            window,
        }),
        _ => None,
    }
}

fn freeze_target(p: &mut Problems<'_>, path: &str, spec: &FreezeSpec) -> Option<FreezeTarget> {
    let mut ok = true;
    let deployments = spec.deployments.clone().unwrap_or_default();
    for (i, d) in deployments.iter().enumerate() {
        if super::check_slo_name(d).is_err() {
            p.push(
                &format!("{path}.deployments[{i}]"),
                format!("`{d}` is not a Kubernetes object name"),
            );
            ok = false;
        }
    }
    if let Some(ns) = &spec.namespace
        && super::check_slo_name(ns).is_err()
    {
        p.push(
            &format!("{path}.namespace"),
            format!("`{ns}` is not a Kubernetes namespace name"),
        );
        ok = false;
    }
    if let Some(selector) = &spec.selector
        && let Err(why) = check_label_selector(&selector.value)
    {
        p.at(&format!("{path}.selector"), selector, why);
        ok = false;
    }
    let target = FreezeTarget {
        service: spec.service.clone().filter(|s| !s.trim().is_empty()),
        namespace: spec.namespace.clone(),
        deployments,
        selector: spec.selector.as_ref().map(|s| s.value.clone()),
    };
    let has_objects = !target.deployments.is_empty() || target.selector.is_some();
    if has_objects && target.namespace.is_none() {
        p.push(
            &format!("{path}.namespace"),
            "is required with deployments or selector",
        );
        ok = false;
    }
    if target.namespace.is_some() && !has_objects {
        p.push(
            path,
            "names a namespace but no deployments or selector to freeze in it",
        );
        ok = false;
    }
    if target.service.is_none() && !has_objects {
        p.push(path, "freezes nothing; give service (a gate-only freeze) and/or namespace with deployments or selector");
        ok = false;
    }
    ok.then_some(target)
}

/// Checks a Kubernetes label selector (`app=web`, `tier!=db`, `env in (a,b)`, `!canary`) the
/// way the API server reads it.
pub fn check_label_selector(selector: &str) -> Result<(), String> {
    LabelSelector::parse(selector).map(drop).map_err(|why| {
        format!("`{selector}` is not a label selector: {why}; e.g. app.kubernetes.io/part-of=shop")
    })
}

/// Validates one Playbook document.
pub fn validate_playbook(
    doc: &SourceDocument<'_>,
    playbook: PlaybookDocument,
) -> Result<Playbook, Vec<Problem>> {
    let mut p = Problems::new(doc);
    let name = match playbook.metadata.as_ref().and_then(|m| m.name.as_ref()) {
        Some(name) => {
            if let Err(why) = super::check_slo_name(&name.value) {
                p.at("metadata.name", name, why);
            }
            Some(name.value.clone())
        }
        None => {
            p.missing(
                "metadata.name",
                "lowercase letters, digits and '-', such as checkout-degrade",
            );
            None
        }
    };
    let Some(spec) = playbook.spec else {
        p.missing("spec", "a playbook needs steps");
        return Err(p.into_problems());
    };
    let mode = match &spec.mode {
        None => Some(PlaybookMode::Auto),
        Some(m) => match m.value.as_str() {
            "auto" => Some(PlaybookMode::Auto),
            "approve" => Some(PlaybookMode::Approve),
            "dry-run" => Some(PlaybookMode::DryRun),
            other => {
                p.at(
                    "spec.mode",
                    m,
                    format!("`{other}` is not a mode; expected auto, approve or dry-run"),
                );
                None
            }
        },
    };
    let cooldown = match &spec.cooldown {
        None => Some(None),
        Some(_) => window(&mut p, "spec.cooldown", &spec.cooldown, "30m").map(Some),
    };
    let steps = match spec.steps {
        None => {
            p.missing(
                "spec.steps",
                "a list of steps (http, rollback, scale, freeze, verify)",
            );
            None
        }
        Some(steps) if steps.is_empty() => {
            p.push("spec.steps", "is empty; give at least one step");
            None
        }
        Some(steps) => {
            let mut out = Vec::new();
            let mut ok = true;
            let mut names = HashSet::new();
            for (i, s) in steps.into_iter().enumerate() {
                match step(&mut p, &format!("spec.steps[{i}]"), s) {
                    Some(step) => {
                        if !names.insert(step.name.clone()) {
                            p.push(
                                &format!("spec.steps[{i}].name"),
                                format!(
                                    "`{}` is used by another step; step names must be unique",
                                    step.name
                                ),
                            );
                            ok = false;
                        }
                        out.push(step);
                    }
                    None => ok = false,
                }
            }
            ok.then_some(out)
        }
    };
    match (name, mode, cooldown, steps) {
        (Some(name), Some(mode), Some(cooldown), Some(steps)) if p.is_empty() => Ok(Playbook {
            name,
            mode,
            cooldown,
            steps,
        }),
        _ => Err(p.into_problems()),
    }
}

fn step(p: &mut Problems<'_>, path: &str, s: StepSpec) -> Option<Step> {
    let name = match &s.name {
        Some(n) if !n.value.trim().is_empty() => Some(n.value.trim().to_string()),
        _ => {
            p.missing(
                &format!("{path}.name"),
                "a short description such as `turn off recommendations`",
            );
            None
        }
    };
    let given = [
        s.http.is_some(),
        s.rollback.is_some(),
        s.scale.is_some(),
        s.freeze.is_some(),
        s.verify.is_some(),
    ]
    .iter()
    .filter(|g| **g)
    .count();
    if given != 1 {
        p.push(
            path,
            format!(
                "has {given} actions; give exactly one of http, rollback, scale, freeze or verify"
            ),
        );
        return None;
    }
    let target = |p: &mut Problems<'_>,
                  field: &str,
                  ns: &Option<String>,
                  dep: &Option<String>|
     -> Option<(String, String)> {
        let ns_ok = ns.as_ref().filter(|n| super::check_slo_name(n).is_ok());
        let dep_ok = dep.as_ref().filter(|d| super::check_slo_name(d).is_ok());
        if ns_ok.is_none() {
            p.push(
                &format!("{path}.{field}.namespace"),
                "is required: a Kubernetes namespace name",
            );
        }
        if dep_ok.is_none() {
            p.push(
                &format!("{path}.{field}.deployment"),
                "is required: a Deployment name",
            );
        }
        Some((ns_ok?.clone(), dep_ok?.clone()))
    };
    let action = if let Some(http) = s.http {
        http_step(p, &format!("{path}.http"), http).map(StepAction::Http)
    } else if let Some(r) = s.rollback {
        target(p, "rollback", &r.namespace, &r.deployment).map(|(namespace, deployment)| {
            StepAction::Rollback {
                namespace,
                deployment,
            }
        })
    } else if let Some(sc) = s.scale {
        let t = target(p, "scale", &sc.namespace, &sc.deployment);
        let replicas = match &sc.replicas {
            None => {
                p.missing(
                    &format!("{path}.scale.replicas"),
                    "an absolute number of replicas, such as 6",
                );
                None
            }
            Some(r) => Some(r.value),
        };
        match (t, replicas) {
            (Some((namespace, deployment)), Some(replicas)) => Some(StepAction::Scale {
                namespace,
                deployment,
                replicas,
            }),
            _ => None,
        }
    } else if let Some(f) = s.freeze {
        freeze_target(p, &format!("{path}.freeze"), &f).map(StepAction::Freeze)
    } else {
        let v = s.verify?;
        let w = window(p, &format!("{path}.verify.window"), &v.window, "5m");
        let within = window(p, &format!("{path}.verify.within"), &v.within, "15m");
        let below = match &v.burn_rate_below {
            Some(b) if b.value.is_finite() && b.value > 0.0 => Some(b.value),
            Some(b) => {
                p.at(
                    &format!("{path}.verify.burnRateBelow"),
                    b,
                    "expected a positive burn rate such as 1",
                );
                None
            }
            None => {
                p.missing(
                    &format!("{path}.verify.burnRateBelow"),
                    "a burn rate such as 1",
                );
                None
            }
        };
        match (w, within, below) {
            (Some(window), Some(within), Some(burn_rate_below)) => Some(StepAction::Verify {
                window,
                burn_rate_below,
                within,
            }),
            _ => None,
        }
    };
    Some(Step {
        name: name?,
        action: action?,
        continue_on_error: s.continue_on_error.unwrap_or(false),
        idempotent: s.idempotent.unwrap_or(false),
    })
}

fn http_step(p: &mut Problems<'_>, path: &str, h: HttpSpec) -> Option<HttpStep> {
    let method = match &h.method {
        None => Some("POST".to_string()),
        Some(m) => {
            let upper = m.value.to_ascii_uppercase();
            if HTTP_METHODS.contains(&upper.as_str()) {
                Some(upper)
            } else {
                p.at(
                    &format!("{path}.method"),
                    m,
                    format!(
                        "`{}` is not supported; expected one of {}",
                        m.value,
                        HTTP_METHODS.join(", ")
                    ),
                );
                None
            }
        }
    };
    let url = match &h.url {
        None => {
            p.missing(&format!("{path}.url"), "an http:// or https:// URL");
            None
        }
        Some(u) => {
            let scheme_ok = u.value.starts_with("http://") || u.value.starts_with("https://");
            if !scheme_ok {
                p.at(
                    &format!("{path}.url"),
                    u,
                    format!("`{}` is not an http:// or https:// URL", u.value),
                );
                None
            } else if let Err(why) = env_references(&u.value) {
                p.at(&format!("{path}.url"), u, why);
                None
            } else {
                Some(u.value.clone())
            }
        }
    };
    let headers: BTreeMap<String, String> = h.headers.unwrap_or_default();
    let mut ok = true;
    for (name, value) in &headers {
        let name_ok = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c));
        if !name_ok {
            p.push(
                &format!("{path}.headers.{name}"),
                "is not an HTTP header name",
            );
            ok = false;
        }
        if let Err(why) = env_references(value) {
            p.push(&format!("{path}.headers.{name}"), why);
            ok = false;
        }
    }
    if let Some(body) = &h.body
        && let Err(why) = env_references(body)
    {
        p.push(&format!("{path}.body"), why);
        ok = false;
    }
    let expect_status = h.expect_status.unwrap_or_else(|| vec![200, 201, 202, 204]);
    if let Some(bad) = expect_status.iter().find(|s| !(100..=599).contains(*s)) {
        p.push(
            &format!("{path}.expectStatus"),
            format!("{bad} is not an HTTP status"),
        );
        ok = false;
    }
    let timeout = match &h.timeout {
        None => Some(DEFAULT_HTTP_TIMEOUT),
        Some(t) => match humantime::parse_duration(t.value.trim()) {
            Ok(d) if !d.is_zero() && d <= Duration::from_secs(300) => Some(d),
            _ => {
                p.at(
                    &format!("{path}.timeout"),
                    t,
                    format!(
                        "`{}` is not a timeout between 1ms and 5m, such as 5s",
                        t.value
                    ),
                );
                None
            }
        },
    };
    if !ok {
        return None;
    }
    Some(HttpStep {
        method: method?,
        url: url?,
        headers,
        body: h.body,
        expect_status,
        timeout: timeout?,
    })
}

/// Problems for `run:` names with no Playbook of that name among those loaded, and for
/// playbooks whose steps name a group label (`${group.route}`) the SLO does not group by, as
/// `(index of the SLO, problem)`.
pub fn check_playbook_references<'a>(
    slos: impl IntoIterator<Item = &'a crate::domain::policy::Slo>,
    playbooks: &std::collections::BTreeMap<&str, &Playbook>,
) -> Vec<(usize, Problem)> {
    let mut problems = Vec::new();
    for (i, slo) in slos.into_iter().enumerate() {
        for (r, rule) in slo.budget_policy.iter().enumerate() {
            let Response::Run(name) = &rule.then else {
                continue;
            };
            let path = format!("spec.budgetPolicy[{r}].run");
            match playbooks.get(name.as_str()) {
                None => {
                    let known: Vec<&str> = playbooks.keys().copied().collect();
                    problems.push((
                        i,
                        Problem::new(
                            path,
                            None,
                            format!(
                                "no Playbook named `{name}` is loaded{}",
                                if known.is_empty() {
                                    String::new()
                                } else {
                                    format!(" (known: {})", known.join(", "))
                                }
                            ),
                        ),
                    ));
                }
                Some(playbook) => {
                    for label in crate::domain::playbook::playbook_group_refs(playbook) {
                        if !slo.group_by.contains(&label) {
                            problems.push((
                                i,
                                Problem::new(
                                    path.clone(),
                                    None,
                                    format!(
                                        "playbook `{name}` uses `${{group.{label}}}`, and this SLO {}",
                                        if slo.group_by.is_empty() {
                                            "is not grouped".to_string()
                                        } else {
                                            format!("groups by {} only", slo.group_by.join(", "))
                                        }
                                    ),
                                ),
                            ));
                        }
                    }
                }
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_selectors_are_checked_as_the_api_server_reads_them() {
        for ok in [
            "app=web",
            "app.kubernetes.io/part-of=shop",
            "tier!=db,env in (a, b)",
            "!canary",
            "release",
            "env notin (dev)",
        ] {
            assert!(check_label_selector(ok).is_ok(), "{ok}");
        }
        let cases = [
            ("an empty selector", "", "it is empty"),
            ("a value after a value", "app=web=x y", "found `=`"),
            ("a set without parentheses", "env in a,b", "expected `(`"),
            ("an opening parenthesis first", "(app=web", "found `(`"),
            ("a key with a space", "Bad Key=1", "found `Key`"),
            ("a value with a space", "app=val ue", "found `ue`"),
            (
                "a value ending with a dash",
                "app=web-",
                "`web-` is not a label value",
            ),
        ];
        for (name, bad, why) in cases {
            let message = check_label_selector(bad).expect_err(name);
            assert!(
                message.starts_with(&format!("`{bad}` is not a label selector: "))
                    && message.contains(why)
                    && message.ends_with("; e.g. app.kubernetes.io/part-of=shop"),
                "{name}: {message}"
            );
        }
    }
}
