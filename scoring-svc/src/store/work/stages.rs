//! Stage moves of a [`Work`]'s lead, as written: the initial stage, a move the change itself
//! makes (a rep's, a merge's — its entered stage's triggers fire when the work settles), a return
//! when what moved it on is undone, and each move the settling decided; every move closes the
//! open SLA of the stage it leaves and writes the history entry, SLA and `lead.stage_changed` of
//! the stage entered.

use chrono::Duration;
use proto::scoring::{ActorKind, StageChanged};
use sea_orm::DbErr;

use crate::domain::settle::History;
use crate::store::leads::{self, Move};

use super::Work;

impl Work<'_> {
    /// Enters the initial stage of a lead just created.
    pub async fn enter_initial(&mut self) -> Result<(), DbErr> {
        let to = self.lead.stage.clone();
        let hid = self
            .enter(None, &to, ActorKind::System, "scoring", "first seen")
            .await?;
        self.entered.push((to, History::Stored(hid)));
        Ok(())
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
        let hid = self.leave_for(&from, to, kind, actor, reason).await?;
        self.entered.push((to.to_string(), History::Stored(hid)));
        Ok(())
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

    /// Leaves `from` (its open SLA closed) for `to`; returns the history entry of `to`.
    pub(super) async fn leave_for(
        &mut self,
        from: &str,
        to: &str,
        kind: ActorKind,
        actor: &str,
        reason: &str,
    ) -> Result<i64, DbErr> {
        leads::settle_open_slas(
            self.txn,
            &self.tenant,
            &self.lead.profile,
            leads::SLA_CLOSED,
            "left the stage",
            self.now,
        )
        .await?;
        self.enter(Some(from), to, kind, actor, reason).await
    }

    /// Enters `to`: its history entry (returned), its SLA, the lead row and
    /// `lead.stage_changed`.
    async fn enter(
        &mut self,
        from: Option<&str>,
        to: &str,
        kind: ActorKind,
        actor: &str,
        reason: &str,
    ) -> Result<i64, DbErr> {
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
        self.publish(&ev).await?;
        Ok(hid)
    }
}
