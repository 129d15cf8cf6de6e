//! Cuts a policy set into the small sets Cedar evaluates: one per kind of actor, action and
//! combination of [`Switches`].
//!
//! Cedar evaluates every policy of the set it is given (about 1.1 µs each here), so a policy
//! that cannot apply to a request should not be in its set. Three things say a policy cannot
//! apply, and all three are read from the policy itself:
//! - its scope names the other kind of actor (`principal is Custos::Machine`);
//! - its scope names other actions (`action == Custos::Action::"export"`);
//! - its first `when` clause opens with a test of a switch that the request has the other
//!   way (`when { context.break_glass && … }` for a request without break-glass).
//!
//! The last one is exact, not a heuristic. Cedar evaluates a policy as
//! `scope && when₁ && … && !unless₁ && …`, left to right, stopping at the first false. The
//! scope's tests (`is`, `==`, `in`) cannot fail, and neither can a switch test: `break_glass`
//! and `cross_border` are required booleans of the context and `has` never fails. So a policy
//! whose leading switch test is false for a request neither fires nor fails on it, and
//! leaving it out of the set changes no answer, no deciding policy and no error.

use cedar_policy::{ActionConstraint, Policy, PolicySet, PrincipalConstraint};
use serde_json::Value;

use crate::error::PolicyError;
use crate::facts::CedarNames;
use crate::{AccessQuery, Action, ActorKind};

/// A request's facts that are the same at every try of one decision and that policies test
/// first: each is one bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Switches(u8);

/// The switches with the context test that reads each.
const SWITCHES: [(Switch, SwitchTest); 4] = [
    (Switch::BreakGlass, SwitchTest::Attribute("break_glass")),
    (Switch::CrossBorder, SwitchTest::Attribute("cross_border")),
    (Switch::Case, SwitchTest::Has("case")),
    (Switch::Destination, SwitchTest::Has("destination")),
];

/// The number of combinations of switches.
const SWITCH_COMBINATIONS: usize = 1 << SWITCHES.len();

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Switch {
    BreakGlass,
    CrossBorder,
    Case,
    Destination,
}

/// How a policy reads a switch: `context.<name>` or `context has <name>`.
#[derive(Debug, Clone, Copy)]
enum SwitchTest {
    Attribute(&'static str),
    Has(&'static str),
}

impl Switch {
    /// The switch's bit in [`Switches`]: its place in the enum.
    fn bit(self) -> u8 {
        1 << self as u8
    }
}

impl Switches {
    /// The switches of `query`, as the context built for it sets them.
    pub(crate) fn of(query: &AccessQuery<'_>) -> Switches {
        let mut bits = 0;
        for (switch, on) in [
            (Switch::BreakGlass, query.break_glass),
            (Switch::CrossBorder, query.cross_border),
            (Switch::Case, query.case.is_some()),
            (Switch::Destination, query.destination.is_some()),
        ] {
            if on {
                bits |= switch.bit();
            }
        }
        Switches(bits)
    }

    fn all() -> impl Iterator<Item = Switches> {
        (0..SWITCH_COMBINATIONS).map(|bits| Switches(bits as u8))
    }

    fn index(self) -> usize {
        usize::from(self.0)
    }

    fn meets(self, requirements: &[(Switch, bool)]) -> bool {
        requirements
            .iter()
            .all(|(switch, on)| (self.0 & switch.bit() != 0) == *on)
    }
}

/// One `PolicySet` per (kind of actor, action, switches).
#[derive(Debug, Clone)]
pub(crate) struct Slices(Vec<PolicySet>);

impl Default for Slices {
    fn default() -> Slices {
        Slices(vec![
            PolicySet::new();
            ActorKind::ALL.len() * Action::ALL.len() * SWITCH_COMBINATIONS
        ])
    }
}

impl Slices {
    /// Adds `policy` to every slice whose requests it can apply to.
    pub(crate) fn add(&mut self, names: &CedarNames, policy: &Policy) -> Result<(), PolicyError> {
        let requirements = switch_requirements(policy);
        for kind in kinds_of(names, policy) {
            for action in actions_of(names, policy) {
                for switches in Switches::all().filter(|switches| switches.meets(&requirements)) {
                    let set = &mut self.0[slot(kind, action, switches)];
                    set.add(policy.clone())
                        .map_err(|error| PolicyError::Annotation {
                            file: String::new(),
                            id: policy.id().to_string(),
                            message: error.to_string(),
                        })?;
                }
            }
        }
        Ok(())
    }

    pub(crate) fn get(&self, kind: ActorKind, action: Action, switches: Switches) -> &PolicySet {
        &self.0[slot(kind, action, switches)]
    }

    /// Every policy some request by `kind` with `action` may meet, whatever its switches.
    pub(crate) fn any_switches(&self, kind: ActorKind, action: Action) -> impl Iterator<Item = &Policy> {
        Switches::all().flat_map(move |switches| self.get(kind, action, switches).policies())
    }

    pub(crate) fn all(&self) -> impl Iterator<Item = &PolicySet> {
        self.0.iter()
    }
}

fn slot(kind: ActorKind, action: Action, switches: Switches) -> usize {
    (kind.index() * Action::ALL.len() + action.index()) * SWITCH_COMBINATIONS + switches.index()
}

/// The kinds of actor a policy's scope admits: the one its principal's type names
/// (`principal is`, `==`), else both.
fn kinds_of(names: &CedarNames, policy: &Policy) -> Vec<ActorKind> {
    let type_name = match policy.principal_constraint() {
        PrincipalConstraint::Is(type_name) | PrincipalConstraint::IsIn(type_name, _) => Some(type_name),
        PrincipalConstraint::Eq(uid) => Some(uid.type_name().clone()),
        PrincipalConstraint::Any | PrincipalConstraint::In(_) => None,
    };
    match type_name.and_then(|type_name| names.actor_kind_of(&type_name)) {
        Some(kind) => vec![kind],
        None => ActorKind::ALL.to_vec(),
    }
}

/// The actions a policy's scope admits.
fn actions_of(names: &CedarNames, policy: &Policy) -> Vec<Action> {
    match policy.action_constraint() {
        ActionConstraint::Any => Action::ALL.to_vec(),
        ActionConstraint::Eq(uid) => names.action_of(&uid).into_iter().collect(),
        ActionConstraint::In(uids) => uids.iter().filter_map(|uid| names.action_of(uid)).collect(),
    }
}

/// What `policy` requires of the switches before it can fire: the switch tests its first
/// condition opens with, when that condition is a `when`, up to the first conjunct that
/// tests anything else. Empty when the policy opens otherwise (or cannot be read as JSON,
/// which only costs the shortcut).
fn switch_requirements(policy: &Policy) -> Vec<(Switch, bool)> {
    let Ok(json) = policy.to_json() else {
        return Vec::new();
    };
    let Some(first) = json.get("conditions").and_then(Value::as_array).and_then(|conditions| conditions.first()) else {
        return Vec::new();
    };
    if first.get("kind").and_then(Value::as_str) != Some("when") {
        return Vec::new();
    }
    let Some(body) = first.get("body") else {
        return Vec::new();
    };
    let mut conjuncts = Vec::new();
    flatten_and(body, &mut conjuncts);
    conjuncts.into_iter().map_while(switch_test).collect()
}

/// The operands of a chain of `&&`, in the order Cedar evaluates them.
fn flatten_and<'a>(expression: &'a Value, into: &mut Vec<&'a Value>) {
    match expression.get("&&") {
        Some(and) => {
            for side in ["left", "right"] {
                if let Some(operand) = and.get(side) {
                    flatten_and(operand, into);
                }
            }
        }
        None => into.push(expression),
    }
}

/// `context.<switch>`, `!context.<switch>`, `context has <switch>` or
/// `!(context has <switch>)`: the switch and the value that makes the test true.
fn switch_test(expression: &Value) -> Option<(Switch, bool)> {
    if let Some(negated) = expression.get("!").and_then(|not| not.get("arg")) {
        return switch_test(negated).map(|(switch, on)| (switch, !on));
    }
    let (operator, operands) = match expression.as_object()?.iter().next()? {
        (operator, operands) if operator == "." || operator == "has" => (operator.as_str(), operands),
        _ => return None,
    };
    if operands.get("left")?.get("Var")?.as_str()? != "context" {
        return None;
    }
    let attribute = operands.get("attr")?.as_str()?;
    SWITCHES.iter().find_map(|(switch, test)| {
        let matches = match test {
            SwitchTest::Attribute(name) => operator == "." && attribute == *name,
            SwitchTest::Has(name) => operator == "has" && attribute == *name,
        };
        matches.then_some((*switch, true))
    })
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    fn requirements(text: &str) -> Vec<(Switch, bool)> {
        switch_requirements(&Policy::from_str(text).expect("policy parses"))
    }

    #[test]
    fn leading_switch_tests_are_requirements() {
        assert_eq!(
            requirements("forbid (principal, action, resource) when { !context.break_glass && !(context has case) };"),
            vec![(Switch::BreakGlass, false), (Switch::Case, false)]
        );
        assert_eq!(
            requirements("permit (principal, action, resource) when { context.cross_border && context has destination && context.view == \"exact\" };"),
            vec![(Switch::CrossBorder, true), (Switch::Destination, true)]
        );
    }

    #[test]
    fn tests_after_anything_else_are_not_requirements() {
        // `principal.roles` may fail for an entity without it: the switch after it is not
        // reached first, so it cannot be relied on.
        assert_eq!(
            requirements("permit (principal, action, resource) when { principal.roles.contains(\"sre\") && context.break_glass };"),
            vec![]
        );
        // Only the first condition, and only a `when`.
        assert_eq!(
            requirements("forbid (principal, action, resource) unless { context.break_glass };"),
            vec![]
        );
        assert_eq!(
            requirements("forbid (principal, action, resource) when { context.purpose == \"x\" } when { context.break_glass };"),
            vec![]
        );
        // A disjunction is not a requirement of either side.
        assert_eq!(
            requirements("forbid (principal, action, resource) when { context.break_glass || context.cross_border };"),
            vec![]
        );
        // Not a switch: an attribute of something other than the context.
        assert_eq!(
            requirements("forbid (principal, action, resource) when { principal.break_glass };"),
            vec![]
        );
    }
}
