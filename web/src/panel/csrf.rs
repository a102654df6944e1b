//! Cross-site request checks. A state-changing request is accepted only from the panel's own
//! origin:
//! - an `Origin` header, when present, must name this server (scheme, host and port of the
//!   request); a `Sec-Fetch-Site` header, when present, must be `same-origin` or `none`;
//! - a request authenticated by the session cookie must carry the session's CSRF token in the
//!   `X-CSRF-Token` header (compared in constant time);
//! - a request authenticated with HTTP Basic (API clients, which have no cookie) must send a JSON
//!   body (`Content-Type: application/json`), which no cross-site form can, and the server never
//!   answers CORS preflights nor asks browsers for Basic credentials.
//!
//! The websocket handshake must carry an `Origin` naming this server (browsers always send it),
//! so another site cannot open the panel's socket with the user's cookie.

use actix_web::HttpRequest;
use actix_web::http::header;

use super::ApiError;
use super::session::same_secret;

/// The header the page sends the CSRF token in.
pub(crate) const HEADER: &str = "x-csrf-token";

/// `scheme://host[:port]` of this request as the browser addressed it.
fn own_origin(req: &HttpRequest) -> Option<String> {
    let host = req.headers().get(header::HOST)?.to_str().ok()?;
    let scheme = req.connection_info().scheme().to_owned();
    Some(format!("{scheme}://{}", host.to_ascii_lowercase()))
}

/// The request's `Origin`, when it has one.
fn origin(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
}

/// Whether `origin` names this server. A default port may be written or left out.
fn same_origin(req: &HttpRequest, origin: &str) -> bool {
    let Some(own) = own_origin(req) else {
        return false;
    };
    let origin = origin.to_ascii_lowercase();
    let strip = |o: &str| {
        o.strip_suffix(":80")
            .filter(|_| o.starts_with("http://"))
            .or_else(|| o.strip_suffix(":443").filter(|_| o.starts_with("https://")))
            .map(str::to_owned)
            .unwrap_or_else(|| o.to_owned())
    };
    strip(&origin) == strip(&own)
}

/// Refuses a request another site made the browser send.
pub(crate) fn check_same_site(req: &HttpRequest) -> Result<(), ApiError> {
    if let Some(o) = origin(req)
        && !same_origin(req, o)
    {
        return Err(ApiError::forbidden(
            "cross_origin",
            "requests from another site are refused",
        ));
    }
    if let Some(site) = req
        .headers()
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        && !matches!(site, "same-origin" | "none")
    {
        return Err(ApiError::forbidden(
            "cross_origin",
            "requests from another site are refused",
        ));
    }
    Ok(())
}

/// The checks for a state-changing request authenticated by the session cookie.
pub(crate) fn check_token(req: &HttpRequest, expected: &str) -> Result<(), ApiError> {
    check_same_site(req)?;
    let sent = req
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if sent.is_empty() || !same_secret(sent, expected) {
        return Err(ApiError::forbidden(
            "csrf",
            "missing or wrong CSRF token (reload the page)",
        ));
    }
    Ok(())
}

/// The checks for a state-changing request without a cookie (HTTP Basic, or the login itself):
/// same site, and a JSON body.
pub(crate) fn check_json(req: &HttpRequest) -> Result<(), ApiError> {
    check_same_site(req)?;
    let json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Err(ApiError::new(
            actix_web::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "json_required",
            "send the request body as application/json",
        ));
    }
    Ok(())
}

/// The websocket handshake's origin check: an `Origin` naming this server is required.
pub(crate) fn check_websocket_origin(req: &HttpRequest) -> Result<(), ApiError> {
    match origin(req) {
        Some(o) if same_origin(req, o) => Ok(()),
        Some(_) => Err(ApiError::forbidden(
            "cross_origin",
            "websocket connections from another site are refused",
        )),
        None => Err(ApiError::forbidden(
            "origin_required",
            "a websocket connection must say where it comes from (Origin)",
        )),
    }
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    fn req(headers: &[(&str, &str)]) -> HttpRequest {
        let mut r = TestRequest::post().insert_header(("host", "127.0.0.1:8080"));
        for (k, v) in headers {
            r = r.insert_header((*k, *v));
        }
        r.to_http_request()
    }

    #[test]
    fn only_the_own_origin_passes() {
        assert!(check_same_site(&req(&[])).is_ok());
        assert!(check_same_site(&req(&[("origin", "http://127.0.0.1:8080")])).is_ok());
        assert!(check_same_site(&req(&[("origin", "http://evil.example")])).is_err());
        assert!(check_same_site(&req(&[("origin", "http://127.0.0.1:8081")])).is_err());
        assert!(check_same_site(&req(&[("origin", "https://127.0.0.1:8080")])).is_err());
        assert!(check_same_site(&req(&[("origin", "null")])).is_err());
        assert!(check_same_site(&req(&[("sec-fetch-site", "cross-site")])).is_err());
        assert!(check_same_site(&req(&[("sec-fetch-site", "same-site")])).is_err());
        assert!(check_same_site(&req(&[("sec-fetch-site", "same-origin")])).is_ok());
    }

    #[test]
    fn the_token_must_match() {
        let ok = req(&[
            ("x-csrf-token", "abcd"),
            ("origin", "http://127.0.0.1:8080"),
        ]);
        assert!(check_token(&ok, "abcd").is_ok());
        assert!(check_token(&req(&[("x-csrf-token", "abce")]), "abcd").is_err());
        assert!(check_token(&req(&[]), "abcd").is_err());
        assert!(
            check_token(
                &req(&[("x-csrf-token", "abcd"), ("origin", "http://evil.example")]),
                "abcd"
            )
            .is_err()
        );
    }

    #[test]
    fn api_clients_must_send_json_and_sockets_an_origin() {
        assert!(check_json(&req(&[("content-type", "application/json; charset=utf-8")])).is_ok());
        assert!(check_json(&req(&[("content-type", "text/plain")])).is_err());
        assert!(check_json(&req(&[])).is_err());
        assert!(check_websocket_origin(&req(&[("origin", "http://127.0.0.1:8080")])).is_ok());
        assert!(check_websocket_origin(&req(&[("origin", "http://127.0.0.1")])).is_err());
        assert!(check_websocket_origin(&req(&[])).is_err());
    }
}
