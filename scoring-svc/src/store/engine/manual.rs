//! Changes people make to one lead: a stage move (checked against the machine), a contact that
//! meets the open SLA, and a manual points adjustment.

use std::time::Duration;

use platform::db::begin_locking_write;
use proto::scoring::{ActorKind, ScoreCause};

use crate::domain::compiled::Compiled;
use crate::domain::stages::LeadView;
use crate::store::is_contention;
use crate::store::leads::{self, Lead};
use crate::store::ledger::{self, NewEntry};
use crate::store::work::Cause;

use super::{ManualError, Moved, ScoreError, Scorer};

impl Scorer {
    /// A manual move of `profile` to `to` by `actor` (a rep or operator) with `reason`; refused
    /// when the machine does not allow it.
    pub async fn move_stage(
        &self,
        tenant: &str,
        profile: &str,
        to: &str,
        actor: &str,
        reason: &str,
    ) -> Result<Moved, ManualError> {
        let defs = self.compiled(tenant).await.map_err(ScoreError::from)?;
        let request = uuid::Uuid::now_v7();
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self
                .try_move(&defs, tenant, profile, to, actor, reason, request)
                .await
            {
                Err(ManualError::Score(ScoreError::Db(e)))
                    if is_contention(&e) && attempt < self.cfg.tx_attempts =>
                {
                    tokio::time::sleep(Duration::from_millis(5 * u64::from(attempt))).await;
                }
                other => return other,
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn try_move(
        &self,
        defs: &Compiled,
        tenant: &str,
        profile: &str,
        to: &str,
        actor: &str,
        reason: &str,
        request: uuid::Uuid,
    ) -> Result<Moved, ManualError> {
        let now = self.clock.now();
        let txn = begin_locking_write(&self.db).await?;
        let Some(lead) = leads::lock(&txn, tenant, profile).await? else {
            txn.rollback().await?;
            return Err(ManualError::NotFound(profile.to_string()));
        };
        if !lead.active() {
            txn.rollback().await?;
            return Err(ManualError::Merged {
                profile: profile.to_string(),
                survivor: lead.merged_into.unwrap_or_default(),
            });
        }
        let cause = Cause {
            id: format!("move:{}", request.simple()),
            kind: ScoreCause::State,
            trace_id: request.simple().to_string(),
        };
        let mut w = self.open(&txn, defs, lead, false, now, cause, None).await?;
        let ctx = w.ctx();
        let (stage, entered, last) = (
            w.lead.stage.clone(),
            w.lead.stage_entered_at,
            w.lead.last_activity_at,
        );
        let facts = w.view().await?;
        let v = LeadView {
            stage: &stage,
            entered_at: entered,
            last_activity: last,
            facts,
            ctx: &ctx,
        };
        if let Err(r) = defs.machine.check_manual(&v, to) {
            txn.rollback().await?;
            metrics::counter!(crate::metrics::MANUAL_MOVES, "outcome" => "refused").increment(1);
            return Err(ManualError::Refused(r));
        }
        w.move_stage(to, ActorKind::User, actor, reason).await?;
        let history_id = w.lead.history_id;
        w.settle().await?;
        let lead = w.finish().await?;
        txn.commit().await?;
        metrics::counter!(crate::metrics::MANUAL_MOVES, "outcome" => "moved").increment(1);
        Ok(Moved { lead, history_id })
    }

    /// `actor` (as the service credential names them, e.g. `rep:<corp>:<userid>`) contacted the
    /// lead: its open SLA is met, settled by `actor`. Returns how many SLAs were settled;
    /// [`ManualError::NotFound`] when the tenant has no lead for `profile`.
    pub async fn mark_contacted(
        &self,
        tenant: &str,
        profile: &str,
        actor: &str,
    ) -> Result<u64, ManualError> {
        let r = self
            .retry(|| async {
                let now = self.clock.now();
                let txn = begin_locking_write(&self.db).await?;
                let Some(lead) = leads::lock(&txn, tenant, profile).await? else {
                    txn.rollback().await?;
                    return Ok(None);
                };
                let n = leads::settle_open_slas(
                    &txn,
                    tenant,
                    &lead.profile,
                    leads::SLA_MET,
                    actor,
                    now,
                )
                .await?;
                txn.commit().await?;
                Ok(Some(n))
            })
            .await?;
        r.ok_or_else(|| ManualError::NotFound(profile.to_string()))
    }

    /// Adds `delta` points to `profile` (or the profile it was merged into) in model `model_id`
    /// by hand, as `actor`. Never creates a lead: [`ManualError::NotFound`] when the tenant has
    /// none for `profile`.
    pub async fn adjust(
        &self,
        tenant: &str,
        profile: &str,
        model_id: &str,
        delta: f64,
        actor: &str,
        reason: &str,
    ) -> Result<Lead, ManualError> {
        let defs = self.compiled(tenant).await.map_err(ScoreError::from)?;
        let Some(model) = defs.model_by_id(model_id) else {
            return Err(ManualError::NotFound(format!("model {model_id}")));
        };
        let request = uuid::Uuid::now_v7();
        let lead = self
            .retry(|| async {
                let now = self.clock.now();
                let txn = begin_locking_write(&self.db).await?;
                let Some(first) = leads::lock(&txn, tenant, profile).await? else {
                    txn.rollback().await?;
                    return Ok(None);
                };
                let (lead, created) = self
                    .acquire_from(&txn, &defs, tenant, profile, true, now, Some(first))
                    .await?;
                if created {
                    facts::ensure_profile(&txn, tenant, profile, now).await?;
                }
                let cause = Cause {
                    id: format!("adjust:{}", request.simple()),
                    kind: ScoreCause::Adjustment,
                    trace_id: request.simple().to_string(),
                };
                let mut w = self
                    .open(&txn, &defs, lead, created, now, cause, None)
                    .await?;
                let e = NewEntry {
                    model_id: model_id.to_string(),
                    rule_id: String::new(),
                    kind: ledger::ADJUST,
                    source_key: format!("adjust:{}", request.simple()),
                    event_kind: None,
                    points: delta,
                    delta,
                    capped: None,
                    earned: now,
                    expires_at: None,
                    cause_id: Some(actor.to_string()),
                    note: Some(reason.chars().take(500).collect()),
                };
                w.add_entry(model, e).await?;
                w.settle().await?;
                let lead = w.finish().await?;
                txn.commit().await?;
                Ok(Some(lead))
            })
            .await?;
        lead.ok_or_else(|| ManualError::NotFound(profile.to_string()))
    }
}
