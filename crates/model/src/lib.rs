//! The domain vocabulary of custos: regions, subjects, labels, field kinds, typed values and
//! the minimizing views over them. Pure: no IO, no clock (dates are passed in), no randomness.

pub mod decision_entry;
mod field;
mod ids;
mod severity;
mod view;

pub use field::{FieldKind, FieldValue, Location, ValueError};
pub use severity::{Severity, SeverityError};
pub use ids::{IdError, Label, RegionId, StaffId, SubjectId};
pub use view::{CountryLookup, GeoDb, GeoError, Revealed, View, ViewContext, ViewError};

pub use field::{
    DATE_OF_BIRTH_YEAR_MIN, DEVICE_ID_BYTES_MAX, EMAIL_BYTES_MAX, EMAIL_DOMAIN_LABEL_BYTES_MAX,
    EMAIL_LOCAL_PART_BYTES_MAX, IP_ADDRESS_INPUT_BYTES_MAX, LOCATION_ACCURACY_METRES_MAX,
    LOCATION_DEGREES_DECIMALS, LOCATION_INPUT_BYTES_MAX, NAME_BYTES_MAX, PHONE_DIGITS_MAX,
    PHONE_DIGITS_MIN, PHONE_INPUT_BYTES_MAX, TEXT_BYTES_MAX,
};
pub use view::{
    AREA_PRECISION_DEFAULT, AREA_PRECISION_MAX, PHONE_DIGITS_SHOWN, REVEALED_PRESENT,
    REVEALED_UNKNOWN, coarser, ladder,
};
