//! Kubernetes calls, verified the kube-rs way: no API server can run on our test machines, so
//! `tower_test::mock::pair` stands in for it. Each test lists the exact requests the action
//! must make (method, path, query with fieldManager, content type, body) and answers them as
//! the API server would; any other request fails the test.

use http::{Request, Response};
use kube::client::Body;
use serde_json::{Value, json};

use burnguard::adapters::kube::KubeActuator;
use burnguard::domain::playbook::FreezeTarget;
use burnguard::ports::{ActionError, FreezeMarks};

/// Checks a request body.
type BodyCheck = Box<dyn Fn(&Value) + Send>;

/// One expected request and the answer to give.
struct Expect {
    method: &'static str,
    path: &'static str,
    /// Substrings the query must contain (kube's queries begin with `&`).
    query: &'static [&'static str],
    content_type: Option<&'static str>,
    /// Checks the parsed body.
    body: Option<BodyCheck>,
    status: u16,
    reply: Value,
}

fn expect(
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
        status: 200,
        reply,
    }
}

/// A client whose API server is `script`, in order. The returned handle finishes when every
/// expected request was seen (and panics on any difference).
fn api_server(script: Vec<Expect>) -> (KubeActuator, tokio::task::JoinHandle<()>) {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let verifier = tokio::spawn(async move {
        for step in script {
            let (request, respond) = handle
                .next_request()
                .await
                .expect("the action stopped calling the API");
            assert_eq!(
                request.method().as_str(),
                step.method,
                "method of {}",
                request.uri()
            );
            assert_eq!(request.uri().path(), step.path);
            let query = request.uri().query().unwrap_or_default().to_string();
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
            respond.send_response(
                Response::builder()
                    .status(step.status)
                    .header("content-type", "application/json")
                    .body(Body::from(serde_json::to_vec(&step.reply).unwrap()))
                    .unwrap(),
            );
        }
    });
    (
        KubeActuator::new(kube::Client::new(service, "default")),
        verifier,
    )
}

fn deployment(name: &str, revision: u64, paused: bool, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "shop", "uid": "dep-uid",
                     "annotations": {"deployment.kubernetes.io/revision": revision.to_string()}},
        "spec": {"paused": paused, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": name, "image": image}]}}}
    })
}

fn replica_set(name: &str, revision: u64, owner: &str, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": format!("checkout-{name}"), "namespace": "shop",
                     "annotations": {"deployment.kubernetes.io/revision": revision.to_string()},
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "checkout", "uid": owner}]},
        "spec": {"selector": {"matchLabels": {"app": "checkout"}},
                 "template": {"metadata": {"labels": {"app": "checkout", "pod-template-hash": name}},
                              "spec": {"containers": [{"name": "checkout", "image": image}]}}}
    })
}

fn list(kind: &str, items: Vec<Value>) -> Value {
    json!({"apiVersion": "apps/v1", "kind": kind, "metadata": {}, "items": items})
}

fn marks() -> FreezeMarks {
    FreezeMarks {
        reason: "checkout-availability burns its budget".into(),
        incident: Some(42),
        at: "2026-01-04T00:00:00Z".into(),
    }
}

#[tokio::test]
async fn freeze_applies_our_annotations_server_side_to_each_deployment() {
    let annotations = |body: &Value| {
        assert_eq!(body["apiVersion"], "apps/v1");
        assert_eq!(body["kind"], "Deployment");
        let a = &body["metadata"]["annotations"];
        assert_eq!(a["burnguard.dev/frozen"], "true");
        assert_eq!(
            a["burnguard.dev/frozen-reason"],
            "checkout-availability burns its budget"
        );
        assert_eq!(a["burnguard.dev/incident"], "42");
        assert_eq!(a["burnguard.dev/frozen-at"], "2026-01-04T00:00:00Z");
        assert!(
            body.get("spec").is_none(),
            "a freeze must not touch the spec"
        );
    };
    let script = vec![
        expect(
            "GET",
            "/apis/apps/v1/namespaces/shop/deployments",
            &["labelSelector=app.kubernetes.io%2Fpart-of%3Dshop"],
            list(
                "DeploymentList",
                vec![
                    deployment("cart", 1, false, "cart:1"),
                    deployment("checkout", 3, false, "c:3"),
                ],
            ),
        ),
        Expect {
            content_type: Some("application/apply-patch+yaml"),
            body: Some(Box::new(move |b: &Value| {
                annotations(b);
                assert_eq!(b["metadata"]["name"], "cart");
            })),
            ..expect(
                "PATCH",
                "/apis/apps/v1/namespaces/shop/deployments/cart",
                &["fieldManager=burnguard", "force=true"],
                deployment("cart", 1, false, "cart:1"),
            )
        },
        Expect {
            content_type: Some("application/apply-patch+yaml"),
            body: Some(Box::new(move |b: &Value| {
                annotations(b);
                assert_eq!(b["metadata"]["name"], "checkout");
            })),
            ..expect(
                "PATCH",
                "/apis/apps/v1/namespaces/shop/deployments/checkout",
                &["fieldManager=burnguard", "force=true"],
                deployment("checkout", 3, false, "c:3"),
            )
        },
    ];
    let (kube, verifier) = api_server(script);
    let target = FreezeTarget {
        service: Some("checkout".into()),
        namespace: Some("shop".into()),
        deployments: vec!["checkout".into()],
        selector: Some("app.kubernetes.io/part-of=shop".into()),
    };
    let applied = kube.freeze(&target, &marks()).await.unwrap();
    verifier.await.unwrap();
    assert_eq!(
        applied,
        json!({"namespace": "shop", "deployments": ["cart", "checkout"]})
    );
}

#[tokio::test]
async fn unfreeze_reapplies_without_annotations_so_only_ours_go() {
    let script = vec![Expect {
        content_type: Some("application/apply-patch+yaml"),
        body: Some(Box::new(|b: &Value| {
            assert_eq!(b["metadata"]["name"], "checkout");
            assert!(b["metadata"].get("annotations").is_none(), "{b}");
        })),
        ..expect(
            "PATCH",
            "/apis/apps/v1/namespaces/shop/deployments/checkout",
            &["fieldManager=burnguard", "force=true"],
            deployment("checkout", 3, false, "c:3"),
        )
    }];
    let (kube, verifier) = api_server(script);
    kube.unfreeze(&json!({"namespace": "shop", "deployments": ["checkout"]}))
        .await
        .unwrap();
    verifier.await.unwrap();
}

#[tokio::test]
async fn scale_sets_absolute_replicas_through_the_scale_subresource() {
    let script = vec![Expect {
        content_type: Some("application/merge-patch+json"),
        body: Some(Box::new(|b: &Value| {
            assert_eq!(b, &json!({"spec": {"replicas": 6}}))
        })),
        ..expect(
            "PATCH",
            "/apis/apps/v1/namespaces/shop/deployments/checkout/scale",
            &["fieldManager=burnguard"],
            json!({"apiVersion": "autoscaling/v1", "kind": "Scale", "metadata": {"name": "checkout"}, "spec": {"replicas": 6}, "status": {"replicas": 3}}),
        )
    }];
    let (kube, verifier) = api_server(script);
    let outcome = kube.scale("shop", "checkout", 6).await.unwrap();
    verifier.await.unwrap();
    assert!(outcome.contains("6 replicas"));
}

#[tokio::test]
async fn rollback_puts_back_the_previous_revisions_template() {
    let replica_sets = list(
        "ReplicaSetList",
        vec![
            replica_set("aaa", 1, "dep-uid", "checkout:1"),
            replica_set("bbb", 2, "dep-uid", "checkout:2"),
            replica_set("ccc", 3, "dep-uid", "checkout:3"),
            // Same labels, another owner: never a candidate.
            replica_set("zzz", 9, "other-uid", "evil:9"),
        ],
    );
    let script = vec![
        expect(
            "GET",
            "/apis/apps/v1/namespaces/shop/deployments/checkout",
            &[],
            deployment("checkout", 3, false, "checkout:3"),
        ),
        expect(
            "GET",
            "/apis/apps/v1/namespaces/shop/replicasets",
            &["labelSelector=app%3Dcheckout"],
            replica_sets,
        ),
        Expect {
            content_type: Some("application/json-patch+json"),
            body: Some(Box::new(|b: &Value| {
                assert_eq!(b[0]["op"], "replace");
                assert_eq!(b[0]["path"], "/spec/template");
                let template = &b[0]["value"];
                assert_eq!(template["spec"]["containers"][0]["image"], "checkout:2");
                assert_eq!(
                    template["metadata"]["labels"],
                    json!({"app": "checkout"}),
                    "pod-template-hash must go"
                );
                assert_eq!(b.as_array().unwrap().len(), 1);
            })),
            ..expect(
                "PATCH",
                "/apis/apps/v1/namespaces/shop/deployments/checkout",
                &["fieldManager=burnguard"],
                deployment("checkout", 4, false, "checkout:2"),
            )
        },
    ];
    let (kube, verifier) = api_server(script);
    let outcome = kube.rollback("shop", "checkout").await.unwrap();
    verifier.await.unwrap();
    assert!(
        outcome.contains("from revision 3") && outcome.contains("revision 2"),
        "{outcome}"
    );
}

#[tokio::test]
async fn rollback_refuses_a_paused_deployment_and_calls_nothing_else() {
    let script = vec![expect(
        "GET",
        "/apis/apps/v1/namespaces/shop/deployments/checkout",
        &[],
        deployment("checkout", 3, true, "checkout:3"),
    )];
    let (kube, verifier) = api_server(script);
    let error = kube.rollback("shop", "checkout").await.unwrap_err();
    verifier.await.unwrap();
    assert!(
        matches!(error, ActionError::Refused(ref m) if m.contains("paused")),
        "{error:?}"
    );
}

#[tokio::test]
async fn rollback_does_nothing_when_already_at_the_previous_template() {
    // The Deployment already runs revision 2's template (e.g. someone rolled back by hand).
    let script = vec![
        expect(
            "GET",
            "/apis/apps/v1/namespaces/shop/deployments/checkout",
            &[],
            deployment("checkout", 3, false, "checkout:2"),
        ),
        expect(
            "GET",
            "/apis/apps/v1/namespaces/shop/replicasets",
            &[],
            list(
                "ReplicaSetList",
                vec![
                    replica_set("bbb", 2, "dep-uid", "checkout:2"),
                    replica_set("ccc", 3, "dep-uid", "checkout:2"),
                ],
            ),
        ),
    ];
    let (kube, verifier) = api_server(script);
    let outcome = kube.rollback("shop", "checkout").await.unwrap();
    verifier.await.unwrap();
    assert!(outcome.contains("nothing to do"), "{outcome}");
}

#[tokio::test]
async fn a_forbidden_answer_is_a_refusal_that_names_rbac() {
    let script = vec![Expect {
        status: 403,
        ..expect(
            "PATCH",
            "/apis/apps/v1/namespaces/shop/deployments/checkout/scale",
            &["fieldManager=burnguard"],
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": "deployments.apps \"checkout\" is forbidden", "reason": "Forbidden", "code": 403}),
        )
    }];
    let (kube, verifier) = api_server(script);
    let error = kube.scale("shop", "checkout", 2).await.unwrap_err();
    verifier.await.unwrap();
    assert!(
        matches!(error, ActionError::Refused(ref m) if m.contains("RBAC")),
        "{error:?}"
    );
}
