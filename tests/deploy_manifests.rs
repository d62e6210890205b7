//! What `deploy/` ships must say what the code does, and must be accepted by the tools that
//! will read it:
//! - RBAC grants exactly the verbs the Kubernetes steps use (checked against the requests
//!   `tests/kube_actions.rs` verifies); the admission webhook points at the route burnguard
//!   serves, only over TLS, failing closed but scoped so that an outage of burnguard pauses only
//!   rollouts in application namespaces; Kubernetes waits longer than the shutdown grace;
//! - the kustomize base and the PostgreSQL overlay render with a current `kubectl kustomize`,
//!   and every rendered object validates offline: Kubernetes objects against the Kubernetes
//!   OpenAPI schemas of 1.30 and 1.37 (`kubernetes-validate --strict`, unknown fields refused),
//!   cert-manager and Prometheus Operator objects against their CRD schemas (validators
//!   compiled from the CRDs by @kubernetes-models); the tools live in `.tools/manifests`, put
//!   there by `scripts/install-manifest-tools` (scripts/test runs it);
//! - what is generated from `policies/` (the policies ConfigMap, the PrometheusRule) is current;
//! - the Prometheus scrape job passes `promtool check config` and the Alertmanager receiver
//!   `amtool check-config`, and both reach a real burnguard over TLS from a real Prometheus and
//!   a real Alertmanager;
//! - the Dockerfile builds the locked release binary from a build context that has what the
//!   build reads, onto a non-root distroless image.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------
// Reading the manifests.

fn parse_documents(what: &str, text: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(text)
        .unwrap_or_else(|e| panic!("{what}: {e}"))
        .into_iter()
        .filter(|d| !d.is_null())
        .collect()
}

fn documents(file: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(
        common::repo_root()
            .join("deploy/kubernetes/base")
            .join(file),
    )
    .unwrap();
    parse_documents(file, &text)
}

fn find<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind}"))
}

/// Every object of the base, read from the files its kustomization lists (no tool needed).
fn all_documents() -> Vec<Value> {
    let kustomization = &documents("kustomization.yaml")[0];
    strings(&kustomization["resources"])
        .iter()
        // `../crds` is a kustomization of its own, checked by the CRD tests.
        .filter(|file| file.ends_with(".yaml"))
        .flat_map(|file| documents(file))
        .collect()
}

fn named<'a>(docs: &'a [Value], kind: &str, namespace: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| {
            d["kind"] == kind
                && d["metadata"]["name"] == name
                && d["metadata"]["namespace"] == namespace
        })
        .unwrap_or_else(|| panic!("no {kind} {namespace}/{name}"))
}

fn strings(value: &Value) -> Vec<&str> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {value}"))
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The manifest tools: kubectl and kubernetes-validate (PyPI), the CRD validators (npm).

fn tools_dir() -> PathBuf {
    common::repo_root().join(".tools/manifests")
}

/// A tool under `.tools/manifests`; a missing one fails the test with how to install it.
fn manifest_tool(relative: &str) -> PathBuf {
    let path = tools_dir().join(relative);
    assert!(
        path.exists(),
        "{} is missing: run scripts/test (or scripts/install-manifest-tools), which installs \
         kubectl, kubernetes-validate and the cert-manager and Prometheus Operator CRD \
         validators into .tools/manifests",
        path.display()
    );
    path
}

/// `kubectl kustomize` of a directory under `deploy/kubernetes`: the objects as applied.
fn render(dir: &str) -> Vec<Value> {
    let path = common::repo_root().join("deploy/kubernetes").join(dir);
    let output = Command::new(manifest_tool("venv/bin/kubectl"))
        .arg("kustomize")
        .arg(&path)
        .output()
        .expect("kubectl runs");
    assert!(
        output.status.success(),
        "kubectl kustomize {} failed:\n{}",
        path.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    parse_documents(
        &format!("kubectl kustomize {dir}"),
        &String::from_utf8(output.stdout).unwrap(),
    )
}

/// Groups whose objects are checked against CRD schemas instead of Kubernetes's own.
const CRD_GROUPS: [&str; 2] = ["cert-manager.io", "monitoring.coreos.com"];

fn is_custom(object: &Value) -> bool {
    let api_version = object["apiVersion"].as_str().unwrap();
    CRD_GROUPS
        .iter()
        .any(|group| api_version.starts_with(&format!("{group}/")))
}

fn describe(object: &Value) -> String {
    format!(
        "{} {}/{}",
        object["kind"].as_str().unwrap_or("?"),
        object["metadata"]["namespace"].as_str().unwrap_or(""),
        object["metadata"]["name"].as_str().unwrap_or("?")
    )
}

/// Kubernetes versions every built-in object must validate against: 1.30 (matchConditions GA)
/// and the newest the validator knows.
const KUBERNETES_VERSIONS: [&str; 2] = ["1.30.0", "1.37.0"];

/// `kubernetes-validate --strict` over built-in objects: (all passed, output).
fn validate_builtin(objects: &[&Value], version: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let text: Vec<String> = objects.iter().map(|o| o.to_string()).collect();
    let file = common::write(dir.path(), "objects.yaml", &text.join("\n---\n"));
    let output = Command::new(manifest_tool("venv/bin/kubernetes-validate"))
        .args(["--strict", "--kubernetes-version", version])
        .arg(&file)
        .output()
        .expect("kubernetes-validate runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let passed = text.matches(" passed for resource ").count();
    // A kind without a schema is only a warning to the tool: here it is a failure.
    let all = output.status.success()
        && passed == objects.len()
        && !text.contains("WARN")
        && !text.contains("ERROR");
    (all, text)
}

/// The CRD validators over cert-manager and Prometheus Operator objects: (all valid, output).
fn validate_custom(objects: &[&Value]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = common::write(
        dir.path(),
        "objects.json",
        &Value::Array(objects.iter().map(|o| (*o).clone()).collect()).to_string(),
    );
    let script = common::repo_root().join("scripts/manifest-tools/validate-custom-resources.mjs");
    let (ok, text) = common::run(
        Command::new("node")
            .arg(script)
            .arg(manifest_tool("node_modules"))
            .arg(&file),
    );
    let valid = text.lines().filter(|l| l.starts_with("valid: ")).count();
    (ok && valid == objects.len(), text)
}

/// Renders `dir` and validates every object it makes; returns the objects.
fn render_and_validate(dir: &str) -> Vec<Value> {
    let objects = render(dir);
    let (custom, builtin): (Vec<&Value>, Vec<&Value>) = objects.iter().partition(|o| is_custom(o));
    for version in KUBERNETES_VERSIONS {
        let (ok, out) = validate_builtin(&builtin, version);
        assert!(
            ok,
            "{dir}: not every Kubernetes object validates against {version}:\n{out}"
        );
    }
    let (ok, out) = validate_custom(&custom);
    assert!(
        ok,
        "{dir}: not every cert-manager / Prometheus Operator object validates against its CRD:\n{out}"
    );
    objects
}

fn kinds(objects: &[Value]) -> BTreeSet<String> {
    objects
        .iter()
        .map(|o| o["kind"].as_str().unwrap().to_string())
        .collect()
}

fn deployment(objects: &[Value]) -> &Value {
    named(objects, "Deployment", "burnguard", "burnguard")
}

fn container(objects: &[Value]) -> &Value {
    &deployment(objects)["spec"]["template"]["spec"]["containers"][0]
}

fn env<'a>(container: &'a Value, name: &str) -> Option<&'a Value> {
    container["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
}

/// The volume mounted at the longest mount path that holds `path`, with its mount.
fn volume_holding<'a>(objects: &'a [Value], path: &str) -> Option<(&'a Value, &'a Value)> {
    let spec = &deployment(objects)["spec"]["template"]["spec"];
    let mount = spec["containers"][0]["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| {
            let dir = m["mountPath"].as_str().unwrap();
            path == dir || path.starts_with(&format!("{}/", dir.trim_end_matches('/')))
        })
        .max_by_key(|m| m["mountPath"].as_str().unwrap().len())?;
    let volume = spec["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == mount["name"])
        .expect("every mount has its volume");
    Some((volume, mount))
}

/// `burnguard serve --help`: the flags and the `BURNGUARD_*` variables serve reads.
fn serve_help() -> String {
    let (ok, out) = common::run(
        Command::new(env!("CARGO_BIN_EXE_burnguard"))
            .arg("serve")
            .arg("--help"),
    );
    assert!(ok, "{out}");
    out
}

// ---------------------------------------------------------------------------------------------
// RBAC and the admission webhook (the source files, no tool needed).

/// Every grant of the ClusterRole, and why burnguard needs it. The kube tests check each
/// request burnguard makes against the shipped rules (`common::kube::assert_rbac_allows`), so a
/// call the rules lack fails there; this table makes a grant nobody needs fail here.
const GRANTS: [(&str, &str, &str, &str); 16] = [
    (
        "apps",
        "deployments",
        "get",
        "rollback reads the Deployment",
    ),
    ("apps", "deployments", "list", "a freeze's label selector"),
    (
        "apps",
        "deployments",
        "patch",
        "freeze marks (apply) and the rollback's template (JSON patch)",
    ),
    ("apps", "deployments/scale", "patch", "scale steps"),
    (
        "apps",
        "replicasets",
        "list",
        "rollback finds the Deployment's earlier templates",
    ),
    (
        "events.k8s.io",
        "events",
        "create",
        "Events on Deployments and on burnguard's objects",
    ),
    (
        "events.k8s.io",
        "events",
        "patch",
        "a repeated Event is counted on the first (a series)",
    ),
    (
        "burnguard.dev",
        "servicelevelobjectives",
        "list",
        "the controller's initial list",
    ),
    (
        "burnguard.dev",
        "servicelevelobjectives",
        "watch",
        "the controller's watch",
    ),
    (
        "burnguard.dev",
        "servicelevelobjectives",
        "patch",
        "adding and removing the finalizer",
    ),
    (
        "burnguard.dev",
        "playbooks",
        "list",
        "the controller's initial list",
    ),
    (
        "burnguard.dev",
        "playbooks",
        "watch",
        "the controller's watch",
    ),
    (
        "burnguard.dev",
        "servicelevelobjectives/status",
        "patch",
        "status by server-side apply",
    ),
    (
        "burnguard.dev",
        "playbooks/status",
        "patch",
        "status by server-side apply",
    ),
    (
        "monitoring.coreos.com",
        "prometheusrules",
        "create",
        "an apply that creates an SLO's PrometheusRule",
    ),
    (
        "monitoring.coreos.com",
        "prometheusrules",
        "patch",
        "applying an SLO's PrometheusRule",
    ),
];

#[test]
fn rbac_grants_exactly_the_verbs_burnguard_uses() {
    let docs = documents("rbac.yaml");
    // Read the way the kube tests read it when they check each request.
    let grants = common::kube::granted().clone();
    let expected: BTreeSet<(String, String, String)> = GRANTS
        .iter()
        .map(|(g, r, v, _why)| (g.to_string(), r.to_string(), v.to_string()))
        .collect();
    assert_eq!(grants, expected);
    let binding = find(&docs, "ClusterRoleBinding");
    assert_eq!(binding["subjects"][0]["name"], "burnguard");
    assert_eq!(binding["subjects"][0]["namespace"], "burnguard");
}

// ---------------------------------------------------------------------------------------------
// The CRDs and the example objects.

#[test]
fn the_committed_crds_are_what_burnguard_crds_prints() {
    let (ok, printed) = common::run(Command::new(env!("CARGO_BIN_EXE_burnguard")).arg("crds"));
    assert!(ok, "{printed}");
    let committed = std::fs::read_to_string(
        common::repo_root().join("deploy/kubernetes/crds/burnguard.dev.yaml"),
    )
    .unwrap();
    assert!(
        printed == committed,
        "deploy/kubernetes/crds/burnguard.dev.yaml is stale: run `burnguard crds -o deploy/kubernetes/crds/burnguard.dev.yaml`"
    );
}

/// `scripts/manifest-tools/validate-crd-objects.py`: the errors for each object of `file`.
fn crd_errors(file: &Path) -> Vec<(String, Vec<String>)> {
    let (ok, out) = common::run(
        Command::new(manifest_tool("venv/bin/python"))
            .arg(common::repo_root().join("scripts/manifest-tools/validate-crd-objects.py"))
            .arg(common::repo_root().join("deploy/kubernetes/crds/burnguard.dev.yaml"))
            .arg(file),
    );
    assert!(ok, "{out}");
    out.lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                format!(
                    "{} {}",
                    v["kind"].as_str().unwrap(),
                    v["name"].as_str().unwrap()
                ),
                v["errors"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e.as_str().unwrap().to_string())
                    .collect(),
            )
        })
        .collect()
}

#[test]
fn the_example_objects_pass_the_crd_schemas_and_burnguards_own_validation() {
    let examples = common::repo_root().join("deploy/kubernetes/examples/checkout.yaml");
    let found = crd_errors(&examples);
    assert_eq!(
        found,
        vec![
            (
                "ServiceLevelObjective checkout-availability".to_string(),
                vec![]
            ),
            ("ServiceLevelObjective checkout-monthly".to_string(), vec![]),
            ("Playbook checkout-degrade".to_string(), vec![]),
        ]
    );
    // The same file is a policy file: `burnguard validate` reads it as it is.
    let (ok, out) = common::run(
        Command::new(env!("CARGO_BIN_EXE_burnguard"))
            .arg("validate")
            .arg(&examples),
    );
    assert!(ok, "{out}");
    assert!(out.contains("2 SLO(s) and 1 playbook(s) valid"), "{out}");
}

#[test]
fn the_crd_schemas_refuse_what_the_api_server_can_check_with_the_field_named() {
    let dir = tempfile::tempdir().unwrap();
    let bad = common::write(
        dir.path(),
        "bad.yaml",
        r#"apiVersion: burnguard.dev/v1
kind: ServiceLevelObjective
metadata: {name: bad-slo}
spec:
  objective: 100
  window: 30 days
  indicator:
    ratio: {errors: a, good: b, total: c}
    raw: {errorRatio: x}
  budgetPolicy:
    - when: {alert: page, budgetRemainingBelow: 10}
      run: x
      freeze: {namespace: shop}
---
apiVersion: burnguard.dev/v1
kind: ServiceLevelObjective
metadata: {name: bad-calendar}
spec:
  service: shop
  objective: 99.9
  window: {calendar: fortnight, timeZone: Europe/Berlin}
  indicator: {raw: {errorRatio: x}}
---
apiVersion: burnguard.dev/v1
kind: Playbook
metadata: {name: bad-book}
spec:
  mode: yolo
  cooldown: half an hour
  steps:
    - name: two actions
      rollback: {namespace: a, deployment: b}
      scale: {namespace: a, deployment: b, replicas: 2}
    - rollback: {namespace: a, deployment: b}
"#,
    );
    let found = crd_errors(&bad);
    let expect = |object: &str, wanted: &[&str]| {
        let errors = &found.iter().find(|(o, _)| o == object).unwrap().1;
        for w in wanted {
            assert!(
                errors.iter().any(|e| e.contains(w)),
                "{object}: no error with {w:?} in {errors:#?}"
            );
        }
        assert_eq!(errors.len(), wanted.len(), "{object}: {errors:#?}");
    };
    expect(
        "ServiceLevelObjective bad-slo",
        &[
            "spec.objective: 100 is greater than or equal to the maximum of 100",
            ".spec.window: give a duration such as 30d, or {calendar: week | month, timeZone: <IANA zone>}",
            "'service' is a required property",
            ".spec.indicator: give exactly one of ratio, latency or raw",
            ".spec.indicator.ratio: give errors or good, not both",
            ".spec.budgetPolicy[0]: give run or freeze, not both",
            ".spec.budgetPolicy[0].when: give exactly one of alert, budgetRemainingBelow or burnRateAbove",
        ],
    );
    expect(
        "ServiceLevelObjective bad-calendar",
        &[".spec.window: give a duration such as 30d, or {calendar: week | month"],
    );
    expect(
        "Playbook bad-book",
        &[
            "spec.mode: 'yolo' is not one of",
            "spec.cooldown: 'half an hour' does not match",
            "'name' is a required property",
            ".spec.steps[0]: give exactly one of http, rollback, scale, freeze or verify",
        ],
    );
}

#[test]
fn the_prometheus_rule_the_controller_applies_validates_against_the_operators_crd() {
    let text = std::fs::read_to_string(
        common::repo_root().join("deploy/kubernetes/examples/checkout.yaml"),
    )
    .unwrap();
    let (slos, _, problems) = burnguard::policies::parse_policies("checkout.yaml", &text);
    assert!(problems.is_empty(), "{problems:?}");
    // A rolling SLO's and a calendar SLO's.
    assert_eq!(slos.len(), 2);
    let rules: Vec<serde_json::Value> = slos
        .iter()
        .map(|loaded| {
            burnguard::domain::cluster::prometheus_rule(
                &loaded.slo,
                "shop",
                &burnguard::domain::cluster::Owner {
                    name: loaded.slo.name.clone(),
                    uid: "0b6f0c2e-6a55-4d1e-9d3e-2f5c9f7b1a10".into(),
                },
            )
        })
        .collect();
    let (ok, out) = validate_custom(&rules.iter().collect::<Vec<_>>());
    assert!(ok, "{out}");
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

#[test]
fn the_webhook_fails_closed_but_only_for_rollouts_outside_system_namespaces_and_burnguards_own() {
    let docs = all_documents();
    let hook = &find(&docs, "ValidatingWebhookConfiguration")["webhooks"][0];
    assert_eq!(hook["failurePolicy"], "Fail");
    assert_eq!(hook["sideEffects"], "None");
    let timeout = hook["timeoutSeconds"]
        .as_u64()
        .expect("timeoutSeconds is set");
    assert!(
        (1..=5).contains(&timeout),
        "a short timeout (the API server's default is 10 s): {timeout}"
    );
    // Exactly Deployment updates: no wildcard, no subresource (scale), no other operation.
    let rules = hook["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 1);
    assert_eq!(strings(&rules[0]["apiGroups"]), ["apps"]);
    assert_eq!(strings(&rules[0]["apiVersions"]), ["v1"]);
    assert_eq!(strings(&rules[0]["operations"]), ["UPDATE"]);
    assert_eq!(strings(&rules[0]["resources"]), ["deployments"]);

    let own_namespace = find(&docs, "Deployment")["metadata"]["namespace"]
        .as_str()
        .unwrap();
    let selector = &hook["namespaceSelector"];
    assert!(selector.get("matchLabels").is_none(), "{selector}");
    let expressions = selector["matchExpressions"].as_array().unwrap();
    assert_eq!(expressions.len(), 1, "{selector}");
    assert_eq!(expressions[0]["key"], "kubernetes.io/metadata.name");
    assert_eq!(expressions[0]["operator"], "NotIn");
    let excluded = strings(&expressions[0]["values"]);
    for namespace in [
        "kube-system",
        "kube-public",
        "kube-node-lease",
        own_namespace,
    ] {
        assert!(
            excluded.contains(&namespace),
            "{namespace} must be excluded"
        );
    }

    // Only pod-template changes by others than burnguard reach it: what the route can deny.
    let conditions: Vec<&str> = hook["matchConditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["expression"].as_str().unwrap())
        .collect();
    assert!(
        conditions.contains(&"object.spec.template != oldObject.spec.template"),
        "{conditions:?}"
    );
    let not_us = format!(
        "request.userInfo.username != '{}'",
        burnguard::config::DEFAULT_SERVICE_ACCOUNT
    );
    assert!(conditions.contains(&not_us.as_str()), "{conditions:?}");
}

#[test]
fn the_admission_route_is_reachable_only_over_tls_with_a_certificate_cert_manager_renews() {
    let docs = all_documents();
    let webhook = find(&docs, "ValidatingWebhookConfiguration");
    let target = &webhook["webhooks"][0]["clientConfig"]["service"];
    let (namespace, name) = (
        target["namespace"].as_str().unwrap(),
        target["name"].as_str().unwrap(),
    );
    let service = named(&docs, "Service", namespace, name);
    assert_eq!(
        service["spec"]["publishNotReadyAddresses"], true,
        "/readyz is 503 while Prometheus is down; admission must still be reached"
    );
    let port = service["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["port"] == target["port"])
        .expect("the Service has the port the webhook calls");

    let deployment = find(&docs, "Deployment");
    let labels = &deployment["spec"]["template"]["metadata"]["labels"];
    for (key, value) in service["spec"]["selector"].as_object().unwrap() {
        assert_eq!(&labels[key], value, "the Service selects burnguard's pods");
    }
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let container_port = container["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == port["targetPort"])
        .expect("the target port is a named container port")["containerPort"]
        .as_u64()
        .unwrap();

    // `serve` has one listener; with --tls-cert/--tls-key it speaks TLS only.
    let args = strings(&container["args"]);
    let flag = |name: &str| {
        let at = args.iter().position(|a| *a == name);
        at.map(|i| args[i + 1])
            .unwrap_or_else(|| panic!("{name} missing"))
    };
    assert!(flag("--listen").ends_with(&format!(":{container_port}")));
    let (cert, key) = (flag("--tls-cert"), flag("--tls-key"));
    for probe in ["readinessProbe", "livenessProbe", "startupProbe"] {
        assert_eq!(container[probe]["httpGet"]["scheme"], "HTTPS", "{probe}");
    }
    for other in docs.iter().filter(|d| d["kind"] == "Service") {
        for p in other["spec"]["ports"].as_array().unwrap() {
            assert_eq!(p["targetPort"], port["targetPort"], "no plain-text port");
        }
    }

    // The files are the secret of the Certificate whose CA the API server trusts.
    let inject = webhook["metadata"]["annotations"]["cert-manager.io/inject-ca-from"]
        .as_str()
        .unwrap();
    let (cert_namespace, cert_name) = inject.split_once('/').unwrap();
    let certificate = named(&docs, "Certificate", cert_namespace, cert_name);
    let dns = strings(&certificate["spec"]["dnsNames"]);
    assert!(
        dns.contains(&format!("{name}.{namespace}.svc").as_str()),
        "{dns:?}"
    );
    let mount = container["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| {
            let dir = m["mountPath"].as_str().unwrap();
            cert.starts_with(dir) && key.starts_with(dir)
        })
        .expect("the certificate and key are mounted");
    let volume = deployment["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == mount["name"])
        .unwrap();
    assert_eq!(
        volume["secret"]["secretName"],
        certificate["spec"]["secretName"]
    );
    // Issued by a CA (not self-signed), so renewing it leaves the caBundle as it is.
    let issuer = named(
        &docs,
        "Issuer",
        cert_namespace,
        certificate["spec"]["issuerRef"]["name"].as_str().unwrap(),
    );
    assert!(issuer["spec"]["ca"].is_object(), "{issuer}");
}

// ---------------------------------------------------------------------------------------------
// The kustomize base and the PostgreSQL overlay, rendered and validated.

#[test]
fn the_base_renders_and_every_object_validates_against_its_kubernetes_or_crd_schema() {
    let objects = render_and_validate(".");
    let expected: BTreeSet<String> = [
        "CustomResourceDefinition",
        "Namespace",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "ConfigMap",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "ValidatingWebhookConfiguration",
        "Issuer",
        "Certificate",
        "ServiceMonitor",
        "PrometheusRule",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(kinds(&objects), expected);
    // Everything but the cluster-scoped objects lives in burnguard's namespace.
    for object in &objects {
        let cluster_scoped = [
            "CustomResourceDefinition",
            "Namespace",
            "ClusterRole",
            "ClusterRoleBinding",
            "ValidatingWebhookConfiguration",
        ]
        .contains(&object["kind"].as_str().unwrap());
        let namespace = &object["metadata"]["namespace"];
        if cluster_scoped {
            assert!(namespace.is_null(), "{}", describe(object));
        } else {
            assert_eq!(namespace, "burnguard", "{}", describe(object));
        }
    }
}

#[test]
fn the_postgres_overlay_renders_and_every_object_validates_against_its_kubernetes_or_crd_schema() {
    let base = render(".");
    let objects = render_and_validate("overlays/postgres");
    // The same objects as the base, changed where the overlay says so.
    let names = |objects: &[Value]| -> Vec<String> {
        let mut names: Vec<String> = objects.iter().map(describe).collect();
        names.sort();
        names
    };
    assert_eq!(names(&objects), names(&base));
}

#[test]
fn the_validators_reject_a_broken_object_so_a_pass_means_something() {
    let objects = render(".");
    // An unknown field in the pod template (the strict schemas refuse it).
    let mut deployment = deployment(&objects).clone();
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesytem"] =
        json!(true);
    for version in KUBERNETES_VERSIONS {
        let (ok, out) = validate_builtin(&[&deployment], version);
        assert!(!ok, "a misspelt field passed against {version}:\n{out}");
        assert!(out.contains("readOnlyRootFilesytem"), "{out}");
    }
    // A kind without a schema is not a pass either.
    let unknown =
        json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}});
    let (ok, out) = validate_builtin(&[&unknown], "1.37.0");
    assert!(!ok, "{out}");
    // A Certificate with a key algorithm cert-manager does not have, a ServiceMonitor with a
    // scheme the operator does not know, a PrometheusRule group without a name.
    let mut certificate = named(&objects, "Certificate", "burnguard", "burnguard-webhook").clone();
    certificate["spec"]["privateKey"]["algorithm"] = json!("DSA");
    let mut monitor = find(&objects, "ServiceMonitor").clone();
    monitor["spec"]["endpoints"][0]["scheme"] = json!("httpz");
    let mut rule = find(&objects, "PrometheusRule").clone();
    rule["spec"]["groups"][0]
        .as_object_mut()
        .unwrap()
        .remove("name");
    for (object, says) in [
        (&certificate, "privateKey/algorithm"),
        (&monitor, "endpoints/0/scheme"),
        (&rule, "required property name"),
    ] {
        let (ok, out) = validate_custom(&[object]);
        assert!(!ok, "a broken {} passed:\n{out}", describe(object));
        assert!(out.contains(says), "{out}");
    }
    let (ok, out) = validate_custom(&[&unknown]);
    assert!(!ok && out.contains("no schema"), "{out}");
}

#[test]
fn the_base_pod_is_non_root_on_a_read_only_root_with_no_capabilities_probes_and_resources() {
    let objects = render(".");
    let spec = &deployment(&objects)["spec"]["template"]["spec"];
    let pod = &spec["securityContext"];
    assert_eq!(pod["runAsNonRoot"], true);
    assert_ne!(pod["runAsUser"], 0);
    assert_eq!(pod["seccompProfile"]["type"], "RuntimeDefault");
    let container = container(&objects);
    let security = &container["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(strings(&security["capabilities"]["drop"]), ["ALL"]);
    assert!(security["capabilities"].get("add").is_none());
    assert!(security.get("privileged").is_none_or(|p| p == false));
    // The namespace enforces the restricted Pod Security Standard the pod meets.
    let namespace = find(&objects, "Namespace");
    assert_eq!(
        namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "restricted"
    );

    // Probes on the routes serve has: alive while the process runs, ready once it evaluates.
    for (probe, path) in [
        ("startupProbe", "/healthz"),
        ("livenessProbe", "/healthz"),
        ("readinessProbe", "/readyz"),
    ] {
        assert_eq!(container[probe]["httpGet"]["path"], path, "{probe}");
        assert_eq!(container[probe]["httpGet"]["port"], "https", "{probe}");
    }
    let resources = &container["resources"];
    for what in ["cpu", "memory"] {
        assert!(resources["requests"][what].is_string(), "requests.{what}");
    }
    assert!(resources["limits"]["memory"].is_string(), "limits.memory");

    // With the root read-only, the SQLite database and /tmp are on emptyDirs.
    let db = env(container, "BURNGUARD_DB").expect("BURNGUARD_DB")["value"]
        .as_str()
        .unwrap();
    let file = db
        .strip_prefix("sqlite://")
        .expect("the base runs on SQLite");
    for path in [file, "/tmp/x"] {
        let (volume, mount) =
            volume_holding(&objects, path).unwrap_or_else(|| panic!("{path} is not on a volume"));
        assert!(volume["emptyDir"].is_object(), "{path}: {volume}");
        assert!(mount.get("readOnly").is_none_or(|r| r == false));
    }
    // One pod at a time: two pods on two SQLite files would both act.
    assert_eq!(deployment(&objects)["spec"]["replicas"], 1);
    assert_eq!(deployment(&objects)["spec"]["strategy"]["type"], "Recreate");
    // A drain is not blocked by a lone replica.
    let budget = find(&objects, "PodDisruptionBudget");
    assert_eq!(budget["spec"]["maxUnavailable"], 1);
    for (key, value) in budget["spec"]["selector"]["matchLabels"]
        .as_object()
        .unwrap()
    {
        assert_eq!(
            &deployment(&objects)["spec"]["template"]["metadata"]["labels"][key],
            value
        );
    }
}

/// `(secret, key, optional)` of every Secret the pod reads, from env and volumes.
fn secret_references(objects: &[Value]) -> BTreeSet<(String, String, bool)> {
    let spec = &deployment(objects)["spec"]["template"]["spec"];
    let container = &spec["containers"][0];
    let mut refs = BTreeSet::new();
    for entry in container["env"].as_array().unwrap() {
        if let Some(r) = entry["valueFrom"].get("secretKeyRef") {
            refs.insert((
                r["name"].as_str().unwrap().to_string(),
                r["key"].as_str().unwrap().to_string(),
                r["optional"] == true,
            ));
        }
    }
    for volume in spec["volumes"].as_array().unwrap() {
        let Some(secret) = volume.get("secret") else {
            continue;
        };
        let name = secret["secretName"].as_str().unwrap();
        if name == "burnguard-webhook-tls" {
            continue; // cert-manager's, not the operator's to make
        }
        for item in secret["items"]
            .as_array()
            .expect("secret volumes list their keys")
        {
            refs.insert((
                name.to_string(),
                item["key"].as_str().unwrap().to_string(),
                secret["optional"] == true,
            ));
        }
    }
    refs
}

#[test]
fn secrets_are_referenced_never_written_and_every_variable_is_one_serve_reads() {
    let help = serve_help();
    let readme = std::fs::read_to_string(common::repo_root().join("README.md")).unwrap();
    for dir in [".", "overlays/postgres"] {
        let objects = render(dir);
        assert!(
            !kinds(&objects).contains("Secret"),
            "{dir}: a Secret's values are never in the manifests"
        );
        let container = container(&objects);
        for entry in container["env"].as_array().unwrap() {
            let name = entry["name"].as_str().unwrap();
            if name.starts_with("BURNGUARD_") {
                assert!(
                    help.contains(&format!("[env: {name}="))
                        || help.contains(&format!("[env: {name}]")),
                    "{dir}: serve does not read {name}:\n{help}"
                );
            }
            let secret = ["TOKEN", "SECRET", "KEY", "PASSWORD"]
                .iter()
                .any(|word| name.contains(word) && !name.ends_with("_FILE"))
                || (name == "BURNGUARD_DB" && dir != ".");
            if secret {
                assert!(
                    entry.get("value").is_none() && entry["valueFrom"]["secretKeyRef"].is_object(),
                    "{dir}: {name} must come from a Secret: {entry}"
                );
            }
        }
        // The API tokens are a file from the Secret, not a variable.
        let file =
            env(container, "BURNGUARD_API_TOKEN_FILE").expect("BURNGUARD_API_TOKEN_FILE")["value"]
                .as_str()
                .unwrap();
        let (volume, mount) = volume_holding(&objects, file).expect("the token file is mounted");
        assert_eq!(volume["secret"]["secretName"], "burnguard", "{volume}");
        assert_eq!(mount["readOnly"], true);
        let key = file.strip_prefix(&format!("{}/", mount["mountPath"].as_str().unwrap()));
        assert!(
            volume["secret"]["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|i| Some(i["path"].as_str().unwrap()) == key),
            "{volume}"
        );
        // What an operator must create is in the README's Deploy section.
        for (secret, key, _) in secret_references(&objects) {
            assert!(
                readme.contains(&format!("`{key}`")),
                "{dir}: the README does not tell to put `{key}` into the Secret {secret}"
            );
        }
    }
    // The alertmanager token is required: without it the webhook would take anyone's alerts.
    let required: BTreeSet<(String, String)> = secret_references(&render("."))
        .into_iter()
        .filter(|(_, _, optional)| !optional)
        .map(|(s, k, _)| (s, k))
        .collect();
    assert!(required.contains(&("burnguard".into(), "alertmanager-token".into())));
    assert!(required.contains(&("burnguard".into(), "api-tokens".into())));
}

#[test]
fn the_postgres_overlay_runs_two_named_replicas_on_a_shared_database_kept_apart_and_one_available()
{
    let objects = render("overlays/postgres");
    let deployment = deployment(&objects);
    let spec = &deployment["spec"];
    assert_eq!(spec["replicas"], 2);
    let container = container(&objects);
    let db = env(container, "BURNGUARD_DB").expect("BURNGUARD_DB");
    assert!(db.get("value").is_none(), "{db}");
    assert_eq!(db["valueFrom"]["secretKeyRef"]["name"], "burnguard");
    assert_eq!(db["valueFrom"]["secretKeyRef"]["key"], "database-url");
    assert!(
        db["valueFrom"]["secretKeyRef"]
            .get("optional")
            .is_none_or(|o| o == false)
    );
    // Each replica is its own instance: the pod name, through the downward API.
    let instance = env(container, "BURNGUARD_INSTANCE_NAME").expect("BURNGUARD_INSTANCE_NAME");
    assert_eq!(
        instance["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.name"
    );
    // No SQLite file left behind.
    assert!(
        spec["template"]["spec"]["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v["name"] != "data"),
        "{}",
        spec["template"]["spec"]["volumes"]
    );
    // Never two on one node; a rollout replaces one at a time without a surge pod that the
    // anti-affinity could leave unschedulable.
    let pod_labels = &spec["template"]["metadata"]["labels"];
    let terms = spec["template"]["spec"]["affinity"]["podAntiAffinity"]
        ["requiredDuringSchedulingIgnoredDuringExecution"]
        .as_array()
        .expect("required pod anti-affinity");
    assert_eq!(terms[0]["topologyKey"], "kubernetes.io/hostname");
    for (key, value) in terms[0]["labelSelector"]["matchLabels"]
        .as_object()
        .unwrap()
    {
        assert_eq!(&pod_labels[key], value);
    }
    assert_eq!(spec["strategy"]["type"], "RollingUpdate");
    assert_eq!(spec["strategy"]["rollingUpdate"]["maxSurge"], 0);
    assert_eq!(spec["strategy"]["rollingUpdate"]["maxUnavailable"], 1);
    // A drain keeps one replica answering the admission webhook.
    let budget = find(&objects, "PodDisruptionBudget");
    assert_eq!(budget["spec"]["minAvailable"], 1);
    assert!(budget["spec"].get("maxUnavailable").is_none(), "{budget}");
    // And the rest of the pod is the base's, hardening included.
    let base = render(".");
    assert_eq!(
        container["securityContext"],
        self::container(&base)["securityContext"]
    );
    assert_eq!(container["args"], self::container(&base)["args"]);
}

// ---------------------------------------------------------------------------------------------
// Generated from policies/: the ConfigMap and the PrometheusRule.

#[test]
fn the_policies_config_map_holds_the_example_policies_where_serve_reads_them() {
    let objects = render(".");
    let config_map = named(&objects, "ConfigMap", "burnguard", "burnguard-policies");
    let data = config_map["data"].as_object().unwrap();
    let root = common::repo_root();
    let mut expected = BTreeMap::new();
    for entry in std::fs::read_dir(root.join("policies")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            let name = path.file_name().unwrap().to_str().unwrap().to_string();
            expected.insert(name, std::fs::read_to_string(&path).unwrap());
        }
    }
    let shipped: BTreeMap<String, String> = data
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect();
    assert!(
        shipped == expected,
        "deploy/kubernetes/base/policies.yaml is not policies/; regenerate it with scripts/generate-deploy"
    );
    // Mounted where --policies points, from this ConfigMap.
    let args = strings(&container(&objects)["args"]);
    let at = args.iter().position(|a| *a == "--policies").unwrap();
    let (volume, _) = volume_holding(&objects, args[at + 1]).expect("the policies are mounted");
    assert_eq!(volume["configMap"]["name"], "burnguard-policies");
}

#[test]
fn the_prometheus_rule_carries_the_committed_rules() {
    let root = common::repo_root();
    let rules =
        std::fs::read_to_string(root.join("deploy/prometheus/burnguard-rules.yaml")).unwrap();
    let rules = &parse_documents("burnguard-rules.yaml", &rules)[0];
    let objects = render(".");
    let rule = named(&objects, "PrometheusRule", "burnguard", "burnguard-slos");
    assert!(
        rule["spec"]["groups"] == rules["groups"],
        "deploy/kubernetes/base/prometheus-rule.yaml does not carry deploy/prometheus/burnguard-rules.yaml; \
         regenerate it with scripts/generate-deploy"
    );
    assert!(!rules["groups"].as_array().unwrap().is_empty());
}

// ---------------------------------------------------------------------------------------------
// Scraping /metrics: the ServiceMonitor and the plain Prometheus scrape job.

/// The DNS names of the serving certificate whose Secret holds the files serve reads.
fn serving_certificate(objects: &[Value]) -> &Value {
    let (volume, _) = volume_holding(objects, "/etc/burnguard/tls/tls.crt").unwrap();
    objects
        .iter()
        .find(|o| {
            o["kind"] == "Certificate" && o["spec"]["secretName"] == volume["secret"]["secretName"]
        })
        .expect("a Certificate makes the serving Secret")
}

#[test]
fn the_service_monitor_scrapes_metrics_over_https_from_the_api_service_only() {
    let objects = render(".");
    let monitor = find(&objects, "ServiceMonitor");
    let spec = &monitor["spec"];
    let namespaces = strings(&spec["namespaceSelector"]["matchNames"]);
    let selected: Vec<&Value> = objects
        .iter()
        .filter(|o| o["kind"] == "Service")
        .filter(|s| namespaces.contains(&s["metadata"]["namespace"].as_str().unwrap()))
        .filter(|s| {
            spec["selector"]["matchLabels"]
                .as_object()
                .unwrap()
                .iter()
                .all(|(k, v)| &s["metadata"]["labels"][k] == v)
        })
        .collect();
    assert_eq!(
        selected.len(),
        1,
        "one Service, or every pod is scraped twice: {selected:?}"
    );
    let service = selected[0];
    assert_ne!(service["spec"]["publishNotReadyAddresses"], true);
    let endpoint = &spec["endpoints"][0];
    assert_eq!(spec["endpoints"].as_array().unwrap().len(), 1);
    assert!(
        service["spec"]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == endpoint["port"]),
        "the endpoint names a port of the Service"
    );
    assert_eq!(endpoint["scheme"], "https");
    assert_eq!(endpoint["path"], "/metrics");
    // The certificate is checked: against the private CA, for a name it was issued for.
    let tls = &endpoint["tlsConfig"];
    assert!(tls.get("insecureSkipVerify").is_none_or(|v| v == false));
    let certificate = serving_certificate(&objects);
    assert_eq!(
        tls["ca"]["secret"]["name"],
        certificate["spec"]["secretName"]
    );
    assert_eq!(tls["ca"]["secret"]["key"], "ca.crt");
    let dns = strings(&certificate["spec"]["dnsNames"]);
    assert!(
        dns.contains(&tls["serverName"].as_str().unwrap()),
        "{dns:?}"
    );
    assert_eq!(
        tls["serverName"],
        format!(
            "{}.{}.svc",
            service["metadata"]["name"].as_str().unwrap(),
            service["metadata"]["namespace"].as_str().unwrap()
        )
    );
}

fn prometheus_file(name: &str) -> (PathBuf, Value) {
    let path = common::repo_root().join("deploy/prometheus").join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    let value = parse_documents(name, &text).remove(0);
    (path, value)
}

#[test]
fn the_prometheus_scrape_job_passes_promtool_and_keeps_only_the_api_services_https_port() {
    let (_, config) = prometheus_file("scrape-config.yaml");
    let job = &config["scrape_configs"][0];
    assert_eq!(job["job_name"], "burnguard");
    assert_eq!(job["scheme"], "https");
    assert_eq!(job["metrics_path"], "/metrics");
    assert!(job["tls_config"].get("insecure_skip_verify").is_none());
    assert_eq!(strings(&config["rule_files"]), ["burnguard-rules.yaml"]);
    // Service discovery finds the API Service's https port in burnguard's namespace.
    let objects = render(".");
    let monitor = find(&objects, "ServiceMonitor");
    let api = named(&objects, "Service", "burnguard", "burnguard");
    let sd = &job["kubernetes_sd_configs"][0];
    assert_eq!(sd["role"], "endpointslice");
    assert_eq!(strings(&sd["namespaces"]["names"]), ["burnguard"]);
    let keep = &job["relabel_configs"][0];
    assert_eq!(keep["action"], "keep");
    assert_eq!(
        strings(&keep["source_labels"]),
        [
            "__meta_kubernetes_service_name",
            "__meta_kubernetes_endpointslice_port_name"
        ]
    );
    assert_eq!(
        keep["regex"],
        format!(
            "{};{}",
            api["metadata"]["name"].as_str().unwrap(),
            monitor["spec"]["endpoints"][0]["port"].as_str().unwrap()
        )
    );
    let dns = strings(&serving_certificate(&objects)["spec"]["dnsNames"]);
    assert!(dns.contains(&job["tls_config"]["server_name"].as_str().unwrap()));

    // promtool checks the file and the rule file it loads. Debian's Prometheus is built without
    // Kubernetes service discovery, so the check runs on a copy whose discovery is a static
    // target (the discovery block is checked above).
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        common::repo_root().join("deploy/prometheus/burnguard-rules.yaml"),
        dir.path().join("burnguard-rules.yaml"),
    )
    .unwrap();
    let mut copy = config.clone();
    let copied = copy["scrape_configs"][0].as_object_mut().unwrap();
    copied.remove("kubernetes_sd_configs");
    copied.insert(
        "static_configs".into(),
        json!([{"targets": ["burnguard.burnguard.svc:443"]}]),
    );
    let file = common::write(dir.path(), "prometheus.yml", &copy.to_string());
    let (ok, out) = common::run(
        Command::new(common::tool("promtool"))
            .args(["check", "config"])
            .arg(&file),
    );
    assert!(ok, "promtool check config:\n{out}");
    assert!(
        out.contains("rules found"),
        "the rule file was checked too:\n{out}"
    );
}

#[test]
fn the_alertmanager_receiver_passes_amtool_and_posts_to_the_webhook_route_with_a_token_file() {
    let (path, config) = prometheus_file("alertmanager-receiver.yaml");
    let (ok, out) = common::run(
        Command::new(common::tool("amtool"))
            .arg("check-config")
            .arg(&path),
    );
    assert!(ok, "amtool check-config:\n{out}");
    // Every alert reaches burnguard first and goes on to the other routes.
    let first = &config["route"]["routes"][0];
    assert_eq!(first["receiver"], "burnguard");
    assert_eq!(first["continue"], true);
    let receiver = config["receivers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "burnguard")
        .unwrap();
    let webhook = &receiver["webhook_configs"][0];
    assert_eq!(
        webhook["send_resolved"], true,
        "external incidents resolve on it"
    );
    let url = webhook["url"].as_str().unwrap();
    let objects = render(".");
    let api = named(&objects, "Service", "burnguard", "burnguard");
    assert_eq!(
        url,
        format!(
            "https://{}.{}.svc/webhooks/alertmanager",
            api["metadata"]["name"].as_str().unwrap(),
            api["metadata"]["namespace"].as_str().unwrap()
        ),
        "the API Service, over TLS, on the route serve has"
    );
    assert_eq!(api["spec"]["ports"][0]["port"], 443);
    let dns = strings(&serving_certificate(&objects)["spec"]["dnsNames"]);
    assert!(dns.contains(&"burnguard.burnguard.svc"));
    // A bearer token read from a file, never written into the config.
    let auth = &webhook["http_config"]["authorization"];
    assert_eq!(auth["type"], "Bearer");
    assert!(auth["credentials_file"].is_string());
    assert!(auth.get("credentials").is_none());
    assert!(webhook["http_config"]["tls_config"]["ca_file"].is_string());
}

// ---------------------------------------------------------------------------------------------
// The snippets against a real burnguard, Prometheus and Alertmanager.

struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> Result<(), String>) {
    let deadline = Instant::now() + timeout;
    loop {
        match check() {
            Ok(()) => return,
            Err(last) if Instant::now() > deadline => {
                panic!("timed out waiting for {what}; last: {last}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// A CA and a serving certificate for `name` only, as cert-manager makes them.
fn pki(name: &str) -> (String, String, String) {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "burnguard-ca");
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().unwrap())
        .unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec![name.to_string()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    (ca.pem(), cert.pem(), key.serialize_pem())
}

fn start_ready(binary: &str, args: &[String], ready: &str) -> Child {
    let child = Command::new(common::tool(binary))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{binary} starts: {e}"));
    let child = Child(child);
    wait_until(&format!("{binary} ready"), Duration::from_secs(30), || {
        match common::prometheus::http_get(ready, "/-/ready") {
            Some((200, _)) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    child
}

#[test]
fn a_real_prometheus_and_alertmanager_reach_burnguard_over_tls_with_the_shipped_snippets() {
    // burnguard as the Deployment runs it: HTTPS only, a certificate for its Service's name from
    // a private CA, the Alertmanager token from the environment.
    let (_, scrape) = prometheus_file("scrape-config.yaml");
    let (_, receiver_config) = prometheus_file("alertmanager-receiver.yaml");
    let job = &scrape["scrape_configs"][0];
    let server_name = job["tls_config"]["server_name"].as_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = pki(server_name);
    let token = "alertmanager-token-from-the-secret";
    let ca_file = common::write(dir.path(), "ca.crt", &ca);
    let cert_file = common::write(dir.path(), "tls.crt", &cert);
    let key_file = common::write(dir.path(), "tls.key", &key);
    let token_file = common::write(dir.path(), "alertmanager-token", &format!("{token}\n"));
    let db = format!("sqlite://{}", dir.path().join("burnguard.db").display());
    let policies = common::repo_root().join("policies");
    let serve = common::serve::Serve::start(
        &[
            "--policies",
            policies.to_str().unwrap(),
            "--prometheus",
            "http://127.0.0.1:9",
            "--listen",
            "127.0.0.1:0",
            "--db",
            &db,
            "--tls-cert",
            cert_file.to_str().unwrap(),
            "--tls-key",
            key_file.to_str().unwrap(),
        ],
        &[("BURNGUARD_ALERTMANAGER_TOKEN", token)],
    );

    // Prometheus with the shipped job: scheme, path and TLS as shipped (the certificate is
    // checked against the CA for the shipped server name); the pod comes from a static target
    // instead of Kubernetes discovery, the CA from a temporary file.
    let mut job = job.clone();
    let copied = job.as_object_mut().unwrap();
    copied.remove("kubernetes_sd_configs");
    copied.remove("relabel_configs");
    copied.insert("static_configs".into(), json!([{"targets": [serve.addr]}]));
    copied.insert("scrape_interval".into(), json!("1s"));
    copied.insert("scrape_timeout".into(), json!("1s"));
    job["tls_config"]["ca_file"] = json!(ca_file);
    let prometheus_port = common::prometheus::free_port();
    let prometheus_config = common::write(
        dir.path(),
        "prometheus.yml",
        &json!({"scrape_configs": [job]}).to_string(),
    );
    let prometheus_addr = format!("127.0.0.1:{prometheus_port}");
    let _prometheus = start_ready(
        "prometheus",
        &[
            format!("--config.file={}", prometheus_config.display()),
            format!("--storage.tsdb.path={}", dir.path().join("tsdb").display()),
            format!("--web.listen-address={prometheus_addr}"),
        ],
        &prometheus_addr,
    );
    wait_until(
        "Prometheus to scrape burnguard's /metrics over TLS",
        Duration::from_secs(30),
        || {
            let (_, body) = common::prometheus::http_get(
                &prometheus_addr,
                "/api/v1/query?query=burnguard_slos_loaded",
            )
            .ok_or("no answer")?;
            let answer: Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
            let value = answer["data"]["result"][0]["value"][1]
                .as_str()
                .and_then(|v| v.parse::<f64>().ok());
            match value {
                Some(v) if v > 0.0 => Ok(()),
                _ => Err(
                    common::prometheus::http_get(&prometheus_addr, "/api/v1/targets")
                        .map(|(_, b)| b)
                        .unwrap_or_default(),
                ),
            }
        },
    );

    // Alertmanager with the shipped route and receiver: the same path, scheme, bearer token
    // file and CA check for the same name; the address is the test's burnguard and the files
    // are temporary ones. Sent at once instead of after the default group wait.
    let mut config = receiver_config.clone();
    let webhook = &mut config["receivers"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|r| r["name"] == "burnguard")
        .unwrap()["webhook_configs"][0];
    let url = webhook["url"].as_str().unwrap().to_string();
    let path = url
        .strip_prefix(&format!("https://{server_name}"))
        .expect("the receiver calls the Service the certificate names");
    webhook["url"] = json!(format!("https://{}{path}", serve.addr));
    webhook["http_config"]["authorization"]["credentials_file"] = json!(token_file);
    webhook["http_config"]["tls_config"]["ca_file"] = json!(ca_file);
    webhook["http_config"]["tls_config"]["server_name"] = json!(server_name);
    let route = config["route"].as_object_mut().unwrap();
    route.insert("group_by".into(), json!(["..."]));
    route.insert("group_wait".into(), json!("0s"));
    route.insert("group_interval".into(), json!("1s"));
    let alertmanager_port = common::prometheus::free_port();
    let alertmanager_addr = format!("127.0.0.1:{alertmanager_port}");
    let alertmanager_config = common::write(dir.path(), "alertmanager.yml", &config.to_string());
    let _alertmanager = start_ready(
        "prometheus-alertmanager",
        &[
            format!("--config.file={}", alertmanager_config.display()),
            format!("--storage.path={}", dir.path().join("am").display()),
            format!("--web.listen-address={alertmanager_addr}"),
            "--cluster.listen-address=".into(),
        ],
        &alertmanager_addr,
    );
    let (ok, out) = common::run(
        Command::new(common::tool("amtool"))
            .arg(format!("--alertmanager.url=http://{alertmanager_addr}"))
            .args([
                "alert",
                "add",
                "alertname=DeployManifestsCheck",
                "severity=page",
            ]),
    );
    assert!(ok, "{out}");
    wait_until(
        "Alertmanager's alert to open an external incident in burnguard",
        Duration::from_secs(30),
        || {
            let (ok, out) = common::run(Command::new(env!("CARGO_BIN_EXE_burnguard")).args([
                "incidents",
                "list",
                "--status",
                "all",
                "--db",
                &db,
                "--output",
                "json",
            ]));
            if ok && out.contains("external/DeployManifestsCheck/") {
                Ok(())
            } else {
                Err(out)
            }
        },
    );
}

// ---------------------------------------------------------------------------------------------
// The container image.

/// The instructions of the Dockerfile, comments and blank lines dropped.
fn dockerfile() -> Vec<(String, String)> {
    std::fs::read_to_string(common::repo_root().join("Dockerfile"))
        .unwrap()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (op, rest) = l.split_once(' ').unwrap_or((l, ""));
            (op.to_uppercase(), rest.trim().to_string())
        })
        .collect()
}

fn parse_version(text: &str) -> (u32, u32) {
    let mut parts = text.split('.').map(|p| p.parse::<u32>().unwrap());
    (parts.next().unwrap(), parts.next().unwrap_or(0))
}

#[test]
fn the_dockerfile_builds_the_locked_release_binary_onto_distroless_as_nonroot() {
    let lines = dockerfile();
    let froms: Vec<&String> = lines
        .iter()
        .filter(|(op, _)| op == "FROM")
        .map(|(_, r)| r)
        .collect();
    assert_eq!(
        froms.len(),
        2,
        "a build stage and a runtime stage: {froms:?}"
    );
    // A Rust at least the crate's rust-version, on the Debian the runtime's glibc comes from.
    let builder = froms[0].split_whitespace().next().unwrap();
    let tag = builder
        .strip_prefix("rust:")
        .and_then(|t| t.strip_suffix("-bookworm"))
        .unwrap_or_else(|| panic!("rust:<version>-bookworm: {builder}"));
    let manifest = std::fs::read_to_string(common::repo_root().join("Cargo.toml")).unwrap();
    let rust_version = manifest
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .unwrap()
        .trim_matches('"');
    assert!(
        parse_version(tag) >= parse_version(rust_version),
        "{tag} < {rust_version}"
    );
    let stage = froms[0].split_whitespace().last().unwrap().to_string();
    let runs: Vec<&String> = lines
        .iter()
        .filter(|(op, _)| op == "RUN")
        .map(|(_, r)| r)
        .collect();
    assert!(
        runs.iter().any(|r| r.contains("cargo build")
            && r.contains("--release")
            && r.contains("--locked")),
        "{runs:?}"
    );
    assert_eq!(froms[1].as_str(), "gcr.io/distroless/cc-debian12:nonroot");
    // The runtime stage gets the binary alone, runs as nonroot and starts it.
    let runtime: Vec<&(String, String)> = lines
        .iter()
        .skip_while(|(op, r)| !(op == "FROM" && r == froms[1]))
        .skip(1)
        .collect();
    let copies: Vec<&String> = runtime
        .iter()
        .filter(|(op, _)| op == "COPY")
        .map(|(_, r)| r)
        .collect();
    assert_eq!(
        copies,
        [&format!(
            "--from={stage} /src/target/release/burnguard /burnguard"
        )]
    );
    let has = |op: &str, rest: &str| runtime.iter().any(|(o, r)| o == op && r == rest);
    assert!(has("USER", "nonroot"));
    assert!(has("ENTRYPOINT", r#"["/burnguard"]"#));
    // distroless's nonroot is the user the Deployment runs as.
    let docs = documents("burnguard.yaml");
    let pod = &find(&docs, "Deployment")["spec"]["template"]["spec"]["securityContext"];
    assert_eq!(pod["runAsUser"], 65532);
}

#[test]
fn the_docker_build_context_has_every_file_the_build_reads_and_no_openssl() {
    let root = common::repo_root();
    // What the build stage copies: each exists and .dockerignore lets it through.
    let ignore = std::fs::read_to_string(root.join(".dockerignore")).unwrap();
    let allowed: Vec<&str> = ignore
        .lines()
        .filter_map(|l| l.trim().strip_prefix('!'))
        .collect();
    assert!(ignore.lines().any(|l| l.trim() == "*"), "an allowlist");
    let mut copied = Vec::new();
    for (op, rest) in dockerfile() {
        if op == "FROM" && !copied.is_empty() {
            break;
        }
        if op == "COPY" && !rest.starts_with("--from") {
            let mut parts: Vec<&str> = rest.split_whitespace().collect();
            parts.pop(); // the destination
            for source in parts {
                assert!(root.join(source).exists(), "COPY {source}: no such file");
                assert!(
                    allowed.contains(&source),
                    ".dockerignore leaves out {source}"
                );
                copied.push(source.to_string());
            }
        }
    }
    let in_context = |path: &str| {
        copied
            .iter()
            .any(|c| path == c || path.starts_with(&format!("{c}/")))
    };
    assert!(in_context("Cargo.toml") && in_context("Cargo.lock") && in_context("src/main.rs"));
    // Files the code pulls in at compile time: sqlx::migrate!("..."), include_str!("...").
    fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    sources(&root.join("src"), &mut files);
    let mut embedded = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for macro_name in ["migrate!(\"", "include_str!(\"", "include_bytes!(\""] {
            for (at, _) in text.match_indices(macro_name) {
                let rest = &text[at + macro_name.len()..];
                let arg = &rest[..rest.find('"').unwrap()];
                // migrate! is relative to the crate root, include_* to the file.
                let path = if macro_name.starts_with("migrate") {
                    root.join(arg)
                } else {
                    file.parent().unwrap().join(arg)
                };
                let relative = path
                    .canonicalize()
                    .unwrap()
                    .strip_prefix(root.canonicalize().unwrap())
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                embedded.push(relative);
            }
        }
    }
    assert!(
        embedded.iter().any(|p| p.starts_with("migrations")),
        "the migrations are embedded: {embedded:?}"
    );
    for path in &embedded {
        assert!(
            in_context(path),
            "the build reads {path}, which the Dockerfile does not copy"
        );
    }
    // Cargo builds every target the manifest declares: the benchmark's file must be there.
    for bench in manifest_benches(&std::fs::read_to_string(root.join("Cargo.toml")).unwrap()) {
        let path = format!("benches/{bench}.rs");
        assert!(
            in_context(&path),
            "Cargo.toml declares {path}, which the Dockerfile does not copy"
        );
    }
    // rustls only: no OpenSSL to link, so the distroless image needs no libssl.
    let lock = std::fs::read_to_string(root.join("Cargo.lock")).unwrap();
    for crate_name in ["openssl-sys", "native-tls", "openssl"] {
        assert!(
            !lock.contains(&format!("name = \"{crate_name}\"\n")),
            "{crate_name} is in Cargo.lock"
        );
    }
}

fn manifest_benches(manifest: &str) -> Vec<String> {
    let mut benches = Vec::new();
    let mut in_bench = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_bench = line == "[[bench]]";
        } else if in_bench && let Some(name) = line.strip_prefix("name = ") {
            benches.push(name.trim_matches('"').to_string());
        }
    }
    benches
}
