//! Internal HTTP API of the scoring service. Errors are the common JSON body with a stable
//! `code`; a definition that does not validate answers 400 `invalid_definition` with every
//! problem in `details.errors[]` (`path` names the field or the condition node, e.g.
//! `filters[0].value` or `condition.root.children[1].op`).
//!
//! - definitions (models, rules, the stage machine, triggers): [`defs`]
//! - leads (scores, ledger, stage history, firings, SLAs, manual moves, contact, adjustments,
//!   leaderboard): [`leads`]
//! - dry runs, recompute jobs: [`tools`]

mod defs;
mod leads;
mod tools;

use std::sync::Arc;

use actix_web::web;
use platform::db::outbox::OutboxRelay;
use platform::http::params;
use platform::http::{ApiError, Routes};
use serde_json::{json, Value};

use crate::store::defs::DefsError;
use crate::store::Scorer;

const DEFAULT_LIMIT: u64 = 50;
const MAX_LIMIT: u64 = 1000;

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
            .configure(defs::routes)
            .configure(leads::routes)
            .configure(tools::routes);
    })
}

fn db_error(e: sea_orm::DbErr) -> ApiError {
    params::db_error("scoring", e)
}

fn limit(v: Option<u64>) -> Result<u64, ApiError> {
    params::limit(v, DEFAULT_LIMIT, MAX_LIMIT)
}

/// The common answer to a refused definition write.
pub(crate) fn defs_error(e: DefsError) -> ApiError {
    match e {
        DefsError::Invalid(errors) => {
            let first = errors
                .first()
                .map(|e| format!("`{}`: {}", e.path, e.message))
                .unwrap_or_default();
            ApiError::bad_request(
                "invalid_definition",
                format!("{} problem(s), first {first}", errors.len()),
            )
            .with_details(json!({"errors": errors}))
        }
        DefsError::NotFound(m) => ApiError::not_found(m),
        DefsError::Conflict { code, message } => ApiError::conflict(code, message),
        DefsError::Db(e) => db_error(e),
    }
}

/// Takes the string field `name` out of a JSON object body (required, non-blank).
fn take(body: &mut Value, name: &str) -> Result<String, ApiError> {
    let v = body
        .as_object_mut()
        .and_then(|o| o.remove(name))
        .and_then(|v| v.as_str().map(str::to_string));
    params::field(v, name)
}

/// The body as an object, or 400.
fn object(body: Value) -> Result<Value, ApiError> {
    if body.is_object() {
        Ok(body)
    } else {
        Err(ApiError::bad_request(
            "invalid_json",
            "the body must be a JSON object",
        ))
    }
}
