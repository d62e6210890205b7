//! Every POST route of the service, in-process on a SQLite store, with authentication passed:
//! the first byte picks the route, the rest is the body. The answer is never a 5xx, and an
//! error always has the documented JSON shape.
#![no_main]

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::Request;
use burnguard::adapters::store::SqlStore;
use burnguard::config::{ApiAuth, WebhookAuth};
use burnguard::http::state::ServiceState;
use hmac::{KeyInit, Mac};
use tower::ServiceExt;

const ROUTES: [&str; 8] = [
    "/webhooks/alertmanager",
    "/webhooks/pagerduty",
    "/webhooks/opsgenie",
    "/admission/validate",
    "/api/v1/freezes",
    "/api/v1/incidents/1/ack",
    "/api/v1/incidents/1/resolve",
    "/api/v1/incidents/1/approve",
];
const TOKEN: &str = "fuzz-token";
const SECRET: &str = "fuzz-secret";

struct Harness {
    runtime: tokio::runtime::Runtime,
    router: axum::Router,
    _dir: tempfile::TempDir,
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("fuzz.db").display());
        let store = runtime.block_on(SqlStore::open(&url)).unwrap();
        let mut state = ServiceState::new(Arc::new(store), "system:serviceaccount:b:b".into());
        state.api_auth = ApiAuth {
            tokens: vec![burnguard::config::ApiToken::new("hostile", TOKEN)],
            protect_reads: false,
        };
        state.webhook_auth = WebhookAuth {
            alertmanager_token: Some(secrecy::SecretString::from(TOKEN)),
            alertmanager_basic: None,
            pagerduty_secrets: vec![secrecy::SecretString::from(SECRET)],
            opsgenie_secret: Some(secrecy::SecretString::from(SECRET)),
            alertmanager_allow_unauthenticated: false,
            replay_tolerance: std::time::Duration::from_secs(100 * 365 * 86_400),
        };
        Harness {
            runtime,
            router: burnguard::http::router(Arc::new(state)),
            _dir: dir,
        }
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let path = ROUTES[usize::from(pick) % ROUTES.len()];
    let harness = harness();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    let request = Request::post(path)
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {TOKEN}"))
        .header(
            "x-pagerduty-signature",
            format!("v1={}", hex::encode(mac.finalize().into_bytes())),
        )
        .header("x-burnguard-token", SECRET)
        .body(Body::from(body.to_vec()))
        .unwrap();
    let (status, answer) = harness.runtime.block_on(async {
        let response = harness.router.clone().oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), 4 << 20)
            .await
            .unwrap();
        (status, bytes)
    });
    assert!(status < 500, "{path} answered {status}: {answer:?}");
    if status >= 400 {
        let error: serde_json::Value = serde_json::from_slice(&answer)
            .unwrap_or_else(|e| panic!("{path} {status}: not JSON ({e})"));
        assert!(
            error["error"]["code"].is_string(),
            "{path} {status}: {error}"
        );
    }
});
