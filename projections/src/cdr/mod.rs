//! Call detail records: one per call leg, folded from the call's own stream. A leg's record is
//! complete when its `LegEnded` arrives (the event carries the cause, disposition, duration and
//! billable time the engine decided); the fold adds who was on either side, when the leg began
//! and was answered, the call's direction, dialled number and trunk, the tenant and department,
//! and the log positions of the events the row was made from.
//!
//! Columns follow Asterisk's CDR where one exists: `src`, `dst`, `clid`, `dnid`, `channel`,
//! `dstchannel`, `start`, `answer`, `end`, `duration` and `billsec` (whole seconds, truncated as
//! Asterisk does), `disposition` (`ANSWERED`, `NO ANSWER`, `BUSY`, `FAILED`, `CANCELLED`,
//! `CONGESTION`), `uniqueid` (the leg) and `linkedid` (the call). For the caller's leg the source
//! is the caller and the destination whoever answered (else the callee dialled); for every other
//! leg the source is the leg it was rung for (else the caller) and the destination the leg's own
//! party. `department` is the leg's own party's department, or the other side's when the party
//! is external.
//!
//! The fold is pure ([`CdrFold`]); [`CdrProjection`] runs it under the runner and keeps the rows,
//! the state of calls still in progress and the checkpoint in one transaction per batch, in the
//! store beside the log ([`CdrStore`]: a SQLite file beside the log's, the PostgreSQL database,
//! or memory).

mod csv;
mod postgres;
mod projection;
mod query;
mod row;
mod sqlite;
mod store;
#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Utc};
use events::GlobalPosition;
use events::codec::Recorded;
use events::ids::{CallId, DepartmentId, LegId, PhoneNumber, TenantId, TrunkId, UserId};
use events::model::{
    CallEvent, Direction, Disposition, Event, HangupCause, HangupSide, LegRole, Party,
};
use serde::{Deserialize, Serialize, Serializer};

pub use csv::{CSV_COLUMNS, render_csv, write_csv};
pub use postgres::PgCdrStore;
pub use projection::{
    COMMIT_EVENTS, COMMIT_ROWS, CdrProjection, LIVE_CHECKPOINT_EVENTS, LIVE_CHECKPOINT_EVERY,
};
pub use query::{CdrQuery, DEFAULT_LIMIT, Visibility};
pub use sqlite::SqliteCdrStore;
pub use store::{CdrCommit, CdrStore, MemoryCdrStore, cdr_file};

/// The stored types of the events the CDR fold uses; every other event leaves it unchanged. (A
/// test applies every other type to a call in progress to hold this list to the code.)
pub const CDR_EVENTS: &[&str] = &[
    "CallCreated",
    "LegCreated",
    "CallAnswered",
    "LegPartyUpdated",
    "AttendedTransferred",
    "CallPickedUp",
    "LegEnded",
    "CallEnded",
];

/// The checkpoint name of the CDR projection.
pub const CHECKPOINT: &str = "cdr";

/// One call leg's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cdr {
    /// The call (Asterisk's linkedid).
    pub linkedid: CallId,
    /// The leg (Asterisk's uniqueid).
    pub uniqueid: LegId,
    /// The leg's place among the call's legs, from 0.
    pub sequence: u32,
    pub tenant: Option<TenantId>,
    /// The call's direction across the system boundary.
    pub direction: Direction,
    pub leg_role: LegRole,
    /// The calling side's number.
    pub src: Option<String>,
    pub src_name: Option<String>,
    /// Caller id as Asterisk writes it: `"Name" <number>`.
    pub clid: String,
    pub src_user: Option<UserId>,
    pub src_department: Option<DepartmentId>,
    /// The called side's number.
    pub dst: Option<String>,
    pub dst_name: Option<String>,
    pub dst_user: Option<UserId>,
    pub dst_department: Option<DepartmentId>,
    /// The number as dialled.
    pub dnid: Option<String>,
    /// This leg as a channel name (`PJSIP/1001-0a1b2c3d`).
    pub channel: String,
    /// The leg on the other side, when there was one.
    pub dstchannel: Option<String>,
    /// The user on this leg.
    pub user: Option<UserId>,
    pub department: Option<DepartmentId>,
    pub trunk: Option<TrunkId>,
    pub start: DateTime<Utc>,
    pub answer: Option<DateTime<Utc>>,
    pub end: DateTime<Utc>,
    /// Whole seconds from start to end.
    pub duration: u64,
    /// Whole seconds from answer to end (0 if never answered).
    pub billsec: u64,
    pub duration_ms: u64,
    pub billable_ms: u64,
    #[serde(serialize_with = "serialize_disposition")]
    pub disposition: Disposition,
    pub hangup_cause: HangupCause,
    /// The Q.850 cause code, when the cause has one.
    pub q850: Option<u16>,
    /// Which side ended the leg.
    pub hangup_side: HangupSide,
    pub sip_status: Option<u16>,
    /// Log positions of the events this row was folded from, ascending; the last is the
    /// leg's `LegEnded`.
    pub positions: Vec<GlobalPosition>,
}

fn serialize_disposition<S: Serializer>(d: &Disposition, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(d.as_cdr_str())
}

/// The rows as a JSON array, with the column names of [`Cdr`] (times in RFC 3339, the
/// disposition as Asterisk spells it).
pub fn render_json(rows: &[Cdr]) -> String {
    // Rows are plain data: serialising them cannot fail.
    serde_json::to_string(rows).unwrap_or_else(|_| "[]".to_owned())
}

impl Cdr {
    /// The position of the leg's `LegEnded`.
    pub fn end_position(&self) -> GlobalPosition {
        self.positions.last().copied().unwrap_or_default()
    }
}

/// The fold's state for a call in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenCall {
    call: CallId,
    tenant: Option<TenantId>,
    direction: Direction,
    caller: Party,
    callee: Party,
    dialled: PhoneNumber,
    trunk: Option<TrunkId>,
    /// Position of `CallCreated`.
    created: GlobalPosition,
    legs: Vec<OpenLeg>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct OpenLeg {
    id: LegId,
    sequence: u32,
    role: LegRole,
    party: Party,
    /// The leg on the other side: the one this leg was rung for, or (for the leg others were
    /// rung for) the one that answered.
    peer: Option<LegId>,
    created_at: DateTime<Utc>,
    answered_at: Option<DateTime<Utc>>,
    positions: Vec<GlobalPosition>,
    ended: bool,
}

impl OpenCall {
    /// The call this state belongs to.
    pub fn call(&self) -> CallId {
        self.call
    }

    fn leg(&self, id: LegId) -> Option<&OpenLeg> {
        self.legs.iter().find(|l| l.id == id)
    }

    fn leg_mut(&mut self, id: LegId) -> Option<&mut OpenLeg> {
        self.legs.iter_mut().find(|l| l.id == id)
    }

    fn add_leg(
        &mut self,
        id: LegId,
        role: LegRole,
        party: Party,
        peer: Option<LegId>,
        at: DateTime<Utc>,
        position: GlobalPosition,
    ) {
        if self.leg(id).is_some() {
            return;
        }
        self.legs.push(OpenLeg {
            id,
            sequence: u32::try_from(self.legs.len()).unwrap_or(u32::MAX),
            role,
            party,
            peer,
            created_at: at,
            answered_at: None,
            positions: vec![self.created, position],
            ended: false,
        });
    }
}

/// The pure CDR fold: calls in progress, and which of them changed since the last
/// [`CdrFold::take_dirty`].
#[derive(Debug, Clone, Default)]
pub struct CdrFold {
    open: HashMap<CallId, OpenCall>,
    /// Open calls changed since the last take.
    touched: BTreeSet<CallId>,
    /// Calls whose state is in the store (loaded or written, not yet deleted).
    stored: HashSet<CallId>,
    /// Stored calls that ended since the last take.
    closed: BTreeSet<CallId>,
}

/// What the store must write for the fold to resume where it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirtyCalls {
    /// Calls in progress whose state changed.
    pub open: Vec<OpenCall>,
    /// Calls that ended and whose stored state must go.
    pub closed: Vec<CallId>,
}

impl CdrFold {
    pub fn new() -> Self {
        Self::default()
    }

    /// A fold resuming with the stored states of calls in progress.
    pub fn resume(open: Vec<OpenCall>) -> Self {
        let mut fold = Self::default();
        for call in open {
            fold.stored.insert(call.call);
            fold.open.insert(call.call, call);
        }
        fold
    }

    /// Calls in progress.
    pub fn open_calls(&self) -> usize {
        self.open.len()
    }

    /// Whether anything changed since the last take.
    pub fn is_dirty(&self) -> bool {
        !self.touched.is_empty() || !self.closed.is_empty()
    }

    /// Takes what changed since the last take.
    pub fn take_dirty(&mut self) -> DirtyCalls {
        let mut open = Vec::with_capacity(self.touched.len());
        for id in std::mem::take(&mut self.touched) {
            if let Some(call) = self.open.get(&id) {
                open.push(call.clone());
                self.stored.insert(id);
            }
        }
        DirtyCalls {
            open,
            closed: std::mem::take(&mut self.closed).into_iter().collect(),
        }
    }

    /// Folds one event; returns the record it completed, if it ended a leg.
    pub fn apply(&mut self, r: &Recorded) -> Option<Cdr> {
        let Event::Call(e) = &r.event else {
            return None;
        };
        let at = r.metadata.occurred_at;
        let position = r.position;
        use CallEvent as C;
        if let C::CallCreated {
            call,
            direction,
            caller,
            callee,
            dialled,
            trunk,
            ..
        } = e
        {
            if !self.open.contains_key(call) {
                self.open.insert(
                    *call,
                    OpenCall {
                        call: *call,
                        tenant: r.metadata.tenant.clone(),
                        direction: *direction,
                        caller: caller.clone(),
                        callee: callee.clone(),
                        dialled: dialled.clone(),
                        trunk: trunk.clone(),
                        created: position,
                        legs: Vec::new(),
                    },
                );
                self.touched.insert(*call);
            }
            return None;
        }
        let id = match e {
            C::LegCreated { call, .. }
            | C::CallAnswered { call, .. }
            | C::LegPartyUpdated { call, .. }
            | C::AttendedTransferred { call, .. }
            | C::CallPickedUp { call, .. }
            | C::LegEnded { call, .. }
            | C::CallEnded { call, .. } => *call,
            _ => return None,
        };
        if let C::CallEnded { .. } = e {
            if self.open.remove(&id).is_some() {
                self.touched.remove(&id);
                if self.stored.remove(&id) {
                    self.closed.insert(id);
                }
            }
            return None;
        }
        let call = self.open.get_mut(&id)?;
        self.touched.insert(id);
        match e {
            C::LegCreated {
                leg,
                role,
                party,
                parent,
                ..
            } => call.add_leg(*leg, *role, party.clone(), *parent, at, position),
            C::CallAnswered { leg, .. } => {
                let l = call.leg_mut(*leg)?;
                if l.ended || l.answered_at.is_some() {
                    return None;
                }
                l.answered_at = Some(at);
                l.positions.push(position);
                let parent = if l.role == LegRole::Caller {
                    None
                } else {
                    l.peer
                };
                // The leg this one was rung for is now talking to it.
                if let Some(p) = parent.and_then(|p| call.leg_mut(p))
                    && !p.ended
                {
                    p.peer = Some(*leg);
                    p.positions.push(position);
                }
            }
            C::LegPartyUpdated { leg, party, .. } => {
                if let Some(l) = call.leg_mut(*leg) {
                    l.party = party.clone();
                    l.positions.push(position);
                }
            }
            C::AttendedTransferred {
                transferee_leg,
                target_leg,
                target,
                ..
            } => {
                call.add_leg(
                    *target_leg,
                    LegRole::Callee,
                    target.clone(),
                    Some(*transferee_leg),
                    at,
                    position,
                );
                if let Some(l) = call.leg_mut(*target_leg)
                    && l.answered_at.is_none()
                {
                    l.answered_at = Some(at);
                }
                if let Some(t) = call.leg_mut(*transferee_leg)
                    && !t.ended
                {
                    t.peer = Some(*target_leg);
                    t.positions.push(position);
                }
            }
            C::CallPickedUp {
                ringing_leg,
                picker_leg,
                picked_by,
                ..
            } => {
                let peer = call.leg(*ringing_leg).and_then(|l| l.peer);
                call.add_leg(
                    *picker_leg,
                    LegRole::Callee,
                    picked_by.clone(),
                    peer,
                    at,
                    position,
                );
            }
            C::LegEnded {
                leg,
                cause,
                disposition,
                ended_by,
                sip_status,
                duration_ms,
                billable_ms,
                ..
            } => {
                let l = call.leg_mut(*leg)?;
                if l.ended {
                    return None;
                }
                l.ended = true;
                l.positions.push(position);
                let ended = Ended {
                    at,
                    cause: *cause,
                    disposition: *disposition,
                    side: *ended_by,
                    sip_status: *sip_status,
                    duration_ms: *duration_ms,
                    billable_ms: *billable_ms,
                };
                return call.leg(*leg).map(|l| record(call, l, &ended));
            }
            _ => {}
        }
        None
    }
}

/// What `LegEnded` says.
struct Ended {
    at: DateTime<Utc>,
    cause: HangupCause,
    disposition: Disposition,
    side: HangupSide,
    sip_status: Option<u16>,
    duration_ms: u64,
    billable_ms: u64,
}

fn record(call: &OpenCall, leg: &OpenLeg, end: &Ended) -> Cdr {
    let peer = leg.peer.and_then(|p| call.leg(p));
    let (src, dst) = if leg.role == LegRole::Caller {
        (&leg.party, peer.map_or(&call.callee, |p| &p.party))
    } else {
        (peer.map_or(&call.caller, |p| &p.party), &leg.party)
    };
    let other = if leg.role == LegRole::Caller {
        dst
    } else {
        src
    };
    let mut positions = leg.positions.clone();
    positions.sort();
    positions.dedup();
    Cdr {
        linkedid: call.call,
        uniqueid: leg.id,
        sequence: leg.sequence,
        tenant: call.tenant.clone(),
        direction: call.direction,
        leg_role: leg.role,
        src: number_of(src),
        src_name: src.name.clone(),
        clid: clid(src),
        src_user: src.user.clone(),
        src_department: src.department.clone(),
        dst: number_of(dst),
        dst_name: dst.name.clone(),
        dst_user: dst.user.clone(),
        dst_department: dst.department.clone(),
        dnid: Some(call.dialled.to_string()),
        channel: channel(&leg.party, leg.id),
        dstchannel: peer.map(|p| channel(&p.party, p.id)),
        user: leg.party.user.clone(),
        department: leg
            .party
            .department
            .clone()
            .or_else(|| other.department.clone()),
        trunk: leg.party.trunk.clone().or_else(|| call.trunk.clone()),
        start: leg.created_at,
        answer: leg.answered_at,
        end: end.at,
        duration: end.duration_ms / 1000,
        billsec: end.billable_ms / 1000,
        duration_ms: end.duration_ms,
        billable_ms: end.billable_ms,
        disposition: end.disposition,
        hangup_cause: end.cause,
        q850: end.cause.q850(),
        hangup_side: end.side,
        sip_status: end.sip_status,
        positions,
    }
}

fn number_of(p: &Party) -> Option<String> {
    p.number
        .as_ref()
        .map(|n| n.to_string())
        .or_else(|| p.extension.as_ref().map(|e| e.to_string()))
}

/// `"Name" <number>`, as Asterisk's `clid` column.
fn clid(p: &Party) -> String {
    format!(
        "\"{}\" <{}>",
        p.name.as_deref().unwrap_or("").replace('"', "'"),
        number_of(p).unwrap_or_default()
    )
}

/// A channel-like name for a leg: technology, endpoint (extension, trunk or number) and the
/// last eight hex digits of the leg id.
fn channel(p: &Party, leg: LegId) -> String {
    let endpoint = p
        .extension
        .as_ref()
        .map(|e| e.to_string())
        .or_else(|| p.trunk.as_ref().map(|t| t.to_string()))
        .or_else(|| p.number.as_ref().map(|n| n.to_string()))
        .unwrap_or_else(|| "anonymous".to_owned());
    let id = leg.as_uuid().simple().to_string();
    format!("PJSIP/{endpoint}-{}", &id[id.len() - 8..])
}
