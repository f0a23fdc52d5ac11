//! identity-svc's 360° profile on MariaDB and SQLite: fields from forms and WeChat with the
//! conflict strategy, data cleaning and the data-quality log, OA subscription / WeCom follow /
//! customer-group state and reachability, `profile.updated` versions, operator field edits,
//! custom fields, search, a rep's customers and personalised binding codes (千人千面码); the API
//! scoped to the credential's tenant (another tenant's profiles are not found, lists hold none
//! of them) and phones looked up by the national number WeChat returns.

use actix_web::{test as atest, web, App};
use chrono::{DateTime, Utc};
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
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use serde_json::{json, Value};
use test_support::db::{Backend, TestDb};
use test_support::events::{callback, count, session};
use test_support::pages;

const TENANT: &str = "t-prof";
const MP: &str = "wxMPprof";
const OA: &str = "wxOAprof";
const CORP: &str = "wwCORPprof";

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
            env.decode::<ProfileUpdated>().unwrap()
        })
        .filter(|u| u.profile_id == profile)
        .collect()
}

macro_rules! api {
    ($r:expr) => {{
        let routes = identity_svc::api::routes($r.clone());
        atest::init_service(
            App::new()
                .app_data(web::Data::new(test_support::auth::key()))
                .app_data(platform::http::query_config())
                .app_data(platform::http::json_config())
                .configure(move |c: &mut web::ServiceConfig| routes(c)),
        )
        .await
    }};
}

/// A GET as the gateway sends it for `tenant` (default [`TENANT`]).
macro_rules! get {
    ($tenant:expr, $uri:expr $(,)?) => {
        atest::TestRequest::get()
            .uri(AsRef::<str>::as_ref(&$uri))
            .insert_header(test_support::auth::header($tenant))
            .to_request()
    };
    ($uri:expr) => {
        get!(TENANT, $uri)
    };
}

/// A request with a JSON body as the gateway sends it for `tenant`.
macro_rules! send {
    ($tenant:expr, $method:expr, $uri:expr, $body:expr $(,)?) => {
        atest::TestRequest::default()
            .method($method.parse().unwrap())
            .uri(AsRef::<str>::as_ref(&$uri))
            .insert_header(test_support::auth::header($tenant))
            .set_json($body)
            .to_request()
    };
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
    let v: Value = atest::call_and_read_body_json(&app, get!(format!("/v1/profiles/{p}"))).await;
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
    let q: Value =
        atest::call_and_read_body_json(&app, get!(format!("/v1/data-quality?profile_id={p}")))
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
    let put =
        |name: &str, body: Value| send!(TENANT, "PUT", format!("/v1/custom-fields/{name}"), body);
    let res = atest::call_service(&app, put("vip", json!({"value_type": "bool"}))).await;
    assert_eq!(res.status(), 201);
    let listed: Value = atest::call_and_read_body_json(&app, get!("/v1/custom-fields")).await;
    assert_eq!(listed["items"][0]["name"], "vip");
    let res = atest::call_service(&app, put("vip", json!({"value_type": "number"}))).await;
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
    // The event resolves on what it carries; WeChat's answer follows it.
    let ev = session(TENANT, MP, "oF1", None);
    r.resolve(&ev).await.unwrap();
    r.apply_enrichment(&ev, &e).await.unwrap();
    let v: Value = atest::call_and_read_body_json(&app, get!(format!("/v1/profiles/{p}"))).await;
    assert_eq!(v["fields"]["custom.vip"], true);
    assert_eq!(v["fields"]["contact.city"], "Suzhou");
    assert_eq!(v["fields"]["contact.name"], "李雷");
    assert_eq!(v["fields"]["contact.gender"], "male");

    // The operator has the last word; a bad value is refused naming the field.
    let patch = |body: Value| send!(TENANT, "PATCH", format!("/v1/profiles/{p}/fields"), body);
    // A stray `operator` (callers being migrated) is ignored: the credential's actor acts.
    let v: Value = atest::call_and_read_body_json(
        &app,
        patch(
            json!({"operator": "someone-else", "fields": {"contact.name": "Lei Li", "contact.city": null}}),
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
        patch(json!({"fields": {"contact.birthday": "1990-13-01"}})),
    )
    .await;
    assert_eq!(res.status(), 400);
    let body: Value = atest::read_body_json(res).await;
    assert_eq!(body["details"]["field"], "fields.contact.birthday");
    assert_eq!(body["details"]["reason"], "invalid_date");

    // Search by phone (any format) and by name prefix.
    let s: Value = atest::call_and_read_body_json(
        &app,
        get!("/v1/profiles/search?phone=%2B86%20139-1234-5678"),
    )
    .await;
    assert_eq!(s["items"][0]["id"], p.as_str());
    let s: Value = atest::call_and_read_body_json(&app, get!("/v1/profiles/search?name=Lei")).await;
    assert_eq!(s["items"][0]["id"], p.as_str());
    let res = atest::call_service(&app, get!("/v1/profiles/search")).await;
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
    let v: Value = atest::call_and_read_body_json(&app, get!(format!("/v1/profiles/{c}"))).await;
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
    let ev = contact(
        "wmG1",
        "rep7",
        ExternalContactChangeType::EditExternalContact,
        4,
    );
    r.resolve(&ev).await.unwrap();
    r.apply_enrichment(&ev, &e).await.unwrap();
    let page: Value = atest::call_and_read_body_json(
        &app,
        get!(format!("/v1/reps/rep7/customers?corp_id={CORP}")),
    )
    .await;
    assert_eq!(page["items"][0]["profile_id"], c.as_str());
    assert_eq!(page["items"][0]["remark"], "met at expo");
    assert_eq!(page["items"][0]["add_way"], 1);
    // The rep's corp tags on the customer, as WeCom reported them, travel with the follow.
    let v: Value = atest::call_and_read_body_json(&app, get!(format!("/v1/profiles/{c}"))).await;
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
    let v: Value = atest::call_and_read_body_json(&app, get!(format!("/v1/profiles/{c}"))).await;
    assert!(v["relations"]["wecom_follows"][0]["deleted_at"].is_string());
    assert_eq!(v["relations"]["reachable"]["wecom"], false);
    assert_eq!(v["relations"]["group_chats"], json!([]));
    let page: Value = atest::call_and_read_body_json(&app, get!("/v1/reps/rep7/customers")).await;
    assert_eq!(page["items"], json!([]));

    // OA: subscribed with the scene, then unsubscribed.
    let v: Value = atest::call_and_read_body_json(&app, get!(format!("/v1/profiles/{o}"))).await;
    assert_eq!(v["relations"]["oa_subscriptions"][0]["scene"], "poster");
    assert_eq!(v["relations"]["reachable"]["oa"], true);
    r.resolve(&oa("oS1", EventBody::Unsubscribe, 20))
        .await
        .unwrap();
    let v: Value = atest::call_and_read_body_json(&app, get!(format!("/v1/profiles/{o}"))).await;
    assert_eq!(v["relations"]["oa_subscriptions"][0]["subscribed"], false);
    assert_eq!(v["relations"]["reachable"]["oa"], false);
    let ups = updates(&t.conn, &o).await;
    assert_eq!(
        ups.last().unwrap().changed,
        vec!["relations.oa", "relations.reachable"]
    );
    t.cleanup().await;
}

/// `POST /v1/profiles/reach`: the openid of an account the customer follows (not of one they
/// left), per corp the external_userid with the reps following now in the order they added, the
/// phone masked; unknown, another tenant's and merged ids are `missing`, never an error.
async fn reach_per_channel(backend: Backend) {
    let (t, r) = setup(backend).await;
    let sub = EventBody::Subscribe {
        scene: None,
        ticket: None,
    };
    let c = profile_of(
        &r,
        &contact(
            "wmR1",
            "repA",
            ExternalContactChangeType::AddExternalContact,
            1,
        ),
    )
    .await;
    for (rep, at) in [("repC", 2), ("repB", 3)] {
        r.resolve(&contact(
            "wmR1",
            rep,
            ExternalContactChangeType::AddExternalContact,
            at,
        ))
        .await
        .unwrap();
    }
    r.resolve(&contact(
        "wmR1",
        "repC",
        ExternalContactChangeType::DelFollowUser,
        4,
    ))
    .await
    .unwrap();
    let o = profile_of(&r, &oa("oR1", sub.clone(), 5)).await;
    let gone = profile_of(&r, &oa("oR2", sub, 6)).await;
    r.resolve(&oa("oR2", EventBody::Unsubscribe, 7))
        .await
        .unwrap();
    let app = api!(r);
    let body = json!({"profile_ids": [o, "nobody", c, gone]});
    let v: Value =
        atest::call_and_read_body_json(&app, send!(TENANT, "POST", "/v1/profiles/reach", &body))
            .await;
    let items = v["items"].as_array().unwrap();
    assert_eq!(items.len(), 3, "{v}");
    assert_eq!(items[0]["profile_id"], o.as_str());
    assert_eq!(items[0]["oa"], json!([{"app_id": OA, "openid": "oR1"}]));
    assert_eq!(items[1]["profile_id"], c.as_str());
    assert_eq!(
        items[1]["wecom"],
        json!([{"corp_id": CORP, "external_userid": "wmR1", "reps": ["repA", "repB"]}])
    );
    assert_eq!(items[1]["oa"], json!([]));
    assert_eq!(items[2]["oa"], json!([]), "unfollowed: not reachable");
    assert_eq!(v["missing"], json!([{"profile_id": "nobody"}]));

    // Another tenant's credential finds none of them.
    let v: Value =
        atest::call_and_read_body_json(&app, send!("t-other", "POST", "/v1/profiles/reach", &body))
            .await;
    assert_eq!(v["items"], json!([]));
    assert_eq!(v["missing"].as_array().unwrap().len(), 4);

    // Bad bodies name the field.
    for (bad, field) in [
        (json!({"profile_ids": []}), "profile_ids"),
        (json!({"profile_ids": ["a", ""]}), "profile_ids[1]"),
        (json!({"ids": ["a"]}), "profile_ids"),
    ] {
        let resp =
            atest::call_service(&app, send!(TENANT, "POST", "/v1/profiles/reach", &bad)).await;
        assert_eq!(resp.status().as_u16(), 400, "{bad}");
        let b: Value = atest::read_body_json(resp).await;
        assert_eq!(b["details"]["field"], field, "{b}");
    }
    t.cleanup().await;
}

async fn binding_codes_link_whoever_comes_through_them(backend: Backend) {
    let (t, r) = setup(backend).await;
    let known = profile_of(&r, &session(TENANT, MP, "oB1", None)).await;
    let app = api!(r);
    let res = atest::call_service(
        &app,
        send!(
            TENANT,
            "POST",
            format!("/v1/profiles/{known}/binding-token"),
            json!({"ttl_days": 7}),
        ),
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
        get!(format!("/v1/profiles/{}/edges", res.profile_id)),
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

/// Calls the app: `(status, body)`.
macro_rules! call {
    ($app:expr, $req:expr $(,)?) => {{
        let resp = atest::call_service(&$app, $req).await;
        let status = resp.status().as_u16();
        let body: Value = atest::read_body_json(resp).await;
        (status, body)
    }};
}

const OTHER: &str = "t-prof-other";

async fn tenants_see_only_their_own_profiles(backend: Backend) {
    let (t, r) = setup(backend).await;
    let app = api!(r);
    // Tenant A: a verified phone, a form with a refused value, a second person claiming the
    // phone with another unionid (a refused merge), a WeCom follow, a custom field, a merge.
    let pa = profile_of(
        &r,
        &test_support::events::phone(TENANT, MP, "oA1", Some("uA1"), "+8613911110000"),
    )
    .await;
    profile_of(&r, &form("oA1", json!({"name": "Alice", "age": 300}))).await;
    r.resolve(&test_support::events::phone(
        TENANT,
        MP,
        "oA2",
        Some("uA2"),
        "+8613911110000",
    ))
    .await
    .unwrap();
    let follower = profile_of(
        &r,
        &contact(
            "wmA1",
            "rep9",
            ExternalContactChangeType::AddExternalContact,
            1,
        ),
    )
    .await;
    let pa3 = profile_of(&r, &session(TENANT, MP, "oA3", None)).await;
    let (st, b) = call!(
        app,
        send!(
            TENANT,
            "PUT",
            "/v1/custom-fields/tier",
            json!({"value_type": "string"})
        )
    );
    assert_eq!(st, 201, "{b}");
    let (st, m) = call!(
        app,
        send!(
            TENANT,
            "POST",
            "/v1/profiles/merge",
            json!({"survivor": pa, "absorbed": pa3, "reason": "same person"})
        )
    );
    assert_eq!(st, 200, "{m}");
    let merge_id = m["merge_id"].as_i64().unwrap();
    // Tenant B has a profile of its own.
    let pb = profile_of(&r, &session(OTHER, MP, "oB1", None)).await;

    // By id, A's profile is to B exactly what an unknown id is: 404 `not_found`.
    let unknown = "00000000-0000-7000-8000-000000000000";
    for suffix in ["", "/timeline", "/merges", "/edges"] {
        let (st, b) = call!(app, get!(OTHER, format!("/v1/profiles/{pa}{suffix}")));
        let (st_u, b_u) = call!(app, get!(OTHER, format!("/v1/profiles/{unknown}{suffix}")));
        assert_eq!(
            (st, &b["code"]),
            (404, &json!("not_found")),
            "{suffix}: {b}"
        );
        assert_eq!((st, &b["code"]), (st_u, &b_u["code"]), "{suffix}");
        assert!(!b.to_string().contains("Alice"), "{b}");
    }
    // Writes to A's profile through B's credential: not found, and nothing changed.
    let writes = [
        (
            "PATCH",
            format!("/v1/profiles/{pa}/fields"),
            json!({"fields": {"contact.name": "Mallory"}}),
        ),
        (
            "POST",
            format!("/v1/profiles/{pa}/binding-token"),
            json!({}),
        ),
        (
            "POST",
            format!("/v1/profiles/{pa}/split"),
            json!({"identifier": {"kind": "mp_openid", "namespace": MP, "value": "oA1"},
                   "reason": "r"}),
        ),
        (
            "POST",
            format!("/v1/merges/{merge_id}/unmerge"),
            json!({"reason": "r"}),
        ),
        // A stray tenant_id naming A changes nothing: the credential's tenant is the tenant.
        (
            "POST",
            "/v1/profiles/merge".to_string(),
            json!({"tenant_id": TENANT, "survivor": pb, "absorbed": pa, "reason": "r"}),
        ),
        (
            "POST",
            "/v1/profiles/merge".to_string(),
            json!({"survivor": pa, "absorbed": pb, "reason": "r"}),
        ),
    ];
    for (method, uri, body) in writes {
        let (st, b) = call!(app, send!(OTHER, method, uri, body));
        assert_eq!(
            (st, b["code"].as_str()),
            (404, Some("not_found")),
            "{method} {uri}: {b}"
        );
    }
    let (_, merge_b) = call!(
        app,
        send!(
            OTHER,
            "POST",
            "/v1/profiles/merge",
            json!({"survivor": pb, "absorbed": pa, "reason": "r"})
        )
    );
    assert_eq!(merge_b["details"]["field"], "absorbed");
    let (st, a) = call!(app, get!(format!("/v1/profiles/{pa}")));
    assert_eq!(st, 200);
    assert_eq!(a["status"], "active");
    assert_eq!(a["fields"]["contact.name"], "Alice");
    let (_, merges) = call!(app, get!(format!("/v1/profiles/{pa}/merges")));
    assert!(merges["items"][0]["unmerged_at"].is_null(), "{merges}");
    assert_eq!(merges["items"][0]["operator"], "user:test");
    assert_eq!(
        count(&t.conn, "SELECT COUNT(*) FROM binding_tokens").await,
        0
    );
    assert_eq!(count(&t.conn, "SELECT COUNT(*) FROM unmerges").await, 0);

    // Lookups and lists: B finds none of A's rows, A finds them.
    let lookups = [
        format!("/v1/profiles/by-identifier?kind=mp_openid&namespace={MP}&value=oA1"),
        format!(
            "/v1/profiles/by-identifier?kind=mp_openid&namespace={MP}&value=oA1&tenant_id={TENANT}"
        ),
        "/v1/profiles/by-identifier?kind=phone&value=13911110000".to_string(),
    ];
    for uri in &lookups {
        assert_eq!(call!(app, get!(OTHER, uri)).0, 404, "{uri}");
        assert_eq!(call!(app, get!(uri)).0, 200, "{uri}");
    }
    let lists = [
        "/v1/profiles/search?phone=13911110000".to_string(),
        "/v1/profiles/search?name=Ali".to_string(),
        format!("/v1/profiles/search?unionid=uA1&tenant_id={TENANT}"),
        "/v1/merge-refusals".to_string(),
        "/v1/data-quality".to_string(),
        format!("/v1/data-quality?profile_id={pa}"),
        "/v1/reps/rep9/customers".to_string(),
        "/v1/custom-fields".to_string(),
    ];
    for uri in &lists {
        let (st, b) = call!(app, get!(OTHER, uri));
        assert_eq!((st, &b["items"]), (200, &json!([])), "{uri}: {b}");
        let (st, a) = call!(app, get!(uri));
        assert_eq!(st, 200, "{uri}: {a}");
        assert!(!a["items"].as_array().unwrap().is_empty(), "{uri}: {a}");
    }
    let (_, a) = call!(app, get!("/v1/merge-refusals"));
    assert_eq!(a["items"][0]["tenant_id"], TENANT);
    assert_eq!(a["items"][0]["reason"], "conflicting_unionids");
    let (_, a) = call!(app, get!("/v1/reps/rep9/customers"));
    assert_eq!(a["items"][0]["profile_id"], follower.as_str());
    // B's own profile is B's to read.
    let (st, b) = call!(app, get!(OTHER, format!("/v1/profiles/{pb}")));
    assert_eq!((st, b["tenant_id"].as_str()), (200, Some(OTHER)));
    t.cleanup().await;
}

async fn phones_are_found_by_the_national_number(backend: Backend) {
    let t = TestDb::migrated::<identity_svc::store::Migrator>(backend).await;
    let mut cfg = ResolutionConfig::default();
    cfg.tenants.insert(
        OTHER.into(),
        identity_svc::config::TenantResolution {
            default_phone_region: Some("US".into()),
            ..Default::default()
        },
    );
    let r = Resolver::new(
        t.conn.clone(),
        Some(Pii::from_base64(&Pii::generate_base64()).unwrap()),
        Policy::from_config(&cfg),
        8,
    );
    let app = api!(r);
    // WeChat verified +86 139 1234 5670; its API and users give it as 13912345670.
    let p = profile_of(
        &r,
        &test_support::events::phone(TENANT, MP, "oP1", None, "+8613912345670"),
    )
    .await;
    for q in [
        "kind=phone&value=13912345670",
        "kind=phone&namespace=86&value=13912345670",
        "kind=phone&namespace=86&value=%2B8613912345670",
        "kind=phone&value=%2B86%20139%201234%205670",
        "kind=phone&value=008613912345670",
    ] {
        let (st, b) = call!(app, get!(format!("/v1/profiles/by-identifier?{q}")));
        assert_eq!((st, b["id"].as_str()), (200, Some(p.as_str())), "{q}: {b}");
    }
    for q in [
        "phone=13912345670",
        "phone=139-1234-5670",
        "phone=%2B8613912345670",
    ] {
        let (st, b) = call!(app, get!(format!("/v1/profiles/search?{q}")));
        assert_eq!(
            (st, b["items"][0]["id"].as_str()),
            (200, Some(p.as_str())),
            "{q}: {b}"
        );
    }
    // Another number, or the number in another country: not found; not a number: 400 naming it.
    let (st, _) = call!(
        app,
        get!("/v1/profiles/by-identifier?kind=phone&value=13912345671")
    );
    assert_eq!(st, 404);
    let (st, b) = call!(
        app,
        get!("/v1/profiles/by-identifier?kind=phone&namespace=86&value=%2B14155550134")
    );
    assert_eq!(
        (st, b["code"].as_str(), b["details"]["field"].as_str()),
        (400, Some("namespace_mismatch"), Some("namespace")),
        "{b}"
    );
    let (st, b) = call!(app, get!("/v1/profiles/search?phone=call-me"));
    assert_eq!(
        (st, b["code"].as_str(), b["details"]["field"].as_str()),
        (400, Some("invalid_value"), Some("phone")),
        "{b}"
    );

    // A tenant in the US reads national numbers in its own region (namespace 1).
    let us = profile_of(
        &r,
        &Envelope::builder(
            "channel.track.form_submit",
            OTHER,
            json!({"subject": {"mp_app_id": MP, "openid": "oUS1"}, "kind": "form_submit",
                   "properties": {"phone": "(415) 555-0134"}}),
        )
        .build(),
    )
    .await;
    let (st, b) = call!(
        app,
        get!(
            OTHER,
            "/v1/profiles/by-identifier?kind=phone&value=4155550134"
        )
    );
    assert_eq!((st, b["id"].as_str()), (200, Some(us.as_str())), "{b}");
    let (st, b) = call!(app, get!(OTHER, "/v1/profiles/search?phone=415-555-0134"));
    assert_eq!(
        (st, b["items"][0]["id"].as_str()),
        (200, Some(us.as_str())),
        "{b}"
    );
    // The CN number is the other tenant's: not found from here in any format.
    let (st, _) = call!(
        app,
        get!(
            OTHER,
            "/v1/profiles/by-identifier?kind=phone&value=%2B8613912345670"
        )
    );
    assert_eq!(st, 404);
    t.cleanup().await;
}

/// Every list of the API pages by cursor: walked two at a time, each gives the items of one
/// large page, once and in order (newest first, oldest first, by name, …); limits out of range and
/// cursors a list did not give — another list's among them — are 400 naming the parameter.
async fn every_list_pages_by_cursor(backend: Backend) {
    let (t, r) = setup(backend).await;
    let app = api!(r);
    let get = |uri: String| {
        let app = &app;
        async move {
            let resp = atest::call_service(app, get!(uri)).await;
            let status = resp.status().as_u16();
            let body: Value = atest::read_body_json(resp).await;
            (status, body)
        }
    };
    let id = |v: &Value| v["id"].clone();

    // One person seen through seven mini-program sessions of one unionid.
    let s = profile_of(&r, &session(TENANT, MP, "oL0", Some("uL"))).await;
    for i in 1..7 {
        profile_of(&r, &session(TENANT, MP, &format!("oL{i}"), Some("uL"))).await;
    }
    // Five others merged into it by hand: five merges, and the edges of every identifier.
    for i in 0..5 {
        let other = profile_of(&r, &session(TENANT, MP, &format!("oM{i}"), None)).await;
        let (st, b) = call!(
            app,
            send!(
                TENANT,
                "POST",
                "/v1/profiles/merge",
                json!({"survivor": s, "absorbed": other, "reason": "same person"})
            )
        );
        assert_eq!(st, 200, "{b}");
    }
    // A verified phone claimed by five more unionids: five refused merges.
    r.resolve(&test_support::events::phone(
        TENANT,
        MP,
        "oR",
        Some("uR"),
        "+8613911112222",
    ))
    .await
    .unwrap();
    for i in 0..5 {
        r.resolve(&test_support::events::phone(
            TENANT,
            MP,
            &format!("oR{i}"),
            Some(&format!("uR{i}")),
            "+8613911112222",
        ))
        .await
        .unwrap();
    }
    // Five people whose names start with "Wang" (two of them just "Wang"), each form with an age
    // nobody has: five refused values.
    for (i, name) in ["Wang", "Wang Lei", "Wang", "Wangs", "Wang Fang"]
        .iter()
        .enumerate()
    {
        profile_of(
            &r,
            &form(&format!("oW{i}"), json!({"name": name, "age": 300})),
        )
        .await;
    }
    // Five custom fields, five customers of one rep.
    for name in ["tier", "budget", "region", "score_hint", "vip"] {
        let (st, b) = call!(
            app,
            send!(
                TENANT,
                "PUT",
                format!("/v1/custom-fields/{name}"),
                json!({"value_type": "string"})
            )
        );
        assert_eq!(st, 201, "{b}");
    }
    for i in 0..5 {
        profile_of(
            &r,
            &contact(
                &format!("wmL{i}"),
                "repL",
                ExternalContactChangeType::AddExternalContact,
                i,
            ),
        )
        .await;
    }

    let timeline = pages::check(&get, &format!("/v1/profiles/{s}/timeline"), 2, |v| {
        v["event_id"].clone()
    })
    .await;
    assert_eq!(
        timeline.items.len(),
        7 + 5,
        "its own events and the merged profiles'"
    );
    let at = |v: &Value| {
        v["occurred_at"]
            .as_str()
            .unwrap()
            .parse::<DateTime<Utc>>()
            .unwrap()
    };
    assert!(
        timeline.items.windows(2).all(|w| at(&w[0]) >= at(&w[1])),
        "newest first"
    );

    let merges = pages::check(&get, &format!("/v1/profiles/{s}/merges"), 2, id).await;
    assert_eq!(merges.items.len(), 5);
    assert!(ascending(&merges.items, id), "oldest first");
    let edges = pages::check(&get, &format!("/v1/profiles/{s}/edges"), 2, id).await;
    assert!(edges.items.len() >= 6, "{:?}", edges.items);
    assert!(ascending(&edges.items, id), "oldest first");

    let refusals = pages::check(&get, "/v1/merge-refusals", 2, id).await;
    assert_eq!(refusals.items.len(), 5);
    assert!(
        ascending(
            &refusals.items.iter().rev().cloned().collect::<Vec<_>>(),
            id
        ),
        "newest first"
    );

    let found = pages::check(&get, "/v1/profiles/search?name=Wang", 2, id).await;
    let names: Vec<&str> = found
        .items
        .iter()
        .map(|v| v["display_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Wang", "Wang", "Wang Fang", "Wang Lei", "Wangs"]);
    assert!(
        found.items[0]["id"].as_str() < found.items[1]["id"].as_str(),
        "ties by id"
    );

    let quality = pages::check(&get, "/v1/data-quality", 2, id).await;
    assert!(quality.items.len() >= 5);
    assert!(
        ascending(&quality.items.iter().rev().cloned().collect::<Vec<_>>(), id),
        "newest first"
    );

    let fields = pages::check(&get, "/v1/custom-fields", 2, |v| v["name"].clone()).await;
    let names: Vec<&str> = fields
        .items
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["budget", "region", "score_hint", "tier", "vip"]);

    let customers = pages::check(&get, "/v1/reps/repL/customers", 2, |v| {
        v["profile_id"].clone()
    })
    .await;
    assert_eq!(customers.items.len(), 5);

    // A cursor of one list is not a cursor of another, even where both are row ids.
    let foreign = merges.first_cursor.unwrap();
    pages::refused(
        &get,
        &format!("/v1/merge-refusals?cursor={foreign}"),
        "invalid_cursor",
        "cursor",
    )
    .await;
    t.cleanup().await;
}

/// Are the items' `key`s strictly ascending?
fn ascending(items: &[Value], key: impl Fn(&Value) -> Value) -> bool {
    let keys: Vec<i64> = items.iter().map(|v| key(v).as_i64().unwrap()).collect();
    keys.windows(2).all(|w| w[0] < w[1])
}

test_support::on_both_backends!(
    fields_forms_quality_and_operator_edits,
    relationships_follows_and_groups,
    reach_per_channel,
    binding_codes_link_whoever_comes_through_them,
    tenants_see_only_their_own_profiles,
    phones_are_found_by_the_national_number,
    every_list_pages_by_cursor,
);
