//! identity-svc resolution on MariaDB and SQLite: create / attach / merge by unionid, merge by
//! verified phone, guard refusals, blocked values, idempotent redelivery, and the race of 500
//! events for one unionid consumed by two service instances at once (event by event, and in
//! batches); a batch resolves exactly as its events one by one.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use identity_svc::config::ResolutionConfig;
use identity_svc::domain::pii::Pii;
use identity_svc::domain::Policy;
use identity_svc::store::queries;
use identity_svc::store::{Outcome, Resolution, Resolver};
use proto::channel::{Channel, EventBody};
use proto::identity::{IdentifierKind, ProfileResolved, IDENTITY_MERGED, PROFILE_RESOLVED};
use proto::Envelope;
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use test_support::db::{Backend, TestDb};
use test_support::events::{self, count};

const TENANT: &str = "t-id";
const MP: &str = "wxMP0001";
const MP2: &str = "wxMP0002";
const OA: &str = "wxOA0001";

async fn setup(backend: Backend) -> (TestDb, Pii) {
    let t = TestDb::migrated::<identity_svc::store::Migrator>(backend).await;
    (t, Pii::from_base64(&Pii::generate_base64()).unwrap())
}

fn resolver(db: DatabaseConnection, pii: &Pii, cfg: ResolutionConfig) -> Resolver {
    Resolver::new(db, Some(pii.clone()), Policy::from_config(&cfg), 8)
}

fn session(openid: &str, unionid: Option<&str>) -> Envelope {
    session_in(MP, openid, unionid)
}

fn session_in(app: &str, openid: &str, unionid: Option<&str>) -> Envelope {
    events::session(TENANT, app, openid, unionid)
}

fn phone(app: &str, openid: &str, unionid: Option<&str>, number: &str) -> Envelope {
    events::phone(TENANT, app, openid, unionid, number)
}

fn callback(channel: Channel, app: &str, from: &str, body: EventBody, t: i64) -> Envelope {
    events::callback(TENANT, channel, app, from, body, t)
}

fn mp_text(openid: &str, msg_id: u64) -> Envelope {
    events::text(TENANT, Channel::Mp, MP, openid, msg_id)
}

async fn resolved(r: &Resolver, env: &Envelope) -> Resolution {
    match r.resolve(env).await.unwrap() {
        Outcome::Resolved(res) => res,
        other => panic!("expected a resolution, got {other:?}"),
    }
}

async fn outbox_count(db: &DatabaseConnection, key: &str) -> i64 {
    count(
        db,
        &format!("SELECT COUNT(*) FROM bus_outbox WHERE routing_key = '{key}'"),
    )
    .await
}

async fn kinds(db: &DatabaseConnection, profile_id: &str) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = queries::profile(db, TENANT, profile_id)
        .await
        .unwrap()
        .unwrap()
        .identifiers
        .into_iter()
        .map(|i| (i.kind, i.value))
        .collect();
    v.sort();
    v
}

async fn create_attach_and_merge_by_unionid(backend: Backend) {
    let (t, pii) = setup(backend).await;
    let r = resolver(t.conn.clone(), &pii, ResolutionConfig::default());

    let oa = callback(
        Channel::Oa,
        OA,
        "oOA-1",
        EventBody::Subscribe {
            scene: Some("campaign".into()),
            ticket: None,
        },
        1_714_000_000,
    );
    let p_oa = resolved(&r, &oa).await;
    assert!(p_oa.created);

    let a = resolved(&r, &session("oMP-A", None)).await;
    assert!(a.created);
    let a2 = resolved(&r, &session("oMP-A", Some("uU1"))).await;
    assert_eq!(a2.profile_id, a.profile_id);
    assert!(!a2.created);
    assert_eq!(a2.attached, 1, "unionid attached");

    let b = resolved(&r, &mp_text("oMP-B", 1)).await;
    assert!(b.created);
    assert_ne!(b.profile_id, a.profile_id);

    // A tracked event says oMP-B has unionid uU1: the two profiles are one person.
    let track = Envelope::builder(
        "channel.track.page_view",
        TENANT,
        serde_json::json!({"subject": {"mp_app_id": MP2, "openid": "oMP-B2", "unionid": "uU1"},
                           "kind": "page_view", "properties": {}}),
    )
    .build();
    let same = resolved(&r, &track).await;
    assert_eq!(
        same.profile_id, a.profile_id,
        "attached through the unionid"
    );
    let merge_ev = session("oMP-B", Some("uU1"));
    let m = resolved(&r, &merge_ev).await;
    assert_eq!(m.profile_id, a.profile_id, "the oldest profile survives");
    assert_eq!(m.absorbed, vec![b.profile_id.clone()]);

    let survivor = queries::profile(&t.conn, TENANT, &a.profile_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(survivor.status, "active");
    assert_eq!(
        kinds(&t.conn, &a.profile_id).await,
        vec![
            ("mp_openid".into(), "oMP-A".into()),
            ("mp_openid".into(), "oMP-B".into()),
            ("mp_openid".into(), "oMP-B2".into()),
            ("unionid".into(), "uU1".into()),
        ]
    );
    let gone = queries::profile(&t.conn, TENANT, &b.profile_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(gone.status, "merged");
    assert_eq!(gone.merged_into.as_deref(), Some(a.profile_id.as_str()));
    assert!(gone.identifiers.is_empty());

    let merges = queries::merges(&t.conn, TENANT, &a.profile_id, None, 100)
        .await
        .unwrap();
    assert_eq!(merges.len(), 1);
    assert_eq!(merges[0].rule, "unionid");
    assert_eq!(merges[0].evidence_event_id, Some(merge_ev.id.to_string()));
    assert_eq!(
        merges[0].before["absorbed"]["identifiers"][0]["value"],
        "oMP-B"
    );
    assert_eq!(
        merges[0].after["survivor"]["identifiers"]
            .as_array()
            .unwrap()
            .len(),
        4
    );

    // The survivor's timeline holds the absorbed profile's events too; pages chain by cursor.
    let page1 = queries::timeline(&t.conn, TENANT, &a.profile_id, None, 3)
        .await
        .unwrap();
    assert_eq!(page1.len(), 3);
    let after = page1.last().map(|e| e.key());
    let page2 = queries::timeline(&t.conn, TENANT, &a.profile_id, after, 3)
        .await
        .unwrap();
    assert_eq!(page2.len(), 2);
    let events: HashSet<String> = page1
        .iter()
        .chain(page2.iter())
        .map(|e| e.event_id.clone())
        .collect();
    assert_eq!(events.len(), 5);

    // The OA follower stays alone (no unionid links it yet).
    assert_eq!(
        kinds(&t.conn, &p_oa.profile_id).await,
        vec![("oa_openid".into(), "oOA-1".into())]
    );
    assert_eq!(outbox_count(&t.conn, PROFILE_RESOLVED).await, 6);
    assert_eq!(outbox_count(&t.conn, IDENTITY_MERGED).await, 1);
    assert_eq!(
        count(&t.conn, "SELECT COUNT(*) FROM identity_edges").await,
        6,
        "3 new profiles, 2 attachments, 1 merge"
    );
    // The resolved event is announced with its profile.
    let body: String = t
        .conn
        .query_one(Statement::from_string(
            t.conn.get_database_backend(),
            format!(
                "SELECT body FROM bus_outbox WHERE routing_key = '{PROFILE_RESOLVED}' ORDER BY id DESC"
            ),
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index(0)
        .unwrap();
    let env = Envelope::from_bytes(body.as_bytes()).unwrap();
    let pr: ProfileResolved = env.decode().unwrap();
    assert_eq!(pr.profile_id, a.profile_id);
    assert_eq!(pr.event.id, merge_ev.id);
    t.cleanup().await;
}

async fn verified_phone_merges(backend: Backend) {
    let (t, pii) = setup(backend).await;
    let r = resolver(t.conn.clone(), &pii, ResolutionConfig::default());
    let first = resolved(&r, &phone(MP, "oP1", None, "+8613912345678")).await;
    let second = resolved(&r, &session_in(MP2, "oP2", None)).await;
    assert_ne!(first.profile_id, second.profile_id);
    let m = resolved(&r, &phone(MP2, "oP2", None, "+8613912345678")).await;
    assert_eq!(m.profile_id, first.profile_id);
    assert_eq!(m.absorbed, vec![second.profile_id.clone()]);
    assert_eq!(
        queries::merges(&t.conn, TENANT, &first.profile_id, None, 100)
            .await
            .unwrap()[0]
            .rule,
        "verified_phone"
    );
    // The phone is stored hashed and sealed, shown masked, and found by its clear value.
    let p = queries::profile_by_identifier(
        &t.conn,
        Some(&pii),
        TENANT,
        IdentifierKind::Phone,
        "86",
        "+8613912345678",
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(p.id, first.profile_id);
    let ph = p.identifiers.iter().find(|i| i.kind == "phone").unwrap();
    assert_eq!(ph.value, "+86139****5678");
    assert_eq!(ph.provenance, "verified_mp");
    assert_eq!(
        count(
            &t.conn,
            "SELECT COUNT(*) FROM identifiers WHERE kind = 'phone' AND value IS NULL AND value_sealed IS NOT NULL"
        )
        .await,
        1
    );
    t.cleanup().await;
}

async fn guard_refuses_merge_of_different_unionids(backend: Backend) {
    let (t, pii) = setup(backend).await;
    let r = resolver(t.conn.clone(), &pii, ResolutionConfig::default());
    let p1 = resolved(&r, &session("oG1", Some("uG1"))).await;
    let p2 = resolved(&r, &phone(MP, "oG2", Some("uG2"), "+8613911112222")).await;
    let before1 = kinds(&t.conn, &p1.profile_id).await;
    let before2 = kinds(&t.conn, &p2.profile_id).await;
    let ev = phone(MP, "oG1", Some("uG1"), "+8613911112222");
    let res = resolved(&r, &ev).await;
    assert_eq!(res.profile_id, p1.profile_id);
    assert!(res.absorbed.is_empty());
    assert_eq!(res.refused, 1);
    assert_eq!(kinds(&t.conn, &p1.profile_id).await, before1);
    assert_eq!(kinds(&t.conn, &p2.profile_id).await, before2);
    for id in [&p1.profile_id, &p2.profile_id] {
        let p = queries::profile(&t.conn, TENANT, id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(p.status, "active");
    }
    let refusals = queries::refusals(&t.conn, TENANT, None, 10).await.unwrap();
    assert_eq!(refusals.len(), 1);
    assert_eq!(refusals[0].reason, "conflicting_unionids");
    assert_eq!(refusals[0].rule, "verified_phone");
    assert_eq!(
        refusals[0].candidate_ids,
        vec![p1.profile_id.clone(), p2.profile_id.clone()]
    );
    assert_eq!(refusals[0].evidence_event_id, Some(ev.id.to_string()));
    assert_eq!(outbox_count(&t.conn, IDENTITY_MERGED).await, 0);
    t.cleanup().await;
}

async fn blocked_values_are_ignored(backend: Backend) {
    let (t, pii) = setup(backend).await;
    let cfg = ResolutionConfig {
        blocked_patterns: vec!["+86100*".into()],
        ..ResolutionConfig::default()
    };
    let r = resolver(t.conn.clone(), &pii, cfg);
    assert_eq!(
        r.resolve(&session("0", Some("undefined"))).await.unwrap(),
        Outcome::NoIdentifiers
    );
    let a = resolved(&r, &phone(MP, "oB1", None, "+8613800138000")).await;
    let b = resolved(&r, &phone(MP, "oB2", None, "+8613800138000")).await;
    let c = resolved(&r, &phone(MP, "oB3", None, "+8610012345678")).await;
    let ids: HashSet<_> = [&a.profile_id, &b.profile_id, &c.profile_id]
        .into_iter()
        .collect();
    assert_eq!(ids.len(), 3, "a test number links nobody");
    assert_eq!(
        count(
            &t.conn,
            "SELECT COUNT(*) FROM identifiers WHERE kind = 'phone'"
        )
        .await,
        0
    );
    assert_eq!(count(&t.conn, "SELECT COUNT(*) FROM identifiers").await, 3);
    t.cleanup().await;
}

async fn redelivery_has_one_effect(backend: Backend) {
    let (t, pii) = setup(backend).await;
    let r = resolver(t.conn.clone(), &pii, ResolutionConfig::default());
    let ev = session("oR1", Some("uR1"));
    let mut outcomes = Vec::new();
    for _ in 0..3 {
        outcomes.push(r.resolve(&ev).await.unwrap());
    }
    assert!(matches!(outcomes[0], Outcome::Resolved(_)));
    assert_eq!(outcomes[1], Outcome::Duplicate);
    assert_eq!(outcomes[2], Outcome::Duplicate);
    // Also concurrently, through a second pool.
    let other = resolver(
        t.another_connection().await,
        &pii,
        ResolutionConfig::default(),
    );
    let ev2 = session("oR2", Some("uR1"));
    let (x, y) = tokio::join!(r.resolve(&ev2), other.resolve(&ev2));
    let done = [x.unwrap(), y.unwrap()]
        .iter()
        .filter(|o| matches!(o, Outcome::Resolved(_)))
        .count();
    assert_eq!(done, 1);
    assert_eq!(count(&t.conn, "SELECT COUNT(*) FROM profiles").await, 1);
    assert_eq!(count(&t.conn, "SELECT COUNT(*) FROM identifiers").await, 3);
    assert_eq!(count(&t.conn, "SELECT COUNT(*) FROM timeline").await, 2);
    assert_eq!(outbox_count(&t.conn, PROFILE_RESOLVED).await, 2);
    t.cleanup().await;
}

/// What a resolved history left in the database: active profiles, identifiers, merges, timeline
/// entries, inbox entries and each kind of announcement.
async fn footprint(db: &DatabaseConnection) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    for (name, sql) in [
        (
            "active profiles",
            "SELECT COUNT(*) FROM profiles WHERE status = 'active'",
        ),
        ("identifiers", "SELECT COUNT(*) FROM identifiers"),
        ("merges", "SELECT COUNT(*) FROM merges"),
        ("timeline", "SELECT COUNT(*) FROM timeline"),
        ("inbox", "SELECT COUNT(*) FROM bus_inbox"),
        ("property records", "SELECT COUNT(*) FROM property_records"),
    ] {
        out.push((name.to_string(), count(db, sql).await));
    }
    for key in [PROFILE_RESOLVED, IDENTITY_MERGED, "profile.updated"] {
        out.push((key.to_string(), outbox_count(db, key).await));
    }
    out
}

/// Events that depend on each other inside one batch — a person created and then seen again, a
/// second openid of the same unionid merging two profiles the batch itself created, a message of
/// a merged person, an event given twice, an Official Account follow, two that do not decode —
/// leave exactly what the same events leave one by one, with the same outcome each.
async fn a_batch_resolves_as_its_events_one_by_one(backend: Backend) {
    let history = || {
        let first = session("oB1", None);
        vec![
            first.clone(),
            mp_text("oB1", 1),
            session("oB2", Some("uB")),
            session("oB1", Some("uB")),
            mp_text("oB2", 2),
            first,
            callback(
                Channel::Oa,
                OA,
                "oOA1",
                EventBody::Subscribe {
                    scene: None,
                    ticket: None,
                },
                1_714_000_000,
            ),
            Envelope::builder(
                "channel.mp.session",
                TENANT,
                serde_json::json!({"nonsense": true}),
            )
            .build(),
            Envelope::builder(
                "channel.wecom.external_chat.update",
                TENANT,
                serde_json::json!({}),
            )
            .build(),
        ]
    };
    let kind = |o: &Result<Outcome, identity_svc::store::ResolveError>| match o {
        Ok(Outcome::Resolved(r)) => format!(
            "resolved (created {}, merged {})",
            r.created,
            r.absorbed.len()
        ),
        Ok(other) => format!("{other:?}"),
        Err(identity_svc::store::ResolveError::Invalid(_)) => "invalid".to_string(),
        Err(e) => panic!("{e}"),
    };
    let (one, pii) = setup(backend).await;
    let r = resolver(one.conn.clone(), &pii, ResolutionConfig::default());
    let mut by_one = Vec::new();
    for ev in history() {
        by_one.push(kind(&r.resolve(&ev).await));
    }
    let (batch, _) = setup(backend).await;
    let r = resolver(batch.conn.clone(), &pii, ResolutionConfig::default());
    let events = history();
    let together: Vec<String> = r.resolve_batch(&events).await.iter().map(kind).collect();
    assert_eq!(together, by_one);
    assert_eq!(footprint(&batch.conn).await, footprint(&one.conn).await);
    // The batch delivered again: every event is a duplicate or without effect.
    let again = r.resolve_batch(&events).await;
    assert!(
        again.iter().all(|o| !matches!(o, Ok(Outcome::Resolved(_)))),
        "{again:?}"
    );
    assert_eq!(footprint(&batch.conn).await, footprint(&one.conn).await);
    one.cleanup().await;
    batch.cleanup().await;
}

/// 500 events, each a different openid carrying one unionid, handled at once by two service
/// instances (two pools, two handler loops): exactly one profile, every identifier, no event
/// lost. A resolution that gives up after its transaction attempts is retried, as the bus would.
async fn race_of_500_events_for_one_unionid(backend: Backend) {
    race_of_500(backend, 1).await;
}

/// The race with each handler loop resolving 16 events at a time in one transaction.
async fn race_of_500_events_in_batches(backend: Backend) {
    race_of_500(backend, 16).await;
}

async fn race_of_500(backend: Backend, batch: usize) {
    const N: usize = 500;
    const PER_INSTANCE: usize = 8;
    let (t, pii) = setup(backend).await;
    let cfg = ResolutionConfig {
        max_identifiers_per_kind: 1_000,
        ..ResolutionConfig::default()
    };
    let instances = [
        resolver(t.conn.clone(), &pii, cfg.clone()),
        resolver(t.another_connection().await, &pii, cfg),
    ];
    let events: Vec<Envelope> = (0..N)
        .map(|i| session(&format!("oRace-{i:04}"), Some("uRACE")))
        .collect();
    let redeliveries = Arc::new(AtomicU32::new(0));
    let tx_retries = Arc::new(AtomicU32::new(0));
    let mut loops = Vec::new();
    for (k, inst) in instances.iter().enumerate() {
        // Each instance takes every other event and handles PER_INSTANCE at once.
        let queue: Vec<Envelope> = events.iter().skip(k).step_by(2).cloned().collect();
        let queue = Arc::new(tokio::sync::Mutex::new(queue));
        for _ in 0..PER_INSTANCE {
            let (queue, inst) = (queue.clone(), inst.clone());
            let (redeliveries, tx_retries) = (redeliveries.clone(), tx_retries.clone());
            loops.push(tokio::spawn(async move {
                let mut handled = Vec::new();
                loop {
                    let mut taken: Vec<Envelope> = {
                        let mut q = queue.lock().await;
                        let n = q.len().min(batch);
                        let at = q.len() - n;
                        q.split_off(at)
                    };
                    if taken.is_empty() {
                        break;
                    }
                    // What failed goes back, as the bus would redeliver it.
                    while !taken.is_empty() {
                        let outcomes = inst.resolve_batch(&taken).await;
                        let mut again = Vec::new();
                        for (ev, o) in taken.into_iter().zip(outcomes) {
                            match o {
                                Ok(Outcome::Resolved(r)) => {
                                    tx_retries.fetch_add(r.attempts - 1, Ordering::Relaxed);
                                    handled.push((ev.id, r.profile_id));
                                }
                                Ok(other) => panic!("unexpected {other:?}"),
                                Err(e) => {
                                    assert!(
                                        !matches!(e, identity_svc::store::ResolveError::Invalid(_)),
                                        "{e}"
                                    );
                                    redeliveries.fetch_add(1, Ordering::Relaxed);
                                    again.push(ev);
                                }
                            }
                        }
                        taken = again;
                    }
                }
                handled
            }));
        }
    }
    let mut handled = Vec::new();
    for l in loops {
        handled.extend(l.await.unwrap());
    }
    assert_eq!(handled.len(), N, "every event handled once");
    let profiles: HashSet<_> = handled.iter().map(|(_, p)| p.clone()).collect();
    assert_eq!(
        count(
            &t.conn,
            "SELECT COUNT(*) FROM profiles WHERE status = 'active'"
        )
        .await,
        1,
        "exactly one active profile"
    );
    let survivor: String = t
        .conn
        .query_one(Statement::from_string(
            t.conn.get_database_backend(),
            "SELECT id FROM profiles WHERE status = 'active'",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index(0)
        .unwrap();
    let p = queries::profile(&t.conn, TENANT, &survivor)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(p.identifiers.len(), N + 1, "all openids and the unionid");
    assert_eq!(
        count(&t.conn, "SELECT COUNT(*) FROM identifiers").await,
        (N + 1) as i64
    );
    assert_eq!(
        count(&t.conn, "SELECT COUNT(*) FROM timeline").await,
        N as i64
    );
    assert_eq!(
        count(&t.conn, "SELECT COUNT(*) FROM bus_inbox").await,
        N as i64
    );
    assert_eq!(outbox_count(&t.conn, PROFILE_RESOLVED).await, N as i64);
    println!(
        "race on {backend:?} in batches of {batch}: {N} events, {} profile id(s) reported, {} transaction retries, {} redeliveries",
        profiles.len(),
        tx_retries.load(Ordering::Relaxed),
        redeliveries.load(Ordering::Relaxed)
    );
    t.cleanup().await;
}

test_support::on_both_backends!(
    create_attach_and_merge_by_unionid,
    verified_phone_merges,
    guard_refuses_merge_of_different_unionids,
    blocked_values_are_ignored,
    redelivery_has_one_effect,
    race_of_500_events_for_one_unionid,
    race_of_500_events_in_batches,
    a_batch_resolves_as_its_events_one_by_one,
);
