//! Loading policies from disk: files and directories in, a validated [`PolicySet`] out, or
//! every problem found across all of them.
//!
//! Owns: reading files, walking directories (`*.yaml`, `*.yml`, sorted, hidden entries
//! skipped), attaching file names to problems. Must not touch: what a policy means (that is
//! `domain::validate`).

use std::fmt;
use std::path::{Path, PathBuf};

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

/// Everything loaded, in file order then document order.
#[derive(Clone, Debug, Default)]
pub struct PolicySet {
    pub slos: Vec<LoadedSlo>,
}

impl PolicySet {
    pub fn slos(&self) -> Vec<Slo> {
        self.slos.iter().map(|l| l.slo.clone()).collect()
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
                    let (found, bad) = parse_source(&source, &text);
                    slos.extend(found);
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
    if problems.is_empty() {
        Ok(PolicySet { slos })
    } else {
        Err(LoadError { problems })
    }
}

/// Parses and validates every document of one source text.
pub fn parse_source(source: &str, text: &str) -> (Vec<LoadedSlo>, Vec<FileProblem>) {
    let mut slos = Vec::new();
    let mut problems = Vec::new();
    let documents = spec::split_documents(text);
    if documents.is_empty() {
        problems.push(file_problem(source, "holds no YAML documents"));
    }
    for doc in documents {
        let result = spec::parse_document(&doc).and_then(|parsed| {
            let Document::Slo(slo) = parsed.document;
            let validated = validate::validate_slo(&doc, *slo);
            match (validated, parsed.unknown_fields) {
                (Ok(slo), unknown) if unknown.is_empty() => Ok(slo),
                (Ok(_), unknown) => Err(unknown),
                (Err(problems), unknown) => Err(unknown.into_iter().chain(problems).collect()),
            }
        });
        match result {
            Ok(slo) => slos.push(LoadedSlo {
                origin: Origin {
                    source: source.to_string(),
                    document: doc.index,
                },
                slo,
            }),
            Err(found) => problems.extend(found.into_iter().map(|mut problem| {
                problem.document = doc.index;
                FileProblem {
                    source: source.to_string(),
                    problem,
                }
            })),
        }
    }
    (slos, problems)
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
