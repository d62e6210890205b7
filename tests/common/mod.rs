//! Helpers shared by the integration tests: finding the real Prometheus tools, temp dirs,
//! and running commands with their output shown on failure.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The path of a tool the test suite needs; panics with the install hint when it is missing
/// (a missing tool is a failed test, never a skipped one).
pub fn tool(name: &str) -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "`{name}` is not installed; run scripts/test, which installs it \
             (apt-get install -y --no-install-recommends prometheus prometheus-alertmanager)"
        )
    })
}

/// Runs a command, returning (success, stdout + stderr).
pub fn run(command: &mut Command) -> (bool, String) {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    path
}

/// The repository root (where Cargo.toml is).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub mod alerts;
pub mod browser;
pub mod db;
pub mod fleet;
pub mod kube;
pub mod prometheus;
pub mod receiver;
pub mod serve;

/// The SLOs of one policy file's `text`, loaded by the real policy loader; any problem fails
/// the test, naming the first few.
pub fn load_slos(text: String) -> Vec<burnguard::domain::policy::Slo> {
    let sources = vec![("many.yaml".to_string(), text)];
    let (loaded, _, problems) =
        burnguard::policies::parse_sources(&sources, &burnguard::policies::LoadOptions::default());
    assert!(
        problems.is_empty(),
        "{:?}",
        &problems[..problems.len().min(3)]
    );
    loaded.into_iter().map(|l| l.slo).collect()
}
