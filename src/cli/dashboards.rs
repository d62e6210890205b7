//! `burnguard dashboards -o DIR`: the Grafana dashboards, one JSON file each.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;

use crate::domain::dashboards;

pub fn run(dir: &Path) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let all = dashboards::all();
    for dashboard in &all {
        let path = dir.join(dashboard.file_name);
        std::fs::write(&path, dashboards::to_text(&dashboard.json))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    eprintln!("wrote {} dashboard(s) to {}", all.len(), dir.display());
    Ok(ExitCode::SUCCESS)
}
