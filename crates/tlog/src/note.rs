//! Signed notes of c2sp.org/signed-note v1.0.0: text followed by a blank line and
//! signature lines `— <key name> base64(key ID ‖ signature)`, parsed strictly so that
//! serializing a parsed note gives back the same bytes.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

/// The most signatures accepted on one note. The spec asks verifiers to accept at least
/// 16; witnesses and cosigners add up, so leave room while still bounding the work.
pub const NOTE_SIGNATURES_MAX: usize = 100;
/// The largest note accepted, signatures included: room for the signature limit even
/// with post-quantum signatures of several kilobytes.
pub const NOTE_BYTES_MAX: usize = 1 << 20;

const SIGNATURE_PREFIX: &str = "\u{2014} ";
/// A signature carries a 4-byte key ID and at least one byte of signature.
const SIGNATURE_BYTES_MIN: usize = 5;

/// A key name: non-empty, without Unicode spaces, `+` or control characters.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct KeyName(String);

/// The 32-bit key ID that, with the key name, picks the key for a signature.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct KeyId(pub u32);

/// One signature line of a note.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct NoteSignature {
    name: KeyName,
    key_id: KeyId,
    // INVARIANT: non-empty.
    signature: Vec<u8>,
}

/// A signed note: its text (ending in a newline) and at least one signature.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Note {
    // INVARIANT: valid note text (see check_text).
    text: String,
    // INVARIANT: 1..=NOTE_SIGNATURES_MAX signatures.
    signatures: Vec<NoteSignature>,
}

/// Checks one signature from a known key. Implemented by [`crate::Verifier`]
/// (Ed25519, type 0x01) and [`crate::CosignatureVerifier`] (type 0x04).
pub trait NoteVerifier {
    fn name(&self) -> &KeyName;
    fn key_id(&self) -> KeyId;
    /// Verifies `signature` (the bytes after the key ID) over the note `text`.
    fn verify(&self, text: &str, signature: &[u8]) -> Result<(), SignatureError>;
}

/// Why a key name was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyNameError {
    #[error("key name is empty")]
    Empty,
    #[error("key name contains a space, a plus sign or a control character")]
    ForbiddenCharacter,
}

/// Why a note could not be parsed or built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    #[error("note has {bytes} bytes, more than {NOTE_BYTES_MAX}")]
    TooLarge { bytes: usize },
    #[error("note is not valid UTF-8")]
    NotUtf8,
    #[error("note contains control character {byte:#04x} at byte {offset}")]
    ControlCharacter { byte: u8, offset: usize },
    #[error("note text is empty or does not end in a newline")]
    TextNotTerminated,
    #[error("note has no blank line before its signatures")]
    MissingSeparator,
    #[error("note has no signatures")]
    NoSignatures,
    #[error("note has {count} signatures, more than {NOTE_SIGNATURES_MAX}")]
    TooManySignatures { count: usize },
    #[error("last signature line does not end in a newline")]
    SignatureLineNotTerminated,
    #[error("signature line {line} does not start with an em dash and a space")]
    SignatureLinePrefix { line: usize },
    #[error("signature line {line} is not a key name, a space and base64")]
    SignatureLineFormat { line: usize },
    #[error("signature line {line} has an invalid key name")]
    KeyName { line: usize, source: KeyNameError },
    #[error("signature line {line} is not valid standard base64")]
    SignatureBase64 { line: usize },
    #[error("signature line {line} has {bytes} bytes, fewer than a key ID and a signature")]
    SignatureTooShort { line: usize, bytes: usize },
    #[error("signature is empty")]
    EmptySignature,
}

/// Why a single signature did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("signature has {actual} bytes, expected {expected}")]
    Length { expected: usize, actual: usize },
    #[error("cosignature timestamp {timestamp} exceeds 2^63 - 1")]
    TimestampTooLarge { timestamp: u64 },
    #[error("signature does not verify")]
    Invalid,
}

/// Why a note's signatures were rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteVerifyError {
    #[error("signature by known key {name} ({key_id}) failed to verify")]
    BadSignature { name: KeyName, key_id: KeyId, source: SignatureError },
    #[error("note has no signature from a known key")]
    NoKnownSignature,
}

impl KeyName {
    pub fn new(name: &str) -> Result<KeyName, KeyNameError> {
        if name.is_empty() {
            return Err(KeyNameError::Empty);
        }
        if name.chars().any(|c| c.is_whitespace() || c == '+' || c.is_control()) {
            return Err(KeyNameError::ForbiddenCharacter);
        }
        Ok(KeyName(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyName {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

impl fmt::Display for KeyId {
    /// Fixed-length lowercase hexadecimal, as in vkeys.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{:08x}", self.0)
    }
}

impl NoteSignature {
    /// A signature line; `signature` is the bytes after the key ID and must not be empty.
    pub fn new(name: KeyName, key_id: KeyId, signature: Vec<u8>) -> Result<NoteSignature, NoteError> {
        if signature.is_empty() {
            return Err(NoteError::EmptySignature);
        }
        Ok(NoteSignature { name, key_id, signature })
    }

    pub fn name(&self) -> &KeyName {
        &self.name
    }

    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// The signature bytes after the key ID.
    pub fn signature(&self) -> &[u8] {
        &self.signature
    }

    /// The line as it appears in a note, with its final newline.
    pub fn to_line(&self) -> String {
        let mut payload = Vec::with_capacity(4 + self.signature.len());
        payload.extend_from_slice(&self.key_id.0.to_be_bytes());
        payload.extend_from_slice(&self.signature);
        format!("{SIGNATURE_PREFIX}{} {}\n", self.name, BASE64.encode(payload))
    }
}

impl Note {
    /// A note with `text` (which must end in a newline and hold no control characters
    /// other than newlines) and at least one signature.
    pub fn new(text: &str, signatures: Vec<NoteSignature>) -> Result<Note, NoteError> {
        check_characters(text)?;
        if !text.ends_with('\n') {
            return Err(NoteError::TextNotTerminated);
        }
        check_signature_count(signatures.len())?;
        Ok(Note { text: text.to_owned(), signatures })
    }

    /// Parses a note, rejecting anything signed-note v1.0.0 does not allow.
    pub fn parse(bytes: &[u8]) -> Result<Note, NoteError> {
        if bytes.len() > NOTE_BYTES_MAX {
            return Err(NoteError::TooLarge { bytes: bytes.len() });
        }
        let note = std::str::from_utf8(bytes).map_err(|_| NoteError::NotUtf8)?;
        check_characters(note)?;
        // The text may itself contain blank lines; only the last one separates.
        let separator = note.rfind("\n\n").ok_or(NoteError::MissingSeparator)?;
        let text = &note[..=separator];
        let block = &note[separator + 2..];
        if block.is_empty() {
            return Err(NoteError::NoSignatures);
        }
        let block = block.strip_suffix('\n').ok_or(NoteError::SignatureLineNotTerminated)?;
        let lines: Vec<&str> = block.split('\n').collect();
        check_signature_count(lines.len())?;
        let signatures = lines
            .iter()
            .enumerate()
            .map(|(position, line)| parse_signature_line(line, position + 1))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Note { text: text.to_owned(), signatures })
    }

    /// The text that signatures cover, including its final newline.
    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn signatures(&self) -> &[NoteSignature] {
        &self.signatures
    }

    /// Adds a signature line, as a witness does with its cosignature.
    pub fn add_signature(&mut self, signature: NoteSignature) -> Result<(), NoteError> {
        check_signature_count(self.signatures.len() + 1)?;
        self.signatures.push(signature);
        Ok(())
    }

    /// The note's exact bytes: text, blank line, signature lines.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_string().into_bytes()
    }

    /// Verifies the note as signed-note v1.0.0 requires: signatures whose key name and
    /// ID do not both match a verifier are ignored; a matching one that fails rejects the
    /// note; and at least one must verify. Returns the signatures that verified.
    pub fn verify(&self, verifiers: &[&dyn NoteVerifier]) -> Result<Vec<&NoteSignature>, NoteVerifyError> {
        let verified = self.verify_known(verifiers)?;
        if verified.is_empty() {
            return Err(NoteVerifyError::NoKnownSignature);
        }
        Ok(verified)
    }

    /// Like [`Note::verify`] but accepts a note with no signature from these keys, for
    /// counting optional cosignatures after the log's signature has been checked.
    pub fn verify_known(
        &self,
        verifiers: &[&dyn NoteVerifier],
    ) -> Result<Vec<&NoteSignature>, NoteVerifyError> {
        let mut verified = Vec::new();
        for signature in &self.signatures {
            let Some(verifier) = verifiers
                .iter()
                .find(|verifier| verifier.name() == &signature.name && verifier.key_id() == signature.key_id)
            else {
                continue;
            };
            verifier.verify(&self.text, &signature.signature).map_err(|source| {
                NoteVerifyError::BadSignature {
                    name: signature.name.clone(),
                    key_id: signature.key_id,
                    source,
                }
            })?;
            verified.push(signature);
        }
        Ok(verified)
    }
}

impl fmt::Display for Note {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.text)?;
        formatter.write_str("\n")?;
        for signature in &self.signatures {
            formatter.write_str(&signature.to_line())?;
        }
        Ok(())
    }
}

/// Rejects ASCII control characters other than newline.
fn check_characters(text: &str) -> Result<(), NoteError> {
    match text.bytes().enumerate().find(|&(_, byte)| byte < 0x20 && byte != b'\n') {
        Some((offset, byte)) => Err(NoteError::ControlCharacter { byte, offset }),
        None => Ok(()),
    }
}

fn check_signature_count(count: usize) -> Result<(), NoteError> {
    if count == 0 {
        return Err(NoteError::NoSignatures);
    }
    if count > NOTE_SIGNATURES_MAX {
        return Err(NoteError::TooManySignatures { count });
    }
    Ok(())
}

fn parse_signature_line(line: &str, number: usize) -> Result<NoteSignature, NoteError> {
    let rest = line
        .strip_prefix(SIGNATURE_PREFIX)
        .ok_or(NoteError::SignatureLinePrefix { line: number })?;
    let (name, encoded) = rest
        .split_once(' ')
        .ok_or(NoteError::SignatureLineFormat { line: number })?;
    let name = KeyName::new(name).map_err(|source| NoteError::KeyName { line: number, source })?;
    let bytes = BASE64
        .decode(encoded)
        .map_err(|_| NoteError::SignatureBase64 { line: number })?;
    if bytes.len() < SIGNATURE_BYTES_MIN {
        return Err(NoteError::SignatureTooShort { line: number, bytes: bytes.len() });
    }
    let (key_id, signature) = bytes.split_at(4);
    let key_id = KeyId(u32::from_be_bytes([key_id[0], key_id[1], key_id[2], key_id[3]]));
    Ok(NoteSignature { name, key_id, signature: signature.to_vec() })
}
