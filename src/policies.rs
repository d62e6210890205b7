//! Loading policies from disk: files and directories in, a validated [`PolicySet`] out, or
//! every problem found across all of them.
//!
//! Owns: reading files, walking directories (`*.yaml`, `*.yml`, sorted, hidden entries
//! skipped), attaching file names to problems. Must not touch: what a policy means (that is
//! `domain::validate`).

use std::fmt;
use std::path::{Path, PathBuf};

use crate::domain::playbook::Playbook;
use crate::domain::policy::Slo;
use crate::domain::problem::Problem;
use crate::domain::spec::{self, Document};
use crate::domain::validate::{self, Origin};

/// A validated SLO and where it came from.
#[derive(Clone, Debug)]
pub struct LoadedSlo {
    pub origin: Origin,
    pub slo: Slo,
}

/// A validated playbook and where it came from.
#[derive(Clone, Debug)]
pub struct LoadedPlaybook {
    pub origin: Origin,
    pub playbook: Playbook,
}

/// Everything loaded, in file order then document order.
#[derive(Clone, Debug, Default)]
pub struct PolicySet {
    pub slos: Vec<LoadedSlo>,
    pub playbooks: Vec<LoadedPlaybook>,
}

impl PolicySet {
    pub fn slos(&self) -> Vec<Slo> {
        self.slos.iter().map(|l| l.slo.clone()).collect()
    }

    /// Playbooks by name.
    pub fn playbooks(&self) -> std::collections::BTreeMap<String, Playbook> {
        self.playbooks
            .iter()
            .map(|l| (l.playbook.name.clone(), l.playbook.clone()))
            .collect()
    }
}

/// A problem and the file it is in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileProblem {
    pub source: String,
    pub problem: Problem,
}

impl fmt::Display for FileProblem {
    /// `policies/a.yaml:12: document 1, spec.objective: ...`, the shape editors jump to.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.problem.line {
            Some(line) => write!(f, "{}:{line}: ", self.source)?,
            None => write!(f, "{}: ", self.source)?,
        }
        let mut problem = self.problem.clone();
        problem.line = None;
        write!(f, "{problem}")
    }
}

/// Why loading failed: the list of every problem found.
#[derive(Debug, thiserror::Error)]
#[error("{} problem(s) in the policies", problems.len())]
pub struct LoadError {
    pub problems: Vec<FileProblem>,
}

/// Loads every policy under `paths` (files, or directories searched recursively).
pub fn load(paths: &[PathBuf]) -> Result<PolicySet, LoadError> {
    let mut problems = Vec::new();
    let mut slos = Vec::new();
    let mut playbooks = Vec::new();
    if paths.is_empty() {
        problems.push(file_problem(
            "(arguments)",
            "no policy paths given; name files or directories",
        ));
    }
    for path in paths {
        let files = match policy_files(path) {
            Ok(files) => files,
            Err(why) => {
                problems.push(file_problem(&path.display().to_string(), &why));
                continue;
            }
        };
        for file in files {
            let source = file.display().to_string();
            match std::fs::read_to_string(&file) {
                Ok(text) => {
                    let (found, books, bad) = parse_policies(&source, &text);
                    slos.extend(found);
                    playbooks.extend(books);
                    problems.extend(bad);
                }
                Err(e) => problems.push(file_problem(&source, &format!("cannot be read: {e}"))),
            }
        }
    }
    for (origin, problem) in validate::duplicate_names(slos.iter().map(|l| (&l.origin, &l.slo))) {
        problems.push(FileProblem {
            source: origin.source,
            problem,
        });
    }
    let mut seen = std::collections::HashMap::new();
    for book in &playbooks {
        if let Some(first) = seen.insert(book.playbook.name.as_str(), &book.origin) {
            problems.push(FileProblem {
                source: book.origin.source.clone(),
                problem: Problem {
                    document: book.origin.document,
                    path: "metadata.name".into(),
                    line: None,
                    message: format!(
                        "Playbook `{}` is already defined in {} (document {}); names must be unique",
                        book.playbook.name, first.source, first.document
                    ),
                },
            });
        }
    }
    let names: std::collections::HashSet<&str> =
        playbooks.iter().map(|b| b.playbook.name.as_str()).collect();
    for (i, mut problem) in validate::check_playbook_references(slos.iter().map(|l| &l.slo), &names)
    {
        problem.document = slos[i].origin.document;
        problems.push(FileProblem {
            source: slos[i].origin.source.clone(),
            problem,
        });
    }
    if problems.is_empty() {
        Ok(PolicySet { slos, playbooks })
    } else {
        Err(LoadError { problems })
    }
}

/// Parses and validates every SLO document of one source text (playbooks are checked but not
/// returned; see [`parse_policies`]).
pub fn parse_source(source: &str, text: &str) -> (Vec<LoadedSlo>, Vec<FileProblem>) {
    let (slos, _, problems) = parse_policies(source, text);
    (slos, problems)
}

/// Parses and validates every document of one source text. References between documents
/// (an SLO running a playbook) are checked by [`load`], across all files.
pub fn parse_policies(
    source: &str,
    text: &str,
) -> (Vec<LoadedSlo>, Vec<LoadedPlaybook>, Vec<FileProblem>) {
    let mut slos = Vec::new();
    let mut playbooks = Vec::new();
    let mut problems = Vec::new();
    let documents = spec::split_documents(text);
    if documents.is_empty() {
        problems.push(file_problem(source, "holds no YAML documents"));
    }
    for doc in documents {
        let origin = Origin {
            source: source.to_string(),
            document: doc.index,
        };
        let result = spec::parse_document(&doc).and_then(|parsed| {
            let validated = match parsed.document {
                Document::Slo(slo) => {
                    validate::validate_slo(&doc, *slo).map(|s| Loaded::Slo(Box::new(s)))
                }
                Document::Playbook(book) => {
                    validate::validate_playbook(&doc, *book).map(Loaded::Playbook)
                }
            };
            match (validated, parsed.unknown_fields) {
                (Ok(loaded), unknown) if unknown.is_empty() => Ok(loaded),
                (Ok(_), unknown) => Err(unknown),
                (Err(problems), unknown) => Err(unknown.into_iter().chain(problems).collect()),
            }
        });
        match result {
            Ok(Loaded::Slo(slo)) => slos.push(LoadedSlo { origin, slo: *slo }),
            Ok(Loaded::Playbook(playbook)) => playbooks.push(LoadedPlaybook { origin, playbook }),
            Err(found) => problems.extend(found.into_iter().map(|mut problem| {
                problem.document = doc.index;
                FileProblem {
                    source: source.to_string(),
                    problem,
                }
            })),
        }
    }
    (slos, playbooks, problems)
}

enum Loaded {
    Slo(Box<Slo>),
    Playbook(Playbook),
}

fn file_problem(source: &str, message: &str) -> FileProblem {
    FileProblem {
        source: source.to_string(),
        problem: Problem {
            document: 0,
            path: String::new(),
            line: None,
            message: message.to_string(),
        },
    }
}

/// The policy files a path stands for: itself if a file, else its YAML files, recursively.
fn policy_files(path: &Path) -> Result<Vec<PathBuf>, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot be read: {e}"))?;
    if meta.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    collect_yaml(path, &mut files).map_err(|e| format!("cannot be listed: {e}"))?;
    if files.is_empty() {
        return Err("holds no *.yaml or *.yml files".into());
    }
    files.sort();
    Ok(files)
}

fn collect_yaml(dir: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let hidden = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'));
        if hidden {
            continue;
        }
        if path.is_dir() {
            collect_yaml(&path, files)?;
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e == "yaml" || e == "yml")
        {
            files.push(path);
        }
    }
    Ok(())
}
