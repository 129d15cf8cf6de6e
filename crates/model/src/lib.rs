//! The domain vocabulary of custos: regions, subjects, labels, field kinds, typed values and
//! the minimizing views over them. Pure: no IO, no clock (dates are passed in), no randomness.

mod field;
mod ids;
mod view;

pub use field::{FieldKind, FieldValue, Location, ValueError};
pub use ids::{IdError, Label, RegionId, StaffId, SubjectId};
pub use view::{CountryLookup, GeoDb, GeoError, Revealed, View, ViewContext, ViewError};
