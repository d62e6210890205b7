//! `burnguard incidents list|show` and `burnguard migrate`: reading the store from the shell.

use std::process::ExitCode;

use super::args::{Output, rfc3339};
use crate::adapters::store::SqlStore;
use crate::domain::incident::IncidentStatus;
use crate::ports::{IncidentDetail, IncidentFilter, IncidentRecord, Store};

/// `--status` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum StatusFilter {
    #[default]
    Open,
    Acknowledged,
    Resolved,
    All,
}

impl StatusFilter {
    fn status(self) -> Option<IncidentStatus> {
        match self {
            StatusFilter::Open => Some(IncidentStatus::Open),
            StatusFilter::Acknowledged => Some(IncidentStatus::Acknowledged),
            StatusFilter::Resolved => Some(IncidentStatus::Resolved),
            StatusFilter::All => None,
        }
    }
}

pub async fn list(
    db: &str,
    status: StatusFilter,
    slo: Option<String>,
    output: Output,
) -> anyhow::Result<ExitCode> {
    let store = SqlStore::open(db).await?;
    let incidents = store
        .list_incidents(&IncidentFilter {
            status: status.status(),
            slo,
            limit: None,
        })
        .await?;
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&incidents)?),
        Output::Table => print!("{}", table(&incidents)),
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn show(db: &str, id: i64, output: Output) -> anyhow::Result<ExitCode> {
    let store = SqlStore::open(db).await?;
    let Some(detail) = store.incident(id).await? else {
        eprintln!("no incident {id} in {db}");
        return Ok(ExitCode::FAILURE);
    };
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&detail)?),
        Output::Table => print!("{}", show_text(&detail)),
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn migrate(db: &str) -> anyhow::Result<ExitCode> {
    SqlStore::open(db).await?;
    println!("database {db} is up to date");
    Ok(ExitCode::SUCCESS)
}

fn optional_time(at: Option<i64>) -> String {
    at.map_or("-".into(), rfc3339)
}

fn table(incidents: &[IncidentRecord]) -> String {
    let mut rows = vec![vec![
        "ID".to_string(),
        "STATUS".into(),
        "SEVERITY".into(),
        "SLO".into(),
        "SERVICE".into(),
        "OPENED".into(),
        "RESOLVED".into(),
        "PEAK BURN".into(),
    ]];
    for i in incidents {
        rows.push(vec![
            i.id.to_string(),
            i.status.clone(),
            i.severity.clone(),
            i.slo.clone(),
            i.service.clone(),
            rfc3339(i.opened_at),
            optional_time(i.resolved_at),
            format!("{:.2}", i.peak_burn_rate),
        ]);
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    rows.iter()
        .map(|row| {
            let cells: Vec<String> = row
                .iter()
                .zip(&widths)
                .map(|(cell, width)| format!("{cell:<width$}"))
                .collect();
            format!("{}\n", cells.join("  ").trim_end())
        })
        .collect()
}

fn show_text(d: &IncidentDetail) -> String {
    let i = &d.incident;
    let budget = |b: Option<f64>| b.map_or("-".into(), |b| format!("{:.1}%", b * 100.0));
    let mut out = format!(
        "incident {}: {} {} ({}) for {}\n  opened       {}\n  acknowledged {}\n  resolved     {}\n  peak burn    {:.2}\n  budget left  {} at open, {} at resolve\n\ntimeline:\n",
        i.id,
        i.status,
        i.severity,
        i.service,
        i.slo,
        rfc3339(i.opened_at),
        optional_time(i.acknowledged_at),
        optional_time(i.resolved_at),
        i.peak_burn_rate,
        budget(i.budget_remaining_at_open),
        budget(i.budget_remaining_at_resolve),
    );
    for e in &d.timeline {
        out.push_str(&format!(
            "  {}  {:<12}  {}{}\n",
            rfc3339(e.at),
            e.kind,
            e.message,
            e.actor
                .as_ref()
                .map(|a| format!(" (by {a})"))
                .unwrap_or_default()
        ));
    }
    out.push_str("\nactions:\n");
    if d.actions.is_empty() {
        out.push_str("  none\n");
    }
    for a in &d.actions {
        out.push_str(&format!(
            "  {}  {:<10}  {}  {}\n",
            rfc3339(a.created_at),
            a.status,
            a.kind,
            a.idempotency_key
        ));
    }
    out
}
