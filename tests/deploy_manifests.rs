//! The manifests under `deploy/kubernetes/` must say what the code does: RBAC grants exactly
//! the verbs the Kubernetes steps use (checked against the requests `tests/kube_actions.rs`
//! verifies), the admission webhook points at the route burnguard serves, and Kubernetes waits
//! longer than burnguard's shutdown grace before it kills the pod.

mod common;

use serde_json::Value;

fn documents(file: &str) -> Vec<Value> {
    let text =
        std::fs::read_to_string(common::repo_root().join("deploy/kubernetes").join(file)).unwrap();
    serde_saphyr::from_multiple::<Value>(&text).unwrap_or_else(|e| panic!("{file}: {e}"))
}

fn find<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind}"))
}

#[test]
fn rbac_grants_exactly_the_verbs_burnguard_uses() {
    let docs = documents("rbac.yaml");
    let role = find(&docs, "ClusterRole");
    let mut grants: Vec<(String, String)> = Vec::new();
    for rule in role["rules"].as_array().unwrap() {
        assert_eq!(rule["apiGroups"], serde_json::json!(["apps"]));
        for resource in rule["resources"].as_array().unwrap() {
            for verb in rule["verbs"].as_array().unwrap() {
                grants.push((
                    resource.as_str().unwrap().into(),
                    verb.as_str().unwrap().into(),
                ));
            }
        }
    }
    grants.sort();
    // freeze/unfreeze: patch deployments (+ list for selectors); rollback: get deployment,
    // list replicasets, patch deployment; scale: patch deployments/scale.
    let expected = [
        ("deployments", "get"),
        ("deployments", "list"),
        ("deployments", "patch"),
        ("deployments/scale", "patch"),
        ("replicasets", "list"),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(r, v)| (r.to_string(), v.to_string()))
        .collect();
    assert_eq!(grants, expected);
    let binding = find(&docs, "ClusterRoleBinding");
    assert_eq!(binding["subjects"][0]["name"], "burnguard");
    assert_eq!(binding["subjects"][0]["namespace"], "burnguard");
}

#[test]
fn the_webhook_reaches_the_admission_route_for_deployment_updates() {
    let docs = documents("admission-webhook.yaml");
    let hook = &find(&docs, "ValidatingWebhookConfiguration")["webhooks"][0];
    assert_eq!(
        hook["clientConfig"]["service"]["path"],
        "/admission/validate"
    );
    assert_eq!(hook["admissionReviewVersions"], serde_json::json!(["v1"]));
    assert_eq!(
        hook["rules"][0]["operations"],
        serde_json::json!(["UPDATE"])
    );
    assert_eq!(
        hook["rules"][0]["resources"],
        serde_json::json!(["deployments"])
    );
    assert_eq!(hook["sideEffects"], "None");
}

#[test]
fn the_service_account_matches_what_the_webhook_lets_through() {
    let docs = documents("burnguard.yaml");
    let deployment = find(&docs, "Deployment");
    let spec = &deployment["spec"]["template"]["spec"];
    assert_eq!(spec["serviceAccountName"], "burnguard");
    let env = spec["containers"][0]["env"].as_array().unwrap();
    let account = env
        .iter()
        .find(|e| e["name"] == "BURNGUARD_SERVICE_ACCOUNT")
        .unwrap();
    assert_eq!(account["value"], burnguard::config::DEFAULT_SERVICE_ACCOUNT);
    // The container's arguments are ones `serve` accepts.
    let args: Vec<String> = spec["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    let (ok, out) = common::run(
        std::process::Command::new(env!("CARGO_BIN_EXE_burnguard"))
            .args(&args)
            .arg("--help"),
    );
    assert!(ok, "{out}");
}

#[test]
fn kubernetes_waits_longer_than_the_shutdown_grace_before_killing_the_pod() {
    let docs = documents("burnguard.yaml");
    let spec = &find(&docs, "Deployment")["spec"]["template"]["spec"];
    // The container keeps the default grace (30s); one set here would be the one to beat.
    let container = spec["containers"][0].to_string();
    assert!(
        !container.contains("--shutdown-grace") && !container.contains("BURNGUARD_SHUTDOWN_GRACE"),
        "the container sets its own shutdown grace; compare with that: {container}"
    );
    let grace = burnguard::engine::remediate::RemediationSettings::default().shutdown_grace;
    let termination = spec["terminationGracePeriodSeconds"]
        .as_u64()
        .expect("terminationGracePeriodSeconds is set (the Kubernetes default is 30s)");
    assert!(
        termination > grace.as_secs(),
        "terminationGracePeriodSeconds {termination} must be above the shutdown grace of {grace:?}, \
         or a step still running at SIGTERM is killed before it is journaled"
    );
}
