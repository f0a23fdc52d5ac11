//! One bus event applied to the projection and the profile's rules: a resolution, a state
//! update (with the write-back's contacts and the reps' own WeCom tags), a merge, an un-merge, a
//! lead's score or stage, or a tag command.

use proto::identity::{ProfileUpdated, UnmergeKind};
use proto::profile::ProfileEvent;
use proto::tagging::{TagChanged, TagSource, TagsUnmerged};
use proto::Envelope;
use sea_orm::{ColumnTrait, DatabaseTransaction, DbErr, EntityTrait, QueryFilter};

use crate::domain::At;
use crate::store::entities::schedule;
use crate::store::members::{self, MemberError, Reason};
use crate::store::rules::Trigger;
use crate::store::saved::kept;
use crate::store::work::Work;
use crate::store::{rep_tags, writeback};

use super::Tagger;

impl Tagger {
    pub(super) async fn apply(
        &self,
        txn: &DatabaseTransaction,
        tenant: &str,
        work: &Work,
    ) -> Result<Vec<TagChanged>, DbErr> {
        let at = self.at(tenant);
        match work {
            Work::Profile(ProfileEvent::Resolved(r)) => {
                let (changes, recorded) = self.resolved(txn, tenant, &[r]).await?;
                let recorded: Vec<&rules::EventFact> = recorded.iter().collect();
                facts::bump_tenant_activity(txn, tenant, &recorded).await?;
                Ok(changes.into_iter().flatten().collect())
            }
            Work::Profile(ProfileEvent::Updated(u)) => {
                let p = u.profile_id.as_str();
                if facts::ensure_locked(txn, tenant, p, at.now).await? {
                    // Known first by its state: seen now, unless its creating event says earlier.
                    facts::record_first_seen(txn, tenant, &[(p, at.now)], at.zone).await?;
                }
                let Some((applied, mut out)) = self.apply_state(txn, tenant, u, &at).await? else {
                    return Ok(Vec::new());
                };
                let trigger = if applied.first {
                    Trigger::All
                } else {
                    Trigger::State {
                        keys: applied.changed_keys,
                        relations: applied.relations_changed,
                    }
                };
                out.extend(self.engine.settle(txn, tenant, p, trigger, &at).await?);
                Ok(out)
            }
            Work::Profile(ProfileEvent::Merged(m)) => {
                let mut out = Vec::new();
                facts::ensure_profile(txn, tenant, &m.survivor, at.now).await?;
                facts::lock_profile(txn, tenant, &m.survivor).await?;
                for absorbed in &m.absorbed {
                    out.extend(members::merge(txn, tenant, &m.survivor, absorbed, at.now).await?);
                    facts::merge_first_seen(txn, tenant, &m.survivor, absorbed).await?;
                    facts::merge_profiles(txn, tenant, &m.survivor, absorbed, at.today, at.now)
                        .await?;
                    schedule::Entity::delete_many()
                        .filter(schedule::Column::TenantId.eq(tenant))
                        .filter(schedule::Column::ProfileId.eq(absorbed.as_str()))
                        .exec(txn)
                        .await?;
                    kept::forget(txn, tenant, absorbed).await?;
                }
                out.extend(
                    self.engine
                        .settle(txn, tenant, &m.survivor, Trigger::All, &at)
                        .await?,
                );
                Ok(out)
            }
            Work::Unmerged(u, message) => {
                let mut out = Vec::new();
                facts::ensure_profile(txn, tenant, &u.survivor, at.now).await?;
                facts::lock_profile(txn, tenant, &u.survivor).await?;
                let moved: Vec<String> = u.moved_events.iter().map(|e| e.to_string()).collect();
                for restored in &u.restored {
                    facts::split_events(
                        txn,
                        tenant,
                        &u.survivor,
                        restored,
                        &moved,
                        at.today,
                        at.now,
                    )
                    .await?;
                    // A split's new profile is first seen with the split.
                    let new_at = (u.kind == UnmergeKind::Split).then_some(at.now);
                    facts::unmerge_first_seen(txn, tenant, &u.survivor, restored, new_at, at.zone)
                        .await?;
                    out.extend(members::unmerge(txn, tenant, &u.survivor, restored, at.now).await?);
                }
                // Both sides' states as identity derived them for the separation (the restored
                // profile's were dropped with the merge).
                for state in &u.states {
                    if let Some((_, changes)) = self.apply_state(txn, tenant, state, &at).await? {
                        out.extend(changes);
                    }
                }
                let sides: Vec<&String> = std::iter::once(&u.survivor).chain(&u.restored).collect();
                for p in &sides {
                    out.extend(
                        self.engine
                            .settle(txn, tenant, p, Trigger::All, &at)
                            .await?,
                    );
                }
                let mut tags = std::collections::BTreeMap::new();
                for p in sides {
                    let held = members::tags_of(txn, tenant, p).await?;
                    tags.insert(p.clone(), held.into_iter().collect());
                }
                let done = TagsUnmerged {
                    unmerged: u.clone(),
                    tags,
                    changes: out.clone(),
                    at: at.now,
                };
                let env = Envelope::of(tenant, &done)
                    .occurred_at(at.now)
                    .dedupe_key(format!("tag.unmerged|{message}"))
                    .build();
                platform::db::outbox::enqueue(txn, &env).await?;
                Ok(out)
            }
            Work::Command { add, cmd } => {
                let Some(info) = members::tag_info(txn, tenant, &cmd.tag_id).await? else {
                    tracing::warn!(tag_id = %cmd.tag_id, actor = %cmd.actor, "Tag command for an unknown tag ignored");
                    return Ok(Vec::new());
                };
                let why = Reason {
                    source: TagSource::Trigger,
                    origin: cmd.actor.chars().take(64).collect(),
                    actor: Some(cmd.actor.chars().take(64).collect()),
                };
                facts::ensure_profile(txn, tenant, &cmd.profile_id, at.now).await?;
                facts::lock_profile(txn, tenant, &cmd.profile_id).await?;
                self.change(txn, tenant, &cmd.profile_id, &info, *add, &why, &at)
                    .await
                    .or_else(|e| match e {
                        MemberError::Db(e) => Err(e),
                        other => {
                            tracing::warn!(error = %other, "Tag command refused");
                            Ok(Vec::new())
                        }
                    })
            }
            Work::Score(c) => {
                let p = c.profile_id.as_str();
                if !self.holds(txn, tenant, p).await? || !facts::apply_score(txn, tenant, c).await?
                {
                    return Ok(Vec::new());
                }
                let keys = vec![format!("{}{}", rules::SCORE_PREFIX, c.model)];
                self.settle_keys(txn, tenant, p, keys, &at).await
            }
            Work::Stage(c) => {
                let p = c.profile_id.as_str();
                if !self.holds(txn, tenant, p).await? {
                    return Ok(Vec::new());
                }
                // History (stage conversion) keeps every entry, an older one arriving late too.
                facts::record_stage_entry(txn, tenant, c, at.zone).await?;
                if !facts::apply_stage(txn, tenant, c).await? {
                    return Ok(Vec::new());
                }
                let keys = vec![
                    rules::LEAD_STAGE_KEY.to_string(),
                    rules::LEAD_STAGE_ENTERED_KEY.to_string(),
                ];
                self.settle_keys(txn, tenant, p, keys, &at).await
            }
            // Types `decode` does not read for tagging (`PROFILE_KINDS`); un-merges are above.
            Work::Profile(_) => Ok(Vec::new()),
        }
    }

    /// Locks the profile when the projection holds it. What scoring says of a lead is kept only
    /// then: a profile it does not hold was merged away since scoring wrote the message (a new
    /// profile's `profile.resolved` is always ahead of its first score in the queue).
    async fn holds(
        &self,
        txn: &DatabaseTransaction,
        tenant: &str,
        profile: &str,
    ) -> Result<bool, DbErr> {
        let held = facts::lock_known(txn, tenant, profile).await?;
        if !held {
            tracing::debug!(profile_id = %profile, "Lead message for a profile not in the projection");
        }
        Ok(held)
    }

    /// Settles the rules that read `keys` of the profile.
    async fn settle_keys(
        &self,
        txn: &DatabaseTransaction,
        tenant: &str,
        profile: &str,
        keys: Vec<String>,
        at: &At,
    ) -> Result<Vec<TagChanged>, DbErr> {
        let trigger = Trigger::State {
            keys,
            relations: false,
        };
        self.engine.settle(txn, tenant, profile, trigger, at).await
    }

    /// Applies a profile's state (`profile.updated`, or one an un-merge carries) to the projection
    /// when it is newer than the one held: properties and relationships, the WeCom contacts the
    /// write-back reaches, the reps' own tagging in WeCom. Returns what changed and the tag-set
    /// changes of the reps' tags (the caller settles the rules); `None` for an older state.
    pub(super) async fn apply_state(
        &self,
        txn: &DatabaseTransaction,
        tenant: &str,
        u: &ProfileUpdated,
        at: &At,
    ) -> Result<Option<(facts::ProfileApplied, Vec<TagChanged>)>, DbErr> {
        let p = u.profile_id.as_str();
        let Some(applied) = facts::apply_profile(txn, tenant, u, at.now).await? else {
            return Ok(None);
        };
        writeback::set_contacts(txn, tenant, p, &u.relations).await?;
        // The reps' own tagging in WeCom.
        let mut out = Vec::new();
        for c in rep_tags::reconcile(txn, tenant, p, &u.relations).await? {
            match self
                .change(txn, tenant, p, &c.info, c.add, &c.reason, at)
                .await
            {
                Ok(changes) => out.extend(changes),
                Err(MemberError::Db(e)) => return Err(e),
                // A retired tag is not set any more, by anyone.
                Err(e) => tracing::debug!(error = %e, "A rep's WeCom tag not mirrored"),
            }
        }
        Ok(Some((applied, out)))
    }
}
