//! Credentials out of anything printed: `scheme://user:password@host` becomes
//! `scheme://user:***@host` (and `scheme://token@host` becomes `scheme://***@host`) wherever a
//! URL appears in a text, so settings, logs, errors and stored evaluation errors never carry a
//! password that was written into a URL (Prometheus, notification targets, the database).
//!
//! Owns: [`credentials`]. Must not touch: anything else.

/// The text with the user-info part of every URL in it masked.
pub fn credentials(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(scheme_end) = rest.find("://") {
        let authority_start = scheme_end + 3;
        out.push_str(&rest[..authority_start]);
        rest = &rest[authority_start..];
        // The authority ends at the first '/', '?', '#' or whitespace.
        let authority_end = rest
            .find(|c: char| c == '/' || c == '?' || c == '#' || c.is_whitespace())
            .unwrap_or(rest.len());
        let authority = &rest[..authority_end];
        match authority.rfind('@') {
            Some(at) => {
                let userinfo = &authority[..at];
                match userinfo.split_once(':') {
                    Some((user, _)) => {
                        out.push_str(user);
                        out.push_str(":***");
                    }
                    None => out.push_str("***"),
                }
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &rest[authority_end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::credentials;

    #[test]
    fn passwords_and_tokens_in_urls_are_masked_wherever_they_appear() {
        let cases = [
            (
                "postgres://burnguard:s3cret@db/burnguard",
                "postgres://burnguard:***@db/burnguard",
            ),
            (
                "https://tok3n@mimir/prometheus",
                "https://***@mimir/prometheus",
            ),
            ("http://prometheus:9090", "http://prometheus:9090"),
            (
                "error sending request for url (http://u:p@h:1/api/v1/query): refused",
                "error sending request for url (http://u:***@h:1/api/v1/query): refused",
            ),
            (
                "a http://x:y@a and b https://z@b/c",
                "a http://x:***@a and b https://***@b/c",
            ),
            ("http://host/path?q=a@b", "http://host/path?q=a@b"),
            ("no url here", "no url here"),
            ("://", "://"),
        ];
        for (text, expected) in cases {
            assert_eq!(credentials(text), expected, "{text}");
        }
    }

    proptest::proptest! {
        #[test]
        fn masking_never_panics_and_never_leaves_the_password(
            user in "[a-z]{1,8}", password in "[A-Za-z0-9]{4,12}", host in "[a-z]{1,8}", noise in ".{0,40}"
        ) {
            let text = format!("{noise} https://{user}:{password}@{host}/x {noise}");
            let masked = credentials(&text);
            let leaked = format!("{user}:{password}@");
            proptest::prop_assert!(!masked.contains(&leaked));
        }
    }
}
