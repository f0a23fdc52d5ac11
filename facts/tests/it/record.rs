//! The facts projection on MariaDB and SQLite: profile state replaced only by newer versions,
//! behaviour events counted once into buckets and rolling counters (current or marked and
//! rolled), merges and un-merges moving behaviour between profiles — and, after each step, the
//! SQL compiled from a condition selects exactly the profiles the evaluator matches on the
//! loaded facts.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use facts::LoadOptions;
use proto::identity::{OaSubscription, ProfileUpdated, Relations, WecomFollow};
use proto::Envelope;
use rules::sql::{self, Backend as SqlBackend, CompileCtx};
use rules::{EvalCtx, Limits, NoRules};
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement, TransactionTrait};
use sea_orm_migration::{MigrationTrait, MigratorTrait};
use serde_json::{json, Value};
use test_support::db::{Backend, TestDb};

const T: &str = "t-facts";

struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(facts::CreateFactsTables)]
    }
}

async fn setup(backend: Backend) -> TestDb {
    let t = TestDb::migrated::<Migrator>(backend).await;
    t
}

fn now() -> DateTime<Utc> {
    "2026-03-31T04:00:00Z".parse().unwrap()
}

fn today() -> NaiveDate {
    facts::local_day(now(), chrono_tz::Asia::Shanghai)
}

fn updated(profile: &str, version: i64, fields: Value, subscribed: bool) -> ProfileUpdated {
    let fields: BTreeMap<String, Value> = serde_json::from_value(fields).unwrap();
    ProfileUpdated {
        profile_id: profile.into(),
        version,
        changed: fields
            .keys()
            .cloned()
            .chain(["relations.oa".to_string()])
            .collect(),
        fields,
        relations: Relations {
            oa_subscriptions: vec![OaSubscription {
                app_id: "wxOA".into(),
                subscribed,
                scene: None,
                changed_at: now(),
            }],
            wecom_follows: vec![WecomFollow {
                corp_id: "ww".into(),
                user_id: "rep1".into(),
                external_userid: Some("wmX".into()),
                remark: None,
                add_way: None,
                state: None,
                added_at: now(),
                deleted_at: None,
                corp_tags: None,
            }],
            group_chats: vec![],
            reachable: Default::default(),
        },
        cause_event: None,
    }
}

fn page_view(days_ago: i64, tags: &[&str]) -> Envelope {
    Envelope::builder(
        "channel.track.page_view",
        T,
        json!({"subject": {"anonymous_id": "a"}, "kind": "page_view", "page": "/p",
               "content": {"id": "c1", "tags": tags}}),
    )
    .occurred_at(now() - Duration::days(days_ago))
    .build()
}

async fn record(db: &DatabaseConnection, profile: &str, env: &Envelope) -> bool {
    let ev = facts::event_fact(env, chrono_tz::Asia::Shanghai);
    let txn = db.begin().await.unwrap();
    facts::ensure_profile(&txn, T, profile, now())
        .await
        .unwrap();
    let new = facts::record_event(&txn, T, profile, &ev, today())
        .await
        .unwrap();
    txn.commit().await.unwrap();
    new
}

/// Each profile's `tag_count` and `content_day` equal what its tag rows and content buckets say.
async fn summary_agrees(db: &DatabaseConnection) {
    let b = db.get_database_backend();
    let read = |sql: &str| {
        let stmt = Statement::from_string(b, sql.to_string());
        async move {
            let mut out = BTreeMap::new();
            for r in db.query_all(stmt).await.unwrap() {
                let p: Vec<u8> = r.try_get_by_index(0).unwrap();
                let n: i64 = r.try_get_by_index(1).unwrap();
                let day: Option<NaiveDate> = r.try_get_by_index(2).unwrap();
                out.insert(String::from_utf8(p).unwrap(), (n, day));
            }
            out
        }
    };
    // Event kinds per rolling window, as the rolling rows hold them now.
    let kinds = |sql: &str| {
        let stmt = Statement::from_string(b, sql.to_string());
        async move {
            let mut out = BTreeMap::new();
            for r in db.query_all(stmt).await.unwrap() {
                let p: Vec<u8> = r.try_get_by_index(0).unwrap();
                let ns: Vec<i64> = (1..5).map(|i| r.try_get_by_index(i).unwrap()).collect();
                out.insert(String::from_utf8(p).unwrap(), ns);
            }
            out
        }
    };
    let in_rows = |col: &str| {
        format!(
            "(SELECT COUNT(*) FROM facts_behaviour_rolling r WHERE r.tenant_id = p.tenant_id \
              AND r.profile_id = p.profile_id AND r.metric LIKE 'e:%' AND r.{col} > 0)"
        )
    };
    assert_eq!(
        kinds("SELECT profile_id, kinds7, kinds30, kinds90, kinds_total FROM facts_profile").await,
        kinds(&format!(
            "SELECT p.profile_id, {}, {}, {}, {} FROM facts_profile p",
            in_rows("last7"),
            in_rows("last30"),
            in_rows("last90"),
            in_rows("total")
        ))
        .await,
        "kept kind counts vs the rolling rows"
    );
    let kept = read("SELECT profile_id, tag_count, content_day FROM facts_profile").await;
    let counted = read(
        "SELECT p.profile_id, \
           (SELECT COUNT(*) FROM facts_tag t WHERE t.tenant_id = p.tenant_id AND t.profile_id = p.profile_id), \
           (SELECT MAX(day) FROM facts_behaviour_daily d WHERE d.tenant_id = p.tenant_id \
              AND d.profile_id = p.profile_id AND d.metric LIKE 'c:%' AND d.cnt > 0) \
         FROM facts_profile p",
    )
    .await;
    assert_eq!(kept, counted, "kept summary vs the rows");
    holders_agree(db).await;
}

/// Each tag's holders, kept and logged, equal its rows; and still do once the log is folded a
/// row at a time.
async fn holders_agree(db: &DatabaseConnection) {
    let b = db.get_database_backend();
    let read = |sql: &str| {
        let stmt = Statement::from_string(b, sql.to_string());
        async move {
            let mut out: BTreeMap<String, i64> = BTreeMap::new();
            for r in db.query_all(stmt).await.unwrap() {
                let tag: Vec<u8> = r.try_get_by_index(0).unwrap();
                let n: i64 = r.try_get_by_index(1).unwrap();
                *out.entry(String::from_utf8(tag).unwrap()).or_default() += n;
            }
            out.retain(|_, n| *n != 0);
            out
        }
    };
    let held = || async {
        let mut kept = read("SELECT tag_id, cnt FROM facts_tag_holders").await;
        for (tag, n) in read("SELECT tag_id, cnt FROM facts_tag_holder_log").await {
            *kept.entry(tag).or_default() += n;
        }
        kept.retain(|_, n| *n != 0);
        kept
    };
    let rows = read("SELECT tag_id, 1 FROM facts_tag").await;
    assert_eq!(
        held().await,
        rows,
        "kept and logged holders vs the tag rows"
    );
    while facts::compact_tag_holders(db, 1).await.unwrap() == 1 {}
    assert_eq!(
        read("SELECT tag_id, cnt FROM facts_tag_holder_log").await,
        BTreeMap::new(),
        "the log is folded"
    );
    assert_eq!(held().await, rows, "folded holders vs the tag rows");
}

/// Evaluator on loaded facts vs compiled SQL (fresh or stale rolling) for `profiles`.
async fn agree(
    db: &DatabaseConnection,
    backend: Backend,
    cond: Value,
    profiles: &[&str],
) -> Vec<String> {
    let doc = json!({"version": 1, "root": cond});
    let (_, expanded) = rules::parse_expanded(&doc, &Limits::default(), &NoRules).unwrap();
    let at = EvalCtx {
        now: now(),
        today: today(),
    };
    let mut by_eval = Vec::new();
    for p in profiles {
        let opts = LoadOptions {
            events_since: Some(today() - Duration::days(400)),
            ..Default::default()
        };
        let f = facts::load_profile(db, T, p, &opts).await.unwrap();
        if rules::evaluate(&expanded, &f, &at) {
            by_eval.push(String::from(*p));
        }
    }
    for rolling_as_of in [None, facts::rolled_to(db, T).await.unwrap()] {
        let ctx = CompileCtx {
            rolling_as_of,
            ..CompileCtx::new(T, &at)
        };
        let b = match backend {
            Backend::MariaDb => SqlBackend::MySql,
            Backend::Sqlite => SqlBackend::Sqlite,
        };
        let (q, values) = sql::build(&sql::compile(&expanded, &ctx), b);
        let rows = db
            .query_all(Statement::from_sql_and_values(
                db.get_database_backend(),
                q,
                values,
            ))
            .await
            .unwrap();
        let mut by_sql: Vec<String> = rows
            .iter()
            .map(|r| String::from_utf8(r.try_get_by_index::<Vec<u8>>(0).unwrap()).unwrap())
            .collect();
        by_sql.sort();
        assert_eq!(by_sql, by_eval, "rolling as of {rolling_as_of:?}");
    }
    by_eval
}

async fn state_versions_and_relations(backend: Backend) {
    let t = setup(backend).await;
    let db = &t.conn;
    let apply = |u: ProfileUpdated| async move {
        let txn = db.begin().await.unwrap();
        let r = facts::apply_profile(&txn, T, &u, now()).await.unwrap();
        txn.commit().await.unwrap();
        r
    };
    let a = apply(updated("p1", 2, json!({"contact.city": "Hangzhou", "needs.budget": 5000, "preferences.content": ["video", "case"]}), true)).await.unwrap();
    assert!(a.first && a.relations_changed);
    assert!(a.changed_keys.contains(&"contact.city".to_string()));
    // An older or repeated version changes nothing.
    assert!(
        apply(updated("p1", 1, json!({"contact.city": "Old"}), false))
            .await
            .is_none()
    );
    assert!(
        apply(updated("p1", 2, json!({"contact.city": "Old"}), false))
            .await
            .is_none()
    );
    apply(updated("p2", 1, json!({"contact.city": "Suzhou"}), false))
        .await
        .unwrap();
    let f = facts::load_profile(db, T, "p1", &LoadOptions::default())
        .await
        .unwrap();
    assert_eq!(f.properties["preferences.content"].len(), 2);
    assert_eq!(f.relations.len(), 2, "subscribed OA and the active follow");
    let m = agree(db, backend, json!({"type": "and", "children": [
        {"type": "property", "key": "contact.city", "value_type": "string", "op": "eq", "value": "Hangzhou"},
        {"type": "wechat", "state": "oa_subscribed"},
        {"type": "property", "key": "preferences.content", "value_type": "string", "op": "eq", "value": "case"}]}), &["p1", "p2"]).await;
    assert_eq!(m, vec!["p1"]);
    // A newer version replaces the state.
    let b = apply(updated("p1", 3, json!({"contact.city": "Suzhou"}), false))
        .await
        .unwrap();
    assert!(!b.first);
    let m = agree(
        db,
        backend,
        json!({"type": "wechat", "state": "oa_subscribed"}),
        &["p1", "p2"],
    )
    .await;
    assert!(m.is_empty());
    t.cleanup().await;
}

async fn behaviour_counted_once_rolled_merged_and_split(backend: Backend) {
    let t = setup(backend).await;
    let db = &t.conn;
    let a_events: Vec<Envelope> = [0, 1, 8, 40]
        .iter()
        .map(|d| page_view(*d, &["case_study"]))
        .collect();
    for e in &a_events {
        assert!(record(db, "pA", e).await);
    }
    assert!(
        !record(db, "pA", &a_events[0]).await,
        "a redelivered event counts once"
    );
    let b_event = page_view(2, &[]);
    record(db, "pB", &b_event).await;
    summary_agrees(db).await;
    // Tags, one at a time and in bulk: the profiles' counts follow.
    let txn = db.begin().await.unwrap();
    facts::set_tag(&txn, T, "pA", "vip").await.unwrap();
    facts::set_tag(&txn, T, "pA", "vip").await.unwrap();
    facts::set_tag(&txn, T, "pB", "lead").await.unwrap();
    let both = vec!["pA".to_string(), "pB".to_string()];
    facts::set_tag_many(&txn, T, &both, "expo").await.unwrap();
    facts::unset_tag_many(&txn, T, &both[1..], "expo")
        .await
        .unwrap();
    facts::set_tag_many(&txn, T, &both[1..], "vip")
        .await
        .unwrap();
    facts::unset_tag(&txn, T, "pB", "lead").await.unwrap();
    txn.commit().await.unwrap();
    summary_agrees(db).await;
    let three_in_30 = json!({"type": "behaviour", "event": "track.page_view", "count": {"op": "gte", "value": 3}, "window": {"type": "last", "days": 30}});
    let case_in_7 = json!({"type": "behaviour", "content_tag": "case_study", "count": {"op": "gte", "value": 2}, "window": {"type": "last", "days": 7}});
    let filtered = json!({"type": "behaviour", "event": "track.page_view", "filters": [{"key": "page", "value_type": "string", "op": "eq", "value": "/p"}], "count": {"op": "gte", "value": 4}, "window": {"type": "all_time"}});
    let kinds_in_30 = json!({"type": "distinct", "of": "event_kinds", "count": {"op": "gte", "value": 1}, "window": {"type": "last", "days": 30}});
    let no_kind_in_7 = json!({"type": "distinct", "of": "event_kinds", "count": {"op": "eq", "value": 0}, "window": {"type": "last", "days": 7}});
    // Before any roll the counters are not current: SQL sums the buckets.
    assert_eq!(facts::rolled_to(db, T).await.unwrap(), None);
    assert_eq!(
        agree(db, backend, three_in_30.clone(), &["pA", "pB"]).await,
        vec!["pA"]
    );
    let r = facts::roll(db, T, today(), 1, now()).await.unwrap();
    assert!(r.rolled);
    assert_eq!(facts::rolled_to(db, T).await.unwrap(), Some(today()));
    // Current now: new events add to them directly, and SQL reads them.
    record(db, "pB", &page_view(3, &["case_study"])).await;
    record(db, "pB", &page_view(0, &["case_study"])).await;
    summary_agrees(db).await;
    for c in [
        &three_in_30,
        &case_in_7,
        &filtered,
        &kinds_in_30,
        &no_kind_in_7,
    ] {
        agree(db, backend, c.clone(), &["pA", "pB"]).await;
    }
    assert_eq!(
        agree(db, backend, case_in_7.clone(), &["pA", "pB"]).await,
        vec!["pA", "pB"]
    );
    // Merge B into A: one person with every event.
    let txn = db.begin().await.unwrap();
    facts::merge_profiles(&txn, T, "pA", "pB", today(), now())
        .await
        .unwrap();
    txn.commit().await.unwrap();
    summary_agrees(db).await;
    let f = facts::load_profile(db, T, "pA", &LoadOptions::default())
        .await
        .unwrap();
    assert_eq!(f.daily["e:track.page_view"].values().sum::<i64>(), 7);
    assert_eq!(
        agree(db, backend, three_in_30.clone(), &["pA", "pB"]).await,
        vec!["pA"]
    );
    // Un-merge: B's events go back.
    let moved = vec![b_event.id.to_string()];
    let txn = db.begin().await.unwrap();
    let n = facts::split_events(&txn, T, "pA", "pB", &moved, today(), now())
        .await
        .unwrap();
    txn.commit().await.unwrap();
    assert_eq!(n, 1);
    summary_agrees(db).await;
    let f = facts::load_profile(db, T, "pB", &LoadOptions::default())
        .await
        .unwrap();
    assert_eq!(f.daily["e:track.page_view"].values().sum::<i64>(), 1);
    for c in [
        &three_in_30,
        &case_in_7,
        &filtered,
        &kinds_in_30,
        &no_kind_in_7,
    ] {
        agree(db, backend, c.clone(), &["pA", "pB"]).await;
    }
    // Raw events past the retention go; their counts stay in the buckets.
    record(db, "pB", &page_view(500, &[])).await;
    let before = facts::load_profile(db, T, "pB", &LoadOptions::default())
        .await
        .unwrap();
    let pruned = facts::prune_events(db, T, today() - Duration::days(400), 100)
        .await
        .unwrap();
    assert_eq!(pruned, 1);
    let after = facts::load_profile(
        db,
        T,
        "pB",
        &LoadOptions {
            events_since: Some(today() - Duration::days(1000)),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(after.daily, before.daily);
    assert!(after
        .events
        .iter()
        .all(|e| e.day > today() - Duration::days(400)));
    t.cleanup().await;
}

/// The rolling rows of `profile`: metric → (last7, last30, last90, total).
async fn rolling_rows(db: &DatabaseConnection, profile: &str) -> BTreeMap<String, [i64; 4]> {
    let st = Statement::from_sql_and_values(
        db.get_database_backend(),
        "SELECT metric, last7, last30, last90, total FROM facts_behaviour_rolling \
         WHERE tenant_id = ? AND profile_id = ?",
        [T.into(), profile.into()],
    );
    db.query_all(st)
        .await
        .unwrap()
        .iter()
        .map(|r| {
            let m: Vec<u8> = r.try_get_by_index(0).unwrap();
            let n = |i| i64::from(r.try_get_by_index::<i32>(i).unwrap());
            let total: i64 = r.try_get_by_index(4).unwrap();
            (String::from_utf8(m).unwrap(), [n(1), n(2), n(3), total])
        })
        .filter(|(_, v)| v.iter().any(|n| *n != 0))
        .collect()
}

async fn rolling_steps_forward_like_a_rebuild(backend: Backend) {
    let t = setup(backend).await;
    let db = &t.conn;
    // Events on days that leave the 7-, 30- and 90-day windows over the next days.
    for (p, ago) in [
        ("pA", 0),
        ("pA", 6),
        ("pA", 7),
        ("pA", 29),
        ("pA", 30),
        ("pB", 89),
        ("pB", 90),
        ("pB", 5),
        ("pB", 28),
    ] {
        record(db, p, &page_view(ago, &["case_study"])).await;
    }
    facts::roll(db, T, today(), 1, now()).await.unwrap();
    for step in 1..=3 {
        // A new day: its events only mark their profiles until the roll.
        let day_now = now() + Duration::days(step);
        let day = facts::local_day(day_now, chrono_tz::Asia::Shanghai);
        let ev = facts::event_fact(&page_view(0, &[]), chrono_tz::Asia::Shanghai);
        let ev = rules::EventFact { day, ..ev };
        let txn = db.begin().await.unwrap();
        facts::record_event(&txn, T, "pA", &ev, day).await.unwrap();
        txn.commit().await.unwrap();
        let r = facts::roll(db, T, day, 1, day_now).await.unwrap();
        assert!(r.rolled);
        assert_eq!(facts::rolled_to(db, T).await.unwrap(), Some(day));
        for p in ["pA", "pB"] {
            let f = facts::load_profile(db, T, p, &LoadOptions::default())
                .await
                .unwrap();
            let want: BTreeMap<String, [i64; 4]> = f
                .rolling(day)
                .into_iter()
                .map(|(m, r)| (m, [r.last7, r.last30, r.last90, r.total]))
                .filter(|(_, v)| v.iter().any(|n| *n != 0))
                .collect();
            assert_eq!(rolling_rows(db, p).await, want, "{p} on step {step}");
        }
        // The kind counts follow the rows out of each window.
        summary_agrees(db).await;
    }
    let kinds7: i64 = db
        .query_one(Statement::from_string(
            db.get_database_backend(),
            "SELECT kinds7 FROM facts_profile WHERE profile_id = 'pB'".to_string(),
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index(0)
        .unwrap();
    assert_eq!(
        kinds7, 0,
        "pB's page view of 5 days ago left the 7-day window"
    );
    t.cleanup().await;
}

/// Everything the projection holds of `profile`: facts, raw events and rolling rows.
async fn snapshot(db: &DatabaseConnection, profile: &str) -> String {
    let opts = LoadOptions {
        events_since: Some(today() - Duration::days(1000)),
        ..Default::default()
    };
    let f = facts::load_profile(db, T, profile, &opts).await.unwrap();
    format!(
        "{:?} {:?} {:?}",
        f.daily,
        f.events,
        rolling_rows(db, profile).await
    )
}

async fn batch_recording_equals_one_by_one(backend: Backend) {
    let (one, batch) = (setup(backend).await, setup(backend).await);
    let p = |i: usize| ["pA", "pB", "pC"][i % 3];
    let make = |n: usize| -> Vec<(&'static str, Envelope)> {
        (0..n)
            .map(|i| {
                (
                    p(i),
                    page_view((i % 4) as i64 * 5, &["case_study", "pricing"][..i % 3]),
                )
            })
            .collect()
    };
    // Recorded before in both: the batch must see it as old.
    let earlier = (p(0), page_view(1, &[]));
    for t in [&one, &batch] {
        assert!(record(&t.conn, earlier.0, &earlier.1).await);
    }
    let phases = [make(10), make(12)];
    for (k, events) in phases.iter().enumerate() {
        if k == 1 {
            // Second phase with current counters: the batch bumps them instead of marking.
            for t in [&one, &batch] {
                facts::roll(&t.conn, T, today(), 1, now()).await.unwrap();
            }
        }
        let mut all: Vec<(&str, Envelope)> = events.clone();
        all.push(earlier.clone());
        all.push(all[0].clone());
        let mut want = Vec::new();
        for (pr, e) in &all {
            want.push(record(&one.conn, pr, e).await);
        }
        let evs: Vec<(&str, rules::EventFact)> = all
            .iter()
            .map(|(pr, e)| (*pr, facts::event_fact(e, chrono_tz::Asia::Shanghai)))
            .collect();
        let pairs: Vec<facts::ProfileEvent> = evs.iter().map(|(pr, ev)| (*pr, ev)).collect();
        let txn = batch.conn.begin().await.unwrap();
        let added = facts::ensure_locked_many(&txn, T, &["pC", "pA", "pB", "pA"], now())
            .await
            .unwrap();
        let rolling = facts::Rolling::AsOf {
            today: today(),
            rolled_to: None,
        };
        let got = facts::record_events(&txn, T, &pairs, rolling)
            .await
            .unwrap();
        txn.commit().await.unwrap();
        assert_eq!(got, want, "phase {k}: which events are new");
        let expect_added: Vec<&str> = if k == 0 { vec!["pB", "pC"] } else { vec![] };
        assert_eq!(
            added.iter().map(String::as_str).collect::<Vec<_>>(),
            expect_added
        );
        if k == 0 {
            // Not rolled yet: the counters of every profile are marked, then rebuilt.
            for t in [&one, &batch] {
                facts::roll(&t.conn, T, today(), 1, now()).await.unwrap();
            }
        }
        for pr in ["pA", "pB", "pC"] {
            assert_eq!(
                snapshot(&batch.conn, pr).await,
                snapshot(&one.conn, pr).await,
                "phase {k}, {pr}"
            );
        }
    }
    one.cleanup().await;
    batch.cleanup().await;
}

test_support::on_both_backends!(
    state_versions_and_relations,
    behaviour_counted_once_rolled_merged_and_split,
    rolling_steps_forward_like_a_rebuild,
    batch_recording_equals_one_by_one
);
