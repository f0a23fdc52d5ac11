//! The service's transactions: each bus event (decoded by `work`; once, through the inbox,
//! retried on races) and each operator tag / untag updates the facts projection and settles the
//! profile's rules in one commit; the scheduler's window exits and counter rolls.
//!
//! Here: the tagger and its errors. `batch` takes bus events through the inbox (a batch in one
//! commit), `events` applies one event to the projection and the rules, `manual` an operator's
//! tag or untag, `scheduler` the scheduler's pass.

mod batch;
mod events;
mod manual;
mod scheduler;

use std::sync::Arc;

use proto::tagging::TagChanged;
use sea_orm::{DatabaseConnection, DbErr};

use super::engine::Engine;
use crate::clock::Clock;
use crate::config::Config;
use crate::domain::At;

/// Consumer name in the inbox.
pub const CONSUMER: &str = "tagging";

/// Why an event could not be handled.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    /// The payload does not match its type: it never will.
    #[error("invalid event: {0}")]
    Invalid(String),
    #[error("database error: {0}")]
    Db(#[from] DbErr),
}

/// What handling an event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// Applied; these tag-set changes resulted.
    Done(Vec<TagChanged>),
    /// Seen before; nothing ran.
    Duplicate,
    /// Not an event this service acts on.
    Ignored,
}

/// Everything the service's transactions need. Cheap to clone.
#[derive(Clone)]
pub struct Tagger {
    pub db: DatabaseConnection,
    pub engine: Engine,
    pub cfg: Arc<Config>,
    pub clock: Arc<dyn Clock>,
    /// Each tenant's rolling-counter day and when it was read.
    pub rolled: RolledCache,
    /// Where backfill jobs run.
    pub jobs: super::backfill::Jobs,
}

/// Tenant → (read at, `facts_clock.rolled_to`).
pub type RolledCache = Arc<
    std::sync::Mutex<
        std::collections::HashMap<String, (std::time::Instant, Option<chrono::NaiveDate>)>,
    >,
>;

impl Tagger {
    /// The time of an evaluation for `tenant`.
    pub fn at(&self, tenant: &str) -> At {
        let now = self.clock.now();
        let zone = self.cfg.zone_of(tenant);
        At {
            now,
            today: facts::local_day(now, zone),
            zone,
        }
    }

    /// The tenant's rolling-counter day, read at most every couple of seconds (it only moves
    /// forward, so a value a moment old is safe: see `facts::record_event_as_of`).
    async fn rolled_to(&self, tenant: &str) -> Result<Option<chrono::NaiveDate>, DbErr> {
        const FRESH: std::time::Duration = std::time::Duration::from_secs(2);
        if let Some((at, v)) = self
            .rolled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(tenant)
        {
            if at.elapsed() < FRESH {
                return Ok(*v);
            }
        }
        let v = facts::rolled_to(&self.db, tenant).await?;
        self.rolled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(tenant.to_string(), (std::time::Instant::now(), v));
        Ok(v)
    }
}
