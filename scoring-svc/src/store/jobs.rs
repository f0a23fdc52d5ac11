//! Recompute jobs (rebuild a model's ledger entries of every lead from its events after the
//! model changed; progress in `scoring_jobs`, advanced a batch per scheduler pass by whichever
//! instance claims it) and dry runs (what a rule set not yet saved would score for one profile
//! or a sample of profiles; nothing is written).

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::{Alias, Cond, Expr, Order, Query};
use sea_orm::{DatabaseConnection, DbErr, FromQueryResult};
use serde::Serialize;

use super::defs::DefsError;
use super::engine::profile_events;
use super::leads;
use super::migrations::{Leads as L, ScoringJobs as J};
use super::{exec, fetch_one, scores, Scorer};
use crate::domain::compiled::{Compiled, ModelDef, RuleDef};
use crate::domain::decay::{Fold, Worth};
use crate::domain::defs::{ModelSpec, RuleKind, RuleSpec};
use crate::domain::replay::replay;
use crate::domain::view::{self, LeadProps};
use crate::domain::DefError;

/// Job states.
pub const QUEUED: &str = "queued";
pub const RUNNING: &str = "running";
pub const DONE: &str = "done";
pub const FAILED: &str = "failed";

/// How long a claimed batch is an instance's own.
const LEASE: i64 = 120;

/// A job as the API shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct JobView {
    pub id: String,
    pub tenant_id: String,
    pub kind: String,
    pub model_id: Option<String>,
    pub status: String,
    pub total: i64,
    pub done: i64,
    /// done / total, 0..=1.
    pub progress: f64,
    pub fire_triggers: bool,
    pub error: Option<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// done / total, 0..=1 (1 for a job of nothing).
fn progress(done: i64, total: i64) -> f64 {
    if total > 0 {
        (done as f64 / total as f64).min(1.0)
    } else {
        1.0
    }
}

/// A job's row (`SELECT *`).
#[derive(FromQueryResult)]
struct JobRow {
    id: String,
    tenant_id: String,
    kind: String,
    model_id: Option<String>,
    status: String,
    total: i64,
    done: i64,
    cursor: Option<String>,
    fire_triggers: bool,
    error: Option<String>,
    created_by: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
}

impl From<JobRow> for JobView {
    fn from(r: JobRow) -> Self {
        JobView {
            id: r.id,
            tenant_id: r.tenant_id,
            kind: r.kind,
            model_id: r.model_id,
            status: r.status,
            total: r.total,
            done: r.done,
            progress: progress(r.done, r.total),
            fire_triggers: r.fire_triggers,
            error: r.error,
            created_by: r.created_by,
            created_at: r.created_at,
            updated_at: r.updated_at,
            finished_at: r.finished_at,
        }
    }
}

/// One job of `tenant` (`None` for an unknown id and for another tenant's job alike).
pub async fn job(
    db: &DatabaseConnection,
    tenant: &str,
    id: &str,
) -> Result<Option<JobView>, DbErr> {
    let q = Query::select()
        .expr(Expr::cust("*"))
        .from(J::Table)
        .and_where(Expr::col(J::TenantId).eq(tenant))
        .and_where(Expr::col(J::Id).eq(id))
        .to_owned();
    Ok(fetch_one::<JobRow, _>(db, &q).await?.map(JobView::from))
}

/// A job by id alone, whatever its tenant: the scheduler's, which advances every tenant's jobs.
async fn claimed_job(db: &DatabaseConnection, id: &str) -> Result<Option<JobRow>, DbErr> {
    let q = Query::select()
        .expr(Expr::cust("*"))
        .from(J::Table)
        .and_where(Expr::col(J::Id).eq(id))
        .to_owned();
    fetch_one(db, &q).await
}

async fn active_leads(db: &DatabaseConnection, tenant: &str) -> Result<i64, DbErr> {
    #[derive(FromQueryResult)]
    struct Row {
        n: i64,
    }
    let q = Query::select()
        .expr_as(Expr::col(L::ProfileId).count(), Alias::new("n"))
        .from(L::Table)
        .and_where(Expr::col(L::TenantId).eq(tenant))
        .and_where(Expr::col(L::Status).eq(leads::ACTIVE))
        .to_owned();
    Ok(fetch_one::<Row, _>(db, &q).await?.map_or(0, |r| r.n))
}

/// Queues a recompute of model `model_id` of `tenant` for every lead of the tenant.
pub async fn create_recompute(
    scorer: &Scorer,
    tenant: &str,
    model_id: &str,
    actor: &str,
    fire_triggers: bool,
) -> Result<JobView, DefsError> {
    let db = &scorer.db;
    let m = super::defs::model(db, tenant, model_id).await?;
    if m.status != super::defs::ACTIVE {
        return Err(DefsError::Conflict {
            code: "model_archived",
            message: format!("model `{}` is archived", m.spec.key),
        });
    }
    let now = scorer.clock.now();
    let id = uuid::Uuid::now_v7().to_string();
    let total = active_leads(db, &m.tenant_id).await?;
    let q = Query::insert()
        .into_table(J::Table)
        .columns([
            J::Id,
            J::TenantId,
            J::Kind,
            J::ModelId,
            J::Status,
            J::Total,
            J::Done,
            J::FireTriggers,
            J::CreatedBy,
            J::CreatedAt,
            J::UpdatedAt,
        ])
        .values_panic([
            id.clone().into(),
            m.tenant_id.clone().into(),
            "recompute".into(),
            model_id.into(),
            QUEUED.into(),
            total.into(),
            0i64.into(),
            fire_triggers.into(),
            actor.into(),
            now.into(),
            now.into(),
        ])
        .to_owned();
    exec(db, &q).await?;
    // The row just written, as [`job`] reads it back.
    Ok(JobView {
        id,
        tenant_id: m.tenant_id,
        kind: "recompute".into(),
        model_id: Some(model_id.to_string()),
        status: QUEUED.into(),
        total,
        done: 0,
        progress: progress(0, total),
        fire_triggers,
        error: None,
        created_by: actor.to_string(),
        created_at: now,
        updated_at: now,
        finished_at: None,
    })
}

/// Advances one claimable job by one batch. Returns how many profiles were recomputed.
pub async fn step(scorer: &Scorer, batch: u32, now: DateTime<Utc>) -> Result<usize, DbErr> {
    let db = &scorer.db;
    let q = Query::select()
        .columns([J::Id])
        .from(J::Table)
        .cond_where(
            Cond::any().add(Expr::col(J::Status).eq(QUEUED)).add(
                Cond::all().add(Expr::col(J::Status).eq(RUNNING)).add(
                    Cond::any()
                        .add(Expr::col(J::LeaseUntil).is_null())
                        .add(Expr::col(J::LeaseUntil).lte(now)),
                ),
            ),
        )
        .order_by(J::CreatedAt, Order::Asc)
        .limit(1)
        .to_owned();
    #[derive(FromQueryResult)]
    struct Claimable {
        id: String,
    }
    let Some(Claimable { id }) = fetch_one(db, &q).await? else {
        return Ok(0);
    };
    let claim = Query::update()
        .table(J::Table)
        .value(J::Status, RUNNING)
        .value(J::LeaseUntil, now + Duration::seconds(LEASE))
        .value(J::UpdatedAt, now)
        .and_where(Expr::col(J::Id).eq(&id))
        .cond_where(
            Cond::any().add(Expr::col(J::Status).eq(QUEUED)).add(
                Cond::any()
                    .add(Expr::col(J::LeaseUntil).is_null())
                    .add(Expr::col(J::LeaseUntil).lte(now)),
            ),
        )
        .to_owned();
    if exec(db, &claim).await?.rows_affected() != 1 {
        return Ok(0);
    }
    let Some(j) = claimed_job(db, &id).await? else {
        return Ok(0);
    };
    let cursor = j.cursor.clone();
    let mut q = Query::select();
    q.column(L::ProfileId)
        .from(L::Table)
        .and_where(Expr::col(L::TenantId).eq(&j.tenant_id))
        .and_where(Expr::col(L::Status).eq(leads::ACTIVE))
        .order_by(L::ProfileId, Order::Asc)
        .limit(u64::from(batch));
    if let Some(c) = &cursor {
        q.and_where(Expr::col(L::ProfileId).gt(c.as_str()));
    }
    let ids = leads::profile_ids(db, &q).await?;
    let model = j.model_id.clone().unwrap_or_default();
    let mut n = 0;
    for p in &ids {
        match scorer
            .recompute_profile(&j.tenant_id, p, &model, &id, j.fire_triggers)
            .await
        {
            Ok(_) => n += 1,
            Err(e) => {
                let q = Query::update()
                    .table(J::Table)
                    .value(J::Status, FAILED)
                    .value(J::Error, format!("profile {p}: {e}"))
                    .value(J::UpdatedAt, now)
                    .value(J::FinishedAt, now)
                    .and_where(Expr::col(J::Id).eq(&id))
                    .to_owned();
                exec(db, &q).await?;
                return Ok(n);
            }
        }
    }
    let finished = ids.len() < batch as usize;
    let mut q = Query::update();
    q.table(J::Table)
        .value(J::Done, Expr::col(J::Done).add(n as i64))
        .value(J::LeaseUntil, now)
        .value(J::UpdatedAt, now)
        .and_where(Expr::col(J::Id).eq(&id));
    if let Some(last) = ids.last() {
        q.value(J::Cursor, last.clone());
    }
    if finished {
        q.value(J::Status, DONE).value(J::FinishedAt, now);
    }
    exec(db, &q).await?;
    Ok(n)
}

/// A rule set to try: a model's key and decay with its rules.
#[derive(Debug, Clone)]
pub struct DryRun {
    pub tenant: String,
    pub model: ModelSpec,
    pub rules: Vec<RuleSpec>,
}

/// One entry a dry run would write.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DryEntry {
    pub rule: String,
    pub kind: RuleKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_kind: Option<String>,
    pub delta: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capped: Option<&'static str>,
    pub earned_at: DateTime<Utc>,
    /// Its worth now (decay applied).
    pub value_now: f64,
}

/// What a rule set would score for one profile.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DryProfile {
    pub profile_id: String,
    pub score: f64,
    /// The profile's score now in the tenant's model of the same key, if there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current: Option<f64>,
    pub entries: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ledger: Option<Vec<DryEntry>>,
}

impl DryRun {
    /// Validates and compiles the rule set.
    pub fn compile(&self, now: DateTime<Utc>) -> Result<Compiled, Vec<DefError>> {
        let mut errors: Vec<DefError> = self
            .model
            .validate()
            .into_iter()
            .map(|e| DefError::new(format!("model.{}", e.path), e.code, e.message))
            .collect();
        if self.rules.is_empty() || self.rules.len() > 200 {
            errors.push(DefError::new(
                "rules",
                "out_of_range",
                "a dry run takes 1..=200 rules",
            ));
        }
        for (i, r) in self.rules.iter().enumerate() {
            if let Err(e) = r.check(&format!("rules[{i}]")) {
                errors.extend(e);
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let model = ModelDef {
            id: "dry-run".into(),
            spec: self.model.clone(),
            epoch: now,
            active: true,
        };
        let rules = self
            .rules
            .iter()
            .enumerate()
            .map(|(i, r)| RuleDef {
                id: format!("rules[{i}]"),
                model_id: "dry-run".into(),
                spec: r.clone(),
            })
            .collect();
        Ok(Compiled::compile(0, vec![model], rules, None, Vec::new()))
    }

    /// What `c` (from [`DryRun::compile`]) would score for `profile` now.
    pub async fn profile(
        &self,
        scorer: &Scorer,
        c: &Compiled,
        profile: &str,
        with_ledger: bool,
    ) -> Result<DryProfile, DbErr> {
        let db = &scorer.db;
        let now = scorer.clock.now();
        let zone = scorer.cfg.zone_of(&self.tenant);
        let today = facts::local_day(now, zone);
        let real = scorer.compiled(&self.tenant).await?;
        let lead = leads::find(db, &self.tenant, profile).await?;
        let stored = scores::load(db, &self.tenant, profile).await?;
        let mut props = LeadProps::default();
        let mut current = None;
        for m in &real.models {
            let (f, _) =
                scores::current(db, &self.tenant, profile, m, stored.get(&m.id), now).await?;
            props.scores.insert(m.key.clone(), f.value());
            if m.key == self.model.key {
                current = Some(f.value());
            }
        }
        if let Some(l) = &lead {
            props.stage = Some(l.stage.clone());
            props.stage_entered_at = Some(l.stage_entered_at);
            props.last_activity_at = l.last_activity_at;
            props.owner = l.owner.as_ref().map(|o| o.user_id.clone());
        }
        let events = profile_events(db, &self.tenant, profile, zone).await?;
        let mut f = facts::load_profile(
            db,
            &self.tenant,
            profile,
            &facts::LoadOptions {
                events_since: c.needs.raw_from(today),
                event_kinds: Default::default(),
                ..Default::default()
            },
        )
        .await?;
        view::apply(&mut f, &props);
        let ctx = rules::EvalCtx { now, today };
        let planned = replay(c, None, &events, &f, &ctx, zone);
        let decay = &c.models[0].decay;
        let worths: Vec<Worth> = planned
            .iter()
            .map(|p| Worth {
                delta: p.delta,
                earned: p.earned,
                decays: p.kind == RuleKind::Event,
            })
            .collect();
        let score = Fold::of(decay, &worths, now).value();
        let ledger = with_ledger.then(|| {
            planned
                .iter()
                .map(|p| DryEntry {
                    rule: p.rule_name.clone(),
                    kind: p.kind,
                    event_id: (!p.source_key.is_empty()).then(|| p.source_key.clone()),
                    event_kind: p.event_kind.clone(),
                    delta: p.delta,
                    capped: p.capped,
                    earned_at: p.earned,
                    value_now: if p.kind == RuleKind::Event {
                        p.delta * decay.factor((now - p.earned).num_seconds())
                    } else {
                        p.delta
                    },
                })
                .collect()
        });
        Ok(DryProfile {
            profile_id: profile.to_string(),
            score,
            current,
            entries: planned.len(),
            ledger,
        })
    }
}

/// The most recently active leads of a tenant, up to `n`.
pub async fn sample(db: &DatabaseConnection, tenant: &str, n: u32) -> Result<Vec<String>, DbErr> {
    let q = Query::select()
        .column(L::ProfileId)
        .from(L::Table)
        .and_where(Expr::col(L::TenantId).eq(tenant))
        .and_where(Expr::col(L::Status).eq(leads::ACTIVE))
        .order_by(L::LastActivityAt, Order::Desc)
        .order_by(L::ProfileId, Order::Asc)
        .limit(u64::from(n))
        .to_owned();
    leads::profile_ids(db, &q).await
}

/// Distribution of scores over a sample.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Distribution {
    pub profiles: usize,
    /// Profiles with a non-zero score.
    pub scored: usize,
    pub mean: f64,
    pub min: f64,
    pub max: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    /// Profiles whose score would differ from the current model of the same key.
    pub changed: usize,
    /// Ten equal buckets between min and max: `[from, to, count]`.
    pub histogram: Vec<(f64, f64, usize)>,
}

/// The distribution of `profiles`' dry-run scores.
pub fn distribution(profiles: &[DryProfile]) -> Distribution {
    let mut s: Vec<f64> = profiles.iter().map(|p| p.score).collect();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    let pct = |p: f64| {
        if n == 0 {
            0.0
        } else {
            s[((n as f64 - 1.0) * p).round() as usize]
        }
    };
    let (min, max) = (
        s.first().copied().unwrap_or(0.0),
        s.last().copied().unwrap_or(0.0),
    );
    let width = (max - min) / 10.0;
    let mut histogram: Vec<(f64, f64, usize)> = (0..10)
        .map(|i| (min + width * i as f64, min + width * (i + 1) as f64, 0))
        .collect();
    for v in &s {
        let i = if width > 0.0 {
            (((v - min) / width) as usize).min(9)
        } else {
            0
        };
        histogram[i].2 += 1;
    }
    Distribution {
        profiles: n,
        scored: s.iter().filter(|v| **v != 0.0).count(),
        mean: if n == 0 {
            0.0
        } else {
            s.iter().sum::<f64>() / n as f64
        },
        min,
        max,
        p50: pct(0.5),
        p90: pct(0.9),
        p99: pct(0.99),
        changed: profiles
            .iter()
            .filter(|p| (p.score - p.current.unwrap_or(0.0)).abs() > 1e-9)
            .count(),
        histogram,
    }
}
