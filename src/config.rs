//! Service settings for `serve`: a YAML file (`--config`), overridden by `BURNGUARD_*`
//! environment variables and flags (clap reads those two), over built-in defaults.
//!
//! Owns: the settings shape, defaults and precedence. Secrets are `SecretString`, so they never
//! print in `Debug` or logs. Must not touch: what the settings drive.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

use crate::adapters::kube::controller::Scope;
use crate::adapters::prometheus::PrometheusConfig;
use crate::domain::delivery::RetryLimits;
use crate::engine::ReadMode;
use crate::engine::remediate::RemediationSettings;
use crate::http::auth::{ApiAuth, ApiToken, WebhookAuth};
use crate::http::exposition::SloSeries;
use crate::http::server::ListenerLimits;

/// Why settings could not be assembled.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{0}")]
    Invalid(String),
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Pretty,
    Json,
}

/// The config file as written. Every field is optional: flags and env can supply them.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FileSettings {
    pub policies: Option<Vec<PathBuf>>,
    /// The SLO window of Sloth SLOs (`30d`).
    pub sloth_window: Option<String>,
    pub listen: Option<String>,
    pub interval: Option<String>,
    pub mode: Option<ReadMode>,
    pub concurrency: Option<usize>,
    pub log_format: Option<LogFormat>,
    pub db: Option<String>,
    pub evaluation_retention: Option<String>,
    /// One history row per SLO per this much time, plus every change of status.
    pub history_resolution: Option<String>,
    pub dry_run: Option<bool>,
    pub max_actions_per_hour: Option<u32>,
    pub unfreeze_after: Option<String>,
    pub shutdown_grace: Option<String>,
    pub instance_name: Option<String>,
    pub service_account: Option<String>,
    /// A file with one API token per line, `name:token` (a bare token is named `token-N`).
    pub api_token_file: Option<PathBuf>,
    /// Require a token for reads too.
    pub protect_reads: Option<bool>,
    /// Export each window's error ratio and burn rate per SLO at `/metrics` too.
    pub metrics_per_window: Option<bool>,
    /// Open connections allowed at once.
    pub max_connections: Option<usize>,
    /// How long a client may take to send a request's headers (`5s`).
    pub header_read_timeout: Option<String>,
    /// How long a TLS handshake may take (`10s`).
    pub tls_handshake_timeout: Option<String>,
    /// Attempts per notification and channel before it is dead-lettered.
    pub notify_max_attempts: Option<u32>,
    /// How long after it was written a notification is still tried (`24h`).
    pub notify_max_age: Option<String>,
    /// How long received webhook bodies are kept (default 7d).
    pub webhook_retention: Option<String>,
    /// How many received webhook bodies are kept at most (default 100000).
    pub webhook_retention_count: Option<u64>,
    /// How old a signed PagerDuty event (or an Opsgenie one with a time) may be (default 5m).
    pub webhook_replay_tolerance: Option<String>,
    pub prometheus: Option<FilePrometheus>,
    /// `serve` as a Kubernetes controller of ServiceLevelObjective and Playbook objects.
    pub kubernetes: Option<FileKubernetes>,
}

/// The `kubernetes:` section of the config file.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FileKubernetes {
    pub enabled: Option<bool>,
    /// Namespaces to watch; empty or absent: all.
    pub namespaces: Option<Vec<String>>,
    /// Only objects with these labels (`team=checkout`).
    pub selector: Option<String>,
    /// How often a number-only status change may be written per object (default 5m).
    pub status_interval: Option<String>,
    /// Server-side apply a PrometheusRule per SLO object (default true).
    pub prometheus_rules: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FilePrometheus {
    pub url: Option<String>,
    pub headers: Option<BTreeMap<String, String>>,
    pub bearer_token_file: Option<PathBuf>,
    pub basic_auth: Option<FileBasicAuth>,
    pub timeout: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FileBasicAuth {
    pub username: String,
    pub password_file: PathBuf,
}

impl FileSettings {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        serde_saphyr::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }
}

/// Everything `serve` runs with, resolved.
#[derive(Debug, Clone)]
pub struct Settings {
    pub policies: Vec<PathBuf>,
    /// How Sloth, Pyrra and OpenSLO files among the policies are read.
    pub load: crate::policies::LoadOptions,
    pub listen: SocketAddr,
    pub interval: Duration,
    pub mode: ReadMode,
    pub concurrency: usize,
    pub log_format: LogFormat,
    pub prometheus: PrometheusConfig,
    /// `sqlite://FILE` or `postgres://...`.
    pub db: String,
    /// How long evaluation history is kept.
    pub evaluation_retention: Duration,
    /// The history keeps one evaluation per SLO per this much time, and every change of
    /// status; zero keeps every evaluation. Every SLO's latest state is stored each cycle.
    pub history_resolution: Duration,
    /// Received webhook bodies (with their events) are kept for this long...
    pub webhook_retention: Duration,
    /// ...and at most this many.
    pub webhook_retention_count: u64,
    pub remediation: RemediationSettings,
    /// This process's stable name (pod or host name): the journal tells its own earlier
    /// incarnations from other replicas by it.
    pub instance_name: String,
    /// burnguard's own Kubernetes user, as the API server names it in admission requests.
    pub service_account: String,
    pub api_auth: ApiAuth,
    pub webhook_auth: WebhookAuth,
    pub notify: crate::adapters::notify::Channels,
    /// When notification retries end.
    pub notify_retry: RetryLimits,
    /// PEM certificate chain and key: serve HTTPS instead of HTTP.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Connection cap and the handshake and header timeouts.
    pub listener: ListenerLimits,
    /// Which per-SLO series `/metrics` carries.
    pub slo_series: SloSeries,
    /// Run the Kubernetes controller (`None`: policies come from files only).
    pub kubernetes: Option<KubernetesSettings>,
    /// The config file, read again on SIGHUP for the controller's namespaces and selector.
    pub config_file: Option<PathBuf>,
    /// Namespaces and selector given by flag or env, which win over the file on reload too.
    pub scope_overrides: ScopeOverrides,
}

/// The controller's settings, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct KubernetesSettings {
    pub scope: Scope,
    pub status_interval: Duration,
    pub prometheus_rules: bool,
}

/// `--namespaces` and `--selector`, when given.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScopeOverrides {
    pub namespaces: Option<Vec<String>>,
    pub selector: Option<String>,
}

/// The controller's scope: flags and env over the file.
pub fn resolve_scope(overrides: &ScopeOverrides, file: Option<&FileKubernetes>) -> Scope {
    let namespaces = overrides
        .namespaces
        .clone()
        .or_else(|| file.and_then(|f| f.namespaces.clone()))
        .unwrap_or_default()
        .into_iter()
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty() && n != "*" && n != "all")
        .collect();
    let selector = overrides
        .selector
        .clone()
        .or_else(|| file.and_then(|f| f.selector.clone()))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
    Scope {
        namespaces,
        selector,
    }
}

/// Reads the config file again for the controller's scope (on SIGHUP).
pub fn reload_scope(settings: &Settings) -> Result<Scope, ConfigError> {
    let file = match &settings.config_file {
        Some(path) => FileSettings::load(path)?,
        None => FileSettings::default(),
    };
    let scope = resolve_scope(&settings.scope_overrides, file.kubernetes.as_ref());
    check_scope(&scope)?;
    Ok(scope)
}

fn check_scope(scope: &Scope) -> Result<(), ConfigError> {
    if let Some(selector) = &scope.selector {
        crate::domain::validate::check_label_selector(selector).map_err(|why| {
            ConfigError::Invalid(format!("kubernetes selector `{selector}`: {why}"))
        })?;
    }
    Ok(())
}

fn resolve_kubernetes(
    overrides: &Overrides,
    file: Option<&FileKubernetes>,
) -> Result<Option<KubernetesSettings>, ConfigError> {
    let enabled = overrides.kubernetes || file.and_then(|f| f.enabled).unwrap_or(false);
    if !enabled {
        return Ok(None);
    }
    let scope = resolve_scope(&overrides.scope, file);
    check_scope(&scope)?;
    let status_interval = match (
        overrides.status_interval,
        file.and_then(|f| f.status_interval.clone()),
    ) {
        (Some(d), _) => d,
        (None, Some(text)) => humantime::parse_duration(&text).map_err(|e| {
            ConfigError::Invalid(format!("kubernetes statusInterval `{text}`: {e}"))
        })?,
        (None, None) => Duration::from_secs(300),
    };
    if status_interval.is_zero() {
        return Err(ConfigError::Invalid(
            "kubernetes statusInterval must be longer than zero".into(),
        ));
    }
    Ok(Some(KubernetesSettings {
        scope,
        status_interval,
        prometheus_rules: !overrides.no_prometheus_rules
            && file.and_then(|f| f.prometheus_rules).unwrap_or(true),
    }))
}

pub const DEFAULT_SERVICE_ACCOUNT: &str = "system:serviceaccount:burnguard:burnguard";

pub const DEFAULT_DB: &str = "sqlite://burnguard.db";
pub const DEFAULT_EVALUATION_RETENTION: Duration = Duration::from_secs(7 * 86_400);
/// One history row per SLO per 5 minutes: 2,016 a week, where a 30 s interval writes 20,160.
pub const DEFAULT_HISTORY_RESOLUTION: Duration = Duration::from_secs(300);
pub const DEFAULT_WEBHOOK_RETENTION: Duration = Duration::from_secs(7 * 86_400);
pub const DEFAULT_WEBHOOK_RETENTION_COUNT: u64 = 100_000;
pub const DEFAULT_WEBHOOK_REPLAY_TOLERANCE: Duration = crate::http::auth::DEFAULT_REPLAY_TOLERANCE;
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);

/// Values given on the command line or in the environment (already merged by clap).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub policies: Vec<PathBuf>,
    pub sloth_window: Option<crate::domain::policy::Window>,
    pub listen: Option<String>,
    pub interval: Option<Duration>,
    pub mode: Option<ReadMode>,
    pub concurrency: Option<usize>,
    pub log_format: Option<LogFormat>,
    pub db: Option<String>,
    pub evaluation_retention: Option<Duration>,
    pub history_resolution: Option<Duration>,
    pub webhook_retention: Option<Duration>,
    pub webhook_retention_count: Option<u64>,
    pub webhook_replay_tolerance: Option<Duration>,
    /// `true` forces dry run; `false` leaves it to the file.
    pub dry_run: bool,
    pub max_actions_per_hour: Option<u32>,
    pub unfreeze_after: Option<Duration>,
    pub shutdown_grace: Option<Duration>,
    pub instance_name: Option<String>,
    pub service_account: Option<String>,
    /// Token entries given directly (BURNGUARD_API_TOKENS), `name:token` or a bare token.
    pub api_tokens: Vec<SecretString>,
    pub api_token_file: Option<PathBuf>,
    pub protect_reads: bool,
    /// `true` forces the per-window families on; `false` leaves it to the file.
    pub metrics_per_window: bool,
    pub webhook_auth: WebhookAuth,
    pub notify: crate::adapters::notify::Channels,
    pub notify_max_attempts: Option<u32>,
    pub notify_max_age: Option<Duration>,
    pub tls: Option<(PathBuf, PathBuf)>,
    pub max_connections: Option<usize>,
    pub header_read_timeout: Option<Duration>,
    pub tls_handshake_timeout: Option<Duration>,
    pub prometheus: PrometheusOverrides,
    pub kubernetes: bool,
    pub scope: ScopeOverrides,
    pub status_interval: Option<Duration>,
    pub no_prometheus_rules: bool,
    pub config_file: Option<PathBuf>,
}

/// Prometheus settings from flags and env; each `None` falls back to the file.
#[derive(Debug, Default, Clone)]
pub struct PrometheusOverrides {
    pub url: Option<String>,
    pub headers: Vec<(String, String)>,
    pub bearer_token: Option<SecretString>,
    pub basic_auth: Option<(String, SecretString)>,
    pub timeout: Option<Duration>,
}

impl Settings {
    /// Flags and env over the file over defaults.
    pub fn resolve(overrides: Overrides, file: FileSettings) -> Result<Self, ConfigError> {
        let listener = resolve_listener(&overrides, &file)?;
        let kubernetes = resolve_kubernetes(&overrides, file.kubernetes.as_ref())?;
        let policies = if overrides.policies.is_empty() {
            file.policies.unwrap_or_default()
        } else {
            overrides.policies
        };
        if policies.is_empty() && kubernetes.is_none() {
            return Err(ConfigError::Invalid(
                "no policies: pass --policies PATH (repeatable), set BURNGUARD_POLICIES, list `policies:` in the config file, or take them from the cluster with --kubernetes".into(),
            ));
        }
        let sloth_window = match (overrides.sloth_window, &file.sloth_window) {
            (Some(w), _) => w,
            (None, Some(text)) => crate::domain::policy::Window::parse(text)
                .map_err(|e| ConfigError::Invalid(format!("slothWindow `{text}` {e}")))?,
            (None, None) => crate::policies::LoadOptions::default().sloth_window,
        };
        let listen_text = overrides
            .listen
            .or(file.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.to_string());
        let listen = listen_text.parse().map_err(|e| {
            ConfigError::Invalid(format!(
                "listen address `{listen_text}` is not host:port ({e})"
            ))
        })?;
        let interval = match (overrides.interval, file.interval) {
            (Some(d), _) => d,
            (None, Some(text)) => humantime::parse_duration(&text)
                .map_err(|e| ConfigError::Invalid(format!("interval `{text}`: {e}")))?,
            (None, None) => DEFAULT_INTERVAL,
        };
        if interval.is_zero() {
            return Err(ConfigError::Invalid(
                "interval must be longer than zero".into(),
            ));
        }
        let prometheus = resolve_prometheus(overrides.prometheus, file.prometheus)?;
        let evaluation_retention = match (overrides.evaluation_retention, file.evaluation_retention)
        {
            (Some(d), _) => d,
            (None, Some(text)) => humantime::parse_duration(&text)
                .map_err(|e| ConfigError::Invalid(format!("evaluationRetention `{text}`: {e}")))?,
            (None, None) => DEFAULT_EVALUATION_RETENTION,
        };
        let history_resolution = match (overrides.history_resolution, file.history_resolution) {
            (Some(d), _) => d,
            (None, Some(text)) => humantime::parse_duration(&text)
                .map_err(|e| ConfigError::Invalid(format!("historyResolution `{text}`: {e}")))?,
            (None, None) => DEFAULT_HISTORY_RESOLUTION,
        };
        let webhook_retention = match (overrides.webhook_retention, file.webhook_retention) {
            (Some(d), _) => d,
            (None, Some(text)) => humantime::parse_duration(&text)
                .map_err(|e| ConfigError::Invalid(format!("webhookRetention `{text}`: {e}")))?,
            (None, None) => DEFAULT_WEBHOOK_RETENTION,
        };
        let webhook_retention_count = overrides
            .webhook_retention_count
            .or(file.webhook_retention_count)
            .unwrap_or(DEFAULT_WEBHOOK_RETENTION_COUNT);
        if webhook_retention_count == 0 {
            return Err(ConfigError::Invalid(
                "webhookRetentionCount must be at least 1".into(),
            ));
        }
        let replay_tolerance = match (
            overrides.webhook_replay_tolerance,
            file.webhook_replay_tolerance,
        ) {
            (Some(d), _) => d,
            (None, Some(text)) => humantime::parse_duration(&text).map_err(|e| {
                ConfigError::Invalid(format!("webhookReplayTolerance `{text}`: {e}"))
            })?,
            (None, None) => DEFAULT_WEBHOOK_REPLAY_TOLERANCE,
        };
        // A replayed event is refused by its id while the event is kept, and by its time after:
        // the two must overlap.
        if replay_tolerance >= webhook_retention {
            return Err(ConfigError::Invalid(format!(
                "webhookReplayTolerance ({}) must be shorter than webhookRetention ({}): an event older than the retention is forgotten, so only its age refuses a replay",
                humantime::format_duration(replay_tolerance),
                humantime::format_duration(webhook_retention)
            )));
        }
        let defaults = RemediationSettings::default();
        let unfreeze_after = match (overrides.unfreeze_after, file.unfreeze_after) {
            (Some(d), _) => d,
            (None, Some(text)) => humantime::parse_duration(&text)
                .map_err(|e| ConfigError::Invalid(format!("unfreezeAfter `{text}`: {e}")))?,
            (None, None) => defaults.unfreeze_after,
        };
        let shutdown_grace = match (overrides.shutdown_grace, file.shutdown_grace) {
            (Some(d), _) => d,
            (None, Some(text)) => humantime::parse_duration(&text)
                .map_err(|e| ConfigError::Invalid(format!("shutdownGrace `{text}`: {e}")))?,
            (None, None) => defaults.shutdown_grace,
        };
        let remediation = RemediationSettings {
            dry_run: overrides.dry_run || file.dry_run.unwrap_or(false),
            max_actions_per_hour: overrides
                .max_actions_per_hour
                .or(file.max_actions_per_hour)
                .unwrap_or(defaults.max_actions_per_hour),
            unfreeze_after,
            unfreeze_margin: defaults.unfreeze_margin,
            shutdown_grace,
            ..defaults
        };
        let instance_name = overrides
            .instance_name
            .or(file.instance_name)
            .or_else(|| std::env::var("HOSTNAME").ok())
            .or_else(|| {
                std::fs::read_to_string("/etc/hostname")
                    .ok()
                    .map(|h| h.trim().to_string())
            })
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "burnguard".into());
        let mut entries: Vec<(String, SecretString)> = overrides
            .api_tokens
            .into_iter()
            .enumerate()
            .map(|(i, entry)| (format!("BURNGUARD_API_TOKENS entry {}", i + 1), entry))
            .collect();
        if let Some(path) = overrides.api_token_file.or(file.api_token_file) {
            let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
                path: path.clone(),
                source,
            })?;
            for (n, line) in text.lines().enumerate() {
                let line = line.trim();
                if !line.is_empty() && !line.starts_with('#') {
                    entries.push((
                        format!("{}:{}", path.display(), n + 1),
                        SecretString::from(line.to_string()),
                    ));
                }
            }
        }
        let mut tokens = Vec::with_capacity(entries.len());
        for (i, (origin, entry)) in entries.iter().enumerate() {
            tokens.push(
                ApiToken::parse(entry, i + 1)
                    .map_err(|why| ConfigError::Invalid(format!("API token ({origin}): {why}")))?,
            );
        }
        let notify_retry = resolve_notify_retry(
            (overrides.notify_max_attempts, overrides.notify_max_age),
            (file.notify_max_attempts, file.notify_max_age),
        )?;
        let mut webhook_auth = overrides.webhook_auth;
        webhook_auth.replay_tolerance = replay_tolerance;
        let api_auth = ApiAuth {
            tokens,
            protect_reads: overrides.protect_reads || file.protect_reads.unwrap_or(false),
        };
        let slo_series = if overrides.metrics_per_window || file.metrics_per_window == Some(true) {
            SloSeries::PerWindow
        } else {
            SloSeries::Summary
        };
        Ok(Self {
            kubernetes,
            slo_series,
            config_file: overrides.config_file,
            scope_overrides: overrides.scope,
            api_auth,
            webhook_auth,
            webhook_retention,
            webhook_retention_count,
            notify: overrides.notify,
            notify_retry,
            tls: overrides.tls,
            listener,
            remediation,
            instance_name,
            service_account: overrides
                .service_account
                .or(file.service_account)
                .unwrap_or_else(|| DEFAULT_SERVICE_ACCOUNT.to_string()),
            db: overrides
                .db
                .or(file.db)
                .unwrap_or_else(|| DEFAULT_DB.to_string()),
            evaluation_retention,
            history_resolution,
            policies,
            load: crate::policies::LoadOptions { sloth_window },
            listen,
            interval,
            mode: overrides.mode.or(file.mode).unwrap_or_default(),
            concurrency: overrides
                .concurrency
                .or(file.concurrency)
                .unwrap_or(16)
                .max(1),
            log_format: overrides.log_format.or(file.log_format).unwrap_or_default(),
            prometheus,
        })
    }
}

/// The listener's limits: flags and env over the file over defaults. Zero is refused: no
/// connection at all, or a timeout that closes every connection at once, is never meant.
fn resolve_listener(
    overrides: &Overrides,
    file: &FileSettings,
) -> Result<ListenerLimits, ConfigError> {
    let defaults = ListenerLimits::default();
    let duration = |flag: Option<Duration>, text: &Option<String>, name: &str, default| {
        let value = match (flag, text) {
            (Some(d), _) => d,
            (None, Some(text)) => humantime::parse_duration(text)
                .map_err(|e| ConfigError::Invalid(format!("{name} `{text}`: {e}")))?,
            (None, None) => default,
        };
        if value.is_zero() {
            return Err(ConfigError::Invalid(format!(
                "{name} must be longer than zero"
            )));
        }
        Ok(value)
    };
    let max_connections = overrides
        .max_connections
        .or(file.max_connections)
        .unwrap_or(defaults.max_connections);
    if max_connections == 0 {
        return Err(ConfigError::Invalid(
            "maxConnections must be at least 1".into(),
        ));
    }
    Ok(ListenerLimits {
        max_connections,
        header_read_timeout: duration(
            overrides.header_read_timeout,
            &file.header_read_timeout,
            "headerReadTimeout",
            defaults.header_read_timeout,
        )?,
        tls_handshake_timeout: duration(
            overrides.tls_handshake_timeout,
            &file.tls_handshake_timeout,
            "tlsHandshakeTimeout",
            defaults.tls_handshake_timeout,
        )?,
    })
}

/// When notification retries end: flags and env over the file over the defaults (20, 24h).
fn resolve_notify_retry(
    (flag_attempts, flag_age): (Option<u32>, Option<Duration>),
    (file_attempts, file_age): (Option<u32>, Option<String>),
) -> Result<RetryLimits, ConfigError> {
    let defaults = RetryLimits::default();
    let max_attempts = flag_attempts
        .or(file_attempts)
        .unwrap_or(defaults.max_attempts);
    if max_attempts == 0 {
        return Err(ConfigError::Invalid(
            "notify max attempts must be at least 1".into(),
        ));
    }
    let max_age = match (flag_age, file_age) {
        (Some(d), _) => d,
        (None, Some(text)) => humantime::parse_duration(&text)
            .map_err(|e| ConfigError::Invalid(format!("notifyMaxAge `{text}`: {e}")))?,
        (None, None) => Duration::from_secs(defaults.max_age as u64),
    };
    if max_age.as_secs() == 0 {
        return Err(ConfigError::Invalid(
            "notify max age must be at least 1s".into(),
        ));
    }
    Ok(RetryLimits {
        max_attempts,
        max_age: i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX),
    })
}

/// Prometheus client settings: flags and env over the file over defaults.
pub fn resolve_prometheus(
    flags: PrometheusOverrides,
    file: Option<FilePrometheus>,
) -> Result<PrometheusConfig, ConfigError> {
    let file = file.unwrap_or_default();
    let Some(url) = flags.url.or(file.url) else {
        return Err(ConfigError::Invalid(
            "no Prometheus URL: pass --prometheus URL, set BURNGUARD_PROMETHEUS_URL, or set prometheus.url in the config file".into(),
        ));
    };
    let mut config = PrometheusConfig::new(url);
    config.headers = flags.headers;
    for (name, value) in file.headers.unwrap_or_default() {
        if !config
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(&name))
        {
            config.headers.push((name, value));
        }
    }
    config.bearer_token = match (flags.bearer_token, file.bearer_token_file) {
        (Some(token), _) => Some(token),
        (None, Some(path)) => Some(read_secret(&path)?),
        (None, None) => None,
    };
    config.basic_auth = match (flags.basic_auth, file.basic_auth) {
        (Some(auth), _) => Some(auth),
        (None, Some(auth)) => Some((auth.username, read_secret(&auth.password_file)?)),
        (None, None) => None,
    };
    if let Some(timeout) = flags.timeout {
        config.timeout = timeout;
    } else if let Some(text) = file.timeout {
        config.timeout = humantime::parse_duration(&text)
            .map_err(|e| ConfigError::Invalid(format!("prometheus.timeout `{text}`: {e}")))?;
    }
    Ok(config)
}

/// A secret from a file, trailing newline dropped.
pub fn read_secret(path: &Path) -> Result<SecretString, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(SecretString::from(text.trim_end().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> FileSettings {
        serde_saphyr::from_str(text).unwrap()
    }

    #[test]
    fn the_sloth_window_comes_from_the_flag_the_file_or_the_default() {
        let base = "policies: [a]\nprometheus: {url: http://x}\n";
        let resolve = |flag: Option<&str>, file_text: &str| {
            Settings::resolve(
                Overrides {
                    sloth_window: flag.map(|w| crate::domain::policy::Window::parse(w).unwrap()),
                    ..Default::default()
                },
                file(file_text),
            )
            .map(|s| s.load.sloth_window.to_string())
        };
        assert_eq!(resolve(None, base).unwrap(), "30d");
        assert_eq!(
            resolve(None, &format!("{base}slothWindow: 28d\n")).unwrap(),
            "28d"
        );
        assert_eq!(
            resolve(Some("7d"), &format!("{base}slothWindow: 28d\n")).unwrap(),
            "7d"
        );
        let error = resolve(None, &format!("{base}slothWindow: 1 month\n")).unwrap_err();
        assert!(error.to_string().contains("slothWindow"), "{error}");
    }

    #[test]
    fn flags_override_the_file_and_the_file_overrides_defaults() {
        let f = file(
            "policies: [a/]\nlisten: 127.0.0.1:9999\ninterval: 1m\nprometheus: {url: http://file:9090, timeout: 3s, headers: {X-Scope-OrgID: t1}}\n",
        );
        let settings = Settings::resolve(
            Overrides {
                interval: Some(Duration::from_secs(5)),
                ..Overrides::default()
            },
            f,
        )
        .unwrap();
        assert_eq!(settings.policies, vec![PathBuf::from("a/")]);
        assert_eq!(settings.listen.to_string(), "127.0.0.1:9999");
        assert_eq!(settings.interval, Duration::from_secs(5));
        assert_eq!(settings.prometheus.url, "http://file:9090");
        assert_eq!(settings.prometheus.timeout, Duration::from_secs(3));
        assert_eq!(
            settings.prometheus.headers,
            vec![("X-Scope-OrgID".to_string(), "t1".to_string())]
        );
        assert_eq!(settings.mode, ReadMode::Auto);
    }

    #[test]
    fn a_flag_url_wins_over_the_file() {
        let f = file("policies: [a/]\nprometheus: {url: http://file:9090}\n");
        let settings = Settings::resolve(
            Overrides {
                prometheus: PrometheusOverrides {
                    url: Some("http://flag:9090".into()),
                    ..PrometheusOverrides::default()
                },
                ..Overrides::default()
            },
            f,
        )
        .unwrap();
        assert_eq!(settings.prometheus.url, "http://flag:9090");
        assert_eq!(settings.listen.to_string(), DEFAULT_LISTEN);
    }

    #[test]
    fn missing_policies_or_url_are_clear_errors() {
        let e = Settings::resolve(Overrides::default(), file("prometheus: {url: http://x}\n"))
            .unwrap_err();
        assert!(e.to_string().contains("no policies"), "{e}");
        let e = Settings::resolve(Overrides::default(), file("policies: [a]\n")).unwrap_err();
        assert!(e.to_string().contains("no Prometheus URL"), "{e}");
    }

    fn with_tokens(entries: &[&str], file_text: Option<&str>) -> Result<Settings, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let token_file = file_text.map(|text| {
            let path = dir.path().join("tokens");
            std::fs::write(&path, text).unwrap();
            path
        });
        Settings::resolve(
            Overrides {
                api_tokens: entries.iter().map(|e| SecretString::from(*e)).collect(),
                api_token_file: token_file,
                ..Overrides::default()
            },
            file("policies: [a]\nprometheus: {url: http://x}\n"),
        )
    }

    #[test]
    fn api_tokens_have_names_and_bare_tokens_are_numbered() {
        let settings = with_tokens(
            &["ci:s3cret", "bare-one"],
            Some("# people\nalice: t-alice\n\nbare-two\n"),
        )
        .unwrap();
        let auth = &settings.api_auth;
        let names: Vec<&str> = auth.tokens.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["ci", "token-2", "alice", "token-4"]);
        assert_eq!(auth.accepts("s3cret"), Some("ci"));
        assert_eq!(auth.accepts("t-alice"), Some("alice"));
        assert_eq!(auth.accepts("bare-two"), Some("token-4"));
        assert_eq!(
            auth.accepts("ci:s3cret"),
            None,
            "the name is not part of the token"
        );
        assert_eq!(auth.accepts("s3cre"), None);
        let shown = format!("{auth:?}");
        assert!(
            shown.contains("alice") && !shown.contains("t-alice"),
            "{shown}"
        );
    }

    #[test]
    fn two_tokens_may_share_a_name_while_one_rotates() {
        let settings = with_tokens(&["ci:old", "ci:new"], None).unwrap();
        assert_eq!(settings.api_auth.accepts("old"), Some("ci"));
        assert_eq!(settings.api_auth.accepts("new"), Some("ci"));
    }

    #[test]
    fn bad_token_entries_are_refused_without_showing_the_token() {
        for (entry, says) in [
            ("bad name:s3cret", "the name before"),
            (":s3cret", "the name before"),
            ("ci:", "is empty"),
        ] {
            let e = with_tokens(&[entry], None).unwrap_err().to_string();
            assert!(e.contains(says), "{entry}: {e}");
            assert!(!e.contains("s3cret"), "{entry}: {e}");
        }
        let e = with_tokens(&[], Some("ops team:abc\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("tokens:1"), "the file and line are named: {e}");
    }

    #[test]
    fn webhook_retention_and_replay_tolerance_have_defaults_and_must_overlap() {
        let settings = Settings::resolve(
            Overrides::default(),
            file("policies: [a]\nprometheus: {url: http://x}\n"),
        )
        .unwrap();
        assert_eq!(settings.webhook_retention, DEFAULT_WEBHOOK_RETENTION);
        assert_eq!(settings.webhook_retention_count, 100_000);
        assert_eq!(
            settings.webhook_auth.replay_tolerance,
            Duration::from_secs(300)
        );
        let settings = Settings::resolve(
            Overrides {
                webhook_retention_count: Some(10),
                ..Overrides::default()
            },
            file("policies: [a]\nprometheus: {url: http://x}\nwebhookRetention: 1d\nwebhookReplayTolerance: 2m\n"),
        )
        .unwrap();
        assert_eq!(settings.webhook_retention, Duration::from_secs(86_400));
        assert_eq!(settings.webhook_retention_count, 10);
        assert_eq!(
            settings.webhook_auth.replay_tolerance,
            Duration::from_secs(120)
        );
        let e = Settings::resolve(
            Overrides::default(),
            file("policies: [a]\nprometheus: {url: http://x}\nwebhookRetention: 1m\n"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("must be shorter than"), "{e}");
        let e = Settings::resolve(
            Overrides {
                webhook_retention_count: Some(0),
                ..Overrides::default()
            },
            file("policies: [a]\nprometheus: {url: http://x}\n"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("at least 1"), "{e}");
    }

    #[test]
    fn listener_limits_come_from_flags_over_the_file_over_defaults() {
        let base = "policies: [a]\nprometheus: {url: http://x}\n";
        let settings = Settings::resolve(Overrides::default(), file(base)).unwrap();
        assert_eq!(settings.listener, ListenerLimits::default());
        assert_eq!(settings.listener.max_connections, 1024);
        let f = file(&format!(
            "{base}maxConnections: 10\nheaderReadTimeout: 2s\ntlsHandshakeTimeout: 3s\n"
        ));
        let settings = Settings::resolve(
            Overrides {
                max_connections: Some(20),
                ..Overrides::default()
            },
            f,
        )
        .unwrap();
        assert_eq!(
            settings.listener,
            ListenerLimits {
                max_connections: 20,
                header_read_timeout: Duration::from_secs(2),
                tls_handshake_timeout: Duration::from_secs(3),
            }
        );
    }

    #[test]
    fn a_zero_connection_cap_or_timeout_is_refused() {
        let base = "policies: [a]\nprometheus: {url: http://x}\n";
        for (extra, says) in [
            ("maxConnections: 0\n", "maxConnections"),
            ("headerReadTimeout: 0s\n", "headerReadTimeout"),
            ("tlsHandshakeTimeout: soon\n", "tlsHandshakeTimeout"),
        ] {
            let e = Settings::resolve(Overrides::default(), file(&format!("{base}{extra}")))
                .unwrap_err();
            assert!(e.to_string().contains(says), "{extra}: {e}");
        }
    }

    #[test]
    fn the_history_resolution_defaults_to_five_minutes_reads_zero_and_refuses_nonsense() {
        let base = "policies: [a]\nprometheus: {url: http://x}\n";
        let resolution = |extra: &str| {
            Settings::resolve(Overrides::default(), file(&format!("{base}{extra}")))
                .map(|s| s.history_resolution)
        };
        assert_eq!(resolution("").unwrap(), Duration::from_secs(300));
        assert_eq!(
            resolution("historyResolution: 0s\n").unwrap(),
            Duration::ZERO
        );
        assert_eq!(
            resolution("historyResolution: 1h\n").unwrap(),
            Duration::from_secs(3_600)
        );
        for bad in ["soon", "-5m", "5"] {
            let e = resolution(&format!("historyResolution: \"{bad}\"\n")).unwrap_err();
            assert!(
                e.to_string()
                    .contains(&format!("historyResolution `{bad}`")),
                "{bad}: {e}"
            );
        }
        let flag = Overrides {
            history_resolution: Some(Duration::from_secs(60)),
            ..Overrides::default()
        };
        let settings = Settings::resolve(flag, file(&format!("{base}historyResolution: 1h\n")));
        assert_eq!(
            settings.unwrap().history_resolution,
            Duration::from_secs(60)
        );
    }

    #[test]
    fn notification_limits_default_to_twenty_attempts_and_a_day_and_flags_beat_the_file() {
        let base = "policies: [a]\nprometheus: {url: http://x}\n";
        let settings = Settings::resolve(Overrides::default(), file(base)).unwrap();
        assert_eq!(
            settings.notify_retry,
            RetryLimits {
                max_attempts: 20,
                max_age: 86_400
            }
        );
        let from_file = format!("{base}notifyMaxAttempts: 5\nnotifyMaxAge: 2h\n");
        let settings = Settings::resolve(Overrides::default(), file(&from_file)).unwrap();
        assert_eq!(
            settings.notify_retry,
            RetryLimits {
                max_attempts: 5,
                max_age: 7200
            }
        );
        let flags = Overrides {
            notify_max_attempts: Some(3),
            notify_max_age: Some(Duration::from_secs(60)),
            ..Overrides::default()
        };
        let settings = Settings::resolve(flags, file(&from_file)).unwrap();
        assert_eq!(
            settings.notify_retry,
            RetryLimits {
                max_attempts: 3,
                max_age: 60
            }
        );
        for bad in [
            "notifyMaxAttempts: 0\n",
            "notifyMaxAge: 0s\n",
            "notifyMaxAge: soon\n",
        ] {
            let e =
                Settings::resolve(Overrides::default(), file(&format!("{base}{bad}"))).unwrap_err();
            assert!(e.to_string().contains("notify"), "{bad}: {e}");
        }
    }

    #[test]
    fn the_controller_is_off_unless_asked_and_its_scope_comes_from_flags_over_the_file() {
        let base = "prometheus: {url: http://x}\n";
        // Without policies and without the controller there is nothing to serve.
        let e = Settings::resolve(Overrides::default(), file(base)).unwrap_err();
        assert!(e.to_string().contains("--kubernetes"), "{e}");
        let text = format!(
            "{base}kubernetes:\n  enabled: true\n  namespaces: [shop, all]\n  selector: team=payments\n  statusInterval: 2m\n"
        );
        let s = Settings::resolve(Overrides::default(), file(&text)).unwrap();
        let k = s.kubernetes.unwrap();
        assert_eq!(
            k.scope.namespaces,
            ["shop"],
            "`all` means every namespace, not one named all"
        );
        assert_eq!(k.scope.selector.as_deref(), Some("team=payments"));
        assert_eq!(k.status_interval, Duration::from_secs(120));
        assert!(k.prometheus_rules);
        let flags = Overrides {
            scope: ScopeOverrides {
                namespaces: Some(vec!["payments".into()]),
                selector: None,
            },
            no_prometheus_rules: true,
            ..Overrides::default()
        };
        let k = Settings::resolve(flags, file(&text))
            .unwrap()
            .kubernetes
            .unwrap();
        assert_eq!(k.scope.namespaces, ["payments"]);
        assert_eq!(
            k.scope.selector.as_deref(),
            Some("team=payments"),
            "the file fills what flags leave"
        );
        assert!(!k.prometheus_rules);
        let bad = format!("{base}kubernetes: {{enabled: true, selector: 'team in (a'}}\n");
        let e = Settings::resolve(Overrides::default(), file(&bad)).unwrap_err();
        assert!(e.to_string().contains("kubernetes selector"), "{e}");
        let zero = format!("{base}kubernetes: {{enabled: true, statusInterval: 0s}}\n");
        assert!(Settings::resolve(Overrides::default(), file(&zero)).is_err());
    }

    #[test]
    fn unknown_config_keys_are_refused() {
        assert!(serde_saphyr::from_str::<FileSettings>("polices: [a]\n").is_err());
    }
}
