//! Saved-segment definitions: created as the principal (owner, tenant), refused naming the
//! field or the condition's node, unique names among active segments, changed at a version,
//! archived and listed by status; another tenant's are not found.

use super::*;

pub(super) async fn are_checked_listed_changed_and_archived(backend: Backend) {
    let (db, tagger, _clock) = setup(backend).await;
    let app = api!(tagger);
    let post = |body: Value| req(Method::POST, "/v1/saved-segments", T, Some(body));

    // The tenant and the owner are the credential's; a forged tenant or operator is dropped.
    let a = ok!(
        &app,
        Method::POST,
        "/v1/saved-segments",
        T,
        Some(
            json!({"name": " Hangzhou ", "condition": in_hangzhou(), "tenant_id": OTHER,
                    "operator": "someone-else", "description": "Everyone in Hangzhou"})
        ),
        201,
    );
    assert_eq!(
        (&a["tenant_id"], &a["owner"], &a["name"]),
        (&json!(T), &json!("user:test"), &json!("Hangzhou"))
    );
    assert_eq!(
        (&a["status"], &a["refresh_mode"], &a["interval_minutes"]),
        (&json!("active"), &json!("scheduled"), &json!(60))
    );
    assert_eq!((&a["size"], &a["version"]), (&Value::Null, &json!(1)));
    assert_eq!(
        a["next_refresh_at"],
        json!(now()),
        "counted at the next pass"
    );
    assert_eq!(a["condition"], in_hangzhou());
    let aid = id_of(&a);

    // Refusals name the field, or the node of the condition.
    for (body, code, field) in [
        (json!({"condition": in_hangzhou()}), "missing_field", "name"),
        (
            json!({"name": "  ", "condition": in_hangzhou()}),
            "missing_field",
            "name",
        ),
        (json!({"name": "x"}), "missing_field", "condition"),
        (
            json!({"name": "x", "condition": in_hangzhou(), "interval_minutes": 4}),
            "invalid_field",
            "interval_minutes",
        ),
        (
            json!({"name": "x", "condition": in_hangzhou(), "refresh_mode": "hourly"}),
            "invalid_field",
            "refresh_mode",
        ),
        (
            json!({"name": "x".repeat(129), "condition": in_hangzhou()}),
            "invalid_field",
            "name",
        ),
        (
            json!({"name": "x", "condition": in_hangzhou(), "interval_minutes": "often"}),
            "invalid_json",
            "interval_minutes",
        ),
    ] {
        let (status, e) = call!(&app, post(body.clone()));
        assert_eq!(
            (status, e["code"].as_str(), e["details"]["field"].as_str()),
            (400, Some(code), Some(field)),
            "{body}: {e}"
        );
    }
    let (status, e) = call!(
        &app,
        post(json!({"name": "x", "condition": in_hangzhou(), "colour": "red"}))
    );
    assert_eq!((status, e["code"].as_str()), (400, Some("invalid_json")));
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("unknown field `colour`"),
        "{e}"
    );
    let bad = json!({"version": 1, "root": {"type": "and", "children": [
        {"type": "property", "key": "contact.city", "value_type": "string", "op": "eq", "value": "x"},
        {"type": "behaviour", "event": "track.page_view", "window": {"type": "last", "days": 400}}]}});
    let (status, e) = call!(&app, post(json!({"name": "x", "condition": bad})));
    assert_eq!(
        (status, e["code"].as_str()),
        (400, Some("invalid_condition"))
    );
    let paths: Vec<&str> = e["details"]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["path"].as_str().unwrap())
        .collect();
    assert!(paths.contains(&"root.children[1].window.days"), "{e}");
    let unknown =
        json!({"version": 1, "root": {"type": "tag", "op": "has", "tags": ["no-such-tag"]}});
    let (status, e) = call!(&app, post(json!({"name": "x", "condition": unknown})));
    assert_eq!((status, e["code"].as_str()), (400, Some("unknown_tag")));
    assert_eq!(e["details"]["errors"][0]["path"], "root.tags[0]", "{e}");

    // Names are unique among the tenant's active segments.
    let (status, e) = call!(
        &app,
        post(json!({"name": "Hangzhou", "condition": engaged_locals()}))
    );
    assert_eq!((status, e["code"].as_str()), (409, Some("duplicate_name")));
    let b = ok!(
        &app,
        Method::POST,
        "/v1/saved-segments",
        T,
        Some(json!({"name": "Engaged", "condition": engaged_locals(), "refresh_mode": "manual"})),
        201,
    );
    assert_eq!(b["next_refresh_at"], Value::Null, "manual: never scheduled");
    let bid = id_of(&b);
    let got = ok!(
        &app,
        Method::GET,
        format!("/v1/saved-segments/{aid}"),
        T,
        None,
        200
    );
    assert_eq!(got, a);

    // Changes: at a version, or 409; a new condition forgets the size and is due at once.
    let uri = format!("/v1/saved-segments/{aid}");
    let changed = ok!(
        &app,
        Method::PATCH,
        uri,
        T,
        Some(json!({"name": "Hangzhou people", "interval_minutes": 15, "version": 1})),
        200,
    );
    assert_eq!(
        (
            &changed["name"],
            &changed["interval_minutes"],
            &changed["version"]
        ),
        (&json!("Hangzhou people"), &json!(15), &json!(2))
    );
    let e = ok!(
        &app,
        Method::PATCH,
        uri,
        T,
        Some(json!({"name": "stale", "version": 1})),
        409,
    );
    assert_eq!(e["code"], "version_conflict");
    let e = ok!(
        &app,
        Method::PATCH,
        uri,
        T,
        Some(json!({"name": "Engaged"})),
        409
    );
    assert_eq!(e["code"], "duplicate_name");
    let e = ok!(
        &app,
        Method::PATCH,
        uri,
        T,
        Some(json!({"condition": bad})),
        400
    );
    assert_eq!(e["code"], "invalid_condition");
    let counted = ok!(&app, Method::POST, format!("{uri}/refresh"), T, None, 200);
    assert_eq!(counted["segment"]["size"], 0, "no profiles yet");
    let recond = ok!(
        &app,
        Method::PATCH,
        uri,
        T,
        Some(json!({"condition": engaged_locals()})),
        200,
    );
    assert_eq!(
        (&recond["size"], &recond["refreshed_at"], &recond["version"]),
        (&Value::Null, &Value::Null, &json!(3))
    );
    assert_eq!(recond["next_refresh_at"], json!(now()));
    // Nothing changed: the same version.
    let same = ok!(&app, Method::PATCH, uri, T, Some(json!({})), 200);
    assert_eq!(same["version"], 3);
    let manual = ok!(
        &app,
        Method::PATCH,
        uri,
        T,
        Some(json!({"refresh_mode": "manual"})),
        200,
    );
    assert_eq!(manual["next_refresh_at"], Value::Null);

    // Archiving keeps it, frees its name and stops what needs a live segment.
    let archived = ok!(&app, Method::DELETE, uri, T, None, 200);
    assert_eq!(archived["status"], "archived");
    assert!(archived["archived_at"].is_string(), "{archived}");
    let again = ok!(&app, Method::DELETE, uri, T, None, 200);
    assert_eq!(
        again["version"], archived["version"],
        "archiving twice changes nothing"
    );
    for (method, path, body) in [
        (Method::POST, "refresh", None),
        (Method::GET, "members", None),
        (Method::POST, "export", Some(json!({"fields": []}))),
    ] {
        let e = ok!(&app, method, format!("{uri}/{path}"), T, body, 409);
        assert_eq!(e["code"], "segment_archived", "{path}: {e}");
    }
    let c = ok!(
        &app,
        Method::POST,
        "/v1/saved-segments",
        T,
        Some(json!({"name": "Hangzhou people", "condition": in_hangzhou()})),
        201,
    );
    let e = ok!(
        &app,
        Method::PATCH,
        uri,
        T,
        Some(json!({"status": "active"})),
        409
    );
    assert_eq!(e["code"], "duplicate_name", "its name is taken again");

    // Lists: active by default, by status, every one; paged by cursor.
    let list = |q: &str| {
        let app = &app;
        let uri = format!("/v1/saved-segments{q}");
        async move {
            let (s, v) = call!(app, req(Method::GET, &uri, T, None));
            assert_eq!(s, 200, "{v}");
            v["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(id_of)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(list("").await, [bid.clone(), id_of(&c)]);
    assert_eq!(list("?status=archived").await, std::slice::from_ref(&aid));
    assert_eq!(list("?status=all").await, [aid.clone(), bid, id_of(&c)]);
    let get = |uri: String| {
        let app = &app;
        async move { call!(app, req(Method::GET, &uri, T, None)) }
    };
    pages::check(&get, "/v1/saved-segments?status=all", 2, |v| {
        v["id"].clone()
    })
    .await;
    pages::refused(
        &get,
        "/v1/saved-segments?status=gone",
        "invalid_field",
        "status",
    )
    .await;
    db.cleanup().await;
}

pub(super) async fn another_tenant_sees_none_of_them(backend: Backend) {
    let (db, tagger, _clock) = setup(backend).await;
    population(&tagger, T, 4).await;
    let app = api!(tagger);
    let s = ok!(
        &app,
        Method::POST,
        "/v1/saved-segments",
        T,
        Some(json!({"name": "Hangzhou", "condition": in_hangzhou()})),
        201,
    );
    let uri = format!("/v1/saved-segments/{}", id_of(&s));
    for (method, path, body) in [
        (Method::GET, "", None),
        (Method::PATCH, "", Some(json!({"name": "mine now"}))),
        (Method::DELETE, "", None),
        (Method::POST, "/refresh", None),
        (Method::GET, "/sizes", None),
        (Method::GET, "/members", None),
        (Method::POST, "/export", Some(json!({}))),
    ] {
        let e = ok!(
            &app,
            method.clone(),
            format!("{uri}{path}"),
            OTHER,
            body,
            404
        );
        assert_eq!(e["code"], "not_found", "{method} {path}: {e}");
    }
    let list = ok!(
        &app,
        Method::GET,
        "/v1/saved-segments?status=all",
        OTHER,
        None,
        200
    );
    assert_eq!(list["items"], json!([]));
    // Untouched, and without a credential nothing answers.
    let mine = ok!(&app, Method::GET, uri, T, None, 200);
    assert_eq!(
        (&mine["name"], &mine["version"]),
        (&json!("Hangzhou"), &json!(1))
    );
    let bare = atest::TestRequest::get().uri("/v1/saved-segments");
    let (status, _) = call!(&app, bare);
    assert_eq!(status, 401);
    db.cleanup().await;
}
