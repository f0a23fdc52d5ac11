//! What a saved segment counts and holds: its members page by page (exactly the matching
//! profiles, with the preview sample's fields), refreshes equal to the preview's count with
//! their history, its export, and a saved condition a deleted rule made invalid.

use super::*;

/// A saved segment of `condition` for `T` through the API: its id.
macro_rules! saved {
    ($app:expr, $name:expr, $condition:expr $(,)?) => {{
        let s = ok!(
            $app,
            Method::POST,
            "/v1/saved-segments",
            T,
            Some(json!({"name": $name, "condition": $condition, "refresh_mode": "manual"})),
            201,
        );
        id_of(&s)
    }};
}

pub(super) async fn members_cover_exactly_the_matching_profiles(backend: Backend) {
    let (db, tagger, _clock) = setup(backend).await;
    population(&tagger, T, 30).await;
    population(&tagger, OTHER, 30).await;
    let app = api!(tagger);
    let id = saved!(&app, "Hangzhou", in_hangzhou());
    let uri = format!("/v1/saved-segments/{id}/members");

    // Pages of 4: the 15 even profiles, in byte order, each once, `next` the last one given.
    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let u = match &after {
            None => format!("{uri}?limit=4"),
            Some(a) => format!("{uri}?limit=4&after={a}"),
        };
        let page = ok!(&app, Method::GET, u, T, None, 200);
        let got = ids(&page["items"]);
        assert!(got.len() <= 4);
        sizes.push(got.len());
        seen.extend(got);
        match &page["next"] {
            Value::Null => break,
            Value::String(n) => {
                assert_eq!(Some(n), seen.last(), "{page}");
                after = Some(n.clone());
            }
            other => panic!("next: {other}"),
        }
    }
    assert_eq!(seen, evens(30));
    assert_eq!(sizes, [4, 4, 4, 3], "pages of 4");
    // With the fields a preview's sample shows, profile for profile.
    let all = ok!(&app, Method::GET, format!("{uri}?limit=1000"), T, None, 200);
    let preview = ok!(
        &app,
        Method::POST,
        "/v1/segments/preview",
        T,
        Some(json!({"condition": in_hangzhou(), "sample": 100})),
        200,
    );
    assert_eq!(all["items"], preview["sample"]);
    // Everyone but them: counted by subtraction, sampled a window of ids at a time.
    let not_hz = json!({"version": 1, "root": {"type": "not", "child": in_hangzhou()["root"]}});
    let others = ok!(
        &app,
        Method::POST,
        "/v1/segments/preview",
        T,
        Some(json!({"condition": not_hz, "sample": 3})),
        200,
    );
    assert_eq!(others["count"], 15);
    assert_eq!(ids(&others["sample"]), ["p01", "p03", "p05"]);
    assert_eq!(all["items"][1]["fields"]["contact.name"], "Name 2");
    assert_eq!(all["next"], Value::Null);
    // Chosen fields, and the tags each member carries now (an export's page).
    let g = ok!(
        &app,
        Method::POST,
        "/v1/tag-groups",
        T,
        Some(json!({"name": "tier"})),
        201
    );
    let vip = ok!(
        &app,
        Method::POST,
        "/v1/tags",
        T,
        Some(json!({"group_id": g["id"], "name": "vip"})),
        201
    );
    ok!(
        &app,
        Method::POST,
        "/v1/profiles/p02/tags",
        T,
        Some(json!({"tag_id": vip["id"]})),
        200
    );
    let page = ok!(
        &app,
        Method::GET,
        format!("{uri}?limit=2&fields=contact.city&tags=true"),
        T,
        None,
        200
    );
    assert_eq!(page["items"][0]["tags"], json!([]));
    assert_eq!(
        page["items"][1]["tags"],
        json!([{"id": vip["id"], "name": "vip"}])
    );
    assert_eq!(
        page["items"][1]["fields"],
        json!({"contact.city": "Hangzhou"})
    );
    let bad = ok!(
        &app,
        Method::GET,
        format!("{uri}?fields=a%20b"),
        T,
        None,
        400
    );
    assert_eq!(bad["details"]["field"], "fields");
    // After a profile that does not match, and after the last one.
    let page = ok!(
        &app,
        Method::GET,
        format!("{uri}?after=p05&limit=2"),
        T,
        None,
        200
    );
    assert_eq!(ids(&page["items"]), ["p06", "p08"]);
    let page = ok!(&app, Method::GET, format!("{uri}?after=p28"), T, None, 200);
    assert_eq!(
        (page["items"].clone(), &page["next"]),
        (json!([]), &Value::Null)
    );
    let get = |uri: String| {
        let app = &app;
        async move { call!(app, req(Method::GET, &uri, T, None)) }
    };
    for bad in ["0", "1001"] {
        pages::refused(
            &get,
            &format!("{uri}?limit={bad}"),
            "invalid_limit",
            "limit",
        )
        .await;
    }

    // A sparse segment over windows far smaller than the population: the window grows until a
    // page is full, and pages still cover exactly p00, p06, p12, p18, p24.
    let cond = tagging_svc::store::rules::check(
        &tagger.db,
        T,
        None,
        &engaged_locals(),
        tagger.engine.rules.limits(),
    )
    .await
    .unwrap()
    .1;
    let at = tagger.at(T);
    let mut got = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let r = tagging_svc::store::segments::reader(&tagger.db)
            .await
            .unwrap();
        let (ids, next) = saved::ids_in_windows(&r, T, &cond, &at, after.as_deref(), 2, 2)
            .await
            .unwrap();
        r.commit().await.unwrap();
        got.push(ids);
        match next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(got, [vec!["p00", "p06"], vec!["p12", "p18"], vec!["p24"]]);
    db.cleanup().await;
}

pub(super) async fn refresh_counts_what_the_preview_counts_and_keeps_the_history(backend: Backend) {
    let (db, tagger, clock) = setup(backend).await;
    population(&tagger, T, 30).await;
    let app = api!(tagger);
    let id = saved!(&app, "Engaged", engaged_locals());
    let uri = format!("/v1/saved-segments/{id}");
    let preview = ok!(
        &app,
        Method::POST,
        "/v1/segments/preview",
        T,
        Some(json!({"condition": engaged_locals(), "sample": 0})),
        200,
    );
    let r = ok!(&app, Method::POST, format!("{uri}/refresh"), T, None, 200);
    assert_eq!(
        (r["count"].clone(), preview["count"].clone()),
        (json!(5), json!(5))
    );
    assert_eq!(
        (
            &r["segment"]["size"],
            &r["segment"]["refreshed_at"],
            &r["at"]
        ),
        (&json!(5), &json!(now()), &json!(now()))
    );
    assert_eq!(r["segment"]["last_error"], Value::Null);

    // p30 (even, three views) joins; p06 moves to Ningbo and leaves.
    clock.advance(chrono::Duration::minutes(10));
    person(&tagger, T, 30).await;
    profile(&tagger, T, "p06", json!({"contact.city": "Ningbo"}), 2).await;
    let r = ok!(&app, Method::POST, format!("{uri}/refresh"), T, None, 200);
    assert_eq!(r["count"], 5);
    profile(&tagger, T, "p12", json!({"contact.city": "Ningbo"}), 2).await;
    clock.advance(chrono::Duration::minutes(10));
    let r = ok!(&app, Method::POST, format!("{uri}/refresh"), T, None, 200);
    assert_eq!(r["count"], 4);
    let preview = ok!(
        &app,
        Method::POST,
        "/v1/segments/preview",
        T,
        Some(json!({"condition": engaged_locals()})),
        200,
    );
    assert_eq!(preview["count"], 4);
    let members = ok!(&app, Method::GET, format!("{uri}/members"), T, None, 200);
    assert_eq!(ids(&members["items"]), ["p00", "p18", "p24", "p30"]);

    // The history, newest first: who asked, when, what was counted.
    let sizes = ok!(&app, Method::GET, format!("{uri}/sizes"), T, None, 200);
    let rows = sizes["items"].as_array().unwrap();
    let counts: Vec<i64> = rows.iter().map(|z| z["count"].as_i64().unwrap()).collect();
    assert_eq!(counts, [4, 5, 5]);
    assert_eq!(rows[0]["at"], json!(now() + chrono::Duration::minutes(20)));
    assert_eq!(rows[2]["at"], json!(now()));
    assert!(rows
        .iter()
        .all(|z| z["cause"] == "manual" && z["actor"] == "user:test" && z["segment_version"] == 1));
    let get = |uri: String| {
        let app = &app;
        async move { call!(app, req(Method::GET, &uri, T, None)) }
    };
    let walked = pages::check(&get, &format!("{uri}/sizes"), 2, |v| v["id"].clone()).await;
    assert_eq!(walked.items.len(), 3);
    db.cleanup().await;
}

pub(super) async fn a_saved_export_is_the_unsaved_export_of_its_condition(backend: Backend) {
    let (db, tagger, _clock) = setup(backend).await;
    population(&tagger, T, 30).await;
    let formula = json!({"contact.name": "=SUM(A1)", "contact.city": "Hangzhou"});
    profile(&tagger, T, "p02", formula, 2).await;
    let app = api!(tagger);
    let id = saved!(&app, "Hangzhou", in_hangzhou());
    let fields = ["contact.name", "contact.city"];
    let text = |r: atest::TestRequest| {
        let app = &app;
        async move {
            let res = atest::call_service(app, r.to_request()).await;
            assert_eq!(res.status(), 200);
            let disposition = res.headers().get("content-disposition").unwrap();
            let disposition = disposition.to_str().unwrap().to_string();
            let body = atest::read_body(res).await.to_vec();
            (String::from_utf8(body).unwrap(), disposition)
        }
    };
    let (adhoc, _) = text(req(
        Method::POST,
        "/v1/segments/export",
        T,
        Some(json!({"condition": in_hangzhou(), "fields": fields})),
    ))
    .await;
    let (mine, disposition) = text(req(
        Method::POST,
        &format!("/v1/saved-segments/{id}/export"),
        T,
        Some(json!({"fields": fields})),
    ))
    .await;
    assert_eq!(mine, adhoc);
    assert!(
        disposition.contains(&format!("segment-{id}.csv")),
        "{disposition}"
    );
    let lines: Vec<&str> = mine.lines().collect();
    assert_eq!(lines.len(), 16, "a header and the 15 even profiles");
    assert_eq!(lines[0], "profile_id,contact.name,contact.city");
    assert_eq!(lines[2], "p02,'=SUM(A1),Hangzhou");
    // Only ids without fields; fields that are no field keys are refused naming `fields`.
    let (ids_only, _) = text(req(
        Method::POST,
        &format!("/v1/saved-segments/{id}/export"),
        T,
        Some(json!({})),
    ))
    .await;
    assert_eq!(ids_only.lines().count(), 16);
    assert_eq!(ids_only.lines().nth(1), Some("p00"));
    let e = ok!(
        &app,
        Method::POST,
        format!("/v1/saved-segments/{id}/export"),
        T,
        Some(json!({"fields": ["not a key!"]})),
        400,
    );
    assert_eq!(
        (&e["code"], &e["details"]["field"]),
        (&json!("invalid_fields"), &json!("fields"))
    );
    db.cleanup().await;
}

pub(super) async fn a_condition_that_no_longer_validates_is_refused_and_recorded(backend: Backend) {
    let (db, tagger, clock) = setup(backend).await;
    population(&tagger, T, 10).await;
    let app = api!(tagger);
    let g = ok!(
        &app,
        Method::POST,
        "/v1/tag-groups",
        T,
        Some(json!({"name": "g"})),
        201
    );
    let t = ok!(
        &app,
        Method::POST,
        "/v1/tags",
        T,
        Some(json!({"group_id": g["id"], "name": "locals"})),
        201,
    );
    let rule = ok!(
        &app,
        Method::POST,
        "/v1/tag-rules",
        T,
        Some(json!({"tag_id": t["id"], "name": "locals", "condition": in_hangzhou()})),
        201,
    );
    wait_job(&tagger, T, rule["job"]["id"].as_str().unwrap()).await;
    let rid = rule["rule"]["id"].as_str().unwrap();
    let reads_rule = json!({"version": 1, "root": {"type": "rule", "rule_id": rid}});
    let s = ok!(
        &app,
        Method::POST,
        "/v1/saved-segments",
        T,
        Some(json!({"name": "Via the rule", "condition": reads_rule, "interval_minutes": 5})),
        201,
    );
    let id = id_of(&s);
    let uri = format!("/v1/saved-segments/{id}");
    let r = ok!(&app, Method::POST, format!("{uri}/refresh"), T, None, 200);
    assert_eq!(r["count"], 5, "p00, p02, p04, p06, p08");

    let gone = ok!(
        &app,
        Method::DELETE,
        format!("/v1/tag-rules/{rid}"),
        T,
        None,
        200
    );
    wait_job(&tagger, T, gone["job"]["id"].as_str().unwrap()).await;
    for (method, path) in [(Method::POST, "refresh"), (Method::GET, "members")] {
        let e = ok!(&app, method, format!("{uri}/{path}"), T, None, 409);
        assert_eq!(e["code"], "invalid_saved_condition", "{path}: {e}");
        assert_eq!(e["details"]["errors"][0]["code"], "unknown_rule", "{e}");
        assert!(e["details"]["errors"][0]["path"]
            .as_str()
            .unwrap()
            .starts_with("root"));
    }
    // The scheduler records why and looks again an interval later; the last size stays.
    clock.advance(chrono::Duration::minutes(6));
    assert_eq!(saved::refresh_due(&tagger, 10).await.unwrap(), 1);
    let after = stored(&tagger, T, &id).await;
    assert!(
        after
            .last_error
            .as_deref()
            .unwrap()
            .contains("no longer validates"),
        "{after:?}"
    );
    assert_eq!(after.size, Some(5));
    assert_eq!(after.due_at, Some(now() + chrono::Duration::minutes(11)));
    assert_eq!(
        saved::refresh_due(&tagger, 10).await.unwrap(),
        0,
        "not again at once"
    );
    // Edited, it counts again and the error is gone.
    let fixed = ok!(
        &app,
        Method::PATCH,
        uri,
        T,
        Some(json!({"condition": in_hangzhou()})),
        200
    );
    assert_eq!(
        fixed["next_refresh_at"],
        json!(now() + chrono::Duration::minutes(6))
    );
    assert_eq!(saved::refresh_due(&tagger, 10).await.unwrap(), 1);
    let after = stored(&tagger, T, &id).await;
    assert_eq!((after.size, after.last_error), (Some(5), None));
    db.cleanup().await;
}
