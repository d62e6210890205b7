//! Optional TLS termination: `serve --tls-cert/--tls-key` answers HTTPS (rustls) with the
//! given certificate, and no longer speaks plain HTTP. The certificate is made here (rcgen).

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::prometheus::free_port;

#[tokio::test]
async fn serve_speaks_https_with_the_given_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert_path = common::write(dir.path(), "tls.crt", &cert.cert.pem());
    let key_path = common::write(dir.path(), "tls.key", &cert.signing_key.serialize_pem());
    let policy = common::write(
        dir.path(),
        "slo.yaml",
        "apiVersion: burnguard.dev/v1\nkind: SLO\nmetadata: {name: s}\nspec:\n  service: s\n  objective: 99\n  indicator: {raw: {errorRatio: 'x[{{.window}}]'}}\n",
    );
    let db = format!("sqlite://{}", dir.path().join("b.db").display());
    let prometheus = format!("http://127.0.0.1:{}", free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_burnguard"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--prometheus",
            &prometheus,
            "--db",
            &db,
            "--tls-cert",
        ])
        .arg(&cert_path)
        .arg("--tls-key")
        .arg(&key_path)
        .arg("--policies")
        .arg(&policy)
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut addr = String::new();
    let mut lines = BufReader::new(stderr).lines().map_while(Result::ok);
    for line in lines.by_ref() {
        if line.contains("listening") {
            assert!(line.contains("tls=true"), "{line}");
            addr = line
                .split("addr=")
                .nth(1)
                .unwrap()
                .split_whitespace()
                .next()
                .unwrap()
                .to_string();
            break;
        }
    }
    let port = addr.rsplit(':').next().unwrap().to_string();
    // Keep reading the log: a closed pipe must not be what the server trips over.
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = log.clone();
    std::thread::spawn(move || {
        for line in lines {
            kept.lock().unwrap().push(line);
        }
    });

    burnguard::adapters::prometheus::install_crypto_provider();
    let trusted = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap()])
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let response = trusted
        .get(format!("https://localhost:{port}/healthz"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}; serve's log: {:#?}", log.lock().unwrap()));
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.text().await.unwrap(), "ok\n");
    // Plain HTTP gets no HTTP answer.
    assert!(
        common::prometheus::http_get(&addr, "/healthz").is_none_or(|(status, _)| status != 200)
    );
    let _ = child.kill();
    let _ = child.wait();
}
