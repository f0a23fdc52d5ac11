//! The service's transactions: each bus event (decoded by `work`; once, through the inbox,
//! retried on races) and each operator tag / untag updates the facts projection and settles the
//! profile's rules in one commit; the scheduler's window exits and counter rolls.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use platform::db::inbox::{self, Processed};
use proto::identity::{ProfileResolved, ProfileUpdated};
use proto::profile::ProfileEvent;
use proto::tagging::{TagChanged, TagSource, TagsUnmerged};
use proto::Envelope;
use sea_orm::{
    ColumnTrait, DatabaseConnection, DatabaseTransaction, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};

use super::engine::{At, Engine};
use super::entities::schedule;
use super::members::{self, MemberError, Reason, TagInfo};
use super::rules::Trigger;
use super::work::{decode, Work};
use super::{rep_tags, segments, writeback};
use crate::clock::Clock;
use crate::config::Config;

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
        let offset = self.cfg.offset_of(tenant);
        At {
            now,
            today: facts::local_day(now, offset),
            offset,
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

    /// Handles one bus event exactly once.
    pub async fn handle(&self, env: &Envelope) -> Result<Handled, HandleError> {
        self.handle_batch(std::slice::from_ref(env))
            .await
            .pop()
            .unwrap_or(Ok(Handled::Ignored))
    }

    /// Handles several bus events in one transaction (one inbox statement, one commit for all),
    /// in order, with one outcome per event. A batch that cannot commit is handled again event
    /// by event, so one failing event never holds back the others.
    pub async fn handle_batch(&self, envs: &[Envelope]) -> Vec<Result<Handled, HandleError>> {
        let mut out: Vec<Option<Result<Handled, HandleError>>> =
            envs.iter().map(|_| None).collect();
        let mut works = Vec::new();
        for (i, env) in envs.iter().enumerate() {
            match decode(env) {
                Ok(Some(w)) => works.push((i, (env.id, env.tenant_id.clone(), Arc::new(w)))),
                Ok(None) => out[i] = Some(Ok(Handled::Ignored)),
                Err(e) => out[i] = Some(Err(e)),
            }
        }
        // Profiles are locked in one order (tenant, profile) by every batch, so two batches
        // sharing profiles wait for each other instead of deadlocking; the sort is stable, so a
        // profile's own events keep their order.
        works.sort_by(|(_, (_, ta, wa)), (_, (_, tb, wb))| {
            (ta.as_str(), wa.profile()).cmp(&(tb.as_str(), wb.profile()))
        });
        if !works.is_empty() {
            let items = works.iter().map(|(_, w)| w.clone()).collect();
            match self.apply_batch(items).await {
                Ok(done) => {
                    for ((i, _), h) in works.iter().zip(done) {
                        out[*i] = Some(Ok(h));
                    }
                }
                Err(e) if works.len() == 1 => out[works[0].0] = Some(Err(e.into())),
                Err(e) => {
                    tracing::warn!(error = %e, size = works.len(), "Batch failed; handling its events one by one");
                    for (i, w) in works {
                        out[i] = Some(
                            self.apply_batch(vec![w])
                                .await
                                .map(|mut h| h.pop().unwrap_or(Handled::Ignored))
                                .map_err(HandleError::from),
                        );
                    }
                }
            }
        }
        out.into_iter()
            .map(|o| o.unwrap_or(Ok(Handled::Ignored)))
            .collect()
    }

    /// Applies `items` (message id, tenant, work) in one transaction through the inbox.
    async fn apply_batch(
        &self,
        items: Vec<(uuid::Uuid, String, Arc<Work>)>,
    ) -> Result<Vec<Handled>, DbErr> {
        let ids: Vec<uuid::Uuid> = items.iter().map(|(id, _, _)| *id).collect();
        // The tenants' rules and counter day are read now, into their caches: a transaction
        // holding a pooled connection should not wait for another one (a full pool would wait
        // for itself until the acquire times out).
        let tenants: BTreeSet<&str> = items.iter().map(|(_, t, _)| t.as_str()).collect();
        for t in tenants {
            self.engine.rules.get(t).await?;
            self.rolled_to(t).await?;
        }
        let items = Arc::new(items);
        let (processed, _) = inbox::process_batch_retrying(
            &self.db,
            CONSUMER,
            &ids,
            self.cfg.tx_attempts,
            |txn, fresh| {
                let (me, items) = (self.clone(), items.clone());
                Box::pin(async move {
                    let mut changes = Vec::with_capacity(fresh.len());
                    let mut k = 0;
                    while k < fresh.len() {
                        let (_, tenant, work) = &items[fresh[k]];
                        // Behaviour events of one tenant next to each other are recorded
                        // together (a few statements for all), then settled one by one.
                        let run: Vec<&ProfileResolved> = fresh[k..]
                            .iter()
                            .map(|&j| &items[j])
                            .take_while(|(_, t, _)| t == tenant)
                            .map_while(|(_, _, w)| match &**w {
                                Work::Profile(ProfileEvent::Resolved(r)) => Some(r),
                                _ => None,
                            })
                            .collect();
                        if !run.is_empty() {
                            k += run.len();
                            changes.extend(me.resolved(txn, tenant, &run).await?);
                        } else {
                            k += 1;
                            changes.push(me.apply(txn, tenant, work).await?);
                        }
                    }
                    // Every `tag.changed` of the batch in one statement per tenant.
                    let mut by_tenant: std::collections::BTreeMap<&str, Vec<TagChanged>> =
                        Default::default();
                    for (&j, c) in fresh.iter().zip(&changes) {
                        if matches!(&*items[j].2, Work::Unmerged(..)) {
                            // Announced whole, as `tag.unmerged`.
                            continue;
                        }
                        by_tenant
                            .entry(items[j].1.as_str())
                            .or_default()
                            .extend(c.iter().cloned());
                    }
                    for (tenant, c) in by_tenant {
                        members::publish(txn, tenant, &c).await?;
                    }
                    Ok(changes)
                })
            },
        )
        .await?;
        Ok(processed
            .into_iter()
            .map(|p| match p {
                Processed::Done(c) => Handled::Done(c),
                Processed::Duplicate => Handled::Duplicate,
            })
            .collect())
    }

    /// Records and settles behaviour events of a tenant's profiles, each as if alone: the
    /// profiles are locked first (in key order), the events of profiles with one event here are
    /// recorded together (a few statements for all), a profile's several events one at a time,
    /// each right before its profile is settled. Returns each event's tag-set changes (none for
    /// an event seen before).
    async fn resolved(
        &self,
        txn: &DatabaseTransaction,
        tenant: &str,
        works: &[&ProfileResolved],
    ) -> Result<Vec<Vec<TagChanged>>, DbErr> {
        let at = self.at(tenant);
        let profiles: Vec<&str> = works.iter().map(|r| r.profile_id.as_str()).collect();
        let mut first = facts::ensure_locked_many(txn, tenant, &profiles, at.now).await?;
        let evs: Vec<rules::EventFact> = works
            .iter()
            .map(|r| facts::event_fact(&r.event, at.offset))
            .collect();
        let rolling = facts::Rolling::AsOf {
            today: at.today,
            rolled_to: Some(self.rolled_to(tenant).await?),
        };
        let mut events_of: std::collections::HashMap<&str, usize> = Default::default();
        for p in &profiles {
            *events_of.entry(p).or_default() += 1;
        }
        let alone: Vec<usize> = (0..works.len())
            .filter(|&i| events_of[profiles[i]] == 1)
            .collect();
        let pairs: Vec<facts::ProfileEvent> =
            alone.iter().map(|&i| (profiles[i], &evs[i])).collect();
        let mut new = vec![false; works.len()];
        for (&i, n) in alone
            .iter()
            .zip(facts::record_events(txn, tenant, &pairs, rolling).await?)
        {
            new[i] = n;
        }
        let mut out = Vec::with_capacity(works.len());
        for (i, (p, ev)) in profiles.iter().zip(&evs).enumerate() {
            if events_of[p] > 1 {
                new[i] = facts::record_events(txn, tenant, &[(p, ev)], rolling).await?[0];
            }
            // A profile new to the projection is settled against every rule, once.
            let first = first.remove(*p);
            if !new[i] && !first {
                out.push(Vec::new());
                continue;
            }
            let trigger = if first {
                Trigger::All
            } else {
                let content_tags = ev
                    .props
                    .get(rules::CONTENT_TAGS_KEY)
                    .map(|vs| {
                        vs.iter()
                            .filter_map(|v| v.encode().s)
                            .collect::<Vec<String>>()
                    })
                    .unwrap_or_default();
                Trigger::Event {
                    kind: ev.kind.clone(),
                    content_tags,
                }
            };
            out.push(self.engine.settle(txn, tenant, p, trigger, &at).await?);
        }
        Ok(out)
    }

    async fn apply(
        &self,
        txn: &DatabaseTransaction,
        tenant: &str,
        work: &Work,
    ) -> Result<Vec<TagChanged>, DbErr> {
        let at = self.at(tenant);
        match work {
            Work::Profile(ProfileEvent::Resolved(r)) => Ok(self
                .resolved(txn, tenant, &[r])
                .await?
                .into_iter()
                .flatten()
                .collect()),
            Work::Profile(ProfileEvent::Updated(u)) => {
                let p = u.profile_id.as_str();
                facts::ensure_locked(txn, tenant, p, at.now).await?;
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
                    facts::merge_profiles(txn, tenant, &m.survivor, absorbed, at.today, at.now)
                        .await?;
                    schedule::Entity::delete_many()
                        .filter(schedule::Column::TenantId.eq(tenant))
                        .filter(schedule::Column::ProfileId.eq(absorbed.as_str()))
                        .exec(txn)
                        .await?;
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
            // Types `decode` does not read for tagging (`PROFILE_KINDS`); un-merges are above.
            Work::Profile(_) => Ok(Vec::new()),
        }
    }

    /// Applies a profile's state (`profile.updated`, or one an un-merge carries) to the projection
    /// when it is newer than the one held: properties and relationships, the WeCom contacts the
    /// write-back reaches, the reps' own tagging in WeCom. Returns what changed and the tag-set
    /// changes of the reps' tags (the caller settles the rules); `None` for an older state.
    async fn apply_state(
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

    /// Adds or removes a tag for `why`, then settles the rules reading it.
    #[allow(clippy::too_many_arguments)]
    async fn change(
        &self,
        txn: &DatabaseTransaction,
        tenant: &str,
        profile: &str,
        info: &TagInfo,
        add: bool,
        why: &Reason,
        at: &At,
    ) -> Result<Vec<TagChanged>, MemberError> {
        let mut out = if add {
            members::add(txn, tenant, profile, info, why, at.now).await?
        } else {
            // Each source takes back only its own reason: an operator's untag does not undo a
            // rule (change the rule for that), a trigger's does not undo an operator.
            let only = Some((why.source, why.origin.as_str()));
            members::remove(txn, tenant, profile, info, only, why, at.now).await?
        };
        if !out.is_empty() {
            let tags: BTreeSet<String> = out.iter().map(|c| c.tag_id.clone()).collect();
            out.extend(
                self.engine
                    .settle(txn, tenant, profile, Trigger::Tags(tags), at)
                    .await?,
            );
        }
        Ok(out)
    }

    /// An operator tags (or takes back a manual tag from) a profile by hand; a profile the
    /// projection does not hold yet is added to it (for callers that know the profile exists,
    /// and tests; a request goes through [`Tagger::manual_known`]). Run again after a short
    /// pause when it meets contention (two operators creating the same new profile's facts, a
    /// deadlock, a busy SQLite database).
    pub async fn manual(
        &self,
        tenant: &str,
        profile: &str,
        tag_id: &str,
        add: bool,
        operator: &str,
    ) -> Result<Vec<TagChanged>, MemberError> {
        self.manual_retried(tenant, profile, tag_id, add, operator, false)
            .await
    }

    /// [`Tagger::manual`] for a profile the tenant's projection holds already (the API: a
    /// profile tagging never heard of for this tenant — unknown, or another tenant's — is
    /// [`MemberError::UnknownProfile`], and nothing is written).
    pub async fn manual_known(
        &self,
        tenant: &str,
        profile: &str,
        tag_id: &str,
        add: bool,
        actor: &str,
    ) -> Result<Vec<TagChanged>, MemberError> {
        self.manual_retried(tenant, profile, tag_id, add, actor, true)
            .await
    }

    async fn manual_retried(
        &self,
        tenant: &str,
        profile: &str,
        tag_id: &str,
        add: bool,
        operator: &str,
        known_only: bool,
    ) -> Result<Vec<TagChanged>, MemberError> {
        // The tenant's rules are read into their cache first: a transaction holding a pooled
        // connection (and on SQLite the write lock) should not wait for another connection.
        self.engine.rules.get(tenant).await?;
        let attempts = self.cfg.tx_attempts;
        platform::db::retry_on_contention("tagging.manual", attempts, || {
            self.manual_once(tenant, profile, tag_id, add, operator, known_only)
        })
        .await
        .0
    }

    async fn manual_once(
        &self,
        tenant: &str,
        profile: &str,
        tag_id: &str,
        add: bool,
        operator: &str,
        known_only: bool,
    ) -> Result<Vec<TagChanged>, MemberError> {
        let at = self.at(tenant);
        let txn = platform::db::begin_write(&self.db).await?;
        let info = members::tag_info(&txn, tenant, tag_id)
            .await?
            .ok_or_else(|| MemberError::UnknownTag(tag_id.to_string()))?;
        if known_only {
            if !segments::has_profile(&txn, tenant, profile).await? {
                return Err(MemberError::UnknownProfile(profile.to_string()));
            }
        } else {
            facts::ensure_profile(&txn, tenant, profile, at.now).await?;
        }
        facts::lock_profile(&txn, tenant, profile).await?;
        let out = self
            .change(
                &txn,
                tenant,
                profile,
                &info,
                add,
                &Reason::manual(operator),
                &at,
            )
            .await?;
        members::publish(&txn, tenant, &out).await?;
        txn.commit().await?;
        Ok(out)
    }

    /// One scheduler pass: rolls the counters of every tenant whose day changed, then evaluates
    /// the rules whose result may have changed by now (window exits). Returns the profiles
    /// looked at.
    pub async fn tick(&self) -> Result<usize, DbErr> {
        let now = self.clock.now();
        for tenant in facts::tenants(&self.db).await? {
            let today = facts::local_day(now, self.cfg.offset_of(&tenant));
            facts::roll(&self.db, &tenant, today, 20_000, now).await?;
            let keep_from =
                today - chrono::Duration::days(i64::from(self.cfg.event_retention_days));
            let pruned = facts::prune_events(&self.db, &tenant, keep_from, 5_000).await?;
            if pruned > 0 {
                metrics::counter!(crate::metrics::EVENTS_PRUNED).increment(pruned);
            }
        }
        self.due(now, 500).await
    }

    /// Evaluates the rules due by `now` (at most `limit` schedule rows).
    pub async fn due(&self, now: DateTime<Utc>, limit: u64) -> Result<usize, DbErr> {
        let rows = schedule::Entity::find()
            .filter(schedule::Column::DueAt.lte(now))
            .order_by_asc(schedule::Column::DueAt)
            .limit(limit)
            .all(&self.db)
            .await?;
        let mut by_profile: std::collections::BTreeMap<(String, String), BTreeSet<String>> =
            Default::default();
        for r in rows {
            by_profile
                .entry((r.tenant_id, r.profile_id))
                .or_default()
                .insert(r.rule_id);
        }
        let n = by_profile.len();
        for ((tenant, profile), rule_ids) in by_profile {
            let at = self.at(&tenant);
            let txn = platform::db::begin_write(&self.db).await?;
            facts::lock_profile(&txn, &tenant, &profile).await?;
            let changes = self
                .engine
                .settle(
                    &txn,
                    &tenant,
                    &profile,
                    Trigger::Rules(rule_ids.clone()),
                    &at,
                )
                .await?;
            members::publish(&txn, &tenant, &changes).await?;
            // Rows still due belong to rules no longer live: nothing will move them.
            schedule::Entity::delete_many()
                .filter(schedule::Column::TenantId.eq(tenant.as_str()))
                .filter(schedule::Column::ProfileId.eq(profile.as_str()))
                .filter(schedule::Column::RuleId.is_in(rule_ids))
                .filter(schedule::Column::DueAt.lte(at.now))
                .exec(&txn)
                .await?;
            txn.commit().await?;
        }
        if n > 0 {
            metrics::counter!(crate::metrics::WINDOW_CHECKS).increment(n as u64);
        }
        Ok(n)
    }
}
