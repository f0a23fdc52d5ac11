//! `POST /v1/analytics` on MariaDB and SQLite against a population counted by hand: cities
//! (one profile in two), stages, score bands, tag coverage (all tags and one group's), content
//! tag interest in two windows, new profiles per day and activity by hour of the week — for the
//! whole tenant, for a condition and for a saved segment, the time dimensions fed through the
//! consumer (also across merges and un-merges), stage conversion over a period from the stage
//! changes scoring announces; another tenant's profiles and segments never
//! count; a dimension that does not check is 400 naming its field, another tenant's tag group
//! 404.

use std::collections::BTreeMap;
use std::sync::Arc;

use actix_web::http::Method;
use actix_web::{test as atest, web, App};
use chrono::Duration;
use proto::identity::{
    IdentityMerged, IdentityUnmerged, LinkRule, ProfileResolved, ProfileUpdated, Relations,
    UnmergeKind,
};
use proto::Envelope;
use rules::{FactValue, ProfileFacts, ScoreFold};
use sea_orm::ConnectionTrait;
use serde_json::{json, Value};
use tagging_svc::clock::ManualClock;
use tagging_svc::store::tagger::Handled;
use test_support::auth;
use test_support::db::{Backend, TestDb};

use crate::api::{now, req, setup};

const T: &str = "t-analytics";
const OTHER: &str = "t-analytics-other";

fn person(id: &str, cities: &[&str], stage: Option<&str>, score: Option<f64>) -> ProfileFacts {
    let mut p = ProfileFacts::new(format!("00000000-0000-4000-8000-00000000000{id}"));
    if !cities.is_empty() {
        let vs = cities
            .iter()
            .map(|c| FactValue::Str(c.to_string()))
            .collect();
        p.set_property("contact.city", vs);
    }
    if let Some(s) = stage {
        p.set_property("lead.stage", vec![FactValue::Str(s.into())]);
    }
    if let Some(v) = score {
        p.set_score("engagement", ScoreFold::constant(v, now()), now());
    }
    p
}

async fn seed(db: &sea_orm::DatabaseConnection, tenant: &str, profiles: &[ProfileFacts]) {
    for ins in rules::schema::insert_statements(tenant, profiles, 1, now(), None) {
        db.execute(db.get_database_backend().build(&ins))
            .await
            .unwrap();
    }
}

/// `(key, count)` of a dimension's buckets.
fn counts(d: &Value) -> Vec<(Value, u64)> {
    d["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b["key"].clone(), b["count"].as_u64().unwrap()))
        .collect()
}

async fn breakdowns_equal_hand_counts(backend: Backend) {
    let (db, tagger) = setup(backend).await;
    let app = api!(db, tagger);
    let (group_a, a) = group_and_tag!(&app, T, "interest", "A");
    let (_, b) = group_and_tag!(&app, T, "tier", "B");
    let today = tagger.at(T).today;
    let ago = |n: i64| today - Duration::days(n);
    let mut p1 = person("1", &["Hangzhou"], Some("sql"), Some(70.0));
    p1.add_tag(&a).add_count("c:case_study", ago(1), 1);
    let mut p2 = person("2", &["Hangzhou"], Some("mql"), Some(30.0));
    p2.add_tag(&a)
        .add_tag(&b)
        .add_count("c:case_study", ago(10), 2)
        .add_count("c:pricing", ago(2), 1)
        .add_count("e:track.page_view", ago(2), 3);
    let mut p3 = person("3", &["Shanghai"], Some("sql"), Some(85.0));
    p3.add_count("c:pricing", ago(40), 1);
    let mut p4 = person("4", &["Hangzhou", "Shanghai"], None, None);
    p4.add_tag(&b);
    let p5 = person("5", &[], None, None);
    // A bool property: counted under true and false beside no value.
    for (p, yes) in [(&mut p1, true), (&mut p2, false), (&mut p3, true)] {
        p.set_property("contact.subscribed", vec![FactValue::Bool(yes)]);
    }
    // Numbers: p4 has two in one band (counted once there), p2 one in each; p1 one given
    // twice (stored once).
    p4.set_property(
        "contact.age",
        vec![FactValue::Num(30.0), FactValue::Num(31.0)],
    );
    p2.set_property(
        "contact.age",
        vec![FactValue::Num(20.0), FactValue::Num(50.0)],
    );
    p1.set_property(
        "contact.age",
        vec![FactValue::Num(45.0), FactValue::Num(45.0)],
    );
    seed(&db.conn, T, &[p1, p2, p3, p4, p5]).await;
    seed(
        &db.conn,
        OTHER,
        &[person("9", &["Hangzhou"], Some("sql"), Some(99.0))],
    )
    .await;

    let dims = json!([
        {"kind": "property", "key": "contact.city"},
        {"kind": "stage"},
        {"kind": "bands", "key": "score.engagement", "bounds": [40, 80]},
        {"kind": "tags"},
        {"kind": "content_tags", "window": {"type": "last", "days": 30}},
        {"kind": "content_tags", "window": {"type": "last", "days": 90}},
        {"kind": "tags", "group_id": group_a},
        {"kind": "property", "key": "contact.subscribed"},
        {"kind": "bands", "key": "contact.age", "bounds": [40]},
    ]);
    let all = ok!(
        &app,
        Method::POST,
        "/v1/analytics",
        T,
        Some(json!({"dimensions": dims})),
        200
    );
    assert_eq!(all["total"], 5, "{all:#}");
    let d = &all["dimensions"];
    assert_eq!(
        counts(&d[0]),
        vec![(json!("Hangzhou"), 3), (json!("Shanghai"), 2)]
    );
    assert_eq!(
        (d[0]["with_value"].as_u64(), d[0]["missing"].as_u64()),
        (Some(4), Some(1))
    );
    assert_eq!(d[0]["buckets"][0]["share"], 0.6);
    assert_eq!(counts(&d[1]), vec![(json!("sql"), 2), (json!("mql"), 1)]);
    assert_eq!(d[1]["missing"], 2);
    assert_eq!(
        counts(&d[2]),
        vec![
            (json!({"to": 40.0}), 1),
            (json!({"from": 40.0, "to": 80.0}), 1),
            (json!({"from": 80.0}), 1)
        ]
    );
    assert_eq!(
        (d[2]["with_value"].as_u64(), d[2]["missing"].as_u64()),
        (Some(3), Some(2))
    );
    let mut tags = counts(&d[3]);
    tags.sort_by_key(|(k, _)| k.to_string());
    let mut want = vec![(json!(a), 2), (json!(b), 2)];
    want.sort_by_key(|(k, _)| k.to_string());
    assert_eq!(tags, want);
    assert_eq!(d[3]["with_value"], 3);
    assert!(d[3]["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x["label"] == "A"));
    assert_eq!(
        counts(&d[4]),
        vec![(json!("case_study"), 2), (json!("pricing"), 1)]
    );
    assert_eq!(d[4]["with_value"], 2);
    assert_eq!(
        counts(&d[5]),
        vec![(json!("case_study"), 2), (json!("pricing"), 2)]
    );
    assert_eq!(d[5]["with_value"], 3);
    assert_eq!(counts(&d[6]), vec![(json!(a), 2)]);
    assert_eq!(counts(&d[7]), vec![(json!(true), 2), (json!(false), 1)]);
    assert_eq!(
        (d[7]["with_value"].as_u64(), d[7]["missing"].as_u64()),
        (Some(3), Some(2))
    );
    assert_eq!(
        counts(&d[8]),
        vec![(json!({"to": 40.0}), 2), (json!({"from": 40.0}), 2)]
    );
    assert_eq!(
        (d[8]["with_value"].as_u64(), d[8]["missing"].as_u64()),
        (Some(3), Some(2))
    );

    // A segment: the Hangzhou profiles.
    let hangzhou = json!({"version": 1, "root": {"type": "property", "key": "contact.city",
        "value_type": "string", "op": "eq", "value": "Hangzhou"}});
    let body =
        json!({"condition": hangzhou.clone(), "dimensions": [{"kind": "stage"}, {"kind": "tags"}]});
    let seg = ok!(&app, Method::POST, "/v1/analytics", T, Some(body), 200);
    assert_eq!(seg["total"], 3, "{seg:#}");
    assert_eq!(
        counts(&seg["dimensions"][0]),
        vec![(json!("mql"), 1), (json!("sql"), 1)]
    );
    assert_eq!(seg["dimensions"][0]["missing"], 1);
    let shares: Vec<f64> = seg["dimensions"][1]["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["share"].as_f64().unwrap())
        .collect();
    assert_eq!(shares, vec![2.0 / 3.0, 2.0 / 3.0]);

    // The same segment saved: analysed by its id.
    let saved = ok!(
        &app,
        Method::POST,
        "/v1/saved-segments",
        T,
        Some(json!({"name": "Hangzhou", "condition": hangzhou.clone()})),
        201
    );
    let by_id = json!({"segment_id": saved["id"], "dimensions": [{"kind": "stage"}]});
    let seg = ok!(
        &app,
        Method::POST,
        "/v1/analytics",
        T,
        Some(by_id.clone()),
        200
    );
    assert_eq!(seg["total"], 3, "{seg:#}");
    assert!(seg.get("as_of").is_none(), "not refreshed on schedule yet");
    ok!(&app, Method::POST, "/v1/analytics", OTHER, Some(by_id), 404);

    // Its scheduled refresh keeps its breakdowns: asked what was kept (here stage, tags and the
    // two most frequent cities), it is answered as of that refresh, as the live answer was.
    assert_eq!(
        tagging_svc::store::saved::refresh_due(&tagger, 10)
            .await
            .unwrap(),
        1
    );
    let kept_dims = json!([{"kind": "stage"}, {"kind": "tags"},
        {"kind": "property", "key": "contact.city", "limit": 2}]);
    let kept_body = json!({"segment_id": saved["id"], "dimensions": kept_dims});
    let kept = ok!(
        &app,
        Method::POST,
        "/v1/analytics",
        T,
        Some(kept_body.clone()),
        200
    );
    let live_body = json!({"condition": hangzhou.clone(), "dimensions": kept_dims});
    let live = ok!(&app, Method::POST, "/v1/analytics", T, Some(live_body), 200);
    assert!(kept["as_of"].is_string(), "{kept:#}");
    assert_eq!(kept["total"], live["total"]);
    assert_eq!(kept["dimensions"], live["dimensions"], "{kept:#}\n{live:#}");
    // A new Hangzhou customer: the kept answer stays as of the refresh; a dimension it did not
    // keep is answered from the facts now.
    seed(
        &db.conn,
        T,
        &[person("6", &["Hangzhou"], Some("sql"), None)],
    )
    .await;
    let again = ok!(&app, Method::POST, "/v1/analytics", T, Some(kept_body), 200);
    assert_eq!(
        (again["total"].clone(), &again["as_of"]),
        (json!(3), &kept["as_of"])
    );
    let not_kept = json!({"segment_id": saved["id"], "dimensions": [{"kind": "bands",
        "key": "score.engagement", "bounds": [50]}]});
    let now_answer = ok!(&app, Method::POST, "/v1/analytics", T, Some(not_kept), 200);
    assert_eq!(now_answer["total"], 4, "{now_answer:#}");
    assert!(now_answer.get("as_of").is_none());
    let both = json!({"segment_id": saved["id"], "condition": hangzhou, "dimensions": [{"kind": "stage"}]});
    let e = ok!(&app, Method::POST, "/v1/analytics", T, Some(both), 400);
    assert_eq!(e["details"]["field"], "segment_id", "{e}");

    // Refusals.
    let bad = json!({"dimensions": [{"kind": "stage"}, {"kind": "bands", "key": "score.engagement", "bounds": []}]});
    let e = ok!(&app, Method::POST, "/v1/analytics", T, Some(bad), 400);
    assert_eq!(e["details"]["field"], "dimensions[1].bounds", "{e}");
    let e = ok!(
        &app,
        Method::POST,
        "/v1/analytics",
        T,
        Some(json!({"dimensions": []})),
        400
    );
    assert_eq!(e["details"]["field"], "dimensions", "{e}");
    let e = ok!(
        &app,
        Method::POST,
        "/v1/analytics",
        T,
        Some(json!({"dimensions": [{"kind": "colour"}]})),
        400
    );
    assert_eq!(e["code"], "invalid_json", "{e}");
    let foreign = json!({"dimensions": [{"kind": "tags", "group_id": group_a}]});
    ok!(
        &app,
        Method::POST,
        "/v1/analytics",
        OTHER,
        Some(foreign),
        404
    );
    // The other tenant sees only its own profile.
    let theirs = ok!(
        &app,
        Method::POST,
        "/v1/analytics",
        OTHER,
        Some(json!({"dimensions": [{"kind": "stage"}]})),
        200
    );
    assert_eq!(theirs["total"], 1);
    db.cleanup().await;
}

/// A channel event of `kind` at `at`, resolved to `profile` (`created` when it made it).
fn resolved(tenant: &str, profile: &str, kind: &str, at: &str, created: bool) -> Envelope {
    let payload = if kind == "channel.track.page_view" {
        json!({"subject": {"anonymous_id": profile}, "kind": "page_view", "page": "/"})
    } else {
        json!({})
    };
    let event = Envelope::builder(kind, tenant, payload)
        .occurred_at(at.parse().unwrap())
        .build();
    resolved_again(tenant, profile, &event, created)
}

/// A `profile.resolved` message of its own carrying `event`.
fn resolved_again(tenant: &str, profile: &str, event: &Envelope, created: bool) -> Envelope {
    let p = ProfileResolved {
        profile_id: profile.into(),
        created,
        event: event.clone(),
        identifiers: vec![],
    };
    Envelope::of(tenant, &p).build()
}

fn state(profile: &str, version: i64, city: &str) -> ProfileUpdated {
    let fields: BTreeMap<String, Value> = [("contact.city".to_string(), json!(city))].into();
    ProfileUpdated {
        profile_id: profile.into(),
        version,
        changed: fields.keys().cloned().collect(),
        fields,
        relations: Relations::default(),
        cause_event: None,
    }
}

/// The inner channel event of a `profile.resolved` message.
fn inner(env: &Envelope) -> Envelope {
    env.decode::<ProfileResolved>().unwrap().event
}

/// `(day, count)` of a `new_profiles` answer's days with profiles.
fn days_with(d: &Value) -> Vec<(String, u64)> {
    counts(d)
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| (k.as_str().unwrap().to_string(), n))
        .collect()
}

/// `(weekday, hour, events)` of an `activity_hours` answer's hours with events.
fn hours_with(d: &Value) -> Vec<(u64, u64, u64)> {
    assert_eq!(d["buckets"].as_array().unwrap().len(), 168, "{d}");
    counts(d)
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| {
            (
                k["weekday"].as_u64().unwrap(),
                k["hour"].as_u64().unwrap(),
                n,
            )
        })
        .collect()
}

/// New profiles per day and activity by hour of the week, of a tenant in Asia/Shanghai, counted
/// by hand: creation days and hours across the day boundary (17:00Z is 01:00 the next day), a
/// profile known first by its state whose creating event arrives later, an event redelivered and
/// carried again by another message, a condition and a saved segment (on the first-seen
/// property), then a merge (the survivor keeps the earlier first-seen; the absorbed profile's
/// events count for the survivor) and its un-merge (all back).
/// A migrated database and a tagger whose clock stands at noon of 2026-11-30 in Beijing.
async fn at_noon(backend: Backend) -> (TestDb, tagging_svc::store::tagger::Tagger) {
    let db = TestDb::migrated::<tagging_svc::store::Migrator>(backend).await;
    let cfg = tagging_svc::Config::new(
        platform::config::HttpConfig {
            bind: "127.0.0.1:0".parse().unwrap(),
            workers: 1,
        },
        db.cfg.clone(),
    );
    let clock = ManualClock::new("2026-11-30T04:00:00Z".parse().unwrap());
    let tagger = tagging_svc::tagger(db.conn.clone(), cfg, Arc::new(clock));
    (db, tagger)
}

async fn time_dimensions_equal_hand_counts(backend: Backend) {
    const TT: &str = "t-analytics-time";
    let (db, tagger) = at_noon(backend).await;
    let handle = |env: Envelope| {
        let tagger = tagger.clone();
        async move { tagger.handle(&env).await.unwrap() }
    };
    let app = api!(db, tagger);
    let (pa, pb, pc, pd) = ("p-a", "p-b", "p-c", "p-d");
    let pv = "channel.track.page_view";
    // pA: created Tuesday 2026-11-03 01:00 local, viewing twice in that hour.
    let e1 = resolved(TT, pa, pv, "2026-11-02T17:00:00Z", true);
    let e2 = resolved(TT, pa, pv, "2026-11-02T17:30:00Z", false);
    // pB: created Monday 2026-11-02 23:59 local, by a subscription.
    let e3 = resolved(TT, pb, "channel.oa.subscribe", "2026-11-02T15:59:00Z", true);
    for e in [&e1, &e2, &e3] {
        handle(e.clone()).await;
    }
    // pC: its state first (seen now, the 30th), then its creating event, Thursday the 5th 10:00.
    handle(Envelope::of(TT, &state(pc, 1, "Hangzhou")).build()).await;
    handle(resolved(TT, pc, pv, "2026-11-05T02:00:00Z", true)).await;
    handle(Envelope::of(TT, &state(pa, 1, "Hangzhou")).build()).await;
    // pD: created Friday the 6th 04:00 local.
    handle(resolved(TT, pd, pv, "2026-11-05T20:00:00Z", true)).await;
    handle(Envelope::of(TT, &state(pd, 1, "Shanghai")).build()).await;
    // e2 again: the same message, and another message carrying the same event.
    assert_eq!(handle(e2.clone()).await, Handled::Duplicate);
    assert_eq!(
        handle(resolved_again(TT, pa, &inner(&e2), false)).await,
        Handled::Done(vec![])
    );
    // Another tenant's profile, created the same day.
    handle(resolved(
        "t-analytics-time-other",
        "p-x",
        pv,
        "2026-11-02T17:00:00Z",
        true,
    ))
    .await;

    let dims = json!([
        {"kind": "new_profiles", "from": "2026-11-01", "to": "2026-11-30"},
        {"kind": "activity_hours", "window": {"type": "all_time"}},
        {"kind": "activity_hours", "event": "track.page_view", "window": {"type": "all_time"}},
        {"kind": "activity_hours", "window": {"type": "range", "from": "2026-11-03", "to": "2026-11-05"}},
        {"kind": "new_profiles"},
    ]);
    let ask = |body: Value| req(Method::POST, "/v1/analytics", TT, Some(body));
    let all = call!(&app, ask(json!({"dimensions": dims})));
    assert_eq!(all.0, 200, "{:#}", all.1);
    let (all, d) = (&all.1, &all.1["dimensions"]);
    assert_eq!(all["total"], 4, "{all:#}");
    let mut by_day = vec![
        ("2026-11-02".to_string(), 1),
        ("2026-11-03".to_string(), 1),
        ("2026-11-05".to_string(), 1),
        ("2026-11-06".to_string(), 1),
    ];
    assert_eq!(days_with(&d[0]), by_day);
    assert_eq!(d[0]["buckets"].as_array().unwrap().len(), 30);
    assert_eq!(d[0]["buckets"][2]["share"], 0.25);
    assert_eq!(
        (&d[0]["with_value"], &d[0]["missing"]),
        (&json!(4), &json!(0))
    );
    let every = vec![(1, 23, 1), (2, 1, 2), (4, 10, 1), (5, 4, 1)];
    assert_eq!(hours_with(&d[1]), every);
    assert_eq!(d[1]["events"], 5);
    assert_eq!(d[1]["buckets"][24 + 1]["share"], 0.4);
    assert!(d[1].get("with_value").is_none(), "{:#}", d[1]);
    assert_eq!(hours_with(&d[2]), vec![(2, 1, 2), (4, 10, 1), (5, 4, 1)]);
    assert_eq!(d[2]["key"], "track.page_view");
    assert_eq!(hours_with(&d[3]), vec![(2, 1, 2), (4, 10, 1)]);
    // The last 30 days up to the 30th: the same days.
    assert_eq!(days_with(&d[4]), by_day);
    assert_eq!(d[4]["buckets"][0]["key"], "2026-11-01");

    // A condition (Hangzhou: pA, pC) and a saved segment (first seen from the 4th: pC, pD).
    let hangzhou = json!({"version": 1, "root": {"type": "property", "key": "contact.city",
        "value_type": "string", "op": "eq", "value": "Hangzhou"}});
    let shanghai = json!({"version": 1, "root": {"type": "property", "key": "contact.city",
        "value_type": "string", "op": "eq", "value": "Shanghai"}});
    let since_4th = json!({"version": 1, "root": {"type": "property",
        "key": "profile.first_seen_at", "value_type": "datetime", "op": "gte",
        "value": "2026-11-04T00:00:00Z"}});
    let time_dims = json!([
        {"kind": "new_profiles", "from": "2026-11-01", "to": "2026-11-30"},
        {"kind": "activity_hours", "window": {"type": "all_time"}},
    ]);
    let of = |c: &Value| json!({"condition": c, "dimensions": time_dims});
    let (_, seg) = call!(&app, ask(of(&hangzhou)));
    assert_eq!(seg["total"], 2, "{seg:#}");
    let d = &seg["dimensions"];
    assert_eq!(
        days_with(&d[0]),
        vec![("2026-11-03".into(), 1), ("2026-11-05".into(), 1)]
    );
    assert_eq!(d[0]["missing"], 0);
    assert_eq!(hours_with(&d[1]), vec![(2, 1, 2), (4, 10, 1)]);
    let (status, saved) = call!(
        &app,
        req(
            Method::POST,
            "/v1/saved-segments",
            TT,
            Some(json!({"name": "new since the 4th", "condition": since_4th}))
        )
    );
    assert_eq!(status, 201, "{saved}");
    let by_id = json!({"segment_id": saved["id"], "dimensions": time_dims});
    let (_, seg) = call!(&app, ask(by_id.clone()));
    assert_eq!(seg["total"], 2, "{seg:#}");
    let d = &seg["dimensions"];
    assert_eq!(
        days_with(&d[0]),
        vec![("2026-11-05".into(), 1), ("2026-11-06".into(), 1)]
    );
    assert_eq!(hours_with(&d[1]), vec![(4, 10, 1), (5, 4, 1)]);

    // pA merged into pD: pD keeps pA's earlier first-seen (the 3rd) and counts its events.
    let m = IdentityMerged {
        survivor: pd.into(),
        absorbed: vec![pa.into()],
        rule: LinkRule::Unionid,
        evidence_event: None,
        operator: None,
    };
    handle(Envelope::of(TT, &m).build()).await;
    let (_, all) = call!(&app, ask(json!({"dimensions": time_dims})));
    assert_eq!(all["total"], 3, "{all:#}");
    by_day.pop();
    assert_eq!(days_with(&all["dimensions"][0]), by_day);
    assert_eq!(hours_with(&all["dimensions"][1]), every);
    let (_, seg) = call!(&app, ask(of(&shanghai)));
    assert_eq!(
        hours_with(&seg["dimensions"][1]),
        vec![(2, 1, 2), (5, 4, 1)]
    );
    assert_eq!(
        days_with(&seg["dimensions"][0]),
        vec![("2026-11-03".into(), 1)]
    );
    // The first-seen property followed: pD left the saved segment.
    let (_, seg) = call!(&app, ask(by_id.clone()));
    assert_eq!(seg["total"], 1, "{seg:#}");
    assert_eq!(hours_with(&seg["dimensions"][1]), vec![(4, 10, 1)]);

    // The un-merge gives pA its events and its first-seen back.
    let moved = [&e1, &e2].iter().map(|e| inner(e).id).collect::<Vec<_>>();
    let u = IdentityUnmerged {
        kind: UnmergeKind::Unmerge,
        survivor: pd.into(),
        restored: vec![pa.into()],
        identifiers: vec![],
        merge_id: Some(1),
        operator: "ops".into(),
        reason: "wrong".into(),
        moved_events: moved,
        states: vec![state(pd, 2, "Shanghai"), state(pa, 2, "Hangzhou")],
    };
    handle(Envelope::of(TT, &u).build()).await;
    let (_, all) = call!(&app, ask(json!({"dimensions": time_dims})));
    assert_eq!(all["total"], 4, "{all:#}");
    by_day.push(("2026-11-06".into(), 1));
    assert_eq!(days_with(&all["dimensions"][0]), by_day);
    assert_eq!(hours_with(&all["dimensions"][1]), every);
    let (_, seg) = call!(&app, ask(of(&shanghai)));
    assert_eq!(hours_with(&seg["dimensions"][1]), vec![(5, 4, 1)]);
    assert_eq!(
        days_with(&seg["dimensions"][0]),
        vec![("2026-11-06".into(), 1)]
    );
    let (_, seg) = call!(&app, ask(of(&hangzhou)));
    assert_eq!(
        hours_with(&seg["dimensions"][1]),
        vec![(2, 1, 2), (4, 10, 1)]
    );
    let (_, seg) = call!(&app, ask(by_id));
    assert_eq!(seg["total"], 2, "{seg:#}");

    // Refusals name the field.
    for (dim, field) in [
        (
            json!({"kind": "new_profiles", "from": "2026-13-01"}),
            "dimensions[1].from",
        ),
        (
            json!({"kind": "new_profiles", "from": "2025-01-01", "to": "2026-11-30"}),
            "dimensions[1].from",
        ),
        (
            json!({"kind": "new_profiles", "to": "30/11/2026"}),
            "dimensions[1].to",
        ),
        (
            json!({"kind": "activity_hours", "event": "Page View"}),
            "dimensions[1].event",
        ),
        (
            json!({"kind": "activity_hours", "window": {"type": "last", "days": 0}}),
            "dimensions[1].window.days",
        ),
    ] {
        let (status, e) = call!(&app, ask(json!({"dimensions": [{"kind": "stage"}, dim]})));
        assert_eq!(status, 400, "{e}");
        assert_eq!(e["details"]["field"], field, "{e}");
    }
    db.cleanup().await;
}

/// A stage entry scoring announces: `profile` entered `to` at `at` (history entry `id`).
fn entered(tenant: &str, profile: &str, to: &str, at: &str, id: i64) -> Envelope {
    let at: chrono::DateTime<chrono::Utc> = at.parse().unwrap();
    let c = proto::scoring::StageChanged {
        profile_id: profile.into(),
        from: None,
        to: to.into(),
        actor_kind: proto::scoring::ActorKind::Rule,
        actor: "auto".into(),
        reason: "entry condition".into(),
        history_id: id,
        owner: None,
        at,
    };
    Envelope::of(tenant, &c).occurred_at(at).build()
}

/// `(from, to, count, of)` of a `stage_conversion` answer (`to` empty for the entries).
fn conversion(d: &Value) -> Vec<(String, String, u64, Option<u64>)> {
    d["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["key"]["from"].as_str().unwrap().to_string(),
                b["key"]["to"].as_str().unwrap_or_default().to_string(),
                b["count"].as_u64().unwrap(),
                b["of"].as_u64(),
            )
        })
        .collect()
}

async fn stage_conversion_equals_hand_counts(backend: Backend) {
    const TS: &str = "t-analytics-stages";
    let (db, tagger) = at_noon(backend).await;
    let handle = |env: Envelope| {
        let tagger = tagger.clone();
        async move { tagger.handle(&env).await.unwrap() }
    };
    let app = api!(db, tagger);
    for (p, city) in [
        ("p1", "Hangzhou"),
        ("p2", "Hangzhou"),
        ("p3", "Shanghai"),
        ("p4", "Shanghai"),
        ("p5", "Shanghai"),
    ] {
        handle(Envelope::of(TS, &state(p, 1, city)).build()).await;
    }
    // p1: new → mql → sql in November; p2: new → mql; p3: mql in October, sql in November;
    // p4: new (its message delivered twice); p5: new → mql, then merged into p4.
    let moves = [
        ("p1", "new", "2026-11-02T02:00:00Z"),
        ("p1", "mql", "2026-11-10T02:00:00Z"),
        ("p1", "sql", "2026-11-20T02:00:00Z"),
        ("p2", "new", "2026-11-05T02:00:00Z"),
        ("p2", "mql", "2026-11-25T02:00:00Z"),
        ("p3", "mql", "2026-10-20T02:00:00Z"),
        ("p3", "sql", "2026-11-12T02:00:00Z"),
        ("p4", "new", "2026-11-15T02:00:00Z"),
        ("p5", "new", "2026-11-03T02:00:00Z"),
        ("p5", "mql", "2026-11-04T02:00:00Z"),
    ];
    for (i, (p, to, at)) in moves.iter().enumerate() {
        handle(entered(TS, p, to, at, i as i64 + 1)).await;
    }
    handle(entered(TS, "p4", "new", "2026-11-15T02:00:00Z", 8)).await;
    let m = IdentityMerged {
        survivor: "p4".into(),
        absorbed: vec!["p5".into()],
        rule: LinkRule::Unionid,
        evidence_event: None,
        operator: None,
    };
    handle(Envelope::of(TS, &m).build()).await;

    let ask = |body: Value| req(Method::POST, "/v1/analytics", TS, Some(body));
    let dims = json!([
        {"kind": "stage_conversion", "from": "2026-11-01", "to": "2026-11-30"},
        {"kind": "stage_conversion", "from": "2026-11-15"},
    ]);
    let (status, all) = call!(&app, ask(json!({"dimensions": dims})));
    assert_eq!(status, 200, "{all:#}");
    assert_eq!(all["total"], 4, "p5 was merged away: {all:#}");
    let s = |a: &str, b: &str, n: u64, of: Option<u64>| (a.to_string(), b.to_string(), n, of);
    assert_eq!(
        conversion(&all["dimensions"][0]),
        vec![
            s("mql", "", 2, None),
            s("mql", "sql", 1, Some(2)),
            s("new", "", 3, None),
            s("new", "mql", 2, Some(3)),
            s("new", "sql", 1, Some(3)),
            s("sql", "", 2, None),
        ],
        "{all:#}"
    );
    assert_eq!(all["dimensions"][0]["kind"], "stage_conversion");
    assert_eq!(all["dimensions"][0]["with_value"], 4);
    assert_eq!(
        all["dimensions"][0]["buckets"][3]["share"],
        json!(2.0 / 3.0)
    );
    // From the 15th: p4's new, p1's sql, p2's mql, and nothing after any of them.
    assert_eq!(
        conversion(&all["dimensions"][1]),
        vec![
            s("mql", "", 1, None),
            s("new", "", 1, None),
            s("sql", "", 1, None)
        ]
    );

    // The Hangzhou segment: p1 and p2.
    let hangzhou = json!({"version": 1, "root": {"type": "property", "key": "contact.city",
        "value_type": "string", "op": "eq", "value": "Hangzhou"}});
    let (status, seg) = call!(
        &app,
        ask(json!({"condition": hangzhou, "dimensions": [dims[0].clone()]}))
    );
    assert_eq!(status, 200, "{seg:#}");
    assert_eq!(
        conversion(&seg["dimensions"][0]),
        vec![
            s("mql", "", 2, None),
            s("mql", "sql", 1, Some(2)),
            s("new", "", 2, None),
            s("new", "mql", 2, Some(2)),
            s("new", "sql", 1, Some(2)),
            s("sql", "", 1, None),
        ],
        "{seg:#}"
    );
    let (status, e) = call!(
        &app,
        ask(
            json!({"dimensions": [{"kind": "stage_conversion", "from": "2026-12-01", "to": "2026-11-30"}]})
        )
    );
    assert_eq!(status, 400, "{e}");
    assert_eq!(e["details"]["field"], "dimensions[0].from", "{e}");
    db.cleanup().await;
}

test_support::on_both_backends!(
    breakdowns_equal_hand_counts,
    time_dimensions_equal_hand_counts,
    stage_conversion_equals_hand_counts
);
