//! Checks on text from request bodies before it is stored: names (identifiers, actors, keys,
//! labels) may hold no control character at all; free text (reasons, notes, annotations) may
//! hold tabs and line breaks and no other. PostgreSQL cannot store NUL in text, and a control
//! character in a name is never meant; both are refused with a 400 on every backend alike.
//!
//! Owns: what counts as acceptable text. Must not touch: the store.

use super::ApiError;

/// The first control character of `value` that `allowed` does not let through.
fn control(value: &str, allowed: impl Fn(char) -> bool) -> Option<char> {
    value.chars().find(|&c| c.is_control() && !allowed(c))
}

fn refused(field: &str, c: char, what: &str) -> ApiError {
    ApiError::bad_request(
        "control_character",
        &format!(
            "`{field}` contains the control character U+{:04X}; {what}",
            c as u32
        ),
    )
}

/// A name, key, label or actor: no control character (tabs and line breaks included).
pub fn name(field: &str, value: &str) -> Result<(), ApiError> {
    match control(value, |_| false) {
        Some(c) => Err(refused(
            field,
            c,
            "names may not contain control characters",
        )),
        None => Ok(()),
    }
}

/// Free text (a reason, a note, an annotation): tabs and line breaks only.
pub fn text(field: &str, value: &str) -> Result<(), ApiError> {
    match control(value, |c| matches!(c, '\t' | '\n' | '\r')) {
        Some(c) => Err(refused(
            field,
            c,
            "free text may contain tabs and line breaks but no other control character",
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_refuse_every_control_character() {
        for bad in [
            "a\0b",
            "tab\there",
            "line\nbreak",
            "del\u{7f}",
            "c1\u{85}",
            "\u{1b}[31m",
        ] {
            assert!(name("f", bad).is_err(), "{bad:?}");
        }
        for good in ["checkout", "team a", "ünïcødé", "a-b_c.d@e", ""] {
            assert!(name("f", good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn free_text_keeps_tabs_and_line_breaks_only() {
        assert!(text("f", "line one\nline two\r\n\tindented").is_ok());
        for bad in ["nul\0", "bell\u{7}", "escape\u{1b}", "del\u{7f}"] {
            assert!(text("f", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_message_names_the_field_and_the_character() {
        let error = name("deployments[1]", "a\0").unwrap_err();
        let body = format!("{error:?}");
        assert!(
            body.contains("deployments[1]") && body.contains("U+0000"),
            "{body}"
        );
    }
}
