//! How long one (subject, field) decision takes with the default policy set: allowed at the
//! first view tried, coarsened down the ladder, pending (both passes), and the leak hunt
//! (denied at the first view by a forbid no approval or coarser view escapes). Each twice:
//! a query of a new shape, which Cedar decides (`cedar/`), and a query of a shape decided
//! before, which the engine's memo answers (`memo/`).

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
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
    let mut leak_hunt = query(
        &auditor,
        &hunt,
        &journalist,
        FieldKind::IpAddress,
        View::Exact,
    );
    leak_hunt.cross_border = true;
    let cases = [
        ("allowed at first try (email masked)", query(&agent, &ticket, &journalist, FieldKind::Email, View::Masked)),
        ("coarsened (email exact -> masked)", query(&agent, &ticket, &journalist, FieldKind::Email, View::Exact)),
        ("pending (protected label)", query(&agent, &other_ticket, &journalist, FieldKind::Email, View::Masked)),
        ("leak hunt denied (ip exact, settled at the first view)", leak_hunt),
    ];
    for (name, asked) in cases {
        // A team no query had before makes a new shape: the memo misses and Cedar decides.
        let mut teams = 0u64;
        c.bench_function(&format!("decide/cedar/{name}"), |b| {
            b.iter_batched(
                || {
                    teams += 1;
                    Actor { team: format!("team-{teams}"), ..asked.actor.clone() }
                },
                |actor| engine.decide(std::hint::black_box(&AccessQuery { actor: &actor, ..asked })),
                BatchSize::SmallInput,
            )
        });
        c.bench_function(&format!("decide/memo/{name}"), |b| {
            b.iter(|| engine.decide(std::hint::black_box(&asked)))
        });
    }
}

criterion_group!(benches, decide);
criterion_main!(benches);
