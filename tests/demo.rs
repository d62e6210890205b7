//! `scripts/demo` as CI would run it: without a terminal, on the debug binary `cargo test` has
//! just built (`BURNGUARD_DEMO_BIN`, so no release build), against the real Prometheus and
//! Alertmanager. The story must reach its end and exit 0, stop everything it started, and
//! leave the database it printed with the resolved incident and its timeline. About two and a
//! half minutes, most of it waiting for the demo's short windows to fill and empty.

mod common;

use std::process::{Command, Stdio};

use serde_json::Value;

fn burnguard_json(args: &[&str]) -> Value {
    let (ok, out) = common::run(Command::new(env!("CARGO_BIN_EXE_burnguard")).args(args));
    assert!(ok, "{out}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[test]
fn the_demo_tells_its_whole_story_without_a_terminal_and_leaves_its_database() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let output = Command::new(common::repo_root().join("scripts/demo"))
        .env("BURNGUARD_DEMO_BIN", env!("CARGO_BIN_EXE_burnguard"))
        .env("BURNGUARD_DEMO_DIR", &run)
        .stdin(Stdio::null())
        .output()
        .expect("scripts/demo runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "the demo failed:\n{text}");

    // Every step was narrated, in order.
    let mut from = 0;
    for step in [
        "1. Healthy traffic",
        "2. An error spike",
        "3. Burn rates cross an alert threshold: an incident opens",
        "the playbook `checkout-degrade` runs",
        "the workload confirms it",
        "Prometheus fired the same page",
        "Alertmanager delivered",
        "5. The freeze gate says no",
        "answers 423",
        "6. Recovery",
        "7. The incident resolves",
        "8. The freeze lifts",
        "answers 200 {\"frozen\":false}",
        "every step of the story happened",
    ] {
        let at = text[from..]
            .find(step)
            .unwrap_or_else(|| panic!("`{step}` missing (or out of order) in:\n{text}"));
        from += at + step.len();
    }

    // Nothing it started is left: it says so, and its URLs no longer answer.
    assert!(
        text.contains("nothing this demo started is left running"),
        "{text}"
    );
    let metrics = text
        .lines()
        .find_map(|l| l.trim_start().strip_prefix("burnguard metrics"))
        .map(str::trim)
        .expect("the metrics URL is printed");
    let addr = metrics
        .trim_start_matches("http://")
        .trim_end_matches("/metrics");
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "burnguard still answers at {addr}"
    );

    // The database it printed holds the resolved incident with its timeline.
    let db = text
        .lines()
        .find_map(|l| l.strip_prefix("database: "))
        .expect("the database is printed")
        .to_string();
    assert_eq!(db, format!("sqlite://{}/burnguard.db", run.display()));
    let list = burnguard_json(&[
        "incidents",
        "list",
        "--status",
        "all",
        "--output",
        "json",
        "--db",
        &db,
    ]);
    let incidents: Vec<&Value> = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["slo"] == "checkout-availability")
        .collect();
    assert_eq!(incidents.len(), 1, "{list:#}");
    assert_eq!(incidents[0]["status"], "resolved", "{list:#}");
    assert_eq!(incidents[0]["severity"], "page", "{list:#}");
    let id = incidents[0]["id"].as_i64().unwrap().to_string();
    let detail = burnguard_json(&["incidents", "show", &id, "--output", "json", "--db", &db]);
    let kinds: Vec<&str> = detail["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    let first = |kind: &str| {
        kinds
            .iter()
            .position(|k| *k == kind)
            .unwrap_or_else(|| panic!("no `{kind}` on the timeline: {kinds:?}"))
    };
    let order = [
        "opened",
        "playbook_started",
        "frozen",
        "resolved",
        "unfrozen",
    ]
    .map(first);
    assert!(order.is_sorted(), "timeline out of order: {kinds:?}");
    first("alert_received");
    // The flag call, the freeze and the check, each once and each a success.
    let actions: Vec<(&str, &str)> = detail["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["kind"].as_str().unwrap(), a["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        actions,
        [
            ("http", "succeeded"),
            ("freeze", "succeeded"),
            ("verify", "succeeded")
        ],
        "{detail:#}"
    );
}
