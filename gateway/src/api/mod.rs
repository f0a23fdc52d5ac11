//! HTTP endpoints of the gateway: WeChat callbacks, the mini-program SDK (login, phone, tracking),
//! the admin API, the WeCom sidebar for reps, and the internal endpoints other roles and tools
//! call (the WeChat access-token endpoint, the bus's parked messages).

pub mod admin;
pub mod bus;
mod callbacks;
pub(crate) mod internal;
mod sdk;
pub mod sidebar;
mod track;

use std::sync::Arc;

use actix_web::web;
use platform::http::Routes;

use crate::config::Config;
use crate::domain::keys::Keys;
use crate::publish::Publisher;
use crate::registry::AppRegistry;
use crate::wechat_api::WechatApi;

/// Everything a handler needs.
#[derive(Clone)]
pub struct GatewayState {
    pub cfg: Arc<Config>,
    pub registry: AppRegistry,
    pub publisher: Publisher,
    pub cache: Arc<dyn platform::cache::Cache>,
    pub keys: Keys,
    pub wechat: WechatApi,
    /// The process's bus (tooling endpoints look at its queues).
    pub bus: Arc<dyn platform::bus::Bus>,
    /// Tenants, users, credentials, audit log.
    pub access: crate::access::Access,
    /// The services the admin API composes.
    pub services: crate::services::Services,
    /// Export jobs and their files.
    pub exports: crate::exports::Exports,
    /// The gateway's database (channel codes).
    pub db: sea_orm::DatabaseConnection,
}

/// All gateway routes.
pub fn routes(state: GatewayState) -> Routes {
    Arc::new(move |cfg: &mut web::ServiceConfig| {
        let body_limit = state.cfg.callback.max_body_bytes;
        cfg.app_data(web::Data::new(state.clone()))
            .app_data(web::PayloadConfig::new(body_limit))
            .configure(callbacks::routes)
            .configure(sdk::routes)
            .configure(track::routes)
            .configure(internal::routes)
            .configure(bus::routes)
            .configure(admin::register)
            .configure(sidebar::routes);
    })
}
