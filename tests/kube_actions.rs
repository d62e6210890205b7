//! Kubernetes calls, verified the kube-rs way: no API server can run on our test machines, so
//! `tower_test::mock::pair` stands in for it. Each test lists the exact requests the action
//! must make (method, path, query with fieldManager, content type, body) and answers them as
//! the API server would; any other request fails the test. The stand-in and its fixtures are
//! in `common::kube`.

mod common;

use serde_json::{Value, json};

use burnguard::domain::playbook::FreezeTarget;
use burnguard::domain::rollback::TemplateRevision;
use burnguard::ports::{ActionError, FreezeMarks, RollbackPlan, RollbackWrite};
use common::kube::{
    Expect, Release, V1, V2, V3, api_server, checkout_at, deployment, expect, list, pod_template,
    reads, replica_set_of, rollback_patch,
};

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
        json!({"namespace": "shop", "deployments": ["cart", "checkout"], "complete": true})
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

// Rollback, over the ReplicaSet histories the Deployment controller leaves behind (the
// fixtures are in `common::kube`, shared with the engine's tests).

fn avoid(releases: &[Release]) -> Vec<String> {
    releases.iter().map(|r| r.hash.to_string()).collect()
}

fn revision(revision: u64, release: Release) -> TemplateRevision {
    TemplateRevision {
        revision,
        template_hash: release.hash.into(),
    }
}

#[tokio::test]
async fn rollback_from_a_bad_third_release_writes_the_second_releases_template() {
    let mut script = reads(
        checkout_at(3, V3, false),
        vec![
            replica_set_of(V1, 1, &[], 0),
            replica_set_of(V2, 2, &[], 0),
            replica_set_of(V3, 3, &[], 3),
            // Same labels, another owner: never a candidate.
            json!({
                "apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {"name": "checkout-legacy-6f7d", "namespace": "shop",
                             "labels": {"app": "checkout", "pod-template-hash": "6f7d"},
                             "annotations": {"deployment.kubernetes.io/revision": "9"},
                             "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "checkout-legacy", "uid": "another-uid", "controller": true}]},
                "spec": {"selector": {"matchLabels": {"app": "checkout"}}, "template": pod_template(Release { image: "evil:9", hash: "6f7d" }, true)}
            }),
        ],
    );
    script.push(rollback_patch(3, V2, checkout_at(3, V2, false)));
    let (kube, verifier) = api_server(script);
    let plan = kube.plan_rollback("shop", "checkout", &[]).await.unwrap();
    assert_eq!(
        (plan.from.clone(), plan.to.clone()),
        (revision(3, V3), revision(2, V2))
    );
    assert_eq!(
        (plan.namespace.as_str(), plan.deployment.as_str()),
        ("shop", "checkout")
    );
    // The plan is what the engine journals before applying it: it reads back the same.
    let journaled = serde_json::to_value(&plan).unwrap();
    assert_eq!(
        journaled["from"],
        json!({"revision": 3, "template_hash": "6c4d8b7f95"})
    );
    assert_eq!(
        journaled["write"]["template"]["spec"]["containers"][0]["image"],
        V2.image
    );
    assert_eq!(
        serde_json::from_value::<RollbackPlan>(journaled).unwrap(),
        plan
    );
    let outcome = kube.apply_rollback(&plan).await.unwrap();
    verifier.await.unwrap();
    assert_eq!(
        outcome,
        "rolled shop/checkout back from revision 3 (6c4d8b7f95) to the template of revision 2 (7b9c6d5f48)"
    );
}

#[tokio::test]
async fn after_an_undo_a_rollback_that_avoids_the_bad_release_goes_to_the_first_never_back_to_it() {
    // The undo made v2 revision 4 (history "2"); the revision just before it is the bad v3,
    // which a plain `kubectl rollout undo` would bring back.
    let mut script = reads(
        checkout_at(4, V2, false),
        vec![
            replica_set_of(V1, 1, &[], 0),
            replica_set_of(V2, 4, &[2], 3),
            replica_set_of(V3, 3, &[], 0),
        ],
    );
    script.push(rollback_patch(4, V1, checkout_at(4, V1, false)));
    let (kube, verifier) = api_server(script);
    let plan = kube
        .plan_rollback("shop", "checkout", &avoid(&[V3]))
        .await
        .unwrap();
    assert_eq!(
        (plan.from.clone(), plan.to.clone()),
        (revision(4, V2), revision(1, V1))
    );
    kube.apply_rollback(&plan).await.unwrap();
    verifier.await.unwrap();
}

#[tokio::test]
async fn after_a_manual_undo_brought_the_bad_release_back_a_rollback_returns_to_the_second() {
    // burnguard rolled v3 back to v2 (now revision 4); then someone ran `kubectl rollout undo`,
    // which brought v3 back as revision 5 (history "3"). v2 is the newest revision that is
    // neither the current template nor one burnguard rolled away from, so it is the target:
    // skipping it for v1 would throw away a release nothing has shown to be bad.
    let mut script = reads(
        checkout_at(5, V3, false),
        vec![
            replica_set_of(V1, 1, &[], 0),
            replica_set_of(V2, 4, &[2], 0),
            replica_set_of(V3, 5, &[3], 3),
        ],
    );
    script.push(rollback_patch(5, V2, checkout_at(5, V2, false)));
    let (kube, verifier) = api_server(script);
    let plan = kube
        .plan_rollback("shop", "checkout", &avoid(&[V3]))
        .await
        .unwrap();
    assert_eq!(
        (plan.from.clone(), plan.to.clone()),
        (revision(5, V3), revision(4, V2))
    );
    kube.apply_rollback(&plan).await.unwrap();
    verifier.await.unwrap();
}

#[tokio::test]
async fn a_rollback_whose_target_was_garbage_collected_is_refused_without_a_patch() {
    // revisionHistoryLimit removed v1's ReplicaSet; after the undo to v2 (revision 4) the only
    // revision left that is not avoided would be v1's, and nothing can bring it back.
    let mut deployment = checkout_at(4, V2, false);
    deployment["spec"]["revisionHistoryLimit"] = json!(1);
    let script = reads(
        deployment,
        vec![
            replica_set_of(V2, 4, &[2], 3),
            replica_set_of(V3, 3, &[], 0),
        ],
    );
    let (kube, verifier) = api_server(script);
    let error = kube
        .plan_rollback("shop", "checkout", &avoid(&[V3]))
        .await
        .unwrap_err();
    verifier.await.unwrap();
    let ActionError::Refused(message) = &error else {
        panic!("{error:?}")
    };
    assert!(
        message.starts_with("rolling back deployment shop/checkout: revision 1")
            && message.contains("garbage-collected"),
        "{message}"
    );
}

#[tokio::test]
async fn a_rollback_with_every_earlier_release_avoided_is_refused_without_a_patch() {
    let script = reads(
        checkout_at(4, V2, false),
        vec![
            replica_set_of(V1, 1, &[], 0),
            replica_set_of(V2, 4, &[2], 3),
            replica_set_of(V3, 3, &[], 0),
        ],
    );
    let (kube, verifier) = api_server(script);
    let error = kube
        .plan_rollback("shop", "checkout", &avoid(&[V3, V1]))
        .await
        .unwrap_err();
    verifier.await.unwrap();
    assert!(
        matches!(&error, ActionError::Refused(m) if m.contains("no revision before 4 to go back to: the earlier ones (3, 1)")),
        "{error:?}"
    );
}

#[tokio::test]
async fn rollback_refuses_a_paused_deployment_and_calls_nothing_else() {
    let script = vec![expect(
        "GET",
        "/apis/apps/v1/namespaces/shop/deployments/checkout",
        &[],
        checkout_at(3, V3, true),
    )];
    let (kube, verifier) = api_server(script);
    let error = kube
        .plan_rollback("shop", "checkout", &[])
        .await
        .unwrap_err();
    verifier.await.unwrap();
    assert!(
        matches!(error, ActionError::Refused(ref m) if m.contains("paused")),
        "{error:?}"
    );
}

#[tokio::test]
async fn rollback_does_nothing_when_the_deployment_already_asks_for_the_target_template() {
    // Someone (or an earlier attempt) already wrote v2's template; the controller has not
    // renumbered yet, so the Deployment is still at revision 3 with v2's template.
    let mut deployment = checkout_at(3, V2, false);
    deployment["metadata"]["generation"] = json!(5);
    let script = reads(
        deployment,
        vec![
            replica_set_of(V1, 1, &[], 0),
            replica_set_of(V2, 2, &[], 0),
            replica_set_of(V3, 3, &[], 3),
        ],
    );
    let (kube, verifier) = api_server(script);
    let plan = kube.plan_rollback("shop", "checkout", &[]).await.unwrap();
    verifier.await.unwrap();
    assert_eq!(plan.write, RollbackWrite::NothingToDo);
    assert_eq!(
        (plan.from.clone(), plan.to.clone()),
        (revision(3, V3), revision(2, V2))
    );
    // Applying it calls nothing: the script is over, so any call would get a 500 and fail.
    let outcome = kube.apply_rollback(&plan).await.unwrap();
    assert!(outcome.contains("nothing to do"), "{outcome}");
}

#[tokio::test]
async fn applying_a_plan_after_the_deployment_moved_on_is_refused() {
    // Between plan and apply someone deployed v4: the patch's test of the revision fails and
    // the API server rejects the whole patch (422), so the template is left alone.
    let mut script = reads(
        checkout_at(3, V3, false),
        vec![
            replica_set_of(V1, 1, &[], 0),
            replica_set_of(V2, 2, &[], 0),
            replica_set_of(V3, 3, &[], 3),
        ],
    );
    script.push(Expect {
        status: 422,
        ..rollback_patch(
            3,
            V2,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Invalid", "code": 422,
                   "message": "the server rejected our request due to an error in our request"}),
        )
    });
    let (kube, verifier) = api_server(script);
    let plan = kube.plan_rollback("shop", "checkout", &[]).await.unwrap();
    let error = kube.apply_rollback(&plan).await.unwrap_err();
    verifier.await.unwrap();
    assert!(
        matches!(&error, ActionError::Refused(m) if m.contains("no longer at revision 3")),
        "{error:?}"
    );
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

#[tokio::test]
async fn with_events_on_the_deployment_tells_what_burnguard_did_after_it_did_it() {
    let scale = expect(
        "PATCH",
        "/apis/apps/v1/namespaces/shop/deployments/checkout/scale",
        &["fieldManager=burnguard"],
        json!({"apiVersion": "autoscaling/v1", "kind": "Scale", "metadata": {"name": "checkout"}, "spec": {"replicas": 6}}),
    );
    let event = Expect {
        body: Some(Box::new(|b: &Value| {
            assert_eq!(b["reason"], "Scaled");
            assert_eq!(b["action"], "Scale");
            assert_eq!(b["type"], "Normal");
            assert_eq!(
                b["regarding"],
                json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "checkout", "namespace": "shop"})
            );
            assert!(b["note"].as_str().unwrap().contains("6 replicas"));
            assert_eq!(b["reportingController"], "burnguard");
            assert_eq!(b["reportingInstance"], "burnguard-0");
        })),
        ..expect(
            "POST",
            "/apis/events.k8s.io/v1/namespaces/shop/events",
            &[],
            json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e", "namespace": "shop"},
                   "eventTime": "2026-01-04T00:00:00.000000Z"}),
        )
    };
    let (client, mut server) = common::kube::scripted_client(vec![scale, event]);
    let kube = burnguard::adapters::kube::KubeActuator::new(client).with_events("burnguard-0");
    kube.scale("shop", "checkout", 6).await.unwrap();
    server.script_done().await;
    assert_eq!(server.unexpected(), Vec::<String>::new());
}
