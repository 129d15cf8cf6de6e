//! The synthetic platform the traffic runs on: regions and their countries, staff with roles,
//! shifts and work rates, and the subjects (platform users) with their protection labels.
//! Built once from the seed and held in memory — the staff and subject tables are small next
//! to the traffic. A subject's values are not stored: they are drawn again from the subject's
//! own seeded stream whenever they are needed (its line, a search by its email).

use chrono::NaiveDate;
use chrono_tz::Tz;
use rand::Rng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::numbers::{apportion, mix, stream, unit};

/// Share of subjects carrying a protection label (journalist, public official, activist,
/// minor, staff): 1.5 %, inside the 1–2 % a large platform sees.
const PROTECTED_PER_MILLE: u32 = 15;
/// Staff per served region below which fewer regions are served (each region needs its
/// privacy officer, legal officer, tier-2 agent, security and SRE engineers, analysts, agents).
pub(crate) const STAFF_PER_REGION_MIN: u32 = 20;
/// The roles every served region has at least one of, in the order they are handed out.
const ROLES_REQUIRED: [Role; 8] = [
    Role::PrivacyOfficer,
    Role::LegalOfficer,
    Role::SupportTier2,
    Role::SecurityEngineer,
    Role::Sre,
    Role::TrustSafetyAnalyst,
    Role::FraudAnalyst,
    Role::SupportAgent,
];
/// Seed tweak for subjects' values, so they draw apart from everything else.
const SUBJECT_VALUES_STREAM: u64 = 0x0073_7562_6a65_6374;
/// Share (per cent) of agents and analysts hired during the simulated period.
const NEW_HIRE_PERCENT: u32 = 4;

/// A role of the default deployment (shared/DESIGN.md §3) that the traffic uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Role {
    SupportAgent,
    ContractorAgent,
    SupportTier2,
    TrustSafetyAnalyst,
    FraudAnalyst,
    SecurityEngineer,
    Sre,
    LegalOfficer,
    PrivacyOfficer,
    Engineer,
    ComplianceOfficer,
    Auditor,
}

impl Role {
    pub(crate) const ALL: [Role; 12] = [
        Role::SupportAgent,
        Role::ContractorAgent,
        Role::SupportTier2,
        Role::TrustSafetyAnalyst,
        Role::FraudAnalyst,
        Role::SecurityEngineer,
        Role::Sre,
        Role::LegalOfficer,
        Role::PrivacyOfficer,
        Role::Engineer,
        Role::ComplianceOfficer,
        Role::Auditor,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Role::SupportAgent => "support_agent",
            Role::ContractorAgent => "contractor_agent",
            Role::SupportTier2 => "support_tier2",
            Role::TrustSafetyAnalyst => "trust_safety_analyst",
            Role::FraudAnalyst => "fraud_analyst",
            Role::SecurityEngineer => "security_engineer",
            Role::Sre => "sre",
            Role::LegalOfficer => "legal_officer",
            Role::PrivacyOfficer => "privacy_officer",
            Role::Engineer => "engineer",
            Role::ComplianceOfficer => "compliance_officer",
            Role::Auditor => "auditor",
        }
    }

    pub(crate) fn team(self) -> &'static str {
        match self {
            Role::SupportAgent | Role::ContractorAgent => "support",
            Role::SupportTier2 => "support-tier2",
            Role::TrustSafetyAnalyst => "trust-safety",
            Role::FraudAnalyst => "fraud",
            Role::SecurityEngineer => "security",
            Role::Sre => "sre",
            Role::LegalOfficer => "legal",
            Role::PrivacyOfficer => "privacy",
            Role::Engineer => "engineering",
            Role::ComplianceOfficer => "compliance",
            Role::Auditor => "audit",
        }
    }

    /// Weight of the role among the staff beyond each region's required roles.
    fn weight(self) -> u32 {
        match self {
            Role::SupportAgent => 38,
            Role::ContractorAgent => 12,
            Role::SupportTier2 => 8,
            Role::TrustSafetyAnalyst => 13,
            Role::FraudAnalyst => 8,
            Role::SecurityEngineer | Role::Sre | Role::LegalOfficer => 3,
            Role::PrivacyOfficer | Role::ComplianceOfficer => 2,
            Role::Engineer => 6,
            Role::Auditor => 1,
        }
    }

    /// Accesses per working day, lowest and highest; each person draws their own rate once.
    /// Roles whose work is not reading personal data through cases have none.
    fn rate_range(self) -> Option<(f64, f64)> {
        match self {
            Role::SupportAgent | Role::ContractorAgent | Role::TrustSafetyAnalyst => Some((20.0, 40.0)),
            Role::SupportTier2 | Role::FraudAnalyst => Some((15.0, 30.0)),
            Role::SecurityEngineer | Role::Sre => Some((8.0, 20.0)),
            Role::LegalOfficer => Some((6.0, 14.0)),
            Role::PrivacyOfficer => Some((4.0, 10.0)),
            Role::Engineer | Role::ComplianceOfficer | Role::Auditor => None,
        }
    }

    /// Shift starts (local minutes after midnight) and the shift's length in minutes.
    fn shifts(self) -> (&'static [u32], u32) {
        match self {
            Role::SupportAgent | Role::ContractorAgent => (&[7 * 60, 8 * 60, 9 * 60, 10 * 60, 12 * 60, 13 * 60], 8 * 60),
            Role::SupportTier2 => (&[8 * 60, 9 * 60, 10 * 60, 11 * 60], 8 * 60 + 30),
            Role::TrustSafetyAnalyst => (&[8 * 60, 9 * 60, 10 * 60, 14 * 60], 8 * 60),
            Role::FraudAnalyst => (&[8 * 60, 9 * 60], 9 * 60),
            Role::SecurityEngineer | Role::Sre => (&[9 * 60, 10 * 60], 9 * 60),
            Role::LegalOfficer => (&[9 * 60], 8 * 60 + 30),
            // Long days: privacy officers are the approvers colleagues wait for.
            Role::PrivacyOfficer => (&[8 * 60], 10 * 60),
            Role::Engineer | Role::ComplianceOfficer | Role::Auditor => (&[9 * 60], 9 * 60),
        }
    }

    /// Agents and analysts are the ones hired in numbers.
    fn hired_in_numbers(self) -> bool {
        matches!(self, Role::SupportAgent | Role::ContractorAgent | Role::TrustSafetyAnalyst)
    }
}

/// A protection label of the default policy (policies/protected.cedar).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Label {
    Journalist,
    PublicOfficial,
    Activist,
    Minor,
    Staff,
}

impl Label {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Label::Journalist => "journalist",
            Label::PublicOfficial => "public_official",
            Label::Activist => "activist",
            Label::Minor => "minor",
            Label::Staff => "staff",
        }
    }
}

pub(crate) struct Country {
    pub code: &'static str,
    pub time_zones: &'static [&'static str],
    pub phone_prefix: &'static str,
    pub phone_national_digits: u32,
    /// /16 networks `(first octet, second octet from, to)` that the development geo database
    /// (shared/data/geo-whois-asn-country.mmdb) places in this country, so that `country`
    /// views answer the subject's own country.
    pub networks: &'static [(u8, u8, u8)],
    pub cities: &'static [(f64, f64)],
    pub first_names: &'static [&'static str],
    pub last_names: &'static [&'static str],
    /// Weight among the region's subjects, and among its staff.
    pub subject_weight: u32,
    pub staff_weight: u32,
}

pub(crate) struct Region {
    pub name: &'static str,
    pub weight: u32,
    pub countries: &'static [Country],
    pub courts: &'static [&'static str],
    pub police: &'static str,
}

const US_FIRST: &[&str] =
    &["James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David", "Aisha", "Carlos", "Wei"];
const US_LAST: &[&str] =
    &["Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Nguyen", "Kim", "Martinez", "Lee"];
const EU_FIRST: &[&str] =
    &["Lukas", "Emma", "Hugo", "Chloe", "Sean", "Aoife", "Daan", "Sofia", "Lucia", "Marco", "Giulia", "Joao", "Ines", "Lena"];
const EU_LAST: &[&str] = &[
    "Mueller",
    "Schmidt",
    "Martin",
    "Bernard",
    "Murphy",
    "Kelly",
    "de Jong",
    "Jansen",
    "Fernandez",
    "Rossi",
    "Russo",
    "Costa",
    "Weber",
    "Dubois",
];
const SG_FIRST: &[&str] = &["Wei Ling", "Jun Jie", "Siti", "Muhammad", "Priya", "Arjun", "Mei", "Hui Min"];
const SG_LAST: &[&str] = &["Tan", "Lim", "Lee", "Ng", "Wong", "Rahman", "Kumar", "Chua"];
const BR_FIRST: &[&str] = &["Joao", "Maria", "Gabriel", "Ana", "Lucas", "Juliana", "Pedro", "Beatriz"];
const BR_LAST: &[&str] = &["Silva", "Santos", "Oliveira", "Souza", "Lima", "Pereira", "Costa", "Ferreira"];

/// The regions in the order they are served as the staff grows (see [`STAFF_PER_REGION_MIN`]).
pub(crate) const REGIONS: [Region; 4] = [
    Region {
        name: "us",
        weight: 40,
        countries: &[Country {
            code: "US",
            time_zones: &["America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles"],
            phone_prefix: "+1",
            phone_national_digits: 10,
            networks: &[(73, 0, 39)],
            cities: &[
                (40.7128, -74.006),
                (41.8781, -87.6298),
                (34.0522, -118.2437),
                (29.7604, -95.3698),
                (47.6062, -122.3321),
                (33.749, -84.388),
            ],
            first_names: US_FIRST,
            last_names: US_LAST,
            subject_weight: 1,
            staff_weight: 1,
        }],
        courts: &["US District Court SDNY", "Superior Court of California", "Circuit Court of Cook County"],
        police: "New York City Police Department",
    },
    Region {
        name: "eu",
        weight: 30,
        countries: &[
            Country {
                code: "DE",
                time_zones: &["Europe/Berlin"],
                phone_prefix: "+49",
                phone_national_digits: 10,
                networks: &[(31, 224, 255)],
                cities: &[(52.52, 13.405), (48.1351, 11.582), (53.5511, 9.9937)],
                first_names: EU_FIRST,
                last_names: EU_LAST,
                subject_weight: 30,
                staff_weight: 20,
            },
            Country {
                code: "FR",
                time_zones: &["Europe/Paris"],
                phone_prefix: "+33",
                phone_national_digits: 9,
                networks: &[(80, 8, 15), (2, 3, 10)],
                cities: &[(48.8566, 2.3522), (45.764, 4.8357), (43.2965, 5.3698)],
                first_names: EU_FIRST,
                last_names: EU_LAST,
                subject_weight: 25,
                staff_weight: 10,
            },
            Country {
                code: "IE",
                time_zones: &["Europe/Dublin"],
                phone_prefix: "+353",
                phone_national_digits: 9,
                networks: &[(31, 88, 89), (62, 9, 9), (62, 17, 17)],
                cities: &[(53.3498, -6.2603), (51.8985, -8.4756)],
                first_names: EU_FIRST,
                last_names: EU_LAST,
                subject_weight: 8,
                staff_weight: 40,
            },
            Country {
                code: "NL",
                time_zones: &["Europe/Amsterdam"],
                phone_prefix: "+31",
                phone_national_digits: 9,
                networks: &[(80, 111, 114), (31, 136, 139)],
                cities: &[(52.3676, 4.9041), (51.9244, 4.4777)],
                first_names: EU_FIRST,
                last_names: EU_LAST,
                subject_weight: 12,
                staff_weight: 10,
            },
            Country {
                code: "ES",
                time_zones: &["Europe/Madrid"],
                phone_prefix: "+34",
                phone_national_digits: 9,
                networks: &[(80, 24, 39)],
                cities: &[(40.4168, -3.7038), (41.3874, 2.1686)],
                first_names: EU_FIRST,
                last_names: EU_LAST,
                subject_weight: 12,
                staff_weight: 10,
            },
            Country {
                code: "IT",
                time_zones: &["Europe/Rome"],
                phone_prefix: "+39",
                phone_national_digits: 10,
                networks: &[(80, 16, 23), (31, 196, 199)],
                cities: &[(41.9028, 12.4964), (45.4642, 9.19)],
                first_names: EU_FIRST,
                last_names: EU_LAST,
                subject_weight: 10,
                staff_weight: 5,
            },
            Country {
                code: "PT",
                time_zones: &["Europe/Lisbon"],
                phone_prefix: "+351",
                phone_national_digits: 9,
                networks: &[(2, 80, 83)],
                cities: &[(38.7223, -9.1393), (41.1579, -8.6291)],
                first_names: EU_FIRST,
                last_names: EU_LAST,
                subject_weight: 3,
                staff_weight: 5,
            },
        ],
        courts: &["Amtsgericht Berlin-Tiergarten", "Tribunal judiciaire de Paris", "High Court of Ireland"],
        police: "An Garda Siochana",
    },
    Region {
        name: "sg",
        weight: 15,
        countries: &[Country {
            code: "SG",
            time_zones: &["Asia/Singapore"],
            phone_prefix: "+65",
            phone_national_digits: 8,
            networks: &[(116, 14, 15), (116, 86, 88), (118, 200, 201)],
            cities: &[(1.3521, 103.8198), (1.3329, 103.7436), (1.4382, 103.7890)],
            first_names: SG_FIRST,
            last_names: SG_LAST,
            subject_weight: 1,
            staff_weight: 1,
        }],
        courts: &["State Courts of Singapore"],
        police: "Singapore Police Force",
    },
    Region {
        name: "br",
        weight: 15,
        countries: &[Country {
            code: "BR",
            time_zones: &["America/Sao_Paulo"],
            phone_prefix: "+55",
            phone_national_digits: 11,
            networks: &[(177, 13, 20), (177, 40, 52)],
            cities: &[(-23.5505, -46.6333), (-22.9068, -43.1729), (-19.9167, -43.9345)],
            first_names: BR_FIRST,
            last_names: BR_LAST,
            subject_weight: 1,
            staff_weight: 1,
        }],
        courts: &["Tribunal de Justica de Sao Paulo"],
        police: "Policia Civil do Estado de Sao Paulo",
    },
];

/// One staff member.
pub(crate) struct Staff {
    pub id: String,
    pub role: Role,
    pub region: usize,
    pub country: &'static Country,
    pub time_zone_name: &'static str,
    pub time_zone: Tz,
    /// Local minutes after midnight; the shift ends the same day.
    pub shift_start_minutes: u32,
    pub shift_end_minutes: u32,
    /// First day (index from the start date) this person works; their `staff` line comes
    /// then, with an `hr` new_hire fact, unless they were there from the start.
    pub hire_day: u32,
    pub new_hire: bool,
    /// Accesses per working day this person aims at (0: never reads personal data).
    pub rate: f64,
}

/// One subject: only what the traffic needs to choose it; the values are drawn on demand.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Subject {
    pub region: u8,
    pub country: u8,
    pub label: Option<Label>,
    /// The staff member who owns this account (label `staff`).
    pub staff: Option<u32>,
}

/// A subject's values, as its `subject` line carries them.
pub(crate) struct SubjectValues {
    pub name: String,
    pub email: String,
    pub phone: String,
    pub ip_addresses: Vec<String>,
    pub location: Option<String>,
    pub device_ids: Vec<String>,
    pub date_of_birth: String,
    pub text: Option<&'static str>,
}

/// Subjects of one region, by what work may choose them.
#[derive(Default)]
pub(crate) struct Pools {
    /// Everyone: anyone may open a ticket about their own account.
    pub all: Vec<u32>,
    /// No protection label: the subjects queues, clusters and incidents may name.
    pub ordinary: Vec<u32>,
    pub minors: Vec<u32>,
}

pub(crate) struct World {
    pub seed: u64,
    pub start: NaiveDate,
    pub days: u32,
    pub regions: Vec<&'static Region>,
    pub staff: Vec<Staff>,
    pub subjects: Vec<Subject>,
    pub pools: Vec<Pools>,
    /// Staff indexes per region and role.
    by_role: Vec<Vec<Vec<u32>>>,
}

/// Why a world could not be built from the parameters.
pub(crate) enum WorldError {
    /// A served region ended up with no subject without a protection label.
    RegionWithoutOrdinarySubjects(&'static str),
}

impl World {
    /// Staff and their rates; the days and the hires come later ([`World::hire`]) because the
    /// default number of days depends on the rates.
    pub(crate) fn build(
        seed: u64,
        start: NaiveDate,
        staff_count: u32,
        subject_count: u32,
        rng: &mut ChaCha8Rng,
    ) -> Result<World, WorldError> {
        let region_count = (staff_count / STAFF_PER_REGION_MIN).clamp(1, REGIONS.len() as u32) as usize;
        let regions: Vec<&'static Region> = REGIONS.iter().take(region_count).collect();
        let staff = build_staff(&regions, staff_count, rng);
        let mut by_role = vec![vec![Vec::new(); Role::ALL.len()]; regions.len()];
        for (index, member) in staff.iter().enumerate() {
            by_role[member.region][member.role as usize].push(index as u32);
        }
        let subjects = build_subjects(&regions, &staff, subject_count, rng);
        let mut pools: Vec<Pools> = regions.iter().map(|_| Pools::default()).collect();
        for (index, subject) in subjects.iter().enumerate() {
            let pool = &mut pools[subject.region as usize];
            pool.all.push(index as u32);
            match subject.label {
                None => pool.ordinary.push(index as u32),
                Some(Label::Minor) => pool.minors.push(index as u32),
                Some(_) => {}
            }
        }
        if let Some((region, _)) = regions.iter().zip(&pools).find(|(_, pool)| pool.ordinary.is_empty()) {
            return Err(WorldError::RegionWithoutOrdinarySubjects(region.name));
        }
        Ok(World { seed, start, days: 0, regions, staff, subjects, pools, by_role })
    }

    /// Fixes the number of days and picks the agents and analysts hired during them: they
    /// start on a working day in the first two thirds of the period.
    pub(crate) fn hire(&mut self, days: u32, rng: &mut ChaCha8Rng) {
        self.days = days;
        let last_hire_day = days * 2 / 3;
        if last_hire_day < 1 {
            return;
        }
        let required: Vec<u32> =
            self.by_role.iter().flat_map(|roles| ROLES_REQUIRED.iter().filter_map(|role| roles[*role as usize].first().copied())).collect();
        for (index, member) in self.staff.iter_mut().enumerate() {
            if !member.role.hired_in_numbers() || required.contains(&(index as u32)) || rng.random_range(0..100) >= NEW_HIRE_PERCENT {
                continue;
            }
            let mut day = rng.random_range(1..=last_hire_day);
            while !crate::calendar::is_working_day(self.start, day) {
                day += 1;
            }
            if day < days {
                member.hire_day = day;
                member.new_hire = true;
            }
        }
    }

    pub(crate) fn staff_of(&self, region: usize, role: Role) -> &[u32] {
        &self.by_role[region][role as usize]
    }

    /// The subject's values, drawn from its own stream: the same every time they are asked for.
    pub(crate) fn subject_values(&self, index: u32) -> SubjectValues {
        let subject = self.subjects[index as usize];
        let mut rng = stream(mix(self.seed ^ SUBJECT_VALUES_STREAM, u64::from(index)));
        let country = &self.regions[subject.region as usize].countries[subject.country as usize];
        let first = country.first_names[rng.random_range(0..country.first_names.len())];
        let last = country.last_names[rng.random_range(0..country.last_names.len())];
        let domain = match subject.staff {
            Some(_) => "staff.platform.example",
            None => EMAIL_DOMAINS[rng.random_range(0..EMAIL_DOMAINS.len())],
        };
        // The subject number keeps every email unique, so a search by email finds one person.
        let email = format!("{}.{}.{}@{domain}", email_part(first), email_part(last), index + 1);
        let mut phone = String::from(country.phone_prefix);
        for position in 0..country.phone_national_digits {
            let digit = if position == 0 { rng.random_range(2..10) } else { rng.random_range(0..10) };
            phone.push(char::from(b'0' + digit as u8));
        }
        let ip_count = rng.random_range(1..=3);
        let ip_addresses = (0..ip_count)
            .map(|_| {
                let (first_octet, from, to) = country.networks[rng.random_range(0..country.networks.len())];
                let second = rng.random_range(from..=to);
                format!("{first_octet}.{second}.{}.{}", rng.random_range(0..=255u8), rng.random_range(1..=254u8))
            })
            .collect();
        let location = (rng.random_range(0..4) != 0).then(|| {
            let (latitude, longitude) = country.cities[rng.random_range(0..country.cities.len())];
            format!("{:.4},{:.4}", latitude + rng.random_range(-0.08..0.08), longitude + rng.random_range(-0.08..0.08))
        });
        let device_ids = (0..rng.random_range(1..=2)).map(|_| format!("dev-{:016x}", rng.random::<u64>())).collect();
        // Minors are 13 to 17 during 2026; everyone else 19 to 76.
        let year = if subject.label == Some(Label::Minor) { rng.random_range(2009..=2012) } else { rng.random_range(1950..=2006) };
        let date_of_birth = format!("{year}-{:02}-{:02}", rng.random_range(1..=12), rng.random_range(1..=28));
        let text = (rng.random_range(0..10) < 3).then(|| PROFILE_TEXTS[rng.random_range(0..PROFILE_TEXTS.len())]);
        SubjectValues { name: format!("{first} {last}"), email, phone, ip_addresses, location, device_ids, date_of_birth, text }
    }
}

const EMAIL_DOMAINS: [&str; 5] = ["mail.example", "inbox.example", "post.example", "webmail.example", "example.net"];

const PROFILE_TEXTS: [&str; 6] = [
    "Weekend cyclist, coffee enthusiast.",
    "Selling vintage furniture, message me for prices.",
    "Photos of my garden and my dog.",
    "Student. Music, films and football.",
    "Small bakery, fresh bread every morning.",
    "Travel notes from wherever I am this month.",
];

fn email_part(name: &str) -> String {
    name.chars().filter(char::is_ascii_alphanumeric).map(|c| c.to_ascii_lowercase()).collect()
}

fn build_staff(regions: &[&'static Region], staff_count: u32, rng: &mut ChaCha8Rng) -> Vec<Staff> {
    let weights: Vec<f64> = regions.iter().map(|region| f64::from(region.weight)).collect();
    let per_region = apportion(u64::from(staff_count), &weights);
    let mut staff = Vec::with_capacity(staff_count as usize);
    for (region_index, (region, count)) in regions.iter().zip(per_region).enumerate() {
        // INVARIANT: STAFF_PER_REGION_MIN staff per served region leave every region at least
        // its required roles (the smallest region weight is 15 of 100).
        assert!(count as usize >= ROLES_REQUIRED.len(), "region {} got {count} staff", region.name);
        let role_weights: Vec<f64> = Role::ALL.iter().map(|role| f64::from(role.weight())).collect();
        let extra = apportion(count - ROLES_REQUIRED.len() as u64, &role_weights);
        let mut roles: Vec<Role> = ROLES_REQUIRED.to_vec();
        for (role, number) in Role::ALL.iter().zip(extra) {
            roles.extend(std::iter::repeat_n(*role, number as usize));
        }
        for (number, role) in roles.into_iter().enumerate() {
            staff.push(staff_member(region, region_index, number + 1, role, rng));
        }
    }
    staff
}

fn staff_member(region: &'static Region, region_index: usize, number: usize, role: Role, rng: &mut ChaCha8Rng) -> Staff {
    let weights: Vec<u32> = region.countries.iter().map(|country| country.staff_weight).collect();
    let country = &region.countries[weighted(&weights, rng)];
    let time_zone_name = country.time_zones[rng.random_range(0..country.time_zones.len())];
    // INVARIANT: the tables above name only zones chrono-tz knows.
    let time_zone: Tz = time_zone_name.parse().expect("table time zones are IANA names");
    let (starts, length) = role.shifts();
    let shift_start_minutes = starts[rng.random_range(0..starts.len())];
    let rate = role.rate_range().map_or(0.0, |(low, high)| rng.random_range(low..=high));
    Staff {
        id: format!("s-{}-{number}", region.name),
        role,
        region: region_index,
        country,
        time_zone_name,
        time_zone,
        shift_start_minutes,
        shift_end_minutes: shift_start_minutes + length,
        hire_day: 0,
        new_hire: false,
        rate,
    }
}

fn build_subjects(regions: &[&'static Region], staff: &[Staff], subject_count: u32, rng: &mut ChaCha8Rng) -> Vec<Subject> {
    let region_weights: Vec<u32> = regions.iter().map(|region| region.weight).collect();
    let country_weights: Vec<Vec<u32>> =
        regions.iter().map(|region| region.countries.iter().map(|country| country.subject_weight).collect()).collect();
    // Employees' own platform accounts, at most one each, in a seeded order.
    let mut owners: Vec<u32> = (0..staff.len() as u32).collect();
    owners.shuffle(rng);
    let mut owners = owners.into_iter();
    let mut subjects = Vec::with_capacity(subject_count as usize);
    for _ in 0..subject_count {
        let region = weighted(&region_weights, rng);
        let country = weighted(&country_weights[region], rng);
        let mut subject = Subject { region: region as u8, country: country as u8, label: None, staff: None };
        if rng.random_range(0..1000) < PROTECTED_PER_MILLE {
            subject.label = Some(match rng.random_range(0..100) {
                0..20 => Label::Journalist,
                20..33 => Label::PublicOfficial,
                33..46 => Label::Activist,
                46..80 => Label::Minor,
                _ => match owners.next() {
                    Some(owner) => {
                        let member = &staff[owner as usize];
                        subject.region = member.region as u8;
                        subject.country =
                            regions[member.region].countries.iter().position(|country| country.code == member.country.code).unwrap_or(0)
                                as u8;
                        subject.staff = Some(owner);
                        Label::Staff
                    }
                    None => Label::Minor,
                },
            });
        }
        subjects.push(subject);
    }
    subjects
}

/// An index drawn with the given weights.
pub(crate) fn weighted(weights: &[u32], rng: &mut ChaCha8Rng) -> usize {
    let total: u32 = weights.iter().sum();
    let mut draw = rng.random_range(0..total);
    for (index, weight) in weights.iter().enumerate() {
        if draw < *weight {
            return index;
        }
        draw -= weight;
    }
    // INVARIANT: draw < total, so some weight absorbed it.
    unreachable!("weighted draw {draw} beyond the total {total}")
}

/// A uniform draw in [0, 1) from a hash, for values that must not depend on the order of
/// the draws (the day-to-day wobble of each person's volume).
pub(crate) fn hashed_unit(seed: u64, a: u64, b: u64) -> f64 {
    unit(mix(mix(seed, a), b))
}
