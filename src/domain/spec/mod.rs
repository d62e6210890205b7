//! Reading policy text: splitting a YAML stream into documents, deciding each document's
//! format and kind, and deserializing it into the wire types of its format with every unknown
//! field and the first type error reported with its path and line.
//!
//! Formats: burnguard's own `burnguard.dev/v1` ([`v1`]), and the importers' Sloth
//! (`version: prometheus/v1` and `sloth.slok.dev/v1`, [`sloth`]), Pyrra (`pyrra.dev/v1alpha1`,
//! [`pyrra`]) and OpenSLO (`openslo/v1`, [`openslo`]). Importers map a foreign document to the
//! same validated `Slo` a burnguard document gives; they are pure (text in, values out).
//!
//! Owns: document boundaries (also the items of a top-level YAML list), line numbering, the
//! format and kind dispatch. Must not touch: files (it takes text).

mod draft;
pub mod openslo;
pub mod pyrra;
mod queries;
pub mod sloth;
pub mod v1;

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;

use serde::de::DeserializeOwned;

use super::problem::Problem;

/// One document of a YAML stream: a `---`-separated document, or one item of a document that
/// is a top-level list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceDocument<'a> {
    /// 1-based position among the non-empty documents (and list items) of the stream.
    pub index: usize,
    /// 1-based line of the stream on which `text` starts.
    pub first_line: u64,
    pub text: Cow<'a, str>,
}

/// Splits a YAML stream on document markers (`---` and `...` at the start of a line) and
/// drops documents holding only blank lines and comments. YAML forbids those markers inside
/// any scalar, so a line-based split is exact; it keeps line numbers true to the file.
///
/// A document that is a top-level block list (`- apiVersion: ...`) becomes one document per
/// item, numbered on: the item's dash is blanked out, which leaves a mapping indented like the
/// rest of the item, on the same lines as in the file.
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
        .flat_map(|(first_line, text)| list_items(first_line, text))
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

/// A line that opens an item of a top-level block list: a dash in the first column, then
/// nothing or a space. (`-1` or `-x` is a scalar, not an item.)
fn is_top_level_item(line: &str) -> bool {
    line.strip_prefix('-').is_some_and(|rest| {
        rest.trim_end_matches(['\r', '\n']).is_empty() || rest.starts_with([' ', '\t'])
    })
}

/// The items of a document that is a top-level block list, each with the line it starts on;
/// the document itself otherwise. Block scalars and nested content are indented, so a dash in
/// the first column can only start a top-level item.
fn list_items(first_line: u64, text: &str) -> Vec<(u64, Cow<'_, str>)> {
    let first_content = text
        .lines()
        .map(str::trim_end)
        .find(|line| !(line.trim().is_empty() || line.trim_start().starts_with('#')));
    if !first_content.is_some_and(is_top_level_item) {
        return vec![(first_line, Cow::Borrowed(text))];
    }
    let mut items: Vec<(u64, String)> = Vec::new();
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let line_number = first_line + i as u64;
        if is_top_level_item(line) {
            // Blank the dash: the item's first key lines up with the keys below it.
            items.push((line_number, format!(" {}", &line[1..])));
        } else if let Some((_, item)) = items.last_mut() {
            item.push_str(line);
        }
    }
    items
        .into_iter()
        .filter(|(_, text)| !is_blank_yaml(text))
        .map(|(line, text)| (line, Cow::Owned(text)))
        .collect()
}

/// The format a policy document is written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SourceFormat {
    Burnguard,
    /// Sloth's `version: prometheus/v1` files.
    Sloth,
    /// Sloth's Kubernetes resource, `sloth.slok.dev/v1` `PrometheusServiceLevel`.
    SlothKubernetes,
    /// Pyrra's `pyrra.dev/v1alpha1` `ServiceLevelObjective`.
    Pyrra,
    /// OpenSLO `openslo/v1`.
    OpenSlo,
}

impl SourceFormat {
    /// Whether documents of this format are read by an importer.
    pub fn is_foreign(self) -> bool {
        self != SourceFormat::Burnguard
    }
}

impl fmt::Display for SourceFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SourceFormat::Burnguard => "burnguard.dev/v1",
            SourceFormat::Sloth => "Sloth prometheus/v1",
            SourceFormat::SlothKubernetes => "Sloth sloth.slok.dev/v1 PrometheusServiceLevel",
            SourceFormat::Pyrra => "Pyrra pyrra.dev/v1alpha1 ServiceLevelObjective",
            SourceFormat::OpenSlo => "OpenSLO openslo/v1",
        })
    }
}

/// A document read far enough to know what it is.
#[derive(Debug)]
pub enum Document {
    Slo(Box<v1::SloDocument>),
    Playbook(Box<v1::PlaybookDocument>),
    /// A Sloth file (either form): one service with any number of SLOs.
    Sloth(Box<sloth::SlothDocument>),
    Pyrra(Box<pyrra::PyrraDocument>),
    /// Any OpenSLO object: SLOs need the SLIs and DataSources of the whole set.
    OpenSlo(Box<openslo::Object>),
}

/// A document of a known kind, and the fields it has that the kind does not know. Unknown
/// fields are problems, but validation still runs so every problem is reported at once.
#[derive(Debug)]
pub struct Parsed {
    pub document: Document,
    pub unknown_fields: Vec<Problem>,
}

/// The apiVersions (and Sloth's `version`) this build reads, for messages.
const ACCEPTED_VERSIONS: &str = "`burnguard.dev/v1`; or, to import, `sloth.slok.dev/v1`, `pyrra.dev/v1alpha1`, `openslo/v1`, or Sloth's `version: prometheus/v1`";

/// Reads one document: its header first, then the body of its format and kind.
pub fn parse_document(doc: &SourceDocument<'_>) -> Result<Parsed, Vec<Problem>> {
    let (header, _) = deserialize::<v1::Header>(doc, false).map_err(|p| vec![p])?;
    let line_of = |s: &Option<serde_saphyr::Spanned<String>>| {
        s.as_ref().map(|s| absolute_line(doc, s.referenced.line()))
    };
    let kind = header.kind.as_ref().map(|s| s.value.as_str());
    let wrong_kind = |expected: &str| -> Vec<Problem> {
        match kind {
            Some(other) => vec![Problem::new(
                "kind",
                line_of(&header.kind),
                format!("unknown kind `{other}`; expected {expected}"),
            )],
            None => vec![Problem::new(
                "kind",
                None,
                format!("is missing; expected {expected}"),
            )],
        }
    };
    let api_version = header.api_version.as_ref().map(|s| s.value.as_str());
    let parsed = |document: Document, unknown_fields: Vec<Problem>| Parsed {
        document,
        unknown_fields,
    };
    match api_version {
        Some(v1::API_VERSION) => match kind {
            // `ServiceLevelObjective` is the Kubernetes kind; a file may use either name.
            Some("SLO" | v1::KUBERNETES_SLO_KIND) => {
                let (slo, unknown) =
                    deserialize::<v1::SloDocument>(doc, true).map_err(|p| vec![p])?;
                Ok(parsed(Document::Slo(Box::new(slo)), unknown))
            }
            Some("Playbook") => {
                let (book, unknown) =
                    deserialize::<v1::PlaybookDocument>(doc, true).map_err(|p| vec![p])?;
                Ok(parsed(Document::Playbook(Box::new(book)), unknown))
            }
            _ => Err(wrong_kind(
                "`SLO` (or `ServiceLevelObjective`) or `Playbook`",
            )),
        },
        Some(sloth::KUBERNETES_API_VERSION) => match kind {
            Some(sloth::KUBERNETES_KIND) => {
                let (found, unknown) =
                    deserialize::<sloth::KubernetesDocument>(doc, true).map_err(|p| vec![p])?;
                let document = sloth::SlothDocument::Kubernetes(Box::new(found));
                Ok(parsed(Document::Sloth(Box::new(document)), unknown))
            }
            _ => Err(wrong_kind(&format!("`{}`", sloth::KUBERNETES_KIND))),
        },
        Some(pyrra::API_VERSION) => match kind {
            Some(pyrra::KIND) => {
                let (found, unknown) =
                    deserialize::<pyrra::PyrraDocument>(doc, true).map_err(|p| vec![p])?;
                Ok(parsed(Document::Pyrra(Box::new(found)), unknown))
            }
            _ => Err(wrong_kind(&format!("`{}`", pyrra::KIND))),
        },
        Some(openslo::API_VERSION) => match kind.and_then(openslo::Kind::from_name) {
            Some(kind) => {
                let (object, unknown) = openslo::parse(doc, kind)?;
                Ok(parsed(Document::OpenSlo(Box::new(object)), unknown))
            }
            None => Err(wrong_kind(openslo::KINDS)),
        },
        None => match header.version.as_ref() {
            Some(version) if version.value == sloth::VERSION => {
                let (found, unknown) =
                    deserialize::<sloth::PlainDocument>(doc, true).map_err(|p| vec![p])?;
                let document = sloth::SlothDocument::Plain(Box::new(found));
                Ok(parsed(Document::Sloth(Box::new(document)), unknown))
            }
            Some(version) => Err(vec![Problem::new(
                "version",
                line_of(&header.version),
                format!(
                    "`{}` is not a Sloth spec version burnguard reads; expected `{}`",
                    version.value,
                    sloth::VERSION
                ),
            )]),
            None => Err(vec![Problem::new(
                "apiVersion",
                None,
                format!("is missing; expected {ACCEPTED_VERSIONS}"),
            )]),
        },
        Some(other) => Err(vec![Problem::new(
            "apiVersion",
            line_of(&header.api_version),
            format!(
                "`{other}` is not a policy version burnguard reads; expected {ACCEPTED_VERSIONS}"
            ),
        )]),
    }
}

pub(crate) fn absolute_line(doc: &SourceDocument<'_>, line_in_document: u64) -> u64 {
    doc.first_line + line_in_document.saturating_sub(1)
}

/// Deserializes a document into `T`. The first type error (serde stops there) comes back as
/// a problem with its path and line; with `report_unknown`, every field `T` does not know is
/// returned as a problem too, so typos never pass silently.
pub(crate) fn deserialize<T: DeserializeOwned>(
    doc: &SourceDocument<'_>,
    report_unknown: bool,
) -> Result<(T, Vec<Problem>), Problem> {
    let unknown: RefCell<Vec<String>> = RefCell::new(Vec::new());
    let failed_path: RefCell<String> = RefCell::new(String::new());
    let options = serde_saphyr::options! { with_snippet: false };
    let result = serde_saphyr::with_deserializer_from_str_with_options(&doc.text, options, |de| {
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
    fn items_of_a_top_level_list_are_documents_on_their_own_lines() {
        let stream = "# a list\n- a: 1\n  b: 2\n\n- c: 3\n---\nd: 4\n";
        let docs = split_documents(stream);
        let found: Vec<(usize, u64, &str)> = docs
            .iter()
            .map(|d| (d.index, d.first_line, d.text.as_ref()))
            .collect();
        assert_eq!(
            found,
            vec![
                (1, 2, "  a: 1\n  b: 2\n\n"),
                (2, 5, "  c: 3\n"),
                (3, 6, "\nd: 4\n")
            ]
        );
    }

    #[test]
    fn a_dash_that_is_not_a_list_item_leaves_the_document_whole() {
        for text in ["-1\n", "a:\n- b\n", "a: |\n  - x\n", "'-x': 1\n"] {
            let docs = split_documents(text);
            assert_eq!(docs.len(), 1, "{text:?}");
            assert_eq!(docs[0].text, text, "{text:?}");
        }
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
