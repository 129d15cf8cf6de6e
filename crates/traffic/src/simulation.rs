//! The work itself: day by day, each person fills their day's quota of accesses inside their
//! shift — first the follow-ups and reviews on their agenda, then new work of their role —
//! and the lines wait in a queue, sorted by time when a day is written, until no line
//! generated later can come before them.
//!
//! Streaming: local date `k + 1` is generated before the lines of UTC date `k` are written,
//! and no line of local date `k + 1` falls before UTC date `k` (zones are within ±14 h and
//! cases open at most a few hours before their first access), so the queue holds about two
//! days of lines. What stays in memory is bounded by the staff, not by the accesses: the
//! queue, the open cases (each closes when its last task is done or dropped) and each
//! person's agenda (tasks older than [`AGENDA_STALE_DAYS`] are dropped).
//!
//! Every access is explained: the actor is an assignee of an open case whose purpose fits
//! their role, the subjects are in the case's scope, the views are ones the purpose grants,
//! the time is inside the actor's shift (or their on-call week), and the actor works from
//! their own country in the subject's region — except the few accesses that wait for a
//! privacy officer's approval, which is given while both are on shift.

use std::collections::BTreeMap;
use std::io::Write;

use chrono::{Datelike, Weekday};
use rand::Rng;
use rand::seq::IndexedRandom;
use rand_chacha::ChaCha8Rng;

use crate::calendar::{date_of, local_instant, on_shift};
use crate::output::{AccessLine, Action, CaseChange, CaseLine, CaseRef, Destination, Event, LegalProcess, Output};
use crate::work::{self, Fields, Purpose};
use crate::world::{Role, World};

/// Days a task may wait past its due day before it is dropped and its case closed.
const AGENDA_STALE_DAYS: u32 = 4;
/// Per cent of support tickets escalated to a tier-2 agent of the region.
const ESCALATION_PERCENT: u32 = 6;
/// Per cent of support tickets the same agent comes back to on a later day.
const FOLLOW_UP_PERCENT: u32 = 30;
/// Per cent of tier-2 new work that is a follow-the-sun ticket from another region (read
/// cross-border, with the custodian's approval).
const CROSS_BORDER_PERCENT: u32 = 4;
/// Per cent of trust-and-safety reports that concern a minor (read with an independent
/// approval).
const MINOR_REPORT_PERCENT: u32 = 3;
/// Per cent of an on-call engineer's working days with a page in the evening.
const PAGE_PERCENT: u32 = 20;
/// Per cent of legal officers' new work that is an emergency request.
const EMERGENCY_PERCENT: u32 = 12;
/// How long before the first access a ticket may have been opened, in seconds.
const TICKET_AGE_SECONDS_MAX: i64 = 3 * 3600;
/// How long a privacy officer takes to answer an approval request, in seconds.
const APPROVAL_DELAY_SECONDS: (i64, i64) = (240, 1_800);
/// Margin kept between a shift's edges and the first and last access, in minutes.
const SHIFT_MARGIN_MINUTES: u32 = 10;
/// Evening window of on-call pages, local minutes after midnight; after every shift of the
/// engineers who carry pages.
const PAGE_WINDOW_MINUTES: (u32, u32) = (19 * 60 + 30, 23 * 60);

/// Counts the simulation keeps besides what the output counts.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SimulationCounts {
    pub cross_border_accesses: u64,
    pub tasks_dropped: u64,
    pub pending_lines_max: u64,
}

struct Scheduled {
    at: i64,
    sequence: u64,
    event: Event,
}

/// A case still expecting work.
struct OpenCase {
    reference: CaseRef,
    region: usize,
    /// The subjects in scope, each with the time it joined the scope: the generator visits
    /// people one after another, not in time order, so a colleague's task earlier in the day
    /// must not see a subject added later that day.
    subjects: Vec<(u32, i64)>,
    requested_by: Option<u32>,
    /// Tasks scheduled and not yet done or dropped.
    outstanding: u32,
    last_at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TaskKind {
    /// The assignee who opened the case comes back to it.
    FollowUp,
    /// Another assignee (second analyst, tier-2 agent, incident colleague) looks at it.
    Review,
    /// The assignee adds related accounts to the case's scope and looks at them.
    AddRelated,
    /// The assignee produces the case's export to its approved destination.
    Export,
}

struct Task {
    case: u64,
    kind: TaskKind,
    due_day: u32,
    not_before: i64,
    sequence: u64,
}

pub(crate) struct Simulation<'w, W: Write> {
    world: &'w World,
    quotas: Vec<Vec<u16>>,
    rng: ChaCha8Rng,
    /// Lines waiting for their time, in no order until a day is written: sorting once per
    /// day is cheaper than keeping a heap of a day's lines in order.
    queue: Vec<Scheduled>,
    sequence: u64,
    /// Every line before this instant is written: nothing may be scheduled before it.
    written_until: i64,
    cases: BTreeMap<u64, OpenCase>,
    next_case: u64,
    agendas: Vec<Vec<Task>>,
    /// First day after each person's current on-call week (0: never on call).
    on_call_until_day: Vec<u32>,
    next_approval_key: u64,
    accesses_scheduled: u64,
    pub output: Output<'w, W>,
    pub counts: SimulationCounts,
}

impl<'w, W: Write> Simulation<'w, W> {
    pub(crate) fn new(world: &'w World, quotas: Vec<Vec<u16>>, rng: ChaCha8Rng, output: Output<'w, W>) -> Self {
        Simulation {
            world,
            quotas,
            rng,
            queue: Vec::new(),
            sequence: 0,
            written_until: i64::MIN,
            cases: BTreeMap::new(),
            next_case: 1,
            agendas: world.staff.iter().map(|_| Vec::new()).collect(),
            on_call_until_day: vec![0; world.staff.len()],
            next_approval_key: 0,
            accesses_scheduled: 0,
            output,
            counts: SimulationCounts::default(),
        }
    }

    /// Generates and writes every day, calling `progress` with the accesses written so far
    /// after each day.
    pub(crate) fn run(&mut self, progress: &mut dyn FnMut(u64)) -> std::io::Result<()> {
        for day in 0..self.world.days {
            self.generate_day(day);
            let boundary = local_instant(chrono_tz::UTC, date_of(self.world.start, day), 0);
            self.write_until(Some(boundary))?;
            progress(self.output.written.accesses);
        }
        self.write_until(None)?;
        progress(self.output.written.accesses);
        self.output.flush()
    }

    fn write_until(&mut self, boundary: Option<i64>) -> std::io::Result<()> {
        self.counts.pending_lines_max = self.counts.pending_lines_max.max(self.queue.len() as u64);
        // Sequence numbers are unique, so the order is total and the same on every run.
        self.queue.sort_unstable_by_key(|scheduled| (scheduled.at, scheduled.sequence));
        let due = boundary.map_or(self.queue.len(), |boundary| self.queue.partition_point(|scheduled| scheduled.at < boundary));
        for scheduled in self.queue.drain(..due) {
            self.output.event(scheduled.at, &scheduled.event)?;
        }
        if let Some(boundary) = boundary {
            self.written_until = boundary;
        }
        Ok(())
    }

    fn schedule(&mut self, at: i64, event: Event) {
        // INVARIANT: see the module header; a line scheduled before what is written would
        // break the time order of the file.
        assert!(at >= self.written_until, "line at {at} scheduled before {} was written", self.written_until);
        self.sequence += 1;
        self.queue.push(Scheduled { at, sequence: self.sequence, event });
    }

    fn generate_day(&mut self, day: u32) {
        let world = self.world;
        let date = date_of(world.start, day);
        for (index, member) in world.staff.iter().enumerate() {
            if member.new_hire && member.hire_day == day {
                let at = local_instant(member.time_zone, date, member.shift_start_minutes.saturating_sub(60));
                self.schedule(at, Event::Hire { staff: index as u32 });
            }
        }
        if day == 0 || date.weekday() == Weekday::Mon {
            self.rotate_on_call(day);
        }
        for staff in 0..world.staff.len() {
            let quota = u32::from(self.quotas[staff][day as usize]);
            if quota > 0 {
                let before = self.accesses_scheduled();
                self.work_day(staff as u32, day, quota);
                // INVARIANT: each quota unit becomes exactly one access, so the file holds
                // exactly the accesses asked for.
                assert_eq!(self.accesses_scheduled() - before, u64::from(quota), "staff {staff} on day {day}");
            }
        }
    }

    fn accesses_scheduled(&self) -> u64 {
        self.accesses_scheduled
    }

    /// Hands each region's on-call pager to one security engineer and one SRE for the week
    /// (Monday 00:00 to Monday 00:00 in their zone; from the first day when it is not a
    /// Monday), in turn.
    fn rotate_on_call(&mut self, day: u32) {
        let world = self.world;
        let date = date_of(world.start, day);
        let until_day = day + (7 - date.weekday().num_days_from_monday());
        let week = (day + world.start.weekday().num_days_from_monday()) / 7;
        for region in 0..world.regions.len() {
            for (turn, role) in [(0, Role::SecurityEngineer), (1, Role::Sre)] {
                let pool: Vec<u32> =
                    world.staff_of(region, role).iter().copied().filter(|staff| world.staff[*staff as usize].hire_day <= day).collect();
                if pool.is_empty() {
                    continue;
                }
                let staff = pool[(week as usize + region + turn) % pool.len()];
                let member = &world.staff[staff as usize];
                let at = local_instant(member.time_zone, date, 0);
                let until = local_instant(member.time_zone, date_of(world.start, until_day), 0);
                self.on_call_until_day[staff as usize] = until_day;
                self.schedule(at, Event::OnCall { staff, until });
            }
        }
    }

    fn work_day(&mut self, staff: u32, day: u32, quota: u32) {
        let world = self.world;
        let member = &world.staff[staff as usize];
        let date = date_of(world.start, day);
        let on_call = self.on_call_until_day[staff as usize] > day;
        let night = if on_call && quota >= 4 && self.rng.random_range(0..100) < PAGE_PERCENT {
            self.rng.random_range(2..=(quota / 2).min(3))
        } else {
            0
        };
        let begin = local_instant(member.time_zone, date, member.shift_start_minutes + SHIFT_MARGIN_MINUTES);
        let end = local_instant(member.time_zone, date, member.shift_end_minutes - SHIFT_MARGIN_MINUTES);
        let slots = self.spread(begin, end, quota - night);
        let mut next = self.run_agenda(staff, day, &slots);
        while next < slots.len() {
            let used = self.new_work(staff, day, &slots[next..]);
            // INVARIANT: new work uses at least one slot and no more than it was given.
            assert!(used >= 1 && next + used <= slots.len(), "{} used {used} of {} slots", member.id, slots.len() - next);
            next += used;
        }
        if night > 0 {
            let begin = local_instant(member.time_zone, date, PAGE_WINDOW_MINUTES.0);
            let end = local_instant(member.time_zone, date, PAGE_WINDOW_MINUTES.1);
            let slots = self.spread(begin, end, night);
            self.incident(staff, day, &slots, Page::Evening);
        }
    }

    /// `count` instants strictly between `begin` and `end`, in order, evenly spread with
    /// jitter (gaps from half to one and a half times the mean).
    fn spread(&mut self, begin: i64, end: i64, count: u32) -> Vec<i64> {
        let gaps: Vec<f64> = (0..=count).map(|_| self.rng.random_range(0.5..1.5)).collect();
        let total: f64 = gaps.iter().sum();
        let span = (end - begin) as f64;
        let mut sum = 0.0;
        gaps[..count as usize]
            .iter()
            .map(|gap| {
                sum += gap;
                begin + (span * sum / total) as i64
            })
            .collect()
    }

    /// Runs the tasks due on the person's agenda, one slot each, in due order; returns the
    /// slots used. Tasks that cannot run yet wait; tasks too old are dropped.
    fn run_agenda(&mut self, staff: u32, day: u32, slots: &[i64]) -> usize {
        let mut agenda = std::mem::take(&mut self.agendas[staff as usize]);
        agenda.sort_by_key(|task| (task.due_day, task.sequence));
        let mut kept = Vec::new();
        let mut used = 0;
        for task in agenda {
            if task.due_day > day {
                kept.push(task);
            } else if task.due_day + AGENDA_STALE_DAYS < day {
                self.counts.tasks_dropped += 1;
                let now = slots.first().copied().unwrap_or(self.written_until);
                self.task_done(task.case, now);
            } else if used < slots.len() && slots[used] >= task.not_before {
                if self.run_task(staff, &task, slots[used]) {
                    used += 1;
                }
            } else {
                kept.push(task);
            }
        }
        // Tasks the ones above scheduled for this person (a second follow-up) join the rest.
        kept.append(&mut self.agendas[staff as usize]);
        self.agendas[staff as usize] = kept;
        used
    }

    /// One access for a task on an open case; `false` when nothing on the case is left for
    /// this person to read (the task is done all the same).
    fn run_task(&mut self, staff: u32, task: &Task, at: i64) -> bool {
        // INVARIANT: a case stays open while it has outstanding tasks.
        let open = self.cases.get(&task.case).expect("a case with outstanding tasks is open");
        let reference = open.reference;
        let purpose = reference.purpose;
        let region = open.region;
        let requested_by = open.requested_by;
        let in_scope: Vec<u32> = open.subjects.iter().map(|(subject, _)| *subject).collect();
        let readable: Vec<u32> = open
            .subjects
            .iter()
            .filter(|(subject, added_at)| *added_at <= at && self.readable(staff, *subject, requested_by))
            .map(|(subject, _)| *subject)
            .collect();
        if readable.is_empty() {
            self.task_done(task.case, at);
            return false;
        }
        let justification = *purpose.follow_ups().choose(&mut self.rng).unwrap_or(&"");
        match task.kind {
            TaskKind::Export => {
                // INVARIANT: export tasks are scheduled only for purposes that export.
                let fields = purpose.export().expect("an export task on an exporting purpose");
                let destination = destination_of(purpose, requested_by.or(readable.first().copied()));
                self.access(
                    at,
                    AccessLine {
                        actor: staff,
                        action: Action::Export(destination),
                        subjects: readable,
                        fields,
                        case: reference,
                        justification,
                        approval_key: None,
                    },
                    None,
                );
            }
            TaskKind::AddRelated => {
                let count = self.rng.random_range(1..=2);
                let added = self.pick_ordinary(region, count, &in_scope);
                let (subjects, updated) = if added.is_empty() { (self.batch(purpose, &readable), false) } else { (added, true) };
                if updated {
                    let update_at = at - self.rng.random_range(60..=600);
                    self.schedule(update_at, Event::CaseUpdate { case: reference, change: CaseChange::AddSubjects(subjects.clone()) });
                    if let Some(open) = self.cases.get_mut(&task.case) {
                        open.subjects.extend(subjects.iter().map(|subject| (*subject, update_at)));
                    }
                }
                let fields = self.read_of(purpose);
                self.access(
                    at,
                    AccessLine { actor: staff, action: Action::Read, subjects, fields, case: reference, justification, approval_key: None },
                    None,
                );
            }
            TaskKind::FollowUp | TaskKind::Review => {
                let subjects = if task.kind == TaskKind::Review && purpose == Purpose::TrustSafety {
                    // A second analyst looks at the reported account, first in the scope.
                    vec![readable[0]]
                } else {
                    self.batch(purpose, &readable)
                };
                let fields = self.read_of(purpose);
                let justification = if task.kind == TaskKind::Review && purpose == Purpose::Support {
                    work::ESCALATION_JUSTIFICATION
                } else {
                    justification
                };
                self.access(
                    at,
                    AccessLine { actor: staff, action: Action::Read, subjects, fields, case: reference, justification, approval_key: None },
                    None,
                );
                if task.kind == TaskKind::FollowUp && purpose == Purpose::Support && self.rng.random_range(0..100) < 20 {
                    let due_day = task.due_day.max(self.day_of(at)) + self.rng.random_range(1..=3);
                    self.add_task(staff, task.case, TaskKind::FollowUp, due_day, at + 3600);
                }
            }
        }
        self.task_done(task.case, at);
        true
    }

    fn day_of(&self, at: i64) -> u32 {
        let start = local_instant(chrono_tz::UTC, self.world.start, 0);
        u32::try_from((at - start).div_euclid(86_400)).unwrap_or(0)
    }

    fn new_work(&mut self, staff: u32, day: u32, slots: &[i64]) -> usize {
        let world = self.world;
        match world.staff[staff as usize].role {
            Role::SupportAgent | Role::ContractorAgent => self.support_ticket(staff, day, slots),
            Role::SupportTier2 => {
                if world.regions.len() > 1
                    && self.rng.random_range(0..100) < CROSS_BORDER_PERCENT
                    && let Some(used) = self.follow_the_sun_ticket(staff, slots)
                {
                    return used;
                }
                self.account_recovery(staff, day, slots)
            }
            Role::TrustSafetyAnalyst => {
                if self.rng.random_range(0..100) < MINOR_REPORT_PERCENT
                    && let Some(used) = self.minor_report(staff, slots)
                {
                    return used;
                }
                self.trust_safety_report(staff, day, slots)
            }
            Role::FraudAnalyst => self.fraud_case(staff, day, slots),
            Role::SecurityEngineer | Role::Sre => {
                let count = self.rng.random_range(1..=3).min(slots.len());
                self.incident(staff, day, &slots[..count], Page::None)
            }
            Role::LegalOfficer => {
                if self.rng.random_range(0..100) < EMERGENCY_PERCENT {
                    self.emergency_request(staff, slots)
                } else {
                    self.legal_request(staff, day, slots)
                }
            }
            Role::PrivacyOfficer => self.data_subject_request(staff, day, slots),
            // INVARIANT: these roles have no rate, hence no quota and no slots.
            Role::Engineer | Role::ComplianceOfficer | Role::Auditor => unreachable!("a role without a rate was given work"),
        }
    }

    /// A customer's ticket: the agent looks once or twice, then may come back on a later
    /// day or escalate to tier 2.
    fn support_ticket(&mut self, staff: u32, day: u32, slots: &[i64]) -> usize {
        let region = self.world.staff[staff as usize].region;
        let subject = self.pick_requester(region, staff);
        let reference = self.new_case(Purpose::Support);
        let opened = slots[0] - self.rng.random_range(120..=TICKET_AGE_SECONDS_MAX);
        self.open_case(
            opened,
            region,
            CaseLine {
                case: reference,
                assignees: vec![staff],
                subjects: vec![subject],
                requested_by: Some(subject),
                legal_process: None,
                destination: None,
            },
        );
        let used = if slots.len() >= 2 && self.rng.random_range(0..100) < 20 { 2 } else { 1 };
        let justification = self.first_look(Purpose::Support);
        for slot in &slots[..used] {
            let (action, fields) = if self.rng.random_range(0..100) < 6 {
                (Action::SearchByEmail, work::SUPPORT_SEARCH_FIELDS)
            } else {
                (Action::Read, self.read_of(Purpose::Support))
            };
            self.access(
                *slot,
                AccessLine { actor: staff, action, subjects: vec![subject], fields, case: reference, justification, approval_key: None },
                None,
            );
        }
        let last = slots[used - 1];
        let roll = self.rng.random_range(0..100);
        if roll < ESCALATION_PERCENT {
            if let Some(tier2) = self.pick_colleague(region, &[Role::SupportTier2], staff, day) {
                let at = last + self.rng.random_range(120..=900);
                self.schedule(at, Event::CaseUpdate { case: reference, change: CaseChange::AddAssignee(tier2) });
                self.add_task(tier2, reference.number, TaskKind::Review, day + 1, at + 600);
            }
        } else if roll < ESCALATION_PERCENT + FOLLOW_UP_PERCENT {
            let due_day = day + self.rng.random_range(1..=3);
            self.add_task(staff, reference.number, TaskKind::FollowUp, due_day, last + 3600);
        }
        self.settle(reference.number);
        used
    }

    /// Tier 2 restores access for a customer who asked: contact points, then the control.
    fn account_recovery(&mut self, staff: u32, day: u32, slots: &[i64]) -> usize {
        let region = self.world.staff[staff as usize].region;
        let subject = self.pick_requester(region, staff);
        let reference = self.new_case(Purpose::AccountRecovery);
        let opened = slots[0] - self.rng.random_range(600..=TICKET_AGE_SECONDS_MAX);
        self.open_case(
            opened,
            region,
            CaseLine {
                case: reference,
                assignees: vec![staff],
                subjects: vec![subject],
                requested_by: Some(subject),
                legal_process: None,
                destination: None,
            },
        );
        let justification = self.first_look(Purpose::AccountRecovery);
        let fields = self.read_of(Purpose::AccountRecovery);
        self.access(
            slots[0],
            AccessLine {
                actor: staff,
                action: Action::Read,
                subjects: vec![subject],
                fields,
                case: reference,
                justification,
                approval_key: None,
            },
            None,
        );
        let mut used = 1;
        if slots.len() >= 2 {
            let control = *work::ACCOUNT_CONTROLS.choose(&mut self.rng).unwrap_or(&"reset_2fa");
            self.access(
                slots[1],
                AccessLine {
                    actor: staff,
                    action: Action::AccountControl(control),
                    subjects: vec![subject],
                    fields: &[],
                    case: reference,
                    justification,
                    approval_key: None,
                },
                None,
            );
            used = 2;
        }
        if self.rng.random_range(0..100) < 15 {
            let due_day = day + self.rng.random_range(1..=2);
            self.add_task(staff, reference.number, TaskKind::FollowUp, due_day, slots[used - 1] + 3600);
        }
        self.settle(reference.number);
        used
    }

    /// A ticket from another region handed to this tier-2 agent while its own region's
    /// agents are off: read across the border, so the subject region's privacy officer (the
    /// custodian) approves it. `None` when no custodian is on shift to do so.
    fn follow_the_sun_ticket(&mut self, staff: u32, slots: &[i64]) -> Option<usize> {
        let world = self.world;
        let home = world.staff[staff as usize].region;
        let others: Vec<usize> = (0..world.regions.len()).filter(|region| *region != home).collect();
        let region = *others.choose(&mut self.rng)?;
        let subject = *world.pools[region].ordinary.choose(&mut self.rng)?;
        let approval = self.find_approver(staff, region, slots[0], work::CROSS_BORDER_APPROVAL_NOTE)?;
        let reference = self.new_case(Purpose::Support);
        let opened = slots[0] - self.rng.random_range(1_800..=TICKET_AGE_SECONDS_MAX);
        self.open_case(
            opened,
            region,
            CaseLine {
                case: reference,
                assignees: vec![staff],
                subjects: vec![subject],
                requested_by: Some(subject),
                legal_process: None,
                destination: None,
            },
        );
        let justification = self.first_look(Purpose::Support);
        // INVARIANT: support views never include exact IP addresses or locations, which never
        // cross a border (policies/cross_border.cedar).
        let fields = self.read_of(Purpose::Support);
        self.access(
            slots[0],
            AccessLine {
                actor: staff,
                action: Action::Read,
                subjects: vec![subject],
                fields,
                case: reference,
                justification,
                approval_key: None,
            },
            Some(approval),
        );
        self.counts.cross_border_accesses += 1;
        self.settle(reference.number);
        Some(1)
    }

    /// A report about a minor's account: the analyst's read of the minor waits for an
    /// independent approval from a privacy officer. `None` when none is on shift to give it.
    fn minor_report(&mut self, staff: u32, slots: &[i64]) -> Option<usize> {
        let world = self.world;
        let region = world.staff[staff as usize].region;
        let minor = *world.pools[region].minors.choose(&mut self.rng)?;
        let approval = self.find_approver(staff, region, slots[0], work::MINOR_APPROVAL_NOTE)?;
        let reporter_count = self.rng.random_range(1..=2);
        let reporters = self.pick_ordinary(region, reporter_count, &[]);
        let mut subjects = vec![minor];
        subjects.extend(&reporters);
        let reference = self.new_case(Purpose::TrustSafety);
        let opened = slots[0] - self.rng.random_range(600..=TICKET_AGE_SECONDS_MAX);
        self.open_case(
            opened,
            region,
            CaseLine { case: reference, assignees: vec![staff], subjects, requested_by: None, legal_process: None, destination: None },
        );
        let justification = self.first_look(Purpose::TrustSafety);
        let fields = self.read_of(Purpose::TrustSafety);
        self.access(
            slots[0],
            AccessLine {
                actor: staff,
                action: Action::Read,
                subjects: vec![minor],
                fields,
                case: reference,
                justification,
                approval_key: None,
            },
            Some(approval),
        );
        let mut used = 1;
        if slots.len() >= 2 && !reporters.is_empty() {
            let fields = self.read_of(Purpose::TrustSafety);
            self.access(
                slots[1],
                AccessLine {
                    actor: staff,
                    action: Action::Read,
                    subjects: reporters,
                    fields,
                    case: reference,
                    justification,
                    approval_key: None,
                },
                None,
            );
            used = 2;
        }
        self.settle(reference.number);
        Some(used)
    }

    /// A reported account with its reporters: the analyst looks, colleagues review on later
    /// days, related accounts may join the scope.
    fn trust_safety_report(&mut self, staff: u32, day: u32, slots: &[i64]) -> usize {
        let region = self.world.staff[staff as usize].region;
        let reported = self.pick_ordinary(region, 1, &[]);
        let reporter_count = self.rng.random_range(1..=3);
        let reporters = self.pick_ordinary(region, reporter_count, &reported);
        let reported = reported[0];
        let mut assignees = vec![staff];
        for _ in 0..self.rng.random_range(0..=2) {
            if let Some(colleague) = self.pick_colleague(region, &[Role::TrustSafetyAnalyst], staff, day)
                && !assignees.contains(&colleague)
            {
                assignees.push(colleague);
            }
        }
        let mut subjects = vec![reported];
        subjects.extend(&reporters);
        let reference = self.new_case(Purpose::TrustSafety);
        let opened = slots[0] - self.rng.random_range(600..=TICKET_AGE_SECONDS_MAX);
        self.open_case(
            opened,
            region,
            CaseLine {
                case: reference,
                assignees: assignees.clone(),
                subjects,
                requested_by: None,
                legal_process: None,
                destination: None,
            },
        );
        let justification = self.first_look(Purpose::TrustSafety);
        let (action, fields) = if self.rng.random_range(0..100) < 5 {
            (Action::SearchByEmail, work::TRUST_SAFETY_SEARCH_FIELDS)
        } else {
            (Action::Read, self.read_of(Purpose::TrustSafety))
        };
        self.access(
            slots[0],
            AccessLine { actor: staff, action, subjects: vec![reported], fields, case: reference, justification, approval_key: None },
            None,
        );
        let mut used = 1;
        if slots.len() > used && self.rng.random_range(0..100) < 60 {
            let fields = self.read_of(Purpose::TrustSafety);
            self.access(
                slots[used],
                AccessLine {
                    actor: staff,
                    action: Action::Read,
                    subjects: vec![reported],
                    fields,
                    case: reference,
                    justification,
                    approval_key: None,
                },
                None,
            );
            used += 1;
        }
        if slots.len() > used && !reporters.is_empty() && self.rng.random_range(0..100) < 50 {
            let fields = self.read_of(Purpose::TrustSafety);
            self.access(
                slots[used],
                AccessLine {
                    actor: staff,
                    action: Action::Read,
                    subjects: reporters,
                    fields,
                    case: reference,
                    justification,
                    approval_key: None,
                },
                None,
            );
            used += 1;
        }
        let last = slots[used - 1];
        for colleague in &assignees[1..] {
            let due_day = day + self.rng.random_range(1..=2);
            self.add_task(*colleague, reference.number, TaskKind::Review, due_day, last + 1_800);
        }
        if self.rng.random_range(0..100) < 35 {
            let due_day = day + self.rng.random_range(1..=2);
            self.add_task(staff, reference.number, TaskKind::AddRelated, due_day, last + 3_600);
        }
        self.settle(reference.number);
        used
    }

    /// A cluster of accounts tied by devices or payments, read in batches.
    fn fraud_case(&mut self, staff: u32, day: u32, slots: &[i64]) -> usize {
        let region = self.world.staff[staff as usize].region;
        let size = self.rng.random_range(3..=8);
        let cluster = self.pick_ordinary(region, size, &[]);
        let mut assignees = vec![staff];
        if self.rng.random_range(0..100) < 30
            && let Some(colleague) = self.pick_colleague(region, &[Role::FraudAnalyst], staff, day)
        {
            assignees.push(colleague);
        }
        let reference = self.new_case(Purpose::Fraud);
        let opened = slots[0] - self.rng.random_range(600..=TICKET_AGE_SECONDS_MAX);
        self.open_case(
            opened,
            region,
            CaseLine {
                case: reference,
                assignees: assignees.clone(),
                subjects: cluster.clone(),
                requested_by: None,
                legal_process: None,
                destination: None,
            },
        );
        let justification = self.first_look(Purpose::Fraud);
        let used = self.rng.random_range(1..=3).min(slots.len());
        for slot in &slots[..used] {
            let subjects = self.batch(Purpose::Fraud, &cluster);
            let fields = self.read_of(Purpose::Fraud);
            self.access(
                *slot,
                AccessLine { actor: staff, action: Action::Read, subjects, fields, case: reference, justification, approval_key: None },
                None,
            );
        }
        let last = slots[used - 1];
        for colleague in &assignees[1..] {
            let due_day = day + self.rng.random_range(1..=2);
            self.add_task(*colleague, reference.number, TaskKind::Review, due_day, last + 1_800);
        }
        let roll = self.rng.random_range(0..100);
        if roll < 50 {
            let kind = if roll < 30 { TaskKind::FollowUp } else { TaskKind::AddRelated };
            let due_day = day + self.rng.random_range(1..=2);
            self.add_task(staff, reference.number, kind, due_day, last + 3_600);
        }
        self.settle(reference.number);
        used
    }

    /// A security incident over a set of affected accounts, in shift or — paged during the
    /// engineer's on-call week — in the evening. Uses every slot it is given.
    fn incident(&mut self, staff: u32, day: u32, slots: &[i64], page: Page) -> usize {
        let region = self.world.staff[staff as usize].region;
        let size = if page == Page::Evening { self.rng.random_range(2..=6) } else { self.rng.random_range(3..=12) };
        let affected = self.pick_ordinary(region, size, &[]);
        let mut assignees = vec![staff];
        if page == Page::None
            && self.rng.random_range(0..100) < 30
            && let Some(colleague) = self.pick_colleague(region, &[Role::SecurityEngineer, Role::Sre], staff, day)
        {
            assignees.push(colleague);
        }
        let reference = self.new_case(Purpose::SecurityIncident);
        let opened = slots[0] - self.rng.random_range(300..=3_600);
        self.open_case(
            opened,
            region,
            CaseLine {
                case: reference,
                assignees: assignees.clone(),
                subjects: affected.clone(),
                requested_by: None,
                legal_process: None,
                destination: Some(Destination::IncidentEnclave),
            },
        );
        let justification = if page == Page::Evening { work::NIGHT_PAGE_JUSTIFICATION } else { self.first_look(Purpose::SecurityIncident) };
        for slot in slots {
            let subjects = self.batch(Purpose::SecurityIncident, &affected);
            let fields = self.read_of(Purpose::SecurityIncident);
            self.access(
                *slot,
                AccessLine { actor: staff, action: Action::Read, subjects, fields, case: reference, justification, approval_key: None },
                None,
            );
        }
        let last = slots[slots.len() - 1];
        for colleague in &assignees[1..] {
            let due_day = day + self.rng.random_range(1..=2);
            self.add_task(*colleague, reference.number, TaskKind::Review, due_day, last + 1_800);
        }
        if self.rng.random_range(0..100) < 25 {
            let due_day = day + self.rng.random_range(1..=2);
            self.add_task(staff, reference.number, TaskKind::FollowUp, due_day, last + 3_600);
        }
        self.settle(reference.number);
        slots.len()
    }

    /// A validated subpoena, court order or warrant: the legal officer reads, then produces
    /// the records to the legal production destination.
    fn legal_request(&mut self, staff: u32, day: u32, slots: &[i64]) -> usize {
        let world = self.world;
        let region = world.staff[staff as usize].region;
        let count = self.rng.random_range(1..=2);
        let subjects = self.pick_ordinary(region, count, &[]);
        let validated_by = self.pick_colleague(region, &[Role::LegalOfficer], staff, day).unwrap_or(staff);
        let kind = *work::LEGAL_KINDS.choose(&mut self.rng).unwrap_or(&"subpoena");
        let issuer = *world.regions[region].courts.choose(&mut self.rng).unwrap_or(&"court");
        let reference = self.new_case(Purpose::LegalRequest);
        let opened = slots[0] - self.rng.random_range(600..=TICKET_AGE_SECONDS_MAX);
        self.open_case(
            opened,
            region,
            CaseLine {
                case: reference,
                assignees: vec![staff],
                subjects: subjects.clone(),
                requested_by: None,
                legal_process: Some(LegalProcess { kind, issuer, validated_by }),
                destination: Some(Destination::LegalProduction),
            },
        );
        let justification = self.first_look(Purpose::LegalRequest);
        let fields = self.read_of(Purpose::LegalRequest);
        self.access(
            slots[0],
            AccessLine {
                actor: staff,
                action: Action::Read,
                subjects: subjects.clone(),
                fields,
                case: reference,
                justification,
                approval_key: None,
            },
            None,
        );
        self.produce_or_schedule(staff, day, slots, reference, subjects, Destination::LegalProduction, 50)
    }

    /// A police report of a danger to life: where the person is and how to reach them.
    fn emergency_request(&mut self, staff: u32, slots: &[i64]) -> usize {
        let world = self.world;
        let region = world.staff[staff as usize].region;
        let subjects = self.pick_ordinary(region, 1, &[]);
        let reference = self.new_case(Purpose::EmergencyRequest);
        let opened = slots[0] - self.rng.random_range(300..=1_800);
        let issuer = world.regions[region].police;
        self.open_case(
            opened,
            region,
            CaseLine {
                case: reference,
                assignees: vec![staff],
                subjects: subjects.clone(),
                requested_by: None,
                legal_process: Some(LegalProcess { kind: "emergency", issuer, validated_by: staff }),
                destination: None,
            },
        );
        let justification = self.first_look(Purpose::EmergencyRequest);
        let fields = self.read_of(Purpose::EmergencyRequest);
        self.access(
            slots[0],
            AccessLine {
                actor: staff,
                action: Action::Read,
                subjects: subjects.clone(),
                fields,
                case: reference,
                justification,
                approval_key: None,
            },
            None,
        );
        let mut used = 1;
        if slots.len() >= 2 && self.rng.random_range(0..100) < 40 {
            let fields = self.read_of(Purpose::EmergencyRequest);
            self.access(
                slots[1],
                AccessLine { actor: staff, action: Action::Read, subjects, fields, case: reference, justification, approval_key: None },
                None,
            );
            used = 2;
        }
        self.settle(reference.number);
        used
    }

    /// A subject's request for a copy of their data: the privacy officer reads it all, then
    /// exports it to the subject's download.
    fn data_subject_request(&mut self, staff: u32, day: u32, slots: &[i64]) -> usize {
        let region = self.world.staff[staff as usize].region;
        let subject = self.pick_requester(region, staff);
        let reference = self.new_case(Purpose::DataSubjectRequest);
        let opened = slots[0] - self.rng.random_range(600..=TICKET_AGE_SECONDS_MAX);
        let destination = Destination::SubjectDownload(subject);
        self.open_case(
            opened,
            region,
            CaseLine {
                case: reference,
                assignees: vec![staff],
                subjects: vec![subject],
                requested_by: Some(subject),
                legal_process: None,
                destination: Some(destination),
            },
        );
        let justification = self.first_look(Purpose::DataSubjectRequest);
        let fields = self.read_of(Purpose::DataSubjectRequest);
        self.access(
            slots[0],
            AccessLine {
                actor: staff,
                action: Action::Read,
                subjects: vec![subject],
                fields,
                case: reference,
                justification,
                approval_key: None,
            },
            None,
        );
        self.produce_or_schedule(staff, day, slots, reference, vec![subject], destination, 60)
    }

    /// After a first read: the export right away (with `percent` chance, when a slot is
    /// left) or as a task on a later day. Returns the slots used, the read's included.
    #[expect(clippy::too_many_arguments, reason = "one call shape shared by the two exporting purposes")]
    fn produce_or_schedule(
        &mut self,
        staff: u32,
        day: u32,
        slots: &[i64],
        reference: CaseRef,
        subjects: Vec<u32>,
        destination: Destination,
        percent: u32,
    ) -> usize {
        let purpose = reference.purpose;
        // INVARIANT: only exporting purposes come here.
        let fields = purpose.export().expect("an exporting purpose");
        let mut used = 1;
        if slots.len() >= 2 && self.rng.random_range(0..100) < percent {
            let justification = *purpose.follow_ups().choose(&mut self.rng).unwrap_or(&"");
            self.access(
                slots[1],
                AccessLine {
                    actor: staff,
                    action: Action::Export(destination),
                    subjects,
                    fields,
                    case: reference,
                    justification,
                    approval_key: None,
                },
                None,
            );
            used = 2;
        } else {
            let due_day = day + self.rng.random_range(1..=2);
            self.add_task(staff, reference.number, TaskKind::Export, due_day, slots[0] + 3_600);
        }
        self.settle(reference.number);
        used
    }

    fn new_case(&mut self, purpose: Purpose) -> CaseRef {
        let number = self.next_case;
        self.next_case += 1;
        CaseRef { number, purpose }
    }

    fn open_case(&mut self, at: i64, region: usize, line: CaseLine) {
        let open = OpenCase {
            reference: line.case,
            region,
            subjects: line.subjects.iter().map(|subject| (*subject, at)).collect(),
            requested_by: line.requested_by,
            outstanding: 0,
            last_at: at,
        };
        self.cases.insert(line.case.number, open);
        self.schedule(at, Event::Case(Box::new(line)));
    }

    fn add_task(&mut self, staff: u32, case: u64, kind: TaskKind, due_day: u32, not_before: i64) {
        if let Some(open) = self.cases.get_mut(&case) {
            open.outstanding += 1;
            open.last_at = open.last_at.max(not_before);
        }
        self.sequence += 1;
        self.agendas[staff as usize].push(Task { case, kind, due_day, not_before, sequence: self.sequence });
    }

    fn task_done(&mut self, case: u64, at: i64) {
        if let Some(open) = self.cases.get_mut(&case) {
            // INVARIANT: a task is done once; its case counted it when it was scheduled.
            assert!(open.outstanding > 0, "case {} finished more tasks than it had", open.reference.number);
            open.outstanding -= 1;
            open.last_at = open.last_at.max(at);
        }
        self.settle(case);
    }

    /// Closes the case once no task is outstanding, a little after its last line.
    fn settle(&mut self, case: u64) {
        if self.cases.get(&case).is_some_and(|open| open.outstanding == 0)
            && let Some(open) = self.cases.remove(&case)
        {
            let at = open.last_at + self.rng.random_range(300..=7_200);
            self.schedule(at, Event::CaseUpdate { case: open.reference, change: CaseChange::Close });
        }
    }

    fn access(&mut self, at: i64, mut line: AccessLine, approval: Option<Approval>) {
        let case = line.case.number;
        let mut last = at;
        let key = approval.as_ref().map(|_| {
            self.next_approval_key += 1;
            self.next_approval_key
        });
        line.approval_key = key;
        self.accesses_scheduled += 1;
        self.schedule(at, Event::Access(Box::new(line)));
        if let (Some(approval), Some(key)) = (approval, key) {
            self.schedule(approval.at, Event::Approve { key, approver: approval.approver, note: approval.note });
            last = approval.at;
        }
        if let Some(open) = self.cases.get_mut(&case) {
            open.last_at = open.last_at.max(last);
        }
    }

    /// A privacy officer of `region` on shift a few minutes after `at`, while the requester
    /// is still on shift to open the approved request.
    fn find_approver(&mut self, requester: u32, region: usize, at: i64, note: &'static str) -> Option<Approval> {
        let world = self.world;
        let approve_at = at + self.rng.random_range(APPROVAL_DELAY_SECONDS.0..=APPROVAL_DELAY_SECONDS.1);
        if !on_shift(world, requester, approve_at) {
            return None;
        }
        let pool = world.staff_of(region, Role::PrivacyOfficer);
        let first = self.rng.random_range(0..pool.len().max(1));
        (0..pool.len())
            .map(|offset| pool[(first + offset) % pool.len()])
            .find(|officer| *officer != requester && on_shift(world, *officer, approve_at))
            .map(|approver| Approval { approver, at: approve_at, note })
    }

    /// Whether `staff` may read `subject` without anyone's approval: same region, and either
    /// no protection label or the subject asked for the case themselves — and never their
    /// own account.
    fn readable(&self, staff: u32, subject: u32, requested_by: Option<u32>) -> bool {
        let record = &self.world.subjects[subject as usize];
        record.region as usize == self.world.staff[staff as usize].region
            && (record.label.is_none() || requested_by == Some(subject))
            && record.staff != Some(staff)
    }

    /// A subject of the region to open a case about themselves; anyone but the agent's own
    /// account.
    fn pick_requester(&mut self, region: usize, staff: u32) -> u32 {
        let pools = &self.world.pools[region];
        for _ in 0..8 {
            if let Some(subject) = pools.all.choose(&mut self.rng)
                && self.world.subjects[*subject as usize].staff != Some(staff)
            {
                return *subject;
            }
        }
        // INVARIANT: World::build refuses a region without ordinary subjects.
        *pools.ordinary.choose(&mut self.rng).expect("every region has ordinary subjects")
    }

    /// Up to `count` distinct subjects without a protection label, none of `exclude`.
    fn pick_ordinary(&mut self, region: usize, count: usize, exclude: &[u32]) -> Vec<u32> {
        let pool = &self.world.pools[region].ordinary;
        let mut chosen: Vec<u32> = Vec::with_capacity(count);
        let mut tries = 0;
        while chosen.len() < count && tries < 20 * count + 20 {
            tries += 1;
            if let Some(subject) = pool.choose(&mut self.rng)
                && !exclude.contains(subject)
                && !chosen.contains(subject)
            {
                chosen.push(*subject);
            }
        }
        chosen
    }

    /// Another person of one of `roles` in the region, working by `day`.
    fn pick_colleague(&mut self, region: usize, roles: &[Role], staff: u32, day: u32) -> Option<u32> {
        let world = self.world;
        let pool: Vec<u32> = roles
            .iter()
            .flat_map(|role| world.staff_of(region, *role).iter().copied())
            .filter(|colleague| *colleague != staff && world.staff[*colleague as usize].hire_day <= day)
            .collect();
        pool.choose(&mut self.rng).copied()
    }

    /// Which of the readable subjects one access names: a few of a cluster or an incident,
    /// all of a small case.
    fn batch(&mut self, purpose: Purpose, readable: &[u32]) -> Vec<u32> {
        match purpose {
            Purpose::Fraud | Purpose::SecurityIncident => {
                let size = self.rng.random_range(2..=5).min(readable.len());
                readable.choose_multiple(&mut self.rng, size).copied().collect()
            }
            Purpose::TrustSafety => readable.choose(&mut self.rng).copied().into_iter().collect(),
            _ => readable.to_vec(),
        }
    }

    fn read_of(&mut self, purpose: Purpose) -> Fields {
        // INVARIANT: every purpose has at least one read (work.rs).
        purpose.reads().choose(&mut self.rng).copied().expect("every purpose has reads")
    }

    fn first_look(&mut self, purpose: Purpose) -> &'static str {
        purpose.first_looks().choose(&mut self.rng).copied().unwrap_or("")
    }
}

/// An approval a privacy officer gives to an access.
struct Approval {
    approver: u32,
    at: i64,
    note: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Page {
    /// Work inside the shift.
    None,
    /// Paged in the evening of an on-call week.
    Evening,
}

fn destination_of(purpose: Purpose, subject: Option<u32>) -> Destination {
    match (purpose, subject) {
        (Purpose::DataSubjectRequest, Some(subject)) => Destination::SubjectDownload(subject),
        (Purpose::SecurityIncident, _) => Destination::IncidentEnclave,
        _ => Destination::LegalProduction,
    }
}
