//! Field kinds and typed values: parsed and normalized on the way in, encoded canonically for
//! sealing, decoded again on the way out.
//!
//! The canonical form is a fixed point: `FieldValue::parse(kind, &value.to_canonical())`
//! gives back `value` for every value `parse` can produce, so sealing and unsealing never
//! drift.

use std::net::IpAddr;

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};

/// Longest accepted free text, in bytes.
pub const TEXT_BYTES_MAX: usize = 4096;
/// Longest accepted name, in bytes (after trimming).
pub const NAME_BYTES_MAX: usize = 256;
/// Longest accepted device id, in bytes (after trimming).
pub const DEVICE_ID_BYTES_MAX: usize = 256;
/// Longest accepted email address, in bytes (RFC 5321 path limit minus the angle brackets).
pub const EMAIL_BYTES_MAX: usize = 254;
/// Longest accepted local part of an email address, in bytes (RFC 5321).
pub const EMAIL_LOCAL_PART_BYTES_MAX: usize = 64;
/// Longest accepted label of an email domain, in bytes (RFC 1035).
pub const EMAIL_DOMAIN_LABEL_BYTES_MAX: usize = 63;
/// Fewest digits in an E.164 number, country calling code included.
pub const PHONE_DIGITS_MIN: usize = 8;
/// Most digits in an E.164 number, country calling code included.
pub const PHONE_DIGITS_MAX: usize = 15;
/// Longest accepted phone input with its separators, in bytes.
pub const PHONE_INPUT_BYTES_MAX: usize = 64;
/// Longest accepted IP address input, in bytes (the longest IPv6 text form is 45).
pub const IP_ADDRESS_INPUT_BYTES_MAX: usize = 64;
/// Longest accepted location input, in bytes.
pub const LOCATION_INPUT_BYTES_MAX: usize = 128;
/// Largest accepted accuracy radius, in metres: half the Earth's circumference, beyond which
/// the location says nothing.
pub const LOCATION_ACCURACY_METRES_MAX: f64 = 20_037_509.0;
/// Decimals kept for latitude and longitude (about 0.11 m at the equator).
pub const LOCATION_DEGREES_DECIMALS: usize = 6;
/// Earliest accepted year of birth.
pub const DATE_OF_BIRTH_YEAR_MIN: i32 = 1900;

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
///
/// Values made by [`FieldValue::parse`] are finite, in range, rounded to
/// [`LOCATION_DEGREES_DECIMALS`] decimals (accuracy to one decimal) and never `-0.0`.
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

/// Why a value was refused. Messages name what was wrong with the value; the caller adds
/// subject, field and value index.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("unknown field {0:?}")]
    UnknownField(String),
    #[error("{0}")]
    Invalid(String),
}

impl FieldValue {
    /// Parses and normalizes one value of `kind`. Accepts what people type (spaces around an
    /// email, dashes in a phone number); stores one canonical form.
    pub fn parse(kind: FieldKind, input: &str) -> Result<FieldValue, ValueError> {
        match kind {
            FieldKind::IpAddress => parse_ip_address(input).map(FieldValue::IpAddress),
            FieldKind::Location => parse_location(input).map(FieldValue::Location),
            FieldKind::Email => parse_email(input).map(FieldValue::Email),
            FieldKind::Phone => parse_phone(input).map(FieldValue::Phone),
            FieldKind::DeviceId => {
                parse_line("device id", DEVICE_ID_BYTES_MAX, input).map(FieldValue::DeviceId)
            }
            FieldKind::Name => parse_line("name", NAME_BYTES_MAX, input).map(FieldValue::Name),
            FieldKind::DateOfBirth => parse_date_of_birth(input).map(FieldValue::DateOfBirth),
            FieldKind::Text => parse_text(input).map(FieldValue::Text),
        }
    }

    pub fn kind(&self) -> FieldKind {
        match self {
            FieldValue::IpAddress(_) => FieldKind::IpAddress,
            FieldValue::Location(_) => FieldKind::Location,
            FieldValue::Email(_) => FieldKind::Email,
            FieldValue::Phone(_) => FieldKind::Phone,
            FieldValue::DeviceId(_) => FieldKind::DeviceId,
            FieldValue::Name(_) => FieldKind::Name,
            FieldValue::DateOfBirth(_) => FieldKind::DateOfBirth,
            FieldValue::Text(_) => FieldKind::Text,
        }
    }

    /// The one text form of the value: what is sealed and what the `exact` view shows.
    pub fn to_canonical(&self) -> String {
        match self {
            FieldValue::IpAddress(address) => address.to_string(),
            FieldValue::Location(location) => location_to_canonical(location),
            FieldValue::Email(text)
            | FieldValue::Phone(text)
            | FieldValue::DeviceId(text)
            | FieldValue::Name(text)
            | FieldValue::Text(text) => text.clone(),
            FieldValue::DateOfBirth(date) => date.format("%Y-%m-%d").to_string(),
        }
    }
}

fn invalid(message: String) -> ValueError {
    ValueError::Invalid(message)
}

/// Shows a refused input in an error without echoing a whole paragraph back.
fn quoted(input: &str) -> String {
    const SHOWN_CHARS_MAX: usize = 80;
    if input.chars().count() <= SHOWN_CHARS_MAX {
        format!("{input:?}")
    } else {
        let head: String = input.chars().take(SHOWN_CHARS_MAX).collect();
        format!("{head:?}…")
    }
}

fn parse_ip_address(input: &str) -> Result<IpAddr, ValueError> {
    let trimmed = input.trim();
    let not_an_address = || invalid(format!("{} is not an IPv4 or IPv6 address", quoted(input)));
    if trimmed.len() > IP_ADDRESS_INPUT_BYTES_MAX {
        return Err(not_an_address());
    }
    let address: IpAddr = trimmed.parse().map_err(|_| not_an_address())?;
    // One host, one form: ::ffff:a.b.c.d and a.b.c.d must seal, compare and coarsen alike.
    Ok(address.to_canonical())
}

fn parse_location(input: &str) -> Result<Location, ValueError> {
    let expected = || {
        invalid(format!(
            "{} is not a location: expected \"latitude,longitude\" or \
             \"latitude,longitude,accuracy_m\" in degrees and metres",
            quoted(input)
        ))
    };
    if input.len() > LOCATION_INPUT_BYTES_MAX {
        return Err(expected());
    }
    let parts: Vec<&str> = input.split(',').map(str::trim).collect();
    let (latitude_text, longitude_text, accuracy_text) = match parts.as_slice() {
        [latitude, longitude] => (*latitude, *longitude, None),
        [latitude, longitude, accuracy] => (*latitude, *longitude, Some(*accuracy)),
        _ => return Err(expected()),
    };
    let latitude = parse_degrees("latitude", latitude_text, 90.0)?;
    let longitude = parse_degrees("longitude", longitude_text, 180.0)?;
    let accuracy_m = accuracy_text.map(parse_accuracy).transpose()?;
    Ok(Location { latitude, longitude, accuracy_m })
}

fn parse_degrees(what: &str, text: &str, limit: f64) -> Result<f64, ValueError> {
    let value: f64 =
        text.parse().map_err(|_| invalid(format!("{what} {} is not a number", quoted(text))))?;
    if !value.is_finite() {
        return Err(invalid(format!("{what} {} is not a finite number", quoted(text))));
    }
    if value.abs() > limit {
        return Err(invalid(format!(
            "{what} {} is outside -{limit} to {limit} degrees",
            quoted(text)
        )));
    }
    Ok(round_decimals(value, LOCATION_DEGREES_DECIMALS))
}

fn parse_accuracy(text: &str) -> Result<f64, ValueError> {
    let value: f64 = text
        .parse()
        .map_err(|_| invalid(format!("accuracy {} is not a number of metres", quoted(text))))?;
    if !value.is_finite() {
        return Err(invalid(format!("accuracy {} is not a finite number", quoted(text))));
    }
    if value > LOCATION_ACCURACY_METRES_MAX {
        return Err(invalid(format!(
            "accuracy {} is outside 0.1 to {LOCATION_ACCURACY_METRES_MAX} metres",
            quoted(text)
        )));
    }
    let rounded = round_decimals(value, 1);
    // Checked after rounding so that a stored accuracy is never zero.
    if rounded <= 0.0 {
        return Err(invalid(format!(
            "accuracy {} must be a positive number of metres (0.1 or more)",
            quoted(text)
        )));
    }
    Ok(rounded)
}

/// Rounds through the decimal text form, so the stored number is exactly the one its canonical
/// text parses back to. Adding 0.0 turns -0.0 into 0.0, so "-0.0000001" and "0" store alike.
fn round_decimals(value: f64, decimals: usize) -> f64 {
    let text = format!("{value:.decimals$}");
    let rounded: f64 = text.parse().expect("a formatted finite f64 parses back");
    rounded + 0.0
}

fn location_to_canonical(location: &Location) -> String {
    let decimals = LOCATION_DEGREES_DECIMALS;
    let mut text = format!("{:.decimals$},{:.decimals$}", location.latitude, location.longitude);
    if let Some(accuracy) = location.accuracy_m {
        let accuracy = format!("{accuracy:.1}");
        text.push(',');
        text.push_str(accuracy.strip_suffix(".0").unwrap_or(&accuracy));
    }
    text
}

fn parse_email(input: &str) -> Result<String, ValueError> {
    let trimmed = input.trim();
    let shown = quoted(input);
    if trimmed.len() > EMAIL_BYTES_MAX {
        return Err(invalid(format!("{shown} is longer than {EMAIL_BYTES_MAX} bytes")));
    }
    let Some((local, domain)) = trimmed.split_once('@') else {
        return Err(invalid(format!("{shown} is not an email address: no '@'")));
    };
    if domain.contains('@') {
        return Err(invalid(format!("{shown} is not an email address: more than one '@'")));
    }
    if local.is_empty() {
        return Err(invalid(format!("{shown} is not an email address: nothing before '@'")));
    }
    if local.len() > EMAIL_LOCAL_PART_BYTES_MAX {
        return Err(invalid(format!(
            "{shown} has a local part longer than {EMAIL_LOCAL_PART_BYTES_MAX} bytes"
        )));
    }
    if local.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(invalid(format!(
            "{shown} is not an email address: space or control character before '@'"
        )));
    }
    let domain = domain.to_ascii_lowercase();
    check_email_domain(&domain).map_err(|reason| {
        invalid(format!("{shown} is not an email address: the domain {reason}"))
    })?;
    Ok(format!("{local}@{domain}"))
}

fn check_email_domain(domain: &str) -> Result<(), &'static str> {
    if domain.is_empty() {
        return Err("is empty");
    }
    if !domain.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.') {
        return Err("may hold only letters, digits, '-' and '.'");
    }
    if !domain.contains('.') {
        return Err("needs at least one '.'");
    }
    for label in domain.split('.') {
        if label.is_empty() {
            return Err("has an empty label");
        }
        if label.len() > EMAIL_DOMAIN_LABEL_BYTES_MAX {
            return Err("has a label longer than 63 bytes");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("has a label starting or ending with '-'");
        }
    }
    Ok(())
}

fn parse_phone(input: &str) -> Result<String, ValueError> {
    let shown = quoted(input);
    if input.len() > PHONE_INPUT_BYTES_MAX {
        return Err(invalid(format!("{shown} is longer than {PHONE_INPUT_BYTES_MAX} bytes")));
    }
    let Some(rest) = input.trim().strip_prefix('+') else {
        return Err(invalid(format!(
            "{shown} is not an E.164 phone number: it must start with '+' and the country code"
        )));
    };
    let mut digits = String::with_capacity(PHONE_DIGITS_MAX);
    for c in rest.chars() {
        match c {
            '0'..='9' => digits.push(c),
            ' ' | '-' | '.' | '(' | ')' => {}
            other => {
                return Err(invalid(format!(
                    "{shown} is not an E.164 phone number: unexpected {other:?}"
                )));
            }
        }
    }
    if !(PHONE_DIGITS_MIN..=PHONE_DIGITS_MAX).contains(&digits.len()) {
        return Err(invalid(format!(
            "{shown} is not an E.164 phone number: {} digits, expected \
             {PHONE_DIGITS_MIN} to {PHONE_DIGITS_MAX}",
            digits.len()
        )));
    }
    if digits.starts_with('0') {
        return Err(invalid(format!(
            "{shown} is not an E.164 phone number: country codes do not start with 0"
        )));
    }
    Ok(format!("+{digits}"))
}

/// Device ids and names: one line of printable text.
fn parse_line(what: &str, bytes_max: usize, input: &str) -> Result<String, ValueError> {
    let trimmed = input.trim();
    if trimmed.is_empty() {
        return Err(invalid(format!("{what} is empty")));
    }
    if trimmed.len() > bytes_max {
        return Err(invalid(format!("{what} {} is longer than {bytes_max} bytes", quoted(input))));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(invalid(format!("{what} {} contains a control character", quoted(input))));
    }
    Ok(trimmed.to_owned())
}

fn parse_text(input: &str) -> Result<String, ValueError> {
    if input.len() > TEXT_BYTES_MAX {
        return Err(invalid(format!("text is longer than {TEXT_BYTES_MAX} bytes")));
    }
    if input.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(invalid(format!(
            "text {} contains a control character other than newline and tab",
            quoted(input)
        )));
    }
    Ok(input.to_owned())
}

fn parse_date_of_birth(input: &str) -> Result<NaiveDate, ValueError> {
    let shown = quoted(input);
    let trimmed = input.trim();
    // chrono's "%Y-%m-%d" also takes "1990-1-5" and "+1990-01-05"; one spelling only.
    let well_formed = trimmed.len() == 10
        && trimmed.bytes().enumerate().all(|(index, b)| match index {
            4 | 7 => b == b'-',
            _ => b.is_ascii_digit(),
        });
    if !well_formed {
        return Err(invalid(format!("{shown} is not a date: expected YYYY-MM-DD")));
    }
    let date = NaiveDate::parse_from_str(trimmed, "%Y-%m-%d")
        .map_err(|_| invalid(format!("{shown} is not a date in the calendar")))?;
    // The four-digit shape above already caps the year at 9999.
    if date.year() < DATE_OF_BIRTH_YEAR_MIN {
        return Err(invalid(format!(
            "date of birth {shown} is before {DATE_OF_BIRTH_YEAR_MIN}-01-01"
        )));
    }
    Ok(date)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `input` as `kind`; expects the canonical form, or `Err(message)`.
    fn check(kind: FieldKind, input: &str, expected: Result<&str, &str>) {
        let actual = FieldValue::parse(kind, input);
        match (&actual, expected) {
            (Ok(value), Ok(canonical)) => {
                assert_eq!(value.to_canonical(), canonical, "{kind} {input:?}");
                assert_eq!(value.kind(), kind);
                let again = FieldValue::parse(kind, &value.to_canonical());
                assert_eq!(again.as_ref(), Ok(value), "{kind} {input:?} round trip");
            }
            (Err(error), Err(message)) => {
                assert_eq!(error.to_string(), message, "{kind} {input:?}")
            }
            _ => panic!("{kind} {input:?}: expected {expected:?}, got {actual:?}"),
        }
    }

    #[test]
    fn ip_addresses() {
        let kind = FieldKind::IpAddress;
        check(kind, "198.51.100.7", Ok("198.51.100.7"));
        check(kind, " 198.51.100.7\n", Ok("198.51.100.7"));
        check(kind, "2001:DB8::1", Ok("2001:db8::1"));
        check(kind, "2001:0db8:0000:0000:0000:0000:0000:0001", Ok("2001:db8::1"));
        check(kind, "::ffff:198.51.100.7", Ok("198.51.100.7"));
        check(kind, "::ffff:c633:6407", Ok("198.51.100.7"));
        check(kind, "::1", Ok("::1"));
        check(kind, "999.1.1.1", Err("\"999.1.1.1\" is not an IPv4 or IPv6 address"));
        check(kind, "", Err("\"\" is not an IPv4 or IPv6 address"));
        check(kind, "1.2.3", Err("\"1.2.3\" is not an IPv4 or IPv6 address"));
        check(kind, "01.2.3.4", Err("\"01.2.3.4\" is not an IPv4 or IPv6 address"));
        check(kind, "198.51.100.0/24", Err("\"198.51.100.0/24\" is not an IPv4 or IPv6 address"));
        check(kind, "fe80::1%eth0", Err("\"fe80::1%eth0\" is not an IPv4 or IPv6 address"));
        check(kind, "example.com", Err("\"example.com\" is not an IPv4 or IPv6 address"));
    }

    #[test]
    fn locations() {
        let kind = FieldKind::Location;
        check(kind, "48.8584,2.2945", Ok("48.858400,2.294500"));
        check(kind, " 48.8584 , 2.2945 , 12.5 ", Ok("48.858400,2.294500,12.5"));
        check(kind, "48.8584,2.2945,10", Ok("48.858400,2.294500,10"));
        check(kind, "48.8584,2.2945,10.04", Ok("48.858400,2.294500,10"));
        check(kind, "-33.85678912345,151.2152967", Ok("-33.856789,151.215297"));
        check(kind, "-0.0000001,-0.0000004", Ok("0.000000,0.000000"));
        check(kind, "90,180", Ok("90.000000,180.000000"));
        check(kind, "-90,-180", Ok("-90.000000,-180.000000"));
        check(kind, "1e1,2E1", Ok("10.000000,20.000000"));
        check(kind, "0,0,0.05", Ok("0.000000,0.000000,0.1"));
        check(kind, "90.0000001,0", Err("latitude \"90.0000001\" is outside -90 to 90 degrees"));
        check(kind, "0,-180.5", Err("longitude \"-180.5\" is outside -180 to 180 degrees"));
        check(kind, "NaN,0", Err("latitude \"NaN\" is not a finite number"));
        check(kind, "0,inf", Err("longitude \"inf\" is not a finite number"));
        check(kind, "north,0", Err("latitude \"north\" is not a number"));
        check(kind, "0,", Err("longitude \"\" is not a number"));
        check(
            kind,
            "0,0,0",
            Err("accuracy \"0\" must be a positive number of metres (0.1 or more)"),
        );
        check(
            kind,
            "0,0,0.04",
            Err("accuracy \"0.04\" must be a positive number of metres (0.1 or more)"),
        );
        check(
            kind,
            "0,0,-5",
            Err("accuracy \"-5\" must be a positive number of metres (0.1 or more)"),
        );
        check(kind, "0,0,1e9", Err("accuracy \"1e9\" is outside 0.1 to 20037509 metres"));
        check(kind, "0,0,NaN", Err("accuracy \"NaN\" is not a finite number"));
        check(kind, "0,0,-inf", Err("accuracy \"-inf\" is not a finite number"));
        check(kind, "0,0,wide", Err("accuracy \"wide\" is not a number of metres"));
        let shape = "is not a location: expected \"latitude,longitude\" or \
                     \"latitude,longitude,accuracy_m\" in degrees and metres";
        check(kind, "48.8584", Err(&format!("\"48.8584\" {shape}")));
        check(kind, "1,2,3,4", Err(&format!("\"1,2,3,4\" {shape}")));
    }

    #[test]
    fn emails() {
        let kind = FieldKind::Email;
        check(kind, "rosa@example.com", Ok("rosa@example.com"));
        check(kind, "  Rosa.Parks+tag@Mail.Example.COM \n", Ok("Rosa.Parks+tag@mail.example.com"));
        check(kind, "x@a-b.c0", Ok("x@a-b.c0"));
        check(kind, "josé@example.com", Ok("josé@example.com"));
        check(
            kind,
            "rosa.example.com",
            Err("\"rosa.example.com\" is not an email address: no '@'"),
        );
        check(
            kind,
            "a@b@example.com",
            Err("\"a@b@example.com\" is not an email address: more than one '@'"),
        );
        check(
            kind,
            "@example.com",
            Err("\"@example.com\" is not an email address: nothing before '@'"),
        );
        check(
            kind,
            "ro sa@example.com",
            Err(
                "\"ro sa@example.com\" is not an email address: space or control character before '@'",
            ),
        );
        check(kind, "rosa@", Err("\"rosa@\" is not an email address: the domain is empty"));
        check(
            kind,
            "rosa@localhost",
            Err("\"rosa@localhost\" is not an email address: the domain needs at least one '.'"),
        );
        check(
            kind,
            "rosa@exa_mple.com",
            Err(
                "\"rosa@exa_mple.com\" is not an email address: the domain may hold only letters, digits, '-' and '.'",
            ),
        );
        check(
            kind,
            "rosa@exämple.com",
            Err(
                "\"rosa@exämple.com\" is not an email address: the domain may hold only letters, digits, '-' and '.'",
            ),
        );
        check(
            kind,
            "rosa@example..com",
            Err("\"rosa@example..com\" is not an email address: the domain has an empty label"),
        );
        check(
            kind,
            "rosa@example.com.",
            Err("\"rosa@example.com.\" is not an email address: the domain has an empty label"),
        );
        check(
            kind,
            "rosa@-example.com",
            Err(
                "\"rosa@-example.com\" is not an email address: the domain has a label starting or ending with '-'",
            ),
        );
        check(
            kind,
            "rosa@example-.com",
            Err(
                "\"rosa@example-.com\" is not an email address: the domain has a label starting or ending with '-'",
            ),
        );
        let long_label = format!("rosa@{}.com", "a".repeat(64));
        check(
            kind,
            &long_label,
            Err(&format!(
                "{} is not an email address: the domain has a label longer than 63 bytes",
                quoted(&long_label)
            )),
        );
        let long_local = format!("{}@example.com", "a".repeat(65));
        check(
            kind,
            &long_local,
            Err(&format!("{} has a local part longer than 64 bytes", quoted(&long_local))),
        );
        let local_64 = format!("{}@example.com", "a".repeat(64));
        check(kind, &local_64, Ok(&local_64));
        let too_long = format!("a@{}.com", vec!["b".repeat(60); 5].join("."));
        assert!(too_long.len() > EMAIL_BYTES_MAX);
        check(kind, &too_long, Err(&format!("{} is longer than 254 bytes", quoted(&too_long))));
    }

    #[test]
    fn phones() {
        let kind = FieldKind::Phone;
        check(kind, "+44 20 7946 0958", Ok("+442079460958"));
        check(kind, " +1 (555) 010-4477 ", Ok("+15550104477"));
        check(kind, "+353.1.555.0100", Ok("+35315550100"));
        check(kind, "+12345678", Ok("+12345678"));
        check(kind, "+123456789012345", Ok("+123456789012345"));
        check(
            kind,
            "020 7946 0958",
            Err(
                "\"020 7946 0958\" is not an E.164 phone number: it must start with '+' and the country code",
            ),
        );
        check(
            kind,
            "+1234567",
            Err("\"+1234567\" is not an E.164 phone number: 7 digits, expected 8 to 15"),
        );
        check(
            kind,
            "+1234567890123456",
            Err("\"+1234567890123456\" is not an E.164 phone number: 16 digits, expected 8 to 15"),
        );
        check(
            kind,
            "+0441234567",
            Err("\"+0441234567\" is not an E.164 phone number: country codes do not start with 0"),
        );
        check(
            kind,
            "+44 20 7946 0958 ext 12",
            Err("\"+44 20 7946 0958 ext 12\" is not an E.164 phone number: unexpected 'e'"),
        );
        check(
            kind,
            "+44+2079460958",
            Err("\"+44+2079460958\" is not an E.164 phone number: unexpected '+'"),
        );
        check(kind, "+", Err("\"+\" is not an E.164 phone number: 0 digits, expected 8 to 15"));
        let padded = format!("+44{}2079460958", " ".repeat(PHONE_INPUT_BYTES_MAX));
        check(kind, &padded, Err(&format!("{} is longer than 64 bytes", quoted(&padded))));
    }

    #[test]
    fn device_ids_and_names() {
        check(FieldKind::DeviceId, "  a1b2-c3d4  ", Ok("a1b2-c3d4"));
        check(FieldKind::DeviceId, "", Err("device id is empty"));
        check(FieldKind::DeviceId, " \t ", Err("device id is empty"));
        check(
            FieldKind::DeviceId,
            "ab\u{0}cd",
            Err("device id \"ab\\0cd\" contains a control character"),
        );
        check(FieldKind::Name, "  Rosa Parks ", Ok("Rosa Parks"));
        check(FieldKind::Name, "Zoë Ødegård 李", Ok("Zoë Ødegård 李"));
        check(
            FieldKind::Name,
            "Rosa\nParks",
            Err("name \"Rosa\\nParks\" contains a control character"),
        );
        check(FieldKind::Name, &"n".repeat(NAME_BYTES_MAX), Ok(&"n".repeat(NAME_BYTES_MAX)));
        let long = "n".repeat(NAME_BYTES_MAX + 1);
        check(
            FieldKind::Name,
            &long,
            Err(&format!("name {} is longer than 256 bytes", quoted(&long))),
        );
        let long = "d".repeat(DEVICE_ID_BYTES_MAX + 1);
        check(
            FieldKind::DeviceId,
            &long,
            Err(&format!("device id {} is longer than 256 bytes", quoted(&long))),
        );
    }

    #[test]
    fn texts() {
        let kind = FieldKind::Text;
        check(kind, " line one\n\tline two ", Ok(" line one\n\tline two "));
        check(kind, "", Ok(""));
        check(
            kind,
            "bell\u{7}",
            Err("text \"bell\\u{7}\" contains a control character other than newline and tab"),
        );
        check(
            kind,
            "cr\r\n",
            Err("text \"cr\\r\\n\" contains a control character other than newline and tab"),
        );
        check(kind, &"t".repeat(TEXT_BYTES_MAX), Ok(&"t".repeat(TEXT_BYTES_MAX)));
        check(kind, &"t".repeat(TEXT_BYTES_MAX + 1), Err("text is longer than 4096 bytes"));
    }

    #[test]
    fn dates_of_birth() {
        let kind = FieldKind::DateOfBirth;
        check(kind, "1990-07-15", Ok("1990-07-15"));
        check(kind, " 1900-01-01 ", Ok("1900-01-01"));
        check(kind, "2000-02-29", Ok("2000-02-29"));
        check(kind, "9999-12-31", Ok("9999-12-31"));
        check(kind, "1899-12-31", Err("date of birth \"1899-12-31\" is before 1900-01-01"));
        check(kind, "1900-02-29", Err("\"1900-02-29\" is not a date in the calendar"));
        check(kind, "1990-13-01", Err("\"1990-13-01\" is not a date in the calendar"));
        check(kind, "1990-7-15", Err("\"1990-7-15\" is not a date: expected YYYY-MM-DD"));
        check(kind, "15/07/1990", Err("\"15/07/1990\" is not a date: expected YYYY-MM-DD"));
        check(kind, "+1990-07-15", Err("\"+1990-07-15\" is not a date: expected YYYY-MM-DD"));
        check(kind, "19900715", Err("\"19900715\" is not a date: expected YYYY-MM-DD"));
    }

    #[test]
    fn field_kind_names() {
        for kind in FieldKind::ALL {
            assert_eq!(kind.as_str().parse::<FieldKind>(), Ok(kind));
            assert_eq!(serde_json::to_string(&kind).unwrap(), format!("\"{kind}\""));
        }
        assert_eq!("ip".parse::<FieldKind>().unwrap_err().to_string(), "unknown field \"ip\"");
    }
}
