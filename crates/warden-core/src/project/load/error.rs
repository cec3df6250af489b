//! What loading reports: one `ProjectError` per problem, with its file, line, column and
//! field, and `LoadError`, all of them at once.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::project::FieldLocation;

/// One problem in a project file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectError {
    pub file: PathBuf,
    pub line: Option<u32>,
    pub column: Option<u32>,
    /// Dotted path of the offending field, e.g. `tools[2].params[0].type`.
    pub field: String,
    pub message: String,
}

impl ProjectError {
    /// A problem with the field written at `at` in `file`.
    pub fn at(file: &Path, at: &FieldLocation, message: impl Into<String>) -> Self {
        Self {
            file: file.to_path_buf(),
            line: Some(at.line),
            column: Some(at.column),
            field: at.field.clone(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ProjectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(col) = self.column {
                write!(f, ":{col}")?;
            }
        }
        if self.field.is_empty() {
            write!(f, ": {}", self.message)
        } else {
            write!(f, ": {}: {}", self.field, self.message)
        }
    }
}

/// Every problem found in a project file.
#[derive(Debug, Clone, thiserror::Error)]
pub struct LoadError {
    pub errors: Vec<ProjectError>,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}
