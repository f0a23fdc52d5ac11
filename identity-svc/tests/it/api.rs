//! The internal HTTP API over a SQLite database: profile by id and by identifier (phone masked,
//! found by its national number too), timeline pages, merges, refusals, errors in the common
//! body naming the field, and the service credential every route requires.

use actix_web::{test, web, App};
use identity_svc::domain::pii::Pii;
use identity_svc::domain::Policy;
use identity_svc::store::{Outcome, Resolver};
use platform::http::{Principal, ServiceKey, PRINCIPAL_HEADER};
use proto::auth::Role;
use proto::sdk::{MpPhoneVerified, MpSessionStarted};
use proto::Envelope;
use sea_orm_migration::MigratorTrait;
use serde_json::{json, Value};

const INTERNAL_KEY: &str = "api-test-internal-key-0123456789abcdef";

fn key() -> ServiceKey {
    ServiceKey::derive(INTERNAL_KEY)
}

/// The credential the gateway sends for `tenant`, signed under `internal_key`.
fn credential(internal_key: &str, tenant: &str) -> (&'static str, String) {
    let p = Principal::new(tenant, "user:ops", Role::Operator);
    (PRINCIPAL_HEADER, ServiceKey::derive(internal_key).sign(&p))
}

async fn db() -> (sea_orm::DatabaseConnection, std::path::PathBuf) {
    let path = std::env::temp_dir().join(format!("identity-api-{}.db", uuid::Uuid::now_v7()));
    let cfg = platform::config::DbConfig::new(format!("sqlite://{}", path.display()));
    let conn = platform::db::connect(&cfg, true).await.unwrap();
    identity_svc::store::Migrator::up(&conn, None)
        .await
        .unwrap();
    (conn, path)
}

fn session(openid: &str, unionid: &str) -> Envelope {
    let p = MpSessionStarted {
        app_id: "wxMP".into(),
        openid: openid.into(),
        unionid: Some(unionid.into()),
    };
    Envelope::of("t1", &p).build()
}

fn phone(openid: &str, unionid: &str, number: &str) -> Envelope {
    let p = MpPhoneVerified {
        app_id: "wxMP".into(),
        openid: openid.into(),
        unionid: Some(unionid.into()),
        phone_e164: number.into(),
        country_code: "86".into(),
    };
    Envelope::of("t1", &p).build()
}

#[actix_web::test]
async fn profile_timeline_merges_and_refusals() {
    let (conn, path) = db().await;
    let pii = Pii::from_base64(&Pii::generate_base64()).unwrap();
    let r = Resolver::new(
        conn.clone(),
        Some(pii.clone()),
        Policy::from_config(&Default::default()),
        3,
    );
    let Outcome::Resolved(first) = r
        .resolve(&phone("o1", "u1", "+8613912345678"))
        .await
        .unwrap()
    else {
        panic!("not resolved")
    };
    for i in 0..4 {
        r.resolve(&session(&format!("o1x{i}"), "u1")).await.unwrap();
    }
    // A second person with another unionid claims the same verified phone: refused.
    r.resolve(&phone("o2", "u2", "+8613912345678"))
        .await
        .unwrap();

    let routes = identity_svc::api::routes(r.clone());
    let app = test::init_service(
        App::new()
            .app_data(web::Data::new(key()))
            .app_data(platform::http::query_config())
            .configure(move |c: &mut web::ServiceConfig| routes(c)),
    )
    .await;
    let get = |uri: String| {
        test::TestRequest::get()
            .uri(&uri)
            .insert_header(credential(INTERNAL_KEY, "t1"))
            .to_request()
    };

    let p: Value =
        test::call_and_read_body_json(&app, get(format!("/v1/profiles/{}", first.profile_id)))
            .await;
    assert_eq!(p["status"], "active");
    assert_eq!(p["identifiers"].as_array().unwrap().len(), 7, "{p}");
    let phone = p["identifiers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["kind"] == "phone")
        .unwrap();
    assert_eq!(phone["value"], "+86139****5678");
    assert!(!p.to_string().contains("+8613912345678"));

    // The phone in E.164, as WeChat's national number (the tenant's region, CN), with spaces,
    // with or without its namespace; a stray tenant_id is ignored.
    for q in [
        "kind=phone&namespace=86&value=%2B8613912345678",
        "kind=phone&value=13912345678",
        "kind=phone&namespace=86&value=13912345678",
        "kind=phone&value=%2B86%20139%201234%205678",
        "kind=phone&value=008613912345678&tenant_id=other",
    ] {
        let by: Value =
            test::call_and_read_body_json(&app, get(format!("/v1/profiles/by-identifier?{q}")))
                .await;
        assert_eq!(by["id"], first.profile_id, "{q}");
    }

    let page: Value = test::call_and_read_body_json(
        &app,
        get(format!(
            "/v1/profiles/{}/timeline?limit=3",
            first.profile_id
        )),
    )
    .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 3);
    let cursor = page["next_cursor"].as_str().unwrap().to_string();
    let page2: Value = test::call_and_read_body_json(
        &app,
        get(format!(
            "/v1/profiles/{}/timeline?limit=3&cursor={cursor}",
            first.profile_id
        )),
    )
    .await;
    assert_eq!(page2["items"].as_array().unwrap().len(), 2, "5 events");
    assert!(page2["next_cursor"].is_null(), "{page2}");

    let merges: Value = test::call_and_read_body_json(
        &app,
        get(format!("/v1/profiles/{}/merges", first.profile_id)),
    )
    .await;
    assert_eq!(merges["items"].as_array().unwrap().len(), 0);
    let refusals: Value =
        test::call_and_read_body_json(&app, get("/v1/merge-refusals?limit=5".into())).await;
    assert_eq!(refusals["items"][0]["reason"], "conflicting_unionids");

    for (uri, status, code) in [
        ("/v1/profiles/nope".to_string(), 404, "not_found"),
        ("/v1/profiles/nope/merges".to_string(), 404, "not_found"),
        ("/v1/profiles/nope/edges".to_string(), 404, "not_found"),
        ("/v1/profiles/nope/timeline".to_string(), 404, "not_found"),
        (
            "/v1/profiles/by-identifier?kind=fax&namespace=x&value=1".into(),
            400,
            "invalid_kind",
        ),
        (
            "/v1/profiles/by-identifier?kind=phone&namespace=86".into(),
            400,
            "missing_field",
        ),
        (
            "/v1/profiles/by-identifier?kind=oa_openid&value=o1".into(),
            400,
            "missing_field",
        ),
        (
            "/v1/profiles/by-identifier?kind=phone&namespace=86&value=abc".into(),
            400,
            "invalid_value",
        ),
        (
            "/v1/profiles/by-identifier?kind=phone&namespace=xx&value=13912345678".into(),
            400,
            "invalid_namespace",
        ),
        (
            "/v1/profiles/by-identifier?kind=phone&namespace=86&value=%2B14155550134".into(),
            400,
            "namespace_mismatch",
        ),
        (
            "/v1/profiles/by-identifier?kind=phone&value=13912340000".into(),
            404,
            "not_found",
        ),
        (
            format!("/v1/profiles/{}/timeline?cursor=zzz", first.profile_id),
            400,
            "invalid_cursor",
        ),
        (
            format!("/v1/profiles/{}/timeline?limit=0", first.profile_id),
            400,
            "invalid_limit",
        ),
    ] {
        let resp = test::call_service(&app, get(uri.clone())).await;
        assert_eq!(resp.status().as_u16(), status, "{uri}");
        let body: Value = test::read_body_json(resp).await;
        assert_eq!(body["code"], code, "{uri}");
    }
    conn.close().await.unwrap();
    for s in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{s}", path.display()));
    }
}

/// Every route of the API, with a plausible path and body.
fn every_route() -> Vec<(&'static str, &'static str, Option<Value>)> {
    let reason = Some(json!({"reason": "r"}));
    vec![
        ("GET", "/v1/profiles/p1", None),
        (
            "GET",
            "/v1/profiles/by-identifier?kind=oa_openid&namespace=wxOA&value=o1",
            None,
        ),
        ("GET", "/v1/profiles/search?name=Li", None),
        ("GET", "/v1/profiles/p1/timeline", None),
        ("GET", "/v1/profiles/p1/merges", None),
        ("GET", "/v1/profiles/p1/edges", None),
        (
            "PATCH",
            "/v1/profiles/p1/fields",
            Some(json!({"fields": {"contact.name": "x"}})),
        ),
        ("POST", "/v1/profiles/p1/binding-token", Some(json!({}))),
        (
            "POST",
            "/v1/profiles/merge",
            Some(json!({"survivor": "p1", "absorbed": "p2", "reason": "r"})),
        ),
        ("POST", "/v1/merges/1/unmerge", reason.clone()),
        (
            "POST",
            "/v1/profiles/p1/split",
            Some(
                json!({"identifier": {"kind": "mp_openid", "namespace": "wxMP", "value": "o1"},
                        "reason": "r"}),
            ),
        ),
        ("GET", "/v1/merge-refusals", None),
        (
            "POST",
            "/v1/profiles/reach",
            Some(json!({"profile_ids": ["p1"]})),
        ),
        ("GET", "/v1/data-quality", None),
        ("GET", "/v1/reps/rep1/customers", None),
        ("GET", "/v1/custom-fields", None),
        (
            "PUT",
            "/v1/custom-fields/vip",
            Some(json!({"value_type": "bool"})),
        ),
        (
            "POST",
            "/v1/profiles/p1/notes",
            Some(json!({"type": "call", "text": "called"})),
        ),
        ("GET", "/v1/profiles/p1/notes", None),
        (
            "PATCH",
            "/v1/notes/n1",
            Some(json!({"text": "called twice"})),
        ),
        ("DELETE", "/v1/notes/n1", None),
    ]
}

#[actix_web::test]
async fn every_route_requires_a_valid_service_credential() {
    let (conn, path) = db().await;
    let r = Resolver::new(
        conn.clone(),
        None,
        Policy::from_config(&Default::default()),
        3,
    );
    let routes = identity_svc::api::routes(r.clone());
    let app = test::init_service(
        App::new()
            .app_data(web::Data::new(key()))
            .app_data(platform::http::query_config())
            .app_data(platform::http::json_config())
            .configure(move |c: &mut web::ServiceConfig| routes(c)),
    )
    .await;
    let expired = {
        let mut p = Principal::new("t1", "user:ops", Role::Operator);
        p.expires = chrono::Utc::now().timestamp() - 1;
        key().sign(&p)
    };
    let forged = {
        // Another tenant in the payload of a genuine credential: the MAC no longer matches.
        let (_, good) = credential(INTERNAL_KEY, "t1");
        let (_, other) = credential(INTERNAL_KEY, "t2");
        let mac = good.rsplit_once('.').unwrap().1;
        format!("{}.{mac}", other.rsplit_once('.').unwrap().0)
    };
    let cases: Vec<(Option<String>, &str)> = vec![
        (None, "unauthenticated"),
        (
            Some(credential("another-deployment-key-0123456789ab", "t1").1),
            "invalid_credential",
        ),
        (Some(forged), "invalid_credential"),
        (Some(expired), "expired_credential"),
        (Some("v1.garbage".into()), "malformed_credential"),
    ];
    for (method, uri, body) in every_route() {
        for (header, code) in &cases {
            let mut req = test::TestRequest::default()
                .method(method.parse().unwrap())
                .uri(uri);
            if let Some(b) = &body {
                req = req.set_json(b);
            }
            if let Some(h) = header {
                req = req.insert_header((PRINCIPAL_HEADER, h.as_str()));
            }
            let resp = test::call_service(&app, req.to_request()).await;
            assert_eq!(resp.status().as_u16(), 401, "{method} {uri} ({code})");
            let b: Value = test::read_body_json(resp).await;
            assert_eq!(b["code"], *code, "{method} {uri}: {b}");
        }
        // With the credential the route is served (whatever it answers, not 401).
        let mut req = test::TestRequest::default()
            .method(method.parse().unwrap())
            .uri(uri)
            .insert_header(credential(INTERNAL_KEY, "t1"));
        if let Some(b) = &body {
            req = req.set_json(b);
        }
        let resp = test::call_service(&app, req.to_request()).await;
        assert_ne!(resp.status().as_u16(), 401, "{method} {uri}");
        assert_ne!(resp.status().as_u16(), 405, "{method} {uri}");
    }
    conn.close().await.unwrap();
    for s in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{s}", path.display()));
    }
}
