//! What a CDR query asks: always one tenant; optionally a date range on the leg's start
//! (`from` inclusive, `to` exclusive), a user (rows where they are the source or destination),
//! departments (rows whose source or destination is in one of them), and a visibility rule for
//! authorisation — rows involving the viewer themself *or* one of the departments they were
//! granted (an empty rule sees nothing). Results are ordered by start, call and leg sequence,
//! and capped by `limit`.
//!
//! [`CdrQuery::matches`] is the reference predicate: the memory store filters with it and the
//! SQL stores' tests compare their answers with it.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use events::ids::{DepartmentId, TenantId, UserId};

use super::Cdr;

/// Rows a query returns unless it says otherwise.
pub const DEFAULT_LIMIT: usize = 10_000;

/// Who is asking: they may see rows that involve them, or any of their granted departments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Visibility {
    pub user: Option<UserId>,
    pub departments: BTreeSet<DepartmentId>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CdrQuery {
    pub tenant: TenantId,
    /// Legs that started at or after this instant.
    pub from: Option<DateTime<Utc>>,
    /// Legs that started before this instant.
    pub to: Option<DateTime<Utc>>,
    /// Only rows where this user is the source or the destination.
    pub user: Option<UserId>,
    /// Only rows whose source or destination department is one of these.
    pub departments: Option<BTreeSet<DepartmentId>>,
    /// Authorisation: only rows this viewer may see.
    pub visible_to: Option<Visibility>,
    pub limit: usize,
}

impl CdrQuery {
    /// Every row of `tenant` (up to [`DEFAULT_LIMIT`]).
    pub fn new(tenant: TenantId) -> Self {
        Self {
            tenant,
            from: None,
            to: None,
            user: None,
            departments: None,
            visible_to: None,
            limit: DEFAULT_LIMIT,
        }
    }

    pub fn between(mut self, from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>) -> Self {
        self.from = from;
        self.to = to;
        self
    }

    pub fn for_user(mut self, user: UserId) -> Self {
        self.user = Some(user);
        self
    }

    pub fn in_departments(mut self, departments: BTreeSet<DepartmentId>) -> Self {
        self.departments = Some(departments);
        self
    }

    /// Restricts to what `user` may see: their own calls and those of `granted` departments.
    pub fn visible_to(mut self, user: Option<UserId>, granted: BTreeSet<DepartmentId>) -> Self {
        self.visible_to = Some(Visibility {
            user,
            departments: granted,
        });
        self
    }

    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }

    /// Whether `cdr` answers this query (ignoring the limit).
    pub fn matches(&self, cdr: &Cdr) -> bool {
        let involves_user =
            |u: &UserId| cdr.src_user.as_ref() == Some(u) || cdr.dst_user.as_ref() == Some(u);
        let in_departments = |set: &BTreeSet<DepartmentId>| {
            [&cdr.src_department, &cdr.dst_department]
                .into_iter()
                .flatten()
                .any(|d| set.contains(d))
        };
        cdr.tenant.as_ref() == Some(&self.tenant)
            && self.from.is_none_or(|from| cdr.start >= from)
            && self.to.is_none_or(|to| cdr.start < to)
            && self.user.as_ref().is_none_or(involves_user)
            && self.departments.as_ref().is_none_or(in_departments)
            && self.visible_to.as_ref().is_none_or(|v| {
                v.user.as_ref().is_some_and(involves_user) || in_departments(&v.departments)
            })
    }

    /// The ordering every store returns rows in.
    pub fn sort(rows: &mut [Cdr]) {
        rows.sort_by(|a, b| {
            (a.start, a.linkedid, a.sequence).cmp(&(b.start, b.linkedid, b.sequence))
        });
    }
}
