//! The Kubernetes API server stand-in, shared by the adapter's tests (`kube_actions`) and the
//! engine's (`remediation_kube`): no API server can run on our test machines, so
//! `tower_test::mock::pair` takes its place. A test lists the exact requests it expects
//! (method, path, query with fieldManager, content type, body), in order, with the answers the
//! API server would give; a difference fails the test. Requests made after the script ended
//! are answered with a 500 and kept, so a test can show that nothing more was called.
//!
//! Also the objects the server answers with: Deployments, and the ReplicaSet histories the
//! Deployment controller leaves behind.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ::kube::client::Body;
use burnguard::adapters::kube::KubeActuator;
use futures_util::future::BoxFuture;
use http::{Request, Response};
use serde_json::{Value, json};

/// Checks a request body.
pub type BodyCheck = Box<dyn Fn(&Value) + Send>;

/// Runs after a request was checked and before it is answered: the caller is still waiting
/// for the answer, so whatever the hook sees is what the caller had done before sending it.
pub type BeforeReply = Box<dyn FnOnce() -> BoxFuture<'static, ()> + Send>;

/// How long the stand-in waits for each expected request before failing the test.
const PATIENCE: Duration = Duration::from_secs(20);

/// One expected request and the answer to give.
pub struct Expect {
    pub method: &'static str,
    pub path: &'static str,
    /// Substrings the query must contain (kube's queries begin with `&`).
    pub query: &'static [&'static str],
    pub content_type: Option<&'static str>,
    /// Checks the parsed body.
    pub body: Option<BodyCheck>,
    /// Looks at the world while the caller waits for the answer.
    pub before_reply: Option<BeforeReply>,
    pub status: u16,
    pub reply: Value,
}

pub fn expect(
    method: &'static str,
    path: &'static str,
    query: &'static [&'static str],
    reply: Value,
) -> Expect {
    Expect {
        method,
        path,
        query,
        content_type: None,
        body: None,
        before_reply: None,
        status: 200,
        reply,
    }
}

/// The answer the API server gives with an error `code`.
pub fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
}

/// The stand-in for one test.
pub struct ApiServer {
    script: Option<tokio::task::JoinHandle<()>>,
    unexpected: Arc<Mutex<Vec<String>>>,
}

impl ApiServer {
    /// Waits until every scripted request was seen and answered; a difference the script
    /// found fails the test here with its own message.
    pub async fn script_done(&mut self) {
        if let Some(script) = self.script.take()
            && let Err(error) = script.await
        {
            std::panic::resume_unwind(error.into_panic());
        }
    }

    /// The requests made after the script ended (`METHOD path?query`), each answered 500.
    pub fn unexpected(&self) -> Vec<String> {
        self.unexpected.lock().unwrap().clone()
    }
}

/// A client whose API server is `script`, in order. The returned handle finishes when every
/// expected request was seen (and panics on any difference).
pub fn api_server(script: Vec<Expect>) -> (KubeActuator, tokio::task::JoinHandle<()>) {
    let (kube, mut server) = watched_api_server(script);
    (kube, server.script.take().expect("a fresh script"))
}

/// [`api_server`], and after the script every further request is kept in
/// [`ApiServer::unexpected`] (and answered 500), so that "nothing more" can be shown.
pub fn watched_api_server(script: Vec<Expect>) -> (KubeActuator, ApiServer) {
    let (client, server) = scripted_client(script);
    (KubeActuator::new(client), server)
}

/// [`watched_api_server`] for callers that need the client itself (the controller).
pub fn scripted_client(script: Vec<Expect>) -> (::kube::Client, ApiServer) {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let unexpected = Arc::new(Mutex::new(Vec::new()));
    let after_script = unexpected.clone();
    let verifier = tokio::spawn(async move {
        for (n, step) in script.into_iter().enumerate() {
            let (request, respond) = tokio::time::timeout(PATIENCE, handle.next_request())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "expected {} {}, but nothing was requested within {PATIENCE:?}",
                        step.method, step.path
                    )
                })
                .expect("the action stopped calling the API");
            assert_eq!(
                request.method().as_str(),
                step.method,
                "method of {}",
                request.uri()
            );
            assert_eq!(
                request.uri().path(),
                step.path,
                "path of request {} ({} expected)",
                n + 1,
                step.method
            );
            let query = request.uri().query().unwrap_or_default().to_string();
            let content_type = content_type_of(&request);
            assert_rbac_allows(
                request.method().as_str(),
                request.uri().path(),
                &query,
                &content_type,
            );
            for part in step.query {
                assert!(query.contains(part), "query {query:?} lacks {part:?}");
            }
            if let Some(ct) = step.content_type {
                assert_eq!(
                    request.headers()["content-type"],
                    ct,
                    "content type of {}",
                    step.path
                );
            }
            let bytes = request.into_body().collect_bytes().await.unwrap();
            if let Some(check) = step.body {
                let body: Value = serde_json::from_slice(&bytes).expect("a JSON body");
                check(&body);
            }
            if let Some(hook) = step.before_reply {
                hook().await;
            }
            respond.send_response(
                Response::builder()
                    .status(step.status)
                    .header("content-type", "application/json")
                    .body(Body::from(serde_json::to_vec(&step.reply).unwrap()))
                    .unwrap(),
            );
        }
        // The script is over: whatever comes now is unexpected.
        tokio::spawn(async move {
            while let Some((request, respond)) = handle.next_request().await {
                let seen = format!(
                    "{} {}",
                    request.method(),
                    request
                        .uri()
                        .path_and_query()
                        .map(|p| p.as_str())
                        .unwrap_or_default()
                );
                after_script.lock().unwrap().push(seen.clone());
                let reply = status(500, "InternalError", &format!("unexpected request {seen}"));
                respond.send_response(
                    Response::builder()
                        .status(500)
                        .header("content-type", "application/json")
                        .body(Body::from(serde_json::to_vec(&reply).unwrap()))
                        .unwrap(),
                );
            }
        });
    });
    (
        ::kube::Client::new(service, "default"),
        ApiServer {
            script: Some(verifier),
            unexpected,
        },
    )
}

/// A path built at run time, for an [`Expect`].
pub fn leak(path: String) -> &'static str {
    Box::leak(path.into_boxed_str())
}

/// A plain Deployment in `shop`.
pub fn deployment(name: &str, revision: u64, paused: bool, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "shop", "uid": "dep-uid",
                     "annotations": {"deployment.kubernetes.io/revision": revision.to_string()}},
        "spec": {"paused": paused, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": name, "image": image}]}}}
    })
}

pub fn list(kind: &str, items: Vec<Value>) -> Value {
    json!({"apiVersion": "apps/v1", "kind": kind, "metadata": {}, "items": items})
}

// Rollback. The fixtures are what the Deployment controller leaves behind: one ReplicaSet per
// pod template, named `<deployment>-<pod-template-hash>`, owned (controller: true) by the
// Deployment's uid, labelled and selected with its pod-template-hash, annotated with its
// revision; after an undo the restored ReplicaSet takes the next revision and keeps its old
// numbers in `revision-history`, and the Deployment's revision annotation follows it.

pub const CHECKOUT_UID: &str = "9a6f1c3e-2b7d-4e58-8c0a-4f1d2e3b5a69";

/// One release of checkout: its image and the pod-template-hash the controller gave it.
#[derive(Clone, Copy)]
pub struct Release {
    pub image: &'static str,
    pub hash: &'static str,
}

pub const V1: Release = Release {
    image: "registry.example.com/checkout:1.0.0",
    hash: "5d8f7c9b6d",
};
pub const V2: Release = Release {
    image: "registry.example.com/checkout:1.1.0",
    hash: "7b9c6d5f48",
};
pub const V3: Release = Release {
    image: "registry.example.com/checkout:1.2.0",
    hash: "6c4d8b7f95",
};

/// The pod template as the API server stores it (defaults filled in); the ReplicaSet's copy
/// also carries its pod-template-hash label.
pub fn pod_template(release: Release, hash_label: bool) -> Value {
    let mut labels = json!({"app": "checkout"});
    if hash_label {
        labels["pod-template-hash"] = json!(release.hash);
    }
    json!({
        "metadata": {"labels": labels},
        "spec": {
            "containers": [{
                "name": "checkout", "image": release.image,
                "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}},
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File",
                "imagePullPolicy": "IfNotPresent"
            }],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "securityContext": {},
            "schedulerName": "default-scheduler"
        }
    })
}

/// The checkout Deployment at `revision`, asking for `running`'s pod template.
pub fn checkout_at(revision: u64, running: Release, paused: bool) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {
            "name": "checkout", "namespace": "shop", "uid": CHECKOUT_UID,
            "resourceVersion": "48213", "generation": revision + 1,
            "labels": {"app": "checkout", "app.kubernetes.io/part-of": "shop"},
            "annotations": {"deployment.kubernetes.io/revision": revision.to_string()}
        },
        "spec": {
            "replicas": 3, "paused": paused, "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600,
            "selector": {"matchLabels": {"app": "checkout"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
            "template": pod_template(running, false)
        },
        "status": {"observedGeneration": revision + 1, "replicas": 3, "updatedReplicas": 3, "readyReplicas": 3}
    })
}

/// The ReplicaSet the controller made for `release`, now at `revision` with earlier numbers
/// `history`, scaled to `replicas` (0 for old ones).
pub fn replica_set_of(release: Release, revision: u64, history: &[u64], replicas: u32) -> Value {
    let mut annotations = json!({
        "deployment.kubernetes.io/revision": revision.to_string(),
        "deployment.kubernetes.io/desired-replicas": "3",
        "deployment.kubernetes.io/max-replicas": "4"
    });
    if !history.is_empty() {
        let list: Vec<String> = history.iter().map(u64::to_string).collect();
        annotations["deployment.kubernetes.io/revision-history"] = json!(list.join(","));
    }
    json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {
            "name": format!("checkout-{}", release.hash), "namespace": "shop",
            "labels": {"app": "checkout", "pod-template-hash": release.hash},
            "annotations": annotations,
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "checkout",
                                 "uid": CHECKOUT_UID, "controller": true, "blockOwnerDeletion": true}]
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "checkout", "pod-template-hash": release.hash}},
            "template": pod_template(release, true)
        },
        "status": {"replicas": replicas, "observedGeneration": 2}
    })
}

/// The GET of the Deployment and the LIST of its ReplicaSets that every plan starts with.
pub fn reads(deployment: Value, replica_sets: Vec<Value>) -> Vec<Expect> {
    vec![
        expect(
            "GET",
            "/apis/apps/v1/namespaces/shop/deployments/checkout",
            &[],
            deployment,
        ),
        expect(
            "GET",
            "/apis/apps/v1/namespaces/shop/replicasets",
            &["labelSelector=app%3Dcheckout"],
            list("ReplicaSetList", replica_sets),
        ),
    ]
}

/// The PATCH a rollback from revision `from` to `to`'s template must send.
pub fn rollback_patch(from: u64, to: Release, reply: Value) -> Expect {
    Expect {
        content_type: Some("application/json-patch+json"),
        body: Some(Box::new(move |b: &Value| {
            let mut template = pod_template(to, true);
            template["metadata"]["labels"]
                .as_object_mut()
                .unwrap()
                .remove("pod-template-hash");
            assert_eq!(
                b,
                &json!([
                    {"op": "test", "path": "/metadata/annotations/deployment.kubernetes.io~1revision", "value": from.to_string()},
                    {"op": "replace", "path": "/spec/template", "value": template}
                ]),
                "the patch must test the planned revision, then write {}'s template without its pod-template-hash",
                to.image
            );
        })),
        ..expect(
            "PATCH",
            "/apis/apps/v1/namespaces/shop/deployments/checkout",
            &["fieldManager=burnguard"],
            reply,
        )
    }
}

/// The verbs a request needs, as RBAC names them: `(apiGroup, resource[/subresource], verb)`.
/// A server-side apply may create the object, so it needs `create` too, except on the kinds
/// burnguard only ever changes (a Deployment that is gone is never created by an apply: the
/// API server refuses it without `create`, which is what burnguard wants).
pub fn permissions_of(
    method: &str,
    path: &str,
    query: &str,
    content_type: &str,
) -> Vec<(String, String, String)> {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    // /api/v1/... or /apis/{group}/{version}/...
    let (group, rest) = match parts.first() {
        Some(&"api") => ("", &parts[2..]),
        Some(&"apis") => (parts[1], &parts[3..]),
        _ => panic!("not an API path: {path}"),
    };
    let rest: Vec<&str> = match rest {
        ["namespaces", _namespace, tail @ ..] if !tail.is_empty() => tail.to_vec(),
        other => other.to_vec(),
    };
    let (resource, named) = match rest.as_slice() {
        [resource] => (resource.to_string(), false),
        [resource, _name] => (resource.to_string(), true),
        [resource, _name, sub] => (format!("{resource}/{sub}"), true),
        _ => panic!("unexpected API path {path}"),
    };
    let verbs: Vec<&str> = match (method, named) {
        ("GET", true) => vec!["get"],
        ("GET", false) if query.contains("watch=true") => vec!["watch"],
        ("GET", false) => vec!["list"],
        ("POST", _) => vec!["create"],
        ("PUT", _) => vec!["update"],
        ("DELETE", _) => vec!["delete"],
        ("PATCH", _)
            if content_type.starts_with("application/apply-patch")
                && !resource.starts_with("deployments")
                && !resource.ends_with("/status") =>
        {
            vec!["patch", "create"]
        }
        ("PATCH", _) => vec!["patch"],
        _ => panic!("unexpected method {method} on {path}"),
    };
    verbs
        .into_iter()
        .map(|v| (group.to_string(), resource.clone(), v.to_string()))
        .collect()
}

/// The `(apiGroup, resource, verb)` triples the shipped ClusterRole grants.
pub fn granted() -> &'static std::collections::BTreeSet<(String, String, String)> {
    static GRANTED: std::sync::OnceLock<std::collections::BTreeSet<(String, String, String)>> =
        std::sync::OnceLock::new();
    GRANTED.get_or_init(|| {
        let text = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("deploy/kubernetes/base/rbac.yaml"),
        )
        .unwrap();
        let docs: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
        let role = docs
            .iter()
            .find(|d| d["kind"] == "ClusterRole")
            .expect("a ClusterRole");
        let mut out = std::collections::BTreeSet::new();
        for rule in role["rules"].as_array().unwrap() {
            for group in rule["apiGroups"].as_array().unwrap() {
                for resource in rule["resources"].as_array().unwrap() {
                    for verb in rule["verbs"].as_array().unwrap() {
                        out.insert((
                            group.as_str().unwrap().to_string(),
                            resource.as_str().unwrap().to_string(),
                            verb.as_str().unwrap().to_string(),
                        ));
                    }
                }
            }
        }
        out
    })
}

/// Fails the test when burnguard's shipped RBAC would refuse this request.
pub fn assert_rbac_allows(method: &str, path: &str, query: &str, content_type: &str) {
    for needed in permissions_of(method, path, query, content_type) {
        assert!(
            granted().contains(&needed),
            "deploy/kubernetes/base/rbac.yaml does not grant {needed:?}, which `{method} {path}` needs"
        );
    }
}

/// A request's content type, or "".
pub fn content_type_of<B>(request: &Request<B>) -> String {
    request
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}
