//! Merges and un-merges: the absorbed leads, ledgers and facts move to the survivor (its stage
//! moving ahead when an absorbed lead was further on), and an un-merge gives each side back its
//! own — events, ledger entries, caps, owner, activity and the stage before the merge.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use proto::identity::IdentityMerged;
use proto::scoring::{ActorKind, ScoreCause};
use proto::tagging::TagsUnmerged;
use proto::Envelope;
use sea_orm::{DatabaseTransaction, DbErr};

use crate::clock::whole;
use crate::domain::compiled::Compiled;
use crate::domain::points::reallocate;
use crate::domain::stages::stage_after_unmerge;
use crate::store::leads::{self, Lead};
use crate::store::ledger;
use crate::store::work::Work;

use super::bus::Prep;
use super::projection::{last_activity, replace_tags};
use super::{Outcome, ScoreError, Scorer};

impl Scorer {
    /// Locks every lead of `ids` in id order (creating missing ones as `status`), raw (no
    /// forwarding).
    async fn lock_all(
        &self,
        txn: &DatabaseTransaction,
        defs: &Compiled,
        tenant: &str,
        ids: &[&str],
        now: DateTime<Utc>,
    ) -> Result<BTreeMap<String, (Lead, bool)>, ScoreError> {
        let mut sorted: Vec<&str> = ids.to_vec();
        sorted.sort();
        sorted.dedup();
        let mut out = BTreeMap::new();
        for id in sorted {
            let got = self.acquire(txn, defs, tenant, id, false, now).await?;
            out.insert(id.to_string(), got);
        }
        Ok(out)
    }

    pub(super) async fn on_merged(
        &self,
        txn: &DatabaseTransaction,
        defs: &Compiled,
        env: &Envelope,
        m: &IdentityMerged,
        now: DateTime<Utc>,
        prep: Prep<'_>,
    ) -> Result<Outcome, ScoreError> {
        let tenant = env.tenant_id.as_str();
        let mut ids: Vec<&str> = m.absorbed.iter().map(String::as_str).collect();
        ids.push(&m.survivor);
        let mut locked = self.lock_all(txn, defs, tenant, &ids, now).await?;
        // The survivor may itself have been merged on since (messages arrive in any order).
        let (survivor, created) = match locked.remove(&m.survivor) {
            Some((l, c)) if l.active() => (l, c),
            _ => {
                self.acquire(txn, defs, tenant, &m.survivor, true, now)
                    .await?
            }
        };
        let s_id = survivor.profile.clone();
        let mut w = self
            .open(
                txn,
                defs,
                survivor,
                created,
                now,
                Self::cause(env, ScoreCause::Merge),
                prep.outbox,
            )
            .await?;
        let today = w.today;
        // Where an un-merge of this merge takes the survivor's stage back to.
        let mark = w.lead.history_id;
        for a in &m.absorbed {
            let Some((mut al, _)) = locked.remove(a) else {
                continue;
            };
            if a == &s_id || !al.active() {
                continue;
            }
            facts::merge_profiles(txn, tenant, &s_id, a, today, now).await?;
            let (moved, kept) = ledger::merge(txn, tenant, &s_id, a).await?;
            tracing::debug!(survivor = %s_id, absorbed = %a, moved, kept, "Ledger merged");
            leads::settle_open_slas(txn, tenant, a, leads::SLA_CLOSED, "merged", now).await?;
            w.lead.last_activity_at = match (w.lead.last_activity_at, al.last_activity_at) {
                (Some(x), Some(y)) => Some(x.max(y)),
                (x, y) => x.or(y),
            };
            if w.lead.owner.is_none() {
                w.lead.owner = al.owner.clone();
            }
            let ahead = match (
                defs.machine.stage(&al.stage).and_then(|s| s.forward),
                defs.machine.stage(&w.lead.stage).and_then(|s| s.forward),
            ) {
                (Some(x), Some(y)) => x > y,
                _ => false,
            };
            if ahead {
                let reason = format!("merged with `{a}`, which was in `{}`", al.stage);
                let to = al.stage.clone();
                w.move_stage(&to, ActorKind::Merge, a, &reason).await?;
            }
            al.status = leads::MERGED.to_string();
            al.merged_into = Some(s_id.clone());
            al.next_check_at = None;
            al.merge_history_id = mark;
            leads::save(txn, &al, now).await?;
        }
        w.facts_changed();
        w.force_state = true;
        w.rebuild_all().await?;
        w.settle().await?;
        w.finish().await?;
        Ok(Outcome::Applied)
    }

    pub(super) async fn on_unmerged(
        &self,
        txn: &DatabaseTransaction,
        defs: &Compiled,
        env: &Envelope,
        t: &TagsUnmerged,
        now: DateTime<Utc>,
        prep: Prep<'_>,
    ) -> Result<Outcome, ScoreError> {
        let tenant = env.tenant_id.as_str();
        let u = &t.unmerged;
        let mut ids: Vec<&str> = u.restored.iter().map(String::as_str).collect();
        ids.push(&u.survivor);
        let mut locked = self.lock_all(txn, defs, tenant, &ids, now).await?;
        // Both sides' facts as the separation left them: states from identity, tags from
        // tagging (the merged ones would move stages on facts neither side has).
        let mut owners = BTreeMap::new();
        for state in &u.states {
            facts::apply_profile(txn, tenant, state, now).await?;
            owners.insert(state.profile_id.as_str(), leads::owner_of(&state.relations));
        }
        for (p, tags) in &t.tags {
            replace_tags(txn, tenant, p, tags, whole(t.at), now).await?;
        }
        let (survivor, created) =
            locked
                .remove(&u.survivor)
                .ok_or_else(|| ScoreError::SurvivorNotLocked {
                    profile: u.survivor.clone(),
                })?;
        let s_id = survivor.profile.clone();
        let cause = Self::cause(env, ScoreCause::Unmerge);
        let mut ws = self
            .open(
                txn,
                defs,
                survivor,
                created,
                now,
                cause.clone(),
                prep.outbox,
            )
            .await?;
        let today = ws.today;
        let moved: Vec<String> = u.moved_events.iter().map(|e| e.to_string()).collect();
        let mut restored = Vec::new();
        for (i, r) in u.restored.iter().enumerate() {
            let Some((rl, rcreated)) = locked.remove(r) else {
                continue;
            };
            if r == &s_id {
                continue;
            }
            if rl.merge_history_id > 0 {
                self.stage_before_merge(txn, &mut ws, r, rl.merge_history_id)
                    .await?;
            }
            // Opened as stored, changed in the work (so that the change is written).
            let mut wr = self
                .open(txn, defs, rl, rcreated, now, cause.clone(), prep.outbox)
                .await?;
            wr.lead.status = leads::ACTIVE.to_string();
            wr.lead.merged_into = None;
            wr.lead.merge_history_id = 0;
            if let Some(owner) = owners.get(r.as_str()) {
                wr.lead.owner = owner.clone();
            }
            // Events go back with the first restored profile (an un-merge restores one; a split
            // creates one).
            let theirs: &[String] = if i == 0 { &moved } else { &[] };
            facts::split_events(txn, tenant, &s_id, r, theirs, today, now).await?;
            let n = ledger::split(txn, tenant, &s_id, r, theirs).await?;
            tracing::debug!(survivor = %s_id, restored = %r, moved = n, "Ledger split");
            wr.lead.last_activity_at = last_activity(txn, tenant, r, wr.zone).await?;
            self.recap(txn, defs, &mut wr, &cause.id, now).await?;
            wr.facts_changed();
            wr.force_state = true;
            wr.rebuild_all().await?;
            restored.push(wr);
        }
        // The survivor's activity, caps and owner are its own again.
        ws.lead.last_activity_at = last_activity(txn, tenant, &s_id, ws.zone).await?;
        self.recap(txn, defs, &mut ws, &cause.id, now).await?;
        if let Some(owner) = owners.get(s_id.as_str()) {
            ws.lead.owner = owner.clone();
        }
        ws.facts_changed();
        ws.force_state = true;
        ws.rebuild_all().await?;
        ws.settle().await?;
        ws.finish().await?;
        for mut wr in restored {
            wr.settle().await?;
            wr.finish().await?;
        }
        Ok(Outcome::Applied)
    }

    /// Applies the caps of every capped event rule again to `w`'s entries, in the order they
    /// were awarded ([`reallocate`]), after an un-merge took events away from the profile or gave
    /// them back: the other person's events no longer use up its caps. A rule whose awards change
    /// has its entries written again ([`ledger::rewrite_awards`]).
    async fn recap(
        &self,
        txn: &DatabaseTransaction,
        defs: &Compiled,
        w: &mut Work<'_>,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<(), DbErr> {
        let tenant = w.lead.tenant.clone();
        let profile = w.profile().to_string();
        for r in defs.event_rules.iter().filter(|r| !r.caps.is_empty()) {
            let entries = ledger::rule_events(txn, &tenant, &profile, &r.id).await?;
            let events: Vec<_> = entries.iter().map(|e| (e.points, e.earned)).collect();
            let awards = reallocate(&r.caps, &events, w.zone);
            let unchanged = entries
                .iter()
                .zip(&awards)
                .all(|(e, a)| e.delta == a.delta && e.capped.as_deref() == a.capped);
            if unchanged {
                continue;
            }
            let pairs: Vec<_> = entries.into_iter().zip(awards).collect();
            ledger::rewrite_awards(txn, &tenant, &profile, &r.id, &pairs, by, now).await?;
        }
        Ok(())
    }

    /// Takes the survivor `w` of a merge being undone back to its stage when the merge was applied
    /// (history entry `mark`), unless a person moved it since ([`stage_after_unmerge`]); the
    /// settle that follows moves it on by its own facts.
    async fn stage_before_merge(
        &self,
        txn: &DatabaseTransaction,
        w: &mut Work<'_>,
        restored: &str,
        mark: i64,
    ) -> Result<(), DbErr> {
        let tenant = w.lead.tenant.clone();
        let history = leads::history_from(txn, &tenant, w.profile(), mark).await?;
        let Some((at_merge, since)) = history.split_first().filter(|(h, _)| h.id == mark) else {
            return Ok(());
        };
        let kinds: Vec<_> = since.iter().map(|h| h.actor_kind).collect();
        if let Some(to) = stage_after_unmerge(&at_merge.to_stage, &kinds, &w.lead.stage) {
            let reason = format!("un-merged from `{restored}`: back to its stage before the merge");
            w.return_to(to, ActorKind::Merge, restored, &reason).await?;
        }
        Ok(())
    }
}
