//! The record of processing (GDPR Art. 30) read off the policy set in force and the
//! configuration: what each purpose reveals is what the engine decides (change a policy and
//! the record changes), the controller's statements come from `[processing]`, and what is
//! missing is listed as a gap.

use chrono::TimeZone;
use policy::PolicyEngine;
use service::{Config, ProcessingConfig, ProcessingRecord, processing_record};

fn config(processing: &str) -> Config {
    let text = format!(
        "regions = [\"eu\", \"us\"]\n[storage]\nbackend = \"sqlite\"\n[keys]\nprovider = \"keyring\"\n[access.region_countries]\neu = [\"DE\", \"FR\"]\nus = [\"US\"]\n{processing}"
    );
    toml::from_str(&text).unwrap()
}

fn record_under(config: &Config, engine: &PolicyEngine) -> ProcessingRecord {
    processing_record(config, engine, chrono::Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, 0).unwrap())
}

fn record(config: &Config) -> ProcessingRecord {
    record_under(config, &PolicyEngine::default_set().unwrap())
}

fn purpose<'a>(record: &'a ProcessingRecord, name: &str) -> &'a service::PurposeRecord {
    record.purposes.iter().find(|purpose| purpose.purpose == name).unwrap_or_else(|| panic!("no purpose {name}"))
}

fn field<'a>(purpose: &'a service::PurposeRecord, name: &str) -> &'a service::FieldReach {
    purpose.fields.iter().find(|field| field.field == name).unwrap_or_else(|| panic!("no field {name}"))
}

#[test]
fn the_default_policies_read_as_a_record_of_what_each_purpose_reveals() {
    let record = record(&config(""));
    let purposes: Vec<&str> = record.purposes.iter().map(|purpose| purpose.purpose.as_str()).collect();
    assert_eq!(
        purposes,
        [
            "account_recovery", "analytics", "app_function", "data_subject_request", "emergency_request", "fraud",
            "internal_investigation", "legal_request", "security_incident", "support", "trust_safety"
        ]
    );
    assert_eq!(record.data_subjects.protected_labels, ["activist", "journalist", "journalist_contact", "minor", "public_official", "staff"]);

    // Support: enough to recognise the person, not to locate them; a journalist needs a
    // second person; exact IP addresses never leave the region under any purpose.
    let support = purpose(&record, "support");
    assert_eq!(support.roles, ["contractor_agent", "support_agent", "support_tier2"]);
    assert_eq!(support.actors, ["staff"]);
    assert_eq!(field(support, "email").view.as_deref(), Some("masked"));
    assert_eq!(field(support, "ip_address").view.as_deref(), Some("country"));
    assert_eq!(field(support, "location").view.as_deref(), Some("exists"));
    assert!(field(support, "email").search && field(support, "email").export.is_none());
    let journalist = support.subjects.iter().find(|subject| subject.category == "journalist").unwrap();
    assert_eq!(journalist.approvals, ["independent"]);
    assert_eq!(support.policies, ["support-read"]);

    // The leak hunt: an internal investigation reaches subjects labelled staff and no one
    // else — no ordinary user, no journalist — and not by break-glass either.
    let investigation = purpose(&record, "internal_investigation");
    let reached: Vec<&str> = investigation.subjects.iter().map(|subject| subject.category.as_str()).collect();
    assert_eq!(reached, ["staff"]);
    assert_eq!(investigation.roles, ["internal_audit"]);
    assert!(investigation.break_glass.is_empty());
    assert_eq!(field(investigation, "ip_address").view.as_deref(), Some("prefix"));

    // A legal request with a validated process sees and exports exact values; across a
    // border the custodian can release at most the /24, never the address.
    let legal = purpose(&record, "legal_request");
    assert_eq!(field(legal, "ip_address").view.as_deref(), Some("exact"));
    assert_eq!(field(legal, "ip_address").export.as_deref(), Some("exact"));
    assert_eq!(field(legal, "ip_address").leaves_region.as_deref(), Some("prefix"));
    assert_eq!(field(legal, "location").leaves_region.as_deref(), Some("area/8"));
    for purpose in &record.purposes {
        for name in ["ip_address", "location"] {
            assert_ne!(field(purpose, name).leaves_region.as_deref(), Some("exact"), "{} {name}", purpose.purpose);
        }
    }

    // Analytics never gets a direct identifier; app_function is for platform services only.
    let analytics = purpose(&record, "analytics");
    for name in ["email", "phone", "name", "ip_address", "device_id"] {
        assert_ne!(field(analytics, name).view.as_deref(), Some("exact"), "analytics {name}");
    }
    let app = purpose(&record, "app_function");
    assert_eq!((app.actors.as_slice(), app.roles.as_slice()), (["platform services".to_owned()].as_slice(), ["any platform service".to_owned()].as_slice()));
    assert_eq!(field(app, "ip_address").view, None);

    // Break-glass and account control, where the policies allow them.
    assert_eq!(purpose(&record, "security_incident").break_glass, ["security_engineer", "sre"]);
    assert!(purpose(&record, "support").break_glass.is_empty());
    assert!(purpose(&record, "account_recovery").account_control);
    assert!(!purpose(&record, "support").account_control);

    // Nothing the controller must state is stated: every gap is listed.
    assert!(record.gaps.iter().any(|gap| gap.starts_with("no controller")), "{:?}", record.gaps);
    assert!(record.gaps.iter().any(|gap| gap.starts_with("no legal basis for purpose support")), "{:?}", record.gaps);
    assert!(record.gaps.iter().any(|gap| gap.starts_with("no retention period for ip_address")), "{:?}", record.gaps);
    assert_eq!(record.policy_set.policies, PolicyEngine::default_set().unwrap().policy_ids().len());
    // The security measures say what the policies and the configuration do, not what they
    // are meant to do.
    let measures = record.security_measures.join("\n");
    assert!(measures.contains("no purpose lets an exact IP address or location leave it"), "{measures}");
    assert!(measures.contains("subjects labelled activist, journalist, journalist_contact, minor, public_official, staff need a second person's approval"), "{measures}");
    assert!(measures.contains("Detection: 14 rules (") && measures.contains("co_location_probe"), "{measures}");
    assert_eq!(record.regions.iter().map(|region| region.countries.len()).collect::<Vec<_>>(), [2, 1]);
}

#[test]
fn a_changed_policy_changes_the_record() {
    let default = PolicyEngine::default_set().unwrap();
    let before = "(context.field == \"ip_address\" && [\"exists\", \"country\"].contains(context.view))";
    let after = "(context.field == \"ip_address\" && [\"exists\", \"country\", \"prefix/16\"].contains(context.view))";
    let sources: Vec<(String, String)> = default
        .sources()
        .iter()
        .map(|(name, text)| (name.clone(), if name.ends_with("support.cedar") { text.replace(before, after) } else { text.clone() }))
        .collect();
    assert_ne!(sources, default.sources(), "the support policy was edited");
    let widened = PolicyEngine::from_sources(&sources).unwrap();
    let record = record_under(&config(""), &widened);
    assert_eq!(field(purpose(&record, "support"), "ip_address").view.as_deref(), Some("prefix/16"));
    assert_ne!(record.policy_set.sha256, self::record(&config("")).policy_set.sha256);

    // A set that lets a legal request's exact IP address cross a border: the residency
    // measure says so instead of claiming otherwise.
    let sources: Vec<(String, String)> = default
        .sources()
        .iter()
        .map(|(name, text)| (name.clone(), if name == "cross_border.cedar" { text.replace("context.view == \"exact\"", "context.view == \"exact\" && context.purpose != \"legal_request\"") } else { text.clone() }))
        .collect();
    assert_ne!(sources, default.sources(), "the residency policy was edited");
    let leaky = record_under(&config(""), &PolicyEngine::from_sources(&sources).unwrap());
    assert_eq!(field(purpose(&leaky, "legal_request"), "ip_address").leaves_region.as_deref(), Some("exact"));
    let measures = leaky.security_measures.join("\n");
    assert!(measures.contains("exact IP addresses or locations may leave it under legal_request: ip_address, legal_request: location"), "{measures}");
}

#[test]
fn the_controllers_statements_fill_the_record_and_a_transfer_without_safeguards_is_a_gap() {
    let record = record(&config(
        r#"[processing]
controller = "Example Platform Ltd, 1 Dock Road, Dublin"
contact = "privacy@platform.example"
dpo = "dpo@platform.example"
data_subjects = ["users of the platform", "people who contact support"]
[processing.purposes.support]
description = "Answering a user's support ticket"
legal_basis = "Art. 6(1)(b) GDPR: performance of the contract"
[processing.purposes.astrology]
description = "Not a purpose any policy grants"
[processing.retention]
ip_address = "90 days after collection"
access_log = "10 years"
[[processing.recipients]]
name = "Mail Relay GmbH"
kind = "processor"
country = "DE"
purposes = ["app_function"]
[[processing.recipients]]
name = "Parent Co"
kind = "group company"
country = "CN"
purposes = ["internal_investigation"]
"#,
    ));
    assert_eq!(record.controller.name.as_deref(), Some("Example Platform Ltd, 1 Dock Road, Dublin"));
    assert_eq!(record.data_subjects.categories.len(), 2);
    let support = purpose(&record, "support");
    assert_eq!(support.legal_basis.as_deref(), Some("Art. 6(1)(b) GDPR: performance of the contract"));
    let ip = record.personal_data.iter().find(|category| category.field == "ip_address").unwrap();
    assert_eq!(ip.retention.as_deref(), Some("90 days after collection"));
    assert_eq!(ip.views, ["exists", "country", "prefix/16", "prefix", "exact"]);
    assert!(record.security_measures.iter().any(|measure| measure.contains("is kept 10 years")), "{:?}", record.security_measures);

    let relay = record.recipients.iter().find(|recipient| recipient.name == "Mail Relay GmbH").unwrap();
    let parent = record.recipients.iter().find(|recipient| recipient.name == "Parent Co").unwrap();
    assert!(!relay.transfer, "Germany is one of the eu region's countries");
    assert!(parent.transfer, "China is outside every region");
    assert_eq!(purpose(&record, "internal_investigation").recipients, ["Parent Co"]);

    let gaps = &record.gaps;
    assert!(gaps.iter().any(|gap| gap.contains("Parent Co is in CN, outside every region, and no safeguards are stated")), "{gaps:?}");
    assert!(gaps.iter().any(|gap| gap.contains("[processing.purposes.astrology]")), "{gaps:?}");
    assert!(!gaps.iter().any(|gap| gap.starts_with("no controller") || gap.starts_with("no legal basis for purpose support")), "{gaps:?}");
    assert!(!gaps.iter().any(|gap| gap.starts_with("no retention period for ip_address")), "{gaps:?}");
}

#[test]
fn a_wrong_processing_statement_is_refused_naming_it() {
    let check = |text: &str| toml::from_str::<ProcessingConfig>(text).map_err(|error| error.to_string()).and_then(|config| config.check());
    let error = check("[retention]\nip = \"90 days\"\n").unwrap_err();
    assert!(error.contains("`processing.retention.ip` is not a field kind"), "{error}");
    let error = check("[[recipients]]\nname = \"X\"\nkind = \"processor\"\ncountry = \"usa\"\n").unwrap_err();
    assert!(error.contains("`processing.recipients[0].country` \"usa\""), "{error}");
    let error = check("controller = \"  \"\n").unwrap_err();
    assert!(error.contains("`processing.controller` is empty"), "{error}");
    let error = check("controler = \"Example\"\n").unwrap_err();
    assert!(error.contains("unknown field `controler`"), "{error}");
    let error = check(&format!("dpo = \"{}\"\n", "x".repeat(service::PROCESSING_STATEMENT_BYTES_MAX + 1))).unwrap_err();
    assert!(error.contains("`processing.dpo` is longer than"), "{error}");
    check("controller = \"Example\"\n[retention]\naccess_log = \"10 years\"\n").unwrap();
}
