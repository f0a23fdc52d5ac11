//! HTTP pieces every role shares: the JSON error body, typed request bodies (`body`), health/readiness/metrics endpoints, the
//! request-id middleware and a server starter.

pub mod body;
mod error;
pub mod export;
mod health;
pub mod page;
pub mod principal;
mod request_id;

use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpServer};

pub mod params;

pub use error::{json_config, path_config, query_config, ApiError};
pub use health::{Check, CheckFuture, Health};
pub use principal::{Principal, ServiceKey, PRINCIPAL_HEADER};
pub use request_id::{RequestId, REQUEST_ID_HEADER};

use crate::config::HttpConfig;

/// Routes a role adds to its server.
pub type Routes = Arc<dyn Fn(&mut web::ServiceConfig) + Send + Sync>;

/// A started HTTP server.
pub struct RunningServer {
    /// The address actually bound (port 0 resolved).
    pub addr: SocketAddr,
    pub handle: ServerHandle,
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Binds and starts a server with the shared middleware, `/healthz`, `/readyz`, `/metrics` and the
/// role's `routes`. With `guard` (a service's), every `/v1` route requires a service credential
/// signed with it ([`principal::require_credential`]).
pub fn serve(
    cfg: &HttpConfig,
    health: Health,
    routes: Routes,
    guard: Option<ServiceKey>,
) -> std::io::Result<RunningServer> {
    let workers = if cfg.workers == 0 {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    } else {
        cfg.workers
    };
    let server = HttpServer::new(move || {
        let routes = routes.clone();
        let key = guard.clone().map(std::rc::Rc::new);
        App::new()
            .app_data(web::Data::new(health.clone()))
            .app_data(json_config())
            .app_data(query_config())
            .app_data(path_config())
            .wrap(actix_web::middleware::from_fn(move |req, next| {
                principal::require_credential(key.clone(), req, next)
            }))
            .wrap(actix_web::middleware::from_fn(request_id::middleware))
            .configure(health::routes)
            .configure(move |c| routes(c))
            .default_service(web::to(error::not_found))
    })
    .workers(workers)
    .shutdown_timeout(10)
    .disable_signals()
    .bind(cfg.bind)
    .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {}: {e}", cfg.bind)))?;
    let addr = server.addrs().first().copied().unwrap_or(cfg.bind);
    let server = server.run();
    let handle = server.handle();
    let task = tokio::spawn(server);
    Ok(RunningServer { addr, handle, task })
}
