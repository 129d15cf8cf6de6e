//! The policy engine: loads and validates a policy set, slices it by action and purpose, and
//! decides one (subject, field) at a time by walking the field's view ladder.
//!
//! Cedar evaluates every policy of a set on every request (about 1.1 µs each here), so the
//! engine keeps one small `PolicySet` per purpose and [`Slices`] of it (kind of actor,
//! action, switches): the common policies that can apply to such a request, plus the
//! policies annotated `@purpose("<that purpose>")`.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::str::FromStr;

use cedar_policy::{
    AuthorizationError, Authorizer, Decision as CedarDecision, Effect, Policy, PolicyId,
    PolicySet, Schema, ValidationMode, Validator,
};
use miette::Diagnostic;
use model::View;

use crate::error::{PolicyError, SourceLocation};
use crate::facts::{CedarNames, RequestFacts};
use crate::memo::Memo;
use crate::slices::{Slices, Switches};
use crate::source::{DEFAULT_SOURCES, SCHEMA_TEXT, read_policy_dir};
use crate::{AccessQuery, Action, ActorKind, ApprovalKind, Approvals, Decision, Outcome};

/// Longest `@id`, in bytes: ids travel in every decision and log entry.
pub const POLICY_ID_BYTES_MAX: usize = 64;

/// The annotation naming a policy; required on every policy.
const ANNOTATION_ID: &str = "id";
/// The annotation explaining a forbid to a compliance officer; required on every forbid.
const ANNOTATION_REASON: &str = "reason";
/// The annotation naming the approval that lifts a forbid.
const ANNOTATION_APPROVAL: &str = "approval";
/// The annotation restricting a policy to requests of one purpose.
const ANNOTATION_PURPOSE: &str = "purpose";

/// A loaded, validated policy set, sliced by action and purpose. Cheap to share between
/// threads (`Send + Sync`); evaluation does not mutate it.
pub struct PolicyEngine {
    /// The (file name, text) pairs the set was built from, in load order.
    sources: Vec<(String, String)>,
    names: CedarNames,
    authorizer: Authorizer,
    /// Facts about each policy by id, in load order.
    policies: Vec<PolicyFacts>,
    index: HashMap<String, usize>,
    /// The policies without `@purpose`, sliced.
    common: Slices,
    /// Per purpose: common policies plus that purpose's, sliced.
    by_purpose: HashMap<String, Slices>,
    /// Decisions by the shape of their query; `None` when a policy names an entity other
    /// than an action, so that ids matter (see the `memo` module).
    memo: Option<Memo>,
}

impl std::fmt::Debug for PolicyEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyEngine")
            .field("policies", &self.policies.len())
            .field("purposes", &self.by_purpose.len())
            .field("memo", &self.memo.is_some())
            .finish()
    }
}

struct PolicyFacts {
    id: String,
    effect: Effect,
    reason: Option<String>,
    approval: Option<ApprovalKind>,
    /// The policy's text mentions neither `view` nor `approvals`, the only inputs that change
    /// between the tries of one decision: if it fires once, it fires at every try.
    same_at_every_try: bool,
}

impl PolicyFacts {
    /// A forbid that, once fired, denies the whole decision: no approval lifts it and no
    /// coarser view escapes it.
    fn settles_denial(&self) -> bool {
        self.effect == Effect::Forbid && self.approval.is_none() && self.same_at_every_try
    }
}

/// What Cedar answered for one try.
struct Evaluation {
    allowed: bool,
    /// Ids of the policies that determined the answer (permits if allowed, else forbids),
    /// sorted.
    deciding: Vec<String>,
}

impl PolicyEngine {
    /// The default policy set, `policies/` as it was at build time.
    pub fn default_set() -> Result<PolicyEngine, PolicyError> {
        let sources: Vec<(String, String)> = DEFAULT_SOURCES
            .iter()
            .map(|(name, text)| ((*name).to_owned(), (*text).to_owned()))
            .collect();
        PolicyEngine::from_sources(&sources)
    }

    /// An operator's policy set: every `*.cedar` file under `dir`, validated against the
    /// built-in schema.
    pub fn load_dir(dir: &Path) -> Result<PolicyEngine, PolicyError> {
        PolicyEngine::from_sources(&read_policy_dir(dir)?)
    }

    /// A policy set from (file name, text) pairs; file names appear in errors.
    pub fn from_sources(sources: &[(String, String)]) -> Result<PolicyEngine, PolicyError> {
        let (schema, _warnings) = Schema::from_cedarschema_str(SCHEMA_TEXT)
            .map_err(|error| PolicyError::BuiltInSchema(error.to_string()))?;
        let names = CedarNames::new();
        let mut all = PolicySet::new();
        let mut loaded: Vec<(Policy, Option<String>, PolicyFacts)> = Vec::new();
        let mut files: HashMap<String, (String, String)> = HashMap::new();
        for (file, text) in sources {
            for (policy, purpose, facts) in parse_file(file, text)? {
                if let Some((first, _)) = files.get(&facts.id) {
                    return Err(PolicyError::DuplicateId {
                        id: facts.id.clone(),
                        first: first.clone(),
                        second: file.clone(),
                    });
                }
                files.insert(facts.id.clone(), (file.clone(), text.clone()));
                // INVARIANT: ids are unique (checked just above), so adding cannot fail.
                all.add(policy.clone())
                    .map_err(|error| PolicyError::Annotation {
                        file: file.clone(),
                        id: facts.id.clone(),
                        message: error.to_string(),
                    })?;
                loaded.push((policy, purpose, facts));
            }
        }
        validate(&schema, &all, &files)?;

        let mut common = Slices::default();
        let mut purpose_policies: HashMap<String, Vec<&Policy>> = HashMap::new();
        for (policy, purpose, _) in &loaded {
            match purpose {
                None => common.add(&names, policy)?,
                Some(purpose) => purpose_policies
                    .entry(purpose.clone())
                    .or_default()
                    .push(policy),
            }
        }
        let mut by_purpose = HashMap::new();
        for (purpose, policies) in purpose_policies {
            let mut slices = common.clone();
            for policy in policies {
                slices.add(&names, policy)?;
            }
            by_purpose.insert(purpose, slices);
        }
        let names_entities = loaded.iter().any(|(policy, _, _)| names_an_entity(&names, policy));
        let policies: Vec<PolicyFacts> = loaded.into_iter().map(|(_, _, facts)| facts).collect();
        let index = policies
            .iter()
            .enumerate()
            .map(|(at, facts)| (facts.id.clone(), at))
            .collect();
        Ok(PolicyEngine {
            sources: sources.to_vec(),
            names,
            authorizer: Authorizer::new(),
            policies,
            index,
            common,
            by_purpose,
            memo: (!names_entities).then(Memo::default),
        })
    }

    /// Decides one (subject, field). Never fails: a Cedar error denies, with the error as
    /// the reason.
    ///
    /// A query of a shape decided before gets the same decision without Cedar (the `memo`
    /// module says why that is exact); `custos_policy_decisions_total{by}` counts both ways.
    pub fn decide(&self, query: &AccessQuery<'_>) -> Decision {
        let Some(memo) = &self.memo else {
            metrics::counter!("custos_policy_decisions_total", "by" => "cedar").increment(1);
            return self.evaluate_all(query).unwrap_or_else(|failed| failed);
        };
        let key = crate::memo::key(query);
        if let Some(known) = key.as_deref().and_then(|key| memo.get(key)) {
            metrics::counter!("custos_policy_decisions_total", "by" => "memo").increment(1);
            return known;
        }
        metrics::counter!("custos_policy_decisions_total", "by" => "cedar").increment(1);
        match self.evaluate_all(query) {
            Ok(decision) => {
                if let Some(key) = key {
                    memo.put(key, &decision);
                }
                decision
            }
            Err(failed) => failed,
        }
    }

    /// Whether decisions are remembered by their query's shape: no policy of the set names
    /// an entity other than an action.
    pub fn remembers_decisions(&self) -> bool {
        self.memo.is_some()
    }

    /// The decision from Cedar; `Err` for a decision ended by an error (an invalid request,
    /// a policy that could not be evaluated), whose reasons may name the query's entities.
    fn evaluate_all(&self, query: &AccessQuery<'_>) -> Result<Decision, Decision> {
        let facts = match RequestFacts::new(&self.names, query) {
            Ok(facts) => facts,
            Err(message) => {
                return Err(deny_with(Vec::new(), vec![format!("invalid request: {message}")]));
            }
        };
        let set = self.slice_for(query);
        let (field, tries) = match query.field {
            None => (String::new(), vec![None]),
            Some((kind, asked)) => {
                let Some(rank) = asked.rank(kind) else {
                    return Ok(deny_with(
                        Vec::new(),
                        vec![format!("view {asked} does not apply to {kind}")],
                    ));
                };
                // Finest first: the asked view, then each coarser one down to `exists`.
                let ladder = model::ladder(kind);
                (
                    kind.as_str().to_owned(),
                    ladder[..=rank]
                        .iter()
                        .rev()
                        .map(|view| Some(*view))
                        .collect(),
                )
            }
        };

        // First pass: the approvals as granted. The first view allowed wins.
        let mut forbids_by_try: Vec<Vec<String>> = Vec::with_capacity(tries.len());
        for view in &tries {
            let evaluation = match self.evaluate(set, &facts, query, &field, *view, query.approvals)
            {
                Ok(evaluation) => evaluation,
                Err(decision) => return Err(decision),
            };
            if evaluation.allowed {
                // The forbids that held back finer views decided the view too.
                let coarsening = union(&forbids_by_try);
                let mut reasons = self.reasons_of(&coarsening);
                reasons.extend(coarsened_sentence(query, *view, "highest view"));
                let mut policies = evaluation.deciding;
                extend_unique(&mut policies, coarsening);
                return Ok(Decision {
                    outcome: Outcome::Allow { view: *view },
                    policies,
                    reasons,
                });
            }
            let settled = evaluation
                .deciding
                .iter()
                .any(|id| self.facts(id).is_some_and(PolicyFacts::settles_denial));
            forbids_by_try.push(evaluation.deciding);
            if settled {
                return Ok(self.deny(query, &forbids_by_try));
            }
        }

        // Second pass: would the approvals not yet granted make it right? Approvals act only
        // by lifting forbids annotated `@approval`; when none fired, no approval can help and
        // the second pass is skipped (half the cost of a plain denial).
        let approvable_fired = forbids_by_try
            .iter()
            .flatten()
            .any(|id| self.facts(id).is_some_and(|facts| facts.approval.is_some()));
        if approvable_fired && query.approvals != Approvals::ALL {
            let mut hard_forbids_by_try: Vec<Vec<String>> = Vec::with_capacity(tries.len());
            for (at, view) in tries.iter().enumerate() {
                let evaluation =
                    match self.evaluate(set, &facts, query, &field, *view, Approvals::ALL) {
                        Ok(evaluation) => evaluation,
                        Err(decision) => return Err(decision),
                    };
                if !evaluation.allowed {
                    hard_forbids_by_try.push(evaluation.deciding);
                    continue;
                }
                let holding = &forbids_by_try[at];
                let mut needs: Vec<ApprovalKind> = holding
                    .iter()
                    .filter_map(|id| self.facts(id).and_then(|facts| facts.approval))
                    .collect();
                if needs.is_empty() {
                    // A permit that asks for approvals itself: name every approval missing.
                    needs = missing_approvals(query.approvals);
                }
                needs.sort();
                needs.dedup();
                let coarsening = union(&hard_forbids_by_try);
                let mut reasons = self.reasons_of(holding);
                extend_unique(&mut reasons, self.reasons_of(&coarsening));
                reasons.extend(coarsened_sentence(
                    query,
                    *view,
                    "highest view an approval would allow",
                ));
                let mut policies = holding.clone();
                extend_unique(&mut policies, evaluation.deciding);
                extend_unique(&mut policies, coarsening);
                return Ok(Decision {
                    outcome: Outcome::Pending { needs, view: *view },
                    policies,
                    reasons,
                });
            }
        }

        Ok(self.deny(query, &forbids_by_try))
    }

    /// The (file name, text) pairs this set was built from: what an operator edits.
    pub fn sources(&self) -> &[(String, String)] {
        &self.sources
    }

    /// The purposes some policy is restricted to (`@purpose`), sorted.
    pub fn purposes(&self) -> Vec<String> {
        let mut purposes: Vec<String> = self.by_purpose.keys().cloned().collect();
        purposes.sort();
        purposes
    }

    /// The string literals the policies test `<var>.<attr>` against with `contains`,
    /// `containsAny` or `containsAll`, sorted: `("principal", "roles")` gives every role the
    /// set names, `("resource", "labels")` every label. Roles and labels are open strings in
    /// the schema, so this is how a reader of the set (the record of processing) learns them.
    pub fn set_literals(&self, var: &str, attr: &str) -> BTreeSet<String> {
        fn literals(value: &serde_json::Value, into: &mut BTreeSet<String>) {
            match value {
                serde_json::Value::Object(object) => {
                    if let Some(serde_json::Value::String(literal)) = object.get("Value") {
                        into.insert(literal.clone());
                    }
                    object.values().for_each(|inner| literals(inner, into));
                }
                serde_json::Value::Array(items) => items.iter().for_each(|inner| literals(inner, into)),
                _ => {}
            }
        }
        fn walk(value: &serde_json::Value, var: &str, attr: &str, into: &mut BTreeSet<String>) {
            match value {
                serde_json::Value::Object(object) => {
                    for (operator, operands) in object {
                        let tested = operands
                            .get("left")
                            .and_then(|left| left.get("."))
                            .is_some_and(|access| access.get("left").and_then(|left| left.get("Var")).and_then(serde_json::Value::as_str) == Some(var) && access.get("attr").and_then(serde_json::Value::as_str) == Some(attr));
                        if tested && ["contains", "containsAny", "containsAll"].contains(&operator.as_str()) {
                            if let Some(right) = operands.get("right") {
                                literals(right, into);
                            }
                        }
                        walk(operands, var, attr, into);
                    }
                }
                serde_json::Value::Array(items) => items.iter().for_each(|inner| walk(inner, var, attr, into)),
                _ => {}
            }
        }
        let mut found = BTreeSet::new();
        for sets in self.by_purpose.values().chain(std::iter::once(&self.common)) {
            for policy in sets.all().flat_map(PolicySet::policies) {
                // A policy that cannot be written as JSON names nothing this can read.
                if let Ok(json) = policy.to_json() {
                    walk(&json, var, attr, &mut found);
                }
            }
        }
        found
    }

    /// Whether `id` names a permit policy of this set.
    pub fn is_permit(&self, id: &str) -> bool {
        self.facts(id).is_some_and(|facts| facts.effect == Effect::Permit)
    }

    /// Every policy id, in load order.
    pub fn policy_ids(&self) -> Vec<String> {
        self.policies.iter().map(|facts| facts.id.clone()).collect()
    }

    /// The published Cedar schema (`policies/custos.cedarschema`).
    pub fn schema_text() -> &'static str {
        SCHEMA_TEXT
    }

    /// The number of policies Cedar may meet for a request by this kind of actor with this
    /// action and purpose, whatever its switches (break-glass, cross-border, case,
    /// destination).
    pub fn slice_len(&self, kind: ActorKind, action: Action, purpose: &str) -> usize {
        self.slice_ids(kind, action, purpose).len()
    }

    /// The ids of those policies, sorted.
    pub fn slice_ids(&self, kind: ActorKind, action: Action, purpose: &str) -> Vec<String> {
        let ids: BTreeSet<String> = self.slices(purpose).any_switches(kind, action).map(|policy| policy.id().to_string()).collect();
        ids.into_iter().collect()
    }

    /// The ids of the policies Cedar evaluates for `query`, sorted.
    pub fn met_by(&self, query: &AccessQuery<'_>) -> Vec<String> {
        let mut ids: Vec<String> = self.slice_for(query).policies().map(|policy| policy.id().to_string()).collect();
        ids.sort();
        ids
    }

    /// Denied: every forbid that fired at any view tried, in the order met.
    fn deny(&self, query: &AccessQuery<'_>, forbids_by_try: &[Vec<String>]) -> Decision {
        // The forbids no approval lifts come first: they are why this is not pending.
        let mut policies = union(forbids_by_try);
        policies.sort_by_key(|id| self.facts(id).is_some_and(|facts| facts.approval.is_some()));
        let reasons = if policies.is_empty() {
            vec![match query.field {
                Some((kind, asked)) => format!(
                    "no policy permits {kind} at {asked} for purpose {}",
                    query.purpose
                ),
                None => format!(
                    "no policy permits {} for purpose {}",
                    query.action, query.purpose
                ),
            }]
        } else {
            self.reasons_of(&policies)
        };
        deny_with(policies, reasons)
    }

    fn slices(&self, purpose: &str) -> &Slices {
        self.by_purpose.get(purpose).unwrap_or(&self.common)
    }

    /// The policies Cedar evaluates for `query`.
    fn slice_for(&self, query: &AccessQuery<'_>) -> &PolicySet {
        self.slices(query.purpose).get(query.actor.kind, query.action, Switches::of(query))
    }

    fn facts(&self, id: &str) -> Option<&PolicyFacts> {
        self.index.get(id).map(|at| &self.policies[*at])
    }

    fn reasons_of(&self, ids: &[String]) -> Vec<String> {
        ids.iter()
            .filter_map(|id| self.facts(id))
            .filter(|facts| facts.effect == Effect::Forbid)
            .filter_map(|facts| facts.reason.clone())
            .collect()
    }

    /// One Cedar evaluation at `view`. A Cedar error ends the decision as a denial (the
    /// `Err`): a forbid that fails to evaluate must never let a request through.
    fn evaluate(
        &self,
        set: &PolicySet,
        facts: &RequestFacts,
        query: &AccessQuery<'_>,
        field: &str,
        view: Option<View>,
        approvals: Approvals,
    ) -> Result<Evaluation, Decision> {
        let view_name = view.map(|view| view.to_string()).unwrap_or_default();
        let context = facts
            .context(query, field, &view_name, approvals)
            .map_err(|message| {
                deny_with(Vec::new(), vec![format!("invalid request: {message}")])
            })?;
        let request = cedar_policy::Request::new(
            facts.principal.clone(),
            facts.action.clone(),
            facts.resource.clone(),
            context,
            None,
        )
        .map_err(|error| deny_with(Vec::new(), vec![format!("invalid request: {error}")]))?;
        let response = self
            .authorizer
            .is_authorized(&request, set, &facts.entities);
        let errors: Vec<(String, String)> = response
            .diagnostics()
            .errors()
            .map(|error| match error {
                AuthorizationError::PolicyEvaluationError(failed) => {
                    (failed.policy_id().to_string(), failed.to_string())
                }
            })
            .collect();
        if !errors.is_empty() {
            let policies = errors.iter().map(|(id, _)| id.clone()).collect();
            let reasons = errors
                .iter()
                .map(|(id, message)| format!("policy {id} could not be evaluated: {message}"))
                .collect();
            return Err(deny_with(policies, reasons));
        }
        let mut deciding: Vec<String> = response
            .diagnostics()
            .reason()
            .map(|id| id.to_string())
            .collect();
        deciding.sort();
        Ok(Evaluation {
            allowed: response.decision() == CedarDecision::Allow,
            deciding,
        })
    }
}

/// Whether `policy` names an entity other than an action (in its scope or as a literal in a
/// condition): then a decision depends on who or what the query's ids are, not only on
/// their shape. A policy that cannot be written as JSON counts as naming one.
fn names_an_entity(names: &CedarNames, policy: &Policy) -> bool {
    fn walk(value: &serde_json::Value, action_type: &str) -> bool {
        match value {
            serde_json::Value::Object(object) => {
                let entity_type = object.get("type").and_then(serde_json::Value::as_str);
                let named = entity_type.is_some_and(|entity_type| entity_type != action_type)
                    && object.get("id").is_some_and(serde_json::Value::is_string);
                named || object.values().any(|inner| walk(inner, action_type))
            }
            serde_json::Value::Array(items) => items.iter().any(|inner| walk(inner, action_type)),
            _ => false,
        }
    }
    match policy.to_json() {
        Ok(json) => walk(&json, &names.action_type()),
        Err(_) => true,
    }
}

fn deny_with(policies: Vec<String>, reasons: Vec<String>) -> Decision {
    Decision {
        outcome: Outcome::Deny,
        policies,
        reasons,
    }
}

/// The ids in `lists`, each once, in the order met.
fn union(lists: &[Vec<String>]) -> Vec<String> {
    let mut ids = Vec::new();
    for list in lists {
        extend_unique(&mut ids, list.iter().cloned());
    }
    ids
}

fn extend_unique(into: &mut Vec<String>, items: impl IntoIterator<Item = String>) {
    for item in items {
        if !into.contains(&item) {
            into.push(item);
        }
    }
}

/// "coarsened: email exact → masked (highest view for purpose support)" when `granted` is
/// coarser than the view asked for.
fn coarsened_sentence(
    query: &AccessQuery<'_>,
    granted: Option<View>,
    ceiling: &str,
) -> Option<String> {
    let (kind, asked) = query.field?;
    let granted = granted?;
    (granted != asked).then(|| {
        format!(
            "coarsened: {kind} {asked} → {granted} ({ceiling} for purpose {})",
            query.purpose
        )
    })
}

fn missing_approvals(granted: Approvals) -> Vec<ApprovalKind> {
    let mut missing = Vec::new();
    if !granted.independent {
        missing.push(ApprovalKind::Independent);
    }
    if !granted.custodian {
        missing.push(ApprovalKind::Custodian);
    }
    missing
}

/// Parses one file and checks its annotations; returns each policy renamed to its `@id`,
/// with its `@purpose`.
fn parse_file(
    file: &str,
    text: &str,
) -> Result<Vec<(Policy, Option<String>, PolicyFacts)>, PolicyError> {
    let set = PolicySet::from_str(text).map_err(|errors| {
        let offset = errors.iter().find_map(|error| first_offset(error));
        let message = errors
            .iter()
            .map(|error| diagnostic_message(error))
            .collect::<Vec<_>>()
            .join("; ");
        PolicyError::Syntax {
            at: SourceLocation::at_offset(file, text, offset),
            message,
        }
    })?;
    if let Some(template) = set.templates().next() {
        return Err(PolicyError::Annotation {
            file: file.to_owned(),
            id: template
                .annotation(ANNOTATION_ID)
                .unwrap_or("(no @id)")
                .to_owned(),
            message: "templates (?principal, ?resource) are not supported".to_owned(),
        });
    }
    // Cedar names the policies of a file policy0, policy1, … in text order.
    let mut policies: Vec<(usize, &Policy)> = set
        .policies()
        .map(|policy| {
            let position = policy
                .id()
                .to_string()
                .strip_prefix("policy")
                .and_then(|number| number.parse::<usize>().ok())
                .unwrap_or(usize::MAX);
            (position, policy)
        })
        .collect();
    policies.sort_by_key(|(position, _)| *position);

    let mut parsed = Vec::with_capacity(policies.len());
    for (position, policy) in policies {
        let effect = policy.effect();
        let effect_name = match effect {
            Effect::Permit => "permit",
            Effect::Forbid => "forbid",
        };
        let Some(id) = policy.annotation(ANNOTATION_ID) else {
            return Err(PolicyError::MissingId {
                file: file.to_owned(),
                position: position.saturating_add(1),
                effect: effect_name.to_owned(),
            });
        };
        let annotation_error = |message: String| PolicyError::Annotation {
            file: file.to_owned(),
            id: id.to_owned(),
            message,
        };
        if !is_policy_id(id) {
            return Err(annotation_error(format!(
                "@id must be kebab-case (a-z, 0-9, -), at most {POLICY_ID_BYTES_MAX} bytes"
            )));
        }
        let reason = policy.annotation(ANNOTATION_REASON).map(str::to_owned);
        if effect == Effect::Forbid
            && reason
                .as_deref()
                .is_none_or(|reason| reason.trim().is_empty())
        {
            return Err(annotation_error(
                "a forbid needs a @reason(\"…\") sentence".to_owned(),
            ));
        }
        let approval = match policy.annotation(ANNOTATION_APPROVAL) {
            None => None,
            Some(_) if effect == Effect::Permit => {
                return Err(annotation_error(
                    "@approval only applies to forbid policies".to_owned(),
                ));
            }
            Some(value) => Some(ApprovalKind::parse(value).ok_or_else(|| {
                annotation_error(format!(
                    "@approval must be \"independent\" or \"custodian\", not \"{value}\""
                ))
            })?),
        };
        let purpose = match policy.annotation(ANNOTATION_PURPOSE) {
            None => None,
            Some(value) if is_purpose(value) => Some(value.to_owned()),
            Some(value) => {
                return Err(annotation_error(format!(
                    "@purpose must be one purpose name (a-z, 0-9, _), not \"{value}\""
                )));
            }
        };
        let renamed = policy.new_id(PolicyId::new(id));
        parsed.push((
            renamed,
            purpose,
            PolicyFacts {
                id: id.to_owned(),
                effect,
                reason,
                approval,
                same_at_every_try: !mentions_a_varying_input(&policy.to_string()),
            },
        ));
    }
    Ok(parsed)
}

/// Strict validation of the whole set; the first error names its file, line and policy.
fn validate(
    schema: &Schema,
    set: &PolicySet,
    files: &HashMap<String, (String, String)>,
) -> Result<(), PolicyError> {
    let validator = Validator::new(schema.clone());
    let result = validator.validate(set, ValidationMode::Strict);
    let mut errors: Vec<_> = result.validation_errors().collect();
    // Report the same error first whatever order the validator found them in.
    errors.sort_by_key(|error| {
        let id = error.policy_id().to_string();
        let file = files
            .get(&id)
            .map(|(file, _)| file.clone())
            .unwrap_or_default();
        (file, first_offset(*error).unwrap_or(0))
    });
    let Some(error) = errors.first() else {
        return Ok(());
    };
    let id = error.policy_id().to_string();
    let at = match files.get(&id) {
        Some((file, text)) => SourceLocation::at_offset(file, text, first_offset(*error)),
        None => SourceLocation {
            file: String::new(),
            line: None,
        },
    };
    Err(PolicyError::Schema {
        at,
        id,
        message: diagnostic_message(*error),
    })
}

/// The byte offset of the first labelled span of a Cedar diagnostic.
fn first_offset(diagnostic: &dyn Diagnostic) -> Option<usize> {
    diagnostic.labels()?.next().map(|label| label.offset())
}

/// A diagnostic's message with its label and help, on one line.
fn diagnostic_message(diagnostic: &dyn Diagnostic) -> String {
    let mut message = diagnostic.to_string();
    let first_label = diagnostic.labels().and_then(|mut labels| labels.next());
    if let Some(text) = first_label.as_ref().and_then(|label| label.label()) {
        message.push_str(&format!(" ({text})"));
    }
    if let Some(help) = diagnostic.help() {
        message.push_str(&format!("; help: {help}"));
    }
    message
}

/// Whether a policy's text may read the inputs that vary between tries (`context.view`,
/// `context.approvals`). Conservative: any occurrence of the words counts, in comments and
/// annotations too, which only costs the shortcut.
fn mentions_a_varying_input(text: &str) -> bool {
    text.contains("view") || text.contains("approvals")
}

fn is_policy_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= POLICY_ID_BYTES_MAX
        && id
            .bytes()
            .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-')
        && !id.starts_with('-')
        && !id.ends_with('-')
}

fn is_purpose(purpose: &str) -> bool {
    !purpose.is_empty()
        && purpose.len() <= POLICY_ID_BYTES_MAX
        && purpose
            .bytes()
            .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'_')
}

#[cfg(test)]
mod tests {
    use model::FieldKind;

    use super::*;
    use crate::{Actor, CaseFacts, SubjectFacts};

    /// Every policy of the default set that applies to `purpose` (no `@purpose`, or that
    /// one), in one `PolicySet`: what Cedar would meet without slices.
    fn whole_set(engine: &PolicyEngine, purpose: &str) -> PolicySet {
        let mut set = PolicySet::new();
        for (file, text) in engine.sources() {
            for (policy, policy_purpose, _) in parse_file(file, text).expect("default set parses") {
                if policy_purpose.as_deref().is_none_or(|only| only == purpose) {
                    set.add(policy).expect("ids are unique");
                }
            }
        }
        set
    }

    fn actor(kind: ActorKind, roles: &[&str]) -> Actor {
        Actor {
            id: "actor-1".to_owned(),
            kind,
            roles: roles.iter().map(|role| (*role).to_owned()).collect(),
            team: "team".to_owned(),
            entity: "platform-us".to_owned(),
            country: "US".to_owned(),
            region: "us".to_owned(),
        }
    }

    fn case(purpose: &str, open: bool, assigned: bool, requested: bool) -> CaseFacts {
        CaseFacts {
            id: "case-1".to_owned(),
            purpose: purpose.to_owned(),
            open,
            assignees: if assigned { vec!["actor-1".to_owned()] } else { Vec::new() },
            subjects: vec!["subject-1".to_owned()],
            requested_by: requested.then(|| "subject-1".to_owned()),
            legal_process_validated: true,
            destinations: vec!["vault://legal".to_owned()],
        }
    }

    /// Cedar answers the same (decision, deciding policies, errors) from the slice a request
    /// meets as from the whole set, over a grid of requests that turns every switch both
    /// ways: leaving a policy out of a slice never changes an answer.
    #[test]
    fn a_slice_answers_as_the_whole_set() {
        let engine = PolicyEngine::default_set().expect("default set loads");
        let actors = [
            actor(ActorKind::Staff, &["support_agent"]),
            actor(ActorKind::Staff, &["sre", "internal_audit"]),
            actor(ActorKind::Machine, &["app_function"]),
        ];
        let purposes = ["support", "internal_investigation", "security_incident", "app_function", "legal_request", "unknown"];
        let labels = [Vec::new(), vec!["journalist".to_owned()], vec!["staff".to_owned()]];
        let fields = [(FieldKind::Email, View::Masked), (FieldKind::IpAddress, View::Exact), (FieldKind::IpAddress, View::Country)];
        let mut compared = 0;
        let mut pruned = 0;
        for actor in &actors {
            for action in Action::ALL {
                for purpose in purposes {
                    let whole = whole_set(&engine, purpose);
                    let cases = [None, Some(case(purpose, true, true, true)), Some(case("support", false, false, false))];
                    for case in &cases {
                        for labels in &labels {
                            let subject = SubjectFacts { id: "subject-1".to_owned(), region: "us".to_owned(), labels: labels.clone() };
                            for bits in 0..8u8 {
                                for field in fields {
                                    let query = AccessQuery {
                                        actor,
                                        action,
                                        purpose,
                                        case: case.as_ref(),
                                        subject: &subject,
                                        field: (action != Action::AccountControl).then_some(field),
                                        destination: (bits & 4 != 0).then_some("vault://legal"),
                                        break_glass: bits & 1 != 0,
                                        cross_border: bits & 2 != 0,
                                        approvals: Approvals { independent: bits & 1 != 0, custodian: false },
                                    };
                                    let facts = RequestFacts::new(&engine.names, &query).expect("facts build");
                                    let sliced = engine.slice_for(&query);
                                    let (field_name, view) = match query.field {
                                        Some((kind, view)) => (kind.as_str().to_owned(), Some(view)),
                                        None => (String::new(), None),
                                    };
                                    let answer = |set: &PolicySet| match engine.evaluate(set, &facts, &query, &field_name, view, query.approvals) {
                                        Ok(evaluation) => format!("{} {:?}", evaluation.allowed, evaluation.deciding),
                                        Err(decision) => format!("error {decision:?}"),
                                    };
                                    assert_eq!(answer(sliced), answer(&whole), "{query:?}");
                                    compared += 1;
                                    pruned += whole.policies().count() - sliced.policies().count();
                                }
                            }
                        }
                    }
                }
            }
        }
        assert!(compared > 10_000, "{compared} requests compared");
        assert!(pruned > 0, "no request met fewer policies than the whole set");
    }

    /// `query` with every id renamed: the actor, the subject and the case, and the same
    /// renaming inside the case's lists.
    fn renamed(actor: &Actor, case: Option<&CaseFacts>, subject: &SubjectFacts, suffix: &str) -> (Actor, Option<CaseFacts>, SubjectFacts) {
        let rename = |id: &String| format!("{id}-{suffix}");
        let actor = Actor { id: rename(&actor.id), ..actor.clone() };
        let case = case.map(|case| CaseFacts {
            id: rename(&case.id),
            assignees: case.assignees.iter().map(rename).collect(),
            subjects: case.subjects.iter().map(rename).collect(),
            requested_by: case.requested_by.as_ref().map(rename),
            ..case.clone()
        });
        let subject = SubjectFacts { id: rename(&subject.id), ..subject.clone() };
        (actor, case, subject)
    }

    /// What the memo answers is what Cedar answers: over a grid of queries that turns every
    /// switch both ways, each query is asked once under its ids (Cedar decides, the memo
    /// keeps it) and once under other ids (the memo answers), and both answers are compared
    /// with Cedar's own for the renamed query.
    #[test]
    fn a_remembered_decision_is_cedars() {
        let engine = PolicyEngine::default_set().expect("default set loads");
        assert!(engine.remembers_decisions(), "the default set names no staff, subject or case");
        let actors = [
            actor(ActorKind::Staff, &["support_agent"]),
            actor(ActorKind::Staff, &["sre", "internal_audit"]),
            actor(ActorKind::Staff, &["privacy_officer", "legal"]),
            actor(ActorKind::Machine, &["app_function"]),
        ];
        let purposes = ["support", "internal_investigation", "legal_request", "app_function", "analytics"];
        let labels = [Vec::new(), vec!["journalist".to_owned()], vec!["staff".to_owned()]];
        let fields = [(FieldKind::Email, View::Exact), (FieldKind::IpAddress, View::Exact), (FieldKind::IpAddress, View::Country)];
        let mut compared = 0;
        let mut pending_or_coarsened = 0;
        for actor in &actors {
            for action in Action::ALL {
                for purpose in purposes {
                    let cases = [
                        None,
                        Some(case(purpose, true, true, true)),
                        Some(case(purpose, true, true, false)),
                        Some(case(purpose, true, false, true)),
                        Some(CaseFacts { subjects: Vec::new(), ..case(purpose, true, true, false) }),
                        Some(CaseFacts { requested_by: Some("someone-else".to_owned()), ..case(purpose, true, true, false) }),
                        Some(case(purpose, false, true, true)),
                    ];
                    for case in &cases {
                        for labels in &labels {
                            let subject = SubjectFacts { id: "subject-1".to_owned(), region: "us".to_owned(), labels: labels.clone() };
                            for bits in 0..16u8 {
                                for field in fields {
                                    let field = (action != Action::AccountControl).then_some(field);
                                    let ask = |actor: &Actor, case: Option<&CaseFacts>, subject: &SubjectFacts, fresh: bool| {
                                        let query = AccessQuery {
                                            actor,
                                            action,
                                            purpose,
                                            case,
                                            subject,
                                            field,
                                            destination: (bits & 4 != 0).then_some("vault://legal"),
                                            break_glass: bits & 1 != 0,
                                            cross_border: bits & 2 != 0,
                                            approvals: Approvals { independent: bits & 8 != 0, custodian: bits & 1 != 0 },
                                        };
                                        if fresh { engine.evaluate_all(&query).unwrap_or_else(|failed| failed) } else { engine.decide(&query) }
                                    };
                                    let first = ask(actor, case.as_ref(), &subject, false);
                                    assert_eq!(first, ask(actor, case.as_ref(), &subject, true));
                                    let (other_actor, other_case, other_subject) = renamed(actor, case.as_ref(), &subject, "other");
                                    let remembered = ask(&other_actor, other_case.as_ref(), &other_subject, false);
                                    let cedar = ask(&other_actor, other_case.as_ref(), &other_subject, true);
                                    assert_eq!(remembered, cedar, "{actor:?} {action} {purpose} {case:?} {labels:?} {bits} {field:?}");
                                    compared += 1;
                                    if !matches!(cedar.outcome, Outcome::Deny) && cedar.reasons.iter().any(|reason| !reason.is_empty()) {
                                        pending_or_coarsened += 1;
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        assert!(compared > 20_000, "{compared} queries compared");
        assert!(pending_or_coarsened > 0, "the grid never met a pending or coarsened decision");
        let memo = engine.memo.as_ref().expect("memo on");
        assert!(memo.len() > 100, "{} shapes remembered", memo.len());
    }

    /// A shape differs whenever a fact Cedar sees differs, including how the ids relate:
    /// assigned or not, in scope or not, requested by this subject or another.
    #[test]
    fn shapes_tell_apart_what_cedar_can() {
        let staff = actor(ActorKind::Staff, &["support_agent"]);
        let subject = SubjectFacts { id: "subject-1".to_owned(), region: "us".to_owned(), labels: Vec::new() };
        let base = case("support", true, true, true);
        let variants = [
            base.clone(),
            CaseFacts { assignees: Vec::new(), ..base.clone() },
            CaseFacts { assignees: vec!["someone".to_owned()], ..base.clone() },
            CaseFacts { subjects: Vec::new(), ..base.clone() },
            CaseFacts { requested_by: None, ..base.clone() },
            CaseFacts { requested_by: Some("someone".to_owned()), ..base.clone() },
            CaseFacts { open: false, ..base.clone() },
            CaseFacts { legal_process_validated: false, ..base.clone() },
            CaseFacts { destinations: Vec::new(), ..base.clone() },
            CaseFacts { purpose: "legal_request".to_owned(), ..base.clone() },
        ];
        let query = |actor: &Actor, case: &CaseFacts, subject: &SubjectFacts| {
            crate::memo::key(&AccessQuery {
                actor,
                action: Action::Read,
                purpose: "support",
                case: Some(case),
                subject,
                field: Some((FieldKind::Email, View::Masked)),
                destination: None,
                break_glass: false,
                cross_border: false,
                approvals: Approvals::default(),
            })
            .expect("few ids")
        };
        let keys: BTreeSet<Vec<u8>> = variants.iter().map(|case| query(&staff, case, &subject)).collect();
        assert_eq!(keys.len(), variants.len());
        // The same shape under other ids is the same key.
        let (other_actor, other_case, other_subject) = renamed(&staff, Some(&base), &subject, "2");
        assert_eq!(query(&staff, &base, &subject), query(&other_actor, &other_case.expect("case"), &other_subject));
        // An actor whose id happens to equal the subject's is still two entities (two types).
        let same_id = Actor { id: "subject-1".to_owned(), ..staff.clone() };
        let same_case = CaseFacts { assignees: vec!["subject-1".to_owned()], ..base.clone() };
        assert_eq!(query(&staff, &base, &subject), query(&same_id, &same_case, &subject));
        // Too many ids: not remembered.
        let crowded = CaseFacts { subjects: (0..40).map(|n| format!("s-{n}")).collect(), ..base.clone() };
        assert!(crate::memo::key(&AccessQuery {
            actor: &staff,
            action: Action::Read,
            purpose: "support",
            case: Some(&crowded),
            subject: &subject,
            field: None,
            destination: None,
            break_glass: false,
            cross_border: false,
            approvals: Approvals::default(),
        })
        .is_none());
    }

    /// A support agent `id`, assigned to subject-1's own ticket, reading its email masked.
    fn agent_reads(engine: &PolicyEngine, id: &str) -> Decision {
        let actor = Actor { id: id.to_owned(), ..actor(ActorKind::Staff, &["support_agent"]) };
        let case = CaseFacts { assignees: vec![id.to_owned()], ..case("support", true, true, true) };
        let subject = SubjectFacts { id: "subject-1".to_owned(), region: "us".to_owned(), labels: Vec::new() };
        engine.decide(&AccessQuery {
            actor: &actor,
            action: Action::Read,
            purpose: "support",
            case: Some(&case),
            subject: &subject,
            field: Some((FieldKind::Email, View::Masked)),
            destination: None,
            break_glass: false,
            cross_border: false,
            approvals: Approvals::default(),
        })
    }

    /// The default set and a forbid naming the staff member `mallory`.
    fn naming_mallory() -> PolicyEngine {
        let mut sources = PolicyEngine::default_set().expect("default set loads").sources().to_vec();
        sources.push((
            "mallory.cedar".to_owned(),
            "@id(\"deny-mallory\")\n@reason(\"mallory is suspended\")\nforbid (principal == Custos::Staff::\"mallory\", action, resource);\n".to_owned(),
        ));
        PolicyEngine::from_sources(&sources).expect("set loads")
    }

    /// A set that names a person decides by who they are: the memo stays off, and the named
    /// actor is refused where an actor of the same shape is allowed.
    #[test]
    fn a_policy_naming_an_entity_turns_the_memo_off() {
        let engine = naming_mallory();
        assert!(!engine.remembers_decisions());
        let ask = |id: &str| agent_reads(&engine, id);
        assert!(matches!(ask("alice").outcome, Outcome::Allow { .. }), "{:?}", ask("alice"));
        let mallory = ask("mallory");
        assert_eq!(mallory.outcome, Outcome::Deny);
        assert!(mallory.policies.contains(&"deny-mallory".to_owned()));
        assert!(matches!(ask("alice").outcome, Outcome::Allow { .. }));
        // A condition naming a subject counts too; an action does not.
        for (text, names) in [
            ("forbid (principal, action, resource) when { resource == Custos::Subject::\"vip\" };", true),
            ("forbid (principal, action, resource) when { context has case && context.case == Custos::Case::\"C-1\" };", true),
            ("forbid (principal, action == Custos::Action::\"export\", resource) when { context.break_glass };", false),
        ] {
            let mut sources = PolicyEngine::default_set().expect("default set loads").sources().to_vec();
            sources.push(("extra.cedar".to_owned(), format!("@id(\"extra\")\n@reason(\"extra\")\n{text}\n")));
            let engine = PolicyEngine::from_sources(&sources).expect("set loads");
            assert_eq!(engine.remembers_decisions(), !names, "{text}");
        }
    }

    /// Each decision is counted once, by the way it was made: Cedar for a new shape, the
    /// memo for a shape seen before, Cedar always when the memo is off.
    #[test]
    fn decisions_are_counted_by_how_they_were_made() {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let _recording = metrics::set_default_local_recorder(&recorder);
        let count = |by: &str| {
            let text = handle.render();
            let name = format!("custos_policy_decisions_total{{by=\"{by}\"}} ");
            text.lines()
                .find_map(|line| line.strip_prefix(name.as_str()))
                .map_or(0, |value| value.trim().parse::<u64>().expect("a count"))
        };
        let engine = PolicyEngine::default_set().expect("default set loads");
        for id in ["ana", "bo", "cy"] {
            agent_reads(&engine, id);
        }
        assert_eq!((count("cedar"), count("memo")), (1, 2));
        let naming = naming_mallory();
        agent_reads(&naming, "ana");
        agent_reads(&naming, "ana");
        assert_eq!((count("cedar"), count("memo")), (3, 2));
    }
}
