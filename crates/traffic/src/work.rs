//! What each kind of case asks for: the purposes the traffic uses, the views each asks per
//! field, and the words staff write. Every view here is one the default policy grants for the
//! purpose to the role that uses it (policies/purposes/*.cedar), never coarsened: the
//! traffic asks for what the work needs, not more.

/// Fields and the views asked for them, as one access names them.
pub(crate) type Fields = &'static [(&'static str, &'static str)];

/// A purpose of the default policy set, as the traffic uses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    Support,
    AccountRecovery,
    TrustSafety,
    Fraud,
    SecurityIncident,
    LegalRequest,
    EmergencyRequest,
    DataSubjectRequest,
}

impl Purpose {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Purpose::Support => "support",
            Purpose::AccountRecovery => "account_recovery",
            Purpose::TrustSafety => "trust_safety",
            Purpose::Fraud => "fraud",
            Purpose::SecurityIncident => "security_incident",
            Purpose::LegalRequest => "legal_request",
            Purpose::EmergencyRequest => "emergency_request",
            Purpose::DataSubjectRequest => "data_subject_request",
        }
    }

    /// The case id prefix, as each source system numbers its cases.
    pub(crate) fn case_prefix(self) -> &'static str {
        match self {
            Purpose::Support => "T",
            Purpose::AccountRecovery => "AR",
            Purpose::TrustSafety => "TS",
            Purpose::Fraud => "FR",
            Purpose::SecurityIncident => "IR",
            Purpose::LegalRequest => "LR",
            Purpose::EmergencyRequest => "ER",
            Purpose::DataSubjectRequest => "DSR",
        }
    }

    /// The reads this purpose makes, one of which each read access names.
    pub(crate) fn reads(self) -> &'static [Fields] {
        match self {
            // support-read: email masked, ip country, phone last2, date of birth age_band,
            // name exact, the rest exists.
            Purpose::Support => &[
                &[("email", "masked"), ("name", "exact")],
                &[("email", "masked"), ("phone", "last2")],
                &[("ip_address", "country"), ("device_id", "exists")],
                &[("name", "exact"), ("date_of_birth", "age_band")],
                &[("email", "domain"), ("ip_address", "country"), ("location", "exists")],
            ],
            // account-recovery-read: email and phone exact, ip country, date of birth year.
            Purpose::AccountRecovery => &[
                &[("email", "exact"), ("phone", "exact")],
                &[("email", "exact"), ("ip_address", "country"), ("name", "exact")],
                &[("phone", "exact"), ("date_of_birth", "year")],
            ],
            // trust-safety-read: ip prefix, email domain, phone country_code, location area/3,
            // date of birth age_band, device id, text and name exact.
            Purpose::TrustSafety => &[
                &[("text", "exact"), ("name", "exact")],
                &[("ip_address", "prefix"), ("device_id", "exact")],
                &[("ip_address", "prefix/16"), ("location", "area/3")],
                &[("email", "domain"), ("date_of_birth", "age_band"), ("phone", "country_code")],
            ],
            // fraud-read: ip prefix, email masked, phone last2, location area/4, date of birth
            // year, device id and name exact.
            Purpose::Fraud => &[
                &[("ip_address", "prefix"), ("device_id", "exact")],
                &[("email", "masked"), ("phone", "last2"), ("name", "exact")],
                &[("location", "area/4"), ("date_of_birth", "year")],
                &[("device_id", "exact"), ("ip_address", "prefix/16")],
            ],
            // security-incident-read: ip and device id exact, email masked, phone last2,
            // location area/3.
            Purpose::SecurityIncident => &[
                &[("ip_address", "exact"), ("device_id", "exact")],
                &[("email", "masked"), ("ip_address", "exact")],
                &[("location", "area/2"), ("phone", "last2")],
            ],
            // legal-request-read: everything exact, with a validated legal process.
            Purpose::LegalRequest => &[
                &[("ip_address", "exact"), ("email", "exact"), ("name", "exact"), ("phone", "exact")],
                &[("location", "exact"), ("ip_address", "exact"), ("device_id", "exact")],
            ],
            // emergency-request-read: location, ip, phone, email, name exact.
            Purpose::EmergencyRequest => {
                &[&[("location", "exact"), ("phone", "exact")], &[("ip_address", "exact"), ("name", "exact"), ("email", "exact")]]
            }
            // data-subject-request-read: everything exact: it is the subject's own copy.
            Purpose::DataSubjectRequest => &[ALL_FIELDS_EXACT],
        }
    }

    /// What a production (export) of this purpose carries; only purposes whose policy permits
    /// `export` have one.
    pub(crate) fn export(self) -> Option<Fields> {
        match self {
            Purpose::LegalRequest => Some(&[("ip_address", "exact"), ("email", "exact"), ("name", "exact"), ("phone", "exact")]),
            Purpose::DataSubjectRequest => Some(ALL_FIELDS_EXACT),
            _ => None,
        }
    }

    /// Justifications for the first look at a case.
    pub(crate) fn first_looks(self) -> &'static [&'static str] {
        match self {
            Purpose::Support => &[
                "customer cannot sign in",
                "customer asks about a charge",
                "customer reports an email they did not request",
                "customer asks why the account was locked",
                "customer wants to update contact details",
            ],
            Purpose::AccountRecovery => &["customer lost access to the account", "customer lost the second factor device"],
            Purpose::TrustSafety => {
                &["reported for harassment", "reported for spam", "reported for impersonation", "reported content review"]
            }
            Purpose::Fraud => &["payment fraud cluster review", "accounts sharing a device with a chargeback", "promotion abuse review"],
            Purpose::SecurityIncident => &[
                "credential stuffing against these accounts",
                "suspicious sessions from one network",
                "leaked token used on these accounts",
            ],
            Purpose::LegalRequest => &["response to validated legal process"],
            Purpose::EmergencyRequest => &["emergency request: risk to life reported by police"],
            Purpose::DataSubjectRequest => &["subject access request: preparing the copy"],
        }
    }

    /// Justifications for coming back to a case.
    pub(crate) fn follow_ups(self) -> &'static [&'static str] {
        match self {
            Purpose::Support => &["customer replied on the ticket", "checking the fix with the customer"],
            Purpose::AccountRecovery => &["customer confirmed the new contact details"],
            Purpose::TrustSafety => &["second review of the report", "related account found in the report"],
            Purpose::Fraud => &["cluster review continued", "new account joined the cluster"],
            Purpose::SecurityIncident => &["incident follow-up", "checking remediation on affected accounts"],
            Purpose::LegalRequest => &["production for the legal process"],
            Purpose::EmergencyRequest => &["police asked for an update"],
            Purpose::DataSubjectRequest => &["sending the copy to the subject"],
        }
    }
}

const ALL_FIELDS_EXACT: Fields = &[
    ("ip_address", "exact"),
    ("location", "exact"),
    ("email", "exact"),
    ("phone", "exact"),
    ("device_id", "exact"),
    ("name", "exact"),
    ("date_of_birth", "exact"),
    ("text", "exact"),
];

/// Support searches find the customer by the email on the ticket.
pub(crate) const SUPPORT_SEARCH_FIELDS: Fields = &[("email", "masked"), ("name", "exact")];
pub(crate) const TRUST_SAFETY_SEARCH_FIELDS: Fields = &[("email", "domain"), ("name", "exact")];

pub(crate) const ESCALATION_JUSTIFICATION: &str = "escalated to tier 2";
pub(crate) const NIGHT_PAGE_JUSTIFICATION: &str = "paged: suspicious logins on these accounts";
pub(crate) const ACCOUNT_CONTROLS: [&str; 3] = ["reset_2fa", "change_email", "revoke_sessions"];
pub(crate) const LEGAL_KINDS: [&str; 3] = ["subpoena", "court_order", "search_warrant"];

pub(crate) const MINOR_APPROVAL_NOTE: &str = "report concerns a minor; assigned analyst, views as the report needs";
pub(crate) const CROSS_BORDER_APPROVAL_NOTE: &str = "follow-the-sun tier 2 on the customer's own ticket; no exact network data";
