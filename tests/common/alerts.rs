//! Alertmanager webhook bodies of any size, shaped as Alertmanager 0.25 sends them, for the
//! intake tests and benchmark.
#![allow(dead_code)]

use serde_json::{Value, json};

/// One firing alert, about 200 bytes of JSON: `n` makes its name, instance and fingerprint
/// unique, `tag` sets the fingerprints of different deliveries apart.
pub fn alert(n: usize, tag: u32) -> Value {
    json!({
        "status": "firing",
        "labels": {"alertname": format!("DiskFull{}", n % 97), "instance": format!("node-{n:05}"), "severity": "page"},
        "annotations": {"summary": format!("disk 95% full on node-{n:05}")},
        "startsAt": "2026-11-27T02:55:10Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "fingerprint": format!("{tag:08x}{n:08x}"),
    })
}

/// An Alertmanager v4 delivery of `alerts`.
pub fn delivery(alerts: Vec<Value>) -> String {
    json!({
        "receiver": "burnguard", "status": "firing", "alerts": alerts,
        "groupLabels": {}, "commonLabels": {"severity": "page"}, "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093", "version": "4",
        "groupKey": "{}:{}", "truncatedAlerts": 0
    })
    .to_string()
}

/// A delivery of `count` distinct firing alerts.
pub fn body(count: usize, tag: u32) -> String {
    delivery((0..count).map(|n| alert(n, tag)).collect())
}
