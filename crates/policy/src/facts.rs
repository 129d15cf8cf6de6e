//! Turns the service's plain facts into Cedar entities, action ids and contexts, shaped as
//! `policies/custos.cedarschema` describes them.
//!
//! Entities are built as values, not parsed from JSON (JSON costs about 100 µs a request),
//! and without a schema check: the shapes here are the schema's, and the validated policies
//! only read what the schema declares.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;

use cedar_policy::{
    Context, Entities, Entity, EntityId, EntityTypeName, EntityUid, RestrictedExpression,
};

use crate::{AccessQuery, Action, ActorKind, Approvals};

/// Cedar names parsed once per engine.
#[derive(Debug, Clone)]
pub(crate) struct CedarNames {
    staff: EntityTypeName,
    machine: EntityTypeName,
    subject: EntityTypeName,
    case: EntityTypeName,
    actions: [EntityUid; 4],
}

impl CedarNames {
    pub(crate) fn new() -> CedarNames {
        // INVARIANT: these literals are valid Cedar names; a failure is a programming error
        // caught by every test.
        let type_name =
            |name: &str| EntityTypeName::from_str(name).expect("valid Cedar entity type name");
        let action_type = type_name("Custos::Action");
        let action = |action: Action| {
            EntityUid::from_type_name_and_id(action_type.clone(), EntityId::new(action.as_str()))
        };
        CedarNames {
            staff: type_name("Custos::Staff"),
            machine: type_name("Custos::Machine"),
            subject: type_name("Custos::Subject"),
            case: type_name("Custos::Case"),
            actions: Action::ALL.map(action),
        }
    }

    /// `Custos::Action`, the type of every action.
    pub(crate) fn action_type(&self) -> String {
        self.actions[0].type_name().to_string()
    }

    pub(crate) fn action(&self, action: Action) -> &EntityUid {
        &self.actions[action.index()]
    }

    /// The kind of actor a principal type is (`None` for a type that is neither).
    pub(crate) fn actor_kind_of(&self, type_name: &EntityTypeName) -> Option<ActorKind> {
        if *type_name == self.staff {
            Some(ActorKind::Staff)
        } else if *type_name == self.machine {
            Some(ActorKind::Machine)
        } else {
            None
        }
    }

    pub(crate) fn action_of(&self, uid: &EntityUid) -> Option<Action> {
        Action::ALL
            .into_iter()
            .find(|action| self.action(*action) == uid)
    }

    fn uid(&self, type_name: &EntityTypeName, id: &str) -> EntityUid {
        EntityUid::from_type_name_and_id(type_name.clone(), EntityId::new(id))
    }
}

/// The parts of one query that stay the same while the engine tries views.
pub(crate) struct RequestFacts {
    pub(crate) principal: EntityUid,
    pub(crate) action: EntityUid,
    pub(crate) resource: EntityUid,
    pub(crate) entities: Entities,
    case: Option<EntityUid>,
}

impl RequestFacts {
    pub(crate) fn new(names: &CedarNames, query: &AccessQuery<'_>) -> Result<RequestFacts, String> {
        let actor = query.actor;
        let principal_type = match actor.kind {
            ActorKind::Staff => &names.staff,
            ActorKind::Machine => &names.machine,
        };
        let principal = names.uid(principal_type, &actor.id);
        let mut principal_attributes = HashMap::from([("roles".to_owned(), strings(&actor.roles))]);
        if actor.kind == ActorKind::Staff {
            principal_attributes.extend([
                ("team".to_owned(), string(&actor.team)),
                ("entity".to_owned(), string(&actor.entity)),
                ("country".to_owned(), string(&actor.country)),
                ("region".to_owned(), string(&actor.region)),
            ]);
        }
        let resource = names.uid(&names.subject, &query.subject.id);
        let subject_attributes = HashMap::from([
            ("region".to_owned(), string(&query.subject.region)),
            ("labels".to_owned(), strings(&query.subject.labels)),
        ]);
        let mut entities = vec![
            entity(principal.clone(), principal_attributes)?,
            entity(resource.clone(), subject_attributes)?,
        ];
        let mut case_uid = None;
        if let Some(case) = query.case {
            let uid = names.uid(&names.case, &case.id);
            let uids = |type_name: &EntityTypeName, ids: &[String]| {
                RestrictedExpression::new_set(
                    ids.iter()
                        .map(|id| RestrictedExpression::new_entity_uid(names.uid(type_name, id))),
                )
            };
            let mut attributes = HashMap::from([
                ("purpose".to_owned(), string(&case.purpose)),
                ("open".to_owned(), RestrictedExpression::new_bool(case.open)),
                ("assignees".to_owned(), uids(&names.staff, &case.assignees)),
                ("subjects".to_owned(), uids(&names.subject, &case.subjects)),
                (
                    "legal_validated".to_owned(),
                    RestrictedExpression::new_bool(case.legal_process_validated),
                ),
                ("destinations".to_owned(), strings(&case.destinations)),
            ]);
            if let Some(requested_by) = &case.requested_by {
                attributes.insert(
                    "requested_by".to_owned(),
                    RestrictedExpression::new_entity_uid(names.uid(&names.subject, requested_by)),
                );
            }
            entities.push(entity(uid.clone(), attributes)?);
            case_uid = Some(uid);
        }
        let entities =
            Entities::from_entities(entities, None).map_err(|error| error.to_string())?;
        Ok(RequestFacts {
            principal,
            action: names.action(query.action).clone(),
            resource,
            entities,
            case: case_uid,
        })
    }

    /// The context for trying `view` of `field` ("" for both when no field is asked) with
    /// `approvals`.
    pub(crate) fn context(
        &self,
        query: &AccessQuery<'_>,
        field: &str,
        view: &str,
        approvals: Approvals,
    ) -> Result<Context, String> {
        let approvals = RestrictedExpression::new_record([
            (
                "independent".to_owned(),
                RestrictedExpression::new_bool(approvals.independent),
            ),
            (
                "custodian".to_owned(),
                RestrictedExpression::new_bool(approvals.custodian),
            ),
        ])
        .map_err(|error| error.to_string())?;
        let mut pairs = vec![
            ("purpose".to_owned(), string(query.purpose)),
            ("field".to_owned(), string(field)),
            ("view".to_owned(), string(view)),
            (
                "break_glass".to_owned(),
                RestrictedExpression::new_bool(query.break_glass),
            ),
            (
                "cross_border".to_owned(),
                RestrictedExpression::new_bool(query.cross_border),
            ),
            ("approvals".to_owned(), approvals),
        ];
        if let Some(case) = &self.case {
            pairs.push((
                "case".to_owned(),
                RestrictedExpression::new_entity_uid(case.clone()),
            ));
        }
        if let Some(destination) = query.destination {
            pairs.push(("destination".to_owned(), string(destination)));
        }
        Context::from_pairs(pairs).map_err(|error| error.to_string())
    }
}

fn entity(
    uid: EntityUid,
    attributes: HashMap<String, RestrictedExpression>,
) -> Result<Entity, String> {
    Entity::new(uid, attributes, HashSet::new()).map_err(|error| error.to_string())
}

fn string(value: &str) -> RestrictedExpression {
    RestrictedExpression::new_string(value.to_owned())
}

fn strings(values: &[String]) -> RestrictedExpression {
    RestrictedExpression::new_set(values.iter().map(|value| string(value)))
}
