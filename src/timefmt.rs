//! Times as people and APIs write them: RFC 3339 or unix seconds in, RFC 3339 out. Shared by
//! the CLI, the HTTP API and the engine's timeline messages.

use crate::ports::UnixSeconds;

/// RFC 3339 (`2026-01-04T00:00:00Z`) or unix seconds (`1767484800`).
pub fn parse_time(text: &str) -> Result<UnixSeconds, String> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<f64>()
        && seconds.is_finite()
    {
        return Ok(seconds.floor() as i64);
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp())
        .map_err(|e| {
            format!("`{text}` is neither RFC 3339 (2026-01-04T00:00:00Z) nor unix seconds: {e}")
        })
}

/// `2026-01-04T00:00:00Z` for unix seconds.
pub fn rfc3339(at: UnixSeconds) -> String {
    crate::domain::cluster::rfc3339(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_as_rfc3339_or_unix_seconds() {
        assert_eq!(parse_time("2026-01-04T00:00:00Z"), Ok(1_767_484_800));
        assert_eq!(parse_time("1767484800"), Ok(1_767_484_800));
        assert_eq!(parse_time("2026-01-04T01:00:00+01:00"), Ok(1_767_484_800));
        assert!(parse_time("yesterday").is_err());
        assert_eq!(rfc3339(1_767_484_800), "2026-01-04T00:00:00Z");
    }
}
