//! Personas through the internal API on MariaDB and SQLite, on a seeded population whose true
//! rates are known: 40 Hangzhou profiles (the persona's segment) and 60 elsewhere. In the
//! segment 30 are SQLs, 32 read case studies in the last 30 days and 20 submitted the form
//! within the campaign's 7 days; outside it 6 are SQLs, 12 read case studies and 6 responded
//! (5 more submitted after the window and do not count). The report's shares, lifts and TGIs,
//! its strongest traits and the validation's counts, rates, intervals and z score equal those
//! numbers; definitions are checked naming the field; another tenant's persona is 404.

use actix_web::http::Method;
use actix_web::{test as atest, web, App};
use chrono::Duration;
use rules::{FactValue, ProfileFacts};
use sea_orm::ConnectionTrait;
use serde_json::{json, Value};
use test_support::auth;
use test_support::db::Backend;

use crate::api::{req, setup};

const T: &str = "t-persona";
const OTHER: &str = "t-persona-other";

async fn seed(db: &sea_orm::DatabaseConnection, tenant: &str, profiles: &[ProfileFacts]) {
    let now = crate::api::now();
    for ins in rules::schema::insert_statements(tenant, profiles, 1, now, None) {
        db.execute(db.get_database_backend().build(&ins))
            .await
            .unwrap();
    }
}

fn close(v: &Value, want: f64) -> bool {
    v.as_f64().is_some_and(|x| (x - want).abs() < 1e-9)
}

async fn reports_and_validations_equal_the_true_rates(backend: Backend) {
    let (db, tagger) = setup(backend).await;
    let app = api!(db, tagger);
    let today = tagger.at(T).today;
    let ago = |n: i64| today - Duration::days(n);
    let mut people = Vec::new();
    for i in 0..100 {
        let mut p = ProfileFacts::new(format!("p{i:03}"));
        let city = match i {
            0..=39 => "Hangzhou",
            40..=79 => "Ningbo",
            _ => "Shanghai",
        };
        p.set_property("contact.city", vec![FactValue::Str(city.into())]);
        let sql = i < 30 || (40..46).contains(&i);
        let stage = if sql { "sql" } else { "mql" };
        p.set_property("lead.stage", vec![FactValue::Str(stage.into())]);
        if i < 32 || (40..52).contains(&i) {
            p.add_count("c:case_study", ago(3), 1);
        }
        if i < 20 || (40..46).contains(&i) {
            p.add_count("e:track.form_submit", ago(8), 1);
        }
        if (60..65).contains(&i) {
            p.add_count("e:track.form_submit", ago(1), 1);
        }
        people.push(p);
    }
    seed(&db.conn, T, &people).await;
    seed(&db.conn, OTHER, &people[..10]).await;

    let seg = ok!(
        &app,
        Method::POST,
        "/v1/saved-segments",
        T,
        Some(json!({"name": "Hangzhou",
            "condition": {"version": 1, "root": {"type": "property", "key": "contact.city",
                "value_type": "string", "op": "eq", "value": "Hangzhou"}}})),
        201
    );
    let traits = json!([
        {"label": "Hangzhou", "dimension": {"kind": "property", "key": "contact.city"},
         "values": ["Hangzhou"]},
        {"label": "likes case studies",
         "dimension": {"kind": "content_tags", "window": {"type": "last", "days": 30}},
         "values": ["case_study"]},
        {"label": "SQL", "dimension": {"kind": "stage"}, "values": ["sql"]}]);
    let persona = ok!(
        &app,
        Method::POST,
        "/v1/personas",
        T,
        Some(
            json!({"name": "Hangzhou evaluators", "segment_id": seg["id"], "traits": traits,
                    "expected_response_rate": 0.45})
        ),
        201
    );
    let id = persona["id"].as_str().unwrap().to_string();
    assert_eq!(persona["expected_response_rate"], 0.45);
    assert_eq!(persona["created_by"], "user:test");

    let r = ok!(
        &app,
        Method::GET,
        format!("/v1/personas/{id}/report"),
        T,
        None,
        200
    );
    assert_eq!(r["segment"]["members"], 40, "{r:#}");
    assert_eq!(r["tenant"]["profiles"], 100);
    let e = &r["expected"];
    // (segment count, segment share, tenant count, tenant share, lift, tgi)
    for (i, (sc, ss, tc, ts, lift, tgi)) in [
        (40, 1.0, 40, 0.4, 2.5, 250),
        (32, 0.8, 44, 0.44, 0.8 / 0.44, 182),
        (30, 0.75, 36, 0.36, 0.75 / 0.36, 208),
    ]
    .into_iter()
    .enumerate()
    {
        let t = &e[i];
        assert_eq!(
            (t["segment_count"].as_u64(), t["tenant_count"].as_u64()),
            (Some(sc), Some(tc)),
            "{t}"
        );
        assert!(
            close(&t["segment_share"], ss) && close(&t["tenant_share"], ts),
            "{t}"
        );
        assert!(close(&t["lift"], lift), "{t}");
        assert_eq!(t["tgi"], tgi, "{t}");
        assert_eq!(t["holds"], true);
    }
    // The strongest: Hangzhou first (lift 2.5), then SQL and case studies; nothing the
    // segment under-indexes on, nothing held by fewer than min_count.
    let s = r["strongest"].as_array().unwrap();
    assert_eq!(s[0]["value"], "Hangzhou");
    assert_eq!(s[1]["value"], "sql");
    assert_eq!(s[2]["value"], "case_study");
    assert!(s.iter().all(|x| x["lift"].as_f64().unwrap() > 1.0));
    // After the segment's scheduled refresh the report reads its kept breakdowns (the
    // traits' dimensions are among them): the same report, as of that refresh.
    assert!(r["segment"]["as_of"].is_null(), "{:#}", r["segment"]);
    tagging_svc::store::saved::refresh_due(&tagger, 10)
        .await
        .unwrap();
    let kept = ok!(
        &app,
        Method::GET,
        format!("/v1/personas/{id}/report"),
        T,
        None,
        200
    );
    assert!(
        kept["segment"]["as_of"].is_string(),
        "{:#}",
        kept["segment"]
    );
    for part in ["expected", "strongest", "dimensions", "tenant"] {
        assert_eq!(kept[part], r[part], "{part}");
    }
    assert_eq!(kept["segment"]["members"], 40);
    let only_big = ok!(
        &app,
        Method::GET,
        format!("/v1/personas/{id}/report?min_count=31"),
        T,
        None,
        200
    );
    let values: Vec<&Value> = only_big["strongest"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| &x["value"])
        .collect();
    assert_eq!(values, [&json!("Hangzhou"), &json!("case_study")]);
    // The city dimension beside the tenant's: Ningbo and Shanghai with no member, TGI 0.
    let city = r["dimensions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["key"] == "contact.city")
        .unwrap();
    let ningbo = city["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["key"] == "Ningbo")
        .unwrap();
    assert_eq!(
        (
            &ningbo["segment"]["count"],
            &ningbo["tenant"]["count"],
            &ningbo["tgi"]
        ),
        (&json!(0), &json!(40), &json!(0))
    );

    // The campaign: a form submit within 7 days from 10 days ago.
    let from = ago(10).to_string();
    let v = ok!(
        &app,
        Method::POST,
        format!("/v1/personas/{id}/validate"),
        T,
        Some(json!({"response": {"event": "track.form_submit", "from": from, "days": 7}})),
        200
    );
    assert_eq!(
        (&v["segment"]["members"], &v["segment"]["responders"]),
        (&json!(40), &json!(20)),
        "{v:#}"
    );
    assert_eq!(
        (&v["rest"]["members"], &v["rest"]["responders"]),
        (&json!(60), &json!(6))
    );
    assert_eq!(
        (&v["tenant"]["members"], &v["tenant"]["responders"]),
        (&json!(100), &json!(26))
    );
    assert!(close(&v["segment"]["rate"], 0.5) && close(&v["rest"]["rate"], 0.1));
    assert!(close(&v["lift"], 5.0));
    assert!((v["segment"]["ci95"][0].as_f64().unwrap() - 0.3520).abs() < 1e-4);
    assert!((v["segment"]["ci95"][1].as_f64().unwrap() - 0.6480).abs() < 1e-4);
    // Pooled z for 20/40 against 6/60: 0.4 / sqrt(0.26 · 0.74 · (1/40 + 1/60)) = 4.4680.
    assert!((v["z"].as_f64().unwrap() - 4.4680).abs() < 1e-3, "{v}");
    assert_eq!(v["above_rest"], true);
    assert_eq!(v["expected_rate"], 0.45, "the persona's own");
    assert_eq!(v["expected_within_ci"], true);
    let v = ok!(
        &app,
        Method::POST,
        format!("/v1/personas/{id}/validate"),
        T,
        Some(
            json!({"response": {"event": "track.form_submit", "from": from, "days": 7},
                    "expected_rate": 0.8})
        ),
        200
    );
    assert_eq!(v["expected_within_ci"], false);
    assert!(close(&v["difference"], -0.3));

    // Checks name the field; another tenant's persona is not found.
    for (body, field) in [
        (json!({"name": "x", "segment_id": "nope"}), "segment_id"),
        (
            json!({"name": "y", "segment_id": seg["id"], "traits": [
                {"dimension": {"kind": "property", "key": "City"}, "values": ["a"]}]}),
            "traits[0].dimension.key",
        ),
        (
            json!({"name": "z", "segment_id": seg["id"], "expected_response_rate": 2}),
            "expected_response_rate",
        ),
    ] {
        let b = ok!(&app, Method::POST, "/v1/personas", T, Some(body), 400);
        assert_eq!(b["details"]["field"], field, "{b}");
    }
    let b = ok!(
        &app,
        Method::POST,
        format!("/v1/personas/{id}/validate"),
        T,
        Some(json!({"response": {"from": from, "days": 7}})),
        400
    );
    assert_eq!(b["details"]["field"], "response.event");
    ok!(
        &app,
        Method::POST,
        "/v1/personas",
        T,
        Some(json!({"name": "Hangzhou evaluators", "segment_id": seg["id"]})),
        409
    );
    ok!(
        &app,
        Method::GET,
        format!("/v1/personas/{id}"),
        OTHER,
        None,
        404
    );
    ok!(
        &app,
        Method::GET,
        format!("/v1/personas/{id}/report"),
        OTHER,
        None,
        404
    );
    let list = ok!(&app, Method::GET, "/v1/personas", T, None, 200);
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let patched = ok!(
        &app,
        Method::PATCH,
        format!("/v1/personas/{id}"),
        T,
        Some(json!({"expected_response_rate": null, "description": "evaluating in Hangzhou"})),
        200
    );
    assert_eq!(patched["expected_response_rate"], Value::Null);
    assert_eq!(patched["traits"], persona["traits"]);
    ok!(
        &app,
        Method::DELETE,
        format!("/v1/personas/{id}"),
        T,
        None,
        204
    );
    ok!(
        &app,
        Method::GET,
        format!("/v1/personas/{id}"),
        T,
        None,
        404
    );
    db.cleanup().await;
}

test_support::on_both_backends!(reports_and_validations_equal_the_true_rates);
