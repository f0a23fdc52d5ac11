//! `POST /v1/analytics` on MariaDB and SQLite against a population counted by hand: cities
//! (one profile in two), stages, score bands, tag coverage (all tags and one group's), content
//! tag interest in two windows — for the whole tenant, for a condition and for a saved segment;
//! another tenant's profiles and segments never count; a dimension that does not check is 400 naming its field, another
//! tenant's tag group 404.

use actix_web::http::Method;
use actix_web::{test as atest, web, App};
use chrono::Duration;
use rules::{FactValue, ProfileFacts, ScoreFold};
use sea_orm::ConnectionTrait;
use serde_json::{json, Value};
use test_support::auth;
use test_support::db::Backend;

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
    ok!(&app, Method::POST, "/v1/analytics", OTHER, Some(by_id), 404);
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

test_support::on_both_backends!(breakdowns_equal_hand_counts);
