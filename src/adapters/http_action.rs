//! Outbound HTTP playbook steps (reqwest, rustls): `${VAR}` expanded from the environment at
//! call time, the status checked against `expectStatus`, a timeout per step.
//!
//! Owns: the HTTP call. Must not touch: journaling (the engine does it before and after).

use crate::domain::playbook::{HttpStep, expand_env};
use crate::ports::ActionError;

/// Calls HTTP steps.
#[derive(Clone, Debug)]
pub struct HttpActuator {
    client: reqwest::Client,
}

impl HttpActuator {
    pub fn new() -> Result<Self, ActionError> {
        super::prometheus::install_crypto_provider();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| {
                ActionError::NotConfigured(format!("cannot build the HTTP client: {e}"))
            })?;
        Ok(Self { client })
    }

    /// Sends the step's request. Secrets from `${VAR}` never appear in the outcome or errors:
    /// they name the URL template, not the expanded one.
    pub async fn call(&self, step: &HttpStep) -> Result<String, ActionError> {
        let env = |name: &str| std::env::var(name).ok();
        let expand = |text: &str| expand_env(text, env).map_err(ActionError::NotConfigured);
        let url = expand(&step.url)?;
        let method = reqwest::Method::from_bytes(step.method.as_bytes()).map_err(|_| {
            ActionError::NotConfigured(format!("method {} is not HTTP", step.method))
        })?;
        let mut request = self.client.request(method, &url).timeout(step.timeout);
        for (name, value) in &step.headers {
            request = request.header(name, expand(value)?);
        }
        if let Some(body) = &step.body {
            request = request.body(expand(body)?);
        }
        let target = format!("{} {}", step.method, step.url);
        let response = request.send().await.map_err(|e| {
            if e.is_timeout() {
                ActionError::Failed(format!("{target} timed out after {:?}", step.timeout))
            } else {
                ActionError::Failed(format!("{target}: {}", e.without_url()))
            }
        })?;
        let status = response.status().as_u16();
        if step.expect_status.contains(&status) {
            Ok(format!("{target} answered {status}"))
        } else {
            Err(ActionError::Refused(format!(
                "{target} answered {status}; expected one of {:?}",
                step.expect_status
            )))
        }
    }
}
