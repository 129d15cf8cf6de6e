//! Who may see what: Cedar policies deciding staff and service access to personal data.
//!
//! The service fills an [`AccessQuery`] per (subject, field) with plain facts (the actor, the
//! subject's region and labels, the case, the approvals already granted) and asks
//! [`PolicyEngine::decide`]. The answer is the view granted (possibly coarser than asked), a
//! denial with reasons, or pending (an approval would allow it), always naming the policies
//! that decided. The default policy set and its schema live in the repository's `policies/`
//! directory; operators replace or extend it and check it with [`PolicyEngine::load_dir`] and
//! [`run_policy_tests`]. docs/policy.md describes the rules and the algorithm.
//!
//! No IO except reading a policy or test directory; evaluation never fails (Cedar errors
//! deny).

mod engine;
mod error;
mod facts;
mod memo;
mod slices;
mod source;
mod table;

pub use engine::{POLICY_ID_BYTES_MAX, PolicyEngine};
pub use error::{PolicyError, SourceLocation};
pub use table::{TestFailure, TestReport, run_policy_tests};

pub use source::{POLICY_DIR_DEPTH_MAX, POLICY_FILE_BYTES_MAX, POLICY_FILES_MAX};
pub use table::{TEST_CASES_MAX, TEST_FILE_BYTES_MAX};

use model::{FieldKind, View};
use serde::{Deserialize, Serialize};

/// Who asks: a person or a platform service, with the facts HR or the service registry holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub id: String,
    pub kind: ActorKind,
    pub roles: Vec<String>,
    /// The actor's team, `""` when unknown.
    pub team: String,
    /// The employing legal entity, e.g. `"parentco-cn"`.
    pub entity: String,
    /// ISO 3166-1 alpha-2 country the actor works from.
    pub country: String,
    /// The actor's home region (the region of its entity).
    pub region: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    Staff,
    Machine,
}

impl ActorKind {
    pub const ALL: [ActorKind; 2] = [ActorKind::Staff, ActorKind::Machine];

    fn index(self) -> usize {
        match self {
            ActorKind::Staff => 0,
            ActorKind::Machine => 1,
        }
    }
}

/// The subject whose data is asked for: where it lives and how it is protected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubjectFacts {
    pub id: String,
    pub region: String,
    pub labels: Vec<String>,
}

/// The case that explains an access.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseFacts {
    pub id: String,
    pub purpose: String,
    pub open: bool,
    /// Staff ids assigned to the case.
    pub assignees: Vec<String>,
    /// Subject ids in the case's scope.
    pub subjects: Vec<String>,
    /// The subject who opened the case, when a subject did.
    pub requested_by: Option<String>,
    pub legal_process_validated: bool,
    /// Where exports for this case may go.
    pub destinations: Vec<String>,
}

/// What the actor wants to do with the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Read,
    Search,
    Export,
    AccountControl,
}

impl Action {
    pub const ALL: [Action; 4] = [
        Action::Read,
        Action::Search,
        Action::Export,
        Action::AccountControl,
    ];

    /// The Cedar action id: `read`, `search`, `export`, `account_control`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Search => "search",
            Action::Export => "export",
            Action::AccountControl => "account_control",
        }
    }

    fn index(self) -> usize {
        match self {
            Action::Read => 0,
            Action::Search => 1,
            Action::Export => 2,
            Action::AccountControl => 3,
        }
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Approvals already granted for this request, as the service computed them (the custodian is
/// the privacy officer of the subject's region).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approvals {
    pub independent: bool,
    pub custodian: bool,
}

impl Approvals {
    /// Every approval granted: what the engine assumes to find out whether a request is
    /// pending rather than denied.
    pub const ALL: Approvals = Approvals {
        independent: true,
        custodian: true,
    };
}

/// One question to the engine: may this actor have this field of this subject?
#[derive(Debug, Clone, Copy)]
pub struct AccessQuery<'a> {
    pub actor: &'a Actor,
    pub action: Action,
    pub purpose: &'a str,
    pub case: Option<&'a CaseFacts>,
    pub subject: &'a SubjectFacts,
    /// The field and the view asked for. For account_control, `field` is None.
    pub field: Option<(FieldKind, View)>,
    /// Where an export goes.
    pub destination: Option<&'a str>,
    pub break_glass: bool,
    /// Computed by the service: actor's region != subject region, or the country the actor
    /// works from right now is not one of the subject region's countries.
    pub cross_border: bool,
    /// Approvals already granted for this request.
    pub approvals: Approvals,
}

/// What the engine answers for one (subject, field).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Outcome {
    /// Allowed at `view` (None for account_control).
    Allow {
        view: Option<View>,
    },
    Deny,
    /// An approval of each kind in `needs` would allow `view`.
    Pending {
        needs: Vec<ApprovalKind>,
        view: Option<View>,
    },
}

impl Outcome {
    /// `allow`, `deny` or `pending`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Allow { .. } => "allow",
            Outcome::Deny => "deny",
            Outcome::Pending { .. } => "pending",
        }
    }

    /// The view granted, or the view an approval would grant.
    pub fn view(&self) -> Option<View> {
        match self {
            Outcome::Allow { view } | Outcome::Pending { view, .. } => *view,
            Outcome::Deny => None,
        }
    }
}

/// A kind of approval a forbid policy can ask for (its `@approval` annotation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalKind {
    /// A second person independent of the actor.
    Independent,
    /// The custodian (privacy officer) of the subject's region.
    Custodian,
}

impl ApprovalKind {
    pub const ALL: [ApprovalKind; 2] = [ApprovalKind::Independent, ApprovalKind::Custodian];

    /// `independent` or `custodian`: the `@approval` annotation value.
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalKind::Independent => "independent",
            ApprovalKind::Custodian => "custodian",
        }
    }

    fn parse(value: &str) -> Option<ApprovalKind> {
        ApprovalKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == value)
    }
}

impl std::fmt::Display for ApprovalKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The engine's answer with its explanation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub outcome: Outcome,
    /// Policy ids (the `@id` annotation) that determined the outcome.
    pub policies: Vec<String>,
    /// Human sentences: the `@reason` of each deciding forbid policy, the default-deny
    /// sentence, or a note that the view was coarsened.
    pub reasons: Vec<String>,
}
