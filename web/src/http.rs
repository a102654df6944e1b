//! The HTTP face of the engine. For now: `GET /health`, which proves the log answers, and a
//! root page that says what is served. Later issues add the panel, its API and websockets.

use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::{App, HttpResponse, HttpServer, get, web};
use anyhow::Context;
use events::EventLog;
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
}

#[get("/health")]
async fn health(log: web::Data<Arc<dyn EventLog>>) -> HttpResponse {
    let store = log.describe();
    let version = env!("CARGO_PKG_VERSION");
    match log.head().await {
        Ok(head) => HttpResponse::Ok().json(Health {
            status: "ok",
            version,
            store,
            head: Some(head.0),
            error: None,
        }),
        Err(e) => HttpResponse::ServiceUnavailable().json(Health {
            status: "unavailable",
            version,
            store,
            head: None,
            error: Some(e.to_string()),
        }),
    }
}

#[get("/")]
async fn index() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body("Ledgerline is running. GET /health reports the event log.\n")
}

pub(crate) async fn serve(log: Arc<dyn EventLog>, addr: SocketAddr) -> anyhow::Result<()> {
    let data = web::Data::new(log);
    HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .service(health)
            .service(index)
    })
    .bind(addr)
    .with_context(|| format!("binding the HTTP server to {addr}"))?
    .run()
    .await
    .context("running the HTTP server")
}
