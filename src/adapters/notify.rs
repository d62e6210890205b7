//! Notifications out: PagerDuty Events API v2 (dedup key = the incident), Alertmanager's
//! `POST /api/v2/alerts` (so existing routing trees apply), and a generic JSON webhook signed
//! with HMAC-SHA256 (`X-Burnguard-Signature: v1=<hex>`).

use std::time::Duration;

use hmac::{KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use crate::domain::incident::incident_dedup_key;
use crate::ports::{DueDelivery, Notifier};

pub const PAGERDUTY_EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// Where notifications go. Secrets never print.
#[derive(Clone, Default)]
pub struct Channels {
    /// PagerDuty Events v2: routing key and endpoint.
    pub pagerduty: Option<(SecretString, String)>,
    /// Alertmanager base URL.
    pub alertmanager: Option<String>,
    /// Generic webhook URL and optional signing secret.
    pub webhook: Option<(String, Option<SecretString>)>,
}

impl std::fmt::Debug for Channels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channels")
            .field(
                "pagerduty",
                &self
                    .pagerduty
                    .as_ref()
                    .map(|(_, url)| crate::redact::credentials(url)),
            )
            .field(
                "alertmanager",
                &self.alertmanager.as_deref().map(crate::redact::credentials),
            )
            .field(
                "webhook",
                &self
                    .webhook
                    .as_ref()
                    .map(|(url, _)| crate::redact::credentials(url)),
            )
            .finish()
    }
}

#[derive(Clone, Debug)]
pub struct HttpNotifier {
    client: reqwest::Client,
    channels: Channels,
}

impl HttpNotifier {
    pub fn new(channels: Channels) -> Result<Self, String> {
        super::prometheus::install_crypto_provider();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Self { client, channels })
    }

    async fn post(
        &self,
        url: &str,
        body: String,
        headers: &[(&str, String)],
    ) -> Result<String, String> {
        let mut request = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .body(body);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let response = request
            .send()
            .await
            .map_err(|e| e.without_url().to_string())?;
        let status = response.status();
        if status.is_success() {
            Ok(format!("answered {}", status.as_u16()))
        } else {
            Err(format!("answered {}", status.as_u16()))
        }
    }
}

fn summary(d: &DueDelivery) -> String {
    let p = &d.payload;
    format!(
        "{} ({}) {}: {} error budget burn",
        p["slo"].as_str().unwrap_or("?"),
        p["service"].as_str().unwrap_or("?"),
        d.event,
        p["severity"].as_str().unwrap_or("?")
    )
}

impl Notifier for HttpNotifier {
    fn channels(&self) -> Vec<String> {
        let mut channels = Vec::new();
        if self.channels.pagerduty.is_some() {
            channels.push("pagerduty".to_string());
        }
        if self.channels.alertmanager.is_some() {
            channels.push("alertmanager".to_string());
        }
        if self.channels.webhook.is_some() {
            channels.push("webhook".to_string());
        }
        channels
    }

    async fn deliver(&self, d: &DueDelivery) -> Result<String, String> {
        let p = &d.payload;
        let resolved = d.event == "resolved";
        match d.channel.as_str() {
            "pagerduty" => {
                let (key, url) = self
                    .channels
                    .pagerduty
                    .as_ref()
                    .ok_or("pagerduty is not configured")?;
                let body = json!({
                    "routing_key": key.expose_secret(),
                    "event_action": if resolved { "resolve" } else { "trigger" },
                    "dedup_key": incident_dedup_key(d.incident_id),
                    "payload": {
                        "summary": summary(d),
                        "source": "burnguard",
                        "severity": if p["severity"] == "page" { "critical" } else { "warning" },
                        "custom_details": p,
                    },
                });
                self.post(url, body.to_string(), &[]).await
            }
            "alertmanager" => {
                let base = self
                    .channels
                    .alertmanager
                    .as_ref()
                    .ok_or("alertmanager is not configured")?;
                let at = chrono::DateTime::from_timestamp(p["at"].as_i64().unwrap_or_default(), 0)
                    .unwrap_or_default();
                let mut alert = json!({
                    "labels": {
                        "alertname": "BurnguardIncident",
                        "slo": p["slo"], "service": p["service"], "severity": p["severity"],
                        "incident": d.incident_id.to_string(),
                    },
                    "annotations": {"summary": summary(d)},
                });
                if resolved {
                    alert["endsAt"] = json!(at.to_rfc3339());
                }
                self.post(
                    &format!("{}/api/v2/alerts", base.trim_end_matches('/')),
                    json!([alert]).to_string(),
                    &[],
                )
                .await
            }
            "webhook" => {
                let (url, secret) = self
                    .channels
                    .webhook
                    .as_ref()
                    .ok_or("webhook is not configured")?;
                let body = json!({"event": d.event, "incident": d.incident_id, "summary": summary(d), "details": p}).to_string();
                let mut headers = Vec::new();
                if let Some(secret) = secret {
                    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(
                        secret.expose_secret().as_bytes(),
                    )
                    .map_err(|e| e.to_string())?;
                    mac.update(body.as_bytes());
                    headers.push((
                        "x-burnguard-signature",
                        format!("v1={}", hex::encode(mac.finalize().into_bytes())),
                    ));
                }
                self.post(url, body, &headers).await
            }
            other => Err(format!("unknown channel {other}")),
        }
    }
}
