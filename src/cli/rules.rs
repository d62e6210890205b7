//! `burnguard rules PATH... [-o FILE]`: a Prometheus rule file for the policies.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

use crate::domain::rules;
use crate::policies;

pub fn run(
    paths: &[PathBuf],
    output: Option<&Path>,
    options: &policies::LoadOptions,
) -> anyhow::Result<ExitCode> {
    let set = match policies::load_with(paths, options) {
        Ok(set) => set,
        Err(error) => {
            super::report_problems(&error);
            return Ok(ExitCode::FAILURE);
        }
    };
    let sources: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    let yaml = rules::to_yaml(&rules::rule_file(&set.slos()), &sources.join(", "))
        .context("serializing the rule file")?;
    match output {
        Some(path) => {
            std::fs::write(path, &yaml).with_context(|| format!("writing {}", path.display()))?;
            eprintln!(
                "wrote rules for {} SLO(s) to {}",
                set.slos.len(),
                path.display()
            );
        }
        None => std::io::stdout()
            .write_all(yaml.as_bytes())
            .context("writing to standard output")?,
    }
    Ok(ExitCode::SUCCESS)
}
