//! Field kinds and typed values: parsed and normalized on the way in, encoded canonically for
//! sealing, decoded again on the way out.

use std::net::IpAddr;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// The kinds of personal data custos holds. Each subject has zero or more timestamped values
/// of each kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldKind {
    IpAddress,
    Location,
    Email,
    Phone,
    DeviceId,
    Name,
    DateOfBirth,
    Text,
}

impl FieldKind {
    pub const ALL: [FieldKind; 8] = [
        FieldKind::IpAddress,
        FieldKind::Location,
        FieldKind::Email,
        FieldKind::Phone,
        FieldKind::DeviceId,
        FieldKind::Name,
        FieldKind::DateOfBirth,
        FieldKind::Text,
    ];

    /// The snake_case name used in JSON, CSV headers and scenario files.
    pub fn as_str(self) -> &'static str {
        match self {
            FieldKind::IpAddress => "ip_address",
            FieldKind::Location => "location",
            FieldKind::Email => "email",
            FieldKind::Phone => "phone",
            FieldKind::DeviceId => "device_id",
            FieldKind::Name => "name",
            FieldKind::DateOfBirth => "date_of_birth",
            FieldKind::Text => "text",
        }
    }
}

impl std::str::FromStr for FieldKind {
    type Err = ValueError;
    fn from_str(value: &str) -> Result<Self, ValueError> {
        FieldKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == value)
            .ok_or_else(|| ValueError::UnknownField(value.to_owned()))
    }
}

impl std::fmt::Display for FieldKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A point on Earth, in degrees, with the accuracy radius in metres when known.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Location {
    pub latitude: f64,
    pub longitude: f64,
    pub accuracy_m: Option<f64>,
}

/// A parsed, normalized value of one field kind.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    IpAddress(IpAddr),
    Location(Location),
    Email(String),
    Phone(String),
    DeviceId(String),
    Name(String),
    DateOfBirth(NaiveDate),
    Text(String),
}

/// Why a value was refused. Messages read after "failed to …" is not needed here: they name
/// what was wrong with the value; the caller adds subject, field and value index.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("unknown field {0:?}")]
    UnknownField(String),
    #[error("{0}")]
    Invalid(String),
}
