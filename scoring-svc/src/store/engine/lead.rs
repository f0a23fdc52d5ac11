//! The lead a change applies to: locked (or created in the initial stage), following a profile
//! merged away to its survivor when asked, and the [`Work`] opened on it.

use std::sync::Mutex;

use chrono::{DateTime, Utc};
use proto::scoring::ScoreCause;
use proto::Envelope;
use sea_orm::{DatabaseTransaction, DbErr};

use crate::domain::compiled::Compiled;
use crate::store::leads::{self, Lead};
use crate::store::work::{Cause, Work};

use super::{ScoreError, Scorer};

impl Scorer {
    pub(super) fn cause(env: &Envelope, kind: ScoreCause) -> Cause {
        Cause {
            id: env.id.to_string(),
            kind,
            trace_id: env.trace_id.clone(),
        }
    }

    /// Locks the lead of `profile`, creating it when missing; with `follow`, a profile merged
    /// away leads to its survivor. Returns the lead and whether it was created.
    pub(super) async fn acquire(
        &self,
        txn: &DatabaseTransaction,
        defs: &Compiled,
        tenant: &str,
        profile: &str,
        follow: bool,
        now: DateTime<Utc>,
    ) -> Result<(Lead, bool), ScoreError> {
        let first = leads::lock(txn, tenant, profile).await?;
        self.acquire_from(txn, defs, tenant, profile, follow, now, first)
            .await
    }

    /// [`Self::acquire`] when the lead of `profile` was just locked (read as `first`).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn acquire_from(
        &self,
        txn: &DatabaseTransaction,
        defs: &Compiled,
        tenant: &str,
        profile: &str,
        follow: bool,
        now: DateTime<Utc>,
        first: Option<Lead>,
    ) -> Result<(Lead, bool), ScoreError> {
        let mut p = profile.to_string();
        let mut got = first;
        for _ in 0..32 {
            match got.take() {
                Some(l) if follow && !l.active() && l.merged_into.is_some() => {
                    p = l.merged_into.clone().unwrap_or_default();
                }
                Some(l) => return Ok((l, false)),
                None => {
                    if leads::insert(txn, tenant, &p, &defs.machine.initial, now).await? {
                        if let Some(l) = leads::lock(txn, tenant, &p).await? {
                            return Ok((l, true));
                        }
                    }
                }
            }
            got = leads::lock(txn, tenant, &p).await?;
        }
        Err(ScoreError::MergeChain {
            profile: profile.to_string(),
        })
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) async fn open<'a>(
        &self,
        txn: &'a DatabaseTransaction,
        defs: &'a Compiled,
        lead: Lead,
        created: bool,
        now: DateTime<Utc>,
        cause: Cause,
        outbox: Option<&'a Mutex<Vec<Envelope>>>,
    ) -> Result<Work<'a>, DbErr> {
        let zone = self.cfg.zone_of(&lead.tenant);
        let mut w = Work::open(
            txn,
            defs,
            lead,
            now,
            zone,
            cause,
            self.cfg.max_settle_rounds,
        )
        .await?;
        if let Some(sink) = outbox {
            w.defer_outbox(sink);
        }
        if created {
            w.enter_initial().await?;
        }
        Ok(w)
    }
}
