//! Internal HTTP API of the tagging service, called by the gateway only: every `/v1` request
//! carries a service credential (`X-Scrm-Principal`, verified by the server's middleware, else
//! 401) and each handler takes the tenant and the acting person from its [`Principal`]
//! (`tenant_id`, `operator` in a query or body are not read). Every query is scoped by that
//! tenant: a group, tag, rule, job, profile or WeCom corp of another tenant is answered 404
//! exactly like an unknown id. Errors are the common JSON body with a stable `code`; validation
//! errors of conditions name the node (`details.errors[].path`).
//!
//! [`Principal`]: platform::http::Principal
//!
//! - the tag catalogue: [`catalog`]
//! - a profile's tags by hand: [`members`]
//! - rules, previews, exports, jobs: [`rules`], [`export`]
//! - saved segments (人群包), their sizes, members and exports: [`saved_segments`]
//! - a tenant or segment broken down by dimensions: [`analytics`]
//! - personas, their reports and campaign validations: [`personas`]
//! - WeCom corp-tag sync: [`wecom`]
//!
//! Every list pages by `?cursor=&limit=` and answers `{items, next_cursor}` ([`page`]: `limit`
//! 1..=500, default 50; 400 `invalid_cursor` / `invalid_limit` naming the parameter).

mod analytics;
mod catalog;
mod export;
mod members;
use platform::http::page;
mod personas;
mod rules;
mod saved_segments;
pub mod wecom;

use std::sync::Arc;

use actix_web::web;
use platform::http::params::field;
use platform::http::Routes;
use sea_orm::DatabaseConnection;

use crate::store::tagger::Tagger;

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    pub db: DatabaseConnection,
    pub tagger: Tagger,
}

/// Routes of the internal API (health, readiness and metrics are added by the platform).
pub fn routes(tagger: Tagger) -> Routes {
    let state = ApiState {
        db: tagger.db.clone(),
        tagger,
    };
    Arc::new(move |cfg| {
        cfg.app_data(web::Data::new(state.clone()))
            .configure(analytics::routes)
            .configure(catalog::routes)
            .configure(members::routes)
            .configure(personas::routes)
            .configure(rules::routes)
            .configure(saved_segments::routes);
    })
}
