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

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use proto::identity::{
    IdentityMerged, ProfileResolved, ProfileUpdated, IDENTITY_MERGED, PROFILE_RESOLVED,
    PROFILE_UPDATED,
};
use proto::profile::ProfileEvent;
use proto::scoring::{ActorKind, ScoreCause};
use proto::tagging::{TagChange, TagChanged, TagsUnmerged, TAG_CHANGED, TAG_UNMERGED};
use proto::Envelope;
use sea_orm::sea_query::{Expr, OnConflict, Query};
use sea_orm::{DatabaseConnection, DatabaseTransaction, DbErr};

use super::cache::DefsCache;
use super::leads::{self, Lead};
use super::ledger::{self, NewEntry};
use super::migrations::{LeadEvents, TagClock};
use super::work::{Cause, Work};
use super::{begin, exec, inbox_record, inbox_record_many, is_contention, one, CONSUMER};
use crate::clock::{whole, SharedClock};
use crate::config::Config;
use crate::domain::compiled::Compiled;
use crate::domain::points::reallocate;
use crate::domain::replay::{replay, ReplayEvent};
use crate::domain::stages::{stage_after_unmerge, LeadView, Refusal};
use crate::domain::view::event_view;
use platform::db::outbox;

/// What handling a message did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    /// Processed before; nothing ran.
    Duplicate,
    /// Not something scoring acts on.
    Ignored,
}

/// The bus messages scoring acts on. An un-merge is read as tagging applied it (`tag.unmerged`:
/// scoring waits for the final tags of both sides); `identity.unmerged` itself is not read.
const SCORED: &[&str] = &[
    PROFILE_RESOLVED,
    PROFILE_UPDATED,
    TAG_CHANGED,
    IDENTITY_MERGED,
    TAG_UNMERGED,
];

/// Decodes a message scoring acts on; `None` for any other type.
fn decode(env: &Envelope) -> Result<Option<ProfileEvent>, ScoreError> {
    ProfileEvent::decode_of(env, SCORED).map_err(|e| ScoreError::Invalid(e.to_string()))
}

/// What a batch prepared for one of its messages.
#[derive(Default)]
struct Prep<'b> {
    /// The message's lead, locked (and whether it was created here); for `profile.resolved`,
    /// its event is in the projection already.
    lead: Option<(Lead, bool)>,
    /// Where its outbox events go (the batch writes them all at once).
    outbox: Option<&'b Mutex<Vec<Envelope>>>,
}

/// Counts a message's outcome in the metrics and hands it back.
fn count(outcome: Outcome) -> Outcome {
    let label = match outcome {
        Outcome::Applied => "applied",
        Outcome::Duplicate => "duplicate",
        Outcome::Ignored => "ignored",
    };
    metrics::counter!(crate::metrics::MESSAGES, "outcome" => label).increment(1);
    outcome
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
    #[error("database error: {0}")]
    Db(#[from] DbErr),
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
    pub utc_offset_minutes: i32,
    pub tenant_utc_offsets: BTreeMap<String, i32>,
    pub tx_attempts: u32,
    pub max_settle_rounds: u32,
}

impl EngineConfig {
    pub fn from_config(c: &Config) -> Self {
        EngineConfig {
            utc_offset_minutes: c.utc_offset_minutes,
            tenant_utc_offsets: c.tenant_utc_offsets.clone(),
            tx_attempts: c.tx_attempts.max(1),
            max_settle_rounds: c.max_settle_rounds.max(1),
        }
    }

    pub fn offset_of(&self, tenant: &str) -> i32 {
        self.tenant_utc_offsets
            .get(tenant)
            .copied()
            .unwrap_or(self.utc_offset_minutes)
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            utc_offset_minutes: 480,
            tenant_utc_offsets: BTreeMap::new(),
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
            clock,
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
        Fut: Future<Output = Result<T, DbErr>>,
    {
        match platform::db::retry_on_contention(CONSUMER, self.cfg.tx_attempts, f).await {
            (Ok(v), _) => Ok(v),
            (Err(e), attempts) if is_contention(&e) => Err(ScoreError::Contention {
                attempts,
                source: e,
            }),
            (Err(e), _) => Err(ScoreError::Db(e)),
        }
    }

    /// Applies a bus message exactly once.
    pub async fn handle(&self, env: &Envelope) -> Result<Outcome, ScoreError> {
        let Some(msg) = decode(env)? else {
            return Ok(count(Outcome::Ignored));
        };
        let outcome = self
            .retry(|| async {
                let defs = self.compiled(&env.tenant_id).await?;
                let txn = begin(&self.db).await?;
                let o = self.apply(&txn, &defs, env, &msg).await?;
                if o == Outcome::Duplicate {
                    txn.rollback().await?;
                } else {
                    txn.commit().await?;
                }
                Ok(o)
            })
            .await?;
        Ok(count(outcome))
    }

    /// Applies several bus messages in one transaction (one begin and one commit for all), in
    /// order, with one outcome per message. A batch that cannot commit is applied again message
    /// by message, so one failing message never holds back the others.
    pub async fn handle_batch(&self, envs: &[Envelope]) -> Vec<Result<Outcome, ScoreError>> {
        let mut out: Vec<Option<Result<Outcome, ScoreError>>> = envs.iter().map(|_| None).collect();
        let mut msgs = Vec::new();
        for (i, env) in envs.iter().enumerate() {
            match decode(env) {
                Ok(Some(m)) => msgs.push((i, m)),
                Ok(None) => out[i] = Some(Ok(count(Outcome::Ignored))),
                Err(e) => out[i] = Some(Err(e)),
            }
        }
        // Lead rows are locked in one order (tenant, profile) by every batch, so two batches
        // sharing profiles wait for each other instead of deadlocking; the sort is stable, so a
        // profile's own messages keep their order.
        msgs.sort_by(|(a, ma), (b, mb)| {
            (envs[*a].tenant_id.as_str(), ma.profile_id())
                .cmp(&(envs[*b].tenant_id.as_str(), mb.profile_id()))
        });
        if msgs.len() == 1 {
            let i = msgs[0].0;
            out[i] = Some(self.handle(&envs[i]).await);
        } else if !msgs.is_empty() {
            let done = self
                .retry(|| async {
                    let mut defs: BTreeMap<&str, Arc<Compiled>> = BTreeMap::new();
                    for (i, _) in &msgs {
                        let t = envs[*i].tenant_id.as_str();
                        if !defs.contains_key(t) {
                            defs.insert(t, self.compiled(t).await?);
                        }
                    }
                    let txn = begin(&self.db).await?;
                    // One instant for the whole transaction.
                    let now = self.clock.now();
                    let ids: Vec<String> =
                        msgs.iter().map(|(i, _)| envs[*i].id.to_string()).collect();
                    let fresh = inbox_record_many(&txn, CONSUMER, &ids, now).await?;
                    let mut prepared = self.prepare(&txn, &defs, envs, &msgs, &fresh, now).await?;
                    let sink = Mutex::new(Vec::new());
                    let mut outcomes = Vec::with_capacity(msgs.len());
                    for (k, (i, m)) in msgs.iter().enumerate() {
                        if !fresh[k] {
                            outcomes.push(Outcome::Duplicate);
                            continue;
                        }
                        let d = &defs[envs[*i].tenant_id.as_str()];
                        let prep = Prep {
                            lead: prepared[k].take(),
                            outbox: Some(&sink),
                        };
                        outcomes.push(self.dispatch(&txn, d, &envs[*i], m, now, prep).await?);
                    }
                    let events = sink.into_inner().unwrap_or_else(|e| e.into_inner());
                    outbox::enqueue_many(&txn, &events).await?;
                    txn.commit().await?;
                    Ok(outcomes)
                })
                .await;
            match done {
                Ok(outcomes) => {
                    for ((i, _), o) in msgs.iter().zip(outcomes) {
                        out[*i] = Some(Ok(count(o)));
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, size = msgs.len(), "Batch failed; applying its messages one by one");
                    for (i, _) in &msgs {
                        out[*i] = Some(self.handle(&envs[*i]).await);
                    }
                }
            }
        }
        out.into_iter()
            .map(|o| o.unwrap_or(Ok(Outcome::Ignored)))
            .collect()
    }

    /// Applies one message inside `txn`, unless the inbox shows it was applied before.
    /// `defs` are the tenant's, read before the transaction began: a transaction holding a pooled
    /// connection must not wait for another one (a full pool would wait for itself).
    async fn apply(
        &self,
        txn: &DatabaseTransaction,
        defs: &Compiled,
        env: &Envelope,
        msg: &ProfileEvent,
    ) -> Result<Outcome, DbErr> {
        let now = self.clock.now();
        if !inbox_record(txn, CONSUMER, &env.id.to_string(), now).await? {
            return Ok(Outcome::Duplicate);
        }
        self.dispatch(txn, defs, env, msg, now, Prep::default())
            .await
    }

    /// Applies one message the inbox has just recorded.
    async fn dispatch(
        &self,
        txn: &DatabaseTransaction,
        defs: &Compiled,
        env: &Envelope,
        msg: &ProfileEvent,
        now: DateTime<Utc>,
        prep: Prep<'_>,
    ) -> Result<Outcome, DbErr> {
        match msg {
            ProfileEvent::Resolved(p) => self.on_resolved(txn, defs, env, p, now, prep).await,
            ProfileEvent::Updated(u) => self.on_updated(txn, defs, env, u, now, prep).await,
            ProfileEvent::TagChanged(t) => self.on_tag(txn, defs, env, t, now, prep).await,
            ProfileEvent::Merged(m) => self.on_merged(txn, defs, env, m, now, prep).await,
            ProfileEvent::TagsUnmerged(u) => self.on_unmerged(txn, defs, env, u, now, prep).await,
            // Not in `SCORED`: never decoded here.
            ProfileEvent::Unmerged(_) => Ok(Outcome::Ignored),
        }
    }

    /// Locks, in the batch's order, the lead of every fresh message, and for each message whose
    /// profile no other message of the batch touches, keeps the lead (creating it when missing)
    /// and records its behaviour event in the projection — a few statements per tenant instead
    /// of a few per event. A batch with a merge or un-merge, or reaching a profile merged away,
    /// prepares nothing: those move leads and facts between profiles as they are applied.
    async fn prepare(
        &self,
        txn: &DatabaseTransaction,
        defs: &BTreeMap<&str, Arc<Compiled>>,
        envs: &[Envelope],
        msgs: &[(usize, ProfileEvent)],
        fresh: &[bool],
        now: DateTime<Utc>,
    ) -> Result<Vec<Option<(Lead, bool)>>, DbErr> {
        let mut out: Vec<Option<(Lead, bool)>> = msgs.iter().map(|_| None).collect();
        let live: Vec<(usize, &str, &ProfileEvent)> = msgs
            .iter()
            .enumerate()
            .filter(|(k, _)| fresh[*k])
            .map(|(k, (i, m))| (k, envs[*i].tenant_id.as_str(), m))
            .collect();
        if live
            .iter()
            .any(|(_, _, m)| matches!(m, ProfileEvent::Merged(_) | ProfileEvent::TagsUnmerged(_)))
        {
            return Ok(out);
        }
        let mut count: HashMap<(&str, &str), usize> = HashMap::new();
        for (_, t, m) in &live {
            *count.entry((t, m.profile_id())).or_default() += 1;
        }
        // Every lead in key order (the messages are sorted), each once.
        let mut locked: HashMap<(&str, &str), Option<Lead>> = HashMap::new();
        for (_, t, m) in &live {
            if let std::collections::hash_map::Entry::Vacant(slot) =
                locked.entry((t, m.profile_id()))
            {
                let l = leads::lock(txn, t, m.profile_id()).await?;
                if l.as_ref()
                    .is_some_and(|l| !l.active() && l.merged_into.is_some())
                {
                    return Ok(out);
                }
                slot.insert(l);
            }
        }
        // Per tenant: the leads created here and the events to record.
        type Events = Vec<(String, rules::EventFact, DateTime<Utc>)>;
        let mut record: BTreeMap<&str, (Vec<String>, Events)> = BTreeMap::new();
        for (k, t, m) in live {
            if count[&(t, m.profile_id())] != 1 {
                continue;
            }
            let first = locked.remove(&(t, m.profile_id())).flatten();
            let (lead, created) = self
                .acquire_from(txn, &defs[t], t, m.profile_id(), false, now, first)
                .await?;
            if let ProfileEvent::Resolved(p) = m {
                let ev = facts::event_fact(&p.event, self.cfg.offset_of(t));
                let earned = whole(p.event.occurred_at).min(now);
                let r = record.entry(t).or_default();
                if created {
                    r.0.push(lead.profile.clone());
                }
                r.1.push((lead.profile.clone(), ev, earned));
            }
            out[k] = Some((lead, created));
        }
        for (tenant, (created, events)) in &record {
            if !created.is_empty() {
                let created: Vec<&str> = created.iter().map(String::as_str).collect();
                facts::ensure_profiles(txn, tenant, &created, now).await?;
            }
            let pe: Vec<facts::ProfileEvent> =
                events.iter().map(|(p, ev, _)| (p.as_str(), ev)).collect();
            facts::record_events(txn, tenant, &pe, facts::Rolling::Skip).await?;
            let times: Vec<(&str, DateTime<Utc>)> = events
                .iter()
                .map(|(_, ev, at)| (ev.event_id.as_str(), *at))
                .collect();
            record_times(txn, tenant, &times).await?;
        }
        Ok(out)
    }

    fn cause(env: &Envelope, kind: ScoreCause) -> Cause {
        Cause {
            id: env.id.to_string(),
            kind,
            trace_id: env.trace_id.clone(),
        }
    }

    /// Locks the lead of `profile`, creating it when missing; with `follow`, a profile merged
    /// away leads to its survivor. Returns the lead and whether it was created.
    async fn acquire(
        &self,
        txn: &DatabaseTransaction,
        defs: &Compiled,
        tenant: &str,
        profile: &str,
        follow: bool,
        now: DateTime<Utc>,
    ) -> Result<(Lead, bool), DbErr> {
        let first = leads::lock(txn, tenant, profile).await?;
        self.acquire_from(txn, defs, tenant, profile, follow, now, first)
            .await
    }

    /// [`Self::acquire`] when the lead of `profile` was just locked (read as `first`).
    #[allow(clippy::too_many_arguments)]
    async fn acquire_from(
        &self,
        txn: &DatabaseTransaction,
        defs: &Compiled,
        tenant: &str,
        profile: &str,
        follow: bool,
        now: DateTime<Utc>,
        first: Option<Lead>,
    ) -> Result<(Lead, bool), DbErr> {
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
        Err(DbErr::Custom(format!(
            "merge chain of profile `{profile}` does not end"
        )))
    }

    #[allow(clippy::too_many_arguments)]
    async fn open<'a>(
        &self,
        txn: &'a DatabaseTransaction,
        defs: &'a Compiled,
        lead: Lead,
        created: bool,
        now: DateTime<Utc>,
        cause: Cause,
        outbox: Option<&'a Mutex<Vec<Envelope>>>,
    ) -> Result<Work<'a>, DbErr> {
        let offset = self.cfg.offset_of(&lead.tenant);
        let mut w = Work::open(
            txn,
            defs,
            lead,
            now,
            offset,
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

    async fn on_resolved(
        &self,
        txn: &DatabaseTransaction,
        defs: &Compiled,
        env: &Envelope,
        p: &ProfileResolved,
        now: DateTime<Utc>,
        prep: Prep<'_>,
    ) -> Result<Outcome, DbErr> {
        let tenant = env.tenant_id.as_str();
        // A prepared lead comes with its event recorded by the batch.
        let recorded = prep.lead.is_some();
        let (lead, created) = match prep.lead {
            Some(l) => l,
            None => {
                self.acquire(txn, defs, tenant, &p.profile_id, true, now)
                    .await?
            }
        };
        let mut w = self
            .open(
                txn,
                defs,
                lead,
                created,
                now,
                Self::cause(env, ScoreCause::Event),
                prep.outbox,
            )
            .await?;
        let profile = w.profile().to_string();
        let ev = facts::event_fact(&p.event, w.offset);
        let earned = whole(p.event.occurred_at).min(now);
        if !recorded {
            if created {
                // Every other way a lead comes to be puts it in the projection already.
                facts::ensure_profile(txn, tenant, &profile, now).await?;
            }
            facts::record_event_buckets(txn, tenant, &profile, &ev).await?;
            record_times(txn, tenant, &[(ev.event_id.as_str(), earned)]).await?;
        }
        w.facts_changed();
        w.lead.last_activity_at = Some(w.lead.last_activity_at.map_or(earned, |a| a.max(earned)));
        if defs.sla_kinds.contains(&ev.kind)
            && defs
                .machine
                .stage(&w.lead.stage)
                .and_then(|s| s.sla.as_ref())
                .is_some_and(|s| s.met_by.contains(&ev.kind))
        {
            let by = format!("event:{}", ev.kind);
            leads::settle_open_slas(txn, tenant, &profile, leads::SLA_MET, &by, now).await?;
        }
        let ev_view = event_view(&ev);
        let ctx = w.ctx();
        for r in defs.rules_for_event(&ev.kind) {
            if !r
                .filter
                .as_ref()
                .is_none_or(|f| rules::evaluate(f, &ev_view, &ctx))
            {
                continue;
            }
            if let Some(c) = &r.condition {
                let f = w.view().await?;
                if !rules::evaluate(c, f, &ctx) {
                    continue;
                }
            }
            let prior = if r.caps.is_empty() {
                Vec::new()
            } else {
                let (prior, seen) =
                    ledger::prior(txn, tenant, &profile, &r.id, &ev.event_id).await?;
                if seen {
                    continue;
                }
                prior
            };
            let a = crate::domain::points::award(r.points, &r.caps, &prior, earned, w.offset);
            let m = &defs.models[r.model];
            let e = NewEntry {
                model_id: m.id.clone(),
                rule_id: r.id.clone(),
                kind: ledger::EVENT,
                source_key: ev.event_id.clone(),
                event_kind: Some(ev.kind.clone()),
                points: r.points,
                delta: a.delta,
                capped: a.capped,
                earned,
                expires_at: m.decay.expires_after().map(|d| earned + d),
                cause_id: Some(env.id.to_string()),
                note: None,
            };
            w.add_entry(r.model, e).await?;
        }
        w.settle().await?;
        w.finish().await?;
        Ok(Outcome::Applied)
    }

    async fn on_updated(
        &self,
        txn: &DatabaseTransaction,
        defs: &Compiled,
        env: &Envelope,
        u: &ProfileUpdated,
        now: DateTime<Utc>,
        prep: Prep<'_>,
    ) -> Result<Outcome, DbErr> {
        let tenant = env.tenant_id.as_str();
        let (lead, created) = match prep.lead {
            Some(l) => l,
            None => {
                self.acquire(txn, defs, tenant, &u.profile_id, false, now)
                    .await?
            }
        };
        let applied = facts::apply_profile(txn, tenant, u, now).await?;
        if !lead.active() {
            // A profile merged away: its facts are kept in case the merge is undone.
            return Ok(Outcome::Applied);
        }
        let mut w = self
            .open(
                txn,
                defs,
                lead,
                created,
                now,
                Self::cause(env, ScoreCause::State),
                prep.outbox,
            )
            .await?;
        if applied.is_some() {
            w.lead.owner = leads::owner_of(&u.relations);
            w.facts_changed();
        }
        w.settle().await?;
        w.finish().await?;
        Ok(Outcome::Applied)
    }

    async fn on_tag(
        &self,
        txn: &DatabaseTransaction,
        defs: &Compiled,
        env: &Envelope,
        t: &TagChanged,
        now: DateTime<Utc>,
        prep: Prep<'_>,
    ) -> Result<Outcome, DbErr> {
        let tenant = env.tenant_id.as_str();
        let (lead, created) = match prep.lead {
            Some(l) => l,
            None => {
                self.acquire(txn, defs, tenant, &t.profile_id, true, now)
                    .await?
            }
        };
        let profile = lead.profile.clone();
        let present = t.change == TagChange::Added;
        let at = whole(t.at);
        if tag_is_newer(txn, tenant, &profile, &t.tag_id, at, present).await? {
            facts::ensure_profile(txn, tenant, &profile, now).await?;
            if present {
                facts::set_tag(txn, tenant, &profile, &t.tag_id).await?;
            } else {
                facts::unset_tag(txn, tenant, &profile, &t.tag_id).await?;
            }
        }
        let mut w = self
            .open(
                txn,
                defs,
                lead,
                created,
                now,
                Self::cause(env, ScoreCause::State),
                prep.outbox,
            )
            .await?;
        w.settle().await?;
        w.finish().await?;
        Ok(Outcome::Applied)
    }

    /// Locks every lead of `ids` in id order (creating missing ones as `status`), raw (no
    /// forwarding).
    async fn lock_all(
        &self,
        txn: &DatabaseTransaction,
        defs: &Compiled,
        tenant: &str,
        ids: &[&str],
        now: DateTime<Utc>,
    ) -> Result<BTreeMap<String, (Lead, bool)>, DbErr> {
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

    async fn on_merged(
        &self,
        txn: &DatabaseTransaction,
        defs: &Compiled,
        env: &Envelope,
        m: &IdentityMerged,
        now: DateTime<Utc>,
        prep: Prep<'_>,
    ) -> Result<Outcome, DbErr> {
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

    async fn on_unmerged(
        &self,
        txn: &DatabaseTransaction,
        defs: &Compiled,
        env: &Envelope,
        t: &TagsUnmerged,
        now: DateTime<Utc>,
        prep: Prep<'_>,
    ) -> Result<Outcome, DbErr> {
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
        let (survivor, created) = locked
            .remove(&u.survivor)
            .ok_or_else(|| DbErr::Custom("survivor not locked".into()))?;
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
            wr.lead.last_activity_at = last_activity(txn, tenant, r, wr.offset).await?;
            self.recap(txn, defs, &mut wr, &cause.id, now).await?;
            wr.facts_changed();
            wr.force_state = true;
            wr.rebuild_all().await?;
            restored.push(wr);
        }
        // The survivor's activity, caps and owner are its own again.
        ws.lead.last_activity_at = last_activity(txn, tenant, &s_id, ws.offset).await?;
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
            let awards = reallocate(&r.caps, &events, w.offset);
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

    /// Looks at a lead again (scheduler): decay, crossings, time-driven stage moves.
    pub async fn reevaluate(&self, tenant: &str, profile: &str) -> Result<bool, ScoreError> {
        let defs = self.compiled(tenant).await?;
        self.retry(|| async {
            let now = self.clock.now();
            let txn = begin(&self.db).await?;
            let Some(lead) = leads::lock(&txn, tenant, profile).await? else {
                txn.rollback().await?;
                return Ok(false);
            };
            if !lead.active() || lead.next_check_at.is_some_and(|t| t > now) {
                txn.rollback().await?;
                return Ok(false);
            }
            let cause = Cause {
                id: format!("tick:{}", now.timestamp()),
                kind: ScoreCause::Decay,
                trace_id: uuid::Uuid::now_v7().simple().to_string(),
            };
            let mut w = self
                .open(&txn, &defs, lead, false, now, cause, None)
                .await?;
            w.settle().await?;
            w.finish().await?;
            txn.commit().await?;
            Ok(true)
        })
        .await
    }

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
        let txn = begin(&self.db).await?;
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
                let txn = begin(&self.db).await?;
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
                let txn = begin(&self.db).await?;
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

    /// Rebuilds `profile`'s entries of model `model_id` from its events under the current rules
    /// (a recompute job's step). Returns whether the profile was active.
    pub async fn recompute_profile(
        &self,
        tenant: &str,
        profile: &str,
        model_id: &str,
        job_id: &str,
        fire_triggers: bool,
    ) -> Result<bool, ScoreError> {
        let defs = self.compiled(tenant).await?;
        let Some(model) = defs.model_by_id(model_id) else {
            return Ok(false);
        };
        self.retry(|| async {
            let now = self.clock.now();
            let txn = begin(&self.db).await?;
            let Some(lead) = leads::lock(&txn, tenant, profile).await? else {
                txn.rollback().await?;
                return Ok(false);
            };
            if !lead.active() {
                txn.rollback().await?;
                return Ok(false);
            }
            let cause = Cause {
                id: format!("job:{job_id}"),
                kind: ScoreCause::Recompute,
                trace_id: job_id.to_string(),
            };
            let mut w = self
                .open(&txn, &defs, lead, false, now, cause, None)
                .await?;
            w.fire_triggers = fire_triggers;
            let events = profile_events(&txn, tenant, profile, w.offset).await?;
            let ctx = w.ctx();
            let offset = w.offset;
            let facts = w.view().await?.clone();
            let planned = replay(&defs, Some(model), &events, &facts, &ctx, offset);
            ledger::void_model(
                &txn,
                tenant,
                profile,
                model_id,
                &format!("job:{job_id}"),
                now,
            )
            .await?;
            let m = &defs.models[model];
            for p in planned {
                let e = NewEntry {
                    model_id: m.id.clone(),
                    rule_id: p.rule_id,
                    kind: match p.kind {
                        crate::domain::defs::RuleKind::Event => ledger::EVENT,
                        crate::domain::defs::RuleKind::State => ledger::STATE,
                    },
                    source_key: if p.source_key.is_empty() {
                        format!("state:{}", uuid::Uuid::now_v7().simple())
                    } else {
                        p.source_key
                    },
                    event_kind: p.event_kind,
                    points: p.points,
                    delta: p.delta,
                    capped: p.capped,
                    earned: p.earned,
                    expires_at: (p.kind == crate::domain::defs::RuleKind::Event)
                        .then(|| m.decay.expires_after().map(|d| p.earned + d))
                        .flatten(),
                    cause_id: Some(format!("job:{job_id}")),
                    note: Some("recomputed".into()),
                };
                w.add_entry(model, e).await?;
            }
            w.rebuild_all().await?;
            w.settle().await?;
            w.finish().await?;
            txn.commit().await?;
            Ok(true)
        })
        .await
    }
}

/// Remembers when events happened (replays order and decay events by it); an event known
/// before keeps its first time.
async fn record_times(
    txn: &DatabaseTransaction,
    tenant: &str,
    events: &[(&str, DateTime<Utc>)],
) -> Result<(), DbErr> {
    if events.is_empty() {
        return Ok(());
    }
    let mut q = Query::insert();
    q.into_table(LeadEvents::Table).columns([
        LeadEvents::TenantId,
        LeadEvents::EventId,
        LeadEvents::EarnedAt,
    ]);
    for (id, at) in events {
        q.values_panic([tenant.into(), (*id).into(), (*at).into()]);
    }
    q.on_conflict(
        OnConflict::columns([LeadEvents::TenantId, LeadEvents::EventId])
            .value(LeadEvents::EarnedAt, Expr::col(LeadEvents::EarnedAt))
            .to_owned(),
    );
    exec(txn, &q).await.map(drop)
}

/// Records a tag change unless a later one was seen; `true` when it should be applied.
async fn tag_is_newer(
    txn: &DatabaseTransaction,
    tenant: &str,
    profile: &str,
    tag: &str,
    at: DateTime<Utc>,
    present: bool,
) -> Result<bool, DbErr> {
    let q = Query::select()
        .column(TagClock::ChangedAt)
        .from(TagClock::Table)
        .and_where(Expr::col(TagClock::TenantId).eq(tenant))
        .and_where(Expr::col(TagClock::ProfileId).eq(profile))
        .and_where(Expr::col(TagClock::TagId).eq(tag))
        .to_owned();
    if let Some(r) = one(txn, &q).await? {
        let seen: DateTime<Utc> = r.try_get("", "changed_at")?;
        if seen > at {
            return Ok(false);
        }
    }
    let q = Query::insert()
        .into_table(TagClock::Table)
        .columns([
            TagClock::TenantId,
            TagClock::ProfileId,
            TagClock::TagId,
            TagClock::ChangedAt,
            TagClock::Present,
        ])
        .values_panic([
            tenant.into(),
            profile.into(),
            tag.into(),
            at.into(),
            present.into(),
        ])
        .on_conflict(
            OnConflict::columns([TagClock::TenantId, TagClock::ProfileId, TagClock::TagId])
                .update_columns([TagClock::ChangedAt, TagClock::Present])
                .to_owned(),
        )
        .to_owned();
    exec(txn, &q).await?;
    Ok(true)
}

/// Sets the profile's tags in the projection to `tags` as of `at`: each tag whose last change
/// seen is not later (see [`tag_is_newer`]) is set or unset.
async fn replace_tags(
    txn: &DatabaseTransaction,
    tenant: &str,
    profile: &str,
    tags: &[String],
    at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    facts::ensure_profile(txn, tenant, profile, now).await?;
    let opts = facts::LoadOptions {
        properties: None,
        relations: false,
        ..Default::default()
    };
    let held = facts::load_profile(txn, tenant, profile, &opts).await?.tags;
    let wanted: std::collections::BTreeSet<&String> = tags.iter().collect();
    for tag in held.iter().chain(tags) {
        let present = wanted.contains(tag);
        if tag_is_newer(txn, tenant, profile, tag, at, present).await? {
            if present {
                facts::set_tag(txn, tenant, profile, tag).await?;
            } else {
                facts::unset_tag(txn, tenant, profile, tag).await?;
            }
        }
    }
    Ok(())
}

/// When the latest of a profile's events in the projection happened (its last activity).
async fn last_activity(
    txn: &DatabaseTransaction,
    tenant: &str,
    profile: &str,
    offset: i32,
) -> Result<Option<DateTime<Utc>>, DbErr> {
    let events = profile_events(txn, tenant, profile, offset).await?;
    Ok(events.iter().map(|e| e.earned).max())
}

/// Every event of a profile in the projection with when it happened (from `lead_events`; the
/// start of its local day when unknown).
pub async fn profile_events<C: sea_orm::ConnectionTrait>(
    conn: &C,
    tenant: &str,
    profile: &str,
    offset: i32,
) -> Result<Vec<ReplayEvent>, DbErr> {
    let opts = facts::LoadOptions {
        events_since: chrono::NaiveDate::from_ymd_opt(1970, 1, 1),
        event_kinds: Default::default(),
        ..Default::default()
    };
    let f = facts::load_profile(conn, tenant, profile, &opts).await?;
    let mut times: BTreeMap<String, DateTime<Utc>> = BTreeMap::new();
    let ids: Vec<String> = f.events.iter().map(|e| e.event_id.clone()).collect();
    for chunk in ids.chunks(500) {
        let q = Query::select()
            .columns([LeadEvents::EventId, LeadEvents::EarnedAt])
            .from(LeadEvents::Table)
            .and_where(Expr::col(LeadEvents::TenantId).eq(tenant))
            .and_where(Expr::col(LeadEvents::EventId).is_in(chunk.iter().cloned()))
            .to_owned();
        for r in super::rows(conn, &q).await? {
            times.insert(r.try_get("", "event_id")?, r.try_get("", "earned_at")?);
        }
    }
    Ok(f.events
        .into_iter()
        .map(|e| {
            let earned = times.get(&e.event_id).copied().unwrap_or_else(|| {
                e.day
                    .and_hms_opt(0, 0, 0)
                    .map(|n| n.and_utc() - chrono::Duration::minutes(i64::from(offset)))
                    .unwrap_or_default()
            });
            ReplayEvent { event: e, earned }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_scored_types_only() {
        let env = |kind: &str| Envelope::builder(kind, "t", serde_json::json!({"x": 1})).build();
        // Unread types stay ignored, whatever they carry.
        for kind in ["identity.unmerged", "command.tag.add", "lead.notify"] {
            assert!(matches!(decode(&env(kind)), Ok(None)), "{kind}");
        }
        for kind in SCORED {
            assert!(
                matches!(decode(&env(kind)), Err(ScoreError::Invalid(_))),
                "{kind}"
            );
        }
    }
}
