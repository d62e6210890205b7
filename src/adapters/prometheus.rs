//! Prometheus (or Thanos, Mimir, VictoriaMetrics: anything with the Prometheus query API) as a
//! [`MetricsSource`], through `prometheus-http-query` on a rustls `reqwest` client.
//!
//! Owns: connection settings (base URL, extra headers such as `X-Scope-OrgID`, bearer or basic
//! auth, timeout), mapping answers to port types and failures to [`MetricsError`].
//! Must not touch: what the numbers mean.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use prometheus_http_query::{Client, Error as PromError};
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};
use secrecy::{ExposeSecret, SecretString};

use crate::ports::{InstantSample, Labels, MetricsError, MetricsSource, RangeSeries, UnixSeconds};

/// How to reach the query API. Secrets never appear in `Debug`.
#[derive(Clone)]
pub struct PrometheusConfig {
    /// Base URL, e.g. `http://prometheus:9090` or `http://mimir/prometheus`.
    pub url: String,
    /// Extra request headers, e.g. `X-Scope-OrgID: tenant-a` for Mimir.
    pub headers: Vec<(String, String)>,
    pub bearer_token: Option<SecretString>,
    /// User and password for basic auth.
    pub basic_auth: Option<(String, SecretString)>,
    /// Per-query timeout, on the client and passed to Prometheus.
    pub timeout: Duration,
}

impl PrometheusConfig {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            headers: Vec::new(),
            bearer_token: None,
            basic_auth: None,
            timeout: Duration::from_secs(10),
        }
    }
}

impl fmt::Debug for PrometheusConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrometheusConfig")
            .field("url", &self.url)
            .field(
                "headers",
                &self.headers.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .field(
                "bearer_token",
                &self.bearer_token.as_ref().map(|_| "<redacted>"),
            )
            .field(
                "basic_auth",
                &self.basic_auth.as_ref().map(|(u, _)| (u, "<redacted>")),
            )
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Why a client could not be built from its settings.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("prometheus URL `{url}` is not usable: {reason}")]
    Url { url: String, reason: String },
    #[error("header `{name}` is not a valid HTTP header: {reason}")]
    Header { name: String, reason: String },
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

/// A query client for one Prometheus-compatible endpoint.
#[derive(Clone)]
pub struct Prometheus {
    client: Client,
    timeout: Duration,
}

impl fmt::Debug for Prometheus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Prometheus")
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Installs rustls' ring provider once per process; every HTTP client needs it first.
pub fn install_crypto_provider() {
    // An error only means a provider is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl Prometheus {
    pub fn new(config: &PrometheusConfig) -> Result<Self, ConfigError> {
        install_crypto_provider();
        let mut headers = HeaderMap::new();
        for (name, value) in &config.headers {
            let header_error = |reason: String| ConfigError::Header {
                name: name.clone(),
                reason,
            };
            let name =
                HeaderName::try_from(name.as_str()).map_err(|e| header_error(e.to_string()))?;
            let mut value =
                HeaderValue::try_from(value.as_str()).map_err(|e| header_error(e.to_string()))?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        let authorization = match (&config.bearer_token, &config.basic_auth) {
            (Some(token), _) => Some(format!("Bearer {}", token.expose_secret())),
            (None, Some((user, password))) => Some(format!(
                "Basic {}",
                BASE64.encode(format!("{user}:{}", password.expose_secret()))
            )),
            (None, None) => None,
        };
        if let Some(authorization) = authorization {
            let mut value =
                HeaderValue::try_from(authorization).map_err(|e| ConfigError::Header {
                    name: "Authorization".into(),
                    reason: e.to_string(),
                })?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(5)))
            .build()
            .map_err(|e| ConfigError::Client(e.to_string()))?;
        let client = Client::from(http, &config.url).map_err(|e| ConfigError::Url {
            url: config.url.clone(),
            reason: e.to_string(),
        })?;
        Ok(Self {
            client,
            timeout: config.timeout,
        })
    }

    fn timeout_ms(&self) -> i64 {
        i64::try_from(self.timeout.as_millis()).unwrap_or(i64::MAX)
    }

    fn map_error(&self, error: PromError) -> MetricsError {
        let timeout = MetricsError::Timeout {
            seconds: self.timeout.as_secs(),
        };
        match error {
            PromError::Prometheus(e) if e.is_timeout() || e.is_canceled() => timeout,
            PromError::Prometheus(e) => MetricsError::Rejected(e.to_string()),
            PromError::Client(e) => match e.inner() {
                Some(inner) if inner.is_timeout() => timeout,
                Some(inner) if inner.is_connect() || inner.is_request() => {
                    MetricsError::Unreachable(error_chain(inner))
                }
                Some(inner) if inner.is_status() => MetricsError::Rejected(error_chain(inner)),
                Some(inner) => MetricsError::BadResponse(error_chain(inner)),
                None => MetricsError::BadResponse(e.to_string()),
            },
            other => MetricsError::BadResponse(other.to_string()),
        }
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn labels(metric: std::collections::HashMap<String, String>) -> Labels {
    metric.into_iter().collect::<BTreeMap<_, _>>()
}

impl MetricsSource for Prometheus {
    async fn instant(
        &self,
        expr: &str,
        at: UnixSeconds,
    ) -> Result<Vec<InstantSample>, MetricsError> {
        let response = self
            .client
            .query(expr)
            .at(at)
            .timeout(self.timeout_ms())
            .post()
            .await
            .map_err(|e| self.map_error(e))?;
        let (data, _) = response.into_inner();
        match data {
            prometheus_http_query::response::Data::Vector(series) => Ok(series
                .into_iter()
                .map(|s| {
                    let (metric, sample) = s.into_inner();
                    InstantSample {
                        labels: labels(metric),
                        value: sample.value(),
                    }
                })
                .collect()),
            prometheus_http_query::response::Data::Scalar(sample) => Ok(vec![InstantSample {
                labels: Labels::new(),
                value: sample.value(),
            }]),
            prometheus_http_query::response::Data::Matrix(_) => Err(MetricsError::BadResponse(
                "an instant query returned a range (matrix) result".into(),
            )),
        }
    }

    async fn range(
        &self,
        expr: &str,
        start: UnixSeconds,
        end: UnixSeconds,
        step: u64,
    ) -> Result<Vec<RangeSeries>, MetricsError> {
        let response = self
            .client
            .query_range(expr, start, end, step as f64)
            .timeout(self.timeout_ms())
            .post()
            .await
            .map_err(|e| self.map_error(e))?;
        let (data, _) = response.into_inner();
        match data {
            prometheus_http_query::response::Data::Matrix(series) => Ok(series
                .into_iter()
                .map(|s| {
                    let (metric, samples) = s.into_inner();
                    RangeSeries {
                        labels: labels(metric),
                        points: samples
                            .iter()
                            .map(|p| (p.timestamp().round() as i64, p.value()))
                            .collect(),
                    }
                })
                .collect()),
            _ => Err(MetricsError::BadResponse(
                "a range query did not return a matrix".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_do_not_print() {
        let mut config = PrometheusConfig::new("http://127.0.0.1:1");
        config.bearer_token = Some(SecretString::from("s3cret-token"));
        config.basic_auth = Some(("me".into(), SecretString::from("hunter2")));
        config
            .headers
            .push(("X-Scope-OrgID".into(), "tenant-secret".into()));
        let printed = format!("{config:?}");
        for secret in ["s3cret-token", "hunter2", "tenant-secret"] {
            assert!(!printed.contains(secret), "{printed}");
        }
    }
}
