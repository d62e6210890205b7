//! The manifests under `deploy/kubernetes/` must say what the code does: RBAC grants exactly
//! the verbs the Kubernetes steps use (checked against the requests `tests/kube_actions.rs`
//! verifies), the admission webhook points at the route burnguard serves, only over TLS,
//! failing closed but scoped so that an outage of burnguard pauses only rollouts in
//! application namespaces, and Kubernetes waits longer than burnguard's shutdown grace before
//! it kills the pod.

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

fn all_documents() -> Vec<Value> {
    ["burnguard.yaml", "rbac.yaml", "admission-webhook.yaml"]
        .iter()
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
    for probe in ["readinessProbe", "livenessProbe"] {
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
