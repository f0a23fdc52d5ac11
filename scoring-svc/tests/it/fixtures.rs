//! Scoring-svc fixtures: a migrated database with a [`Scorer`] on a hand-moved clock, the bus
//! messages scoring consumes (as identity-svc and tagging-svc publish them), definitions, and
//! probes of what it wrote.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use proto::identity::{
    IdentityMerged, IdentityUnmerged, LinkRule, ProfileResolved, ProfileUpdated, Relations,
    UnmergeKind, WecomFollow,
};
use proto::sdk::{Content, Subject, TrackKind, Tracked};
use proto::tagging::{TagChange, TagChanged, TagSource, TagsUnmerged};
use proto::Envelope;
use scoring_svc::clock::ManualClock;
use scoring_svc::domain::defs::{MachineSpec, ModelSpec, RuleSpec, TriggerSpec};
use scoring_svc::store::cache::DefsCache;
use scoring_svc::store::engine::EngineConfig;
use scoring_svc::store::{Outcome, Scorer};
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use serde_json::{json, Value};

use test_support::db::{Backend, TestDb};

/// A migrated scoring database and a scorer reading `clock`.
pub struct ScoringDb {
    pub t: TestDb,
    pub clock: ManualClock,
    pub scorer: Scorer,
}

/// The instant scoring tests start at.
pub fn start() -> DateTime<Utc> {
    "2026-03-02T02:00:00Z".parse().expect("instant")
}

impl ScoringDb {
    /// A fresh database on `backend`, migrated, with a scorer at [`start`].
    pub async fn new(backend: Backend) -> Self {
        let t = TestDb::migrated::<scoring_svc::store::Migrator>(backend).await;
        let clock = ManualClock::new(start());
        let scorer = Scorer::new(
            t.conn.clone(),
            std::sync::Arc::new(clock.clone()),
            DefsCache::new(),
            EngineConfig::default(),
        );
        ScoringDb { t, clock, scorer }
    }

    /// A second scorer on its own pool (another service instance) sharing the clock.
    pub async fn another_scorer(&self) -> Scorer {
        Scorer::new(
            self.t.another_connection().await,
            std::sync::Arc::new(self.clock.clone()),
            DefsCache::new(),
            EngineConfig::default(),
        )
    }

    pub fn db(&self) -> &DatabaseConnection {
        &self.t.conn
    }

    /// Applies a message; panics on an error.
    pub async fn handle(&self, env: &Envelope) -> Outcome {
        self.scorer.handle(env).await.expect("message applied")
    }

    pub async fn cleanup(self) {
        self.t.cleanup().await
    }

    /// Creates a model.
    pub async fn model(&self, tenant: &str, spec: Value) -> String {
        let spec: ModelSpec = serde_json::from_value(spec).expect("model spec");
        let m = scoring_svc::store::defs::create_model(
            self.db(),
            tenant,
            spec,
            "test",
            self.clock_now(),
        )
        .await
        .expect("model created");
        self.scorer.defs().invalidate(tenant);
        m.id
    }

    /// Adds a rule to `tenant`'s model.
    pub async fn rule(&self, tenant: &str, model_id: &str, spec: Value) -> String {
        let spec: RuleSpec = serde_json::from_value(spec).expect("rule spec");
        let r = scoring_svc::store::defs::create_rule_in(
            self.db(),
            tenant,
            model_id,
            spec,
            "test",
            self.clock_now(),
        )
        .await
        .expect("rule created");
        self.scorer.defs().invalidate(tenant);
        r.id
    }

    /// Saves the stage machine.
    pub async fn machine(&self, tenant: &str, spec: Value) {
        let spec: MachineSpec = serde_json::from_value(spec).expect("machine spec");
        scoring_svc::store::defs::put_machine(self.db(), tenant, spec, "test", self.clock_now())
            .await
            .expect("machine saved");
        self.scorer.defs().invalidate(tenant);
    }

    /// Creates a trigger.
    pub async fn trigger(&self, tenant: &str, spec: Value) -> String {
        let spec: TriggerSpec = serde_json::from_value(spec).expect("trigger spec");
        let t = scoring_svc::store::defs::create_trigger(
            self.db(),
            tenant,
            spec,
            "test",
            self.clock_now(),
        )
        .await
        .expect("trigger created");
        self.scorer.defs().invalidate(tenant);
        t.id
    }

    fn clock_now(&self) -> DateTime<Utc> {
        use scoring_svc::clock::Clock;
        self.clock.now()
    }

    /// A profile's exact score in model `key` now (0 when it has none).
    pub async fn score(&self, tenant: &str, profile: &str, key: &str) -> f64 {
        scoring_svc::store::queries::lead_scores(&self.scorer, tenant, profile)
            .await
            .expect("scores read")
            .and_then(|l| l.scores.into_iter().find(|s| s.model == key))
            .map_or(0.0, |s| s.score)
    }

    /// A profile's stage.
    pub async fn stage(&self, tenant: &str, profile: &str) -> String {
        scoring_svc::store::queries::lead(self.db(), tenant, profile)
            .await
            .expect("lead read")
            .expect("lead exists")
            .stage
    }

    /// Outbox rows of `routing_key`, their payloads in order.
    pub async fn outbox(&self, routing_key: &str) -> Vec<Value> {
        let db = self.db();
        let rows = db
            .query_all(Statement::from_sql_and_values(
                db.get_database_backend(),
                "SELECT body FROM bus_outbox WHERE routing_key = ? ORDER BY id",
                [routing_key.into()],
            ))
            .await
            .expect("outbox read");
        rows.iter()
            .map(|r| {
                let body: String = r.try_get_by_index(0).expect("body");
                Envelope::from_bytes(body.as_bytes())
                    .expect("envelope")
                    .payload
            })
            .collect()
    }

    /// Runs a statement with bound values.
    pub async fn count_exec(&self, sql: &str, values: Vec<sea_orm::Value>) -> u64 {
        let db = self.db();
        db.execute(Statement::from_sql_and_values(
            db.get_database_backend(),
            sql,
            values,
        ))
        .await
        .expect("statement")
        .rows_affected()
    }

    /// Runs a `SELECT COUNT(*)` with bound values.
    pub async fn count(&self, sql: &str, values: Vec<sea_orm::Value>) -> i64 {
        let db = self.db();
        let row = db
            .query_one(Statement::from_sql_and_values(
                db.get_database_backend(),
                sql,
                values,
            ))
            .await
            .expect("count query")
            .expect("one row");
        row.try_get_by_index::<i64>(0).expect("an integer")
    }
}

/// A tracked event as the gateway publishes it (`channel.track.<kind>`); `id` makes the message
/// id deterministic (the SDK's event id).
pub fn tracked(
    tenant: &str,
    kind: TrackKind,
    at: DateTime<Utc>,
    id: &str,
    content_tags: &[&str],
    props: Value,
) -> Envelope {
    let t = Tracked {
        subject: Subject {
            anonymous_id: Some("visitor".into()),
            ..Default::default()
        },
        kind,
        name: None,
        page: Some("/p".into()),
        content: (!content_tags.is_empty()).then(|| Content {
            id: format!("c-{id}"),
            tags: content_tags.iter().map(|s| s.to_string()).collect(),
        }),
        properties: serde_json::from_value(props).unwrap_or_default(),
        event_id: Some(id.into()),
    };
    Envelope::builder(kind.routing_key(), tenant, json!(t))
        .occurred_at(at)
        .dedupe_key(id)
        .build()
}

/// `profile.resolved` for `event` and `profile` (a message of its own: identity's outbox id).
pub fn resolved(profile: &str, event: &Envelope) -> Envelope {
    let p = ProfileResolved {
        profile_id: profile.into(),
        created: false,
        event: event.clone(),
        identifiers: Vec::new(),
    };
    Envelope::of(&event.tenant_id, &p)
        .occurred_at(event.occurred_at)
        .build()
}

/// `identity.merged`.
pub fn merged(tenant: &str, survivor: &str, absorbed: &[&str]) -> Envelope {
    let m = IdentityMerged {
        survivor: survivor.into(),
        absorbed: absorbed.iter().map(|s| s.to_string()).collect(),
        rule: LinkRule::Unionid,
        evidence_event: None,
        operator: None,
    };
    Envelope::of(tenant, &m).build()
}

/// `tag.unmerged` (an `identity.unmerged` as tagging applied it, tag sets left as they are)
/// giving `restored` back the events `moved`.
pub fn unmerged(tenant: &str, survivor: &str, restored: &str, moved: &[&Envelope]) -> Envelope {
    let u = IdentityUnmerged {
        kind: UnmergeKind::Unmerge,
        survivor: survivor.into(),
        restored: vec![restored.into()],
        identifiers: Vec::new(),
        merge_id: Some(1),
        operator: "ops".into(),
        reason: "wrong merge".into(),
        moved_events: moved.iter().map(|e| e.id).collect(),
        states: Vec::new(),
    };
    let t = TagsUnmerged {
        unmerged: u,
        tags: BTreeMap::new(),
        changes: Vec::new(),
        at: start(),
    };
    Envelope::of(tenant, &t).build()
}

/// `profile.updated` with `fields` and, when `rep` is given, an active WeCom follow by that rep.
pub fn updated(
    tenant: &str,
    profile: &str,
    version: i64,
    fields: Value,
    rep: Option<&str>,
) -> Envelope {
    let fields: BTreeMap<String, Value> = serde_json::from_value(fields).expect("fields");
    let u = ProfileUpdated {
        profile_id: profile.into(),
        version,
        changed: fields
            .keys()
            .cloned()
            .chain(["relations.wecom".to_string()])
            .collect(),
        fields,
        relations: Relations {
            wecom_follows: rep
                .map(|r| WecomFollow {
                    corp_id: "wwcorp".into(),
                    user_id: r.into(),
                    external_userid: Some(format!("wm-{profile}")),
                    remark: None,
                    add_way: None,
                    state: None,
                    added_at: start(),
                    deleted_at: None,
                    corp_tags: None,
                })
                .into_iter()
                .collect(),
            ..Default::default()
        },
        cause_event: None,
    };
    Envelope::of(tenant, &u).build()
}

/// `tag.changed`.
pub fn tag_changed(
    tenant: &str,
    profile: &str,
    tag: &str,
    added: bool,
    at: DateTime<Utc>,
) -> Envelope {
    let t = TagChanged {
        profile_id: profile.into(),
        tag_id: tag.into(),
        tag_name: tag.into(),
        group_id: None,
        change: if added {
            TagChange::Added
        } else {
            TagChange::Removed
        },
        source: TagSource::Manual,
        rule_id: None,
        actor: Some("rep".into()),
        at,
    };
    Envelope::of(tenant, &t).build()
}

/// Every route of scoring's internal API with a plausible method and path (ids nobody has), for
/// the tests that call each one.
pub const API_ROUTES: &[(&str, &str)] = &[
    ("POST", "/v1/models"),
    ("GET", "/v1/models"),
    ("GET", "/v1/models/m1"),
    ("PATCH", "/v1/models/m1"),
    ("POST", "/v1/models/m1/rules"),
    ("GET", "/v1/models/m1/rules"),
    ("POST", "/v1/models/m1/recompute"),
    ("GET", "/v1/rules/r1"),
    ("PUT", "/v1/rules/r1"),
    ("DELETE", "/v1/rules/r1"),
    ("GET", "/v1/stage-machine"),
    ("PUT", "/v1/stage-machine"),
    ("POST", "/v1/triggers"),
    ("GET", "/v1/triggers"),
    ("GET", "/v1/triggers/t1"),
    ("PUT", "/v1/triggers/t1"),
    ("DELETE", "/v1/triggers/t1"),
    ("GET", "/v1/profiles/p1/scores"),
    ("GET", "/v1/profiles/p1/ledger"),
    ("GET", "/v1/profiles/p1/stage-history"),
    ("GET", "/v1/profiles/p1/firings"),
    ("GET", "/v1/profiles/p1/slas"),
    ("POST", "/v1/profiles/p1/stage"),
    ("POST", "/v1/profiles/p1/contacted"),
    ("POST", "/v1/profiles/p1/adjustments"),
    ("GET", "/v1/leaderboard"),
    ("GET", "/v1/customers"),
    ("POST", "/v1/customers/query"),
    ("POST", "/v1/dry-run"),
    ("GET", "/v1/jobs/j1"),
    ("GET", "/v1/analytics/stages"),
];
