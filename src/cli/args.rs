//! Flags shared by several commands: how to reach Prometheus, times, output formats.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use secrecy::SecretString;

use crate::adapters::prometheus::PrometheusConfig;
use crate::config::{self, PrometheusOverrides};
use crate::domain::policy::Window;
use crate::policies::LoadOptions;
pub use crate::timefmt::{parse_time, rfc3339};

/// How to reach a Prometheus-compatible query API. Every flag has a `BURNGUARD_*` twin.
#[derive(Debug, Clone, Args, Default)]
pub struct PrometheusArgs {
    /// Base URL of Prometheus, Thanos, Mimir or VictoriaMetrics (e.g. http://127.0.0.1:9090).
    #[arg(
        long = "prometheus",
        env = "BURNGUARD_PROMETHEUS_URL",
        value_name = "URL"
    )]
    pub url: Option<String>,
    /// Extra request header, `Name: value` (repeatable), e.g. `X-Scope-OrgID: tenant-a`.
    #[arg(long = "prometheus-header", value_name = "HEADER")]
    pub headers: Vec<String>,
    /// Bearer token for the query API.
    #[arg(
        long,
        env = "BURNGUARD_PROMETHEUS_BEARER_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub prometheus_bearer_token: Option<String>,
    /// File holding the bearer token (read at start; trailing newline ignored).
    #[arg(
        long,
        env = "BURNGUARD_PROMETHEUS_BEARER_TOKEN_FILE",
        value_name = "FILE"
    )]
    pub prometheus_bearer_token_file: Option<PathBuf>,
    /// Basic auth as `user:password`.
    #[arg(
        long,
        env = "BURNGUARD_PROMETHEUS_BASIC_AUTH",
        hide_env_values = true,
        value_name = "USER:PASSWORD"
    )]
    pub prometheus_basic_auth: Option<String>,
    /// Timeout of each query, e.g. 10s or 500ms.
    #[arg(long, env = "BURNGUARD_PROMETHEUS_TIMEOUT", value_parser = parse_duration, value_name = "DURATION")]
    pub prometheus_timeout: Option<Duration>,
}

impl PrometheusArgs {
    /// What the flags and env say; the rest comes from a config file or defaults.
    pub fn overrides(&self) -> anyhow::Result<PrometheusOverrides> {
        let mut headers = Vec::new();
        for header in &self.headers {
            let (name, value) = header
                .split_once(':')
                .with_context(|| format!("header `{header}` is not `Name: value`"))?;
            headers.push((name.trim().to_string(), value.trim().to_string()));
        }
        let bearer_token = match (
            &self.prometheus_bearer_token,
            &self.prometheus_bearer_token_file,
        ) {
            (Some(token), _) => Some(SecretString::from(token.clone())),
            (None, Some(path)) => Some(config::read_secret(path)?),
            (None, None) => None,
        };
        let basic_auth = match &self.prometheus_basic_auth {
            Some(auth) => {
                let (user, password) = auth
                    .split_once(':')
                    .context("--prometheus-basic-auth is not `user:password`")?;
                Some((user.to_string(), SecretString::from(password.to_string())))
            }
            None => None,
        };
        Ok(PrometheusOverrides {
            url: self.url.clone(),
            headers,
            bearer_token,
            basic_auth,
            timeout: self.prometheus_timeout,
        })
    }

    /// Client settings from flags and env alone (for one-shot commands).
    pub fn config(&self) -> anyhow::Result<PrometheusConfig> {
        Ok(config::resolve_prometheus(self.overrides()?, None)?)
    }
}

/// `10s`, `500ms`, `1m30s`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("`{text}` is not a duration ({e}); e.g. 30s, 500ms, 5m"))
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Output {
    Json,
    #[default]
    Table,
}

/// How files of other tools are read, for every command that reads policy files.
#[derive(Debug, Clone, Args)]
pub struct FormatArgs {
    /// The SLO window of Sloth SLOs: Sloth files carry none (Sloth's --default-slo-period).
    #[arg(long = "window", value_name = "DURATION", default_value = "30d", value_parser = parse_window)]
    pub sloth_window: Window,
}

impl FormatArgs {
    pub fn options(&self) -> LoadOptions {
        LoadOptions {
            sloth_window: self.sloth_window,
        }
    }
}

/// A rolling window in Prometheus notation (`30d`, `4w`).
pub fn parse_window(text: &str) -> Result<Window, String> {
    Window::parse(text).map_err(|e| format!("`{text}` {e}"))
}
