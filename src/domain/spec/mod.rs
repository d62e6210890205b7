//! Reading policy text: splitting a YAML stream into documents, deciding each document's
//! kind, and deserializing it into the wire types of its apiVersion with every unknown field
//! and the first type error reported with its path and line.
//!
//! Owns: document boundaries, line numbering, the kind dispatch. Must not touch: files (it
//! takes text), validation of values (see `validate`).

pub mod v1;

use std::cell::RefCell;

use serde::de::DeserializeOwned;

use super::problem::Problem;

/// One `---`-separated document of a YAML stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceDocument<'a> {
    /// 1-based position among the non-empty documents of the stream.
    pub index: usize,
    /// 1-based line of the stream on which `text` starts.
    pub first_line: u64,
    pub text: &'a str,
}

/// Splits a YAML stream on document markers (`---` and `...` at the start of a line) and
/// drops documents holding only blank lines and comments. YAML forbids those markers inside
/// any scalar, so a line-based split is exact; it keeps line numbers true to the file.
pub fn split_documents(stream: &str) -> Vec<SourceDocument<'_>> {
    let mut pieces: Vec<(u64, &str)> = Vec::new();
    let mut start = 0usize;
    let mut start_line = 1u64;
    let mut offset = 0usize;
    for (line_index, line) in stream.split_inclusive('\n').enumerate() {
        let is_marker = ["---", "..."].iter().any(|m| {
            line.strip_prefix(m)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t', '\r', '\n']))
        });
        if is_marker {
            pieces.push((start_line, &stream[start..offset]));
            // The next document starts right after the marker, on the marker's line, so that
            // content such as `--- {a: 1}` keeps its line number.
            start = offset + 3;
            start_line = line_index as u64 + 1;
        }
        offset += line.len();
    }
    pieces.push((start_line, &stream[start..]));
    pieces
        .into_iter()
        .filter(|(_, text)| !is_blank_yaml(text))
        .enumerate()
        .map(|(i, (first_line, text))| SourceDocument {
            index: i + 1,
            first_line,
            text,
        })
        .collect()
}

fn is_blank_yaml(text: &str) -> bool {
    text.lines().all(|line| {
        let line = line.trim();
        line.is_empty() || line.starts_with('#') || line.starts_with('%')
    })
}

/// A document read far enough to know what it is.
#[derive(Debug)]
pub enum Document {
    Slo(Box<v1::SloDocument>),
    Playbook(Box<v1::PlaybookDocument>),
}

/// A document of a known kind, and the fields it has that the kind does not know. Unknown
/// fields are problems, but validation still runs so every problem is reported at once.
#[derive(Debug)]
pub struct Parsed {
    pub document: Document,
    pub unknown_fields: Vec<Problem>,
}

/// Reads one document: its header first, then the body of its kind.
pub fn parse_document(doc: &SourceDocument<'_>) -> Result<Parsed, Vec<Problem>> {
    let (header, _) = deserialize::<v1::Header>(doc, false).map_err(|p| vec![p])?;
    let line_of = |s: &Option<serde_saphyr::Spanned<String>>| {
        s.as_ref().map(|s| absolute_line(doc, s.referenced.line()))
    };
    let api_version = header.api_version.as_ref().map(|s| s.value.as_str());
    match api_version {
        Some(v1::API_VERSION) => {}
        None => {
            return Err(vec![Problem::new(
                "apiVersion",
                None,
                format!("is missing; expected `{}`", v1::API_VERSION),
            )]);
        }
        Some(other) => {
            return Err(vec![Problem::new(
                "apiVersion",
                line_of(&header.api_version),
                format!(
                    "`{other}` is not a burnguard policy version; expected `{}`",
                    v1::API_VERSION
                ),
            )]);
        }
    }
    match header.kind.as_ref().map(|s| s.value.as_str()) {
        Some("SLO") => {
            let (slo, unknown_fields) =
                deserialize::<v1::SloDocument>(doc, true).map_err(|p| vec![p])?;
            Ok(Parsed {
                document: Document::Slo(Box::new(slo)),
                unknown_fields,
            })
        }
        Some("Playbook") => {
            let (playbook, unknown_fields) =
                deserialize::<v1::PlaybookDocument>(doc, true).map_err(|p| vec![p])?;
            Ok(Parsed {
                document: Document::Playbook(Box::new(playbook)),
                unknown_fields,
            })
        }
        Some(other) => Err(vec![Problem::new(
            "kind",
            line_of(&header.kind),
            format!("unknown kind `{other}`; expected `SLO` or `Playbook`"),
        )]),
        None => Err(vec![Problem::new(
            "kind",
            None,
            "is missing; expected `SLO` or `Playbook`",
        )]),
    }
}

fn absolute_line(doc: &SourceDocument<'_>, line_in_document: u64) -> u64 {
    doc.first_line + line_in_document.saturating_sub(1)
}

/// Deserializes a document into `T`. The first type error (serde stops there) comes back as
/// a problem with its path and line; with `report_unknown`, every field `T` does not know is
/// returned as a problem too, so typos never pass silently.
fn deserialize<T: DeserializeOwned>(
    doc: &SourceDocument<'_>,
    report_unknown: bool,
) -> Result<(T, Vec<Problem>), Problem> {
    let unknown: RefCell<Vec<String>> = RefCell::new(Vec::new());
    let failed_path: RefCell<String> = RefCell::new(String::new());
    let options = serde_saphyr::options! { with_snippet: false };
    let result = serde_saphyr::with_deserializer_from_str_with_options(doc.text, options, |de| {
        let mut on_ignored = |path: serde_ignored::Path<'_>| {
            unknown.borrow_mut().push(path.to_string());
        };
        let de = serde_ignored::Deserializer::new(de, &mut on_ignored);
        serde_path_to_error::deserialize::<_, T>(de).map_err(|e| {
            *failed_path.borrow_mut() = e.path().to_string();
            e.into_inner()
        })
    });
    match result {
        Ok(value) => {
            let problems = if report_unknown {
                unknown
                    .into_inner()
                    .iter()
                    .filter_map(|raw| tidy_path(raw))
                    .map(|path| {
                        let field = path.rsplit('.').next().unwrap_or(&path).to_string();
                        Problem::new(
                            path,
                            None,
                            format!("unknown field `{field}`; check its spelling and indentation"),
                        )
                    })
                    .collect()
            } else {
                Vec::new()
            };
            Ok((value, problems))
        }
        Err(error) => {
            let path = tidy_path(&failed_path.into_inner()).unwrap_or_default();
            let line = error.location().map(|l| absolute_line(doc, l.line()));
            let message = match expected_at(&path) {
                Some(expected) => format!("{}; expected {expected}", describe(&error)),
                None => describe(&error),
            };
            Err(Problem::new(path, line, message))
        }
    }
}

/// Turns the paths serde helpers print into the dotted paths users see: option and newtype
/// steps (`?`) and the internals of span tracking are dropped. `None` for paths that only
/// exist inside the span wrapper.
fn tidy_path(raw: &str) -> Option<String> {
    if raw.contains("__serde_saphyr_private") {
        return None;
    }
    let segments: Vec<&str> = raw
        .split('.')
        .filter(|s| !s.is_empty() && *s != "?")
        .collect();
    // The span wrapper's payload shows up as a trailing `value`.
    let segments = match segments.split_last() {
        Some((&"value", rest)) if !rest.is_empty() => rest.to_vec(),
        _ => segments,
    };
    Some(segments.join("."))
}

/// What a field accepts, for type errors, where the parser's own words would not say.
fn expected_at(path: &str) -> Option<&'static str> {
    let leaf = path.rsplit('.').next().unwrap_or(path);
    let expected = match leaf {
        "" => "a mapping with apiVersion, kind, metadata and spec",
        "objective" => "a percentage as a number, such as 99.9",
        "minEvents" => "a whole number of events, 0 or more",
        "threshold" => "seconds as a number, such as 0.3",
        "budgetPercent" => "a percent as a number, such as 2",
        "burnRate" => "a factor as a number, such as 14.4",
        "labels" | "annotations" => "a mapping of names to strings",
        "metadata" => "a mapping with name and labels",
        "spec" | "indicator" | "ratio" | "latency" | "raw" | "alerting" => "a mapping",
        _ => return None,
    };
    Some(expected)
}

/// The parser's message without its `at line N, column M` suffix (we print lines ourselves).
fn describe(error: &serde_saphyr::Error) -> String {
    let text = error.to_string();
    let text = match text.rfind(" at line ") {
        Some(i) => &text[..i],
        None => text.as_str(),
    };
    let text = text.trim();
    if text.is_empty() {
        "is not valid YAML here".to_string()
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_split_on_markers_and_keep_their_lines() {
        let stream = "# leading comment\n---\na: 1\n---\n# only a comment\n---\nb: 2\nc: 3\n";
        let docs = split_documents(stream);
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].index, 1);
        assert_eq!(docs[0].first_line, 2);
        assert_eq!(docs[0].text, "\na: 1\n");
        assert_eq!(docs[1].index, 2);
        assert_eq!(docs[1].first_line, 6);
        assert_eq!(docs[1].text, "\nb: 2\nc: 3\n");
    }

    #[test]
    fn a_stream_without_markers_is_one_document() {
        let docs = split_documents("a: 1\n");
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0].first_line, 1);
    }

    #[test]
    fn three_dashes_inside_a_value_are_not_a_marker() {
        let docs = split_documents("a: ---\nb: '--- x'\n  ---\n");
        assert_eq!(docs.len(), 1);
    }

    #[test]
    fn paths_are_tidied_for_people() {
        assert_eq!(
            tidy_path("spec.?.objective.value").as_deref(),
            Some("spec.objective")
        );
        assert_eq!(tidy_path("spec.?.typo").as_deref(), Some("spec.typo"));
        assert_eq!(
            tidy_path("spec.?.window.?.?.__serde_saphyr_private_spanned"),
            None
        );
    }
}
