//! Hostile and faulty clients against the listener, in process, on 127.0.0.1 port 0: the
//! library's own `http::server::serve` with the real router and its `/metrics`, over a real
//! SQLite store, plain and over TLS with certificates made here (rcgen).
//!
//! Silent sockets never delay others (TLS handshakes run concurrently), half-sent requests and
//! stalled handshakes are closed after their timeout, the connection past the cap is closed at
//! once, and every refusal is counted. Certificates follow their files as a Kubernetes secret
//! volume changes them (an atomic swap of the `..data` link), and a bad pair is refused while
//! the old one keeps serving.
//!
//! No time is asserted: every wait is for a positive event (a socket reading EOF, a request
//! answered, a counter reaching a value), bounded so a stall fails the test instead of
//! hanging it. Where a bound is on liveness (an answer within a 10 s client timeout while
//! sockets are held) it is generous: the stall it guards against lasted tens of seconds.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use burnguard::adapters::store::SqlStore;
use burnguard::http::server::ListenerLimits;
use burnguard::http::state::ServiceState;
use burnguard::http::tls::CertificateReloader;
use common::db::TestDb;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// How long any single wait may take before the test fails.
const BOUND: Duration = Duration::from_secs(10);
const HOST: &str = "burnguard.test";

struct Server {
    addr: SocketAddr,
    state: Arc<ServiceState>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    _db: TestDb,
}

impl Server {
    async fn start(limits: ListenerLimits, tls: Option<&Arc<CertificateReloader>>) -> Self {
        burnguard::adapters::prometheus::install_crypto_provider();
        let db = TestDb::sqlite();
        let store = Arc::new(SqlStore::open(db.url()).await.unwrap());
        let state = Arc::new(ServiceState::new(store, "system:serviceaccount:x:y".into()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        if let Some(certificate) = tls {
            certificate.clone().watch(
                Duration::from_millis(50),
                state.metrics.listener.clone(),
                shutdown.clone(),
            );
        }
        let task = tokio::spawn(burnguard::http::server::serve(
            listener,
            burnguard::http::router(state.clone()),
            tls.map(|c| c.acceptor()),
            limits,
            state.metrics.listener.clone(),
            shutdown.clone(),
        ));
        Self {
            addr,
            state,
            shutdown,
            task,
            _db: db,
        }
    }

    fn open_connections(&self) -> i64 {
        self.state.metrics.listener.connections_open.get()
    }

    /// Waits until the server holds exactly `n` connections.
    async fn wait_open(&self, n: i64) {
        eventually(&format!("{n} open connections"), || async {
            (self.open_connections() == n).then_some(())
        })
        .await;
    }

    /// Stops the server; it must return although clients still hold sockets.
    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(BOUND, self.task)
            .await
            .expect("the server stops while silent clients hold sockets")
            .unwrap();
    }
}

/// Polls `probe` every 50 ms until it gives a value; panics after [`BOUND`].
async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + BOUND;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "waited {BOUND:?} for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A client that opens a new connection for every request (so every request shakes hands)
/// and trusts only `ca` when given.
fn client(addr: SocketAddr, ca: Option<&str>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .timeout(BOUND)
        .pool_max_idle_per_host(0)
        .resolve(HOST, addr);
    if let Some(ca) = ca {
        builder = builder.tls_certs_only([reqwest::Certificate::from_pem(ca.as_bytes()).unwrap()]);
    }
    builder.build().unwrap()
}

fn base(addr: SocketAddr, tls: bool) -> String {
    let scheme = if tls { "https" } else { "http" };
    format!("{scheme}://{HOST}:{}", addr.port())
}

/// The server's `/metrics`, read over HTTP(S).
async fn scrape(client: &reqwest::Client, base: &str) -> Option<String> {
    let response = client.get(format!("{base}/metrics")).send().await.ok()?;
    response.text().await.ok()
}

/// The value of one series in a scrape.
fn value(scrape: &str, series: &str) -> Option<f64> {
    scrape
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// The value of one series in the server's `/metrics`.
async fn metric(client: &reqwest::Client, base: &str, series: &str) -> Option<f64> {
    value(&scrape(client, base).await?, series)
}

/// Waits until `/metrics` shows `series` at `expected` (counters are bumped as a connection
/// closes, so the client may see the close first).
async fn wait_metric(client: &reqwest::Client, base: &str, series: &str, expected: f64) {
    eventually(&format!("{series} = {expected}"), || async {
        (metric(client, base, series).await == Some(expected)).then_some(())
    })
    .await;
}

fn refused(reason: &str) -> String {
    format!("burnguard_connections_refused_total{{reason=\"{reason}\"}}")
}

fn reloads(result: &str) -> String {
    format!("burnguard_tls_reloads_total{{result=\"{result}\"}}")
}

/// Reads until the server closes the connection; panics if it sends anything or keeps it open
/// past [`BOUND`].
async fn closed_by_server(socket: &mut TcpStream) {
    let mut buf = [0u8; 256];
    match tokio::time::timeout(BOUND, socket.read(&mut buf)).await {
        Ok(Ok(0)) => {}
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Ok(Ok(n)) => panic!(
            "expected the server to close the connection, it sent {:?}",
            String::from_utf8_lossy(&buf[..n])
        ),
        Ok(Err(e)) => panic!("reading failed: {e}"),
        Err(_) => panic!("the server kept the connection open for {BOUND:?}"),
    }
}

/// A socket the server has not closed: reading finds nothing yet.
fn still_open(socket: &TcpStream) -> bool {
    let mut buf = [0u8; 1];
    matches!(socket.try_read(&mut buf), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

/// A certificate authority and a server certificate for [`HOST`] it signed.
struct Pki {
    ca: String,
    cert: String,
    key: String,
}

fn pki(name: &str) -> Pki {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("{name} CA"));
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().unwrap())
        .unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec![HOST.to_string()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    Pki {
        ca: ca.pem(),
        cert: cert.pem(),
        key: key.serialize_pem(),
    }
}

/// A directory laid out as the kubelet lays out a secret volume: `tls.crt` and `tls.key` are
/// links into `..data`, itself a link to the current version's directory, swapped atomically
/// (so the two files always change together).
struct SecretVolume {
    dir: tempfile::TempDir,
    versions: usize,
}

impl SecretVolume {
    fn new(cert: &str, key: &str) -> Self {
        let mut volume = Self {
            dir: tempfile::tempdir().unwrap(),
            versions: 0,
        };
        volume.update(cert, key);
        for name in ["tls.crt", "tls.key"] {
            std::os::unix::fs::symlink(
                Path::new("..data").join(name),
                volume.dir.path().join(name),
            )
            .unwrap();
        }
        volume
    }

    fn update(&mut self, cert: &str, key: &str) {
        self.versions += 1;
        let version = format!("..version_{}", self.versions);
        let dir = self.dir.path().join(&version);
        std::fs::create_dir(&dir).unwrap();
        common::write(&dir, "tls.crt", cert);
        common::write(&dir, "tls.key", key);
        let link = self.dir.path().join("..data_tmp");
        std::os::unix::fs::symlink(&version, &link).unwrap();
        std::fs::rename(&link, self.dir.path().join("..data")).unwrap();
    }

    fn cert(&self) -> PathBuf {
        self.dir.path().join("tls.crt")
    }

    fn key(&self) -> PathBuf {
        self.dir.path().join("tls.key")
    }
}

#[tokio::test]
async fn twenty_five_silent_connections_do_not_delay_a_normal_request_plain_or_tls() {
    for tls in [false, true] {
        let pki = pki("silent");
        let volume = SecretVolume::new(&pki.cert, &pki.key);
        let certificate = CertificateReloader::load(&volume.cert(), &volume.key()).unwrap();
        // Timeouts far longer than the test: the silent sockets stay held throughout, so only
        // concurrency can let the request through (one at a time, 25 handshakes of 60 s).
        let limits = ListenerLimits {
            header_read_timeout: Duration::from_secs(60),
            tls_handshake_timeout: Duration::from_secs(60),
            ..ListenerLimits::default()
        };
        let server = Server::start(limits, tls.then_some(&certificate)).await;
        let mut silent = Vec::new();
        for _ in 0..25 {
            silent.push(TcpStream::connect(server.addr).await.unwrap());
        }
        server.wait_open(25).await;

        let client = client(server.addr, Some(&pki.ca));
        let response = client
            .get(format!("{}/healthz", base(server.addr, tls)))
            .send()
            .await
            .unwrap_or_else(|e| panic!("tls={tls}: no answer while 25 sockets are silent: {e}"));
        assert_eq!(response.status().as_u16(), 200, "tls={tls}");
        assert_eq!(response.text().await.unwrap(), "ok\n");
        assert!(
            silent.iter().all(still_open),
            "tls={tls}: the silent sockets were held while the request was answered"
        );
        assert!(server.open_connections() >= 25, "tls={tls}");
        server.stop().await;
    }
}

#[tokio::test]
async fn a_stalled_or_failed_tls_handshake_is_closed_and_counted() {
    let pki = pki("handshake");
    let volume = SecretVolume::new(&pki.cert, &pki.key);
    let certificate = CertificateReloader::load(&volume.cert(), &volume.key()).unwrap();
    let limits = ListenerLimits {
        tls_handshake_timeout: Duration::from_secs(1),
        ..ListenerLimits::default()
    };
    let server = Server::start(limits, Some(&certificate)).await;
    let client = client(server.addr, Some(&pki.ca));
    let base = base(server.addr, true);

    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    closed_by_server(&mut silent).await;
    wait_metric(&client, &base, &refused("handshake_timeout"), 1.0).await;

    // Plain HTTP on the TLS port: the handshake fails (rustls may answer with an alert).
    let mut plain = TcpStream::connect(server.addr).await.unwrap();
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(BOUND, plain.read_to_end(&mut answer))
        .await
        .expect("the server closes a connection that is not TLS");
    assert!(
        read.is_err() || !String::from_utf8_lossy(&answer).contains("HTTP/1.1"),
        "plain HTTP got an HTTP answer on the TLS port"
    );
    wait_metric(&client, &base, &refused("handshake_failed"), 1.0).await;
    assert_eq!(metric(&client, &base, &refused("limit")).await, Some(0.0));
    server.stop().await;
}

#[tokio::test]
async fn a_half_sent_request_is_closed_after_the_header_timeout_and_counted() {
    let limits = ListenerLimits {
        header_read_timeout: Duration::from_secs(1),
        ..ListenerLimits::default()
    };
    let server = Server::start(limits, None).await;
    let client = client(server.addr, None);
    let base = base(server.addr, false);

    let mut half = TcpStream::connect(server.addr).await.unwrap();
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    // Others are answered meanwhile.
    let response = client.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    closed_by_server(&mut half).await;

    // A connection that sends nothing at all is closed the same way.
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    closed_by_server(&mut silent).await;
    wait_metric(&client, &base, &refused("header_timeout"), 2.0).await;
    server.stop().await;
}

#[tokio::test]
async fn the_connection_past_the_cap_is_closed_at_once_and_counted() {
    let limits = ListenerLimits {
        max_connections: 4,
        header_read_timeout: Duration::from_secs(60),
        ..ListenerLimits::default()
    };
    let server = Server::start(limits, None).await;
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(TcpStream::connect(server.addr).await.unwrap());
    }
    server.wait_open(4).await;

    let mut fifth = TcpStream::connect(server.addr).await.unwrap();
    closed_by_server(&mut fifth).await;
    assert!(held.iter().all(still_open), "the four held are kept");

    drop(held);
    server.wait_open(0).await;
    let client = client(server.addr, None);
    let base = base(server.addr, false);
    // One scrape, so no earlier connection of the client is still closing.
    let scrape = scrape(&client, &base).await.unwrap();
    assert_eq!(value(&scrape, &refused("limit")), Some(1.0), "{scrape}");
    assert_eq!(
        value(&scrape, "burnguard_connections_open"),
        Some(1.0),
        "the scrape itself is the one open connection"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_rotated_certificate_is_served_and_a_garbage_pair_is_refused_while_the_old_one_serves() {
    let first = pki("first");
    let mut volume = SecretVolume::new(&first.cert, &first.key);
    let certificate = CertificateReloader::load(&volume.cert(), &volume.key()).unwrap();
    let server = Server::start(ListenerLimits::default(), Some(&certificate)).await;
    let base = base(server.addr, true);
    let trusts_first = client(server.addr, Some(&first.ca));
    let status = trusts_first
        .get(format!("{base}/healthz"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 200);

    // cert-manager renews: a new CA and key, swapped in as the kubelet does.
    let second = pki("second");
    volume.update(&second.cert, &second.key);
    let trusts_second = client(server.addr, Some(&second.ca));
    eventually(
        "a client trusting only the new CA to be answered",
        || async {
            let response = trusts_second.get(format!("{base}/healthz")).send().await;
            response.ok().filter(|r| r.status() == 200)
        },
    )
    .await;
    // A new client: `trusts_first` could resume its TLS session, which shows no certificate.
    let fresh = client(server.addr, Some(&first.ca));
    assert!(
        fresh.get(format!("{base}/healthz")).send().await.is_err(),
        "the old certificate is no longer served"
    );
    assert_eq!(
        metric(&trusts_second, &base, &reloads("applied")).await,
        Some(1.0)
    );
    assert_eq!(
        metric(&trusts_second, &base, &reloads("rejected")).await,
        Some(0.0)
    );

    // A broken renewal: garbage is refused (counted once), the second pair keeps serving.
    volume.update("-----BEGIN CERTIFICATE-----\ngarbage\n", "not a key\n");
    wait_metric(&trusts_second, &base, &reloads("rejected"), 1.0).await;
    let status = trusts_second
        .get(format!("{base}/healthz"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 200);
    // So is a valid certificate with the key of another one.
    let third = pki("third");
    volume.update(&third.cert, &second.key);
    wait_metric(&trusts_second, &base, &reloads("rejected"), 2.0).await;
    assert_eq!(
        metric(&trusts_second, &base, &reloads("applied")).await,
        Some(1.0)
    );
    server.stop().await;
}
