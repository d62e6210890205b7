//! TLS termination (rustls) for clusters without a mesh, and for the admission webhook, which
//! the API server only calls over HTTPS: the server certificate, read from PEM files and
//! followed as they change (cert-manager rotates them in place), without a restart.
//!
//! Owns: reading and checking certificate/key pairs, swapping the one served, and counting
//! reloads. Must not touch: connections and their timeouts (`http::server`).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::http::metrics::ListenerMetrics;

/// How often the certificate files are read to see whether they changed.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(5);

/// Why a certificate/key pair could not be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the certificate chain {path}: {reason}")]
    Certificate { path: String, reason: String },
    #[error("cannot read the private key {path}: {reason}")]
    Key { path: String, reason: String },
    #[error("the certificate and key do not make a TLS configuration: {0}")]
    Config(String),
}

/// What a check of the files found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reload {
    /// The files are as they were last checked: nothing to do.
    Unchanged,
    /// A new pair is served from now on.
    Applied,
    /// The files changed but do not make a usable pair; the pair served before stays.
    Rejected(TlsError),
}

/// The server certificate, as a rustls resolver that always answers with the last good pair
/// read from `cert` and `key`. [`CertificateReloader::check`] (or the task
/// [`CertificateReloader::watch`] starts) reads the files again and swaps the pair when they
/// make a valid new one; a bad pair is refused and the old one keeps serving.
pub struct CertificateReloader {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
    /// The files' contents (or why they could not be read) at the last check, so one bad
    /// pair is reported once, not at every check.
    seen: Mutex<Seen>,
}

#[derive(Clone, PartialEq, Eq)]
enum Seen {
    Files { cert: Vec<u8>, key: Vec<u8> },
    Unreadable(TlsError),
}

impl CertificateReloader {
    /// Reads the pair; an error when it is not a usable one (the service must not start
    /// without a certificate).
    pub fn load(cert: &Path, key: &Path) -> Result<Arc<Self>, TlsError> {
        crate::adapters::prometheus::install_crypto_provider();
        let (cert_pem, key_pem) = read_files(cert, key)?;
        let certified = certified_key(cert, &cert_pem, key, &key_pem)?;
        Ok(Arc::new(Self {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            current: RwLock::new(Arc::new(certified)),
            seen: Mutex::new(Seen::Files {
                cert: cert_pem,
                key: key_pem,
            }),
        }))
    }

    /// Reads the files again and serves the new pair when they changed into a valid one.
    pub fn check(&self) -> Reload {
        let mut seen = match self.seen.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let now = match read_files(&self.cert, &self.key) {
            Ok((cert, key)) => Seen::Files { cert, key },
            Err(error) => Seen::Unreadable(error),
        };
        if *seen == now {
            return Reload::Unchanged;
        }
        let outcome = match &now {
            Seen::Unreadable(error) => Reload::Rejected(error.clone()),
            Seen::Files { cert, key } => match certified_key(&self.cert, cert, &self.key, key) {
                Ok(certified) => {
                    let mut current = match self.current.write() {
                        Ok(guard) => guard,
                        Err(poisoned) => poisoned.into_inner(),
                    };
                    *current = Arc::new(certified);
                    Reload::Applied
                }
                Err(error) => Reload::Rejected(error),
            },
        };
        *seen = now;
        outcome
    }

    /// Checks the files every `every` until `shutdown`, logging and counting each reload in
    /// `burnguard_tls_reloads_total{result}`.
    pub fn watch(
        self: Arc<Self>,
        every: Duration,
        metrics: ListenerMetrics,
        shutdown: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tick.tick() => {}
                }
                // Reading two small files; off the runtime's threads all the same.
                let this = self.clone();
                let Ok(outcome) = tokio::task::spawn_blocking(move || this.check()).await else {
                    continue;
                };
                match outcome {
                    Reload::Unchanged => {}
                    Reload::Applied => {
                        metrics.tls_reload(true);
                        tracing::info!(cert = %self.cert.display(), "TLS certificate reloaded");
                    }
                    Reload::Rejected(error) => {
                        metrics.tls_reload(false);
                        tracing::warn!(%error, "TLS certificate reload refused; serving the previous certificate");
                    }
                }
            }
        })
    }

    /// A TLS acceptor serving whichever pair is current at each handshake (HTTP/1.1).
    pub fn acceptor(self: &Arc<Self>) -> TlsAcceptor {
        let mut config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        TlsAcceptor::from(Arc::new(config))
    }
}

/// Names the files only: the key never prints.
impl std::fmt::Debug for CertificateReloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateReloader")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl ResolvesServerCert for CertificateReloader {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let current = match self.current.read() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        Some(current.clone())
    }
}

fn read_files(cert: &Path, key: &Path) -> Result<(Vec<u8>, Vec<u8>), TlsError> {
    let cert_pem = std::fs::read(cert).map_err(|e| TlsError::Certificate {
        path: cert.display().to_string(),
        reason: e.to_string(),
    })?;
    let key_pem = std::fs::read(key).map_err(|e| TlsError::Key {
        path: key.display().to_string(),
        reason: e.to_string(),
    })?;
    Ok((cert_pem, key_pem))
}

/// A chain and the key for its first certificate, checked to belong together.
fn certified_key(
    cert_path: &Path,
    cert_pem: &[u8],
    key_path: &Path,
    key_pem: &[u8],
) -> Result<CertifiedKey, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Certificate {
            path: cert_path.display().to_string(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Certificate {
            path: cert_path.display().to_string(),
            reason: "no certificate in it".into(),
        });
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| TlsError::Key {
        path: key_path.display().to_string(),
        reason: e.to_string(),
    })?;
    let provider = rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()));
    CertifiedKey::from_der(certs, key, &provider).map_err(|e| TlsError::Config(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (String, String) {
        let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        (made.cert.pem(), made.signing_key.serialize_pem())
    }

    fn served(reloader: &CertificateReloader) -> Vec<u8> {
        reloader.current.read().unwrap().cert[0].to_vec()
    }

    #[test]
    fn a_valid_new_pair_is_served_and_an_unchanged_one_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
        let (c1, k1) = pair();
        std::fs::write(&cert, &c1).unwrap();
        std::fs::write(&key, &k1).unwrap();
        let reloader = CertificateReloader::load(&cert, &key).unwrap();
        let first = served(&reloader);
        assert_eq!(reloader.check(), Reload::Unchanged);
        let (c2, k2) = pair();
        std::fs::write(&cert, &c2).unwrap();
        std::fs::write(&key, &k2).unwrap();
        assert_eq!(reloader.check(), Reload::Applied);
        assert_ne!(served(&reloader), first);
        assert_eq!(reloader.check(), Reload::Unchanged);
    }

    #[test]
    fn a_key_of_another_certificate_is_refused_once_and_the_old_pair_stays() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
        let (c1, k1) = pair();
        std::fs::write(&cert, &c1).unwrap();
        std::fs::write(&key, &k1).unwrap();
        let reloader = CertificateReloader::load(&cert, &key).unwrap();
        let first = served(&reloader);
        let (c2, _) = pair();
        std::fs::write(&cert, &c2).unwrap();
        assert!(
            matches!(reloader.check(), Reload::Rejected(TlsError::Config(_))),
            "a mismatched pair must be refused"
        );
        assert_eq!(served(&reloader), first);
        // The same bad files are not reported again.
        assert_eq!(reloader.check(), Reload::Unchanged);
        std::fs::remove_file(&key).unwrap();
        assert!(matches!(
            reloader.check(),
            Reload::Rejected(TlsError::Key { .. })
        ));
        assert_eq!(served(&reloader), first);
    }

    #[test]
    fn garbage_or_empty_files_do_not_start_the_service() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
        std::fs::write(&cert, "not a certificate").unwrap();
        std::fs::write(&key, "not a key").unwrap();
        let error = CertificateReloader::load(&cert, &key).unwrap_err();
        assert!(matches!(error, TlsError::Certificate { .. }), "{error}");
        let (c1, _) = pair();
        std::fs::write(&cert, &c1).unwrap();
        let error = CertificateReloader::load(&cert, &key).unwrap_err();
        assert!(matches!(error, TlsError::Key { .. }), "{error}");
    }
}
