//! Checkpoints of c2sp.org/tlog-checkpoint v1.0.0: the note text `<origin>\n<size>\n
//! <base64 root>\n[<extension>\n…]`. Parsing is strict, so a parsed checkpoint turns
//! back into exactly the text that was signed.

use crate::ed25519::Signer;
use crate::hash::{Hash, HashParseError, TreeSize, parse_canonical_decimal};
use crate::note::Note;

/// A log's signed statement of its tree head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    // INVARIANT: origin and extensions are non-empty lines without control characters.
    origin: String,
    size: TreeSize,
    root: Hash,
    extensions: Vec<String>,
}

/// Why a checkpoint text was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint text does not end in a newline")]
    NotTerminated,
    #[error("checkpoint has {count} lines, at least 3 are required")]
    TooFewLines { count: usize },
    #[error("checkpoint origin is empty")]
    EmptyOrigin,
    #[error("checkpoint line {line} contains a control character")]
    ControlCharacter { line: usize },
    #[error("tree size {text:?} is not a decimal without leading zeroes")]
    Size { text: String },
    #[error("root hash is not base64 of 32 bytes")]
    Root(#[source] HashParseError),
    #[error("extension line {line} is empty")]
    EmptyExtension { line: usize },
}

impl Checkpoint {
    pub fn new(origin: &str, size: TreeSize, root: Hash, extensions: Vec<String>) -> Result<Checkpoint, CheckpointError> {
        if origin.is_empty() {
            return Err(CheckpointError::EmptyOrigin);
        }
        check_line(origin, 1)?;
        for (position, extension) in extensions.iter().enumerate() {
            let line = position + 4;
            if extension.is_empty() {
                return Err(CheckpointError::EmptyExtension { line });
            }
            check_line(extension, line)?;
        }
        Ok(Checkpoint { origin: origin.to_owned(), size, root, extensions })
    }

    /// Parses a note text as a checkpoint.
    pub fn parse(text: &str) -> Result<Checkpoint, CheckpointError> {
        let body = text.strip_suffix('\n').ok_or(CheckpointError::NotTerminated)?;
        let lines: Vec<&str> = body.split('\n').collect();
        let [origin, size_text, root_text, extensions @ ..] = lines.as_slice() else {
            return Err(CheckpointError::TooFewLines { count: lines.len() });
        };
        let size = parse_canonical_decimal(size_text)
            .ok_or_else(|| CheckpointError::Size { text: (*size_text).to_owned() })?;
        let root = Hash::from_base64(root_text).map_err(CheckpointError::Root)?;
        let extensions = extensions.iter().map(|line| (*line).to_owned()).collect();
        Checkpoint::new(origin, TreeSize(size), root, extensions)
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }

    pub fn size(&self) -> TreeSize {
        self.size
    }

    pub fn root(&self) -> Hash {
        self.root
    }

    pub fn extensions(&self) -> &[String] {
        &self.extensions
    }

    /// The note text, with its final newline.
    pub fn to_text(&self) -> String {
        let mut text = format!("{}\n{}\n{}\n", self.origin, self.size, self.root.to_base64());
        for extension in &self.extensions {
            text.push_str(extension);
            text.push('\n');
        }
        text
    }

    /// The checkpoint as a note signed by the log's key.
    pub fn sign(&self, signer: &Signer) -> Note {
        let text = self.to_text();
        let signature = signer.sign(&text);
        // INVARIANT: the lines hold no control characters and the text ends in a newline.
        Note::new(&text, vec![signature]).expect("checkpoint text is valid note text")
    }
}

fn check_line(text: &str, line: usize) -> Result<(), CheckpointError> {
    // Only ASCII controls: the note format allows every other character.
    if text.bytes().any(|byte| byte < 0x20) {
        return Err(CheckpointError::ControlCharacter { line });
    }
    Ok(())
}
