//! How long one (subject, field) decision takes with the default policy set: allowed at the
//! first view tried, coarsened down the ladder, pending (both passes), and the leak hunt
//! (denied at the first view by a forbid no approval or coarser view escapes).

use criterion::{Criterion, criterion_group, criterion_main};
use model::{FieldKind, View};
use policy::{
    AccessQuery, Action, Actor, ActorKind, Approvals, CaseFacts, PolicyEngine, SubjectFacts,
};

fn staff(id: &str, roles: &[&str], entity: &str, country: &str, region: &str) -> Actor {
    Actor {
        id: id.to_owned(),
        kind: ActorKind::Staff,
        roles: roles.iter().map(|role| (*role).to_owned()).collect(),
        team: String::new(),
        entity: entity.to_owned(),
        country: country.to_owned(),
        region: region.to_owned(),
    }
}

fn case(purpose: &str, assignee: &str, subject: &str, requested_by: Option<&str>) -> CaseFacts {
    CaseFacts {
        id: "case-1".to_owned(),
        purpose: purpose.to_owned(),
        open: true,
        assignees: vec![assignee.to_owned()],
        subjects: vec![subject.to_owned()],
        requested_by: requested_by.map(str::to_owned),
        legal_process_validated: false,
        destinations: Vec::new(),
    }
}

fn query<'a>(
    actor: &'a Actor,
    case: &'a CaseFacts,
    subject: &'a SubjectFacts,
    field: FieldKind,
    view: View,
) -> AccessQuery<'a> {
    AccessQuery {
        actor,
        action: Action::Read,
        purpose: &case.purpose,
        case: Some(case),
        subject,
        field: Some((field, view)),
        destination: None,
        break_glass: false,
        cross_border: false,
        approvals: Approvals::default(),
    }
}

fn decide(c: &mut Criterion) {
    let engine = PolicyEngine::default_set().expect("default set loads");
    let agent = staff("ana", &["support_agent"], "platform-us", "US", "us");
    let auditor = staff("auditor", &["internal_audit"], "parentco-cn", "CN", "cn");
    let journalist = SubjectFacts {
        id: "j".to_owned(),
        region: "us".to_owned(),
        labels: vec!["journalist".to_owned()],
    };
    let ticket = case("support", "ana", "j", Some("j"));
    let other_ticket = case("support", "ana", "j", None);
    let hunt = case("internal_investigation", "auditor", "j", None);
    let first_try = query(&agent, &ticket, &journalist, FieldKind::Email, View::Masked);
    c.bench_function("decide/allowed at first try (email masked)", |b| {
        b.iter(|| engine.decide(std::hint::black_box(&first_try)))
    });
    let coarsened = query(&agent, &ticket, &journalist, FieldKind::Email, View::Exact);
    c.bench_function("decide/coarsened (email exact -> masked)", |b| {
        b.iter(|| engine.decide(std::hint::black_box(&coarsened)))
    });
    let pending = query(
        &agent,
        &other_ticket,
        &journalist,
        FieldKind::Email,
        View::Masked,
    );
    c.bench_function("decide/pending (protected label)", |b| {
        b.iter(|| engine.decide(std::hint::black_box(&pending)))
    });
    let mut leak_hunt = query(
        &auditor,
        &hunt,
        &journalist,
        FieldKind::IpAddress,
        View::Exact,
    );
    leak_hunt.cross_border = true;
    c.bench_function(
        "decide/leak hunt denied (ip exact, settled at the first view)",
        |b| b.iter(|| engine.decide(std::hint::black_box(&leak_hunt))),
    );
}

criterion_group!(benches, decide);
criterion_main!(benches);
