//! The internal HTTP API over a SQLite database: profile by id and by identifier (phone masked),
//! timeline pages, merges, refusals, and errors in the common body naming the field.

use actix_web::{test, web, App};
use identity_svc::domain::pii::Pii;
use identity_svc::domain::Policy;
use identity_svc::store::{Outcome, Resolver};
use proto::sdk::{MpPhoneVerified, MpSessionStarted, MP_PHONE, MP_SESSION};
use proto::Envelope;
use sea_orm_migration::MigratorTrait;
use serde_json::Value;

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
    Envelope::builder(MP_SESSION, "t1", serde_json::to_value(p).unwrap()).build()
}

fn phone(openid: &str, unionid: &str, number: &str) -> Envelope {
    let p = MpPhoneVerified {
        app_id: "wxMP".into(),
        openid: openid.into(),
        unionid: Some(unionid.into()),
        phone_e164: number.into(),
        country_code: "86".into(),
    };
    Envelope::builder(MP_PHONE, "t1", serde_json::to_value(p).unwrap()).build()
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
            .app_data(platform::http::query_config())
            .configure(move |c: &mut web::ServiceConfig| routes(c)),
    )
    .await;
    let get = |uri: String| test::TestRequest::get().uri(&uri).to_request();

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

    let by: Value = test::call_and_read_body_json(
        &app,
        get("/v1/profiles/by-identifier?tenant_id=t1&kind=phone&namespace=86&value=%2B8613912345678".into()),
    )
    .await;
    assert_eq!(by["id"], first.profile_id);

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
    assert!(page2.get("next_cursor").is_none());

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
        (
            "/v1/profiles/by-identifier?tenant_id=t1&kind=fax&namespace=x&value=1".into(),
            400,
            "invalid_kind",
        ),
        (
            "/v1/profiles/by-identifier?tenant_id=t1&kind=phone&namespace=86".into(),
            400,
            "missing_field",
        ),
        (
            "/v1/profiles/by-identifier?tenant_id=t1&kind=phone&namespace=86&value=abc".into(),
            400,
            "invalid_value",
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
