//! The source registry through identity-svc's internal API, on MariaDB and SQLite: a tree of
//! sources built by an operator, entry keys bound to its nodes, and touches through those keys
//! attributed to the node on the profile (`source.first.level1…`, `source.first.node`); refusals
//! naming their field; another tenant's nodes not found; an archived node attributing nothing.

use actix_web::{test as atest, web, App};
use proto::auth::Role;
use proto::channel::{Channel, EventBody};
use serde_json::{json, Value};
use test_support::auth::{header_with, TEST_INTERNAL_KEY};
use test_support::db::Backend;
use test_support::events::callback;

use crate::notes::{body_bytes, resolved, setup, As};

const TENANT: &str = "t-sources";
const OA: &str = "wxOAsources";
const OPERATOR: As = As(TENANT, "user:7", Role::Operator);
const STRANGER: As = As("t-sources-other", "user:9", Role::Operator);

async fn registry_attributes_touches_through_bound_keys(backend: Backend) {
    let (t, r) = setup(backend).await;
    let app = api!(r);
    let mut parent: Option<String> = None;
    let mut ids = Vec::new();
    for name in ["offline", "expo", "Shanghai 2026", " booth 7 "] {
        let (st, n) = call!(
            app,
            OPERATOR,
            "POST",
            "/v1/sources",
            json!({"name": name, "parent_id": parent})
        );
        assert_eq!(st, 201, "{n}");
        parent = Some(n["id"].as_str().unwrap().to_string());
        ids.push(parent.clone().unwrap());
    }
    let booth = ids[3].clone();
    let (st, n) = call!(app, OPERATOR, "GET", format!("/v1/sources/{booth}"));
    assert_eq!(st, 200);
    assert_eq!(
        n["path"],
        json!(["offline", "expo", "Shanghai 2026", "booth 7"])
    );
    assert_eq!(n["depth"], 4);
    assert_eq!(n["created_by"], "user:7");

    // Keys: bound once (201), again to the same node (200), not to another (409).
    let bind = |kind: &str, value: &str| json!({"kind": kind, "value": value});
    let uri = format!("/v1/sources/{booth}/bindings");
    let (st, _) = call!(
        app,
        OPERATOR,
        "POST",
        uri.clone(),
        bind("oa_scene", "booth_7")
    );
    assert_eq!(st, 201);
    let (st, n) = call!(
        app,
        OPERATOR,
        "POST",
        uri.clone(),
        bind("oa_scene", "booth_7")
    );
    assert_eq!(st, 200);
    assert_eq!(
        n["bindings"],
        json!([{"kind": "oa_scene", "value": "booth_7"}])
    );
    let (st, e) = call!(
        app,
        OPERATOR,
        "POST",
        format!("/v1/sources/{}/bindings", ids[1]),
        bind("oa_scene", "booth_7")
    );
    assert_eq!((st, e["code"].as_str()), (409, Some("key_taken")), "{e}");
    assert_eq!(e["details"]["node_id"], json!(booth));

    // Refusals name their field.
    let (st, e) = call!(app, OPERATOR, "POST", uri.clone(), bind("qr", "x"));
    assert_eq!((st, &e["details"]["field"]), (400, &json!("kind")), "{e}");
    let (st, e) = call!(
        app,
        OPERATOR,
        "POST",
        uri.clone(),
        bind("wecom_state", &"s".repeat(31))
    );
    assert_eq!((st, &e["details"]["field"]), (400, &json!("value")), "{e}");
    let (st, e) = call!(
        app,
        OPERATOR,
        "POST",
        "/v1/sources",
        json!({"name": "expo", "parent_id": ids[0]})
    );
    assert_eq!(
        (st, e["code"].as_str()),
        (409, Some("source_exists")),
        "{e}"
    );
    let (st, e) = call!(app, OPERATOR, "POST", "/v1/sources", json!({"name": " "}));
    assert_eq!((st, &e["details"]["field"]), (400, &json!("name")), "{e}");
    // Ten levels at most.
    let mut deep = booth.clone();
    for i in 5..=10 {
        let (st, n) = call!(
            app,
            OPERATOR,
            "POST",
            "/v1/sources",
            json!({"name": format!("l{i}"), "parent_id": deep})
        );
        assert_eq!(st, 201, "{n}");
        deep = n["id"].as_str().unwrap().to_string();
    }
    let (st, e) = call!(
        app,
        OPERATOR,
        "POST",
        "/v1/sources",
        json!({"name": "l11", "parent_id": deep})
    );
    assert_eq!(
        (st, &e["details"]["field"]),
        (400, &json!("parent_id")),
        "{e}"
    );

    // Another tenant sees none of it.
    let (st, _) = call!(app, STRANGER, "GET", format!("/v1/sources/{booth}"));
    assert_eq!(st, 404);
    let (st, _) = call!(app, STRANGER, "POST", uri.clone(), bind("oa_scene", "x"));
    assert_eq!(st, 404);
    let (_, l) = call!(app, STRANGER, "GET", "/v1/sources");
    assert_eq!(l["sources"], json!([]));
    let (_, l) = call!(app, OPERATOR, "GET", "/v1/sources");
    assert_eq!(l["sources"].as_array().unwrap().len(), 10);

    // A follower through the bound scene: first touch attributed to booth 7.
    let follow = |openid: &str, scene: &str, at: i64| {
        callback(
            TENANT,
            Channel::Oa,
            OA,
            openid,
            EventBody::Subscribe {
                scene: Some(scene.into()),
                ticket: None,
            },
            at,
        )
    };
    let fields = |app_profile: Value| app_profile["fields"].clone();
    let p = resolved(&r, &follow("o-booth", "booth_7", 1_780_000_000))
        .await
        .profile_id;
    let (st, v) = call!(app, OPERATOR, "GET", format!("/v1/profiles/{p}"));
    assert_eq!(st, 200);
    let f = fields(v);
    assert_eq!(f["source.first.channel"], "oa");
    assert_eq!(f["source.first.campaign"], "booth_7");
    assert_eq!(f["source.first.level1"], "offline");
    assert_eq!(f["source.first.level4"], "booth 7");
    assert_eq!(f["source.first.node"], json!(booth));
    // An unbound scene keeps its raw key only.
    let q = resolved(&r, &follow("o-other", "spring", 1_780_000_100))
        .await
        .profile_id;
    let (_, v) = call!(app, OPERATOR, "GET", format!("/v1/profiles/{q}"));
    assert!(fields(v).get("source.first.level1").is_none());

    // Archived: the key attributes nothing any more; taken back, it does again; unbound, 404.
    let (st, n) = call!(
        app,
        OPERATOR,
        "PATCH",
        format!("/v1/sources/{booth}"),
        json!({"archived": true})
    );
    assert_eq!(st, 200);
    assert!(n["archived_at"].is_string());
    let s = resolved(&r, &follow("o-late", "booth_7", 1_780_000_200))
        .await
        .profile_id;
    let (_, v) = call!(app, OPERATOR, "GET", format!("/v1/profiles/{s}"));
    assert!(fields(v).get("source.first.node").is_none());
    let (st, _) = call!(
        app,
        OPERATOR,
        "PATCH",
        format!("/v1/sources/{booth}"),
        json!({"archived": false, "name": "booth 7A"})
    );
    assert_eq!(st, 200);
    let del = format!("/v1/sources/{booth}/bindings/oa_scene/booth_7");
    let (st, n) = call!(app, OPERATOR, "DELETE", del.clone());
    assert_eq!((st, &n["bindings"]), (200, &json!([])));
    let (st, _) = call!(app, OPERATOR, "DELETE", del);
    assert_eq!(st, 404);
    t.cleanup().await;
}

test_support::on_both_backends!(registry_attributes_touches_through_bound_keys);
