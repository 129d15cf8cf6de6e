//! Writes scenario lines (shared/scenario-format.md) by hand: the traffic is millions of lines
//! of a handful of fixed shapes, so each is assembled into one reused buffer with its strings
//! escaped, rather than built as a JSON tree.

use std::collections::HashMap;
use std::io::Write;

use chrono::{Datelike, Timelike};

use crate::numbers::mix;
use crate::work::{Fields, Purpose};
use crate::world::{Staff, World};

/// A case as lines name it: `<prefix>-<number>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CaseRef {
    pub number: u64,
    pub purpose: Purpose,
}

/// Where an export goes; the case approves it in its `destinations`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Destination {
    LegalProduction,
    SubjectDownload(u32),
    IncidentEnclave,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct LegalProcess {
    pub kind: &'static str,
    pub issuer: &'static str,
    pub validated_by: u32,
}

pub(crate) struct CaseLine {
    pub case: CaseRef,
    pub assignees: Vec<u32>,
    pub subjects: Vec<u32>,
    pub requested_by: Option<u32>,
    pub legal_process: Option<LegalProcess>,
    pub destination: Option<Destination>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    Read,
    /// A search by the email of the access's only subject.
    SearchByEmail,
    Export(Destination),
    AccountControl(&'static str),
}

pub(crate) struct AccessLine {
    pub actor: u32,
    pub action: Action,
    pub subjects: Vec<u32>,
    pub fields: Fields,
    pub case: CaseRef,
    pub justification: &'static str,
    /// Set when an `approve` line for this access follows: the key it is known by until
    /// its id is written.
    pub approval_key: Option<u64>,
}

pub(crate) enum CaseChange {
    AddAssignee(u32),
    AddSubjects(Vec<u32>),
    Close,
}

/// One line of the timeline.
pub(crate) enum Event {
    Hire { staff: u32 },
    OnCall { staff: u32, until: i64 },
    Case(Box<CaseLine>),
    CaseUpdate { case: CaseRef, change: CaseChange },
    Access(Box<AccessLine>),
    Approve { key: u64, approver: u32, note: &'static str },
}

/// Counts of what was written.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Written {
    pub lines: u64,
    pub accesses: u64,
    pub cases: u64,
    pub case_updates: u64,
    pub approvals: u64,
    pub on_call: u64,
    pub hires: u64,
    pub first_at: Option<i64>,
    pub last_at: Option<i64>,
}

pub(crate) struct Output<'w, W: Write> {
    out: W,
    world: &'w World,
    line: String,
    /// Access ids are numbered in file order; an access awaiting an `approve` line is found
    /// here by its key.
    awaiting_approval: HashMap<u64, u64>,
    pub written: Written,
}

impl<'w, W: Write> Output<'w, W> {
    pub(crate) fn new(out: W, world: &'w World) -> Self {
        Output { out, world, line: String::with_capacity(4096), awaiting_approval: HashMap::new(), written: Written::default() }
    }

    /// The comment header, the staff present from the start, then every subject.
    pub(crate) fn header(&mut self, comment: &str) -> std::io::Result<()> {
        for text in comment.lines() {
            self.line.push_str("# ");
            self.line.push_str(text);
            self.line.push('\n');
        }
        self.out.write_all(self.line.as_bytes())?;
        self.line.clear();
        for member in self.world.staff.iter().filter(|member| !member.new_hire) {
            self.staff_line(member, None);
            self.flush_line()?;
        }
        for index in 0..self.world.subjects.len() as u32 {
            self.subject_line(index);
            self.flush_line()?;
        }
        Ok(())
    }

    pub(crate) fn event(&mut self, at: i64, event: &Event) -> std::io::Result<()> {
        // INVARIANT: the timeline is written in time order (shared/scenario-format.md: the
        // replay clock never goes backwards).
        assert!(self.written.last_at.is_none_or(|last| last <= at), "line at {at} after {:?}", self.written.last_at);
        self.written.first_at.get_or_insert(at);
        self.written.last_at = Some(at);
        let world = self.world;
        match event {
            Event::Hire { staff } => {
                let member = &world.staff[*staff as usize];
                self.staff_line(member, Some(at));
                self.flush_line()?;
                self.start("hr", at);
                self.member_str("staff", &member.id);
                self.member_str("event", "new_hire");
                self.written.hires += 1;
            }
            Event::OnCall { staff, until } => {
                self.start("on_call", at);
                self.member_str("staff", &world.staff[*staff as usize].id);
                self.member_time("until", *until);
                self.written.on_call += 1;
            }
            Event::Case(case) => {
                self.case_line(at, case);
                self.written.cases += 1;
            }
            Event::CaseUpdate { case, change } => {
                self.start("case_update", at);
                self.member_case("id", *case);
                match change {
                    CaseChange::AddAssignee(staff) => {
                        self.key("add_assignees");
                        self.line.push('[');
                        self.string(&world.staff[*staff as usize].id);
                        self.line.push(']');
                    }
                    CaseChange::AddSubjects(subjects) => self.member_subjects("add_subjects", subjects),
                    CaseChange::Close => self.member_str("status", "closed"),
                }
                self.written.case_updates += 1;
            }
            Event::Access(access) => {
                self.written.accesses += 1;
                let number = self.written.accesses;
                if let Some(key) = access.approval_key {
                    self.awaiting_approval.insert(key, number);
                }
                self.access_line(at, number, access);
            }
            Event::Approve { key, approver, note } => {
                // INVARIANT: an approval is scheduled after its access, so the access has its id.
                let number = self.awaiting_approval.remove(key).expect("the access is written before its approval");
                self.start("approve", at);
                self.key("access");
                self.line.push_str("\"a-");
                push_number(&mut self.line, number);
                self.line.push('"');
                self.member_str("approver", &world.staff[*approver as usize].id);
                self.member_str("decision", "approve");
                self.member_str("note", note);
                self.written.approvals += 1;
            }
        }
        self.flush_line()
    }

    pub(crate) fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }

    fn flush_line(&mut self) -> std::io::Result<()> {
        self.line.push_str("}\n");
        self.out.write_all(self.line.as_bytes())?;
        self.line.clear();
        self.written.lines += 1;
        Ok(())
    }

    fn staff_line(&mut self, member: &Staff, at: Option<i64>) {
        self.line.push_str("{\"op\":\"staff\"");
        if let Some(at) = at {
            self.member_time("at", at);
        }
        self.member_str("id", &member.id);
        self.key("roles");
        self.line.push('[');
        self.string(member.role.as_str());
        self.line.push(']');
        self.member_str("team", member.role.team());
        let region = self.world.regions[member.region].name;
        let entity = if member.role == crate::world::Role::ContractorAgent { "bpo-" } else { "platform-" };
        self.key("entity");
        self.line.push('"');
        self.line.push_str(entity);
        self.line.push_str(region);
        self.line.push('"');
        self.member_str("country", member.country.code);
        self.member_str("region", region);
        self.key("shift");
        self.line.push_str("{\"tz\":");
        self.string(member.time_zone_name);
        self.line.push_str(",\"start\":");
        push_clock(&mut self.line, member.shift_start_minutes);
        self.line.push_str(",\"end\":");
        push_clock(&mut self.line, member.shift_end_minutes);
        self.line.push('}');
    }

    fn subject_line(&mut self, index: u32) {
        let world = self.world;
        let subject = world.subjects[index as usize];
        let values = world.subject_values(index);
        self.line.push_str("{\"op\":\"subject\"");
        self.key("id");
        push_subject(&mut self.line, index);
        self.member_str("region", world.regions[subject.region as usize].name);
        if let Some(label) = subject.label {
            self.key("labels");
            self.line.push('[');
            self.string(label.as_str());
            self.line.push(']');
        }
        if let Some(owner) = subject.staff {
            self.member_str("staff", &world.staff[owner as usize].id);
        }
        self.key("values");
        self.line.push('{');
        let mut first = true;
        let mut field = |line: &mut String, name: &str, values: &[&str]| {
            if values.is_empty() {
                return;
            }
            if !first {
                line.push(',');
            }
            first = false;
            push_string(line, name);
            line.push_str(":[");
            for (position, value) in values.iter().enumerate() {
                if position > 0 {
                    line.push(',');
                }
                push_string(line, value);
            }
            line.push(']');
        };
        let line = &mut self.line;
        field(line, "name", &[&values.name]);
        field(line, "email", &[&values.email]);
        field(line, "phone", &[&values.phone]);
        field(line, "ip_address", &values.ip_addresses.iter().map(String::as_str).collect::<Vec<_>>());
        field(line, "location", &values.location.iter().map(String::as_str).collect::<Vec<_>>());
        field(line, "device_id", &values.device_ids.iter().map(String::as_str).collect::<Vec<_>>());
        field(line, "date_of_birth", &[&values.date_of_birth]);
        field(line, "text", &values.text.iter().copied().collect::<Vec<_>>());
        self.line.push('}');
    }

    fn case_line(&mut self, at: i64, case: &CaseLine) {
        let world = self.world;
        self.start("case", at);
        self.member_case("id", case.case);
        self.member_str("purpose", case.case.purpose.as_str());
        self.key("assignees");
        self.line.push('[');
        for (position, staff) in case.assignees.iter().enumerate() {
            if position > 0 {
                self.line.push(',');
            }
            self.string(&world.staff[*staff as usize].id);
        }
        self.line.push(']');
        self.member_subjects("subjects", &case.subjects);
        if let Some(subject) = case.requested_by {
            self.key("requested_by");
            push_subject(&mut self.line, subject);
        }
        if let Some(process) = case.legal_process {
            self.key("legal_process");
            self.line.push_str("{\"kind\":");
            self.string(process.kind);
            self.line.push_str(",\"issuer\":");
            self.string(process.issuer);
            self.line.push_str(",\"document_sha256\":\"");
            for part in 0..4 {
                let word = mix(mix(world.seed, case.case.number), part);
                self.line.push_str(&format!("{word:016x}"));
            }
            self.line.push_str("\",\"validated\":true,\"validated_by\":");
            self.string(&world.staff[process.validated_by as usize].id);
            self.line.push('}');
        }
        if let Some(destination) = case.destination {
            self.key("destinations");
            self.line.push('[');
            self.destination(destination);
            self.line.push(']');
        }
    }

    fn access_line(&mut self, at: i64, number: u64, access: &AccessLine) {
        let world = self.world;
        self.start("access", at);
        self.key("id");
        self.line.push_str("\"a-");
        push_number(&mut self.line, number);
        self.line.push('"');
        self.member_str("actor", &world.staff[access.actor as usize].id);
        let action = match access.action {
            Action::Read => "read",
            Action::SearchByEmail => "search",
            Action::Export(_) => "export",
            Action::AccountControl(_) => "account_control",
        };
        self.member_str("action", action);
        if access.action == Action::SearchByEmail {
            // INVARIANT: a search names exactly one subject, found by their (unique) email.
            assert_eq!(access.subjects.len(), 1, "a search looks for one subject");
            let email = world.subject_values(access.subjects[0]).email;
            self.key("query");
            self.line.push_str("{\"email\":");
            self.string(&email);
            self.line.push('}');
        } else {
            self.member_subjects("subjects", &access.subjects);
        }
        if !access.fields.is_empty() {
            self.key("fields");
            self.line.push('{');
            for (position, (field, view)) in access.fields.iter().enumerate() {
                if position > 0 {
                    self.line.push(',');
                }
                self.string(field);
                self.line.push(':');
                self.string(view);
            }
            self.line.push('}');
        }
        self.member_str("purpose", access.case.purpose.as_str());
        self.member_case("case", access.case);
        self.member_str("justification", access.justification);
        match access.action {
            Action::Export(destination) => {
                self.key("destination");
                self.destination(destination);
            }
            Action::AccountControl(control) => self.member_str("control", control),
            Action::Read | Action::SearchByEmail => {}
        }
    }

    fn destination(&mut self, destination: Destination) {
        match destination {
            Destination::LegalProduction => self.string("legal-production"),
            Destination::IncidentEnclave => self.string("ir_enclave"),
            Destination::SubjectDownload(subject) => {
                self.line.push_str("\"subject-download:u-");
                push_number(&mut self.line, u64::from(subject) + 1);
                self.line.push('"');
            }
        }
    }

    fn start(&mut self, op: &str, at: i64) {
        self.line.push_str("{\"op\":");
        self.string(op);
        self.member_time("at", at);
    }

    fn key(&mut self, name: &str) {
        self.line.push(',');
        push_string(&mut self.line, name);
        self.line.push(':');
    }

    fn string(&mut self, value: &str) {
        push_string(&mut self.line, value);
    }

    fn member_str(&mut self, name: &str, value: &str) {
        self.key(name);
        self.string(value);
    }

    fn member_time(&mut self, name: &str, at: i64) {
        self.key(name);
        push_time(&mut self.line, at);
    }

    fn member_case(&mut self, name: &str, case: CaseRef) {
        self.key(name);
        self.line.push('"');
        self.line.push_str(case.purpose.case_prefix());
        self.line.push('-');
        push_number(&mut self.line, case.number);
        self.line.push('"');
    }

    fn member_subjects(&mut self, name: &str, subjects: &[u32]) {
        self.key(name);
        self.line.push('[');
        for (position, subject) in subjects.iter().enumerate() {
            if position > 0 {
                self.line.push(',');
            }
            push_subject(&mut self.line, *subject);
        }
        self.line.push(']');
    }
}

fn push_subject(line: &mut String, index: u32) {
    line.push_str("\"u-");
    push_number(line, u64::from(index) + 1);
    line.push('"');
}

/// A JSON string: quotes, backslashes and control characters escaped.
pub(crate) fn push_string(line: &mut String, value: &str) {
    line.push('"');
    if !value.bytes().any(|byte| byte == b'"' || byte == b'\\' || byte < 0x20 || byte == 0x7f) {
        line.push_str(value);
        line.push('"');
        return;
    }
    for character in value.chars() {
        match character {
            '"' => line.push_str("\\\""),
            '\\' => line.push_str("\\\\"),
            '\n' => line.push_str("\\n"),
            '\t' => line.push_str("\\t"),
            control if control.is_control() => line.push_str(&format!("\\u{:04x}", u32::from(control))),
            other => line.push(other),
        }
    }
    line.push('"');
}

fn push_number(line: &mut String, mut value: u64) {
    let mut digits = [0u8; 20];
    let mut position = digits.len();
    loop {
        position -= 1;
        digits[position] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    for digit in &digits[position..] {
        line.push(char::from(*digit));
    }
}

fn push_two(line: &mut String, value: u32) {
    line.push(char::from(b'0' + (value / 10) as u8));
    line.push(char::from(b'0' + (value % 10) as u8));
}

/// `"HH:MM"` from minutes after midnight.
fn push_clock(line: &mut String, minutes: u32) {
    line.push('"');
    push_two(line, minutes / 60);
    line.push(':');
    push_two(line, minutes % 60);
    line.push('"');
}

/// `"YYYY-MM-DDTHH:MM:SSZ"` (RFC 3339, UTC) from seconds since the epoch.
pub(crate) fn push_time(line: &mut String, at: i64) {
    // INVARIANT: times come from dates between the start parameter and DAYS_MAX after it.
    let time = chrono::DateTime::from_timestamp(at, 0).expect("traffic times are representable");
    line.push('"');
    let year = time.year() as u32;
    push_two(line, year / 100);
    push_two(line, year % 100);
    line.push('-');
    push_two(line, time.month());
    line.push('-');
    push_two(line, time.day());
    line.push('T');
    push_two(line, time.hour());
    line.push(':');
    push_two(line, time.minute());
    line.push(':');
    push_two(line, time.second());
    line.push_str("Z\"");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped() {
        let mut line = String::new();
        push_string(&mut line, "a \"b\" \\ c\nd\u{1}");
        assert_eq!(line, r#""a \"b\" \\ c\nd\u0001""#);
        assert_eq!(serde_json::from_str::<String>(&line).unwrap(), "a \"b\" \\ c\nd\u{1}");
    }

    #[test]
    fn times_are_rfc3339_utc() {
        let mut line = String::new();
        push_time(&mut line, 1_772_442_300);
        assert_eq!(line, "\"2026-03-02T09:05:00Z\"");
        let mut line = String::new();
        push_number(&mut line, 0);
        push_number(&mut line, 10_000_000);
        assert_eq!(line, "010000000");
    }
}
