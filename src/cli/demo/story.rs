//! `burnguard demo story`: the demo's story, driven and narrated against running services.
//!
//! Healthy traffic; the recommendations backend breaks (an error spike); burn rates cross the
//! alert thresholds and an incident opens, then pages; the playbook turns the workload's flag
//! off and freezes the service; the freeze gate answers 423; the error rate falls back;
//! Alertmanager's notification reaches burnguard's webhook; the incident resolves; the freeze
//! lifts. Every step waits, for a bounded time, for something it can see through burnguard's
//! API (or the workload's and Prometheus's), and prints the numbers burnguard reports. Any
//! step not seen in time ends the story with exit code 1.
//!
//! With a terminal on standard input it waits for Enter before breaking the backend; without
//! one it runs to the end by itself.

use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use serde_json::{Value, json};

use super::super::args::parse_duration;
use crate::domain::playbook::{Playbook, Response, StepAction, Trigger};
use crate::domain::policy::{Severity, Slo, Window};

/// How often the story looks.
const POLL: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, Args)]
pub struct StoryArgs {
    /// burnguard serve's base URL.
    #[arg(long)]
    burnguard: String,
    /// The demo workload's base URL.
    #[arg(long)]
    workload: String,
    /// Prometheus's base URL.
    #[arg(long)]
    prometheus: String,
    /// The policies `serve` runs (read for the SLO's windows, resolveAfter and playbook).
    #[arg(long = "policies", required = true)]
    policies: Vec<PathBuf>,
    /// The SLO the story follows.
    #[arg(long, default_value = "checkout-availability")]
    slo: String,
    /// serve's --unfreeze-after.
    #[arg(long, value_parser = parse_duration)]
    unfreeze_after: Duration,
    /// serve's --interval and Prometheus's scrape and rule evaluation interval (for the words).
    #[arg(long, value_parser = parse_duration, default_value = "2s")]
    interval: Duration,
    /// The load generator's requests per second (for the words).
    #[arg(long, default_value_t = 25)]
    rps: u32,
}

pub fn run(args: StoryArgs) -> anyhow::Result<ExitCode> {
    let set = crate::policies::load(&args.policies).map_err(|e| {
        super::super::report_problems(&e);
        anyhow::anyhow!("the demo policies are invalid")
    })?;
    let slo = set
        .slos()
        .into_iter()
        .find(|s| s.name == args.slo)
        .with_context(|| format!("no SLO named {} in the policies", args.slo))?;
    let others: Vec<Slo> = set
        .slos()
        .into_iter()
        .filter(|s| s.name != args.slo)
        .collect();
    let playbook = slo
        .budget_policy
        .iter()
        .find_map(|rule| match (&rule.when, &rule.then) {
            (Trigger::Alert(Severity::Page), Response::Run(name)) => {
                set.playbooks().get(name).cloned()
            }
            _ => None,
        })
        .context("the SLO has no playbook run on a page")?;
    let interactive = std::io::stdin().is_terminal();
    super::runtime()?.block_on(async move {
        let mut story = Story {
            http: super::client(Duration::from_secs(5))?,
            args,
            slo,
            others,
            playbook,
            started: Instant::now(),
            // Narrate from now on: what serve did before the story is in its log.
            last_eval_at: chrono::Utc::now().timestamp(),
            latest: None,
            printed: None,
            cadence: Duration::from_secs(10),
            incident_id: None,
            incident: None,
            printed_events: BTreeSet::new(),
            gate: None,
            flag: None,
        };
        match story.tell(interactive).await {
            Ok(()) => Ok(ExitCode::SUCCESS),
            Err(error) => {
                println!();
                story.say(&format!("THE STORY STOPPED: {error:#}"));
                Ok(ExitCode::FAILURE)
            }
        }
    })
}

struct Story {
    http: reqwest::Client,
    args: StoryArgs,
    slo: Slo,
    others: Vec<Slo>,
    playbook: Playbook,
    started: Instant,
    /// The newest evaluation seen (unix seconds) and its snapshot.
    last_eval_at: i64,
    latest: Option<Value>,
    /// When an evaluation line was last printed, and the state it showed.
    printed: Option<(Instant, String)>,
    /// Print an unchanged evaluation at most this often (zero: every one).
    cadence: Duration,
    incident_id: Option<i64>,
    /// The incident with its timeline, as the API shows it.
    incident: Option<Value>,
    printed_events: BTreeSet<i64>,
    /// The freeze gate for the SLO's service: status and body.
    gate: Option<(u16, Value)>,
    /// The workload's flag as it reports it.
    flag: Option<bool>,
}

/// `12.3x`, or `-` for no data.
fn times(x: Option<f64>) -> String {
    match x {
        Some(x) if x >= 10.0 => format!("{x:.1}x"),
        Some(x) => format!("{x:.2}x"),
        None => "-".into(),
    }
}

fn percent(x: Option<f64>) -> String {
    x.map_or("-".into(), |x| format!("{:.1}%", x * 100.0))
}

fn span(d: Duration) -> String {
    match d.as_secs() {
        0 => format!("{}ms", d.as_millis()),
        s => Window::from_secs(s).to_string(),
    }
}

impl Story {
    async fn tell(&mut self, interactive: bool) -> anyhow::Result<()> {
        self.introduce();
        let short = self.shortest_window();
        let b = self.args.burnguard.clone();

        self.heading("1. Healthy traffic");
        self.say(&format!(
            "the load generator sends {} checkout requests a second; one in 500 fails even on a good day (0.2%, a burn rate of 0.2)",
            self.args.rps
        ));
        self.cadence = Duration::from_secs(10);
        let mut ok_since: Option<i64> = None;
        let healthy_for = 20;
        self.until(
            &format!("burnguard judging {} ok for {healthy_for}s", self.slo.name),
            Duration::from_secs(120),
            |s| {
                if s.status() == Some("ok") {
                    let since = *ok_since.get_or_insert(s.last_eval_at);
                    (s.last_eval_at - since >= healthy_for).then_some(())
                } else {
                    ok_since = None;
                    None
                }
            },
        )
        .await?;
        let source = self
            .latest
            .as_ref()
            .and_then(|e| e["source"].as_str())
            .unwrap_or("-")
            .to_string();
        self.say(&format!(
            "burnguard has judged {} `ok` on data for {healthy_for}s (numbers read from {}: {})",
            self.slo.name,
            if source == "rules" {
                "the series Prometheus records with burnguard's rules"
            } else {
                "its own queries"
            },
            source
        ));
        self.print_others().await;

        if interactive {
            println!();
            println!("Press Enter to break the recommendations backend (the error spike)...");
            tokio::task::spawn_blocking(|| {
                let mut line = String::new();
                std::io::stdin().read_line(&mut line)
            })
            .await??;
            // What happened during the pause is the same healthy traffic: skip it.
            self.last_eval_at = chrono::Utc::now().timestamp();
        }

        self.heading("2. An error spike");
        let response = self
            .http
            .put(format!("{}/faults/recommendations", self.args.workload))
            .json(&json!({"failing": true}))
            .send()
            .await
            .context("breaking the recommendations backend")?;
        if !response.status().is_success() {
            bail!("the workload refused the fault: {}", response.status());
        }
        self.say(&format!(
            "PUT {}/faults/recommendations {{\"failing\": true}}: while the `recommendations` flag is on, one checkout in three now fails",
            self.args.workload
        ));
        self.cadence = Duration::ZERO;
        let ratio = self
            .until(
                &format!("an error ratio above 10% over {short}"),
                Duration::from_secs(60),
                |s| s.error_ratio(short).filter(|r| *r >= 0.1),
            )
            .await?;
        self.say(&format!(
            "burnguard sees it: {} of requests failed over the last {short}, a burn rate of {} (the budget allows {})",
            percent(Some(ratio)),
            times(Some(ratio / self.slo.error_budget().ratio())),
            percent(Some(self.slo.error_budget().ratio()))
        ));

        self.heading("3. Burn rates cross an alert threshold: an incident opens");
        let severity = self
            .until("an incident for the SLO", Duration::from_secs(120), |s| {
                s.incident
                    .as_ref()
                    .and_then(|i| i["severity"].as_str().map(String::from))
            })
            .await?;
        let id = self.incident_id.unwrap_or_default();
        self.say_firing_rows("");
        self.say(&format!(
            "incident #{id} is open as a {severity}: {b}/api/v1/incidents/{id}"
        ));

        self.heading(&if severity == "page" {
            format!(
                "4. It is a page: the playbook `{}` runs",
                self.playbook.name
            )
        } else {
            format!(
                "4. The page threshold: the incident escalates, the playbook `{}` runs",
                self.playbook.name
            )
        });
        // At worst the long page window is full of healthy traffic when the spike starts
        // (after a long pause at the prompt), and the spike needs most of that window.
        self.until(
            "the incident becoming a page",
            Duration::from_secs(180),
            |s| s.incident_field("severity").filter(|v| v == "page"),
        )
        .await?;
        self.say_firing_rows("page");
        let steps: Vec<String> = self
            .playbook
            .steps
            .iter()
            .filter(|step| !matches!(step.action, StepAction::Verify { .. }))
            .map(|step| format!("step `{}` succeeded", step.name))
            .collect();
        self.until(
            "the playbook's steps succeeding",
            Duration::from_secs(60),
            |s| {
                (s.has_event("playbook_started", "")
                    && s.has_event("frozen", "")
                    && steps.iter().all(|m| s.has_event("action_succeeded", m)))
                .then_some(())
            },
        )
        .await?;
        self.until(
            "the workload reporting its flag off",
            Duration::from_secs(15),
            |s| (s.flag == Some(false)).then_some(()),
        )
        .await?;
        self.say(&format!(
            "the workload confirms it: GET {}/flags/recommendations says {{\"enabled\": false}}",
            self.args.workload
        ));
        let alert = self.prometheus_page_alert().await?;
        self.say(&format!(
            "Prometheus fired the same page from the rules `burnguard rules` generated: {alert} (its alerts page: {}/alerts)",
            self.args.prometheus
        ));
        self.until(
            "an Alertmanager notification on the incident",
            Duration::from_secs(60),
            |s| s.has_event("alert_received", "").then_some(()),
        )
        .await?;
        self.say("Alertmanager delivered Prometheus's alerts to burnguard's webhook, with the bearer token burnguard expects: they are on the incident's timeline");

        self.heading("5. The freeze gate says no");
        let body = self
            .until(
                "the freeze gate answering 423",
                Duration::from_secs(30),
                |s| {
                    s.gate
                        .as_ref()
                        .filter(|(status, _)| *status == 423)
                        .map(|(_, body)| body.clone())
                },
            )
            .await?;
        self.say(&format!(
            "GET {b}/api/v1/freeze-gate?service={} answers 423 {body}",
            self.slo.service
        ));
        self.say("a pipeline that asks the gate before deploying checkout stops there");

        self.heading("6. Recovery");
        let burn = self
            .until(
                &format!("nothing firing and a burn rate below 1 over {short}"),
                Duration::from_secs(120),
                |s| {
                    (s.status() == Some("ok"))
                        .then(|| s.burn_rate(short).filter(|b| *b < 1.0))
                        .flatten()
                },
            )
            .await?;
        self.say(&format!(
            "nothing fires any more: the burn rate over {short} is {}",
            times(Some(burn))
        ));
        if let Some(verify) = self
            .playbook
            .steps
            .iter()
            .find(|step| matches!(step.action, StepAction::Verify { .. }))
        {
            let done = format!("step `{}` succeeded", verify.name);
            self.until(
                "the playbook's verify step passing",
                Duration::from_secs(180),
                |s| s.has_event("action_succeeded", &done).then_some(()),
            )
            .await?;
        }

        self.heading("7. The incident resolves");
        let resolve_after = Duration::from_secs(self.slo.resolve_after.as_secs());
        self.say(&format!(
            "burnguard resolves it after {} of quiet seen on data (resolveAfter)",
            span(resolve_after)
        ));
        self.cadence = Duration::from_secs(10);
        self.until(
            "the incident resolving",
            resolve_after + Duration::from_secs(90),
            |s| s.incident_field("status").filter(|v| v == "resolved"),
        )
        .await?;

        self.heading("8. The freeze lifts");
        self.say(&format!(
            "the playbook's freeze lifts once its incident is resolved and nothing has fired for {} (--unfreeze-after)",
            span(self.args.unfreeze_after)
        ));
        let body = self
            .until(
                "the freeze gate answering 200",
                self.args.unfreeze_after + Duration::from_secs(90),
                |s| {
                    (s.has_event("unfrozen", ""))
                        .then(|| {
                            s.gate
                                .as_ref()
                                .filter(|(status, _)| *status == 200)
                                .map(|(_, body)| body.clone())
                        })
                        .flatten()
                },
            )
            .await?;
        self.say(&format!(
            "GET {b}/api/v1/freeze-gate?service={} answers 200 {body}",
            self.slo.service
        ));

        self.conclude()
    }

    fn introduce(&self) {
        let slo = &self.slo;
        println!();
        println!("The story: a month in the life of an SLO, in a few minutes");
        println!();
        println!(
            "  {}: {}% of checkout requests answered without a 5xx, over a {} window.",
            slo.name,
            crate::domain::sli::promql_number(slo.objective.percent()),
            slo.window
        );
        println!(
            "  Time is compressed: production would use 30d and the SRE workbook's windows (page on 1h and"
        );
        println!(
            "  5m at 14.4x). Prometheus here scrapes and evaluates every {}, so the alert rows keep the",
            span(self.args.interval)
        );
        println!("  workbook's burn-rate factors on windows it can still measure:");
        for row in &slo.alerting.windows {
            println!(
                "    {:<6}  when the burn rate is above {}x over both the last {} and the last {}",
                row.severity.as_str(),
                crate::domain::sli::promql_number(row.burn_rate_threshold),
                row.long,
                row.short
            );
        }
        println!(
            "  An incident resolves after {} of quiet (resolveAfter, 15m by default) and a freeze lifts",
            slo.resolve_after
        );
        println!(
            "  after {} (--unfreeze-after, 1h by default). burnguard evaluates every {}.",
            span(self.args.unfreeze_after),
            span(self.args.interval)
        );
    }

    fn conclude(&mut self) -> anyhow::Result<()> {
        let Some(incident) = self.incident.clone() else {
            bail!("the incident is gone from the API");
        };
        let kinds: Vec<&str> = incident["timeline"]
            .as_array()
            .map(|t| t.iter().filter_map(|e| e["kind"].as_str()).collect())
            .unwrap_or_default();
        let expected = [
            "opened",
            "playbook_started",
            "action_succeeded",
            "frozen",
            "alert_received",
            "resolved",
            "unfrozen",
        ];
        let missing: Vec<&str> = expected
            .iter()
            .copied()
            .filter(|k| !kinds.contains(k))
            .collect();
        if !missing.is_empty() {
            bail!("the incident's timeline lacks {missing:?}: {kinds:?}");
        }
        let at = |field: &str| incident[field].as_i64().unwrap_or_default();
        self.heading("The end");
        self.say(&format!(
            "incident #{}: {} {}, open for {}s, peak burn rate {}; budget left over the {} window: {} when it opened, {} when it resolved",
            at("id"),
            incident["status"].as_str().unwrap_or("-"),
            incident["severity"].as_str().unwrap_or("-"),
            at("resolved_at") - at("opened_at"),
            times(incident["peak_burn_rate"].as_f64()),
            self.slo.window,
            percent(incident["budget_remaining_at_open"].as_f64()),
            percent(incident["budget_remaining_at_resolve"].as_f64()),
        ));
        self.say(&format!(
            "(Prometheus holds only the {} minutes or so this demo has run, so the {} window is those minutes and one spike overspends it; in production the page row fires when 2% of a 30-day budget is gone)",
            self.started.elapsed().as_secs().div_ceil(60),
            self.slo.window
        ));
        self.say(&format!(
            "every step of the story happened, in {}; the timeline has {} entries",
            span(self.started.elapsed()),
            kinds.len()
        ));
        Ok(())
    }

    /// Looks at everything once, printing what is new, until `check` says the step happened.
    async fn until<T>(
        &mut self,
        what: &str,
        limit: Duration,
        mut check: impl FnMut(&Self) -> Option<T>,
    ) -> anyhow::Result<T> {
        let deadline = Instant::now() + limit;
        loop {
            self.look().await;
            if let Some(seen) = check(self) {
                return Ok(seen);
            }
            if Instant::now() >= deadline {
                bail!("{what}: not seen within {}", span(limit));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Reads burnguard's new evaluations, the incident, the gate and the workload's flag.
    async fn look(&mut self) {
        let b = self.args.burnguard.clone();
        let history = format!(
            "{b}/api/v1/slos/{}/history?from={}",
            self.slo.name,
            self.last_eval_at + 1
        );
        if let Some((200, body)) = self.get(&history).await {
            for point in body["evaluations"].as_array().into_iter().flatten() {
                let at = point["evaluated_at"].as_i64().unwrap_or_default();
                if at <= self.last_eval_at {
                    continue;
                }
                self.last_eval_at = at;
                self.latest = Some(point["snapshot"].clone());
                self.print_evaluation();
            }
        }
        if self.incident_id.is_none() {
            let list = format!("{b}/api/v1/incidents?slo={}", self.slo.name);
            if let Some((200, body)) = self.get(&list).await {
                self.incident_id = body["incidents"][0]["id"].as_i64();
            }
        }
        if let Some(id) = self.incident_id
            && let Some((200, detail)) = self.get(&format!("{b}/api/v1/incidents/{id}")).await
        {
            for event in detail["timeline"].as_array().into_iter().flatten() {
                let event_id = event["id"].as_i64().unwrap_or_default();
                if self.printed_events.insert(event_id) {
                    self.say(&format!(
                        "timeline  {}: {}",
                        event["kind"].as_str().unwrap_or("-"),
                        event["message"].as_str().unwrap_or("-")
                    ));
                }
            }
            self.incident = Some(detail);
        }
        let gate = format!("{b}/api/v1/freeze-gate?service={}", self.slo.service);
        self.gate = self.get(&gate).await;
        let flag = format!("{}/flags/recommendations", self.args.workload);
        self.flag = self
            .get(&flag)
            .await
            .and_then(|(_, body)| body["enabled"].as_bool());
    }

    async fn get(&self, url: &str) -> Option<(u16, Value)> {
        let response = self.http.get(url).send().await.ok()?;
        let status = response.status().as_u16();
        Some((status, response.json().await.ok()?))
    }

    /// Waits until Prometheus has fired a page for the SLO, and names it.
    async fn prometheus_page_alert(&mut self) -> anyhow::Result<String> {
        let query = format!(
            "max_over_time(ALERTS{{alertstate=\"firing\",slo=\"{}\",severity=\"page\"}}[10m])",
            self.slo.name
        );
        let url = reqwest::Url::parse_with_params(
            &format!("{}/api/v1/query", self.args.prometheus),
            &[("query", query)],
        )?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some((200, body)) = self.get(url.as_str()).await
                && let Some(labels) = body["data"]["result"][0]["metric"].as_object()
            {
                let label = |k: &str| labels.get(k).and_then(Value::as_str).unwrap_or("-");
                return Ok(format!(
                    "{}{{severity=\"page\", long_window=\"{}\", short_window=\"{}\"}}",
                    label("alertname"),
                    label("long_window"),
                    label("short_window")
                ));
            }
            if Instant::now() >= deadline {
                bail!("Prometheus firing the page alert: not seen within 30s");
            }
            self.look().await;
            tokio::time::sleep(POLL).await;
        }
    }

    /// One line per other SLO of the set: its status now.
    async fn print_others(&self) {
        for other in &self.others {
            let url = format!("{}/api/v1/slos/{}", self.args.burnguard, other.name);
            let status = match self.get(&url).await {
                Some((200, e)) => e["status"].as_str().unwrap_or("-").to_string(),
                _ => "not evaluated yet".into(),
            };
            self.say(&format!(
                "{} ({}): {status}",
                other.name,
                other.description.to_lowercase()
            ));
        }
    }

    fn print_evaluation(&mut self) {
        let Some(e) = self.latest.clone() else { return };
        let mut windows: Vec<Window> = self
            .slo
            .alerting
            .windows
            .iter()
            .flat_map(|w| [w.short, w.long])
            .collect();
        windows.sort();
        windows.dedup();
        let burn: Vec<String> = windows
            .iter()
            .map(|w| format!("{w} {}", times(e["burn_rate"][w.to_string()].as_f64())))
            .collect();
        let rows: Vec<String> = e["alerts"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| {
                format!(
                    "{} >{}x {}",
                    a["severity"].as_str().unwrap_or("-"),
                    a["factor"]
                        .as_f64()
                        .map(crate::domain::sli::promql_number)
                        .unwrap_or_default(),
                    if a["firing"].as_bool() == Some(true) {
                        "FIRING"
                    } else {
                        "quiet"
                    }
                )
            })
            .collect();
        let status = e["status"].as_str().unwrap_or("-");
        let state = format!("{status} {}", rows.join(" "));
        let due = match &self.printed {
            None => true,
            Some((when, shown)) => *shown != state || when.elapsed() >= self.cadence,
        };
        if due {
            self.say(&format!(
                "burn rate {}  | {} | {status}",
                burn.join("  "),
                rows.join("  ")
            ));
            self.printed = Some((Instant::now(), state));
        }
    }

    /// Says which alert rows of the latest evaluation fire (of `severity`, or all), and why.
    fn say_firing_rows(&self, severity: &str) {
        let Some(e) = &self.latest else { return };
        for row in e["alerts"].as_array().into_iter().flatten() {
            let of = |key: &str| row[key].as_str().unwrap_or("-").to_string();
            if row["firing"].as_bool() != Some(true)
                || !(severity.is_empty() || of("severity") == severity)
            {
                continue;
            }
            let burn = |window: &str| times(e["burn_rate"][window].as_f64());
            let (long, short) = (of("long_window"), of("short_window"));
            self.say(&format!(
                "the {} row fires: the burn rate is {} over the last {long} and {} over the last {short}, both above {}x",
                of("severity"),
                burn(&long),
                burn(&short),
                row["factor"]
                    .as_f64()
                    .map(crate::domain::sli::promql_number)
                    .unwrap_or_default()
            ));
        }
    }

    fn heading(&self, title: &str) {
        println!();
        println!("{title}");
    }

    fn say(&self, text: &str) {
        let s = self.started.elapsed().as_secs();
        println!("  [+{}:{:02}] {text}", s / 60, s % 60);
    }

    fn status(&self) -> Option<&str> {
        self.latest.as_ref()?["status"].as_str()
    }

    fn burn_rate(&self, window: Window) -> Option<f64> {
        self.latest.as_ref()?["burn_rate"][window.to_string()].as_f64()
    }

    fn error_ratio(&self, window: Window) -> Option<f64> {
        self.latest.as_ref()?["error_ratio"][window.to_string()].as_f64()
    }

    fn incident_field(&self, field: &str) -> Option<String> {
        self.incident.as_ref()?[field].as_str().map(String::from)
    }

    fn has_event(&self, kind: &str, containing: &str) -> bool {
        self.incident
            .as_ref()
            .and_then(|i| i["timeline"].as_array())
            .is_some_and(|timeline| {
                timeline.iter().any(|e| {
                    e["kind"] == kind
                        && e["message"]
                            .as_str()
                            .is_some_and(|m| m.contains(containing))
                })
            })
    }

    fn shortest_window(&self) -> Window {
        self.slo
            .alerting
            .windows
            .iter()
            .map(|w| w.short)
            .min()
            .unwrap_or(crate::domain::policy::BASE_WINDOW)
    }
}
