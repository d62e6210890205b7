//! `burnguard import FILE... [-o DIR]`: Sloth, Pyrra and OpenSLO documents written as
//! `burnguard.dev/v1`, each with a comment naming where it came from.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

use crate::domain::spec::v1;
use crate::policies::{self, LoadOptions, LoadedSlo};

pub fn run(
    paths: &[PathBuf],
    output: Option<&Path>,
    options: &LoadOptions,
) -> anyhow::Result<ExitCode> {
    let set = match policies::load_with(paths, options) {
        Ok(set) => set,
        Err(error) => {
            super::report_problems(&error);
            return Ok(ExitCode::FAILURE);
        }
    };
    // Per input file, its imported SLOs in document order.
    let mut by_source: BTreeMap<String, Vec<&LoadedSlo>> = BTreeMap::new();
    let mut native = 0;
    for loaded in &set.slos {
        if loaded.format.is_foreign() {
            by_source
                .entry(loaded.origin.source.clone())
                .or_default()
                .push(loaded);
        } else {
            native += 1;
        }
    }
    if native + set.playbooks.len() > 0 {
        eprintln!(
            "{native} SLO(s) and {} playbook(s) are burnguard.dev/v1 already and were left as they are",
            set.playbooks.len()
        );
    }
    if by_source.is_empty() {
        eprintln!("nothing to import: no Sloth, Pyrra or OpenSLO SLO found");
        return Ok(ExitCode::SUCCESS);
    }
    let mut texts = BTreeMap::new();
    for (source, slos) in &by_source {
        texts.insert(source.clone(), (document_text(slos)?, slos.len()));
    }
    super::write_per_source(&texts, output)?;
    Ok(ExitCode::SUCCESS)
}

/// The burnguard documents of one input file's SLOs.
fn document_text(slos: &[&LoadedSlo]) -> anyhow::Result<String> {
    let mut text = String::new();
    for loaded in slos {
        let body = v1::write_slo(&loaded.slo)
            .with_context(|| format!("writing SLO {}", loaded.slo.name))?;
        text.push_str(&format!(
            "---\n# Imported by burnguard from {}, document {} ({}).\n{body}",
            loaded.origin.source, loaded.origin.document, loaded.format
        ));
    }
    Ok(text)
}
