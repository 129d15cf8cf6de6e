//! Errors from loading a policy set or a test directory: each names the file, and where it
//! can the line and the policy, so an operator can fix the set without reading Cedar's
//! internals.

use std::fmt;

/// Where in a policy set something is wrong: a file relative to the policy directory, and the
/// line when Cedar reported a position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceLocation {
    pub file: String,
    pub line: Option<usize>,
}

impl SourceLocation {
    /// The location of `offset` (in bytes) in `text`, the contents of `file`.
    pub(crate) fn at_offset(file: &str, text: &str, offset: Option<usize>) -> SourceLocation {
        let line = offset.map(|offset| {
            let end = offset.min(text.len());
            text.as_bytes()[..end]
                .iter()
                .filter(|byte| **byte == b'\n')
                .count()
                + 1
        });
        SourceLocation {
            file: file.to_owned(),
            line,
        }
    }
}

impl fmt::Display for SourceLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}", self.file),
            None => f.write_str(&self.file),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("policy directory {path}: {message}")]
    Directory { path: String, message: String },
    #[error("read {path}: {message}")]
    Read { path: String, message: String },
    #[error("{file} is too large: {length} bytes, at most {maximum} accepted")]
    FileTooLarge {
        file: String,
        length: u64,
        maximum: u64,
    },
    #[error("{at}: syntax error: {message}")]
    Syntax { at: SourceLocation, message: String },
    #[error("{file}: policy number {position} ({effect}) has no @id annotation")]
    MissingId {
        file: String,
        position: usize,
        effect: String,
    },
    #[error("{file}: policy {id}: {message}")]
    Annotation {
        file: String,
        id: String,
        message: String,
    },
    #[error("policy id {id} is used twice: in {first} and in {second}")]
    DuplicateId {
        id: String,
        first: String,
        second: String,
    },
    #[error("{at}: policy {id} does not match the schema: {message}")]
    Schema {
        at: SourceLocation,
        id: String,
        message: String,
    },
    #[error("the built-in schema does not parse: {0}")]
    BuiltInSchema(String),
    #[error("no policy files (*.cedar) in {path}")]
    Empty { path: String },
    #[error("test file {file}: {message}")]
    TestFile { file: String, message: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_count_from_one() {
        let text = "a\nbb\n\nccc";
        let line = |offset| SourceLocation::at_offset("f.cedar", text, offset).line;
        assert_eq!(line(Some(0)), Some(1));
        assert_eq!(line(Some(1)), Some(1));
        assert_eq!(line(Some(2)), Some(2));
        assert_eq!(line(Some(6)), Some(4));
        assert_eq!(line(Some(100)), Some(4));
        assert_eq!(line(None), None);
        assert_eq!(
            SourceLocation::at_offset("f.cedar", text, Some(3)).to_string(),
            "f.cedar:2"
        );
        assert_eq!(
            SourceLocation::at_offset("f.cedar", text, None).to_string(),
            "f.cedar"
        );
    }
}
