//! The browser UI's files, compiled into the binary (no build step): the sign-in page, the
//! panel page, their script and style sheet and the icon. `/` shows the panel to a signed-in
//! browser and sends anyone else to `/login`.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use super::PanelState;
use super::auth::has_session;

const LOGIN_HTML: &str = include_str!("../../static/login.html");
const PANEL_HTML: &str = include_str!("../../static/panel.html");
const LOGIN_JS: &str = include_str!("../../static/login.js");
const PANEL_JS: &str = include_str!("../../static/panel.js");
const PANEL_CSS: &str = include_str!("../../static/panel.css");
const ICON_SVG: &str = include_str!("../../static/icon.svg");

fn page(html: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(html)
}

async fn index(req: HttpRequest, state: web::Data<PanelState>) -> HttpResponse {
    if has_session(&req, &state.sessions) {
        page(PANEL_HTML)
    } else {
        HttpResponse::SeeOther()
            .insert_header((header::LOCATION, "/login"))
            .finish()
    }
}

async fn login() -> HttpResponse {
    page(LOGIN_HTML)
}

async fn file(path: web::Path<String>) -> HttpResponse {
    let (body, kind) = match path.as_str() {
        "login.js" => (LOGIN_JS, "text/javascript; charset=utf-8"),
        "panel.js" => (PANEL_JS, "text/javascript; charset=utf-8"),
        "panel.css" => (PANEL_CSS, "text/css; charset=utf-8"),
        "icon.svg" => (ICON_SVG, "image/svg+xml"),
        _ => return HttpResponse::NotFound().finish(),
    };
    HttpResponse::Ok()
        .content_type(kind)
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(body)
}

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(index))
        .route("/login", web::get().to(login))
        .route("/static/{file}", web::get().to(file));
}
