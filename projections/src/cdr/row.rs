//! The stored form of a [`Cdr`]: one flat row with the table's column names, enums as their
//! text (the disposition as Asterisk spells it, the rest in `snake_case`). Both SQL stores write
//! and read through it; PostgreSQL takes and returns it as JSON (`json_populate_recordset`,
//! `row_to_json`).

use chrono::{DateTime, Utc};
use events::GlobalPosition;
use events::ids::{CallId, DepartmentId, LegId, UserId};
use events::model::Disposition;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Cdr;

/// Every column of the `cdr` table, in table order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct DbRow {
    pub(super) linkedid: Uuid,
    pub(super) uniqueid: Uuid,
    pub(super) sequence: i64,
    pub(super) tenant: Option<String>,
    pub(super) direction: String,
    pub(super) leg_role: String,
    pub(super) src: Option<String>,
    pub(super) src_name: Option<String>,
    pub(super) clid: String,
    pub(super) src_user: Option<String>,
    pub(super) src_department: Option<String>,
    pub(super) dst: Option<String>,
    pub(super) dst_name: Option<String>,
    pub(super) dst_user: Option<String>,
    pub(super) dst_department: Option<String>,
    pub(super) dnid: Option<String>,
    pub(super) channel: String,
    pub(super) dstchannel: Option<String>,
    pub(super) user_id: Option<String>,
    pub(super) department: Option<String>,
    pub(super) trunk: Option<String>,
    pub(super) start_at: DateTime<Utc>,
    pub(super) answer_at: Option<DateTime<Utc>>,
    pub(super) end_at: DateTime<Utc>,
    pub(super) duration: i64,
    pub(super) billsec: i64,
    pub(super) duration_ms: i64,
    pub(super) billable_ms: i64,
    pub(super) disposition: String,
    pub(super) hangup_cause: String,
    pub(super) q850: Option<i64>,
    pub(super) hangup_side: String,
    pub(super) sip_status: Option<i64>,
    pub(super) positions: Vec<i64>,
    pub(super) end_position: i64,
}

/// The columns, in table order (for INSERT and SELECT lists).
pub(super) const COLUMNS: &[&str] = &[
    "linkedid",
    "uniqueid",
    "sequence",
    "tenant",
    "direction",
    "leg_role",
    "src",
    "src_name",
    "clid",
    "src_user",
    "src_department",
    "dst",
    "dst_name",
    "dst_user",
    "dst_department",
    "dnid",
    "channel",
    "dstchannel",
    "user_id",
    "department",
    "trunk",
    "start_at",
    "answer_at",
    "end_at",
    "duration",
    "billsec",
    "duration_ms",
    "billable_ms",
    "disposition",
    "hangup_cause",
    "q850",
    "hangup_side",
    "sip_status",
    "positions",
    "end_position",
];

/// The `snake_case` text serde gives a unit enum value.
pub(super) fn enum_text<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

fn parse_enum<T: DeserializeOwned>(column: &str, text: &str) -> Result<T, String> {
    serde_json::from_value(serde_json::Value::String(text.to_owned()))
        .map_err(|_| format!("{column} holds an unknown value {text:?}"))
}

fn parse_disposition(text: &str) -> Result<Disposition, String> {
    Ok(match text {
        "ANSWERED" => Disposition::Answered,
        "NO ANSWER" => Disposition::NoAnswer,
        "BUSY" => Disposition::Busy,
        "FAILED" => Disposition::Failed,
        "CANCELLED" => Disposition::Cancelled,
        "CONGESTION" => Disposition::Congestion,
        other => return Err(format!("disposition holds an unknown value {other:?}")),
    })
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn to_u64(column: &str, n: i64) -> Result<u64, String> {
    u64::try_from(n).map_err(|_| format!("{column} is negative ({n})"))
}

fn slug<T: std::str::FromStr<Err = events::ids::IdError>>(
    column: &str,
    text: Option<String>,
) -> Result<Option<T>, String> {
    text.map(|s| s.parse().map_err(|e| format!("{column}: {e}")))
        .transpose()
}

impl From<&Cdr> for DbRow {
    fn from(c: &Cdr) -> Self {
        let text = |s: &Option<UserId>| s.as_ref().map(|u| u.to_string());
        let dept = |s: &Option<DepartmentId>| s.as_ref().map(|d| d.to_string());
        DbRow {
            linkedid: c.linkedid.as_uuid(),
            uniqueid: c.uniqueid.as_uuid(),
            sequence: i64::from(c.sequence),
            tenant: c.tenant.as_ref().map(|t| t.to_string()),
            direction: enum_text(&c.direction),
            leg_role: enum_text(&c.leg_role),
            src: c.src.clone(),
            src_name: c.src_name.clone(),
            clid: c.clid.clone(),
            src_user: text(&c.src_user),
            src_department: dept(&c.src_department),
            dst: c.dst.clone(),
            dst_name: c.dst_name.clone(),
            dst_user: text(&c.dst_user),
            dst_department: dept(&c.dst_department),
            dnid: c.dnid.clone(),
            channel: c.channel.clone(),
            dstchannel: c.dstchannel.clone(),
            user_id: text(&c.user),
            department: dept(&c.department),
            trunk: c.trunk.as_ref().map(|t| t.to_string()),
            start_at: c.start,
            answer_at: c.answer,
            end_at: c.end,
            duration: to_i64(c.duration),
            billsec: to_i64(c.billsec),
            duration_ms: to_i64(c.duration_ms),
            billable_ms: to_i64(c.billable_ms),
            disposition: c.disposition.as_cdr_str().to_owned(),
            hangup_cause: enum_text(&c.hangup_cause),
            q850: c.q850.map(i64::from),
            hangup_side: enum_text(&c.hangup_side),
            sip_status: c.sip_status.map(i64::from),
            positions: c.positions.iter().map(|p| to_i64(p.0)).collect(),
            end_position: to_i64(c.end_position().0),
        }
    }
}

impl DbRow {
    /// Back to a record; the message names the first column that does not parse.
    pub(super) fn into_cdr(self) -> Result<Cdr, String> {
        let small = |column: &str, n: Option<i64>| -> Result<Option<u16>, String> {
            n.map(|n| u16::try_from(n).map_err(|_| format!("{column} is out of range ({n})")))
                .transpose()
        };
        Ok(Cdr {
            linkedid: CallId::from_uuid(self.linkedid),
            uniqueid: LegId::from_uuid(self.uniqueid),
            sequence: u32::try_from(self.sequence)
                .map_err(|_| format!("sequence is out of range ({})", self.sequence))?,
            tenant: slug("tenant", self.tenant)?,
            direction: parse_enum("direction", &self.direction)?,
            leg_role: parse_enum("leg_role", &self.leg_role)?,
            src: self.src,
            src_name: self.src_name,
            clid: self.clid,
            src_user: slug("src_user", self.src_user)?,
            src_department: slug("src_department", self.src_department)?,
            dst: self.dst,
            dst_name: self.dst_name,
            dst_user: slug("dst_user", self.dst_user)?,
            dst_department: slug("dst_department", self.dst_department)?,
            dnid: self.dnid,
            channel: self.channel,
            dstchannel: self.dstchannel,
            user: slug("user_id", self.user_id)?,
            department: slug("department", self.department)?,
            trunk: slug("trunk", self.trunk)?,
            start: self.start_at,
            answer: self.answer_at,
            end: self.end_at,
            duration: to_u64("duration", self.duration)?,
            billsec: to_u64("billsec", self.billsec)?,
            duration_ms: to_u64("duration_ms", self.duration_ms)?,
            billable_ms: to_u64("billable_ms", self.billable_ms)?,
            disposition: parse_disposition(&self.disposition)?,
            hangup_cause: parse_enum("hangup_cause", &self.hangup_cause)?,
            q850: small("q850", self.q850)?,
            hangup_side: parse_enum("hangup_side", &self.hangup_side)?,
            sip_status: small("sip_status", self.sip_status)?,
            positions: self
                .positions
                .into_iter()
                .map(|p| to_u64("positions", p).map(GlobalPosition))
                .collect::<Result<_, _>>()?,
        })
    }
}
