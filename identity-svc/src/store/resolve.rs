//! Resolution of one channel event in one transaction: record the message in the inbox, lock the
//! identifiers it carries, plan (create / attach / merge / refuse, [`crate::domain::plan`]), write
//! profiles, identifiers, edges, merges, refusals and the timeline, and enqueue `profile.resolved`
//! (and `identity.merged`) in the outbox — all or nothing. When WeChat lookups are on and WeChat
//! can say more about the subject ([`observe::wants_lookup`]), the same transaction enqueues an
//! `identity.enrich` request: the event never waits on WeChat. The answer comes back through
//! [`Resolver::apply_enrichment`], which runs the same plan with the identifiers and fields WeChat
//! added (a unionid may merge the profile with the person's others), under its own inbox entry,
//! without a second timeline entry or `profile.resolved` (downstream sees `identity.merged` and
//! `profile.updated`, as for any change of the profile).
//!
//! Concurrency: uniqueness is the database's unique key on (tenant, kind, namespace, value_hash).
//! Two transactions racing to create the same identifier both try to insert it; one fails with a
//! unique violation (or a deadlock on MySQL's gap locks), and the whole transaction is run again
//! after a short random pause — the second run finds the identifier and attaches to its profile.
//! Profiles involved in an event are locked (`FOR UPDATE`, in id order) before they are changed;
//! SQLite serialises writers on its database lock (the inbox insert takes it first).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::Utc;
use platform::db::inbox::{self, Processed};
use platform::db::outbox;
use proto::identity::{
    EnrichRequested, Identifier, IdentifierKind, IdentityMerged, LinkRule, ProfileResolved,
    ENRICH_REQUESTED, IDENTITY_MERGED, PROFILE_RESOLVED,
};
use proto::Envelope;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, Condition, DatabaseConnection, DatabaseTransaction, DbErr, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, Set,
};
use serde_json::{json, Value};

use super::entities::{block, custom_field, edge, identifier, merge, profile, refusal, timeline};
use super::state;
use super::{is_contention, ACTIVE, MERGED};
use crate::domain::extract::{extract, Found};
use crate::domain::fields::CustomField;
use crate::domain::observe::{self, Enriched, Observations, ObserveCtx};
use crate::domain::pii::{mask, plain_hash, seal_context, Pii};
use crate::domain::{plan_with_blocks, profile_pair, Incoming, Key, Policy};

/// Consumer name in the inbox.
pub const CONSUMER: &str = "identity";
/// Consumer name in the inbox of WeChat's answers applied to resolved events.
pub const ENRICH_CONSUMER: &str = "identity.enrich";
/// `created_by` of edges written by automatic resolution.
pub(crate) const SYSTEM: &str = "system";

/// What resolving an event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Resolved(Resolution),
    /// The message was processed before; nothing ran.
    Duplicate,
    /// The event carries no identifier (e.g. a WeCom group-chat change); acknowledged as is.
    NoIdentifiers,
}

/// The effect of one resolved event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    /// The canonical profile the event belongs to.
    pub profile_id: String,
    pub created: bool,
    /// Profiles merged into `profile_id` by this event.
    pub absorbed: Vec<String>,
    /// Identifiers newly attached.
    pub attached: usize,
    /// Links refused by a guard (recorded in `merge_refusals`).
    pub refused: usize,
    /// Transaction runs it took (1 when no race was met).
    pub attempts: u32,
}

/// Why an event could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The payload does not decode: it never will.
    #[error("invalid event: {0}")]
    Invalid(String),
    /// Still racing after every attempt; worth retrying later.
    #[error("database contention after {attempts} attempts: {source}")]
    Contention {
        attempts: u32,
        #[source]
        source: DbErr,
    },
    #[error("database error: {0}")]
    Db(#[from] DbErr),
}

/// One identifier ready to be looked up and stored.
#[derive(Debug, Clone)]
struct Prepared {
    found: Found,
    /// Stands for the profile a binding code names; not one of the event's identifiers.
    binding: bool,
    key: Key,
    /// Clear value for non-sensitive kinds.
    value: Option<String>,
    sealed: Option<String>,
    masked: String,
}

impl Prepared {
    fn public(&self) -> Identifier {
        let id = &self.found.identifier;
        let value = if id.kind.is_sensitive() {
            self.masked.clone()
        } else {
            id.value.clone()
        };
        Identifier::new(id.kind, id.namespace.clone(), value)
    }
}

/// Resolves events against one database. Cheap to clone.
#[derive(Clone)]
pub struct Resolver {
    pub(crate) db: DatabaseConnection,
    pub(crate) pii: Option<Pii>,
    pub(crate) policy: Arc<Policy>,
    pub(crate) tx_attempts: u32,
    /// Ask for WeChat lookups (`identity.enrich`) of the events that want one.
    pub(crate) enrich: bool,
}

impl Resolver {
    /// `pii`: `None` drops sensitive identifiers (no key to protect them with).
    pub fn new(db: DatabaseConnection, pii: Option<Pii>, policy: Policy, tx_attempts: u32) -> Self {
        Resolver {
            db,
            pii,
            policy: Arc::new(policy),
            tx_attempts: tx_attempts.max(1),
            enrich: false,
        }
    }

    /// Enqueues an `identity.enrich` request with every resolved event WeChat's APIs can say
    /// more about (when the service's WeChat lookups are on).
    pub fn with_enrichment(mut self, on: bool) -> Self {
        self.enrich = on;
        self
    }

    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Region `tenant`'s typed phone numbers without a country code are read in.
    pub fn default_region(&self, tenant: &str) -> &str {
        &self.policy.for_tenant(tenant).default_region
    }

    /// The personal-data key, when configured.
    pub fn pii(&self) -> Option<&Pii> {
        self.pii.as_ref()
    }

    /// Resolves `env` exactly once (the inbox remembers its id), retrying the transaction on races.
    pub async fn resolve(&self, env: &Envelope) -> Result<Outcome, ResolveError> {
        let mode = Mode::Event {
            request_lookup: self.enrich && observe::wants_lookup(env),
        };
        self.run(env, None, mode).await
    }

    /// Applies what WeChat's APIs said about the subject of `env`, an event resolved before,
    /// exactly once (an inbox entry of its own): the identifiers it adds (a unionid) are linked —
    /// merging profiles where the policy says so — and its fields recorded with the event's time,
    /// as if the event had carried them. `Duplicate` when applied before.
    pub async fn apply_enrichment(
        &self,
        env: &Envelope,
        enriched: &Enriched,
    ) -> Result<Outcome, ResolveError> {
        self.run(env, Some(enriched), Mode::Enrichment).await
    }

    /// Resolves the events that arrived together, each exactly once, in one transaction (one
    /// inbox statement, one commit, READ COMMITTED on MySQL/MariaDB) and in their order, so
    /// events of one person keep it. A race reruns the batch; a batch that fails otherwise is
    /// run again event by event, so one event that cannot be stored fails alone. Customer-group
    /// changes run on their own. One outcome per event, in order.
    pub async fn resolve_batch(&self, envs: &[Envelope]) -> Vec<Result<Outcome, ResolveError>> {
        let mut out: Vec<Option<Result<Outcome, ResolveError>>> = Vec::with_capacity(envs.len());
        let mut jobs: Vec<(usize, Arc<Job>)> = Vec::new();
        for (i, env) in envs.iter().enumerate() {
            let mode = Mode::Event {
                request_lookup: self.enrich && observe::wants_lookup(env),
            };
            out.push(match self.prepare_job(env, None, mode).await {
                Ok(Step::Job(job)) => {
                    jobs.push((i, job));
                    None
                }
                Ok(Step::Done(o)) => Some(Ok(o)),
                Ok(Step::Group(g)) => Some(self.apply_group(env, g).await),
                Err(e) => Some(Err(e)),
            });
        }
        if jobs.len() == 1 {
            let (i, job) = jobs.pop().expect("one job");
            out[i] = Some(self.apply_one(job).await);
        } else if !jobs.is_empty() {
            for (i, r) in self.apply_together(&jobs).await {
                out[i] = Some(r);
            }
        }
        out.into_iter()
            .map(|o| o.unwrap_or(Ok(Outcome::NoIdentifiers)))
            .collect()
    }

    /// `jobs` in one transaction; event by event when that fails other than by a race.
    async fn apply_together(
        &self,
        jobs: &[(usize, Arc<Job>)],
    ) -> Vec<(usize, Result<Outcome, ResolveError>)> {
        let ids: Vec<uuid::Uuid> = jobs.iter().map(|(_, j)| j.env.id).collect();
        let all: Arc<Vec<Arc<Job>>> = Arc::new(jobs.iter().map(|(_, j)| j.clone()).collect());
        let r = inbox::process_batch_retrying(
            &self.db,
            CONSUMER,
            &ids,
            self.tx_attempts,
            move |txn, fresh| {
                let all = all.clone();
                Box::pin(async move {
                    let mut done = Vec::with_capacity(fresh.len());
                    for i in fresh {
                        done.push(apply(txn, &all[i]).await?);
                    }
                    Ok(done)
                })
            },
        )
        .await;
        match r {
            Ok((processed, runs)) => {
                metrics::counter!("scrm_identity_tx_retries_total")
                    .increment(u64::from(runs.saturating_sub(1)));
                jobs.iter()
                    .zip(processed)
                    .map(|((i, job), p)| {
                        let outcome = match p {
                            Processed::Done(mut res) => {
                                res.attempts = runs;
                                count_resolved(job.mode, &res);
                                Outcome::Resolved(res)
                            }
                            Processed::Duplicate => Outcome::Duplicate,
                        };
                        (*i, Ok(outcome))
                    })
                    .collect()
            }
            Err(e) if is_contention(&e) => {
                let reason = e.to_string();
                jobs.iter()
                    .map(|(i, _)| {
                        let source = DbErr::Custom(reason.clone());
                        let attempts = self.tx_attempts;
                        (*i, Err(ResolveError::Contention { attempts, source }))
                    })
                    .collect()
            }
            Err(e) => {
                tracing::warn!(error = %e, events = jobs.len(), "Batch failed; resolving its events one by one");
                let mut out = Vec::with_capacity(jobs.len());
                for (i, job) in jobs {
                    out.push((*i, self.apply_one(job.clone()).await));
                }
                out
            }
        }
    }

    async fn run(
        &self,
        env: &Envelope,
        enriched: Option<&Enriched>,
        mode: Mode,
    ) -> Result<Outcome, ResolveError> {
        match self.prepare_job(env, enriched, mode).await? {
            Step::Job(job) => self.apply_one(job).await,
            Step::Group(g) => self.apply_group(env, g).await,
            Step::Done(o) => Ok(o),
        }
    }

    /// What `env` needs of its transaction, read before it begins (custom fields, a binding
    /// code's anchor), or what it is without one.
    async fn prepare_job(
        &self,
        env: &Envelope,
        enriched: Option<&Enriched>,
        mode: Mode,
    ) -> Result<Step, ResolveError> {
        let policy = self.policy.for_tenant(&env.tenant_id);
        let extracted = extract(env, policy).map_err(|e| ResolveError::Invalid(e.to_string()))?;
        if let Some(g) = observe::group_change(env) {
            return Ok(Step::Group(g));
        }
        let custom = if env.kind == proto::sdk::TrackKind::FormSubmit.routing_key() {
            self.custom_fields(&env.tenant_id).await?
        } else {
            Vec::new()
        };
        let ctx = ObserveCtx {
            default_region: &policy.default_region,
            custom: &custom,
            now: Utc::now(),
        };
        let mut obs = observe::observe(env, enriched, &ctx);
        if mode == Mode::Enrichment {
            // The event's own refused values were logged when it was resolved.
            let own = observe::observe(env, None, &ctx).issues;
            obs.issues.retain(|i| !own.contains(i));
        }
        let mut found = extracted.identifiers;
        if let Some(u) = enriched.and_then(|e| e.unionid.as_deref()) {
            found.push(Found {
                identifier: Identifier::new(
                    IdentifierKind::Unionid,
                    policy.unionid_namespace(observe::event_app(env).as_deref()),
                    u,
                ),
                provenance: proto::identity::Provenance::Wechat,
            });
        }
        for f in &obs.identifiers {
            if !found.iter().any(|g| g.identifier == f.identifier)
                && !policy.blocklist.is_blocked(&f.identifier.value)
            {
                found.push(f.clone());
            }
        }
        let mut prepared = self.prepare(&env.tenant_id, found);
        // A binding code's link was made when the event was resolved.
        if !prepared.is_empty() && mode != Mode::Enrichment {
            if let Some(anchor) = self.binding_anchor(env).await? {
                prepared.push(anchor);
            }
        }
        if prepared.is_empty() {
            metrics::counter!("scrm_identity_events_total", "outcome" => "no_identifiers")
                .increment(1);
            return Ok(Step::Done(Outcome::NoIdentifiers));
        }
        Ok(Step::Job(Arc::new(Job {
            env: env.clone(),
            prepared,
            summary: extracted.summary,
            policy: Arc::new(policy.clone()),
            obs,
            mode,
        })))
    }

    /// One event's transaction, run again after a short pause while it races.
    async fn apply_one(&self, job: Arc<Job>) -> Result<Outcome, ResolveError> {
        let (mode, id) = (job.mode, job.env.id);
        let consumer = match mode {
            Mode::Event { .. } => CONSUMER,
            Mode::Enrichment => ENRICH_CONSUMER,
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let j = job.clone();
            let r = inbox::process_once::<_, DbErr, _>(&self.db, consumer, id, move |txn| {
                Box::pin(async move { apply(txn, &j).await })
            })
            .await;
            match r {
                Ok(Processed::Done(mut res)) => {
                    res.attempts = attempt;
                    count_resolved(mode, &res);
                    return Ok(Outcome::Resolved(res));
                }
                Ok(Processed::Duplicate) => return Ok(Outcome::Duplicate),
                Err(e) if is_contention(&e) => {
                    metrics::counter!("scrm_identity_tx_retries_total").increment(1);
                    if attempt >= self.tx_attempts {
                        return Err(ResolveError::Contention {
                            attempts: attempt,
                            source: e,
                        });
                    }
                    platform::db::contention_pause(attempt).await;
                }
                Err(e) => return Err(ResolveError::Db(e)),
            }
        }
    }

    /// When the event came through a personalised binding code, an identifier of the profile
    /// the code names (its first), to be linked with the event's subject.
    async fn binding_anchor(&self, env: &Envelope) -> Result<Option<Prepared>, DbErr> {
        let Some(code) = observe::entry_code(env) else {
            return Ok(None);
        };
        let Some(target) =
            super::edits::bound_profile(&self.db, &env.tenant_id, &code, Utc::now()).await?
        else {
            return Ok(None);
        };
        let Some(m) = identifier::Entity::find()
            .filter(identifier::Column::ProfileId.eq(target))
            .order_by_asc(identifier::Column::Id)
            .one(&self.db)
            .await?
        else {
            return Ok(None);
        };
        let Some(kind) = IdentifierKind::parse(&m.kind) else {
            return Ok(None);
        };
        let provenance = proto::identity::Provenance::parse(&m.provenance)
            .unwrap_or(proto::identity::Provenance::Wechat);
        Ok(Some(Prepared {
            found: Found {
                identifier: Identifier::new(
                    kind,
                    m.namespace.clone(),
                    m.value.clone().unwrap_or_else(|| m.value_masked.clone()),
                ),
                provenance,
            },
            binding: true,
            key: Key {
                kind,
                namespace: m.namespace,
                hash: m.value_hash,
            },
            value: m.value,
            sealed: m.value_sealed,
            masked: m.value_masked,
        }))
    }

    /// The tenant's declared custom fields.
    pub async fn custom_fields(&self, tenant: &str) -> Result<Vec<CustomField>, DbErr> {
        Ok(custom_field::Entity::find()
            .filter(custom_field::Column::TenantId.eq(tenant))
            .order_by_asc(custom_field::Column::Name)
            .all(&self.db)
            .await?
            .into_iter()
            .filter_map(|c| {
                Some(CustomField {
                    value_type: crate::domain::fields::FieldType::parse(&c.value_type)?,
                    name: c.name,
                    label: c.label,
                })
            })
            .collect())
    }

    /// A customer-group membership change: several people, no single subject. Applied once
    /// (inbox); the known members' profiles are refreshed.
    async fn apply_group(
        &self,
        env: &Envelope,
        g: observe::GroupChange,
    ) -> Result<Outcome, ResolveError> {
        let g = Arc::new(g);
        let tenant = env.tenant_id.clone();
        let id = env.id;
        let r = inbox::process_retrying(&self.db, CONSUMER, env.id, self.tx_attempts, |txn| {
            let (g, tenant) = (g.clone(), tenant.clone());
            Box::pin(async move {
                let now = Utc::now();
                for p in state::apply_group(txn, &tenant, &g).await? {
                    state::refresh(txn, &p, Some(id), now).await?;
                }
                Ok(())
            })
        })
        .await;
        match r {
            Ok((Processed::Done(()), _)) => {
                metrics::counter!("scrm_identity_events_total", "outcome" => "group").increment(1);
                Ok(Outcome::NoIdentifiers)
            }
            Ok((Processed::Duplicate, _)) => Ok(Outcome::Duplicate),
            Err(e) if is_contention(&e) => Err(ResolveError::Contention {
                attempts: self.tx_attempts,
                source: e,
            }),
            Err(e) => Err(ResolveError::Db(e)),
        }
    }

    fn prepare(&self, tenant: &str, found: Vec<Found>) -> Vec<Prepared> {
        let mut out = Vec::with_capacity(found.len());
        for f in found {
            let id = &f.identifier;
            let (hash, value, sealed, masked) = if id.kind.is_sensitive() {
                let Some(pii) = &self.pii else {
                    metrics::counter!("scrm_identity_sensitive_dropped_total").increment(1);
                    continue;
                };
                (
                    pii.keyed_hash(id.kind, &id.namespace, &id.value),
                    None,
                    Some(pii.seal(&id.value, &seal_context(tenant, id.kind, &id.namespace))),
                    mask(id.kind, &id.value),
                )
            } else {
                (
                    plain_hash(&id.value),
                    Some(id.value.clone()),
                    None,
                    id.value.clone(),
                )
            };
            out.push(Prepared {
                binding: false,
                key: Key {
                    kind: id.kind,
                    namespace: id.namespace.clone(),
                    hash,
                },
                value,
                sealed,
                masked,
                found: f,
            });
        }
        out
    }
}

/// Counts a resolved event (or applied enrichment) by what it did.
fn count_resolved(mode: Mode, res: &Resolution) {
    let outcome = if !res.absorbed.is_empty() {
        "merged"
    } else if res.created {
        "created"
    } else {
        "attached"
    };
    match mode {
        Mode::Event { .. } => {
            metrics::counter!("scrm_identity_events_total", "outcome" => outcome).increment(1);
        }
        Mode::Enrichment => {
            metrics::counter!("scrm_identity_enrichments_total", "outcome" => outcome).increment(1);
        }
    }
}

/// An event made ready for its transaction, or what it is without one.
enum Step {
    Job(Arc<Job>),
    /// A customer-group membership change (several people, no single subject).
    Group(observe::GroupChange),
    Done(Outcome),
}

/// What a resolution transaction applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// A channel event: its timeline entry and `profile.resolved`; `request_lookup` also
    /// enqueues `identity.enrich`.
    Event { request_lookup: bool },
    /// WeChat's answer about a resolved event's subject.
    Enrichment,
}

struct Job {
    env: Envelope,
    prepared: Vec<Prepared>,
    summary: Value,
    policy: Arc<Policy>,
    obs: Observations,
    mode: Mode,
}

pub(crate) fn snapshot_identifier(m: &identifier::Model) -> Value {
    let sensitive = IdentifierKind::parse(&m.kind).is_some_and(IdentifierKind::is_sensitive);
    json!({
        "id": m.id,
        "kind": m.kind,
        "namespace": m.namespace,
        "value": if sensitive { m.value_masked.clone() } else { m.value.clone().unwrap_or_default() },
        "provenance": m.provenance,
    })
}

pub(crate) fn snapshot(profile_id: &str, ids: &[identifier::Model]) -> Value {
    json!({"profile_id": profile_id, "identifiers": ids.iter().map(snapshot_identifier).collect::<Vec<_>>()})
}

async fn apply(txn: &DatabaseTransaction, job: &Job) -> Result<Resolution, DbErr> {
    let env = &job.env;
    let tenant = env.tenant_id.as_str();
    let now = Utc::now();
    let event_id = env.id.to_string();

    // 1. The event's identifiers that exist, locked.
    let mut any = Condition::any();
    for p in &job.prepared {
        any = any.add(
            Condition::all()
                .add(identifier::Column::Kind.eq(p.key.kind.as_str()))
                .add(identifier::Column::Namespace.eq(p.key.namespace.clone()))
                .add(identifier::Column::ValueHash.eq(p.key.hash.clone())),
        );
    }
    let existing = identifier::Entity::find()
        .filter(identifier::Column::TenantId.eq(tenant))
        .filter(any)
        .lock_exclusive()
        .all(txn)
        .await?;
    let by_key: BTreeMap<(String, String, String), identifier::Model> = existing
        .into_iter()
        .map(|m| {
            (
                (m.kind.clone(), m.namespace.clone(), m.value_hash.clone()),
                m,
            )
        })
        .collect();
    let lookup = |p: &Prepared| {
        by_key.get(&(
            p.key.kind.as_str().to_string(),
            p.key.namespace.clone(),
            p.key.hash.clone(),
        ))
    };

    // 2. Their profiles, locked in id order; a merged one stands for its survivor.
    let mut canonical: BTreeMap<String, String> = BTreeMap::new();
    let holders: BTreeSet<String> = by_key.values().map(|m| m.profile_id.clone()).collect();
    if !holders.is_empty() {
        let rows = profile::Entity::find()
            .filter(profile::Column::Id.is_in(holders.iter().cloned()))
            .order_by_asc(profile::Column::Id)
            .lock_exclusive()
            .all(txn)
            .await?;
        for p in rows {
            let target = match (&p.status[..], &p.merged_into) {
                (MERGED, Some(into)) => into.clone(),
                _ => p.id.clone(),
            };
            canonical.insert(p.id, target);
        }
        let survivors: Vec<String> = canonical
            .values()
            .filter(|t| !holders.contains(*t))
            .cloned()
            .collect();
        if !survivors.is_empty() {
            profile::Entity::find()
                .filter(profile::Column::Id.is_in(survivors))
                .order_by_asc(profile::Column::Id)
                .lock_exclusive()
                .all(txn)
                .await?;
        }
    }
    let profile_ids: BTreeSet<String> = canonical.values().cloned().collect();

    // 3. Every identifier of those profiles (guards and snapshots).
    let mut held: BTreeMap<String, Vec<identifier::Model>> = BTreeMap::new();
    if !profile_ids.is_empty() {
        for m in identifier::Entity::find()
            .filter(identifier::Column::ProfileId.is_in(profile_ids.iter().cloned()))
            .order_by_asc(identifier::Column::Id)
            .all(txn)
            .await?
        {
            let owner = canonical
                .get(&m.profile_id)
                .cloned()
                .unwrap_or(m.profile_id.clone());
            held.entry(owner).or_default().push(m);
        }
    }
    let keys: BTreeMap<String, Vec<Key>> = held
        .iter()
        .map(|(p, ms)| {
            let ks = ms
                .iter()
                .filter_map(|m| {
                    Some(Key {
                        kind: IdentifierKind::parse(&m.kind)?,
                        namespace: m.namespace.clone(),
                        hash: m.value_hash.clone(),
                    })
                })
                .collect();
            (p.clone(), ks)
        })
        .collect();
    let incoming: Vec<Incoming> = job
        .prepared
        .iter()
        .map(|p| Incoming {
            key: p.key.clone(),
            provenance: p.found.provenance,
            binding: p.binding,
            found_in: lookup(p).map(|m| {
                canonical
                    .get(&m.profile_id)
                    .cloned()
                    .unwrap_or(m.profile_id.clone())
            }),
        })
        .collect();

    // 4. Decide (profiles an operator separated are not merged again).
    let blocked = if profile_ids.len() > 1 {
        blocked_pairs(txn, tenant, &profile_ids).await?
    } else {
        BTreeSet::new()
    };
    let plan = plan_with_blocks(&incoming, &keys, &job.policy, &blocked);

    // 5. Write.
    let created = plan.survivor.is_none();
    let survivor = match &plan.survivor {
        Some(s) => {
            profile::Entity::update_many()
                .col_expr(profile::Column::UpdatedAt, Expr::value(now))
                .filter(profile::Column::Id.eq(s.clone()))
                .exec(txn)
                .await?;
            s.clone()
        }
        None => {
            let id = uuid::Uuid::now_v7().to_string();
            profile::Entity::insert(profile::ActiveModel {
                id: Set(id.clone()),
                tenant_id: Set(tenant.to_string()),
                status: Set(ACTIVE.to_string()),
                merged_into: Set(None),
                created_at: Set(now),
                updated_at: Set(now),
                ..Default::default()
            })
            .exec_without_returning(txn)
            .await?;
            id
        }
    };
    // Identifier row id of each incoming identifier (existing or inserted).
    let mut row_id: Vec<Option<i64>> = job
        .prepared
        .iter()
        .map(|p| lookup(p).map(|m| m.id))
        .collect();
    // The identifier new ones are linked to: one the survivor already held, or (new profile) the
    // first one attached, so the ledger connects every identifier of a profile.
    let anchor = |row_id: &Vec<Option<i64>>| {
        incoming
            .iter()
            .zip(row_id.iter())
            .find(|(i, _)| i.found_in.as_deref() == Some(survivor.as_str()))
            .and_then(|(_, r)| *r)
            .or_else(|| {
                if created {
                    plan.attach.iter().find_map(|&i| row_id[i])
                } else {
                    None
                }
            })
    };
    let mut attached = 0;
    for &idx in &plan.attach {
        let p = &job.prepared[idx];
        let res = identifier::Entity::insert(identifier::ActiveModel {
            id: sea_orm::NotSet,
            tenant_id: Set(tenant.to_string()),
            kind: Set(p.key.kind.as_str().to_string()),
            namespace: Set(p.key.namespace.clone()),
            value_hash: Set(p.key.hash.clone()),
            value: Set(p.value.clone()),
            value_sealed: Set(p.sealed.clone()),
            value_masked: Set(p.masked.clone()),
            profile_id: Set(survivor.clone()),
            provenance: Set(p.found.provenance.as_str().to_string()),
            first_seen_event: Set(event_id.clone()),
            created_at: Set(now),
            updated_at: Set(now),
        })
        .exec(txn)
        .await?;
        let new_id = res.last_insert_id;
        let (from, to, rule) = match anchor(&row_id) {
            Some(a) if job.prepared.iter().any(|p| p.binding) => {
                (a, Some(new_id), LinkRule::ExplicitBinding)
            }
            Some(a) => (a, Some(new_id), LinkRule::SameEvent),
            None => (new_id, None, LinkRule::NewProfile),
        };
        row_id[idx] = Some(new_id);
        let e = NewEdge {
            tenant,
            from,
            to,
            profile_id: &survivor,
            rule,
            event_id: Some(&event_id),
            created_by: SYSTEM,
            merge_id: None,
        };
        e.insert(txn, now).await?;
        attached += 1;
    }

    let mut absorbed = Vec::new();
    let mut survivor_ids = held.get(&survivor).cloned().unwrap_or_default();
    for step in &plan.merges {
        let gone = held.get(&step.absorbed).cloned().unwrap_or_default();
        let before = json!({
            "survivor": snapshot(&survivor, &survivor_ids),
            "absorbed": snapshot(&step.absorbed, &gone),
        });
        identifier::Entity::update_many()
            .col_expr(identifier::Column::ProfileId, Expr::value(survivor.clone()))
            .col_expr(identifier::Column::UpdatedAt, Expr::value(now))
            .filter(identifier::Column::ProfileId.eq(step.absorbed.clone()))
            .exec(txn)
            .await?;
        profile::Entity::update_many()
            .col_expr(profile::Column::Status, Expr::value(MERGED))
            .col_expr(profile::Column::MergedInto, Expr::value(survivor.clone()))
            .col_expr(profile::Column::UpdatedAt, Expr::value(now))
            .filter(
                Condition::any()
                    .add(profile::Column::Id.eq(step.absorbed.clone()))
                    .add(profile::Column::MergedInto.eq(step.absorbed.clone())),
            )
            .exec(txn)
            .await?;
        survivor_ids.extend(gone.iter().cloned().map(|mut m| {
            m.profile_id = survivor.clone();
            m
        }));
        let merge_id =
            merge::Entity::insert(merge::ActiveModel {
                id: sea_orm::NotSet,
                tenant_id: Set(tenant.to_string()),
                survivor_id: Set(survivor.clone()),
                absorbed_id: Set(step.absorbed.clone()),
                rule: Set(step.rule.as_str().to_string()),
                evidence_event_id: Set(Some(event_id.clone())),
                before_snapshot: Set(before.to_string()),
                after_snapshot: Set(
                    json!({"survivor": snapshot(&survivor, &survivor_ids)}).to_string()
                ),
                operator: Set(None),
                created_at: Set(now),
                reason: Set(None),
                unmerged_at: Set(None),
                unmerge_id: Set(None),
            })
            .exec(txn)
            .await?
            .last_insert_id;
        // The link that proves the merge; without it an un-merge could not tell the sides apart.
        if let (Some(from), Some(to)) = (
            row_id[step.from].or_else(|| anchor(&row_id)),
            row_id[step.to],
        ) {
            let e = NewEdge {
                tenant,
                from,
                to: Some(to),
                profile_id: &survivor,
                rule: step.rule,
                event_id: Some(&event_id),
                created_by: SYSTEM,
                merge_id: Some(merge_id),
            };
            e.insert(txn, now).await?;
        }
        let payload = IdentityMerged {
            survivor: survivor.clone(),
            absorbed: vec![step.absorbed.clone()],
            rule: step.rule,
            evidence_event: Some(env.id),
            operator: None,
        };
        let out = Envelope::builder(IDENTITY_MERGED, tenant, json!(payload))
            .occurred_at(env.occurred_at)
            .trace_id(env.trace_id.clone())
            .dedupe_key(format!("{}|{}", env.id, step.absorbed))
            .build();
        outbox::enqueue(txn, &out).await?;
        absorbed.push(step.absorbed.clone());
    }

    for r in &plan.refusals {
        let mut candidates = vec![survivor.clone()];
        candidates.extend(r.other.clone());
        let reason = match r.identifier {
            Some(idx) => format!("{} ({})", r.reason.as_str(), job.prepared[idx].key.kind),
            None => r.reason.as_str().to_string(),
        };
        refusal::Entity::insert(refusal::ActiveModel {
            id: sea_orm::NotSet,
            tenant_id: Set(tenant.to_string()),
            candidate_ids: Set(json!(candidates).to_string()),
            rule: Set(r.rule.as_str().to_string()),
            reason: Set(reason),
            evidence_event_id: Set(Some(event_id.clone())),
            created_at: Set(now),
        })
        .exec_without_returning(txn)
        .await?;
        metrics::counter!("scrm_identity_merge_refusals_total", "reason" => r.reason.as_str())
            .increment(1);
    }

    if let Mode::Event { .. } = job.mode {
        timeline::Entity::insert(timeline::ActiveModel {
            id: sea_orm::NotSet,
            tenant_id: Set(tenant.to_string()),
            profile_id: Set(survivor.clone()),
            event_id: Set(event_id.clone()),
            event_type: Set(env.kind.clone()),
            occurred_at: Set(env.occurred_at),
            summary: Set(job.summary.to_string()),
            identifier_ids: Set(Some(
                json!(row_id.iter().flatten().collect::<Vec<_>>()).to_string(),
            )),
        })
        .exec_without_returning(txn)
        .await?;
    }

    // What the event says beyond identifiers, against its subject's identifier row; then the
    // profile's derived state when anything it depends on changed.
    let subject = row_id.iter().flatten().next().copied();
    let mut dirty = created || !absorbed.is_empty();
    if let Some(subject) = subject {
        dirty |= state::record(txn, tenant, subject, &survivor, &event_id, &job.obs, now).await?;
    }
    dirty |= plan
        .attach
        .iter()
        .any(|&i| job.prepared[i].key.kind.is_sensitive() || job.mode == Mode::Enrichment);
    if dirty {
        state::refresh(txn, &survivor, Some(env.id), now).await?;
    }
    let resolution = Resolution {
        profile_id: survivor.clone(),
        created,
        absorbed,
        attached,
        refused: plan.refusals.len(),
        attempts: 1,
    };
    let Mode::Event { request_lookup } = job.mode else {
        return Ok(resolution);
    };

    let payload = ProfileResolved {
        profile_id: survivor.clone(),
        created,
        event: env.clone(),
        identifiers: job
            .prepared
            .iter()
            .filter(|p| !p.binding)
            .map(Prepared::public)
            .collect(),
    };
    let out = Envelope::builder(PROFILE_RESOLVED, tenant, json!(payload))
        .occurred_at(env.occurred_at)
        .trace_id(env.trace_id.clone())
        .dedupe_key(env.id.to_string())
        .build();
    outbox::enqueue(txn, &out).await?;
    if request_lookup {
        let request = EnrichRequested { event: env.clone() };
        let out = Envelope::builder(ENRICH_REQUESTED, tenant, json!(request))
            .occurred_at(env.occurred_at)
            .trace_id(env.trace_id.clone())
            .dedupe_key(format!("enrich|{}", env.id))
            .build();
        outbox::enqueue(txn, &out).await?;
    }
    Ok(resolution)
}

/// One edge of the ledger about to be written.
pub(crate) struct NewEdge<'a> {
    pub tenant: &'a str,
    pub from: i64,
    /// `None`: `from` is linked to the profile itself (its first identifier, or a split).
    pub to: Option<i64>,
    pub profile_id: &'a str,
    pub rule: LinkRule,
    pub event_id: Option<&'a str>,
    pub created_by: &'a str,
    pub merge_id: Option<i64>,
}

impl NewEdge<'_> {
    pub(crate) async fn insert(
        &self,
        txn: &DatabaseTransaction,
        now: chrono::DateTime<Utc>,
    ) -> Result<(), DbErr> {
        edge::Entity::insert(edge::ActiveModel {
            id: sea_orm::NotSet,
            tenant_id: Set(self.tenant.to_string()),
            from_identifier_id: Set(self.from),
            to_identifier_id: Set(self.to),
            profile_id: Set(self.profile_id.to_string()),
            rule: Set(self.rule.as_str().to_string()),
            evidence_event_id: Set(self.event_id.map(str::to_string)),
            created_at: Set(now),
            created_by: Set(self.created_by.to_string()),
            retracted_at: Set(None),
            merge_id: Set(self.merge_id),
        })
        .exec_without_returning(txn)
        .await?;
        Ok(())
    }
}

/// Pairs of the canonical `profiles` (or of profiles merged into them) an operator separated
/// and no manual merge joined again, as canonical pairs.
pub(crate) async fn blocked_pairs(
    txn: &DatabaseTransaction,
    tenant: &str,
    profiles: &BTreeSet<String>,
) -> Result<BTreeSet<(String, String)>, DbErr> {
    let mut canonical: BTreeMap<String, String> =
        profiles.iter().map(|p| (p.clone(), p.clone())).collect();
    for p in profile::Entity::find()
        .filter(profile::Column::MergedInto.is_in(profiles.iter().cloned()))
        .all(txn)
        .await?
    {
        if let Some(into) = p.merged_into {
            canonical.insert(p.id, into);
        }
    }
    let family: Vec<String> = canonical.keys().cloned().collect();
    let rows = block::Entity::find()
        .filter(block::Column::TenantId.eq(tenant))
        .filter(block::Column::LiftedAt.is_null())
        .filter(block::Column::ProfileA.is_in(family.clone()))
        .filter(block::Column::ProfileB.is_in(family))
        .all(txn)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|b| {
            let a = canonical.get(&b.profile_a)?;
            let b = canonical.get(&b.profile_b)?;
            (a != b).then(|| profile_pair(a, b))
        })
        .collect())
}
