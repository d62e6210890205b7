//! Reading credentials out of `Authorization` for the API and the Alertmanager webhook.
//!
//! The scheme is matched case-insensitively (`Bearer`, `bearer`, `BEARER`: RFC 9110 §11.1);
//! secrets are compared in constant time by the callers. Owns: parsing the header. Must not
//! touch: which secrets are configured.

use axum::http::{HeaderMap, header};
use base64::Engine as _;

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
