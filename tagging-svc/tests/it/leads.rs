//! What scoring says of leads, in tagging's rules, on MariaDB and SQLite: `score.<model>` and
//! `lead.stage` from `lead.score_changed` / `lead.stage_changed` tag and untag in real time, an
//! older message changes nothing, a decaying score leaves its rule when decay carries it below the
//! bound (scheduler), and a message about a profile the projection does not hold adds nothing.

use chrono::{DateTime, Duration, Utc};
use proto::identity::{ProfileUpdated, Relations};
use proto::scoring::{ActorKind, ScoreCause, ScoreChanged, ScoreFold, ScoreReason, StageChanged};
use proto::tagging::TagChange;
use proto::Envelope;
use sea_orm::{ConnectionTrait, Statement};
use serde_json::json;
use tagging_svc::store::tagger::Handled;
use test_support::db::Backend;

use crate::tagger::{handle, has, outbox_changes, rule, setup, start, tag, visit, Setup, T};

fn score(profile: &str, new: f64, fold: Option<ScoreFold>, at: DateTime<Utc>) -> Envelope {
    let c = ScoreChanged {
        profile_id: profile.into(),
        model_id: "m-engagement".into(),
        model: "engagement".into(),
        old: 0.0,
        new,
        reason: ScoreReason {
            cause: ScoreCause::Event,
            rule_ids: vec![],
            event_id: None,
            event_kind: None,
            cause_id: None,
        },
        at,
        fold,
    };
    Envelope::of(T, &c).occurred_at(at).build()
}

fn stage(profile: &str, to: &str, history_id: i64, at: DateTime<Utc>) -> Envelope {
    let c = StageChanged {
        profile_id: profile.into(),
        from: None,
        to: to.into(),
        actor_kind: ActorKind::Rule,
        actor: "auto".into(),
        reason: "entry condition".into(),
        history_id,
        owner: None,
        at,
    };
    Envelope::of(T, &c).occurred_at(at).build()
}

fn updated(profile: &str, version: i64) -> Envelope {
    let fields = std::collections::BTreeMap::from([
        ("contact.city".to_string(), json!("Hangzhou")),
        ("lead.stage".to_string(), json!("customer")),
        ("score.engagement".to_string(), json!(0)),
    ]);
    let u = ProfileUpdated {
        profile_id: profile.into(),
        version,
        changed: fields.keys().cloned().collect(),
        fields,
        relations: Relations::default(),
        cause_event: None,
    };
    Envelope::of(T, &u).build()
}

async fn profiles_held(s: &Setup, profile: &str) -> i64 {
    let db = &s.db.conn;
    let row = db
        .query_one(Statement::from_sql_and_values(
            db.get_database_backend(),
            "SELECT COUNT(*) FROM facts_profile WHERE tenant_id = ? AND profile_id = ?",
            [T.into(), profile.into()],
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index::<i64>(0).unwrap()
}

async fn scores_and_stages_tag_in_real_time(backend: Backend) {
    let s = setup(backend).await;
    let ready = tag(&s, "sales", "multi", "sales ready").await;
    let r = rule(
        &s,
        &ready,
        json!({"type": "and", "children": [
            {"type": "property", "key": "score.engagement", "value_type": "number",
             "op": "gte", "value": 60},
            {"type": "property", "key": "lead.stage", "value_type": "string",
             "op": "eq", "value": "sql"}]}),
        "add_remove",
    )
    .await;
    let now = start();
    handle(&s, &visit("p1", now, &[])).await;
    assert!(handle(&s, &score("p1", 70.0, None, now)).await.is_empty());
    assert!(!has(&s.db.conn, "p1", &ready).await, "no stage yet");
    let c = handle(&s, &stage("p1", "sql", 7, now)).await;
    assert_eq!(c.len(), 1);
    assert_eq!(
        (c[0].change, c[0].rule_id.as_deref()),
        (TagChange::Added, Some(r.as_str()))
    );
    assert!(has(&s.db.conn, "p1", &ready).await);
    // An older score (a redelivery from before) changes nothing.
    let old = score("p1", 10.0, None, now - Duration::hours(1));
    assert!(handle(&s, &old).await.is_empty());
    assert!(has(&s.db.conn, "p1", &ready).await);
    // Identity's states replace its own fields only, and a field named like scoring's is not
    // read.
    for version in [1, 2] {
        let c = handle(&s, &updated("p1", version)).await;
        assert!(c.is_empty(), "state {version}");
        assert!(has(&s.db.conn, "p1", &ready).await, "state {version}");
    }
    // The score falls: the tag goes.
    let c = handle(&s, &score("p1", 40.0, None, now + Duration::seconds(2))).await;
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].change, TagChange::Removed);
    // Back up, and the lead moves on to another stage: gone again.
    handle(&s, &score("p1", 65.0, None, now + Duration::seconds(3))).await;
    assert!(has(&s.db.conn, "p1", &ready).await);
    let c = handle(
        &s,
        &stage("p1", "opportunity", 8, now + Duration::seconds(4)),
    )
    .await;
    assert_eq!(c[0].change, TagChange::Removed);
    assert_eq!(
        outbox_changes(&s.db.conn)
            .await
            .iter()
            .map(|c| c.change)
            .collect::<Vec<_>>(),
        vec![
            TagChange::Added,
            TagChange::Removed,
            TagChange::Added,
            TagChange::Removed
        ]
    );
    s.db.cleanup().await;
}

/// A tag "engaged" set by a rule for engagement scores of at least `bound`.
async fn engaged_from(s: &Setup, bound: f64) -> String {
    let engaged = tag(s, "intent", "multi", "engaged").await;
    rule(
        s,
        &engaged,
        json!({"type": "property", "key": "score.engagement", "value_type": "number",
               "op": "gte", "value": bound}),
        "add_remove",
    )
    .await;
    engaged
}

async fn decay_carries_a_score_out_of_its_rule(backend: Backend) {
    let s = setup(backend).await;
    let engaged = engaged_from(&s, 50.0).await;
    let now = start();
    handle(&s, &visit("p2", now, &[])).await;
    // 10 held + 80 halving every 10 days: 90 now, 50 ten days on.
    let fold = ScoreFold {
        held: 10.0,
        decaying: 80.0,
        half_life_days: Some(10.0),
    };
    let c = handle(&s, &score("p2", 90.0, Some(fold), now)).await;
    assert_eq!(c[0].change, TagChange::Added);
    s.clock.set(now + Duration::days(9));
    s.tagger.tick().await.unwrap();
    assert!(
        has(&s.db.conn, "p2", &engaged).await,
        "52.9 after nine days"
    );
    s.clock.set(now + Duration::days(10) + Duration::hours(1));
    assert!(s.tagger.tick().await.unwrap() >= 1);
    assert!(
        !has(&s.db.conn, "p2", &engaged).await,
        "below 50 after ten days and an hour"
    );
    s.db.cleanup().await;
}

async fn lead_messages_for_unknown_profiles_add_nothing(backend: Backend) {
    let s = setup(backend).await;
    let engaged = engaged_from(&s, 1.0).await;
    let now = start();
    let got = s
        .tagger
        .handle(&score("gone", 5.0, None, now))
        .await
        .unwrap();
    assert_eq!(got, Handled::Done(vec![]));
    let got = s
        .tagger
        .handle(&stage("gone", "sql", 1, now))
        .await
        .unwrap();
    assert_eq!(got, Handled::Done(vec![]));
    assert_eq!(profiles_held(&s, "gone").await, 0, "no profile made up");
    assert!(!has(&s.db.conn, "gone", &engaged).await);
    s.db.cleanup().await;
}

test_support::on_both_backends!(
    scores_and_stages_tag_in_real_time,
    decay_carries_a_score_out_of_its_rule,
    lead_messages_for_unknown_profiles_add_nothing
);
