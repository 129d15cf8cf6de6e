//! Minimizing views: how much of a value is revealed, coarse to exact, per field kind.
//!
//! Each kind has a ladder of views, coarse to exact. The contract the rest of custos relies
//! on: a coarser view never reveals more than a finer one, i.e. the output of a coarser view
//! can be computed from the output of any finer view on the same ladder (with the same
//! context). The property tests in `tests/properties.rs` check this for every pair on every
//! ladder, with one exception: `country` comes from a geo database whose networks can be
//! finer than a /24 (81.2.129.0/26 and 81.2.129.64/26 are in different countries in the
//! development database), so it is not computable from `prefix/16` or `prefix`. It still
//! reveals at most a country. Views are pure: the date and the geo database are passed in.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::field::{FieldKind, FieldValue};

/// What `exists` reveals, for every kind.
pub const REVEALED_PRESENT: &str = "present";
/// What `country`, `country_code` and `age_band` reveal when they cannot answer without
/// guessing.
pub const REVEALED_UNKNOWN: &str = "unknown";
/// The geohash precision (characters) of the plain `area` view: about 4.9 km × 4.9 km.
pub const AREA_PRECISION_DEFAULT: u8 = 5;
/// The finest `area/N` (about 38 m × 19 m); finer than that, `exact` is the honest name.
pub const AREA_PRECISION_MAX: u8 = 8;
/// Digits shown at the end of a phone number by `last2`.
pub const PHONE_DIGITS_SHOWN: usize = 2;

/// How much of a value is revealed. Serialized as its name: `"exists"`, `"prefix/16"`,
/// `"area/3"`, …
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum View {
    /// Only that a value is there: `"present"`.
    Exists,
    /// IP address: the ISO 3166-1 alpha-2 country from the geo database, or `"unknown"`
    /// when there is no database or it does not place the address.
    Country,
    /// IP address: the network, `v4_bits` for IPv4 and `v6_bits` for IPv6, in CIDR notation.
    /// Only [`View::PREFIX_16`] and [`View::PREFIX_24`] are on the ladder.
    Prefix { v4_bits: u8, v6_bits: u8 },
    /// Location: the geohash cell of `precision` characters, 1 to [`AREA_PRECISION_MAX`].
    Area { precision: u8 },
    /// Email: the domain, `"example.com"`.
    Domain,
    /// Email: the first character of the local part and the domain, `"r***@example.com"`.
    Masked,
    /// Phone: the ITU country calling code, `"+44"`, or `"unknown"`.
    CountryCode,
    /// Phone: the calling code and the last two digits, the rest as `*`: `"+44********58"`.
    Last2,
    /// Date of birth: an age band such as `"25_34"`.
    AgeBand,
    /// Date of birth: the year, `"1990"`.
    Year,
    /// The canonical value.
    Exact,
}

impl View {
    /// IPv4 /16, IPv6 /32: the network of a provider or a large site.
    pub const PREFIX_16: View = View::Prefix { v4_bits: 16, v6_bits: 32 };
    /// IPv4 /24, IPv6 /48: the network of a household or a small site. The plain `prefix`.
    pub const PREFIX_24: View = View::Prefix { v4_bits: 24, v6_bits: 48 };
    /// The plain `area`, geohash precision [`AREA_PRECISION_DEFAULT`].
    pub const AREA: View = View::Area { precision: AREA_PRECISION_DEFAULT };

    /// Whether the view is on `kind`'s ladder.
    pub fn applies_to(self, kind: FieldKind) -> bool {
        self.rank(kind).is_some()
    }

    /// The position on `kind`'s ladder, 0 for `exists`; `None` if the view does not apply.
    pub fn rank(self, kind: FieldKind) -> Option<usize> {
        ladder_of(kind).iter().position(|view| *view == self)
    }

    /// Whether both views apply to `kind` and `self` reveals no more than `ceiling`.
    pub fn at_most(self, ceiling: View, kind: FieldKind) -> bool {
        match (self.rank(kind), ceiling.rank(kind)) {
            (Some(rank), Some(ceiling_rank)) => rank <= ceiling_rank,
            _ => false,
        }
    }

    /// Reveals `value` through this view.
    ///
    /// `value` must come from [`FieldValue::parse`] (or decoding its canonical form): views
    /// read the normalized shape and refuse a hand-built value that is not canonical, rather
    /// than reveal something unplanned.
    pub fn apply(
        self,
        value: &FieldValue,
        context: &ViewContext<'_>,
    ) -> Result<Revealed, ViewError> {
        let kind = value.kind();
        if !self.applies_to(kind) {
            return Err(ViewError::NotApplicable { view: self, kind });
        }
        if self == View::Exists {
            return Ok(Revealed(REVEALED_PRESENT.to_owned()));
        }
        let canonical = value.to_canonical();
        if FieldValue::parse(kind, &canonical).as_ref() != Ok(value) {
            return Err(ViewError::NotCanonical { kind });
        }
        let revealed = match (self, value) {
            (View::Exact, _) => canonical,
            (View::Country, FieldValue::IpAddress(address)) => context
                .geo
                .and_then(|geo| geo.country(*address))
                .unwrap_or_else(|| REVEALED_UNKNOWN.to_owned()),
            (View::Prefix { v4_bits, v6_bits }, FieldValue::IpAddress(address)) => {
                let bits = if address.is_ipv4() { v4_bits } else { v6_bits };
                // INVARIANT: only ladder prefixes get here, and their lengths are valid.
                let network =
                    ipnet::IpNet::new(*address, bits).expect("ladder prefix lengths are valid");
                network.trunc().to_string()
            }
            (View::Area { precision }, FieldValue::Location(location)) => {
                geohash(location.latitude, location.longitude, precision)
            }
            (View::Domain, FieldValue::Email(email)) => email_parts(email).1.to_owned(),
            (View::Masked, FieldValue::Email(email)) => {
                let (local, domain) = email_parts(email);
                // Always three stars whatever the length, so that only the first character
                // and the domain come out: "a@x.org" and "anna@x.org" both give "a***@x.org".
                let first: String = local.chars().take(1).collect();
                format!("{first}***@{domain}")
            }
            (View::CountryCode, FieldValue::Phone(phone)) => match calling_code(phone) {
                Some(code) => format!("+{code}"),
                None => REVEALED_UNKNOWN.to_owned(),
            },
            (View::Last2, FieldValue::Phone(phone)) => phone_last2(phone),
            (View::AgeBand, FieldValue::DateOfBirth(date)) => {
                age_band(*date, context.today).to_owned()
            }
            (View::Year, FieldValue::DateOfBirth(date)) => date.year().to_string(),
            _ => return Err(ViewError::NotApplicable { view: self, kind }),
        };
        Ok(Revealed(revealed))
    }
}

/// The views of `kind`, coarse to exact.
pub fn ladder(kind: FieldKind) -> Vec<View> {
    ladder_of(kind).to_vec()
}

/// The coarser of two views, if both apply to `kind`.
pub fn coarser(a: View, b: View, kind: FieldKind) -> Option<View> {
    match (a.rank(kind), b.rank(kind)) {
        (Some(rank_a), Some(rank_b)) => Some(if rank_a <= rank_b { a } else { b }),
        _ => None,
    }
}

const IP_ADDRESS_LADDER: &[View] =
    &[View::Exists, View::Country, View::PREFIX_16, View::PREFIX_24, View::Exact];
const LOCATION_LADDER: &[View] = &[
    View::Exists,
    View::Area { precision: 1 },
    View::Area { precision: 2 },
    View::Area { precision: 3 },
    View::Area { precision: 4 },
    View::Area { precision: 5 },
    View::Area { precision: 6 },
    View::Area { precision: 7 },
    View::Area { precision: 8 },
    View::Exact,
];
const EMAIL_LADDER: &[View] = &[View::Exists, View::Domain, View::Masked, View::Exact];
const PHONE_LADDER: &[View] = &[View::Exists, View::CountryCode, View::Last2, View::Exact];
const DATE_OF_BIRTH_LADDER: &[View] = &[View::Exists, View::AgeBand, View::Year, View::Exact];
const OPAQUE_LADDER: &[View] = &[View::Exists, View::Exact];

fn ladder_of(kind: FieldKind) -> &'static [View] {
    match kind {
        FieldKind::IpAddress => IP_ADDRESS_LADDER,
        FieldKind::Location => LOCATION_LADDER,
        FieldKind::Email => EMAIL_LADDER,
        FieldKind::Phone => PHONE_LADDER,
        FieldKind::DateOfBirth => DATE_OF_BIRTH_LADDER,
        FieldKind::DeviceId | FieldKind::Name | FieldKind::Text => OPAQUE_LADDER,
    }
}

impl fmt::Display for View {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            View::Exists => f.write_str("exists"),
            View::Country => f.write_str("country"),
            View::PREFIX_24 => f.write_str("prefix"),
            View::PREFIX_16 => f.write_str("prefix/16"),
            // Off the ladder (only constructible by hand); shown in full so errors are clear.
            View::Prefix { v4_bits, v6_bits } => write!(f, "prefix/{v4_bits}+{v6_bits}"),
            View::AREA => f.write_str("area"),
            View::Area { precision } => write!(f, "area/{precision}"),
            View::Domain => f.write_str("domain"),
            View::Masked => f.write_str("masked"),
            View::CountryCode => f.write_str("country_code"),
            View::Last2 => f.write_str("last2"),
            View::AgeBand => f.write_str("age_band"),
            View::Year => f.write_str("year"),
            View::Exact => f.write_str("exact"),
        }
    }
}

impl FromStr for View {
    type Err = ViewError;
    fn from_str(name: &str) -> Result<Self, ViewError> {
        let view = match name {
            "exists" => View::Exists,
            "country" => View::Country,
            "prefix" | "prefix/24" | "prefix/48" => View::PREFIX_24,
            "prefix/16" | "prefix/32" => View::PREFIX_16,
            "area" => View::AREA,
            "domain" => View::Domain,
            "masked" => View::Masked,
            "country_code" => View::CountryCode,
            "last2" => View::Last2,
            "age_band" => View::AgeBand,
            "year" => View::Year,
            "exact" => View::Exact,
            _ => match name.strip_prefix("area/").map(str::as_bytes) {
                // One digit only, so "area/05" and "area/+5" do not pass as "area".
                Some(&[digit @ b'1'..=b'8']) => View::Area { precision: digit - b'0' },
                _ => {
                    return Err(ViewError::Unknown(
                        name.chars().take(VIEW_NAME_SHOWN_CHARS_MAX).collect(),
                    ));
                }
            },
        };
        Ok(view)
    }
}

/// Longest unknown view name echoed back in an error.
const VIEW_NAME_SHOWN_CHARS_MAX: usize = 40;

impl TryFrom<String> for View {
    type Error = ViewError;
    fn try_from(name: String) -> Result<Self, ViewError> {
        name.parse()
    }
}

impl From<View> for String {
    fn from(view: View) -> String {
        view.to_string()
    }
}

/// Why a view could not be named or applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ViewError {
    #[error("view {view} does not apply to {kind}")]
    NotApplicable { view: View, kind: FieldKind },
    #[error("{kind} value is not in canonical form")]
    NotCanonical { kind: FieldKind },
    #[error(
        "unknown view {0:?}: expected exists, country, prefix/16, prefix, area, area/1 to \
         area/8, domain, masked, country_code, last2, age_band, year or exact"
    )]
    Unknown(String),
}

/// What a view may depend on besides the value. Time is passed in: this crate has no clock.
#[derive(Clone, Copy)]
pub struct ViewContext<'a> {
    /// The date ages are computed on.
    pub today: NaiveDate,
    /// The IP → country database; without one, `country` answers `"unknown"`.
    pub geo: Option<&'a dyn CountryLookup>,
}

impl fmt::Debug for ViewContext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ViewContext")
            .field("today", &self.today)
            .field("geo", &self.geo.map(|_| "configured"))
            .finish()
    }
}

/// Maps an IP address to the ISO 3166-1 alpha-2 code of its country.
pub trait CountryLookup: Send + Sync {
    /// The country of `ip`, uppercase, or `None` when the database does not know it.
    fn country(&self, ip: IpAddr) -> Option<String>;
}

/// A revealed value: the output of a view, the only form in which values leave custos.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Revealed(String);

impl Revealed {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for Revealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a geo database was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GeoError {
    #[error("invalid geo database: {0}")]
    Invalid(String),
}

/// An IP → country database in MaxMind DB format, held in memory. Reads the flat
/// `country_code` layout (ip-location-db, DB-IP lite) and MaxMind's `country.iso_code`.
pub struct GeoDb {
    reader: maxminddb::Reader<Vec<u8>>,
}

impl GeoDb {
    /// Opens a database from its bytes; the caller reads the file (this crate does no IO).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<GeoDb, GeoError> {
        let reader = maxminddb::Reader::from_source(bytes)
            .map_err(|error| GeoError::Invalid(error.to_string()))?;
        Ok(GeoDb { reader })
    }

    /// The type the database declares, e.g. `"GeoLite2-Country"` (`"country ipvAll"` for
    /// the development database).
    pub fn database_type(&self) -> &str {
        &self.reader.metadata().database_type
    }

    /// When the database was built, in seconds since the Unix epoch.
    pub fn build_epoch_seconds(&self) -> u64 {
        self.reader.metadata().build_epoch
    }
}

impl fmt::Debug for GeoDb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeoDb")
            .field("database_type", &self.database_type())
            .field("build_epoch_seconds", &self.build_epoch_seconds())
            .finish()
    }
}

impl CountryLookup for GeoDb {
    fn country(&self, ip: IpAddr) -> Option<String> {
        // A lookup error (an IPv6 address in an IPv4-only database, a corrupt record) is an
        // address the database cannot place: "unknown", never a guess. Mapped addresses are
        // looked up as IPv4 because databases need not alias ::ffff:0:0/96 (ours does not).
        let result = self.reader.lookup(ip.to_canonical()).ok()?;
        let flat: Option<String> =
            result.decode_path(&maxminddb::path!["country_code"]).ok().flatten();
        let code = match flat {
            Some(code) => code,
            None => result.decode_path(&maxminddb::path!["country", "iso_code"]).ok().flatten()?,
        };
        let code = code.to_ascii_uppercase();
        let is_alpha2 = code.len() == 2 && code.bytes().all(|b| b.is_ascii_uppercase());
        is_alpha2.then_some(code)
    }
}

/// Splits a canonical email at its one '@'.
fn email_parts(email: &str) -> (&str, &str) {
    // INVARIANT: `apply` checked the value is canonical, so there is exactly one '@'.
    email.split_once('@').expect("a canonical email has an '@'")
}

/// Geohash of a point (the public-domain algorithm of G. Niemeyer): bisect longitude and
/// latitude alternately, longitude first, five bits per base-32 character. A point exactly
/// on a bisection goes to the upper half, as in the reference implementations.
fn geohash(latitude: f64, longitude: f64, precision: u8) -> String {
    const ALPHABET: &[u8; 32] = b"0123456789bcdefghjkmnpqrstuvwxyz";
    let mut latitude_range = (-90.0_f64, 90.0_f64);
    let mut longitude_range = (-180.0_f64, 180.0_f64);
    let mut on_longitude = true;
    let mut hash = String::with_capacity(usize::from(precision));
    for _ in 0..precision {
        let mut index = 0_usize;
        for _ in 0..5 {
            let (value, range) = if on_longitude {
                (longitude, &mut longitude_range)
            } else {
                (latitude, &mut latitude_range)
            };
            let middle = (range.0 + range.1) / 2.0;
            index <<= 1;
            if value >= middle {
                index |= 1;
                range.0 = middle;
            } else {
                range.1 = middle;
            }
            on_longitude = !on_longitude;
        }
        hash.push(char::from(ALPHABET[index]));
    }
    hash
}

/// The assigned country calling code a canonical E.164 number starts with, without '+'.
fn calling_code(phone: &str) -> Option<&'static str> {
    let digits = phone.strip_prefix('+')?;
    // Calling codes form a prefix code, so at most one length matches.
    (1..=CALLING_CODE_DIGITS_MAX).filter_map(|length| digits.get(..length)).find_map(|prefix| {
        CALLING_CODES.binary_search(&prefix).ok().map(|index| CALLING_CODES[index])
    })
}

/// "+44" + one '*' per hidden digit + the last two digits. The calling code stays so that
/// `country_code` can be read off `last2` (the ladder contract); an unassigned code shows
/// as stars like the rest of the number.
fn phone_last2(phone: &str) -> String {
    let digits = phone.strip_prefix('+').unwrap_or(phone);
    let code = calling_code(phone).unwrap_or("");
    // INVARIANT: a canonical number has at least 8 digits and a code at most 3.
    let hidden = digits.len() - code.len() - PHONE_DIGITS_SHOWN;
    let shown = &digits[digits.len() - PHONE_DIGITS_SHOWN..];
    format!("+{code}{}{shown}", "*".repeat(hidden))
}

/// The age band of someone born on `date`, seen on `today`.
///
/// The age used is the one reached on 31 December of the year before `today`: a function of
/// the birth year alone, so `age_band` never reveals more than `year` (an exact age would
/// leak whether the birthday has passed). It understates the age by at most a year and never
/// overstates it, so a minor is never shown as an adult. A birth year after `today`'s year
/// gives `"unknown"`; one in `today`'s year counts as age 0.
fn age_band(date: NaiveDate, today: NaiveDate) -> &'static str {
    let birth_year = date.year();
    if birth_year > today.year() {
        return REVEALED_UNKNOWN;
    }
    let age_years = (today.year() - 1 - birth_year).max(0);
    match age_years {
        0..=12 => "under_13",
        13..=15 => "13_15",
        16..=17 => "16_17",
        18..=24 => "18_24",
        25..=34 => "25_34",
        35..=44 => "35_44",
        45..=54 => "45_54",
        55..=64 => "55_64",
        _ => "65_plus",
    }
}

/// Longest assigned country calling code, in digits.
const CALLING_CODE_DIGITS_MAX: usize = 3;

/// The country calling codes assigned in ITU-T E.164 (the ITU's "List of ITU-T
/// Recommendation E.164 assigned country codes"), including shared and non-geographic codes
/// (800 freephone, 870 Inmarsat, 881 satellite, 882/883 international networks, …), as the
/// digits after '+'. Sorted as strings for binary search; spare codes are absent.
const CALLING_CODES: &[&str] = &[
    "1", "20", "211", "212", "213", "216", "218", "220", "221", "222", "223", "224", "225", "226",
    "227", "228", "229", "230", "231", "232", "233", "234", "235", "236", "237", "238", "239",
    "240", "241", "242", "243", "244", "245", "246", "247", "248", "249", "250", "251", "252",
    "253", "254", "255", "256", "257", "258", "260", "261", "262", "263", "264", "265", "266",
    "267", "268", "269", "27", "290", "291", "297", "298", "299", "30", "31", "32", "33", "34",
    "350", "351", "352", "353", "354", "355", "356", "357", "358", "359", "36", "370", "371",
    "372", "373", "374", "375", "376", "377", "378", "379", "380", "381", "382", "383", "385",
    "386", "387", "389", "39", "40", "41", "420", "421", "423", "43", "44", "45", "46", "47", "48",
    "49", "500", "501", "502", "503", "504", "505", "506", "507", "508", "509", "51", "52", "53",
    "54", "55", "56", "57", "58", "590", "591", "592", "593", "594", "595", "596", "597", "598",
    "599", "60", "61", "62", "63", "64", "65", "66", "670", "672", "673", "674", "675", "676",
    "677", "678", "679", "680", "681", "682", "683", "685", "686", "687", "688", "689", "690",
    "691", "692", "7", "800", "808", "81", "82", "84", "850", "852", "853", "855", "856", "86",
    "870", "878", "880", "881", "882", "883", "886", "888", "90", "91", "92", "93", "94", "95",
    "960", "961", "962", "963", "964", "965", "966", "967", "968", "970", "971", "972", "973",
    "974", "975", "976", "977", "979", "98", "991", "992", "993", "994", "995", "996", "998",
];

#[cfg(test)]
mod tests {
    use super::*;

    /// Knows two addresses; every other one is not in its database.
    struct FixedCountries;

    impl CountryLookup for FixedCountries {
        fn country(&self, ip: IpAddr) -> Option<String> {
            match ip.to_string().as_str() {
                "198.51.100.7" => Some("US".to_owned()),
                "2001:db8:1234:5678::1" => Some("IE".to_owned()),
                _ => None,
            }
        }
    }

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2024, 6, 15).unwrap()
    }

    /// Parses `input` as `kind`, applies the view named `view`; expects the revealed text or
    /// `Err(message)`.
    fn check(view: &str, kind: FieldKind, input: &str, expected: Result<&str, &str>) {
        let context = ViewContext { today: today(), geo: Some(&FixedCountries) };
        let value = FieldValue::parse(kind, input).unwrap();
        let view: View = view.parse().unwrap();
        let actual = view
            .apply(&value, &context)
            .map(Revealed::into_string)
            .map_err(|error| error.to_string());
        assert_eq!(
            actual.as_deref(),
            expected.map_err(str::to_owned).as_deref(),
            "{view} of {kind} {input:?}"
        );
    }

    #[test]
    fn ip_address_views() {
        let kind = FieldKind::IpAddress;
        check("exists", kind, "198.51.100.7", Ok("present"));
        check("country", kind, "198.51.100.7", Ok("US"));
        check("country", kind, "2001:db8:1234:5678::1", Ok("IE"));
        check("country", kind, "203.0.113.9", Ok("unknown"));
        check("prefix/16", kind, "198.51.100.7", Ok("198.51.0.0/16"));
        check("prefix/16", kind, "2001:db8:1234:5678::1", Ok("2001:db8::/32"));
        check("prefix", kind, "198.51.100.7", Ok("198.51.100.0/24"));
        check("prefix", kind, "2001:db8:1234:5678::1", Ok("2001:db8:1234::/48"));
        check("prefix", kind, "::ffff:198.51.100.7", Ok("198.51.100.0/24"));
        check("exact", kind, "::ffff:198.51.100.7", Ok("198.51.100.7"));
        check("exact", kind, "2001:DB8:1234:5678:0:0:0:1", Ok("2001:db8:1234:5678::1"));
        check("masked", kind, "198.51.100.7", Err("view masked does not apply to ip_address"));
        check("area/3", kind, "198.51.100.7", Err("view area/3 does not apply to ip_address"));
    }

    #[test]
    fn country_is_unknown_without_a_database() {
        let context = ViewContext { today: today(), geo: None };
        let value = FieldValue::parse(FieldKind::IpAddress, "198.51.100.7").unwrap();
        assert_eq!(View::Country.apply(&value, &context).unwrap().as_str(), "unknown");
    }

    #[test]
    fn location_views() {
        let kind = FieldKind::Location;
        // geohash.org: 42.6,-5.6 is "ezs42"; the longer forms continue the same cell.
        let point = "42.6,-5.6,30";
        check("exists", kind, point, Ok("present"));
        check("area/1", kind, point, Ok("e"));
        check("area/3", kind, point, Ok("ezs"));
        check("area", kind, point, Ok("ezs42"));
        check("area/5", kind, point, Ok("ezs42"));
        check("exact", kind, point, Ok("42.600000,-5.600000,30"));
        check("area/8", kind, "28.411988257,-85.123100792", Ok("dj53wupp"));
        check("area/8", kind, "-28.17951586,1.797660642", Ok("k4cr8yj4"));
        check("domain", kind, point, Err("view domain does not apply to location"));
    }

    #[test]
    fn email_views() {
        let kind = FieldKind::Email;
        check("exists", kind, "Rosa.Parks@Example.com", Ok("present"));
        check("domain", kind, "Rosa.Parks@Example.com", Ok("example.com"));
        check("masked", kind, "Rosa.Parks@Example.com", Ok("R***@example.com"));
        check("masked", kind, "a@x.org", Ok("a***@x.org"));
        check("masked", kind, "éa@x.org", Ok("é***@x.org"));
        check("exact", kind, "Rosa.Parks@Example.com", Ok("Rosa.Parks@example.com"));
        check("last2", kind, "a@x.org", Err("view last2 does not apply to email"));
    }

    #[test]
    fn phone_views() {
        let kind = FieldKind::Phone;
        check("exists", kind, "+44 20 7946 0958", Ok("present"));
        check("country_code", kind, "+44 20 7946 0958", Ok("+44"));
        check("last2", kind, "+44 20 7946 0958", Ok("+44********58"));
        check("exact", kind, "+44 20 7946 0958", Ok("+442079460958"));
        check("country_code", kind, "+1 246 555 0100", Ok("+1"));
        check("last2", kind, "+1 (555) 010-4477", Ok("+1********77"));
        check("country_code", kind, "+353 1 555 0100", Ok("+353"));
        check("last2", kind, "+353 1 555 0100", Ok("+353******00"));
        check("country_code", kind, "+7 495 123 4567", Ok("+7"));
        check("country_code", kind, "+880 1712 345678", Ok("+880"));
        check("country_code", kind, "+800 1234 5678", Ok("+800"));
        // 210 and 28x are spare: no guess.
        check("country_code", kind, "+210 123 4567", Ok("unknown"));
        check("last2", kind, "+210 123 4567", Ok("+********67"));
        check("country_code", kind, "+28 123 4567", Ok("unknown"));
        check("year", kind, "+44 20 7946 0958", Err("view year does not apply to phone"));
    }

    #[test]
    fn date_of_birth_views() {
        let kind = FieldKind::DateOfBirth;
        // today is 2024-06-15; the band uses the age on 2023-12-31.
        check("exists", kind, "1990-07-15", Ok("present"));
        check("age_band", kind, "1990-07-15", Ok("25_34"));
        check("year", kind, "1990-07-15", Ok("1990"));
        check("exact", kind, "1990-07-15", Ok("1990-07-15"));
        check("age_band", kind, "2024-06-16", Ok("under_13"));
        check("age_band", kind, "2011-01-01", Ok("under_13"));
        check("age_band", kind, "2010-12-31", Ok("13_15"));
        check("age_band", kind, "2008-12-31", Ok("13_15"));
        check("age_band", kind, "2007-12-31", Ok("16_17"));
        // 18 on 2024-01-01, still shown 16_17 until 2025: understated, never overstated.
        check("age_band", kind, "2006-01-01", Ok("16_17"));
        check("age_band", kind, "2005-12-31", Ok("18_24"));
        check("age_band", kind, "1999-01-01", Ok("18_24"));
        check("age_band", kind, "1998-01-01", Ok("25_34"));
        check("age_band", kind, "1988-01-01", Ok("35_44"));
        check("age_band", kind, "1978-01-01", Ok("45_54"));
        check("age_band", kind, "1968-01-01", Ok("55_64"));
        check("age_band", kind, "1959-01-01", Ok("55_64"));
        check("age_band", kind, "1958-12-31", Ok("65_plus"));
        check("age_band", kind, "1900-01-01", Ok("65_plus"));
        check("age_band", kind, "2025-01-01", Ok("unknown"));
        check("country", kind, "1990-07-15", Err("view country does not apply to date_of_birth"));
    }

    #[test]
    fn opaque_views() {
        for (kind, input) in [
            (FieldKind::DeviceId, "a1b2-c3d4"),
            (FieldKind::Name, "Rosa Parks"),
            (FieldKind::Text, "called about a refund\n"),
        ] {
            check("exists", kind, input, Ok("present"));
            check("exact", kind, input, Ok(input));
            for view in [
                "country",
                "prefix",
                "area",
                "domain",
                "masked",
                "country_code",
                "last2",
                "age_band",
                "year",
            ] {
                check(view, kind, input, Err(&format!("view {view} does not apply to {kind}")));
            }
        }
    }

    #[test]
    fn hand_built_values_that_are_not_canonical_are_refused() {
        let context = ViewContext { today: today(), geo: None };
        let mapped: IpAddr = "::ffff:198.51.100.7".parse().unwrap();
        let cases = [
            (View::Masked, FieldValue::Email("rosa".to_owned())),
            (View::Domain, FieldValue::Email("Rosa@EXAMPLE.com".to_owned())),
            (View::Last2, FieldValue::Phone("+1".to_owned())),
            (View::Exact, FieldValue::Name("  padded ".to_owned())),
            (View::PREFIX_24, FieldValue::IpAddress(mapped)),
        ];
        for (view, value) in cases {
            let kind = value.kind();
            assert_eq!(
                view.apply(&value, &context),
                Err(ViewError::NotCanonical { kind }),
                "{value:?}"
            );
            // `exists` reveals nothing, so it needs no canonical value.
            assert_eq!(View::Exists.apply(&value, &context).unwrap().as_str(), "present");
        }
        assert_eq!(
            ViewError::NotCanonical { kind: FieldKind::Email }.to_string(),
            "email value is not in canonical form"
        );
    }

    #[test]
    fn view_names() {
        fn check_name(name: &str, expected: Result<View, &str>, shown: &str) {
            let actual = name.parse::<View>().map_err(|error| error.to_string());
            assert_eq!(actual, expected.map_err(str::to_owned), "{name:?}");
            if let Ok(view) = actual {
                assert_eq!(view.to_string(), shown);
                assert_eq!(serde_json::to_string(&view).unwrap(), format!("\"{shown}\""));
                let json = format!("\"{name}\"");
                assert_eq!(serde_json::from_str::<View>(&json).unwrap(), view);
            }
        }
        check_name("exists", Ok(View::Exists), "exists");
        check_name("country", Ok(View::Country), "country");
        check_name("prefix", Ok(View::PREFIX_24), "prefix");
        check_name("prefix/24", Ok(View::Prefix { v4_bits: 24, v6_bits: 48 }), "prefix");
        check_name("prefix/48", Ok(View::PREFIX_24), "prefix");
        check_name("prefix/16", Ok(View::Prefix { v4_bits: 16, v6_bits: 32 }), "prefix/16");
        check_name("prefix/32", Ok(View::PREFIX_16), "prefix/16");
        check_name("area", Ok(View::Area { precision: 5 }), "area");
        check_name("area/5", Ok(View::AREA), "area");
        check_name("area/1", Ok(View::Area { precision: 1 }), "area/1");
        check_name("area/8", Ok(View::Area { precision: 8 }), "area/8");
        check_name("domain", Ok(View::Domain), "domain");
        check_name("masked", Ok(View::Masked), "masked");
        check_name("country_code", Ok(View::CountryCode), "country_code");
        check_name("last2", Ok(View::Last2), "last2");
        check_name("age_band", Ok(View::AgeBand), "age_band");
        check_name("year", Ok(View::Year), "year");
        check_name("exact", Ok(View::Exact), "exact");
        let unknown = |name: &str| {
            format!(
                "unknown view {name:?}: expected exists, country, prefix/16, prefix, area, \
                 area/1 to area/8, domain, masked, country_code, last2, age_band, year or exact"
            )
        };
        for bad in [
            "", "Exists", "exact ", "area/0", "area/9", "area/05", "area/+5", "prefix/8",
            "prefix/", "full",
        ] {
            check_name(bad, Err(&unknown(bad)), "");
        }
        let long = "x".repeat(100);
        check_name(&long, Err(&unknown(&"x".repeat(40))), "");
        assert!(
            serde_json::from_str::<View>("\"everything\"")
                .unwrap_err()
                .to_string()
                .contains("unknown view \"everything\"")
        );
        // Off-ladder views are shown in full in errors.
        assert_eq!(View::Prefix { v4_bits: 8, v6_bits: 24 }.to_string(), "prefix/8+24");
        assert_eq!(View::Area { precision: 12 }.to_string(), "area/12");
    }

    #[test]
    fn ladders() {
        let names = |kind| ladder(kind).iter().map(View::to_string).collect::<Vec<_>>().join(" < ");
        assert_eq!(names(FieldKind::IpAddress), "exists < country < prefix/16 < prefix < exact");
        assert_eq!(
            names(FieldKind::Location),
            "exists < area/1 < area/2 < area/3 < area/4 < area < area/6 < area/7 < area/8 < exact"
        );
        assert_eq!(names(FieldKind::Email), "exists < domain < masked < exact");
        assert_eq!(names(FieldKind::Phone), "exists < country_code < last2 < exact");
        assert_eq!(names(FieldKind::DateOfBirth), "exists < age_band < year < exact");
        for kind in [FieldKind::DeviceId, FieldKind::Name, FieldKind::Text] {
            assert_eq!(names(kind), "exists < exact");
        }
    }

    #[test]
    fn ranks_and_ceilings() {
        let ip = FieldKind::IpAddress;
        assert_eq!(View::Exists.rank(ip), Some(0));
        assert_eq!(View::PREFIX_16.rank(ip), Some(2));
        assert_eq!(View::Exact.rank(ip), Some(4));
        assert_eq!(View::Masked.rank(ip), None);
        assert_eq!(View::Prefix { v4_bits: 20, v6_bits: 40 }.rank(ip), None);
        assert!(View::Country.applies_to(ip));
        assert!(!View::Country.applies_to(FieldKind::Phone));
        assert!(!View::Area { precision: 9 }.applies_to(FieldKind::Location));
        assert!(View::Area { precision: 8 }.applies_to(FieldKind::Location));
        assert!(View::Country.at_most(View::PREFIX_24, ip));
        assert!(View::PREFIX_24.at_most(View::PREFIX_24, ip));
        assert!(!View::Exact.at_most(View::PREFIX_24, ip));
        assert!(!View::Masked.at_most(View::Exact, ip));
        assert!(!View::Exists.at_most(View::Masked, ip));
        assert!(View::Area { precision: 3 }.at_most(View::AREA, FieldKind::Location));
        assert!(!View::Area { precision: 6 }.at_most(View::AREA, FieldKind::Location));
        assert_eq!(coarser(View::Exact, View::Country, ip), Some(View::Country));
        assert_eq!(coarser(View::Country, View::Exact, ip), Some(View::Country));
        assert_eq!(coarser(View::Year, View::AgeBand, FieldKind::DateOfBirth), Some(View::AgeBand));
        assert_eq!(coarser(View::Year, View::Domain, FieldKind::DateOfBirth), None);
        assert_eq!(coarser(View::Exists, View::Exists, FieldKind::Text), Some(View::Exists));
    }

    /// Known answers from the `geohash` crate's test corpus (tests/testcases.csv).
    #[test]
    fn geohash_known_answers() {
        let vectors = [
            (0.497818518, 38.198505253, "sb54v4xk18jg"),
            (-84.529178182, -174.125057287, "00upjeyjb54g"),
            (-17.090238388, 14.947853282, "kkfwu0udnhxm"),
            (86.06108453, -43.628546008, "gp2cx4ywjhyj"),
            (66.378215883, 84.388142665, "vgu187c94hrc"),
            (-87.899723375, 92.762874736, "n03gyy7fgxuw"),
            (-78.126200344, -60.544300755, "4dhgw38czs9m"),
            (-61.635932068, 108.972793127, "nmj3rex8dj7z"),
            (69.892642032, -47.343602073, "fuqmdet6nhg9"),
            (-88.917888143, -100.480844224, "1b0w1sbpf8k0"),
            (42.6, -5.6, "ezs42"),
        ];
        for (latitude, longitude, expected) in vectors {
            let precision = u8::try_from(expected.len()).unwrap();
            assert_eq!(geohash(latitude, longitude, precision), expected, "{latitude},{longitude}");
        }
        assert_eq!(geohash(90.0, 180.0, 4), "zzzz");
        assert_eq!(geohash(-90.0, -180.0, 4), "0000");
    }

    #[test]
    fn calling_code_table() {
        assert!(CALLING_CODES.windows(2).all(|pair| pair[0] < pair[1]), "sorted and unique");
        for code in CALLING_CODES {
            assert!((1..=CALLING_CODE_DIGITS_MAX).contains(&code.len()), "{code}");
            assert!(code.bytes().all(|b| b.is_ascii_digit()) && !code.starts_with('0'), "{code}");
            // A prefix code: no code starts another, so the longest match is the only match.
            for other in CALLING_CODES {
                assert!(code == other || !other.starts_with(code), "{code} is a prefix of {other}");
            }
        }
        // libphonenumber's 215 codes plus 379 (Vatican, reserved) and 991 (ITPCS trial).
        assert_eq!(CALLING_CODES.len(), 217);
        for (phone, expected) in [
            ("+12025550100", Some("1")),
            ("+74951234567", Some("7")),
            ("+201001234567", Some("20")),
            ("+211912345678", Some("211")),
            ("+3791234567", Some("379")),
            ("+38312345678", Some("383")),
            ("+8821234567", Some("882")),
            ("+88612345678", Some("886")),
            ("+9981234567", Some("998")),
            ("+2141234567", None),
            ("+2591234567", None),
            ("+3841234567", None),
            ("+4251234567", None),
            ("+8351234567", None),
            ("+9901234567", None),
            ("+9991234567", None),
        ] {
            assert_eq!(calling_code(phone), expected, "{phone}");
        }
    }

    #[test]
    fn revealed_serializes_as_a_string() {
        let context = ViewContext { today: today(), geo: None };
        let value = FieldValue::parse(FieldKind::Email, "rosa@example.com").unwrap();
        let revealed = View::Masked.apply(&value, &context).unwrap();
        assert_eq!(serde_json::to_string(&revealed).unwrap(), "\"r***@example.com\"");
        assert_eq!(revealed.to_string(), "r***@example.com");
    }
}
