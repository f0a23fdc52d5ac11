//! Internal HTTP API of the scoring service. Errors are the common JSON body with a stable
//! `code`; a definition that does not validate answers 400 `invalid_definition` with every
//! problem in `details.errors[]` (`path` names the field or the condition node, e.g.
//! `filters[0].value` or `condition.root.children[1].op`).
//!
//! Only the gateway calls it: every `/v1` request carries the service credential
//! (`X-Scrm-Principal`, DESIGN.md §10; 401 without a valid one). Every handler takes the tenant
//! and the acting person from its [`Principal`](platform::http::Principal): no route names the
//! tenant or the actor (a `tenant_id`, `operator` or `actor` a caller still sends is ignored),
//! every read and write is scoped to the tenant, and a resource of another tenant answers 404
//! exactly like an unknown id. The actor is what definitions record as `created_by` /
//! `updated_by`, stage history as `actor`, adjustments as `cause_id`, SLAs as `settled_by`.
//!
//! - definitions (models, rules, the stage machine, triggers): [`defs`]
//! - leads (scores, ledger, stage history, firings, SLAs, manual moves, contact, adjustments,
//!   leaderboard): [`leads`]
//! - the customer browse (sorted, filtered pages of every lead): [`customers`]
//! - dry runs, recompute jobs: [`tools`]
//! - the stage funnel of a period: [`analytics`]
//! - request bodies read as their types, refused naming the field: [`body`]
//!
//! Every list pages by `?cursor=&limit=` and answers `{items, next_cursor}` ([`page`]: `limit`
//! 1..=500, default 50; 400 `invalid_cursor` / `invalid_limit` naming the parameter). The stage
//! machine is not a list: a handful of stages, read and written whole.

mod analytics;
mod body;
mod customers;
mod defs;
mod leads;
use platform::http::page;
use platform::ServiceError;
mod tools;

use std::sync::Arc;

use actix_web::web;
use platform::db::outbox::OutboxRelay;
use platform::http::{ApiError, Routes};
use serde_json::json;

use crate::store::defs::DefsError;
use crate::store::Scorer;

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    pub scorer: Scorer,
    /// Woken after a change that enqueued events.
    pub relay: Option<OutboxRelay>,
    pub dry_run_max_sample: u32,
}

impl ApiState {
    fn wake(&self) {
        if let Some(r) = &self.relay {
            r.wake();
        }
    }
}

/// Routes of the internal API (health, readiness and metrics are added by the platform).
pub fn routes(state: ApiState) -> Routes {
    Arc::new(move |cfg| {
        cfg.app_data(web::Data::new(state.clone()))
            .configure(analytics::routes)
            .configure(defs::routes)
            .configure(leads::routes)
            .configure(customers::routes)
            .configure(tools::routes);
    })
}

/// The common answer to a refused definition write.
impl From<DefsError> for ServiceError {
    fn from(e: DefsError) -> Self {
        match e {
            DefsError::Invalid(errors) => {
                let first = errors
                    .first()
                    .map(|e| format!("`{}`: {}", e.path, e.message))
                    .unwrap_or_default();
                ServiceError::invalid(
                    "invalid_definition",
                    format!("{} problem(s), first {first}", errors.len()),
                )
                .with_details(json!({"errors": errors}))
            }
            DefsError::NotFound(m) => ServiceError::not_found(m),
            DefsError::Conflict { code, message } => ServiceError::conflict(code, message),
            DefsError::Db(e) => ServiceError::Db(e),
        }
    }
}

/// The answer for a profile scoring has no lead for in the caller's tenant (unknown, or
/// another tenant's).
fn no_lead(profile: &str) -> ApiError {
    ApiError::not_found(format!("no lead for profile `{profile}`"))
        .with_details(json!({"profile_id": profile}))
}
