//! The scorer: applies one bus message (`profile.resolved`, `profile.updated`, `tag.changed`,
//! `identity.merged`, `tag.unmerged`) exactly once — the inbox row, the facts projection,
//! ledger entries, folds, stage moves, trigger firings and outbox events in one transaction — and
//! the other changes of one profile: a scheduler look, a manual stage move, a contact, a manual
//! adjustment, a recompute. Each runs again after a short random pause when it meets a
//! deadlock, a lock timeout or a busy database.
//!
//! The consumer's batches share one transaction: one inbox read and insert for all, every lead
//! locked up front in key order, the behaviour events of profiles the batch touches once
//! recorded in the projection with a few statements per tenant, and the outbox rows written
//! together before the commit — each message still settled in turn as if alone.
//!
//! Concurrency: a profile's lead row is locked first (`FOR UPDATE`; SQLite serialises writers),
//! so two instances consuming events of one profile decide caps, state holdings, crossings and
//! stage moves one after the other. Profiles merged away forward to their survivor.
//!
//! One file per step: this one holds the scorer, its settings and errors; `bus` decodes
//! messages, records them in the inbox and batches them; `lead` locks (or creates) the lead a
//! change applies to and opens its work; `events` applies a profile's own event, update or tag
//! change; `merge` moves leads, ledgers and facts between profiles on a merge or un-merge;
//! `manual` holds the changes people make; `rescore` the scheduler's look and the recompute
//! step; `projection` the event times and tag clocks scoring keeps beside the facts.

mod bus;
mod events;
mod lead;
mod manual;
mod merge;
mod projection;
mod rescore;

use std::future::Future;
use std::sync::Arc;

use sea_orm::{DatabaseConnection, DbErr};

use super::cache::DefsCache;
use super::leads::Lead;
use super::{is_contention, CONSUMER};
use crate::clock::{SharedClock, WholeSeconds};
use crate::config::Config;
use crate::domain::compiled::Compiled;
use crate::domain::stages::Refusal;
use platform::clock::{TimeZones, Tz};

pub use projection::profile_events;

/// What handling a message did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    /// Processed before; nothing ran.
    Duplicate,
    /// Not something scoring acts on.
    Ignored,
}

/// Why a change could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum ScoreError {
    /// The payload does not decode: it never will.
    #[error("invalid message: {0}")]
    Invalid(String),
    #[error("database contention after {attempts} attempts: {source}")]
    Contention {
        attempts: u32,
        #[source]
        source: DbErr,
    },
    /// Following merged-away leads to their survivor never reached an active lead: the stored
    /// leads point at each other in a loop. Applying the change again will not help.
    #[error("merge chain of profile `{profile}` does not end")]
    MergeChain { profile: String },
    /// An un-merge's survivor was not among the leads it locked. Applying it again will not
    /// help.
    #[error("survivor `{profile}` of the un-merge was not locked")]
    SurvivorNotLocked { profile: String },
    #[error("database error: {0}")]
    Db(#[from] DbErr),
}

impl ScoreError {
    /// Will applying the change again never succeed (the message should be parked, not
    /// retried)?
    pub fn is_invalid(&self) -> bool {
        matches!(
            self,
            ScoreError::Invalid(_)
                | ScoreError::MergeChain { .. }
                | ScoreError::SurvivorNotLocked { .. }
        )
    }
}

impl platform::db::Contention for ScoreError {
    fn is_contention(&self) -> bool {
        matches!(self, ScoreError::Db(e) if is_contention(e))
    }
}

/// Why a manual change was refused.
#[derive(Debug, thiserror::Error)]
pub enum ManualError {
    #[error("no lead for profile `{0}`")]
    NotFound(String),
    #[error("profile `{profile}` was merged into `{survivor}`")]
    Merged { profile: String, survivor: String },
    #[error("{}", .0.message)]
    Refused(Refusal),
    #[error(transparent)]
    Score(#[from] ScoreError),
}

impl From<DbErr> for ManualError {
    fn from(e: DbErr) -> Self {
        ManualError::Score(ScoreError::Db(e))
    }
}

/// Settings of the engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub time_zones: TimeZones,
    pub tx_attempts: u32,
    pub max_settle_rounds: u32,
}

impl EngineConfig {
    pub fn from_config(c: &Config) -> Self {
        EngineConfig {
            time_zones: c.time_zones.clone(),
            tx_attempts: c.tx_attempts.max(1),
            max_settle_rounds: c.max_settle_rounds.max(1),
        }
    }

    /// The time zone of `tenant`.
    pub fn zone_of(&self, tenant: &str) -> Tz {
        self.time_zones.of(tenant)
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            time_zones: TimeZones::default(),
            tx_attempts: 8,
            max_settle_rounds: 8,
        }
    }
}

/// The result of a manual stage move.
#[derive(Debug, Clone, PartialEq)]
pub struct Moved {
    pub lead: Lead,
    /// The history entry of the move itself.
    pub history_id: i64,
}

/// Applies changes to profiles. Cheap to clone.
#[derive(Clone)]
pub struct Scorer {
    pub(crate) db: DatabaseConnection,
    pub(crate) clock: SharedClock,
    pub(crate) defs: DefsCache,
    pub(crate) cfg: Arc<EngineConfig>,
}

impl Scorer {
    pub fn new(
        db: DatabaseConnection,
        clock: SharedClock,
        defs: DefsCache,
        cfg: EngineConfig,
    ) -> Self {
        Scorer {
            db,
            clock: Arc::new(WholeSeconds(clock)),
            defs,
            cfg: Arc::new(cfg),
        }
    }

    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    pub fn defs(&self) -> &DefsCache {
        &self.defs
    }

    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    /// The tenant's compiled definitions.
    pub async fn compiled(&self, tenant: &str) -> Result<Arc<Compiled>, DbErr> {
        self.defs.get(&self.db, tenant).await
    }

    /// Runs `f` (one transaction) again on contention, with a growing random pause.
    async fn retry<T, F, Fut>(&self, f: F) -> Result<T, ScoreError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ScoreError>>,
    {
        match platform::db::retry_on_contention(CONSUMER, self.cfg.tx_attempts, f).await {
            (Ok(v), _) => Ok(v),
            (Err(ScoreError::Db(e)), attempts) if is_contention(&e) => {
                Err(ScoreError::Contention {
                    attempts,
                    source: e,
                })
            }
            (Err(e), _) => Err(e),
        }
    }
}
