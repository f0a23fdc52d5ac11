//! Reversible merges on MariaDB and SQLite: merge then un-merge gives back both profiles as they
//! were (a property test over random histories), split of one identifier, the block that stops an
//! automatic re-merge of a manually separated pair, and the operator endpoints with their errors
//! (the operator recorded is the service credential's actor; another tenant's merge or profile is
//! not found).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};

use actix_web::{test as atest, web, App};
use identity_svc::config::ResolutionConfig;
use identity_svc::domain::pii::Pii;
use identity_svc::domain::Policy;
use identity_svc::store::queries;
use identity_svc::store::unmerge::{Decision, ManualError};
use identity_svc::store::{Outcome, Resolution, Resolver};
use proptest::prelude::*;
use proptest::test_runner::{Config as PropConfig, TestCaseError, TestRunner};
use proto::auth::Role;
use proto::channel::{Channel, EventBody, ExternalContactChange, ExternalContactChangeType};
use proto::identity::{IdentityUnmerged, UnmergeKind, IDENTITY_MERGED, IDENTITY_UNMERGED};
use proto::Envelope;
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use serde_json::{json, Value};
use test_support::db::{Backend, TestDb};
use test_support::events::{callback, count, session, text};

const MP: &str = "wxMP0001";
const MP2: &str = "wxMP0002";
const OA: &str = "wxOA0001";
const CORP: &str = "wwCORP01";

async fn setup(backend: Backend) -> (TestDb, Resolver) {
    let t = TestDb::migrated::<identity_svc::store::Migrator>(backend).await;
    let pii = Pii::from_base64(&Pii::generate_base64()).unwrap();
    let r = Resolver::new(
        t.conn.clone(),
        Some(pii),
        Policy::from_config(&ResolutionConfig::default()),
        8,
    );
    (t, r)
}

fn by(op: &str) -> Decision {
    Decision {
        operator: op.into(),
        reason: "customer asked".into(),
    }
}

fn phone(tenant: &str, openid: &str, unionid: Option<&str>, number: &str) -> Envelope {
    test_support::events::phone(tenant, MP, openid, unionid, number)
}

fn track(tenant: &str, app: &str, openid: &str, unionid: Option<&str>, cookie: &str) -> Envelope {
    Envelope::builder(
        "channel.track.page_view",
        tenant,
        json!({"subject": {"mp_app_id": app, "openid": openid, "unionid": unionid,
                           "anonymous_id": cookie},
               "kind": "page_view", "properties": {}}),
    )
    .build()
}

/// A form submitted in the mini-program: typed fields, a typed phone, tracking parameters.
fn form(tenant: &str, openid: &str, unionid: Option<&str>, tag: &str, number: &str) -> Envelope {
    Envelope::builder(
        "channel.track.form_submit",
        tenant,
        json!({"subject": {"mp_app_id": MP, "openid": openid, "unionid": unionid},
               "kind": "form_submit",
               "properties": {"name": format!("Name {tag}"), "city": format!("City {tag}"),
                              "company": "Acme", "mobile": number.replace("+86", ""),
                              "utm_source": format!("src-{tag}"), "age": -1}}),
    )
    .build()
}

fn wecom(tenant: &str, external: &str, change: ExternalContactChangeType, t: i64) -> Envelope {
    let c = ExternalContactChange {
        change_type: change,
        user_id: "rep1".into(),
        external_user_id: external.into(),
        state: None,
        welcome_code: None,
        source: None,
        fail_reason: None,
    };
    callback(
        tenant,
        Channel::WeCom,
        CORP,
        "sys",
        EventBody::ExternalContact(c),
        // Realistic times: MySQL TIMESTAMP columns cannot hold the epoch itself.
        1_714_000_000 + t,
    )
}

async fn resolved(r: &Resolver, env: &Envelope) -> Resolution {
    match r.resolve(env).await.unwrap() {
        Outcome::Resolved(res) => res,
        other => panic!("expected a resolution, got {other:?}"),
    }
}

/// What a profile looks like from outside: status, identifiers, timeline, live merges.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Snap {
    status: String,
    merged_into: Option<String>,
    identifiers: BTreeSet<(String, String, String)>,
    timeline: BTreeSet<String>,
    live_merges: BTreeSet<i64>,
    /// Derived fields and relationship state (JSON).
    fields: String,
    relations: String,
}

async fn snap(db: &DatabaseConnection, tenant: &str, id: &str) -> Snap {
    let p = queries::profile(db, tenant, id).await.unwrap().unwrap();
    let tl = queries::timeline(db, tenant, id, None, 500).await.unwrap();
    let merges = queries::merges(db, tenant, id, None, 100).await.unwrap();
    Snap {
        fields: json!(p.fields).to_string(),
        relations: json!(p.relations).to_string(),
        status: p.status,
        merged_into: p.merged_into,
        identifiers: p
            .identifiers
            .into_iter()
            .map(|i| (i.kind, i.namespace, i.value))
            .collect(),
        timeline: tl.into_iter().map(|e| e.event_id).collect(),
        live_merges: merges
            .into_iter()
            .filter(|m| m.unmerged_at.is_none())
            .map(|m| m.id)
            .collect(),
    }
}

// ---------------------------------------------------------------------------------------------
// Property: merge then un-merge gives back both profiles.

#[derive(Debug, Clone, Copy)]
enum Persona {
    /// Mini-program user (with a unionid for person A only), tracked on H5.
    Mp,
    /// Official Account follower.
    Oa,
    /// WeCom external contact.
    WeCom,
}

#[derive(Debug, Clone)]
struct Case {
    a: (Persona, Vec<u8>),
    b: (Persona, Vec<u8>),
    /// Order of resolution: `true` takes the next event of A.
    order: Vec<bool>,
    a_survives: bool,
}

fn persona() -> impl Strategy<Value = Persona> {
    prop_oneof![Just(Persona::Mp), Just(Persona::Oa), Just(Persona::WeCom)]
}

fn case() -> impl Strategy<Value = Case> {
    let history = || (persona(), prop::collection::vec(0u8..5, 0..6));
    (
        history(),
        history(),
        prop::collection::vec(any::<bool>(), 12),
        any::<bool>(),
    )
        .prop_map(|(a, b, order, a_survives)| Case {
            a,
            b,
            order,
            a_survives,
        })
}

/// The events of one person: the first one names the person, every later one carries an
/// identifier of theirs already seen (so one person is one profile).
fn history(
    tenant: &str,
    who: &str,
    n: usize,
    persona: Persona,
    choices: &[u8],
    unionid: Option<&str>,
) -> Vec<Envelope> {
    let base = format!("{who}{n}");
    let seq = |i: usize| (n * 100 + i + if who == "A" { 0 } else { 50 }) as u64;
    let mut out = Vec::new();
    match persona {
        Persona::Mp => {
            let openid = format!("o{base}");
            let number = format!("+86139{:05}{}", n, if who == "A" { 111 } else { 222 });
            out.push(session(tenant, MP, &openid, unionid));
            for (i, c) in choices.iter().enumerate() {
                out.push(match (c, unionid) {
                    (0, Some(u)) => session(tenant, MP2, &format!("{openid}-2"), Some(u)),
                    (0, None) => session(tenant, MP, &openid, None),
                    (1, u) => phone(tenant, &openid, u, &number),
                    (2, Some(u)) => track(
                        tenant,
                        MP2,
                        &format!("{openid}-t{i}"),
                        Some(u),
                        &format!("c{base}-{i}"),
                    ),
                    (2, None) => track(tenant, MP, &openid, None, &format!("c{base}-{i}")),
                    (3, u) => form(tenant, &openid, u, &format!("{who}{i}"), &number),
                    _ => text(tenant, Channel::Mp, MP, &openid, seq(i)),
                });
            }
        }
        Persona::Oa => {
            let openid = format!("oOA{base}");
            let sub = EventBody::Subscribe {
                scene: Some("s".into()),
                ticket: None,
            };
            out.push(callback(
                tenant,
                Channel::Oa,
                OA,
                &openid,
                sub,
                seq(99) as i64,
            ));
            for (i, c) in choices.iter().enumerate() {
                out.push(match c {
                    0 => callback(
                        tenant,
                        Channel::Oa,
                        OA,
                        &openid,
                        EventBody::Click {
                            key: format!("k{i}"),
                        },
                        seq(i) as i64,
                    ),
                    1 => callback(
                        tenant,
                        Channel::Oa,
                        OA,
                        &openid,
                        EventBody::Unsubscribe,
                        seq(i) as i64,
                    ),
                    _ => text(tenant, Channel::Oa, OA, &openid, seq(i)),
                });
            }
        }
        Persona::WeCom => {
            let ext = format!("wm{base}");
            out.push(wecom(
                tenant,
                &ext,
                ExternalContactChangeType::AddExternalContact,
                seq(99) as i64,
            ));
            for (i, c) in choices.iter().enumerate() {
                let change = match c % 3 {
                    0 => ExternalContactChangeType::EditExternalContact,
                    1 => ExternalContactChangeType::AddExternalContact,
                    _ => ExternalContactChangeType::DelFollowUser,
                };
                out.push(wecom(tenant, &ext, change, seq(i) as i64));
            }
        }
    }
    out
}

async fn check_case(
    r: &Resolver,
    db: &DatabaseConnection,
    n: usize,
    c: Case,
) -> Result<(), String> {
    let tenant = format!("t-prop-{n}");
    let ua = format!("uA{n}");
    let mut a = history(&tenant, "A", n, c.a.0, &c.a.1, Some(&ua)).into_iter();
    let mut b = history(&tenant, "B", n, c.b.0, &c.b.1, None).into_iter();
    // Each person's first event comes first in its own history; the order interleaves the rest.
    let (mut pa, mut pb) = (None, None);
    let mut order = c.order.iter().copied().chain(std::iter::repeat(true));
    loop {
        let take_a = order.next().unwrap_or(true);
        let (ev, slot) = match (take_a, a.len(), b.len()) {
            (_, 0, 0) => break,
            (true, 1.., _) | (false, 1.., 0) => (a.next(), &mut pa),
            _ => (b.next(), &mut pb),
        };
        let Some(ev) = ev else { break };
        let res = resolved(r, &ev).await;
        if !res.absorbed.is_empty() || res.refused > 0 {
            return Err(format!("history should not merge or refuse: {res:?}"));
        }
        *slot = Some(res.profile_id);
    }
    let (pa, pb) = (pa.ok_or("no A")?, pb.ok_or("no B")?);
    if pa == pb {
        return Err("two people resolved to one profile".into());
    }
    let (before_a, before_b) = (snap(db, &tenant, &pa).await, snap(db, &tenant, &pb).await);
    // The derived state is really there: typed fields from forms, follows from WeCom.
    for ((persona, choices), s) in [(&c.a, &before_a), (&c.b, &before_b)] {
        let fields: Value = serde_json::from_str(&s.fields).unwrap();
        let rel: Value = serde_json::from_str(&s.relations).unwrap();
        match persona {
            Persona::Mp
                if choices.contains(&3)
                    && (fields["contact.name"].as_str().is_none()
                        || fields["company.name"] != "Acme") =>
            {
                return Err(format!("form fields missing: {fields}"));
            }
            Persona::WeCom if rel["wecom_follows"].as_array().is_none_or(|f| f.is_empty()) => {
                return Err(format!("follow missing: {rel}"));
            }
            Persona::Oa
                if rel["oa_subscriptions"]
                    .as_array()
                    .is_none_or(|f| f.is_empty()) =>
            {
                return Err(format!("subscription missing: {rel}"));
            }
            _ => {}
        }
    }
    let (survivor, absorbed) = if c.a_survives { (&pa, &pb) } else { (&pb, &pa) };
    let m = r
        .manual_merge(&tenant, survivor, absorbed, &by("ops@x"))
        .await
        .map_err(|e| format!("merge: {e}"))?;
    let merged = snap(db, &tenant, survivor).await;
    let expect_ids: BTreeSet<_> = before_a
        .identifiers
        .union(&before_b.identifiers)
        .cloned()
        .collect();
    let expect_tl: BTreeSet<_> = before_a
        .timeline
        .union(&before_b.timeline)
        .cloned()
        .collect();
    if merged.identifiers != expect_ids || merged.timeline != expect_tl {
        return Err(format!("merged profile is not the union: {merged:?}"));
    }
    if snap(db, &tenant, absorbed).await.status != "merged" {
        return Err("absorbed profile still active".into());
    }
    let u = r
        .unmerge_in(&tenant, m.merge_id, &by("ops@y"))
        .await
        .map_err(|e| format!("unmerge: {e}"))?;
    if &u.restored != absorbed || &u.survivor != survivor {
        return Err(format!("unexpected un-merge {u:?}"));
    }
    let (after_a, after_b) = (snap(db, &tenant, &pa).await, snap(db, &tenant, &pb).await);
    if after_a != before_a {
        return Err(format!(
            "A differs:\nbefore {before_a:?}\nafter  {after_a:?}"
        ));
    }
    if after_b != before_b {
        return Err(format!(
            "B differs:\nbefore {before_b:?}\nafter  {after_b:?}"
        ));
    }
    Ok(())
}

async fn merge_then_unmerge_restores_both_profiles(backend: Backend) {
    let (t, r) = setup(backend).await;
    let cases = if backend == Backend::MariaDb { 16 } else { 24 };
    let mut runner = TestRunner::new(PropConfig {
        cases,
        failure_persistence: None,
        ..PropConfig::default()
    });
    let n = AtomicUsize::new(0);
    let handle = tokio::runtime::Handle::current();
    let result = runner.run(&case(), |c| {
        let i = n.fetch_add(1, Ordering::Relaxed);
        tokio::task::block_in_place(|| handle.block_on(check_case(&r, &t.conn, i, c)))
            .map_err(TestCaseError::fail)
    });
    println!(
        "merge/un-merge property on {backend:?}: {} histories",
        n.load(Ordering::Relaxed)
    );
    result.unwrap();
    t.cleanup().await;
}

// ---------------------------------------------------------------------------------------------
// Un-merge semantics.

async fn unmerge_sends_events_back_and_blocks_a_remerge(backend: Backend) {
    let (t, r) = setup(backend).await;
    let db = &t.conn;
    let tn = "t-un";
    // An automatic merge by unionid: P2 (oU2) is absorbed into P1 (oU1, uU).
    let p1 = resolved(&r, &session(tn, MP, "oU1", Some("uU"))).await;
    let p2 = resolved(&r, &text(tn, Channel::Mp, MP, "oU2", 1)).await;
    let before1 = snap(db, tn, &p1.profile_id).await;
    let before2 = snap(db, tn, &p2.profile_id).await;
    let link = session(tn, MP, "oU2", Some("uU"));
    let m = resolved(&r, &link).await;
    assert_eq!(m.absorbed, vec![p2.profile_id.clone()]);
    // After the merge, events of either side resolve to the survivor.
    let later_b = resolved(&r, &text(tn, Channel::Mp, MP, "oU2", 2)).await;
    let later_b2 = resolved(&r, &track(tn, MP2, "oU2-web", None, "cU2")).await;
    assert_eq!(later_b.profile_id, p1.profile_id);
    let _ = later_b2;
    // A cookie attached through oU2 after the merge goes with oU2's side.
    let attach = track(tn, MP, "oU2", None, "cU2-mp");
    assert_eq!(resolved(&r, &attach).await.profile_id, p1.profile_id);
    let later_a = resolved(&r, &text(tn, Channel::Mp, MP, "oU1", 3)).await;
    assert_eq!(later_a.profile_id, p1.profile_id);

    let merge_id = queries::merges(db, tn, &p1.profile_id, None, 100)
        .await
        .unwrap()[0]
        .id;
    // Another tenant cannot name the merge.
    match r.unmerge_in("t-elsewhere", merge_id, &by("mallory")).await {
        Err(ManualError::NotFound { field, .. }) => assert_eq!(field, "id"),
        other => panic!("{other:?}"),
    }
    let u = r.unmerge_in(tn, merge_id, &by("alice")).await.unwrap();
    assert_eq!(u.kind, UnmergeKind::Unmerge);
    assert_eq!(u.survivor, p1.profile_id);
    assert_eq!(u.restored, p2.profile_id);

    let a = snap(db, tn, &p1.profile_id).await;
    let b = snap(db, tn, &p2.profile_id).await;
    assert_eq!(b.status, "active");
    assert_eq!(b.merged_into, None);
    assert_eq!(a.identifiers, before1.identifiers, "survivor keeps its own");
    let b_ids: Vec<_> = b
        .identifiers
        .iter()
        .map(|(k, _, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        b_ids,
        vec![("mp_openid", "oU2"), ("web_cookie", "cU2-mp")],
        "the absorbed side plus what was attached through it"
    );
    // The separate H5 visitor (own profile) is untouched.
    assert_ne!(later_b2.profile_id, p2.profile_id);
    // Timeline rows follow the subject: the linking event and later oU2 events go to P2.
    let b_tl = &b.timeline;
    assert!(b_tl.contains(&link.id.to_string()), "{b_tl:?}");
    assert!(b_tl.contains(&attach.id.to_string()));
    assert_eq!(b_tl.len(), 4, "text 1, link, text 2, cookie track");
    assert!(before2.timeline.is_subset(b_tl));
    let mut expect_a = before1.timeline.clone();
    expect_a.insert(text(tn, Channel::Mp, MP, "oU1", 3).id.to_string());
    assert_eq!(a.timeline, expect_a);
    // Edges are retracted, not deleted; the merge and the un-merge are on record.
    assert_eq!(
        count(
            db,
            "SELECT COUNT(*) FROM identity_edges WHERE retracted_at IS NOT NULL"
        )
        .await,
        1
    );
    let merges = queries::merges(db, tn, &p1.profile_id, None, 100)
        .await
        .unwrap();
    assert!(merges[0].unmerged_at.is_some());
    assert_eq!(merges[0].unmerge_id, Some(u.unmerge_id));
    assert_eq!(
        count(
            db,
            "SELECT COUNT(*) FROM unmerges WHERE operator = 'alice' AND kind = 'unmerge'"
        )
        .await,
        1
    );
    // identity.unmerged is in the outbox, in the same transaction.
    let body: String = db
        .query_one(Statement::from_string(
            db.get_database_backend(),
            format!("SELECT body FROM bus_outbox WHERE routing_key = '{IDENTITY_UNMERGED}'"),
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index(0)
        .unwrap();
    let env = Envelope::from_bytes(body.as_bytes()).unwrap();
    let payload: IdentityUnmerged = env.decode().unwrap();
    assert_eq!(payload.survivor, p1.profile_id);
    assert_eq!(payload.restored, vec![p2.profile_id.clone()]);
    assert_eq!(payload.identifiers.len(), 2);
    assert_eq!(payload.operator, "alice");
    assert_eq!(payload.merge_id, Some(merge_id));

    // Twice is refused.
    match r.unmerge_in(tn, merge_id, &by("alice")).await {
        Err(ManualError::Conflict { code, .. }) => assert_eq!(code, "already_unmerged"),
        other => panic!("{other:?}"),
    }
    // A new event carrying both sides' identifiers does not merge them again.
    let again = resolved(&r, &session(tn, MP, "oU2", Some("uU"))).await;
    assert!(again.absorbed.is_empty());
    assert_eq!(again.refused, 1);
    let refusals = queries::refusals(db, tn, None, 10).await.unwrap();
    assert_eq!(refusals[0].reason, "manually_unmerged");
    assert_eq!(snap(db, tn, &p2.profile_id).await.status, "active");
    assert_eq!(
        count(db, "SELECT COUNT(*) FROM profiles WHERE status = 'active'").await,
        3
    );
    // An operator may join them again: the block is lifted and the guards pass.
    let mm = r
        .manual_merge(tn, &p1.profile_id, &p2.profile_id, &by("bob"))
        .await
        .unwrap();
    assert_eq!(mm.absorbed, p2.profile_id);
    assert_eq!(
        count(
            db,
            "SELECT COUNT(*) FROM merge_blocks WHERE lifted_at IS NOT NULL AND lifted_by = 'bob'"
        )
        .await,
        1
    );
    assert_eq!(
        count(
            db,
            &format!("SELECT COUNT(*) FROM bus_outbox WHERE routing_key = '{IDENTITY_MERGED}'")
        )
        .await,
        2
    );
    t.cleanup().await;
}

async fn split_one_identifier(backend: Backend) {
    let (t, r) = setup(backend).await;
    let db = &t.conn;
    let tn = "t-split";
    let p = resolved(&r, &session(tn, MP, "oS1", Some("uS"))).await;
    let web = track(tn, MP2, "oS2", Some("uS"), "cS");
    assert_eq!(resolved(&r, &web).await.profile_id, p.profile_id);
    let own = text(tn, Channel::Mp, MP2, "oS2", 7);
    // `text` uses the given app: oS2 in MP2 is the tracked subject's openid.
    assert_eq!(resolved(&r, &own).await.profile_id, p.profile_id);
    let edges_before = count(db, "SELECT COUNT(*) FROM identity_edges").await;
    // Another tenant cannot name the profile.
    match r
        .split(
            "t-elsewhere",
            &p.profile_id,
            proto::identity::IdentifierKind::MpOpenid,
            MP2,
            "oS2",
            &by("mallory"),
        )
        .await
    {
        Err(ManualError::NotFound { field, .. }) => assert_eq!(field, "id"),
        other => panic!("{other:?}"),
    }

    let u = r
        .split(
            tn,
            &p.profile_id,
            proto::identity::IdentifierKind::MpOpenid,
            MP2,
            "oS2",
            &by("carol"),
        )
        .await
        .unwrap();
    assert_eq!(u.kind, UnmergeKind::Split);
    assert_eq!(u.survivor, p.profile_id);
    let new = snap(db, tn, &u.restored).await;
    assert_eq!(new.status, "active");
    assert_eq!(
        new.identifiers,
        BTreeSet::from([("mp_openid".to_string(), MP2.to_string(), "oS2".to_string())])
    );
    assert_eq!(
        new.timeline,
        BTreeSet::from([web.id.to_string(), own.id.to_string()]),
        "events whose subject is oS2"
    );
    let old = snap(db, tn, &p.profile_id).await;
    assert_eq!(old.identifiers.len(), 3, "oS1, uS and the cookie stay");
    assert_eq!(old.timeline.len(), 1);
    assert_eq!(
        count(db, "SELECT COUNT(*) FROM identity_edges").await,
        edges_before + 1
    );
    assert!(
        count(
            db,
            "SELECT COUNT(*) FROM identity_edges WHERE retracted_at IS NOT NULL"
        )
        .await
            >= 1
    );
    assert_eq!(
        count(
            db,
            &format!("SELECT COUNT(*) FROM bus_outbox WHERE routing_key = '{IDENTITY_UNMERGED}'")
        )
        .await,
        1
    );
    // Not on that profile any more; the new profile's only identifier cannot go.
    match r
        .split(
            tn,
            &p.profile_id,
            proto::identity::IdentifierKind::MpOpenid,
            MP2,
            "oS2",
            &by("carol"),
        )
        .await
    {
        Err(ManualError::NotFound { field, .. }) => assert_eq!(field, "identifier"),
        other => panic!("{other:?}"),
    }
    match r
        .split(
            tn,
            &u.restored,
            proto::identity::IdentifierKind::MpOpenid,
            MP2,
            "oS2",
            &by("carol"),
        )
        .await
    {
        Err(ManualError::Conflict { code, .. }) => assert_eq!(code, "last_identifier"),
        other => panic!("{other:?}"),
    }
    // The next event with oS2 and uS is refused, not merged.
    let again = resolved(&r, &track(tn, MP2, "oS2", Some("uS"), "cS")).await;
    assert_eq!(again.profile_id, u.restored);
    assert!(again.absorbed.is_empty());
    assert_eq!(
        queries::refusals(db, tn, None, 1).await.unwrap()[0].reason,
        "manually_unmerged"
    );
    t.cleanup().await;
}

// ---------------------------------------------------------------------------------------------
// The operator endpoints.

async fn operator_endpoints(backend: Backend) {
    let (t, r) = setup(backend).await;
    let db = &t.conn;
    let tn = "t-api";
    let pa = resolved(&r, &session(tn, MP, "oX1", Some("uX1")))
        .await
        .profile_id;
    let pb = resolved(&r, &phone(tn, "oX2", None, "+8613912340000"))
        .await
        .profile_id;
    let pc = resolved(&r, &session(tn, MP, "oX3", Some("uX3")))
        .await
        .profile_id;

    let routes = identity_svc::api::routes(r.clone());
    let app = atest::init_service(
        App::new()
            .app_data(web::Data::new(test_support::auth::key()))
            .app_data(platform::http::json_config())
            .app_data(platform::http::path_config())
            .configure(move |c: &mut web::ServiceConfig| routes(c)),
    )
    .await;
    // Operators act through the gateway's credential: its actor is who is recorded.
    let as_user = |user: &str| {
        test_support::auth::header_with(
            test_support::auth::TEST_INTERNAL_KEY,
            tn,
            &format!("user:{user}"),
            Role::Operator,
        )
    };
    macro_rules! post {
        ($uri:expr, $body:expr $(,)?) => {
            post!($uri, $body, "dave")
        };
        ($uri:expr, $body:expr, $user:expr $(,)?) => {{
            let req = atest::TestRequest::post()
                .uri(AsRef::<str>::as_ref(&$uri))
                .insert_header(as_user($user))
                .set_json($body)
                .to_request();
            let resp = atest::call_service(&app, req).await;
            let status = resp.status().as_u16();
            let body: Value = atest::read_body_json(resp).await;
            (status, body)
        }};
    }
    let merge_body =
        |s: &str, a: &str| json!({"survivor": s, "absorbed": a, "reason": "same person"});

    // Manual merge: input errors, unknown ids, guard refusal, success.
    let (st, b) = post!(
        "/v1/profiles/merge",
        json!({"survivor": pa, "absorbed": pb})
    );
    assert_eq!(
        (st, b["code"].as_str(), b["details"]["field"].as_str()),
        (400, Some("missing_field"), Some("reason")),
        "{b}"
    );
    let (st, b) = post!("/v1/profiles/merge", json!({"survivor": pa, "reason": "x"}));
    assert_eq!(
        (st, b["details"]["field"].as_str()),
        (400, Some("absorbed")),
        "{b}"
    );
    // An actor too long for the audit trail is refused, naming it.
    let (st, b) = post!("/v1/profiles/merge", merge_body(&pa, &pb), &"x".repeat(70));
    assert_eq!(
        (st, b["code"].as_str(), b["details"]["field"].as_str()),
        (400, Some("invalid_actor"), Some("actor")),
        "{b}"
    );
    let (st, b) = post!("/v1/profiles/merge", merge_body(&pa, &pa));
    assert_eq!((st, b["code"].as_str()), (400, Some("same_profile")), "{b}");
    let (st, b) = post!("/v1/profiles/merge", merge_body("nope", &pb));
    assert_eq!((st, b["code"].as_str()), (404, Some("not_found")), "{b}");
    assert_eq!(b["details"]["field"], "survivor");
    let (st, b) = post!("/v1/profiles/merge", merge_body(&pa, &pc));
    assert_eq!(
        (st, b["code"].as_str()),
        (409, Some("conflicting_unionids")),
        "{b}"
    );
    assert_eq!(
        queries::refusals(db, tn, None, 1).await.unwrap()[0].rule,
        "manual"
    );
    // A stray `operator` or `tenant_id` (callers being migrated) is ignored.
    let mut body = merge_body(&pa, &pb);
    body["operator"] = json!("someone-else");
    body["tenant_id"] = json!("t-elsewhere");
    let (st, b) = post!("/v1/profiles/merge", body);
    assert_eq!(st, 200, "{b}");
    let merge_id = b["merge_id"].as_i64().unwrap();
    let m = &queries::merges(db, tn, &pa, None, 100).await.unwrap()[0];
    assert_eq!(
        (m.operator.as_deref(), m.reason.as_deref()),
        (Some("user:dave"), Some("same person"))
    );
    let (st, b) = post!("/v1/profiles/merge", merge_body(&pc, &pb));
    assert_eq!(
        (st, b["code"].as_str()),
        (409, Some("profile_not_active")),
        "{b}"
    );

    // Un-merge.
    let ok = json!({"reason": "wrong person"});
    let (st, b) = post!("/v1/merges/abc/unmerge", ok.clone());
    assert_eq!(
        (st, b["code"].as_str()),
        (400, Some("invalid_merge_id")),
        "{b}"
    );
    let (st, b) = post!("/v1/merges/999999/unmerge", ok.clone());
    assert_eq!((st, b["code"].as_str()), (404, Some("not_found")), "{b}");
    let (st, b) = post!(format!("/v1/merges/{merge_id}/unmerge"), json!({}), "erin");
    assert_eq!(
        (st, b["details"]["field"].as_str()),
        (400, Some("reason")),
        "{b}"
    );
    let (st, b) = post!(format!("/v1/merges/{merge_id}/unmerge"), ok.clone(), "erin");
    assert_eq!(st, 200, "{b}");
    assert_eq!(
        count(
            db,
            "SELECT COUNT(*) FROM unmerges WHERE operator = 'user:erin' AND kind = 'unmerge'"
        )
        .await,
        1
    );
    assert_eq!(b["restored"], pb.as_str());
    assert_eq!(b["identifiers"].as_array().unwrap().len(), 2);
    assert!(!b.to_string().contains("+8613912340000"), "phone masked");
    let (st, b) = post!(format!("/v1/merges/{merge_id}/unmerge"), ok.clone());
    assert_eq!(
        (st, b["code"].as_str()),
        (409, Some("already_unmerged")),
        "{b}"
    );

    // Split.
    let split = |kind: &str, ns: &str, value: &str| json!({"identifier": {"kind": kind, "namespace": ns, "value": value}, "reason": "shared phone"});
    let (st, b) = post!(format!("/v1/profiles/{pb}/split"), split("fax", "86", "1"));
    assert_eq!((st, b["code"].as_str()), (400, Some("invalid_kind")), "{b}");
    assert_eq!(b["details"]["field"], "identifier.kind");
    let (st, b) = post!(format!("/v1/profiles/{pb}/split"), json!({"reason": "r"}));
    assert_eq!(
        (st, b["details"]["field"].as_str()),
        (400, Some("identifier")),
        "{b}"
    );
    let (st, b) = post!(
        "/v1/profiles/nope/split",
        split("phone", "86", "+8613912340000")
    );
    assert_eq!((st, b["code"].as_str()), (404, Some("not_found")), "{b}");
    let (st, b) = post!(
        format!("/v1/profiles/{pa}/split"),
        split("phone", "86", "+8613912340000")
    );
    assert_eq!(
        (st, b["code"].as_str(), b["details"]["field"].as_str()),
        (404, Some("not_found"), Some("identifier")),
        "{b}"
    );
    // The phone as WeChat gives it (national number, the tenant's region), by the operator.
    let (st, b) = post!(
        format!("/v1/profiles/{pb}/split"),
        json!({"identifier": {"kind": "phone", "value": "13912340000"}, "reason": "shared phone"}),
        "frank"
    );
    assert_eq!(st, 200, "{b}");
    assert_eq!(
        count(
            db,
            "SELECT COUNT(*) FROM unmerges WHERE operator = 'user:frank' AND kind = 'split'"
        )
        .await,
        1
    );
    assert_eq!(b["kind"], "split");
    assert_eq!(b["identifiers"][0]["value"], "+86139****0000");
    let restored = b["restored"].as_str().unwrap().to_string();
    let (st, b) = post!(
        format!("/v1/profiles/{restored}/split"),
        split("phone", "86", "+8613912340000")
    );
    assert_eq!(
        (st, b["code"].as_str()),
        (409, Some("last_identifier")),
        "{b}"
    );
    assert_eq!(
        count(
            db,
            &format!("SELECT COUNT(*) FROM bus_outbox WHERE routing_key = '{IDENTITY_UNMERGED}'")
        )
        .await,
        2
    );
    t.cleanup().await;
}

test_support::on_both_backends!(
    merge_then_unmerge_restores_both_profiles,
    unmerge_sends_events_back_and_blocks_a_remerge,
    split_one_identifier,
    operator_endpoints,
);
