//! `burnguard crds [-o FILE]`: the CustomResourceDefinitions as YAML.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;

use crate::adapters::kube::resources;

pub fn run(output: Option<&Path>) -> anyhow::Result<ExitCode> {
    let text = resources::definitions_yaml().context("writing the CRDs as YAML")?;
    match output {
        Some(path) => {
            std::fs::write(path, &text).with_context(|| format!("writing {}", path.display()))?;
            eprintln!("wrote 2 CustomResourceDefinitions to {}", path.display());
        }
        None => print!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}
