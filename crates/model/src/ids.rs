//! Identifiers with their invariants checked once, at the edge: regions, subjects, staff, and
//! the protection labels a subject can carry.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Longest accepted region name, in bytes.
pub const REGION_ID_BYTES_MAX: usize = 32;
/// Longest accepted subject or staff id, in bytes.
pub const ID_BYTES_MAX: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("invalid region {0:?}: expected 1 to 32 of a-z, 0-9 and '-', starting with a letter")]
    Region(String),
    #[error("invalid {kind} id {value:?}: expected 1 to 128 printable ASCII characters without spaces")]
    Id { kind: &'static str, value: String },
    #[error("unknown label {0:?}")]
    Label(String),
}

/// A residency perimeter (`us`, `eu`, `sg`, …). Lowercase so that it can name a file and a
/// PostgreSQL schema without quoting.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RegionId(String);

impl RegionId {
    pub fn new(value: &str) -> Result<Self, IdError> {
        let mut chars = value.chars();
        let starts_with_letter = chars.next().is_some_and(|c| c.is_ascii_lowercase());
        let valid = starts_with_letter
            && value.len() <= REGION_ID_BYTES_MAX
            && value.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if valid { Ok(Self(value.to_owned())) } else { Err(IdError::Region(value.to_owned())) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

macro_rules! opaque_id {
    ($name:ident, $kind:literal) => {
        #[doc = concat!("An opaque ", $kind, " id: 1 to 128 printable ASCII characters, no spaces.")]
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn new(value: &str) -> Result<Self, IdError> {
                let valid = !value.is_empty()
                    && value.len() <= ID_BYTES_MAX
                    && value.bytes().all(|b| b.is_ascii_graphic());
                if valid {
                    Ok(Self(value.to_owned()))
                } else {
                    Err(IdError::Id { kind: $kind, value: value.to_owned() })
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(value: &str) -> Result<Self, IdError> {
                Self::new(value)
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(value: String) -> Result<Self, IdError> {
                Self::new(&value)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }
    };
}

opaque_id!(SubjectId, "subject");
opaque_id!(StaffId, "staff");

impl fmt::Display for RegionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for RegionId {
    type Err = IdError;
    fn from_str(value: &str) -> Result<Self, IdError> {
        Self::new(value)
    }
}

impl TryFrom<String> for RegionId {
    type Error = IdError;
    fn try_from(value: String) -> Result<Self, IdError> {
        Self::new(&value)
    }
}

impl From<RegionId> for String {
    fn from(id: RegionId) -> String {
        id.0
    }
}

/// Protection labels. A labelled subject needs an independent second person before staff may
/// read their data (the access issue); here they are only recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Label {
    Journalist,
    JournalistContact,
    PublicOfficial,
    Activist,
    Minor,
    Vip,
    Staff,
    PriorVictim,
}

impl Label {
    pub const ALL: [Label; 8] = [
        Label::Journalist,
        Label::JournalistContact,
        Label::PublicOfficial,
        Label::Activist,
        Label::Minor,
        Label::Vip,
        Label::Staff,
        Label::PriorVictim,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Label::Journalist => "journalist",
            Label::JournalistContact => "journalist_contact",
            Label::PublicOfficial => "public_official",
            Label::Activist => "activist",
            Label::Minor => "minor",
            Label::Vip => "vip",
            Label::Staff => "staff",
            Label::PriorVictim => "prior_victim",
        }
    }
}

impl FromStr for Label {
    type Err = IdError;
    fn from_str(value: &str) -> Result<Self, IdError> {
        Label::ALL
            .into_iter()
            .find(|label| label.as_str() == value)
            .ok_or_else(|| IdError::Label(value.to_owned()))
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_ids() {
        for good in ["us", "eu", "sg", "us-east-2", "a"] {
            assert!(RegionId::new(good).is_ok(), "{good}");
        }
        for bad in ["", "US", "1us", "us_east", "us east", "eu;drop", &"a".repeat(33)] {
            assert!(RegionId::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn subject_ids() {
        assert!(SubjectId::new("u-1").is_ok());
        assert!(SubjectId::new("").is_err());
        assert!(SubjectId::new("a b").is_err());
        assert!(SubjectId::new("é").is_err());
        assert!(SubjectId::new(&"x".repeat(129)).is_err());
    }

    #[test]
    fn labels_round_trip() {
        for label in Label::ALL {
            assert_eq!(label.as_str().parse::<Label>().unwrap(), label);
            let json = serde_json::to_string(&label).unwrap();
            assert_eq!(json, format!("\"{}\"", label.as_str()));
        }
        assert!("reporter".parse::<Label>().is_err());
    }
}
