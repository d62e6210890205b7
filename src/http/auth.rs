//! Reading credentials out of `Authorization` for the API and the Alertmanager webhook.
//!
//! The scheme is matched case-insensitively (`Bearer`, `bearer`, `BEARER`: RFC 9110 §11.1);
//! secrets are compared in constant time by the callers. Owns: parsing the header. Must not
//! touch: where the secrets come from (`config` fills these types).

use axum::http::{HeaderMap, header};
use std::time::Duration;

use base64::Engine as _;
use secrecy::SecretString;

/// The credentials of `Authorization: <scheme> <credentials>` when the scheme is `scheme`,
/// whatever its case; `None` without the header, with another scheme or without credentials.
pub fn credentials<'a>(headers: &'a HeaderMap, scheme: &str) -> Option<&'a str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (given, rest) = value.split_once([' ', '\t'])?;
    let rest = rest.trim();
    (given.eq_ignore_ascii_case(scheme) && !rest.is_empty()).then_some(rest)
}

/// The decoded `user:password` of `Authorization: Basic ...`.
pub fn basic(headers: &HeaderMap) -> Option<Vec<u8>> {
    let encoded = credentials(headers, "Basic")?;
    base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()
}

/// How old a signed webhook event may be by default (5 minutes).
pub const DEFAULT_REPLAY_TOLERANCE: Duration = Duration::from_secs(5 * 60);

/// One API token and the name the timeline records for its calls.
#[derive(Clone)]
pub struct ApiToken {
    pub name: String,
    pub secret: SecretString,
}

impl ApiToken {
    pub fn new(name: impl Into<String>, secret: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            secret: SecretString::from(secret.into()),
        }
    }

    /// `name:token`, or a bare token, which is named `token-N` after its position `n` among
    /// all configured tokens (1-based). The error never contains the token.
    pub fn parse(entry: &SecretString, n: usize) -> Result<Self, String> {
        use secrecy::ExposeSecret as _;
        let entry = entry.expose_secret().trim();
        let (name, secret) = match entry.split_once(':') {
            Some((name, secret)) => (name.trim().to_string(), secret.trim()),
            None => (format!("token-{n}"), entry),
        };
        if !valid_token_name(&name) {
            return Err(
                "the name before `:` must be 1 to 64 letters, digits, `.`, `_`, `-` or `@`".into(),
            );
        }
        if secret.is_empty() {
            return Err(format!("the token named `{name}` is empty"));
        }
        Ok(Self::new(name, secret))
    }
}

/// A token's name goes on timelines as the actor: a plain identifier.
fn valid_token_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
}

/// Who may call the API.
#[derive(Clone, Default)]
pub struct ApiAuth {
    pub tokens: Vec<ApiToken>,
    /// Require a token for reads too.
    pub protect_reads: bool,
}

impl std::fmt::Debug for ApiAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.tokens.iter().map(|t| t.name.as_str()).collect();
        f.debug_struct("ApiAuth")
            .field("tokens", &format!("{names:?} (values redacted)"))
            .field("protect_reads", &self.protect_reads)
            .finish()
    }
}

impl ApiAuth {
    /// The name of the token `presented` equals, comparing with every token in constant time.
    pub fn accepts(&self, presented: &str) -> Option<&str> {
        use secrecy::ExposeSecret as _;
        use subtle::{ConditionallySelectable as _, ConstantTimeEq as _};
        let mut any = subtle::Choice::from(0u8);
        let mut found = 0u64;
        for (i, token) in self.tokens.iter().enumerate() {
            let equal = token
                .secret
                .expose_secret()
                .as_bytes()
                .ct_eq(presented.as_bytes());
            found = u64::conditional_select(&found, &(i as u64), equal & !any);
            any |= equal;
        }
        bool::from(any).then(|| self.tokens[found as usize].name.as_str())
    }
}

/// How each webhook source proves itself.
#[derive(Clone)]
pub struct WebhookAuth {
    /// Alertmanager's `http_config.authorization` credentials (bearer). With neither this nor
    /// basic auth the route refuses every delivery, unless `alertmanager_allow_unauthenticated`.
    pub alertmanager_token: Option<SecretString>,
    /// Alertmanager's `http_config.basic_auth` as user and password.
    pub alertmanager_basic: Option<(String, SecretString)>,
    /// PagerDuty webhook signing secrets (several while one rotates).
    pub pagerduty_secrets: Vec<SecretString>,
    /// The value Opsgenie sends in `X-Burnguard-Token`.
    pub opsgenie_secret: Option<SecretString>,
    /// Take Alertmanager deliveries without credentials (an explicit choice, warned at start).
    pub alertmanager_allow_unauthenticated: bool,
    /// How far a signed PagerDuty event's `occurred_at` (an Opsgenie event's `updatedAt`) may
    /// be from now: an older one is a replay.
    pub replay_tolerance: Duration,
}

impl Default for WebhookAuth {
    fn default() -> Self {
        Self {
            alertmanager_token: None,
            alertmanager_basic: None,
            pagerduty_secrets: Vec::new(),
            opsgenie_secret: None,
            alertmanager_allow_unauthenticated: false,
            replay_tolerance: DEFAULT_REPLAY_TOLERANCE,
        }
    }
}

impl std::fmt::Debug for WebhookAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookAuth")
            .field("secrets", &"<redacted>")
            .field(
                "alertmanager_allow_unauthenticated",
                &self.alertmanager_allow_unauthenticated,
            )
            .field("replay_tolerance", &self.replay_tolerance)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, value.parse().unwrap());
        headers
    }

    #[test]
    fn the_scheme_is_matched_whatever_its_case() {
        for value in [
            "Bearer abc",
            "bearer abc",
            "BEARER abc",
            "bEaReR   abc ",
            "Bearer\tabc",
        ] {
            assert_eq!(credentials(&with(value), "Bearer"), Some("abc"), "{value}");
        }
    }

    #[test]
    fn other_schemes_and_empty_credentials_give_nothing() {
        for value in [
            "Basic abc",
            "Bearer",
            "Bearer ",
            "Bearerabc",
            "Token abc",
            "",
        ] {
            assert_eq!(credentials(&with(value), "Bearer"), None, "{value:?}");
        }
        assert_eq!(credentials(&HeaderMap::new(), "Bearer"), None);
    }

    #[test]
    fn basic_credentials_are_decoded() {
        assert_eq!(
            basic(&with("basic YWxpY2U6czNjcmV0")).as_deref(),
            Some(&b"alice:s3cret"[..])
        );
        assert_eq!(basic(&with("Basic !!!")), None);
    }
}
