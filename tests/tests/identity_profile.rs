//! identity-svc's 360° profile on MariaDB and SQLite: fields from forms and WeChat with the
//! conflict strategy, data cleaning and the data-quality log, OA subscription / WeCom follow /
//! customer-group state and reachability, `profile.updated` versions, operator field edits,
//! custom fields, search, a rep's customers and personalised binding codes (千人千面码).

use actix_web::{test as atest, web, App};
use identity_svc::config::ResolutionConfig;
use identity_svc::domain::observe::{wecom_contact_fields, Enriched, FollowChange};
use identity_svc::domain::pii::Pii;
use identity_svc::domain::Policy;
use identity_svc::store::{Outcome, Resolver};
use proto::channel::{
    Channel, EventBody, ExternalChatChange, ExternalChatChangeType, ExternalContactChange,
    ExternalContactChangeType,
};
use proto::identity::{ProfileUpdated, PROFILE_UPDATED};
use proto::Envelope;
use scrm_tests::db::{Backend, TestDb};
use scrm_tests::events::{callback, count, session};
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use sea_orm_migration::MigratorTrait;
use serde_json::{json, Value};

const TENANT: &str = "t-prof";
const MP: &str = "wxMPprof";
const OA: &str = "wxOAprof";
const CORP: &str = "wwCORPprof";

async fn setup(backend: Backend) -> (TestDb, Resolver) {
    let t = TestDb::new(backend).await;
    identity_svc::store::Migrator::up(&t.conn, None)
        .await
        .unwrap();
    let pii = Pii::from_base64(&Pii::generate_base64()).unwrap();
    let r = Resolver::new(
        t.conn.clone(),
        Some(pii),
        Policy::from_config(&ResolutionConfig::default()),
        8,
    );
    (t, r)
}

async fn profile_of(r: &Resolver, env: &Envelope) -> String {
    match r.resolve(env).await.unwrap() {
        Outcome::Resolved(res) => res.profile_id,
        other => panic!("expected a resolution, got {other:?}"),
    }
}

fn form(openid: &str, props: Value) -> Envelope {
    Envelope::builder(
        "channel.track.form_submit",
        TENANT,
        json!({"subject": {"mp_app_id": MP, "openid": openid}, "kind": "form_submit",
               "properties": props}),
    )
    .build()
}

fn oa(openid: &str, body: EventBody, t: i64) -> Envelope {
    callback(TENANT, Channel::Oa, OA, openid, body, 1_714_000_000 + t)
}

fn contact(external: &str, rep: &str, change: ExternalContactChangeType, t: i64) -> Envelope {
    let c = ExternalContactChange {
        change_type: change,
        user_id: rep.into(),
        external_user_id: external.into(),
        state: Some("expo2026".into()),
        welcome_code: None,
        source: None,
        fail_reason: None,
    };
    callback(
        TENANT,
        Channel::WeCom,
        CORP,
        "sys",
        EventBody::ExternalContact(c),
        1_714_000_000 + t,
    )
}

fn group(
    change: ExternalChatChangeType,
    detail: Option<&str>,
    members: &[&str],
    t: i64,
) -> Envelope {
    let c = ExternalChatChange {
        change_type: change,
        chat_id: "chatA".into(),
        update_detail: detail.map(str::to_string),
        join_scene: Some(3),
        quit_scene: None,
        mem_change_cnt: Some(members.len() as u32),
        mem_change_list: members.iter().map(|m| m.to_string()).collect(),
        last_mem_ver: None,
        cur_mem_ver: None,
    };
    callback(
        TENANT,
        Channel::WeCom,
        CORP,
        "sys",
        EventBody::ExternalChat(c),
        1_714_000_000 + t,
    )
}

async fn updates(db: &DatabaseConnection, profile: &str) -> Vec<ProfileUpdated> {
    let rows = db
        .query_all(Statement::from_string(
            db.get_database_backend(),
            format!(
                "SELECT body FROM bus_outbox WHERE routing_key = '{PROFILE_UPDATED}' ORDER BY id"
            ),
        ))
        .await
        .unwrap();
    rows.into_iter()
        .map(|r| {
            let body: String = r.try_get_by_index(0).unwrap();
            let env: Envelope = serde_json::from_str(&body).unwrap();
            env.payload_as::<ProfileUpdated>().unwrap()
        })
        .filter(|u| u.profile_id == profile)
        .collect()
}

macro_rules! api {
    ($r:expr) => {{
        let routes = identity_svc::api::routes($r.clone());
        atest::init_service(
            App::new()
                .app_data(platform::http::query_config())
                .configure(move |c: &mut web::ServiceConfig| routes(c)),
        )
        .await
    }};
}

async fn fields_forms_quality_and_operator_edits(backend: Backend) {
    let (t, r) = setup(backend).await;
    let p = profile_of(&r, &session(TENANT, MP, "oF1", None)).await;
    profile_of(
        &r,
        &form(
            "oF1",
            json!({"name": "Li Lei", "company": "Acme", "city": "Hangzhou", "mobile": "139 1234 5678",
                   "email": "Li.Lei@Example.COM", "age": 200, "birthday": "2999-01-01",
                   "utm_source": "baidu", "utm_campaign": "spring", "source_levels": "ads > search",
                   "custom.vip": "yes"}),
        ),
    )
    .await;
    let app = api!(r);
    let get = |uri: String| atest::TestRequest::get().uri(&uri).to_request();
    let v: Value = atest::call_and_read_body_json(&app, get(format!("/v1/profiles/{p}"))).await;
    let f = &v["fields"];
    assert_eq!(f["contact.name"], "Li Lei");
    assert_eq!(f["company.name"], "Acme");
    assert_eq!(
        f["contact.phone"], "+86139****5678",
        "typed phone, E.164, masked"
    );
    assert!(f["contact.email"]
        .as_str()
        .unwrap()
        .ends_with("@example.com"));
    assert_eq!(
        f["source.first.channel"], "mini_program",
        "the login came first"
    );
    assert_eq!(f["source.latest.channel"], "baidu");
    assert_eq!(f["source.latest.level2"], "search");
    assert!(f.get("contact.age").is_none() && f.get("custom.vip").is_none());

    // Refused values are logged with their reason; an undeclared custom field too.
    let q: Value = atest::call_and_read_body_json(
        &app,
        get(format!(
            "/v1/data-quality?tenant_id={TENANT}&profile_id={p}"
        )),
    )
    .await;
    let mut reasons: Vec<(String, String)> = q["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["field"].as_str().unwrap().into(),
                i["reason"].as_str().unwrap().into(),
            )
        })
        .collect();
    reasons.sort();
    assert_eq!(
        reasons,
        vec![
            ("contact.age".into(), "impossible_age".into()),
            ("contact.birthday".into(), "future_date".into()),
            ("custom.vip".into(), "unknown_field".into()),
        ]
    );

    // Declared, the custom field is taken; a type change is refused.
    let put = |name: &str, body: Value| {
        atest::TestRequest::put()
            .uri(&format!("/v1/custom-fields/{name}"))
            .set_json(body)
            .to_request()
    };
    let res = atest::call_service(
        &app,
        put(
            "vip",
            json!({"tenant_id": TENANT, "value_type": "bool", "operator": "ops"}),
        ),
    )
    .await;
    assert_eq!(res.status(), 201);
    let res = atest::call_service(
        &app,
        put(
            "vip",
            json!({"tenant_id": TENANT, "value_type": "number", "operator": "ops"}),
        ),
    )
    .await;
    assert_eq!(res.status(), 409);
    let body: Value = atest::read_body_json(res).await;
    assert_eq!(body["code"], "type_change");
    profile_of(
        &r,
        &form("oF1", json!({"custom.vip": "yes", "city": "Suzhou"})),
    )
    .await;

    // WeChat-verified beats typed; the newest typed value wins among typed ones.
    let e = Enriched {
        unionid: None,
        fields: wecom_contact_fields("李雷", None, 1, None, Some("CTO")),
        follow: None,
        source: "wecom.external_contact".into(),
    };
    r.resolve_enriched(&session(TENANT, MP, "oF1", None), Some(&e))
        .await
        .unwrap();
    let v: Value = atest::call_and_read_body_json(&app, get(format!("/v1/profiles/{p}"))).await;
    assert_eq!(v["fields"]["custom.vip"], true);
    assert_eq!(v["fields"]["contact.city"], "Suzhou");
    assert_eq!(v["fields"]["contact.name"], "李雷");
    assert_eq!(v["fields"]["contact.gender"], "male");

    // The operator has the last word; a bad value is refused naming the field.
    let patch = |body: Value| {
        atest::TestRequest::patch()
            .uri(&format!("/v1/profiles/{p}/fields"))
            .set_json(body)
            .to_request()
    };
    let v: Value = atest::call_and_read_body_json(
        &app,
        patch(
            json!({"operator": "ops", "fields": {"contact.name": "Lei Li", "contact.city": null}}),
        ),
    )
    .await;
    assert_eq!(v["fields"]["contact.name"], "Lei Li");
    assert!(
        v["fields"].get("contact.city").is_none(),
        "cleared by the operator"
    );
    let res = atest::call_service(
        &app,
        patch(json!({"operator": "ops", "fields": {"contact.birthday": "1990-13-01"}})),
    )
    .await;
    assert_eq!(res.status(), 400);
    let body: Value = atest::read_body_json(res).await;
    assert_eq!(body["details"]["field"], "fields.contact.birthday");
    assert_eq!(body["details"]["reason"], "invalid_date");

    // Search by phone (any format) and by name prefix.
    let s: Value = atest::call_and_read_body_json(
        &app,
        get(format!(
            "/v1/profiles/search?tenant_id={TENANT}&phone=%2B86%20139-1234-5678"
        )),
    )
    .await;
    assert_eq!(s["items"][0]["id"], p.as_str());
    let s: Value = atest::call_and_read_body_json(
        &app,
        get(format!("/v1/profiles/search?tenant_id={TENANT}&name=Lei")),
    )
    .await;
    assert_eq!(s["items"][0]["id"], p.as_str());
    let res =
        atest::call_service(&app, get(format!("/v1/profiles/search?tenant_id={TENANT}"))).await;
    assert_eq!(res.status(), 400);

    // Every change was announced, with growing versions and the keys that changed.
    let ups = updates(&t.conn, &p).await;
    assert!(ups.len() >= 4, "{}", ups.len());
    assert!(ups.windows(2).all(|w| w[1].version == w[0].version + 1));
    let last = ups.last().unwrap();
    assert!(last.changed.contains(&"contact.name".to_string()));
    assert_eq!(last.fields["contact.name"], "Lei Li");
    t.cleanup().await;
}

async fn relationships_follows_and_groups(backend: Backend) {
    let (t, r) = setup(backend).await;
    // A customer-group member change before the member is known.
    r.resolve(&group(
        ExternalChatChangeType::Update,
        Some("add_member"),
        &["wmG1", "rep7"],
        1,
    ))
    .await
    .unwrap();
    let c = profile_of(
        &r,
        &contact(
            "wmG1",
            "rep7",
            ExternalContactChangeType::AddExternalContact,
            2,
        ),
    )
    .await;
    let o = profile_of(
        &r,
        &oa(
            "oS1",
            EventBody::Subscribe {
                scene: Some("poster".into()),
                ticket: None,
            },
            3,
        ),
    )
    .await;
    let app = api!(r);
    let get = |uri: String| atest::TestRequest::get().uri(&uri).to_request();
    let v: Value = atest::call_and_read_body_json(&app, get(format!("/v1/profiles/{c}"))).await;
    let rel = &v["relations"];
    assert_eq!(rel["wecom_follows"][0]["user_id"], "rep7");
    assert_eq!(rel["wecom_follows"][0]["state"], "expo2026");
    assert_eq!(rel["wecom_follows"][0]["external_userid"], "wmG1");
    assert_eq!(rel["group_chats"][0]["chat_id"], "chatA");
    assert_eq!(rel["reachable"], json!({"oa": false, "wecom": true}));
    assert_eq!(v["fields"]["source.first.campaign"], "expo2026");

    // The rep's customers; WeCom's own details of the follow (enrichment) are kept.
    let e = Enriched {
        unionid: None,
        fields: vec![],
        follow: Some(FollowChange::Details {
            remark: Some("met at expo".into()),
            add_way: Some(1),
            state: None,
            since: None,
            corp_tags: Some(vec!["et_vip".into()]),
        }),
        source: "wecom.external_contact".into(),
    };
    r.resolve_enriched(
        &contact(
            "wmG1",
            "rep7",
            ExternalContactChangeType::EditExternalContact,
            4,
        ),
        Some(&e),
    )
    .await
    .unwrap();
    let page: Value = atest::call_and_read_body_json(
        &app,
        get(format!(
            "/v1/reps/rep7/customers?tenant_id={TENANT}&corp_id={CORP}"
        )),
    )
    .await;
    assert_eq!(page["items"][0]["profile_id"], c.as_str());
    assert_eq!(page["items"][0]["remark"], "met at expo");
    assert_eq!(page["items"][0]["add_way"], 1);
    // The rep's corp tags on the customer, as WeCom reported them, travel with the follow.
    let v: Value = atest::call_and_read_body_json(&app, get(format!("/v1/profiles/{c}"))).await;
    assert_eq!(
        v["relations"]["wecom_follows"][0]["corp_tags"],
        json!(["et_vip"])
    );

    // The customer deletes the rep; an older add arriving late changes nothing.
    r.resolve(&contact(
        "wmG1",
        "rep7",
        ExternalContactChangeType::DelFollowUser,
        10,
    ))
    .await
    .unwrap();
    r.resolve(&contact(
        "wmG1",
        "rep7",
        ExternalContactChangeType::AddExternalContact,
        5,
    ))
    .await
    .unwrap();
    r.resolve(&group(
        ExternalChatChangeType::Update,
        Some("del_member"),
        &["wmG1"],
        11,
    ))
    .await
    .unwrap();
    let v: Value = atest::call_and_read_body_json(&app, get(format!("/v1/profiles/{c}"))).await;
    assert!(v["relations"]["wecom_follows"][0]["deleted_at"].is_string());
    assert_eq!(v["relations"]["reachable"]["wecom"], false);
    assert_eq!(v["relations"]["group_chats"], json!([]));
    let page: Value = atest::call_and_read_body_json(
        &app,
        get(format!("/v1/reps/rep7/customers?tenant_id={TENANT}")),
    )
    .await;
    assert_eq!(page["items"], json!([]));

    // OA: subscribed with the scene, then unsubscribed.
    let v: Value = atest::call_and_read_body_json(&app, get(format!("/v1/profiles/{o}"))).await;
    assert_eq!(v["relations"]["oa_subscriptions"][0]["scene"], "poster");
    assert_eq!(v["relations"]["reachable"]["oa"], true);
    r.resolve(&oa("oS1", EventBody::Unsubscribe, 20))
        .await
        .unwrap();
    let v: Value = atest::call_and_read_body_json(&app, get(format!("/v1/profiles/{o}"))).await;
    assert_eq!(v["relations"]["oa_subscriptions"][0]["subscribed"], false);
    assert_eq!(v["relations"]["reachable"]["oa"], false);
    let ups = updates(&t.conn, &o).await;
    assert_eq!(
        ups.last().unwrap().changed,
        vec!["relations.oa", "relations.reachable"]
    );
    t.cleanup().await;
}

async fn binding_codes_link_whoever_comes_through_them(backend: Backend) {
    let (t, r) = setup(backend).await;
    let known = profile_of(&r, &session(TENANT, MP, "oB1", None)).await;
    let app = api!(r);
    let res = atest::call_service(
        &app,
        atest::TestRequest::post()
            .uri(&format!("/v1/profiles/{known}/binding-token"))
            .set_json(json!({"operator": "rep1", "ttl_days": 7}))
            .to_request(),
    )
    .await;
    assert_eq!(res.status(), 201);
    let b: Value = atest::read_body_json(res).await;
    let scene = b["scene"].as_str().unwrap().to_string();
    assert!(scene.len() <= 30, "fits a WeCom state: {scene}");

    // A new follower through the personal QR code joins the known profile.
    let p = profile_of(
        &r,
        &oa(
            "oB-new",
            EventBody::Subscribe {
                scene: Some(scene.clone()),
                ticket: None,
            },
            1,
        ),
    )
    .await;
    assert_eq!(p, known);
    // An existing WeCom contact adding through the code is merged with it.
    let other = profile_of(
        &r,
        &contact(
            "wmB2",
            "rep1",
            ExternalContactChangeType::EditExternalContact,
            2,
        ),
    )
    .await;
    assert_ne!(other, known);
    let mut add = contact(
        "wmB2",
        "rep1",
        ExternalContactChangeType::AddExternalContact,
        3,
    );
    if let Some(c) = add.payload.pointer_mut("/event/body/state") {
        *c = json!(scene);
    }
    let Outcome::Resolved(res) = r.resolve(&add).await.unwrap() else {
        panic!("not resolved")
    };
    assert_eq!(res.absorbed.len(), 1);
    let rule = count(
        &t.conn,
        "SELECT COUNT(*) FROM merges WHERE rule = 'explicit_binding'",
    )
    .await;
    assert_eq!(rule, 1);
    let edges: Value = atest::call_and_read_body_json(
        &app,
        atest::TestRequest::get()
            .uri(&format!("/v1/profiles/{}/edges", res.profile_id))
            .to_request(),
    )
    .await;
    let rules: Vec<&str> = edges["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["rule"].as_str().unwrap())
        .collect();
    assert!(
        rules.iter().filter(|r| **r == "explicit_binding").count() >= 2,
        "{rules:?}"
    );
    // An unknown or foreign code does nothing.
    let q = profile_of(
        &r,
        &oa(
            "oB-x",
            EventBody::Subscribe {
                scene: Some("pb_unknowntoken0000000".into()),
                ticket: None,
            },
            4,
        ),
    )
    .await;
    assert_ne!(q, known);
    t.cleanup().await;
}

scrm_tests::on_both_backends!(
    fields_forms_quality_and_operator_edits,
    relationships_follows_and_groups,
    binding_codes_link_whoever_comes_through_them,
);
