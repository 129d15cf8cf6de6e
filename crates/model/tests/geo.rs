//! `GeoDb` against the real MMDB shipped for development (flat `country_code` layout).

use std::net::IpAddr;

use model::{CountryLookup, FieldKind, FieldValue, GeoDb, View, ViewContext};

/// Where the development database lives, relative to this crate; `CUSTOS_GEO_DB` overrides.
const GEO_DB_PATH_DEFAULT: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data/geo-whois-asn-country.mmdb");

fn geo_db() -> GeoDb {
    let path = std::env::var("CUSTOS_GEO_DB").unwrap_or_else(|_| GEO_DB_PATH_DEFAULT.to_owned());
    let bytes =
        std::fs::read(&path).unwrap_or_else(|error| panic!("failed to read {path}: {error}"));
    GeoDb::from_bytes(bytes).unwrap()
}

fn check(geo: &GeoDb, address: &str, expected: Option<&str>) {
    let ip: IpAddr = address.parse().unwrap();
    assert_eq!(geo.country(ip).as_deref(), expected, "{address}");
}

#[test]
fn countries_from_the_flat_layout() {
    let geo = geo_db();
    assert_eq!(geo.database_type(), "country ipvAll");
    check(&geo, "8.8.8.8", Some("US"));
    check(&geo, "2001:4860:4860::8888", Some("US"));
    check(&geo, "1.1.1.1", Some("AU"));
    check(&geo, "193.0.6.139", Some("NL"));
    check(&geo, "2001:67c:2e8:22::c100:68b", Some("NL"));
    check(&geo, "81.2.69.142", Some("GB"));
    // Mapped addresses are looked up as the IPv4 address they are.
    check(&geo, "::ffff:8.8.8.8", Some("US"));
    // Private, loopback and unspecified addresses are in no country.
    check(&geo, "127.0.0.1", None);
    check(&geo, "10.0.0.1", None);
    check(&geo, "0.0.0.0", None);
    check(&geo, "::1", None);
    check(&geo, "fd00::1", None);
}

#[test]
fn country_view_with_the_real_database() {
    let geo = geo_db();
    let context = ViewContext {
        today: chrono::NaiveDate::from_ymd_opt(2024, 6, 15).unwrap(),
        geo: Some(&geo),
    };
    let reveal = |address: &str| {
        let value = FieldValue::parse(FieldKind::IpAddress, address).unwrap();
        View::Country.apply(&value, &context).unwrap().into_string()
    };
    assert_eq!(reveal("8.8.8.8"), "US");
    assert_eq!(reveal("127.0.0.1"), "unknown");
    // The one place where a coarser view is not computable from a finer one: the database
    // splits networks finer than a /24, so two addresses with the same `prefix` (and so the
    // same `prefix/16`) can have different countries. `country` still reveals at most a
    // country; see the report on the ladder contract.
    assert_eq!(reveal("81.2.129.1"), "NL");
    assert_eq!(reveal("81.2.129.65"), "GR");
}

#[test]
fn rejects_bytes_that_are_not_a_database() {
    let error = GeoDb::from_bytes(b"not a database".to_vec()).unwrap_err();
    assert!(error.to_string().starts_with("invalid geo database: "), "{error}");
}

/// A one-node IPv4 MaxMind DB built by hand: 0.0.0.0/1 carries `record`, 128.0.0.0/1 has no
/// data. Encoding from the MaxMind DB spec 2.0 (control byte: type in the top three bits,
/// size in the low five).
fn one_network_database(record: Vec<u8>) -> Vec<u8> {
    fn string(text: &str) -> Vec<u8> {
        let mut bytes = vec![0x40 | u8::try_from(text.len()).unwrap()];
        bytes.extend_from_slice(text.as_bytes());
        bytes
    }
    fn map(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let mut bytes = vec![0xe0 | u8::try_from(entries.len()).unwrap()];
        for (key, value) in entries {
            bytes.extend(string(key));
            bytes.extend_from_slice(value);
        }
        bytes
    }
    let uint16 = |value: u16| [vec![0xa0 | 2], value.to_be_bytes().to_vec()].concat();
    let uint32 = |value: u32| [vec![0xc0 | 4], value.to_be_bytes().to_vec()].concat();
    let uint64 = |value: u64| [vec![8, 9 - 7], value.to_be_bytes().to_vec()].concat();
    let empty_array = vec![0, 11 - 7];
    let node_count = 1_u32;
    // A record above node_count points into the data section, 16 bytes past the tree.
    let left = node_count + 16;
    let right = node_count;
    let mut database = Vec::new();
    database.extend_from_slice(&left.to_be_bytes()[1..]);
    database.extend_from_slice(&right.to_be_bytes()[1..]);
    database.extend_from_slice(&[0; 16]);
    database.extend(record);
    database.extend_from_slice(b"\xab\xcd\xefMaxMind.com");
    database.extend(map(&[
        ("binary_format_major_version", uint16(2)),
        ("binary_format_minor_version", uint16(0)),
        ("build_epoch", uint64(1_700_000_000)),
        ("database_type", string("Test-Country")),
        ("description", map(&[])),
        ("ip_version", uint16(4)),
        ("languages", empty_array),
        ("node_count", uint32(node_count)),
        ("record_size", uint16(24)),
    ]));
    database
}

#[test]
fn countries_from_the_maxmind_layout() {
    let iso_code = [vec![0x40 | 2], b"DE".to_vec()].concat();
    let record = [
        vec![0xe0 | 1, 0x40 | 7],
        b"country".to_vec(),
        vec![0xe0 | 1, 0x40 | 8],
        b"iso_code".to_vec(),
        iso_code,
    ]
    .concat();
    let geo = GeoDb::from_bytes(one_network_database(record)).unwrap();
    assert_eq!(geo.database_type(), "Test-Country");
    check(&geo, "10.1.2.3", Some("DE"));
    check(&geo, "127.255.255.255", Some("DE"));
    check(&geo, "128.0.0.1", None);
    // An IPv4-only database cannot place an IPv6 address: unknown, not an error.
    check(&geo, "2001:db8::1", None);
}

#[test]
fn records_without_a_country_are_unknown() {
    let flat_but_not_a_code =
        [vec![0xe0 | 1, 0x40 | 12], b"country_code".to_vec(), vec![0x40 | 3], b"USA".to_vec()]
            .concat();
    let geo = GeoDb::from_bytes(one_network_database(flat_but_not_a_code)).unwrap();
    check(&geo, "10.1.2.3", None);
    let other_fields = [vec![0xe0 | 1, 0x40 | 3], b"asn".to_vec(), vec![0xc0 | 1, 13]].concat();
    let geo = GeoDb::from_bytes(one_network_database(other_fields)).unwrap();
    check(&geo, "10.1.2.3", None);
}
