//! The scheduler's passes: leads whose `next_check_at` has come (a decay boundary or crossing,
//! an inactivity deadline, a time-driven condition) are looked at again; SLAs past due are
//! breached (once: the status change is conditional, the event is in the same transaction);
//! recompute jobs advance one batch. Every instance runs it; they share the work through the
//! database.
//!
//! The facts projection's rolling counters are never rolled here: scoring evaluates conditions
//! on the daily buckets `facts::load_profile` returns, so events are recorded without them
//! (`facts::record_event_buckets`: no clock read, no counter update, no dirty mark).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use platform::db::begin_locking_write;
use platform::db::outbox::{self, OutboxRelay};
use proto::scoring::SlaBreached;
use proto::Envelope;
use sea_orm::sea_query::{Expr, Order, Query};
use sea_orm::{DbErr, FromQueryResult};
use tokio_util::sync::CancellationToken;

use super::leads::{self, SLA_BREACHED, SLA_OPEN};
use super::migrations::{LeadSla as A, Leads as L};
use super::{exec, fetch, jobs, Scorer};

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TickReport {
    /// Leads looked at again.
    pub leads: usize,
    /// SLAs breached.
    pub breaches: usize,
    /// Profiles recomputed by jobs.
    pub recomputed: usize,
}

/// Runs the passes.
#[derive(Clone)]
pub struct Scheduler {
    scorer: Scorer,
    batch: u32,
    recompute_batch: u32,
    relay: Option<OutboxRelay>,
}

impl Scheduler {
    /// Leads and SLAs are looked at `batch` at a time, recompute jobs advance `recompute_batch`
    /// profiles a pass; `relay` is woken when a pass enqueued events.
    pub fn new(
        scorer: Scorer,
        batch: u32,
        recompute_batch: u32,
        relay: Option<OutboxRelay>,
    ) -> Self {
        Scheduler {
            scorer,
            batch: batch.max(1),
            recompute_batch: recompute_batch.max(1),
            relay,
        }
    }

    /// One pass of everything due now.
    pub async fn tick(&self) -> Result<TickReport, DbErr> {
        let now = self.scorer.clock.now();
        let mut r = TickReport::default();
        loop {
            let n = self.due_leads(now).await?;
            r.leads += n;
            if n < self.batch as usize {
                break;
            }
        }
        r.breaches = self.breaches(now).await?;
        // The projection's tag holders (kept by the shared facts writers; analytics read
        // tagging's).
        facts::compact_tag_holders(&self.scorer.db, facts::HOLDER_LOG_BATCH).await?;
        r.recomputed = jobs::step(&self.scorer, self.recompute_batch, now).await?;
        if r != TickReport::default() {
            if let Some(relay) = &self.relay {
                relay.wake();
            }
        }
        Ok(r)
    }

    async fn due_leads(&self, now: DateTime<Utc>) -> Result<usize, DbErr> {
        #[derive(FromQueryResult)]
        struct Due {
            tenant_id: String,
            profile_id: String,
        }
        let q = Query::select()
            .columns([L::TenantId, L::ProfileId])
            .from(L::Table)
            .and_where(Expr::col(L::NextCheckAt).lte(now))
            .and_where(Expr::col(L::Status).eq(leads::ACTIVE))
            .order_by(L::NextCheckAt, Order::Asc)
            .limit(u64::from(self.batch))
            .to_owned();
        let due: Vec<Due> = fetch(&self.scorer.db, &q).await?;
        let mut n = 0;
        for Due {
            tenant_id: tenant,
            profile_id: profile,
        } in due
        {
            match self.scorer.reevaluate(&tenant, &profile).await {
                Ok(_) => n += 1,
                Err(e) => {
                    tracing::warn!(tenant_id = %tenant, profile_id = %profile, error = %e, "Looking at a lead again failed");
                    // Do not spin on it: look again a minute later.
                    let q = Query::update()
                        .table(L::Table)
                        .value(L::NextCheckAt, now + chrono::Duration::minutes(1))
                        .and_where(Expr::col(L::TenantId).eq(&tenant))
                        .and_where(Expr::col(L::ProfileId).eq(&profile))
                        .to_owned();
                    exec(&self.scorer.db, &q).await?;
                }
            }
        }
        Ok(n)
    }

    async fn breaches(&self, now: DateTime<Utc>) -> Result<usize, DbErr> {
        #[derive(FromQueryResult)]
        struct Due {
            history_id: i64,
            tenant_id: String,
            profile_id: String,
            stage: String,
            entered_at: DateTime<Utc>,
            due_at: DateTime<Utc>,
        }
        let q = Query::select()
            .columns([
                A::HistoryId,
                A::TenantId,
                A::ProfileId,
                A::Stage,
                A::EnteredAt,
                A::DueAt,
            ])
            .from(A::Table)
            .and_where(Expr::col(A::Status).eq(SLA_OPEN))
            .and_where(Expr::col(A::DueAt).lte(now))
            .order_by(A::DueAt, Order::Asc)
            .limit(u64::from(self.batch))
            .to_owned();
        let mut n = 0;
        for row in fetch::<Due, _>(&self.scorer.db, &q).await? {
            let (hid, tenant, profile) = (row.history_id, row.tenant_id, row.profile_id);
            let txn = begin_locking_write(&self.scorer.db).await?;
            let q = Query::update()
                .table(A::Table)
                .value(A::Status, SLA_BREACHED)
                .value(A::SettledAt, now)
                .value(A::SettledBy, "sla")
                .and_where(Expr::col(A::HistoryId).eq(hid))
                .and_where(Expr::col(A::Status).eq(SLA_OPEN))
                .to_owned();
            if exec(&txn, &q).await?.rows_affected() != 1 {
                txn.rollback().await?;
                continue;
            }
            let owner = leads::find(&txn, &tenant, &profile)
                .await?
                .and_then(|l| l.owner);
            let ev = SlaBreached {
                profile_id: profile.clone(),
                stage: row.stage,
                history_id: hid,
                entered_at: row.entered_at,
                due_at: row.due_at,
                owner,
                at: now,
            };
            let env = Envelope::of(&tenant, &ev)
                .occurred_at(now)
                .dedupe_key(format!("sla|{hid}"))
                .build();
            outbox::enqueue(&txn, &env).await?;
            txn.commit().await?;
            metrics::counter!(crate::metrics::SLA_BREACHED).increment(1);
            n += 1;
        }
        Ok(n)
    }

    /// Passes every `interval` until `shutdown`, beating `beat` on every pass.
    pub async fn run(
        self: Arc<Self>,
        interval: Duration,
        shutdown: CancellationToken,
        beat: platform::tasks::Beat,
    ) {
        loop {
            beat.beat();
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(interval) => {}
            }
            if let Err(e) = self.tick().await {
                tracing::warn!(error = %e, "Scheduler pass failed");
            }
        }
    }
}
