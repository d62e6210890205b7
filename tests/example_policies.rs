//! The example policies shipped in `policies/` are part of the product: they must validate,
//! their rules must pass Prometheus's own checker, and the rule file committed under
//! `deploy/prometheus/` must be exactly what the generator produces today.

mod common;

use std::process::Command;

use burnguard::domain::rules;
use burnguard::policies;

const COMMITTED_RULES: &str = "deploy/prometheus/burnguard-rules.yaml";

fn burnguard() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_burnguard"));
    command.current_dir(common::repo_root());
    command
}

#[test]
fn every_example_policy_validates() {
    let (ok, output) = common::run(burnguard().args(["validate", "policies"]));
    assert!(ok, "burnguard validate policies failed:\n{output}");
    let files = std::fs::read_dir(common::repo_root().join("policies"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "yaml")
        })
        .count();
    assert!(
        files >= 4,
        "expected at least four example policy files, found {files}"
    );
    // Every file contributes at least one SLO line.
    for entry in std::fs::read_dir(common::repo_root().join("policies")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(output.contains(&name), "{name} produced no SLO:\n{output}");
    }
}

#[test]
fn promtool_accepts_the_rules_generated_for_the_examples() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rules.yaml");
    let (ok, output) = common::run(burnguard().args(["rules", "policies", "-o"]).arg(&out));
    assert!(ok, "burnguard rules failed:\n{output}");
    let (ok, output) = common::run(
        Command::new(common::tool("promtool"))
            .arg("check")
            .arg("rules")
            .arg(&out),
    );
    assert!(
        ok,
        "promtool check rules rejected the generated rules:\n{output}"
    );
    assert!(output.contains("SUCCESS"), "{output}");
}

#[test]
fn committed_rules_are_up_to_date_with_the_policies() {
    let root = common::repo_root();
    let set = policies::load(&[root.join("policies")]).expect("examples load");
    // Generated from the relative path, as `burnguard rules policies` prints it.
    let expected = rules::to_yaml(&rules::rule_file(&set.slos()), "policies").unwrap();
    let committed = std::fs::read_to_string(root.join(COMMITTED_RULES)).unwrap_or_default();
    assert!(
        committed == expected,
        "{COMMITTED_RULES} is stale; regenerate it with:\n  cargo run -- rules policies -o {COMMITTED_RULES}"
    );
}

#[test]
fn the_rules_command_prints_what_the_library_generates() {
    let (ok, output) = common::run(burnguard().args(["rules", "policies/search-latency.yaml"]));
    assert!(ok, "{output}");
    let set = policies::load(&[common::repo_root().join("policies/search-latency.yaml")]).unwrap();
    let expected = rules::to_yaml(
        &rules::rule_file(&set.slos()),
        "policies/search-latency.yaml",
    )
    .unwrap();
    assert_eq!(output, expected);
}
