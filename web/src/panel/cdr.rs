//! CDR exports: `GET /api/v1/cdrs` (JSON) and `GET /api/v1/cdrs.csv` (CSV, Asterisk-style
//! columns), with `from` and `to` (RFC 3339 instants or `YYYY-MM-DD` dates in UTC; `from`
//! inclusive, `to` exclusive, on the leg's start), `user`, `department` (comma-separated) and
//! `limit` (at most [`MAX_LIMIT`]). Every query is restricted to the viewer's tenant and to the
//! rows they may see: legs they were on, and — for a panel user — legs on either side of which
//! is one of their granted departments.

use std::collections::BTreeSet;

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, NaiveDate, Utc};
use events::ids::{DepartmentId, UserId};
use projections::cdr::{CdrQuery, render_csv, render_json};
use serde::Deserialize;

use super::{ApiError, PanelState, auth};

/// Rows a query returns unless it asks for fewer.
pub(crate) const MAX_LIMIT: usize = 10_000;

#[derive(Debug, Default, Deserialize)]
struct Params {
    from: Option<String>,
    to: Option<String>,
    user: Option<String>,
    department: Option<String>,
    limit: Option<usize>,
}

fn instant(name: &str, s: &str) -> Result<DateTime<Utc>, ApiError> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d")
        && let Some(t) = d.and_hms_opt(0, 0, 0)
    {
        return Ok(t.and_utc());
    }
    Err(ApiError::bad_request(format!(
        "`{name}` must be a date (2026-01-31) or an RFC 3339 instant (2026-01-31T09:00:00Z)"
    )))
}

/// The query `params` ask for, restricted to what `viewer` may see.
fn query(viewer: &auth::Viewer, params: &Params) -> Result<CdrQuery, ApiError> {
    let from = params
        .from
        .as_deref()
        .map(|s| instant("from", s))
        .transpose()?;
    let to = params.to.as_deref().map(|s| instant("to", s)).transpose()?;
    if let (Some(f), Some(t)) = (from, to)
        && f >= t
    {
        return Err(ApiError::bad_request("`from` must be before `to`"));
    }
    let mut q = CdrQuery::new(viewer.tenant.clone())
        .between(from, to)
        .visible_to(Some(viewer.user.clone()), viewer.departments())
        .limit(params.limit.unwrap_or(MAX_LIMIT).clamp(1, MAX_LIMIT));
    if let Some(user) = params.user.as_deref().filter(|s| !s.is_empty()) {
        let user = UserId::parse(user)
            .map_err(|_| ApiError::bad_request(format!("`{user}` is not a user name")))?;
        q = q.for_user(user);
    }
    if let Some(list) = params.department.as_deref().filter(|s| !s.is_empty()) {
        let departments = list
            .split(',')
            .map(|d| {
                DepartmentId::parse(d.trim())
                    .map_err(|_| ApiError::bad_request(format!("`{d}` is not a department")))
            })
            .collect::<Result<BTreeSet<_>, _>>()?;
        q = q.in_departments(departments);
    }
    Ok(q)
}

async fn rows(
    req: &HttpRequest,
    state: &PanelState,
    params: &Params,
) -> Result<Vec<projections::Cdr>, ApiError> {
    let viewer = auth::viewer(req, state).await?;
    let q = query(&viewer, params)?;
    state.cdrs.query(&q).await.map_err(|e| {
        tracing::warn!(error = %e, "a CDR query failed");
        ApiError::internal("the call records cannot be read right now")
    })
}

async fn json(
    req: HttpRequest,
    state: web::Data<PanelState>,
    params: web::Query<Params>,
) -> Result<HttpResponse, ApiError> {
    let rows = rows(&req, &state, &params).await?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(render_json(&rows)))
}

async fn csv(
    req: HttpRequest,
    state: web::Data<PanelState>,
    params: web::Query<Params>,
) -> Result<HttpResponse, ApiError> {
    let rows = rows(&req, &state, &params).await?;
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header(("content-disposition", "attachment; filename=\"cdr.csv\""))
        .body(render_csv(&rows)))
}

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v1/cdrs", web::get().to(json))
        .route("/api/v1/cdrs.csv", web::get().to(csv));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_instants_parse_in_utc() {
        assert_eq!(
            instant("from", "2026-01-31").unwrap().to_rfc3339(),
            "2026-01-31T00:00:00+00:00"
        );
        assert_eq!(
            instant("to", "2026-01-31T10:00:00+01:00")
                .unwrap()
                .to_rfc3339(),
            "2026-01-31T09:00:00+00:00"
        );
        let e = instant("from", "yesterday").unwrap_err();
        assert!(e.body.message.contains("`from`"), "{e}");
    }
}
