//! Notifications out: PagerDuty Events API v2 (dedup key = the incident), Alertmanager's
//! `POST /api/v2/alerts` (so existing routing trees apply), and a generic JSON webhook signed
//! with HMAC-SHA256 (`X-Burnguard-Signature: v1=<hex>`).
//!
//! Each channel is named by its kind and a fingerprint of where it points (see
//! [`Channels::list`]), so outbox entries stay bound to the destination they were written for.

use std::time::Duration;

use hmac::{KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use crate::domain::incident::incident_dedup_key;
use crate::ports::{Channel, DueDelivery, Notifier};

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

impl Channels {
    /// The configured channels: kind, and a fingerprint of the destination (PagerDuty's
    /// endpoint and routing key, Alertmanager's URL, the webhook's URL; not the webhook's
    /// signing secret, which may rotate without making another channel). The fingerprint is
    /// the first 16 hex digits of a SHA-256, so no secret reaches the database.
    pub fn list(&self) -> Vec<Channel> {
        let channel = |name: &str, parts: &[&str]| {
            use sha2::Digest as _;
            let mut hash = sha2::Sha256::new();
            hash.update(name.as_bytes());
            for part in parts {
                hash.update([0u8]);
                hash.update(part.as_bytes());
            }
            let digest = hex::encode(hash.finalize());
            Channel {
                name: name.to_string(),
                target: digest[..16].to_string(),
            }
        };
        let mut channels = Vec::new();
        if let Some((key, url)) = &self.pagerduty {
            channels.push(channel("pagerduty", &[url, key.expose_secret()]));
        }
        if let Some(url) = &self.alertmanager {
            channels.push(channel("alertmanager", &[url.trim_end_matches('/')]));
        }
        if let Some((url, _)) = &self.webhook {
            channels.push(channel("webhook", &[url]));
        }
        channels
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
    fn channels(&self) -> Vec<Channel> {
        self.channels.list()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn channels(key: &str, hook: &str, secret: &str) -> Channels {
        Channels {
            pagerduty: Some((
                SecretString::from(key.to_string()),
                PAGERDUTY_EVENTS_URL.into(),
            )),
            alertmanager: Some("http://am:9093/".into()),
            webhook: Some((hook.into(), Some(SecretString::from(secret.to_string())))),
        }
    }

    #[test]
    fn a_channel_is_its_kind_and_where_it_points_never_its_secret() {
        let before = channels("KEY-1", "http://hooks/a", "s1").list();
        let names: Vec<&str> = before.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["pagerduty", "alertmanager", "webhook"]);
        assert!(
            before
                .iter()
                .all(|c| c.target.len() == 16 && !c.target.contains("KEY"))
        );
        // The same configuration is the same channels (a restart keeps delivering).
        assert_eq!(channels("KEY-1", "http://hooks/a", "s1").list(), before);
        // Rotating the webhook's signing secret keeps the channel.
        assert_eq!(channels("KEY-1", "http://hooks/a", "s2").list(), before);
        // A new routing key or another URL is another channel.
        let moved = channels("KEY-2", "http://hooks/b", "s1").list();
        assert_ne!(moved[0], before[0]);
        assert_eq!(moved[1], before[1]);
        assert_ne!(moved[2], before[2]);
    }
}
