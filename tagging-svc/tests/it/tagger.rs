//! tagging-svc's real-time path on MariaDB and SQLite: behaviour events counted once into the
//! facts projection, rules evaluated on each event (only those the event can change), tags added
//! and removed with `tag.changed` in the outbox, a "3 visits in 7 days" tag leaving when the
//! window passes without any new event (moved clock), chained rules settling, single-select
//! groups, manual tags next to rule tags, and merges / un-merges moving tags and behaviour.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use proto::identity::{IdentityMerged, IdentityUnmerged, LinkRule, ProfileResolved, UnmergeKind};
use proto::tagging::{TagChange, TagChanged};
use proto::Envelope;
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use serde_json::{json, Value};
use tagging_svc::clock::ManualClock;
use tagging_svc::store::catalog::{self, NewGroup, NewTag};
use tagging_svc::store::rules::{self as tag_rules, RuleInput};
use tagging_svc::store::tagger::{Handled, Tagger};
use test_support::db::{Backend, TestDb};

pub(crate) const T: &str = "t-tag";

pub(crate) struct Setup {
    pub(crate) db: TestDb,
    pub(crate) clock: ManualClock,
    pub(crate) tagger: Tagger,
}

pub(crate) fn start() -> DateTime<Utc> {
    // 10:00 in Beijing.
    "2026-06-10T02:00:00Z".parse().unwrap()
}

pub(crate) async fn setup(backend: Backend) -> Setup {
    let db = TestDb::migrated::<tagging_svc::store::Migrator>(backend).await;
    let clock = ManualClock::new(start());
    let cfg = tagging_svc::Config::new(
        platform::config::HttpConfig {
            bind: "127.0.0.1:0".parse().unwrap(),
            workers: 1,
        },
        db.cfg.clone(),
    );
    let tagger = tagging_svc::tagger(db.conn.clone(), cfg, Arc::new(clock.clone()));
    Setup { db, clock, tagger }
}

pub(crate) async fn tag(s: &Setup, group: &str, selection: &str, name: &str) -> String {
    let db = &s.db.conn;
    let groups = catalog::groups(db, T, None, 500).await.unwrap();
    let gid = match groups.iter().find(|g| g.group.name == group) {
        Some(g) => g.group.id.clone(),
        None => {
            catalog::create_group(
                db,
                NewGroup {
                    tenant_id: T.into(),
                    name: group.into(),
                    selection: selection.into(),
                    sync_wecom: false,
                    corp_id: None,
                    created_by: "ops".into(),
                },
            )
            .await
            .unwrap()
            .id
        }
    };
    catalog::create_tag(
        db,
        NewTag {
            tenant_id: T.into(),
            group_id: gid,
            name: name.into(),
            description: String::new(),
            created_by: "ops".into(),
        },
    )
    .await
    .unwrap()
    .id
}

pub(crate) async fn rule(s: &Setup, tag_id: &str, root: Value, mode: &str) -> String {
    let r = tag_rules::create(
        &s.db.conn,
        RuleInput {
            tenant_id: T.into(),
            tag_id: tag_id.into(),
            name: format!("rule for {tag_id}"),
            condition: json!({"version": 1, "root": root}),
            mode: mode.into(),
            enabled: true,
            operator: "ops".into(),
        },
        &rules::Limits::default(),
    )
    .await
    .unwrap();
    s.tagger.engine.rules.invalidate(T);
    r.id
}

pub(crate) fn visit(profile: &str, at: DateTime<Utc>, tags: &[&str]) -> Envelope {
    let event = Envelope::builder(
        "channel.track.page_view",
        T,
        json!({"subject": {"anonymous_id": "a"}, "kind": "page_view", "page": "/cases",
               "content": {"id": "c", "tags": tags}}),
    )
    .occurred_at(at)
    .build();
    let p = ProfileResolved {
        profile_id: profile.into(),
        created: false,
        event,
        identifiers: vec![],
    };
    Envelope::of(T, &p).build()
}

pub(crate) async fn handle(s: &Setup, env: &Envelope) -> Vec<TagChanged> {
    match s.tagger.handle(env).await.unwrap() {
        Handled::Done(c) => c,
        other => panic!("expected an effect, got {other:?}"),
    }
}

pub(crate) async fn has(db: &DatabaseConnection, profile: &str, tag: &str) -> bool {
    let st = Statement::from_sql_and_values(
        db.get_database_backend(),
        match db.get_database_backend() {
            sea_orm::DatabaseBackend::MySql => {
                "SELECT COUNT(*) FROM facts_tag WHERE tenant_id = ? AND profile_id = ? AND tag_id = ?"
            }
            _ => "SELECT COUNT(*) FROM facts_tag WHERE tenant_id = $1 AND profile_id = $2 AND tag_id = $3",
        },
        [T.into(), profile.into(), tag.into()],
    );
    let row = db.query_one(st).await.unwrap().unwrap();
    row.try_get_by_index::<i64>(0).unwrap() > 0
}

pub(crate) async fn outbox_changes(db: &DatabaseConnection) -> Vec<TagChanged> {
    outbox_payloads(db, proto::tagging::TAG_CHANGED)
        .await
        .into_iter()
        .map(|p| serde_json::from_value(p).unwrap())
        .collect()
}

/// Payloads of the outbox rows of `routing_key`, in order.
async fn outbox_payloads(db: &DatabaseConnection, routing_key: &str) -> Vec<Value> {
    let rows = db
        .query_all(Statement::from_sql_and_values(
            db.get_database_backend(),
            "SELECT body FROM bus_outbox WHERE routing_key = ? ORDER BY id",
            [routing_key.into()],
        ))
        .await
        .unwrap();
    rows.iter()
        .map(|r| {
            let body: String = r.try_get_by_index(0).unwrap();
            serde_json::from_str::<Envelope>(&body).unwrap().payload
        })
        .collect()
}

fn three_in_7() -> Value {
    json!({"type": "behaviour", "event": "track.page_view", "count": {"op": "gte", "value": 3},
           "window": {"type": "last", "days": 7}})
}

async fn realtime_tag_and_window_exit(backend: Backend) {
    let s = setup(backend).await;
    let hot = tag(&s, "intent", "multi", "3 visits in 7 days").await;
    let r = rule(&s, &hot, three_in_7(), "add_remove").await;
    let now = start();
    let e1 = visit("p1", now - Duration::days(6), &[]);
    assert!(handle(&s, &e1).await.is_empty());
    assert_eq!(s.tagger.handle(&e1).await.unwrap(), Handled::Duplicate);
    assert!(handle(&s, &visit("p1", now - Duration::days(1), &[]))
        .await
        .is_empty());
    let c = handle(&s, &visit("p1", now, &[])).await;
    assert_eq!(c.len(), 1);
    assert_eq!(
        (c[0].change, c[0].rule_id.as_deref()),
        (TagChange::Added, Some(r.as_str()))
    );
    assert!(has(&s.db.conn, "p1", &hot).await);
    // A redelivery of the first visit does not count twice (inbox), nor does the same event
    // arriving under another message id (raw event id).
    assert_eq!(s.tagger.handle(&e1).await.unwrap(), Handled::Duplicate);
    // Nothing happens until the oldest visit leaves the window: at the tenant's midnight.
    s.clock.advance(Duration::hours(12));
    assert_eq!(s.tagger.tick().await.unwrap(), 0);
    assert!(has(&s.db.conn, "p1", &hot).await);
    s.clock
        .set(start() + Duration::hours(14) + Duration::seconds(2));
    assert_eq!(
        s.tagger.tick().await.unwrap(),
        1,
        "the window exit is due at midnight"
    );
    assert!(!has(&s.db.conn, "p1", &hot).await);
    let changes = outbox_changes(&s.db.conn).await;
    assert_eq!(
        changes.iter().map(|c| c.change).collect::<Vec<_>>(),
        vec![TagChange::Added, TagChange::Removed]
    );
    assert!(changes
        .iter()
        .all(|c| c.profile_id == "p1" && c.tag_id == hot));
    s.db.cleanup().await;
}

async fn chained_single_select_manual_and_merges(backend: Backend) {
    let s = setup(backend).await;
    let hot = tag(&s, "intent", "single", "hot").await;
    let warm = tag(&s, "intent", "single", "warm").await;
    let vip = tag(&s, "tier", "multi", "vip lead").await;
    rule(
        &s,
        &warm,
        json!({"type": "behaviour", "event": "track.page_view", "window": {"type": "all_time"}}),
        "add_only",
    )
    .await;
    rule(&s, &hot, three_in_7(), "add_only").await;
    // Chained: whoever is hot (a tag set by another rule) is a vip lead.
    rule(
        &s,
        &vip,
        json!({"type": "tag", "op": "has", "tags": [hot]}),
        "add_remove",
    )
    .await;
    let now = start();
    let c = handle(&s, &visit("p2", now, &["case_study"])).await;
    assert_eq!(c.iter().filter(|c| c.change == TagChange::Added).count(), 1);
    assert!(has(&s.db.conn, "p2", &warm).await);
    handle(&s, &visit("p2", now, &[])).await;
    let c = handle(&s, &visit("p2", now, &[])).await;
    // Hot replaces warm (single-select group), and the chained rule adds vip in the same commit.
    assert!(has(&s.db.conn, "p2", &hot).await && has(&s.db.conn, "p2", &vip).await);
    assert!(!has(&s.db.conn, "p2", &warm).await);
    assert!(c
        .iter()
        .any(|x| x.tag_id == warm && x.change == TagChange::Removed));
    // An operator's untag takes back only what an operator set: hot is held by its rule.
    let c = s.tagger.manual(T, "p2", &hot, false, "ops").await.unwrap();
    assert!(c.is_empty(), "hot is held by its rule, not by hand");
    assert!(has(&s.db.conn, "p2", &hot).await);
    s.tagger.manual(T, "p3", &vip, true, "ops").await.unwrap();
    assert!(
        has(&s.db.conn, "p3", &vip).await,
        "a manual tag without the rule's condition"
    );
    // Merge p3 into p2: p2 keeps everything; p3's facts are gone.
    let m = IdentityMerged {
        survivor: "p2".into(),
        absorbed: vec!["p3".into()],
        rule: LinkRule::Unionid,
        evidence_event: None,
        operator: None,
    };
    let merged = Envelope::of(T, &m).build();
    handle(&s, &merged).await;
    assert!(!has(&s.db.conn, "p3", &vip).await);
    assert!(has(&s.db.conn, "p2", &vip).await);
    // Un-merge: p3 gets its manual vip back.
    let u = IdentityUnmerged {
        kind: UnmergeKind::Unmerge,
        survivor: "p2".into(),
        restored: vec!["p3".into()],
        identifiers: vec![],
        merge_id: Some(1),
        operator: "ops".into(),
        reason: "wrong".into(),
        moved_events: vec![],
        states: vec![],
    };
    let unmerged = Envelope::of(T, &u).build();
    handle(&s, &unmerged).await;
    // Tagging announces the separation whole, with both sides' tags, instead of `tag.changed`.
    let announced = outbox_payloads(&s.db.conn, proto::tagging::TAG_UNMERGED).await;
    assert_eq!(announced.len(), 1);
    assert_eq!(announced[0]["tags"]["p3"], json!([vip.clone()]));
    assert!(has(&s.db.conn, "p3", &vip).await);
    assert!(
        has(&s.db.conn, "p2", &vip).await,
        "p2 still qualifies by its own rule"
    );
    s.db.cleanup().await;
}

/// Events handled together (the consumer's batches): one transaction, each event settled as if
/// alone — new profiles tagged, a profile's third visit in the batch tagging it, a redelivery
/// inside the batch counted once.
async fn batch_settles_each_event(backend: Backend) {
    let s = setup(backend).await;
    let pricing = tag(&s, "intent", "multi", "pricing visitor").await;
    let hot = tag(&s, "intent", "multi", "3 visits in 7 days").await;
    rule(
        &s,
        &pricing,
        json!({"type": "behaviour", "content_tag": "pricing", "count": {"op": "gte", "value": 1},
               "window": {"type": "last", "days": 7}}),
        "add_remove",
    )
    .await;
    rule(&s, &hot, three_in_7(), "add_remove").await;
    let now = start();
    let mut batch: Vec<Envelope> = (0..10)
        .map(|i| visit(&format!("b{i}"), now, &["pricing"]))
        .collect();
    batch.push(batch[3].clone());
    for _ in 0..3 {
        batch.push(visit("q", now, &[]));
    }
    let out = s.tagger.handle_batch(&batch).await;
    assert_eq!(out.len(), batch.len());
    for (i, o) in out.iter().enumerate() {
        let o = o.as_ref().unwrap();
        match i {
            0..=9 => assert!(
                matches!(o, Handled::Done(c) if c.len() == 1 && c[0].tag_id == pricing),
                "event {i}: {o:?}"
            ),
            10 => assert_eq!(o, &Handled::Duplicate),
            11 | 12 => assert_eq!(o, &Handled::Done(vec![])),
            _ => assert!(
                matches!(o, Handled::Done(c) if c.len() == 1 && c[0].tag_id == hot),
                "event {i}: {o:?}"
            ),
        }
    }
    for i in 0..10 {
        assert!(has(&s.db.conn, &format!("b{i}"), &pricing).await);
    }
    assert!(has(&s.db.conn, "q", &hot).await);
    assert_eq!(outbox_changes(&s.db.conn).await.len(), 11);
    // The whole batch again: all duplicates, nothing runs.
    let again = s.tagger.handle_batch(&batch).await;
    assert!(again.iter().all(|o| matches!(o, Ok(Handled::Duplicate))));
    s.db.cleanup().await;
}

/// Operators tagging many profiles at once: every call succeeds. On SQLite a transaction that
/// reads before it writes cannot take the write lock once another connection has written since
/// its read ("database is locked" at once, not after the busy timeout), so manual changes take
/// the write lock first.
async fn concurrent_manual_tags_all_succeed(backend: Backend) {
    let s = setup(backend).await;
    let vip = tag(&s, "status", "multi", "vip").await;
    let calls: Vec<_> = (0..40)
        .map(|i| {
            let (tagger, vip) = (s.tagger.clone(), vip.clone());
            tokio::spawn(async move {
                let profile = format!("m{}", i % 20);
                // Each profile is tagged, then (its second call) untagged or tagged again.
                let add = i < 20 || i % 2 == 0;
                tagger.manual(T, &profile, &vip, add, "ops").await
            })
        })
        .collect();
    for (i, c) in calls.into_iter().enumerate() {
        let r = c.await.unwrap();
        assert!(r.is_ok(), "call {i}: {:?}", r.err());
    }
    for i in 0..20 {
        let profile = format!("m{i}");
        // Calls of one profile may run in either order: it holds the tag when both were adds.
        if (i + 20) % 2 == 0 {
            assert!(has(&s.db.conn, &profile, &vip).await, "{profile}");
        }
    }
    s.db.cleanup().await;
}

/// A tenant's operators set its zone: tagging counts the tenant's days in it from the message on,
/// ignores an older setting arriving late, parks a zone it does not know, and knows the zone
/// again after a restart (a fresh configuration reading what was kept).
async fn tenant_zone_from_settings(backend: Backend) {
    let s = setup(backend).await;
    let relay = platform::db::outbox::OutboxRelay::new(
        s.db.conn.clone(),
        Arc::new(platform::bus::MemoryBus::new()),
    );
    let settings = |zone: &str, at: &str| {
        Envelope::of(
            T,
            &proto::tenant::TenantSettings {
                time_zone: zone.into(),
                changed_at: at.parse().unwrap(),
            },
        )
        .build()
    };
    let zones = &s.tagger.cfg.time_zones;
    assert_eq!(zones.of(T), chrono_tz::Asia::Shanghai);
    let out = tagging_svc::consume::handle_batch(
        &s.tagger,
        &relay,
        vec![settings("Europe/Berlin", "2026-06-10T01:00:00Z")],
    )
    .await;
    assert!(out.iter().all(Result::is_ok), "{out:?}");
    assert_eq!(zones.of(T), chrono_tz::Europe::Berlin);
    assert_eq!(zones.of("t-other"), chrono_tz::Asia::Shanghai);
    // 20:00 UTC: the 11th in Beijing, still the 10th in Berlin.
    let evening: DateTime<Utc> = "2026-06-10T20:00:00Z".parse().unwrap();
    assert_eq!(
        facts::local_day(evening, zones.of(T)),
        chrono::NaiveDate::from_ymd_opt(2026, 6, 10).unwrap()
    );
    // Older, and again: nothing changes.
    for env in [
        settings("America/Santiago", "2026-06-09T00:00:00Z"),
        settings("Europe/Berlin", "2026-06-10T01:00:00Z"),
    ] {
        assert!(tagging_svc::consume::handle(&s.tagger, &relay, env)
            .await
            .is_ok());
    }
    assert_eq!(zones.of(T), chrono_tz::Europe::Berlin);
    // A name that is no zone never passes: parked.
    let bad = tagging_svc::consume::handle(
        &s.tagger,
        &relay,
        settings("Mars/Olympus_Mons", "2026-06-11T00:00:00Z"),
    )
    .await;
    assert!(
        matches!(bad, Err(platform::bus::HandlerError::Invalid(ref m)) if m.contains("time_zone")),
        "{bad:?}"
    );
    // A restart: a configuration as loaded, then what the database kept.
    let fresh = platform::clock::TimeZones::default();
    assert_eq!(facts::announce_kept(&s.db.conn, &fresh).await.unwrap(), 1);
    assert_eq!(fresh.of(T), chrono_tz::Europe::Berlin);
    s.db.cleanup().await;
}

test_support::on_both_backends!(
    tenant_zone_from_settings,
    concurrent_manual_tags_all_succeed,
    realtime_tag_and_window_exit,
    batch_settles_each_event,
    chained_single_select_manual_and_merges
);
