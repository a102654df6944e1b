//! The HTTP face of the engine: `GET /health`, which proves the log answers (and shows an
//! administrator their tenants), and the call panel ([`panel`]): its pages, API, CDR exports and
//! websocket. Every response carries the security headers ([`security_headers`]: a content
//! security policy without inline script, no framing, no sniffing, no referrer).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use actix_web::middleware::DefaultHeaders;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, get, web};
use anyhow::Context;
use engine::runtime::Engine;
use events::ids::{CallId, ExtensionNumber, PhoneNumber, TenantId, UserId};
use events::model::UserRole;
use events::{EventLog, GlobalPosition, StoreUrl};
use futures_util::future::BoxFuture;
use projections::{CdrStore, LiveProjections, PanelHandle};
use serde::Serialize;

use crate::panel;
use crate::panel::hub::{Hub, HubConfig};
use crate::panel::session::{OsSecrets, Sessions};
use crate::panel::watchlist::WatchLists;
use crate::panel::{ClickToCall, PanelState};

#[derive(Debug, Serialize)]
struct Health {
    status: &'static str,
    version: &'static str,
    store: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    head: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// The tenants the asking administrator administers, as the engine holds them; absent for
    /// anyone else.
    #[serde(skip_serializing_if = "Option::is_none")]
    tenants: Option<Vec<TenantHealth>>,
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

fn tenants(engine: &Engine, only: &[TenantId]) -> Vec<TenantHealth> {
    only.iter()
        .filter_map(|tenant| {
            engine.read_directory(tenant, |d| TenantHealth {
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

/// `GET /health`: whether the log answers (status, store, head) for anyone — a load balancer
/// or a monitor; with an administrator's HTTP Basic credentials also their tenants, counted.
#[get("/health")]
async fn health(
    req: HttpRequest,
    log: web::Data<Arc<dyn EventLog>>,
    engine: web::Data<Engine>,
    panel: web::Data<PanelState>,
) -> Result<HttpResponse, panel::ApiError> {
    let tenants = panel::auth::administered_tenants(&req, &panel)
        .await?
        .map(|only| tenants(&engine, &only));
    let store = log.describe();
    let version = env!("CARGO_PKG_VERSION");
    Ok(match log.head().await {
        Ok(head) => HttpResponse::Ok().json(Health {
            status: "ok",
            version,
            store,
            head: Some(head.0),
            error: None,
            tenants,
        }),
        Err(e) => HttpResponse::ServiceUnavailable().json(Health {
            status: "unavailable",
            version,
            store,
            head: None,
            error: Some(e.to_string()),
            tenants,
        }),
    })
}

/// The headers every response carries (a handler's own value wins).
fn security_headers() -> DefaultHeaders {
    DefaultHeaders::new()
        .add((
            "content-security-policy",
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        ))
        .add(("x-content-type-options", "nosniff"))
        .add(("x-frame-options", "DENY"))
        .add(("referrer-policy", "no-referrer"))
        .add(("cross-origin-opener-policy", "same-origin"))
        .add(("cross-origin-resource-policy", "same-origin"))
        .add((
            "permissions-policy",
            "camera=(), geolocation=(), microphone=(self)",
        ))
        .add(("cache-control", "no-store"))
}

/// Starts the panel and CDR projections beside `log` (CDRs beside the log; in memory for a
/// KurrentDB log, which cannot hold them) and waits until they have caught up.
pub(crate) async fn start_projections(
    log: Arc<dyn EventLog>,
    url: &StoreUrl,
) -> anyhow::Result<LiveProjections> {
    let cdrs = match url {
        StoreUrl::KurrentDb(_) => {
            tracing::warn!("CDRs are kept in memory with a KurrentDB log (rebuilt at every start)");
            CdrStore::Memory(Default::default())
        }
        other => CdrStore::open(other)
            .await
            .context("opening the CDR store")?,
    };
    LiveProjections::start(log, cdrs)
        .await
        .context("starting the projections")
}

/// Click-to-call through the SIP edge: it rings the user's own phones first.
impl ClickToCall for sip::CallControl {
    fn click_to_call(
        &self,
        tenant: TenantId,
        extension: ExtensionNumber,
        target: PhoneNumber,
        requested_by: UserId,
    ) -> BoxFuture<'static, Result<CallId, String>> {
        let control = self.clone();
        Box::pin(async move {
            control
                .click_to_call(&tenant, &extension, &target, Some(requested_by))
                .await
                .map_err(|e| e.to_string())
        })
    }
}

/// What the HTTP server serves besides the log and the engine.
pub(crate) struct Site {
    pub(crate) panel: PanelHandle,
    pub(crate) cdrs: CdrStore,
    /// Where the panel keeps its sessions (`web-sessions.json`).
    pub(crate) data_dir: PathBuf,
    /// Click-to-call, when a SIP edge runs.
    pub(crate) click_to_call: Option<Arc<dyn ClickToCall>>,
    /// SIP over WebSocket on `GET /sip`, when a SIP edge runs.
    pub(crate) sip_websocket: Option<sip::WebSocketAcceptor>,
}

impl Site {
    pub(crate) fn new(projections: &LiveProjections, data_dir: PathBuf) -> Self {
        Self {
            panel: projections.panel.clone(),
            cdrs: projections.cdrs.clone(),
            data_dir,
            click_to_call: None,
            sip_websocket: None,
        }
    }
}

/// `GET /sip`: SIP over WebSocket (RFC 7118, subprotocol `sip`) for browser phones, into the SIP
/// edge. The handshake needs this server's own `Origin`, as the panel's socket does.
async fn sip_socket(
    req: HttpRequest,
    body: web::Payload,
    acceptor: web::Data<sip::WebSocketAcceptor>,
) -> Result<HttpResponse, panel::ApiError> {
    panel::csrf::check_websocket_origin(&req)?;
    acceptor
        .upgrade(&req, body)
        .map_err(|e| panel::ApiError::new(e.status(), e.code(), e.to_string()))
}

/// The log's identity for the panel protocol: the id of its first event.
async fn epoch(log: &Arc<dyn EventLog>) -> anyhow::Result<String> {
    let first = log.read_all(GlobalPosition::START, 1).await?;
    Ok(first
        .first()
        .map_or_else(|| "empty".to_owned(), |e| e.record.event_id.to_string()))
}

pub(crate) async fn serve(
    log: Arc<dyn EventLog>,
    engine: Engine,
    site: Site,
    addr: SocketAddr,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(&site.data_dir)
        .with_context(|| format!("creating {}", site.data_dir.display()))?;
    let clock = engine.clock().clone();
    let ids = engine.ids().clone();
    let sessions = Sessions::open(
        Some(site.data_dir.join("web-sessions.json")),
        clock.clone(),
        Arc::new(OsSecrets),
    )
    .map_err(anyhow::Error::msg)?;
    let access: Arc<dyn panel::Access> = Arc::new(engine.clone());
    let watchlists = WatchLists::new(log.clone(), clock.clone(), ids.clone());
    let hub = Hub::new(
        site.panel.clone(),
        access.clone(),
        watchlists.clone(),
        clock.clone(),
        epoch(&log).await?,
        HubConfig::default(),
    );
    let (stop_hub, hub_stopped) = tokio::sync::oneshot::channel();
    let hub_task = tokio::spawn(hub.clone().run(hub_stopped));
    let state = web::Data::new(PanelState {
        engine: engine.clone(),
        access,
        panel: site.panel,
        cdrs: site.cdrs,
        sessions,
        watchlists,
        hub,
        throttle: Arc::default(),
        click_to_call: site.click_to_call,
        clock,
        ids,
    });
    let data = web::Data::new(log);
    let engine = web::Data::new(engine);
    let sip_websocket = site.sip_websocket.map(web::Data::new);
    let served = HttpServer::new(move || {
        App::new()
            .wrap(security_headers())
            .app_data(data.clone())
            .app_data(engine.clone())
            .app_data(state.clone())
            .app_data(web::PayloadConfig::new(64 * 1024))
            .service(health)
            .configure(|cfg| {
                if let Some(acceptor) = &sip_websocket {
                    cfg.app_data(acceptor.clone())
                        .route("/sip", web::get().to(sip_socket));
                }
            })
            .configure(panel::configure)
    })
    .shutdown_timeout(3)
    .bind(addr)
    .with_context(|| format!("binding the HTTP server to {addr}"))?
    .run()
    .await
    .context("running the HTTP server");
    let _ = stop_hub.send(());
    let _ = hub_task.await;
    served
}
