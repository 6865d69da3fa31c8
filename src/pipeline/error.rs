//! Pipeline errors: each names the file, the line and column where known, the stage
//! and the key, and says how to fix it.

use std::path::PathBuf;

/// An invalid pipeline (exit code 2). Boxed: errors are rare and results stay small.
#[derive(Debug, Clone)]
pub struct Error(Box<Details>);

/// What an [`Error`] says.
#[derive(Debug, Clone)]
pub struct Details {
    /// The pipeline file.
    pub file: PathBuf,
    /// 1-based line, where known.
    pub line: Option<usize>,
    /// 1-based column, where known.
    pub column: Option<usize>,
    /// The stage concerned, if any.
    pub stage: Option<String>,
    /// The dotted key concerned, if any.
    pub key: Option<String>,
    /// What is wrong, with a suggestion where one exists.
    pub message: String,
}

impl Error {
    /// An error about the file as a whole.
    pub fn file(file: &std::path::Path, message: impl Into<String>) -> Error {
        Error(Box::new(Details {
            file: file.to_path_buf(),
            line: None,
            column: None,
            stage: None,
            key: None,
            message: message.into(),
        }))
    }

    /// The details.
    pub fn details(&self) -> &Details {
        &self.0
    }

    /// Sets the stage concerned.
    pub fn in_stage(mut self, stage: &str) -> Error {
        self.0.stage = Some(stage.to_string());
        self
    }

    /// Sets the key concerned.
    pub fn at_key(mut self, key: &str) -> Error {
        if !key.is_empty() {
            self.0.key = Some(key.to_string());
        }
        self
    }

    /// Sets the position, if known.
    pub fn at(mut self, position: Option<(usize, usize)>) -> Error {
        if let Some((line, column)) = position {
            self.0.line = Some(line);
            self.0.column = Some(column);
        }
        self
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let d = &self.0;
        write!(f, "{}", d.file.display())?;
        if let Some(line) = d.line {
            write!(f, ":{line}")?;
            if let Some(col) = d.column {
                write!(f, ":{col}")?;
            }
        }
        write!(f, ": ")?;
        if let Some(stage) = &d.stage {
            write!(f, "stage `{stage}`")?;
            if let Some(key) = &d.key {
                write!(f, ", key `{key}`")?;
            }
            write!(f, ": ")?;
        } else if let Some(key) = &d.key {
            write!(f, "key `{key}`: ")?;
        }
        write!(f, "{}", d.message)
    }
}

impl std::error::Error for Error {}
