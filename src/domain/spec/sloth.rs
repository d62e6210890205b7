//! Sloth's SLO files, read as they are: the plain `version: prometheus/v1` spec and the
//! Kubernetes resource `sloth.slok.dev/v1` `PrometheusServiceLevel` (the same fields in
//! camelCase: `errorQuery`, `pageAlert`). One document is one service with any number of SLOs.
//!
//! How it maps:
//! - each SLO is named as Sloth identifies it, `<service>-<name>`;
//! - `objective` is a percentage, as burnguard's (100 is refused: it leaves no budget);
//! - `sli.events` is a ratio of `error_query` over `total_query`; `sli.raw` is a raw error
//!   ratio; the queries keep their `{{.window}}`;
//! - the service's and the SLO's `labels` (the SLO's win) are the SLO's labels;
//! - `alerting.name`, `labels`, `annotations` are burnguard's; `page_alert` and `ticket_alert`
//!   labels and annotations apply to the page and ticket rows (their `severity` label replaces
//!   burnguard's, so routes on `severity: critical` keep working), and `disable` drops the
//!   rows of that severity;
//! - the alert rows are the SRE Workbook's, on the SLO window, which Sloth takes from a flag:
//!   it is passed in (`--window`, default 30d as Sloth's).
//!
//! Refused per field: SLI plugins, `infoLabels` and rule-group `interval`s, which burnguard has
//! no counterpart for.
//!
//! Owns: Sloth's wire shapes and their mapping. Must not touch: I/O.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::SourceDocument;
use super::draft::{self, Anything, Draft, ObjectMeta};
use crate::domain::policy::{AlertRoute, Alerting, BadEvents, Indicator, Severity, Slo, Window};
use crate::domain::problem::Problem;
use crate::domain::validate::{
    DEFAULT_ALERT_NAME, Problems, check_alert_name, check_annotations, check_labels, check_route,
};
use crate::domain::windows;

/// The `version` of Sloth's plain spec.
pub const VERSION: &str = "prometheus/v1";
/// The apiVersion and kind of Sloth's Kubernetes resource.
pub const KUBERNETES_API_VERSION: &str = "sloth.slok.dev/v1";
pub const KUBERNETES_KIND: &str = "PrometheusServiceLevel";

/// A Sloth document in either form.
#[derive(Debug)]
pub enum SlothDocument {
    Plain(Box<PlainDocument>),
    Kubernetes(Box<KubernetesDocument>),
}

/// `version: prometheus/v1`.
#[derive(Debug, Deserialize)]
pub struct PlainDocument {
    pub version: Option<Spanned<String>>,
    pub service: Option<Spanned<String>>,
    pub labels: Option<BTreeMap<String, String>>,
    pub slos: Option<Vec<SlothSlo>>,
}

/// `sloth.slok.dev/v1` `PrometheusServiceLevel`.
#[derive(Debug, Deserialize)]
pub struct KubernetesDocument {
    #[serde(rename = "apiVersion")]
    pub api_version: Option<Spanned<String>>,
    pub kind: Option<Spanned<String>>,
    /// The object's identity in the cluster; Sloth names SLOs from `spec` alone.
    pub metadata: Option<ObjectMeta>,
    pub spec: Option<ServiceSpec>,
    /// Written by Sloth's controller.
    pub status: Option<Anything>,
}

/// One service and its SLOs (the body of both forms).
#[derive(Debug, Default, Deserialize)]
pub struct ServiceSpec {
    pub service: Option<Spanned<String>>,
    pub labels: Option<BTreeMap<String, String>>,
    pub slos: Option<Vec<SlothSlo>>,
}

#[derive(Debug, Deserialize)]
pub struct SlothSlo {
    pub name: Option<Spanned<String>>,
    pub description: Option<String>,
    /// Percent, (0, 100].
    pub objective: Option<Spanned<f64>>,
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(rename = "infoLabels")]
    pub info_labels: Option<Spanned<Anything>>,
    pub sli: Option<SlothSli>,
    pub alerting: Option<SlothAlerting>,
    pub interval: Option<Spanned<Anything>>,
}

#[derive(Debug, Deserialize)]
pub struct SlothSli {
    pub events: Option<SlothEvents>,
    pub raw: Option<SlothRaw>,
    pub plugin: Option<Spanned<Anything>>,
}

#[derive(Debug, Deserialize)]
pub struct SlothEvents {
    #[serde(alias = "errorQuery")]
    pub error_query: Option<Spanned<String>>,
    #[serde(alias = "totalQuery")]
    pub total_query: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
pub struct SlothRaw {
    #[serde(alias = "errorRatioQuery")]
    pub error_ratio_query: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct SlothAlerting {
    pub name: Option<Spanned<String>>,
    pub labels: Option<BTreeMap<String, String>>,
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(alias = "pageAlert")]
    pub page_alert: Option<SlothAlert>,
    #[serde(alias = "ticketAlert")]
    pub ticket_alert: Option<SlothAlert>,
}

#[derive(Debug, Default, Deserialize)]
pub struct SlothAlert {
    pub disable: Option<Spanned<bool>>,
    pub labels: Option<BTreeMap<String, String>>,
    pub annotations: Option<BTreeMap<String, String>>,
}

/// The field names of one form, for the paths in problems.
struct Keys {
    /// Where the service's fields sit: `` (plain) or `spec.` (Kubernetes).
    prefix: &'static str,
    error_query: &'static str,
    total_query: &'static str,
    error_ratio_query: &'static str,
    page_alert: &'static str,
    ticket_alert: &'static str,
}

const PLAIN_KEYS: Keys = Keys {
    prefix: "",
    error_query: "error_query",
    total_query: "total_query",
    error_ratio_query: "error_ratio_query",
    page_alert: "page_alert",
    ticket_alert: "ticket_alert",
};

const KUBERNETES_KEYS: Keys = Keys {
    prefix: "spec.",
    error_query: "errorQuery",
    total_query: "totalQuery",
    error_ratio_query: "errorRatioQuery",
    page_alert: "pageAlert",
    ticket_alert: "ticketAlert",
};

/// The SLOs of one Sloth document, over the SLO window `window` (Sloth's `--default-slo-period`).
pub fn import(
    doc: &SourceDocument<'_>,
    document: SlothDocument,
    window: Window,
) -> Result<Vec<Slo>, Vec<Problem>> {
    let mut p = Problems::new(doc);
    let (service_spec, keys) = match document {
        SlothDocument::Plain(plain) => {
            let service = ServiceSpec {
                service: plain.service,
                labels: plain.labels,
                slos: plain.slos,
            };
            (Some(service), &PLAIN_KEYS)
        }
        SlothDocument::Kubernetes(kube) => {
            if kube.spec.is_none() {
                p.missing(
                    "spec",
                    "a PrometheusServiceLevel needs spec.service and spec.slos",
                );
            }
            (kube.spec, &KUBERNETES_KEYS)
        }
    };
    let service_spec = service_spec.unwrap_or_default();
    let prefix = keys.prefix;
    let service = match &service_spec.service {
        Some(s) if !s.value.trim().is_empty() => Some(s.value.trim().to_string()),
        Some(s) => {
            p.at(
                &format!("{prefix}service"),
                s,
                "is empty; name the service these SLOs belong to",
            );
            None
        }
        None => {
            p.missing(
                &format!("{prefix}service"),
                "the service these SLOs belong to, such as checkout",
            );
            None
        }
    };
    let service_labels = service_spec.labels.unwrap_or_default();
    check_labels(&mut p, &format!("{prefix}labels"), &service_labels);
    let slos = service_spec.slos.unwrap_or_default();
    if slos.is_empty() {
        p.missing(
            &format!("{prefix}slos"),
            "a list of SLOs, each with name, objective and sli",
        );
    }
    let mut imported = Vec::new();
    for (i, slo) in slos.into_iter().enumerate() {
        let path = format!("{prefix}slos[{i}]");
        let found = import_slo(
            &mut p,
            keys,
            &path,
            slo,
            service.as_deref(),
            &service_labels,
            window,
        );
        imported.extend(found);
    }
    if p.is_empty() {
        Ok(imported)
    } else {
        Err(p.into_problems())
    }
}

fn import_slo(
    p: &mut Problems<'_>,
    keys: &Keys,
    path: &str,
    slo: SlothSlo,
    service: Option<&str>,
    service_labels: &BTreeMap<String, String>,
    window: Window,
) -> Option<Slo> {
    let name = match (&slo.name, service) {
        (Some(name), Some(service)) => draft::slo_name(
            p,
            &format!("{path}.name"),
            name,
            format!("{service}-{}", name.value),
            &format!(
                "Sloth identifies this SLO as `{service}-{}` (service-name), which burnguard uses as its name",
                name.value
            ),
        ),
        (Some(_), None) => None,
        (None, _) => {
            p.missing(
                &format!("{path}.name"),
                "the SLO's name within its service, such as requests-availability",
            );
            None
        }
    };
    let objective = match &slo.objective {
        Some(o) => draft::objective_percent(p, &format!("{path}.objective"), o),
        None => {
            p.missing(
                &format!("{path}.objective"),
                "a percentage strictly between 0 and 100, such as 99.9",
            );
            None
        }
    };
    let slo_labels = slo.labels.unwrap_or_default();
    check_labels(p, &format!("{path}.labels"), &slo_labels);
    let mut labels = service_labels.clone();
    labels.extend(slo_labels);
    draft::refuse(
        p,
        &format!("{path}.infoLabels"),
        &slo.info_labels,
        "has no equivalent: burnguard records no info series; put the labels in `labels` (they go on every series and alert) or remove them",
    );
    draft::refuse(
        p,
        &format!("{path}.interval"),
        &slo.interval,
        "has no equivalent: burnguard's rule groups use Prometheus's global evaluation interval; remove it",
    );
    let indicator = match slo.sli {
        Some(sli) => indicator(p, keys, &format!("{path}.sli"), sli),
        None => {
            p.missing(
                &format!("{path}.sli"),
                "exactly one of events (error and total queries) or raw (an error ratio query)",
            );
            None
        }
    };
    let alerting = alerting(p, keys, path, slo.alerting.unwrap_or_default(), window);
    Draft {
        name,
        service: service.map(str::to_string),
        description: slo.description.unwrap_or_default(),
        labels,
        objective,
        window: Some(window),
        calendar: None,
        indicator,
        group_by: Vec::new(),
        alerting,
    }
    .finish()
}

fn indicator(p: &mut Problems<'_>, keys: &Keys, path: &str, sli: SlothSli) -> Option<Indicator> {
    draft::refuse(
        p,
        &format!("{path}.plugin"),
        &sli.plugin,
        "Sloth SLI plugins are not supported; write the queries the plugin builds as sli.events (error and total queries with {{.window}})",
    );
    match (sli.events, sli.raw) {
        (Some(events), None) => {
            let errors = draft::query(
                p,
                &format!("{path}.events.{}", keys.error_query),
                events.error_query.as_ref(),
            );
            let total = draft::query(
                p,
                &format!("{path}.events.{}", keys.total_query),
                events.total_query.as_ref(),
            );
            Some(Indicator::Ratio {
                bad: BadEvents::Errors(errors?),
                total: total?,
            })
        }
        (None, Some(raw)) => {
            let error_ratio = draft::query(
                p,
                &format!("{path}.raw.{}", keys.error_ratio_query),
                raw.error_ratio_query.as_ref(),
            );
            Some(Indicator::Raw {
                error_ratio: error_ratio?,
            })
        }
        (Some(_), Some(_)) => {
            p.push(path, "has both events and raw; give exactly one of them");
            None
        }
        (None, None) => {
            if sli.plugin.is_none() {
                p.push(
                    path,
                    "has no SLI; give events (error and total queries) or raw (an error ratio query)",
                );
            }
            None
        }
    }
}

fn alerting(
    p: &mut Problems<'_>,
    keys: &Keys,
    path: &str,
    alerting: SlothAlerting,
    window: Window,
) -> Option<Alerting> {
    let alerting_path = format!("{path}.alerting");
    let name = match &alerting.name {
        None => Some(DEFAULT_ALERT_NAME.to_string()),
        Some(n) => match check_alert_name(&n.value) {
            Ok(()) => Some(n.value.clone()),
            Err(why) => {
                p.at(&format!("{alerting_path}.name"), n, why);
                None
            }
        },
    };
    let labels = alerting.labels.unwrap_or_default();
    check_labels(p, &format!("{alerting_path}.labels"), &labels);
    let annotations = alerting.annotations.unwrap_or_default();
    check_annotations(p, &format!("{alerting_path}.annotations"), &annotations);
    let mut route = |key: &str, alert: Option<SlothAlert>| -> (AlertRoute, bool) {
        let alert = alert.unwrap_or_default();
        let route = AlertRoute {
            labels: alert.labels.unwrap_or_default(),
            annotations: alert.annotations.unwrap_or_default(),
        };
        check_route(p, &format!("{alerting_path}.{key}"), &route);
        let disabled = alert.disable.is_some_and(|d| d.value);
        (route, disabled)
    };
    let (page, page_disabled) = route(keys.page_alert, alerting.page_alert);
    let (ticket, ticket_disabled) = route(keys.ticket_alert, alerting.ticket_alert);
    let longest = windows::google_longest_window();
    let windows = if page_disabled && ticket_disabled {
        Some(Vec::new())
    } else if window < longest {
        p.push(
            path,
            format!(
                "the SLO window {window} (from --window, Sloth's --default-slo-period) is shorter than the {longest} window of Sloth's alerts; pass a window of at least {longest}, or disable both alerts"
            ),
        );
        None
    } else {
        let rows = windows::resolve(&windows::GOOGLE, window);
        Some(
            rows.into_iter()
                .filter(|row| match row.severity {
                    Severity::Page => !page_disabled,
                    Severity::Ticket => !ticket_disabled,
                })
                .collect(),
        )
    };
    Some(Alerting {
        name: name?,
        windows: windows?,
        labels,
        annotations,
        page,
        ticket,
    })
}
