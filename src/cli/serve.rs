//! `burnguard serve`: settings from flags, env and an optional config file, then the service.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use tokio_util::sync::CancellationToken;

use super::args::{PrometheusArgs, parse_duration};
use crate::config::{FileSettings, LogFormat, Overrides, Settings};
use crate::engine::ReadMode;
use crate::service::{self, ServiceError};
use crate::telemetry;

/// Flags of `serve`; each also reads a `BURNGUARD_*` variable and can come from `--config`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// YAML config file; flags and BURNGUARD_* variables override it.
    #[arg(long, env = "BURNGUARD_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Policy file or directory (repeatable; env: comma-separated).
    #[arg(
        long = "policies",
        env = "BURNGUARD_POLICIES",
        value_delimiter = ',',
        value_name = "PATH"
    )]
    pub policies: Vec<PathBuf>,
    #[command(flatten)]
    pub prometheus: PrometheusArgs,
    /// The SLO window of Sloth SLOs, whose files carry none (default 30d, as Sloth's).
    #[arg(long = "window", env = "BURNGUARD_SLOTH_WINDOW", value_parser = super::args::parse_window, value_name = "DURATION")]
    pub sloth_window: Option<crate::domain::policy::Window>,
    /// Address to serve /metrics, /healthz and /readyz on (port 0 picks a free port).
    #[arg(long, env = "BURNGUARD_LISTEN", value_name = "ADDR")]
    pub listen: Option<String>,
    /// Time between evaluation cycles (SLOs with a `schedule` follow it instead).
    #[arg(long, env = "BURNGUARD_INTERVAL", value_parser = parse_duration, value_name = "DURATION")]
    pub interval: Option<Duration>,
    /// raw | rules | auto (default auto).
    #[arg(long, env = "BURNGUARD_MODE", value_enum)]
    pub mode: Option<ReadMode>,
    /// Queries in flight at once.
    #[arg(long, env = "BURNGUARD_CONCURRENCY")]
    pub concurrency: Option<usize>,
    /// pretty | json.
    #[arg(long, env = "BURNGUARD_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Database: sqlite://FILE (default sqlite://burnguard.db, created if missing) or postgres://...
    #[arg(long, env = "BURNGUARD_DB", value_name = "URL")]
    pub db: Option<String>,
    /// How long evaluation history is kept (default 7d).
    #[arg(long, env = "BURNGUARD_EVALUATION_RETENTION", value_parser = parse_duration, value_name = "DURATION")]
    pub evaluation_retention: Option<Duration>,
    /// The history keeps one evaluation per SLO per this much time plus every change of
    /// status (default 5m; 0s keeps every evaluation).
    #[arg(long, env = "BURNGUARD_HISTORY_RESOLUTION", value_parser = parse_duration, value_name = "DURATION")]
    pub history_resolution: Option<Duration>,
    /// How long received webhook bodies are kept (default 7d).
    #[arg(long, env = "BURNGUARD_WEBHOOK_RETENTION", value_parser = parse_duration, value_name = "DURATION")]
    pub webhook_retention: Option<Duration>,
    /// How many received webhook bodies are kept at most (default 100000).
    #[arg(long, env = "BURNGUARD_WEBHOOK_RETENTION_COUNT", value_name = "N")]
    pub webhook_retention_count: Option<u64>,
    /// How far from now a signed PagerDuty event (an Opsgenie event with a time) may be (default 5m).
    #[arg(long, env = "BURNGUARD_WEBHOOK_REPLAY_TOLERANCE", value_parser = parse_duration, value_name = "DURATION")]
    pub webhook_replay_tolerance: Option<Duration>,
    /// Run no action: journal and report what would have been done.
    #[arg(long, env = "BURNGUARD_DRY_RUN")]
    pub dry_run: bool,
    /// Actions allowed per rolling hour across all SLOs (default 20).
    #[arg(long, env = "BURNGUARD_MAX_ACTIONS_PER_HOUR")]
    pub max_actions_per_hour: Option<u32>,
    /// How long nothing may fire before a freeze lifts itself (default 1h).
    #[arg(long, env = "BURNGUARD_UNFREEZE_AFTER", value_parser = parse_duration, value_name = "DURATION")]
    pub unfreeze_after: Option<Duration>,
    /// How long shutdown waits for running steps before journaling them as interrupted (default 30s).
    #[arg(long, env = "BURNGUARD_SHUTDOWN_GRACE", value_parser = parse_duration, value_name = "DURATION")]
    pub shutdown_grace: Option<Duration>,
    /// This process's stable name, unique among replicas (default: $HOSTNAME, the pod name).
    #[arg(long, env = "BURNGUARD_INSTANCE_NAME", value_name = "NAME")]
    pub instance_name: Option<String>,
    /// burnguard's Kubernetes user; the admission webhook always lets it through.
    #[arg(long, env = "BURNGUARD_SERVICE_ACCOUNT", value_name = "USER")]
    pub service_account: Option<String>,
    /// API bearer tokens, comma-separated `name:token` entries (a bare token is named
    /// `token-N`); prefer the file.
    #[arg(
        long = "api-token",
        env = "BURNGUARD_API_TOKENS",
        value_delimiter = ',',
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub api_tokens: Vec<String>,
    /// A file with one API token per line, `name:token` (a bare token is named `token-N`).
    #[arg(long, env = "BURNGUARD_API_TOKEN_FILE", value_name = "FILE")]
    pub api_token_file: Option<PathBuf>,
    /// Require a token for reads of the API too.
    #[arg(long, env = "BURNGUARD_PROTECT_READS")]
    pub protect_reads: bool,
    /// Export each window's error ratio and burn rate per SLO at /metrics too (16 more series
    /// an SLO at the default windows; the recording rules record the same numbers).
    #[arg(long, env = "BURNGUARD_METRICS_PER_WINDOW")]
    pub metrics_per_window: bool,
    /// Bearer token Alertmanager sends (its http_config.authorization.credentials).
    #[arg(
        long,
        env = "BURNGUARD_ALERTMANAGER_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub alertmanager_token: Option<String>,
    /// Basic auth Alertmanager sends, `user:password`.
    #[arg(
        long,
        env = "BURNGUARD_ALERTMANAGER_BASIC_AUTH",
        hide_env_values = true,
        value_name = "USER:PASSWORD"
    )]
    pub alertmanager_basic_auth: Option<String>,
    /// Take Alertmanager webhooks without credentials (by default the route needs
    /// --alertmanager-token or --alertmanager-basic-auth).
    #[arg(long, env = "BURNGUARD_ALERTMANAGER_ALLOW_UNAUTHENTICATED")]
    pub alertmanager_allow_unauthenticated: bool,
    /// PagerDuty webhook signing secrets, comma-separated (several while rotating).
    #[arg(
        long = "pagerduty-secret",
        env = "BURNGUARD_PAGERDUTY_SECRETS",
        value_delimiter = ',',
        hide_env_values = true,
        value_name = "SECRET"
    )]
    pub pagerduty_secrets: Vec<String>,
    /// The secret Opsgenie sends in X-Burnguard-Token.
    #[arg(
        long,
        env = "BURNGUARD_OPSGENIE_SECRET",
        hide_env_values = true,
        value_name = "SECRET"
    )]
    pub opsgenie_secret: Option<String>,
    /// Notify PagerDuty (Events API v2) with this routing key.
    #[arg(
        long,
        env = "BURNGUARD_PAGERDUTY_ROUTING_KEY",
        hide_env_values = true,
        value_name = "KEY"
    )]
    pub notify_pagerduty_routing_key: Option<String>,
    /// PagerDuty Events API endpoint.
    #[arg(long, env = "BURNGUARD_PAGERDUTY_EVENTS_URL", default_value = crate::adapters::notify::PAGERDUTY_EVENTS_URL, value_name = "URL")]
    pub notify_pagerduty_url: String,
    /// Notify this Alertmanager (base URL) so its routing tree applies.
    #[arg(long, env = "BURNGUARD_NOTIFY_ALERTMANAGER", value_name = "URL")]
    pub notify_alertmanager: Option<String>,
    /// Notify this URL with a JSON webhook.
    #[arg(long, env = "BURNGUARD_NOTIFY_WEBHOOK", value_name = "URL")]
    pub notify_webhook: Option<String>,
    /// Sign the JSON webhook with HMAC-SHA256 using this secret.
    #[arg(
        long,
        env = "BURNGUARD_NOTIFY_WEBHOOK_SECRET",
        hide_env_values = true,
        value_name = "SECRET"
    )]
    pub notify_webhook_secret: Option<String>,
    /// Attempts per notification and channel before it is dead-lettered (default 20).
    #[arg(long, env = "BURNGUARD_NOTIFY_MAX_ATTEMPTS", value_name = "N")]
    pub notify_max_attempts: Option<u32>,
    /// How long after it was written a notification is still tried (default 24h).
    #[arg(long, env = "BURNGUARD_NOTIFY_MAX_AGE", value_parser = parse_duration, value_name = "DURATION")]
    pub notify_max_age: Option<Duration>,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key).
    #[arg(
        long,
        env = "BURNGUARD_TLS_CERT",
        requires = "tls_key",
        value_name = "FILE"
    )]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key for --tls-cert.
    #[arg(
        long,
        env = "BURNGUARD_TLS_KEY",
        requires = "tls_cert",
        value_name = "FILE"
    )]
    pub tls_key: Option<PathBuf>,
    /// Open connections allowed at once; more are closed at once (default 1024).
    #[arg(long, env = "BURNGUARD_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<usize>,
    /// How long a client may take to send a request's headers before its connection is closed (default 5s).
    #[arg(long, env = "BURNGUARD_HEADER_READ_TIMEOUT", value_parser = parse_duration, value_name = "DURATION")]
    pub header_read_timeout: Option<Duration>,
    /// How long a TLS handshake may take before its connection is closed (default 10s).
    #[arg(long, env = "BURNGUARD_TLS_HANDSHAKE_TIMEOUT", value_parser = parse_duration, value_name = "DURATION")]
    pub tls_handshake_timeout: Option<Duration>,
    /// Also take SLOs and playbooks from ServiceLevelObjective and Playbook objects
    /// (burnguard.dev/v1), reconciling them as a Kubernetes controller.
    #[arg(long, env = "BURNGUARD_KUBERNETES")]
    pub kubernetes: bool,
    /// Namespaces to watch with --kubernetes, comma-separated (default: all).
    #[arg(
        long,
        env = "BURNGUARD_NAMESPACES",
        value_delimiter = ',',
        value_name = "NAMESPACE"
    )]
    pub namespaces: Option<Vec<String>>,
    /// Only objects with these labels, as `kubectl -l` takes them (`team=checkout`).
    #[arg(long, env = "BURNGUARD_SELECTOR", value_name = "SELECTOR")]
    pub selector: Option<String>,
    /// How often a status whose numbers alone changed is written per object (default 5m).
    #[arg(long, env = "BURNGUARD_STATUS_INTERVAL", value_parser = parse_duration, value_name = "DURATION")]
    pub status_interval: Option<Duration>,
    /// Do not apply a PrometheusRule per SLO object.
    #[arg(long, env = "BURNGUARD_NO_PROMETHEUS_RULES")]
    pub no_prometheus_rules: bool,
}

pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let file = match &args.config {
        Some(path) => FileSettings::load(path)?,
        None => FileSettings::default(),
    };
    let overrides = Overrides {
        policies: args.policies,
        sloth_window: args.sloth_window,
        listen: args.listen,
        interval: args.interval,
        mode: args.mode,
        concurrency: args.concurrency,
        log_format: args.log_format,
        db: args.db,
        evaluation_retention: args.evaluation_retention,
        history_resolution: args.history_resolution,
        webhook_retention: args.webhook_retention,
        webhook_retention_count: args.webhook_retention_count,
        webhook_replay_tolerance: args.webhook_replay_tolerance,
        dry_run: args.dry_run,
        max_actions_per_hour: args.max_actions_per_hour,
        unfreeze_after: args.unfreeze_after,
        shutdown_grace: args.shutdown_grace,
        instance_name: args.instance_name,
        service_account: args.service_account,
        api_tokens: args
            .api_tokens
            .into_iter()
            .map(secrecy::SecretString::from)
            .collect(),
        api_token_file: args.api_token_file,
        protect_reads: args.protect_reads,
        metrics_per_window: args.metrics_per_window,
        webhook_auth: crate::http::webhooks::WebhookAuth {
            alertmanager_token: args.alertmanager_token.map(secrecy::SecretString::from),
            alertmanager_basic: match args.alertmanager_basic_auth {
                Some(auth) => {
                    let (user, password) = auth.split_once(':').ok_or_else(|| {
                        anyhow::anyhow!("--alertmanager-basic-auth is not `user:password`")
                    })?;
                    Some((
                        user.to_string(),
                        secrecy::SecretString::from(password.to_string()),
                    ))
                }
                None => None,
            },
            pagerduty_secrets: args
                .pagerduty_secrets
                .into_iter()
                .map(secrecy::SecretString::from)
                .collect(),
            opsgenie_secret: args.opsgenie_secret.map(secrecy::SecretString::from),
            alertmanager_allow_unauthenticated: args.alertmanager_allow_unauthenticated,
            ..crate::http::webhooks::WebhookAuth::default()
        },
        notify: crate::adapters::notify::Channels {
            pagerduty: args.notify_pagerduty_routing_key.map(|key| {
                (
                    secrecy::SecretString::from(key),
                    args.notify_pagerduty_url.clone(),
                )
            }),
            alertmanager: args.notify_alertmanager,
            webhook: args.notify_webhook.map(|url| {
                (
                    url,
                    args.notify_webhook_secret.map(secrecy::SecretString::from),
                )
            }),
        },
        notify_max_attempts: args.notify_max_attempts,
        notify_max_age: args.notify_max_age,
        tls: args.tls_cert.zip(args.tls_key),
        max_connections: args.max_connections,
        header_read_timeout: args.header_read_timeout,
        tls_handshake_timeout: args.tls_handshake_timeout,
        prometheus: args.prometheus.overrides()?,
        kubernetes: args.kubernetes,
        scope: crate::config::ScopeOverrides {
            namespaces: args.namespaces,
            selector: args.selector,
        },
        status_interval: args.status_interval,
        no_prometheus_rules: args.no_prometheus_rules,
        config_file: args.config.clone(),
    };
    let settings = Settings::resolve(overrides, file)?;
    telemetry::init(settings.log_format);
    tracing::info!(
        policies = ?settings.policies,
        prometheus = %crate::redact::credentials(&settings.prometheus.url),
        interval = ?settings.interval,
        mode = ?settings.mode,
        "starting burnguard serve"
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let shutdown = CancellationToken::new();
        service::cancel_on_signals(shutdown.clone());
        match service::run(settings, shutdown).await {
            Ok(()) => Ok(ExitCode::SUCCESS),
            Err(ServiceError::Policies(error)) => {
                super::report_problems(&error);
                Ok(ExitCode::FAILURE)
            }
            Err(other) => Err(other.into()),
        }
    })
}
