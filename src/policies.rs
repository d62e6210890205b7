//! Loading policies from disk: files and directories in, a validated [`PolicySet`] out, or
//! every problem found across all of them.
//!
//! Owns: reading files, walking directories (`*.yaml`, `*.yml`, sorted, hidden entries
//! skipped), attaching file names to problems, handing every document of a load to the
//! domain at once (an OpenSLO SLO may name an SLI in another file). Must not touch: what a
//! policy means (that is `domain::validate` and the importers in `domain::spec`).

use std::fmt;
use std::path::{Path, PathBuf};

use crate::domain::playbook::Playbook;
use crate::domain::policy::{Slo, Window};
use crate::domain::problem::Problem;
use crate::domain::spec::{self, Document, SourceFormat, openslo};
use crate::domain::validate::{self, Origin};

/// A validated SLO, where it came from and in which format it was written.
#[derive(Clone, Debug)]
pub struct LoadedSlo {
    pub origin: Origin,
    pub slo: Slo,
    pub format: SourceFormat,
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

/// How foreign files are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadOptions {
    /// The SLO window of Sloth's SLOs: Sloth files have none (Sloth takes it from a flag).
    pub sloth_window: Window,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            sloth_window: validate::DEFAULT_WINDOW,
        }
    }
}

/// Loads every policy under `paths` (files, or directories searched recursively).
pub fn load(paths: &[PathBuf]) -> Result<PolicySet, LoadError> {
    load_with(paths, &LoadOptions::default())
}

/// [`load`] with options for the foreign formats.
pub fn load_with(paths: &[PathBuf], options: &LoadOptions) -> Result<PolicySet, LoadError> {
    let mut problems = Vec::new();
    if paths.is_empty() {
        problems.push(file_problem(
            "(arguments)",
            "no policy paths given; name files or directories",
        ));
    }
    let mut sources = Vec::new();
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
                Ok(text) => sources.push((source, text)),
                Err(e) => problems.push(file_problem(&source, &format!("cannot be read: {e}"))),
            }
        }
    }
    let (slos, playbooks, bad) = parse_sources(&sources, options);
    problems.extend(bad);
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
    let books: std::collections::BTreeMap<&str, &Playbook> = playbooks
        .iter()
        .map(|b| (b.playbook.name.as_str(), &b.playbook))
        .collect();
    for (i, mut problem) in validate::check_playbook_references(slos.iter().map(|l| &l.slo), &books)
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
    parse_sources(
        &[(source.to_string(), text.to_string())],
        &LoadOptions::default(),
    )
}

/// What one document gave, in the order of the files and their documents.
enum Slot {
    Done(Result<Vec<Loaded>, Vec<Problem>>),
    /// An OpenSLO document: its entry among those resolved together, and its unknown fields.
    OpenSlo(usize, Vec<Problem>),
}

/// What one document gave before OpenSLO documents are resolved together.
enum Parsed {
    Done(Result<Vec<Loaded>, Vec<Problem>>),
    OpenSlo(Box<openslo::Object>, Vec<Problem>),
}

/// Parses and validates one document (an OpenSLO one only parses: it may refer to others).
fn parse_one(doc: &spec::SourceDocument<'_>, options: &LoadOptions) -> Parsed {
    let parsed = match spec::parse_document(doc) {
        Err(found) => return Parsed::Done(Err(found)),
        Ok(parsed) => parsed,
    };
    let unknown = parsed.unknown_fields;
    let loaded = match parsed.document {
        Document::OpenSlo(object) => return Parsed::OpenSlo(object, unknown),
        Document::Slo(slo) => validate::validate_slo(doc, *slo)
            .map(|s| vec![Loaded::Slo(Box::new(s), SourceFormat::Burnguard)]),
        Document::Playbook(book) => {
            validate::validate_playbook(doc, *book).map(|b| vec![Loaded::Playbook(b)])
        }
        Document::Sloth(sloth) => {
            let format = match *sloth {
                spec::sloth::SlothDocument::Plain(_) => SourceFormat::Sloth,
                spec::sloth::SlothDocument::Kubernetes(_) => SourceFormat::SlothKubernetes,
            };
            spec::sloth::import(doc, *sloth, options.sloth_window).map(|slos| {
                slos.into_iter()
                    .map(|s| Loaded::Slo(Box::new(s), format))
                    .collect()
            })
        }
        Document::Pyrra(pyrra) => spec::pyrra::import(doc, *pyrra)
            .map(|s| vec![Loaded::Slo(Box::new(s), SourceFormat::Pyrra)]),
    };
    Parsed::Done(with_unknown(loaded, unknown))
}

/// Documents per thread below which one thread does it all (threads cost more than they
/// save on a few files).
const DOCUMENTS_PER_THREAD: usize = 500;

/// `work` applied to every item, on up to one thread per core, results in the items' order.
fn in_parallel<T: Sync, R: Send>(items: &[T], work: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let threads = cores.min(items.len() / DOCUMENTS_PER_THREAD).max(1);
    if threads == 1 {
        return items.iter().map(&work).collect();
    }
    let chunk = items.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| scope.spawn(|| part.iter().map(&work).collect::<Vec<R>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

/// Parses and validates every document of several sources `(name, text)` together, so that
/// an OpenSLO SLO may name an SLI or DataSource in another file. Results keep the files' and
/// documents' order.
pub fn parse_sources(
    sources: &[(String, String)],
    options: &LoadOptions,
) -> (Vec<LoadedSlo>, Vec<LoadedPlaybook>, Vec<FileProblem>) {
    let mut problems = Vec::new();
    let mut split: Vec<(&str, spec::SourceDocument<'_>)> = Vec::new();
    for (source, text) in sources {
        let docs = spec::split_documents(text);
        if docs.is_empty() {
            problems.push(file_problem(source, "holds no YAML documents"));
        }
        split.extend(docs.into_iter().map(|doc| (source.as_str(), doc)));
    }
    // Each document parses and validates on its own: on every core, in order.
    let parsed = in_parallel(&split, |(_, doc)| parse_one(doc, options));
    let mut documents: Vec<(&str, spec::SourceDocument<'_>, Slot)> =
        Vec::with_capacity(split.len());
    let mut openslo: Vec<openslo::Entry<'_>> = Vec::new();
    for ((source, doc), outcome) in split.into_iter().zip(parsed) {
        let slot = match outcome {
            Parsed::Done(result) => Slot::Done(result),
            Parsed::OpenSlo(object, unknown) => {
                openslo.push(openslo::Entry {
                    doc: doc.clone(),
                    object: *object,
                    place: format!("{source} document {}", doc.index),
                });
                Slot::OpenSlo(openslo.len() - 1, unknown)
            }
        };
        documents.push((source, doc, slot));
    }
    let mut resolved: Vec<Option<Result<Option<Slo>, Vec<Problem>>>> =
        openslo::import_set(&openslo)
            .into_iter()
            .map(Some)
            .collect();

    let mut slos = Vec::new();
    let mut playbooks = Vec::new();
    for (source, doc, slot) in documents {
        let result = match slot {
            Slot::Done(result) => result,
            Slot::OpenSlo(entry, unknown) => {
                let result = resolved[entry].take().unwrap_or(Ok(None));
                let loaded = result.map(|slo| {
                    slo.map(|s| Loaded::Slo(Box::new(s), SourceFormat::OpenSlo))
                        .into_iter()
                        .collect()
                });
                with_unknown(loaded, unknown)
            }
        };
        let origin = Origin {
            source: source.to_string(),
            document: doc.index,
        };
        match result {
            Ok(loaded) => {
                for item in loaded {
                    match item {
                        Loaded::Slo(slo, format) => slos.push(LoadedSlo {
                            origin: origin.clone(),
                            slo: *slo,
                            format,
                        }),
                        Loaded::Playbook(playbook) => playbooks.push(LoadedPlaybook {
                            origin: origin.clone(),
                            playbook,
                        }),
                    }
                }
            }
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

/// A document's result with its unknown fields: they are problems even when the rest is fine.
fn with_unknown(
    result: Result<Vec<Loaded>, Vec<Problem>>,
    unknown: Vec<Problem>,
) -> Result<Vec<Loaded>, Vec<Problem>> {
    match (result, unknown) {
        (Ok(loaded), unknown) if unknown.is_empty() => Ok(loaded),
        (Ok(_), unknown) => Err(unknown),
        (Err(problems), unknown) => Err(unknown.into_iter().chain(problems).collect()),
    }
}

enum Loaded {
    Slo(Box<Slo>, SourceFormat),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn slo_document(i: usize, objective: &str) -> String {
        format!(
            "apiVersion: burnguard.dev/v1\nkind: SLO\nmetadata: {{name: slo-{i}}}\nspec:\n  service: s\n  objective: {objective}\n  indicator: {{ratio: {{errors: 'sum(rate(e[{{{{.window}}}}]))', total: 'sum(rate(t[{{{{.window}}}}]))'}}}}\n"
        )
    }

    #[test]
    fn many_documents_parse_on_every_core_and_keep_their_order_and_places() {
        // Enough documents for several threads, in two files; three are bad.
        let bad = [3, 1_200, 2_400];
        let text = |range: std::ops::Range<usize>| {
            range
                .map(|i| slo_document(i, if bad.contains(&i) { "150" } else { "99.9" }))
                .collect::<Vec<_>>()
                .join("---\n")
        };
        let sources = vec![
            ("a.yaml".to_string(), text(0..1_500)),
            ("b.yaml".to_string(), text(1_500..2_500)),
        ];
        let (slos, _, problems) = parse_sources(&sources, &LoadOptions::default());
        let names: Vec<String> = slos.iter().map(|l| l.slo.name.clone()).collect();
        let expected: Vec<String> = (0..2_500)
            .filter(|i| !bad.contains(i))
            .map(|i| format!("slo-{i}"))
            .collect();
        assert_eq!(names, expected);
        let places: Vec<(&str, usize, &str)> = problems
            .iter()
            .map(|p| {
                (
                    p.source.as_str(),
                    p.problem.document,
                    p.problem.path.as_str(),
                )
            })
            .collect();
        // Documents are numbered from 1 in their own file.
        assert_eq!(
            places,
            [
                ("a.yaml", 4, "spec.objective"),
                ("a.yaml", 1_201, "spec.objective"),
                ("b.yaml", 901, "spec.objective"),
            ]
        );
    }

    #[test]
    fn in_parallel_keeps_the_order_of_its_items() {
        let items: Vec<usize> = (0..5_001).collect();
        assert_eq!(
            in_parallel(&items, |i| i * 2),
            items.iter().map(|i| i * 2).collect::<Vec<_>>()
        );
        assert!(in_parallel(&items[..0], |i| *i).is_empty());
    }
}
