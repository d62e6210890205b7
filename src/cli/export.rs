//! `burnguard export --to openslo PATH... [-o DIR]`: SLOs written in another tool's format.
//! Settings the target cannot hold are listed on standard error, never dropped silently.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

use crate::domain::spec::openslo;
use crate::policies::{self, FileProblem, LoadOptions};

/// Formats `export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    /// OpenSLO openslo/v1 SLO documents, indicators inline.
    Openslo,
}

pub fn run(
    target: Target,
    paths: &[PathBuf],
    output: Option<&Path>,
    options: &LoadOptions,
) -> anyhow::Result<ExitCode> {
    let Target::Openslo = target;
    let set = match policies::load_with(paths, options) {
        Ok(set) => set,
        Err(error) => {
            super::report_problems(&error);
            return Ok(ExitCode::FAILURE);
        }
    };
    let mut texts: BTreeMap<String, (String, usize)> = BTreeMap::new();
    let mut lost = Vec::new();
    for loaded in &set.slos {
        let (body, not_exported) = openslo::export(&loaded.slo)
            .with_context(|| format!("writing SLO {}", loaded.slo.name))?;
        lost.extend(not_exported.into_iter().map(|mut problem| {
            problem.document = loaded.origin.document;
            FileProblem {
                source: loaded.origin.source.clone(),
                problem,
            }
        }));
        let (text, slos) = texts.entry(loaded.origin.source.clone()).or_default();
        text.push_str(&format!(
            "---\n# Exported by burnguard from {}, document {} ({}).\n{body}",
            loaded.origin.source, loaded.origin.document, loaded.format
        ));
        *slos += 1;
    }
    for problem in &lost {
        eprintln!("{problem}");
    }
    super::write_per_source(&texts, output)?;
    Ok(ExitCode::SUCCESS)
}
