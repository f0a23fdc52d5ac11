//! Resolution of channel events, each exactly once and all or nothing. An event is made ready
//! outside any transaction ([`prepare`]: identifiers hashed / sealed, observations, custom
//! fields, a binding code's anchor); inside it, the inbox records it, then one shape:
//! [`load`] (its identifiers, the profiles holding them, locked) → a pure decision
//! ([`crate::domain::resolution::decide`]: create / attach / merge / refuse, the snapshots and
//! the announcements) → [`write`]; then what the event observed and the profile's derived state
//! ([`super::state`]), and `profile.resolved` (and `identity.merged`) in the outbox. Events that
//! arrive together share one transaction ([`Resolver::resolve_batch`]). When WeChat lookups are
//! on and WeChat can say more about the subject ([`observe::wants_lookup`]), the same
//! transaction enqueues an `identity.enrich` request: the event never waits on WeChat. The
//! answer comes back through [`Resolver::apply_enrichment`], which runs the same plan with the
//! identifiers and fields WeChat added (a unionid may merge the profile with the person's
//! others), under its own inbox entry, without a second timeline entry or `profile.resolved`
//! (downstream sees `identity.merged` and `profile.updated`, as for any change of the profile).
//!
//! Concurrency: uniqueness is the database's unique key on (tenant, kind, namespace, value_hash).
//! Two transactions racing to create the same identifier both try to insert it; one fails with a
//! unique violation (or a deadlock on MySQL's gap locks), and the whole transaction is run again
//! after a short random pause — the second run finds the identifier and attaches to its profile.
//! Profiles involved in an event are locked (`FOR UPDATE`, in id order) before they are changed;
//! SQLite serialises writers on its database lock (the inbox insert takes it first).

use std::sync::Arc;

use chrono::Utc;
use platform::db::inbox::{self, Processed};
use platform::db::outbox;
use proto::identity::Identifier;
use proto::Envelope;
use sea_orm::{DatabaseConnection, DatabaseTransaction, DbErr};
use serde_json::Value;

mod load;
mod prepare;
mod write;

pub(crate) use write::NewEdge;

use super::entities::identifier;
use super::is_contention;
use super::state;
use crate::domain::extract::Found;
use crate::domain::observe::{self, Enriched, Observations};
use crate::domain::pii::Pii;
use crate::domain::resolution;
use crate::domain::{Key, Policy};

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
    /// The tenants' source registries, for the touches events make.
    pub(crate) sources: crate::store::sources::SourceCache,
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
            sources: Default::default(),
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
            Ok((processed, runs)) => jobs
                .iter()
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
                .collect(),
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

    /// One event's transaction, run again after a short pause while it races.
    async fn apply_one(&self, job: Arc<Job>) -> Result<Outcome, ResolveError> {
        let (mode, id) = (job.mode, job.env.id);
        let consumer = match mode {
            Mode::Event { .. } => CONSUMER,
            Mode::Enrichment => ENRICH_CONSUMER,
        };
        let r = inbox::process_retrying(&self.db, consumer, id, self.tx_attempts, |txn| {
            let j = job.clone();
            Box::pin(async move { apply(txn, &j).await })
        })
        .await;
        match r {
            Ok((Processed::Done(mut res), runs)) => {
                res.attempts = runs;
                count_resolved(mode, &res);
                Ok(Outcome::Resolved(res))
            }
            Ok((Processed::Duplicate, _)) => Ok(Outcome::Duplicate),
            Err(e) if is_contention(&e) => Err(ResolveError::Contention {
                attempts: self.tx_attempts,
                source: e,
            }),
            Err(e) => Err(ResolveError::Db(e)),
        }
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
                metrics::counter!(crate::metrics::EVENTS, "outcome" => "group").increment(1);
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
            metrics::counter!(crate::metrics::EVENTS, "outcome" => outcome).increment(1);
        }
        Mode::Enrichment => {
            metrics::counter!(crate::metrics::ENRICHMENTS, "outcome" => outcome).increment(1);
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

/// A profile and its identifiers as merge records keep them.
pub(crate) fn snapshot(profile_id: &str, ids: &[identifier::Model]) -> Value {
    let held: Vec<_> = ids.iter().map(load::held).collect();
    resolution::snapshot(profile_id, &held)
}

/// Resolves one event inside `txn`: load what its identifiers reach, decide, write; then what
/// the event observed and the profile's derived state ([`state`]), and the announcements.
async fn apply(txn: &DatabaseTransaction, job: &Job) -> Result<Resolution, DbErr> {
    let env = &job.env;
    let tenant = env.tenant_id.as_str();
    let now = Utc::now();
    let loaded = load::load(txn, tenant, &job.prepared).await?;
    let public: Vec<Identifier> = job
        .prepared
        .iter()
        .filter(|p| !p.binding)
        .map(Prepared::public)
        .collect();
    let event = resolution::Event {
        env,
        policy: &job.policy,
        public: &public,
        lookup: match job.mode {
            Mode::Event { request_lookup } => Some(request_lookup),
            Mode::Enrichment => None,
        },
        new_profile_id: uuid::Uuid::now_v7().to_string(),
    };
    let fx = resolution::decide(&event, &loaded);
    let rows = write::write(txn, job, loaded.rows, &fx, now).await?;

    // What the event says beyond identifiers, against its subject's identifier row; then the
    // profile's derived state when anything it depends on changed.
    let mut dirty = fx.refresh;
    if let Some(subject) = fx.subject {
        let fresh = matches!(subject, resolution::Ref::New(_));
        if let Some(row) = rows.get(subject) {
            let event_id = env.id.to_string();
            let (profile, obs) = (&fx.profile_id, &job.obs);
            dirty |= state::record(txn, tenant, row, fresh, profile, &event_id, obs, now).await?;
        }
    }
    match &rows.created {
        // Derived from what was just written, without reading it back.
        Some((p, idents)) => {
            state::refresh_known(txn, p, idents, Some(env.id), now).await?;
        }
        None if dirty => {
            state::refresh(txn, &fx.profile_id, Some(env.id), now).await?;
        }
        None => {}
    }
    outbox::enqueue_many(txn, &fx.announce).await?;
    Ok(Resolution {
        profile_id: fx.profile_id,
        created: fx.created,
        absorbed: fx.merges.into_iter().map(|m| m.absorbed).collect(),
        attached: fx.attach.len(),
        refused: fx.refusals.len(),
        attempts: 1,
    })
}
