//! The HTTP face of the engine. For now: `GET /health`, which proves the log answers and says
//! which tenants the directory holds, and a root page that says what is served. Later issues add
//! the panel, its API and websockets.

use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::{App, HttpResponse, HttpServer, get, web};
use anyhow::Context;
use engine::runtime::Engine;
use events::EventLog;
use events::model::UserRole;
use serde::Serialize;

#[derive(Debug, Serialize)]
struct Health {
    status: &'static str,
    version: &'static str,
    store: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    head: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// The directory as the engine holds it.
    tenants: Vec<TenantHealth>,
}

/// One tenant of the directory, counted (no names of people, no secrets).
#[derive(Debug, Serialize)]
struct TenantHealth {
    id: String,
    name: String,
    suspended: bool,
    users: usize,
    /// Users with a phone line (administrators have none).
    extensions: usize,
    departments: usize,
}

fn tenants(engine: &Engine) -> Vec<TenantHealth> {
    engine
        .tenants()
        .into_iter()
        .filter_map(|tenant| {
            engine.read_directory(&tenant, |d| TenantHealth {
                id: tenant.to_string(),
                name: d.tenant().map(|t| t.name.clone()).unwrap_or_default(),
                suspended: d.is_suspended(),
                users: d.users().len(),
                extensions: d
                    .users()
                    .values()
                    .filter(|u| u.role == UserRole::User)
                    .count(),
                departments: d.departments().len(),
            })
        })
        .collect()
}

#[get("/health")]
async fn health(log: web::Data<Arc<dyn EventLog>>, engine: web::Data<Engine>) -> HttpResponse {
    let store = log.describe();
    let version = env!("CARGO_PKG_VERSION");
    match log.head().await {
        Ok(head) => HttpResponse::Ok().json(Health {
            status: "ok",
            version,
            store,
            head: Some(head.0),
            error: None,
            tenants: tenants(&engine),
        }),
        Err(e) => HttpResponse::ServiceUnavailable().json(Health {
            status: "unavailable",
            version,
            store,
            head: None,
            error: Some(e.to_string()),
            tenants: tenants(&engine),
        }),
    }
}

#[get("/")]
async fn index() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body("Ledgerline is running. GET /health reports the event log and the directory.\n")
}

pub(crate) async fn serve(
    log: Arc<dyn EventLog>,
    engine: Engine,
    addr: SocketAddr,
) -> anyhow::Result<()> {
    let data = web::Data::new(log);
    let engine = web::Data::new(engine);
    HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(engine.clone())
            .service(health)
            .service(index)
    })
    .bind(addr)
    .with_context(|| format!("binding the HTTP server to {addr}"))?
    .run()
    .await
    .context("running the HTTP server")
}
