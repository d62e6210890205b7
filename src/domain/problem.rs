//! A single thing wrong with a policy document, located as precisely as we know.
//!
//! Owns: [`Problem`] and its wording conventions. Must not touch: files (the loader adds the
//! file name), the terminal.

use std::fmt;

/// One problem in one document: where (field path, line) and what would be accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// 1-based position of the document in its file.
    pub document: usize,
    /// Dotted field path such as `spec.indicator.ratio.errors`; empty for the whole document.
    pub path: String,
    /// 1-based line in the file, when the parser told us.
    pub line: Option<u64>,
    pub message: String,
}

impl Problem {
    pub fn new(path: impl Into<String>, line: Option<u64>, message: impl Into<String>) -> Self {
        Self {
            document: 0,
            path: path.into(),
            line,
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    /// `document 2, line 14, spec.objective: must be ...`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "document {}", self.document)?;
        if let Some(line) = self.line {
            write!(f, ", line {line}")?;
        }
        if !self.path.is_empty() {
            write!(f, ", {}", self.path)?;
        }
        write!(f, ": {}", self.message)
    }
}
