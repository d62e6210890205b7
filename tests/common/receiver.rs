//! A real local HTTP server standing in for a feature-flag service or a pager: it records
//! every request and answers with a configurable status.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};

/// One request as received.
#[derive(Clone, Debug)]
pub struct Received {
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
    pub body: String,
}

#[derive(Clone, Default)]
struct Shared {
    seen: Arc<Mutex<Vec<Received>>>,
    status: Arc<Mutex<u16>>,
    delay_ms: Arc<Mutex<u64>>,
}

/// The receiver; it runs until the test's runtime ends.
pub struct Receiver {
    pub url: String,
    shared: Shared,
}

impl Receiver {
    /// Starts on a free loopback port, answering 200.
    pub async fn start() -> Self {
        let shared = Shared::default();
        *shared.status.lock().unwrap() = 200;
        let app = Router::new().fallback(record).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, shared }
    }

    /// Starts on its own thread and runtime, for tests that are not async.
    pub fn start_blocking() -> Self {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let receiver = Receiver::start().await;
                tx.send((receiver.url.clone(), receiver.shared.clone()))
                    .unwrap();
                std::future::pending::<()>().await;
            });
        });
        let (url, shared) = rx.recv().unwrap();
        Self { url, shared }
    }

    pub fn answer_with(&self, status: u16) {
        *self.shared.status.lock().unwrap() = status;
    }

    pub fn delay(&self, millis: u64) {
        *self.shared.delay_ms.lock().unwrap() = millis;
    }

    pub fn requests(&self) -> Vec<Received> {
        self.shared.seen.lock().unwrap().clone()
    }

    /// Requests to `path`.
    pub fn to(&self, path: &str) -> Vec<Received> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }
}

async fn record(State(shared): State<Shared>, request: Request) -> StatusCode {
    let (parts, body) = request.into_parts();
    let body: Bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    shared.seen.lock().unwrap().push(Received {
        method: parts.method,
        path: parts.uri.path().to_string(),
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    let delay = *shared.delay_ms.lock().unwrap();
    if delay > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
    }
    StatusCode::from_u16(*shared.status.lock().unwrap()).unwrap_or(StatusCode::OK)
}
