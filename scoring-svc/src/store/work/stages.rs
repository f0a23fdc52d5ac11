//! Stage moves of a [`Work`]'s lead: the initial stage, a move (closing the open SLA of the stage
//! it leaves), a return when what moved it on is undone, the automatic move the machine allows,
//! and the history entry, SLA and `lead.stage_changed` of each stage entered.

use chrono::Duration;
use proto::scoring::{ActorKind, StageChanged};
use sea_orm::DbErr;

use crate::domain::stages::LeadView;
use crate::store::leads::{self, Move};

use super::Work;

impl Work<'_> {
    /// Enters the initial stage of a lead just created.
    pub async fn enter_initial(&mut self) -> Result<(), DbErr> {
        let to = self.lead.stage.clone();
        self.record_stage(None, &to, ActorKind::System, "scoring", "first seen")
            .await
    }

    /// Moves the lead to `to`.
    pub async fn move_stage(
        &mut self,
        to: &str,
        kind: ActorKind,
        actor: &str,
        reason: &str,
    ) -> Result<(), DbErr> {
        let from = self.lead.stage.clone();
        self.left.insert(from.clone());
        leads::settle_open_slas(
            self.txn,
            &self.tenant,
            &self.lead.profile,
            leads::SLA_CLOSED,
            "left the stage",
            self.now,
        )
        .await?;
        self.record_stage(Some(&from), to, kind, actor, reason)
            .await
    }

    /// Moves the lead back to `to` when what moved it on is undone (an un-merge): unlike
    /// [`Self::move_stage`], the stage it leaves may be entered again by this settle (it left
    /// because of facts it no longer has, and may qualify by its own).
    pub async fn return_to(
        &mut self,
        to: &str,
        kind: ActorKind,
        actor: &str,
        reason: &str,
    ) -> Result<(), DbErr> {
        let from = self.lead.stage.clone();
        self.move_stage(to, kind, actor, reason).await?;
        self.left.remove(&from);
        Ok(())
    }

    async fn record_stage(
        &mut self,
        from: Option<&str>,
        to: &str,
        kind: ActorKind,
        actor: &str,
        reason: &str,
    ) -> Result<(), DbErr> {
        let m = Move {
            from,
            to,
            actor_kind: kind,
            actor,
            reason,
            cause_id: Some(&self.cause.id),
        };
        let hid = leads::record_move(
            self.txn,
            &self.tenant,
            &self.lead.profile,
            self.lead.history_id,
            &m,
            self.now,
        )
        .await?;
        if let Some(sla) = self.defs.machine.stage(to).and_then(|s| s.sla.clone()) {
            let due = self.now + Duration::hours(i64::from(sla.hours));
            leads::open_sla(
                self.txn,
                &self.tenant,
                &self.lead.profile,
                hid,
                to,
                self.now,
                due,
            )
            .await?;
        }
        self.lead.stage = to.to_string();
        self.lead.stage_entered_at = self.now;
        self.lead.history_id = hid;
        self.entered.push((to.to_string(), hid));
        let ev = StageChanged {
            profile_id: self.lead.profile.clone(),
            from: from.map(str::to_string),
            to: to.to_string(),
            actor_kind: kind,
            actor: actor.to_string(),
            reason: reason.to_string(),
            history_id: hid,
            owner: self.lead.owner.clone(),
            at: self.now,
        };
        self.publish(&ev).await
    }

    /// One automatic stage move, if one applies.
    pub(super) async fn auto_stage(&mut self) -> Result<bool, DbErr> {
        let ctx = self.ctx();
        let stage = self.lead.stage.clone();
        let entered = self.lead.stage_entered_at;
        let last = self.lead.last_activity_at;
        let left = self.left.clone();
        let machine = &self.defs.machine;
        let facts = self.view().await?;
        let v = LeadView {
            stage: &stage,
            entered_at: entered,
            last_activity: last,
            facts,
            ctx: &ctx,
        };
        match machine.next_auto(&v, &left) {
            Some(m) => {
                self.move_stage(&m.to, ActorKind::Rule, &m.actor, &m.reason)
                    .await?;
                Ok(true)
            }
            None => Ok(false),
        }
    }
}
