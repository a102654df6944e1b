//! CSV rendering of CDRs (RFC 4180): a header row of Asterisk-style column names, CRLF line
//! ends, and a field quoted — with inner quotes doubled — whenever it holds a comma, a quote, a
//! CR or an LF. Times are `YYYY-MM-DD HH:MM:SS` in UTC, as Asterisk's CSV writes them; the
//! positions are space-separated. Free-text name fields that a spreadsheet would take for a
//! formula (starting with `=`, `+`, `-`, `@`, tab or CR) get a leading `'`.

use std::io::{self, Write};

use chrono::{DateTime, Utc};

use super::Cdr;
use super::row::enum_text;

/// The header row, in column order.
pub const CSV_COLUMNS: &[&str] = &[
    "start",
    "answer",
    "end",
    "clid",
    "src",
    "dst",
    "dnid",
    "channel",
    "dstchannel",
    "duration",
    "billsec",
    "disposition",
    "hangup_cause",
    "q850",
    "hangup_side",
    "sip_status",
    "direction",
    "leg_role",
    "uniqueid",
    "linkedid",
    "sequence",
    "tenant",
    "user",
    "department",
    "src_name",
    "src_user",
    "src_department",
    "dst_name",
    "dst_user",
    "dst_department",
    "trunk",
    "duration_ms",
    "billable_ms",
    "positions",
];

/// The rows as one CSV document.
pub fn render_csv(rows: &[Cdr]) -> String {
    let mut out = Vec::new();
    // Writing to a Vec cannot fail.
    let _ = write_csv(&mut out, rows);
    String::from_utf8(out).unwrap_or_default()
}

/// Writes the header and `rows` to `w`.
pub fn write_csv(w: &mut impl Write, rows: &[Cdr]) -> io::Result<()> {
    write_line(w, CSV_COLUMNS.iter().map(|c| (*c).to_owned()))?;
    for c in rows {
        let time = |t: &DateTime<Utc>| t.format("%Y-%m-%d %H:%M:%S").to_string();
        let opt = |s: &Option<String>| s.clone().unwrap_or_default();
        let fields = vec![
            time(&c.start),
            c.answer.as_ref().map(time).unwrap_or_default(),
            time(&c.end),
            c.clid.clone(),
            opt(&c.src),
            opt(&c.dst),
            opt(&c.dnid),
            c.channel.clone(),
            opt(&c.dstchannel),
            c.duration.to_string(),
            c.billsec.to_string(),
            c.disposition.as_cdr_str().to_owned(),
            enum_text(&c.hangup_cause),
            show(&c.q850),
            enum_text(&c.hangup_side),
            show(&c.sip_status),
            enum_text(&c.direction),
            enum_text(&c.leg_role),
            c.uniqueid.to_string(),
            c.linkedid.to_string(),
            c.sequence.to_string(),
            show(&c.tenant),
            show(&c.user),
            show(&c.department),
            defuse(&opt(&c.src_name)),
            show(&c.src_user),
            show(&c.src_department),
            defuse(&opt(&c.dst_name)),
            show(&c.dst_user),
            show(&c.dst_department),
            show(&c.trunk),
            c.duration_ms.to_string(),
            c.billable_ms.to_string(),
            c.positions
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(" "),
        ];
        write_line(w, fields.into_iter())?;
    }
    Ok(())
}

fn show<T: std::fmt::Display>(value: &Option<T>) -> String {
    value.as_ref().map(|v| v.to_string()).unwrap_or_default()
}

fn write_line(w: &mut impl Write, fields: impl Iterator<Item = String>) -> io::Result<()> {
    for (i, field) in fields.enumerate() {
        if i > 0 {
            w.write_all(b",")?;
        }
        w.write_all(quote(&field).as_bytes())?;
    }
    w.write_all(b"\r\n")
}

/// One field, quoted when RFC 4180 requires it.
pub(super) fn quote(field: &str) -> String {
    if field.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_owned()
    }
}

/// Keeps a spreadsheet from reading a caller's name as a formula.
fn defuse(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    }
}
