//! identity-svc's notes (follow-up records) on customers, on MariaDB and SQLite, through its
//! internal API as the gateway calls it: written by the credential's actor, listed newest first
//! by cursor, edited and deleted by their author or an admin / owner only, each step on the
//! customer's timeline (`note.added`, `note.edited`, `note.deleted`; a deleted note's text taken
//! out of its earlier entries); bad input refused naming the field; another tenant's notes and
//! profiles not found; notes following their person through a merge and back through an
//! un-merge.

use actix_web::{test as atest, web, App};
use identity_svc::config::ResolutionConfig;
use identity_svc::domain::pii::Pii;
use identity_svc::domain::Policy;
use identity_svc::store::{Outcome, Resolution, Resolver};
use proto::auth::Role;
use proto::Envelope;
use serde_json::{json, Value};
use test_support::auth::{header_with, TEST_INTERNAL_KEY};
use test_support::db::{Backend, TestDb};
use test_support::events::{count, session};
use test_support::pages;

const TENANT: &str = "t-notes";
const OTHER: &str = "t-notes-other";
const MP: &str = "wxMPnotes";
const MP2: &str = "wxMPnotes2";
const ALICE: &str = "rep:wwNotes:alice";
const BOB: &str = "rep:wwNotes:bob";
const UNKNOWN: &str = "00000000-0000-7000-8000-000000000000";

pub(crate) async fn setup(backend: Backend) -> (TestDb, Resolver) {
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

pub(crate) async fn resolved(r: &Resolver, env: &Envelope) -> Resolution {
    match r.resolve(env).await.unwrap() {
        Outcome::Resolved(res) => res,
        other => panic!("expected a resolution, got {other:?}"),
    }
}

/// Who calls: tenant, actor, role (as the gateway signs them).
#[derive(Debug, Clone, Copy)]
pub(crate) struct As<'a>(pub &'a str, pub &'a str, pub Role);

const REP_ALICE: As = As(TENANT, ALICE, Role::Rep);
const REP_BOB: As = As(TENANT, BOB, Role::Rep);
const OPERATOR: As = As(TENANT, "user:7", Role::Operator);
const ADMIN: As = As(TENANT, "user:1", Role::Admin);
const OWNER: As = As(TENANT, "user:0", Role::Owner);

macro_rules! api {
    ($r:expr) => {{
        let routes = identity_svc::api::routes($r.clone());
        atest::init_service(
            App::new()
                .app_data(web::Data::new(test_support::auth::key()))
                .app_data(platform::http::query_config())
                .app_data(platform::http::json_config())
                .app_data(platform::http::path_config())
                .configure(move |c: &mut web::ServiceConfig| routes(c)),
        )
        .await
    }};
}

/// `(status, JSON body or null)` of a request by `who`; `$body` a JSON value or a raw string.
macro_rules! call {
    ($app:expr, $who:expr, $method:expr, $uri:expr $(, $body:expr)? $(,)?) => {{
        let who: As = $who;
        #[allow(unused_mut)]
        let mut req = atest::TestRequest::default()
            .method($method.parse().unwrap())
            .uri(AsRef::<str>::as_ref(&$uri))
            .insert_header(header_with(TEST_INTERNAL_KEY, who.0, who.1, who.2));
        $( req = req.insert_header(("content-type", "application/json"))
                .set_payload(body_bytes($body)); )?
        let resp = atest::call_service(&$app, req.to_request()).await;
        let status = resp.status().as_u16();
        let bytes = atest::read_body(resp).await;
        let body: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        (status, body)
    }};
}

/// A request body: a JSON value, or raw text as given.
pub(crate) trait Body {
    fn bytes(self) -> Vec<u8>;
}
impl Body for Value {
    fn bytes(self) -> Vec<u8> {
        self.to_string().into_bytes()
    }
}
impl Body for &str {
    fn bytes(self) -> Vec<u8> {
        self.as_bytes().to_vec()
    }
}
pub(crate) fn body_bytes(b: impl Body) -> Vec<u8> {
    b.bytes()
}

/// The timeline entries of `profile` of type `note.*`, newest first.
macro_rules! note_entries {
    ($app:expr, $profile:expr) => {{
        let (st, tl) = call!(
            $app,
            REP_ALICE,
            "GET",
            format!("/v1/profiles/{}/timeline?limit=500", $profile)
        );
        assert_eq!(st, 200, "{tl}");
        tl["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["type"].as_str().unwrap().starts_with("note."))
            .cloned()
            .collect::<Vec<Value>>()
    }};
}

/// The ids of the notes listed under `profile` (one page), newest first.
macro_rules! listed {
    ($app:expr, $profile:expr) => {{
        let (st, b) = call!(
            $app,
            REP_ALICE,
            "GET",
            format!("/v1/profiles/{}/notes?limit=500", $profile)
        );
        assert_eq!(st, 200, "{b}");
        assert!(b["next_cursor"].is_null(), "{b}");
        b["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["id"].as_str().unwrap().to_string())
            .collect::<Vec<String>>()
    }};
}

async fn notes_are_written_listed_edited_and_deleted(backend: Backend) {
    let (t, r) = setup(backend).await;
    let p = resolved(&r, &session(TENANT, MP, "oN1", None))
        .await
        .profile_id;
    let app = api!(r);

    // Written by the credential's actor; text trimmed, follow-up time in UTC.
    let (st, n) = call!(
        app,
        REP_ALICE,
        "POST",
        format!("/v1/profiles/{p}/notes"),
        json!({"type": "call", "text": "  Called: wants a quote for 20 seats  ",
               "next_follow_up_at": "2026-07-01T09:30:00+08:00"})
    );
    assert_eq!(st, 201, "{n}");
    let first = n["id"].as_str().unwrap().to_string();
    assert_eq!(n["profile_id"], p.as_str());
    assert_eq!(n["author"], ALICE);
    assert_eq!(n["type"], "call");
    assert_eq!(n["text"], "Called: wants a quote for 20 seats");
    assert_eq!(n["next_follow_up_at"], "2026-07-01T01:30:00Z");
    assert_eq!(n["created_at"], n["updated_at"]);
    assert_eq!(uuid::Uuid::parse_str(&first).unwrap().get_version_num(), 7);

    // Four more, by Alice, Bob and an operator.
    let mut written = vec![first.clone()];
    for (i, who) in [REP_ALICE, REP_BOB, OPERATOR, REP_BOB]
        .into_iter()
        .enumerate()
    {
        let (st, n) = call!(
            app,
            who,
            "POST",
            format!("/v1/profiles/{p}/notes"),
            json!({"type": "wechat", "text": format!("note {i}")})
        );
        assert_eq!(st, 201, "{n}");
        assert!(n["next_follow_up_at"].is_null(), "{n}");
        written.push(n["id"].as_str().unwrap().to_string());
    }
    // Newest first, page by page.
    let get = |uri: String| {
        let app = &app;
        async move { call!(*app, REP_ALICE, "GET", uri) }
    };
    let walk = pages::check(&get, &format!("/v1/profiles/{p}/notes"), 2, |v| {
        v["id"].clone()
    })
    .await;
    let ids: Vec<&str> = walk
        .items
        .iter()
        .map(|v| v["id"].as_str().unwrap())
        .collect();
    let newest_first: Vec<&str> = written.iter().rev().map(String::as_str).collect();
    assert_eq!(ids, newest_first);

    // Bob may not edit Alice's note, nor may an operator; nothing changes.
    for who in [REP_BOB, OPERATOR] {
        let (st, b) = call!(
            app,
            who,
            "PATCH",
            format!("/v1/notes/{first}"),
            json!({"text": "rewritten"})
        );
        assert_eq!(
            (st, b["code"].as_str()),
            (403, Some("not_your_note")),
            "{b}"
        );
    }
    // Alice edits her own: a new text, the follow-up cleared.
    let (st, e) = call!(
        app,
        REP_ALICE,
        "PATCH",
        format!("/v1/notes/{first}"),
        json!({"text": "Called twice: quote sent", "next_follow_up_at": null})
    );
    assert_eq!(st, 200, "{e}");
    assert_eq!(e["text"], "Called twice: quote sent");
    assert!(e["next_follow_up_at"].is_null(), "{e}");
    assert_eq!((&e["type"], &e["author"]), (&json!("call"), &json!(ALICE)));
    // An admin and an owner edit anyone's; the author stays the author.
    let (st, e) = call!(
        app,
        ADMIN,
        "PATCH",
        format!("/v1/notes/{first}"),
        json!({"type": "visit"})
    );
    assert_eq!(
        (st, &e["type"], &e["author"]),
        (200, &json!("visit"), &json!(ALICE))
    );
    let bobs = &written[2];
    let (st, e) = call!(
        app,
        OWNER,
        "PATCH",
        format!("/v1/notes/{bobs}"),
        json!({"next_follow_up_at": "2026-08-01T10:00:00Z"})
    );
    assert_eq!(st, 200, "{e}");
    assert_eq!(e["next_follow_up_at"], "2026-08-01T10:00:00Z");
    // An edit that changes nothing writes nothing.
    let entries_before = note_entries!(app, p).len();
    let (st, e) = call!(
        app,
        ADMIN,
        "PATCH",
        format!("/v1/notes/{first}"),
        json!({"type": "visit"})
    );
    assert_eq!(st, 200, "{e}");
    assert_eq!(note_entries!(app, p).len(), entries_before);

    // Deleting: Bob may not delete Alice's; Alice may; then it is gone.
    let (st, b) = call!(app, REP_BOB, "DELETE", format!("/v1/notes/{first}"));
    assert_eq!(
        (st, b["code"].as_str()),
        (403, Some("not_your_note")),
        "{b}"
    );
    let (st, b) = call!(app, REP_ALICE, "DELETE", format!("/v1/notes/{first}"));
    assert_eq!((st, &b), (204, &Value::Null));
    assert!(!listed!(app, p).contains(&first));
    assert_eq!(listed!(app, p).len(), 4);
    for (method, body) in [("PATCH", Some(json!({"text": "again"}))), ("DELETE", None)] {
        let (st, b) = match body {
            Some(body) => call!(app, REP_ALICE, method, format!("/v1/notes/{first}"), body),
            None => call!(app, REP_ALICE, method, format!("/v1/notes/{first}")),
        };
        assert_eq!(
            (st, b["code"].as_str()),
            (404, Some("not_found")),
            "{method}: {b}"
        );
    }
    // An admin deletes Bob's; the row is kept, marked deleted.
    let (st, _) = call!(app, ADMIN, "DELETE", format!("/v1/notes/{bobs}"));
    assert_eq!(st, 204);
    assert_eq!(
        count(
            &t.conn,
            "SELECT COUNT(*) FROM notes WHERE deleted_at IS NOT NULL"
        )
        .await,
        2
    );

    // The timeline tells the story, newest first, beside the profile's events.
    let entries = note_entries!(app, p);
    let kinds: Vec<&str> = entries
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "note.deleted",
            "note.deleted",
            "note.edited",
            "note.edited",
            "note.edited",
            "note.added",
            "note.added",
            "note.added",
            "note.added",
            "note.added",
        ]
    );
    let of = |id: &str, kind: &str| -> Vec<Value> {
        entries
            .iter()
            .filter(|e| e["type"] == kind && e["summary"]["note_id"] == id)
            .map(|e| e["summary"].clone())
            .collect()
    };
    // Alice's note: written, edited twice, deleted — its text gone from every entry.
    let added = &of(&first, "note.added")[0];
    assert_eq!(
        added,
        &json!({"note_id": first, "type": "call", "text": null, "deleted": true,
                "author": ALICE, "next_follow_up_at": "2026-07-01T01:30:00Z"})
    );
    let edits = of(&first, "note.edited");
    assert_eq!(edits.len(), 2);
    assert_eq!(
        edits[1],
        json!({"note_id": first, "type": "call", "text": null, "deleted": true,
               "author": ALICE, "next_follow_up_at": null, "edited_by": ALICE,
               "changed": ["text", "next_follow_up_at"]})
    );
    assert_eq!(
        (
            &edits[0]["edited_by"],
            &edits[0]["changed"],
            &edits[0]["type"]
        ),
        (&json!("user:1"), &json!(["type"]), &json!("visit"))
    );
    assert_eq!(
        of(&first, "note.deleted"),
        [json!({"note_id": first, "type": "visit", "author": ALICE, "deleted_by": ALICE})]
    );
    // A live note's entries keep their text.
    let live = &written[1];
    assert_eq!(
        of(live, "note.added"),
        [
            json!({"note_id": live, "type": "wechat", "text": "note 0", "author": ALICE,
                "next_follow_up_at": null})
        ]
    );
    assert_eq!(
        of(bobs, "note.deleted")[0]["deleted_by"],
        "user:1",
        "an admin's delete"
    );
    let (_, tl) = call!(
        app,
        REP_ALICE,
        "GET",
        format!("/v1/profiles/{p}/timeline?limit=500")
    );
    let all = tl["items"].as_array().unwrap();
    assert_eq!(all.len(), entries.len() + 1, "and the session event");
    assert!(all.iter().all(|e| e["profile_id"] == p.as_str()));
    assert!(
        !tl.to_string().contains("Called"),
        "a deleted note cannot be read back from the timeline: {tl}"
    );
    t.cleanup().await;
}

async fn bad_input_is_refused_naming_the_field(backend: Backend) {
    let (t, r) = setup(backend).await;
    let p = resolved(&r, &session(TENANT, MP, "oN2", None))
        .await
        .profile_id;
    let app = api!(r);
    let uri = format!("/v1/profiles/{p}/notes");
    let long = "x".repeat(2001);
    let cases = [
        (json!({"text": "x"}), "missing_field", "type"),
        (json!({"type": "call"}), "missing_field", "text"),
        (json!({"type": "fax", "text": "x"}), "invalid_field", "type"),
        (
            json!({"type": "call", "text": "   "}),
            "invalid_field",
            "text",
        ),
        (
            json!({"type": "call", "text": long}),
            "invalid_field",
            "text",
        ),
        (json!({"type": "call", "text": 5}), "invalid_field", "text"),
        (
            json!({"type": "call", "text": "x", "next_follow_up_at": "next week"}),
            "invalid_field",
            "next_follow_up_at",
        ),
        (
            json!({"type": "call", "text": "x", "next_follow_up_at": "1900-01-01T00:00:00Z"}),
            "invalid_field",
            "next_follow_up_at",
        ),
        // Fields notes do not have, the author among them, are refused.
        (
            json!({"type": "call", "text": "x", "author": "user:1"}),
            "invalid_field",
            "author",
        ),
        (
            json!({"type": "call", "text": "x", "tenant_id": OTHER}),
            "invalid_field",
            "tenant_id",
        ),
    ];
    for (body, code, field) in cases {
        let (st, b) = call!(app, REP_ALICE, "POST", &uri, body.clone());
        assert_eq!(
            (st, b["code"].as_str(), b["details"]["field"].as_str()),
            (400, Some(code), Some(field)),
            "{body}: {b}"
        );
    }
    let (_, b) = call!(
        app,
        REP_ALICE,
        "POST",
        &uri,
        json!({"type": "fax", "text": "x"})
    );
    assert_eq!(
        b["details"]["allowed"],
        json!(["call", "visit", "wechat", "meeting", "email", "other"])
    );
    assert_eq!(b["details"]["reason"], "unknown_type");
    for raw in ["", "[1]", "{\"type\": "] {
        let (st, b) = call!(app, REP_ALICE, "POST", &uri, raw);
        assert_eq!(
            (st, b["code"].as_str()),
            (400, Some("invalid_json")),
            "{raw}: {b}"
        );
    }
    assert_eq!(count(&t.conn, "SELECT COUNT(*) FROM notes").await, 0);

    let (st, n) = call!(
        app,
        REP_ALICE,
        "POST",
        &uri,
        json!({"type": "email", "text": "x"})
    );
    assert_eq!(st, 201, "{n}");
    let note = format!("/v1/notes/{}", n["id"].as_str().unwrap());
    for (body, code, field) in [
        (json!({}), "missing_field", "text|type|next_follow_up_at"),
        (json!({"text": ""}), "invalid_field", "text"),
        (json!({"text": null}), "invalid_field", "text"),
        (json!({"type": "sms"}), "invalid_field", "type"),
        (
            json!({"next_follow_up_at": "2026-13-01T00:00:00Z"}),
            "invalid_field",
            "next_follow_up_at",
        ),
        (json!({"author": BOB}), "invalid_field", "author"),
        (
            json!({"text": "y", "profile_id": p}),
            "invalid_field",
            "profile_id",
        ),
    ] {
        let (st, b) = call!(app, REP_ALICE, "PATCH", &note, body.clone());
        assert_eq!(
            (st, b["code"].as_str(), b["details"]["field"].as_str()),
            (400, Some(code), Some(field)),
            "{body}: {b}"
        );
    }
    let (_, listed) = call!(app, REP_ALICE, "GET", &uri);
    assert_eq!(listed["items"][0]["text"], "x", "nothing changed");
    // Unknown profiles and notes; bad list parameters.
    let (st, b) = call!(
        app,
        REP_ALICE,
        "POST",
        format!("/v1/profiles/{UNKNOWN}/notes"),
        json!({"type": "call", "text": "x"})
    );
    assert_eq!((st, b["code"].as_str()), (404, Some("not_found")), "{b}");
    let (st, _) = call!(
        app,
        REP_ALICE,
        "GET",
        format!("/v1/profiles/{UNKNOWN}/notes")
    );
    assert_eq!(st, 404);
    let (st, _) = call!(
        app,
        ADMIN,
        "PATCH",
        format!("/v1/notes/{UNKNOWN}"),
        json!({"text": "y"})
    );
    assert_eq!(st, 404);
    let (st, _) = call!(app, ADMIN, "DELETE", format!("/v1/notes/{UNKNOWN}"));
    assert_eq!(st, 404);
    let get = |uri: String| {
        let app = &app;
        async move { call!(*app, REP_ALICE, "GET", uri) }
    };
    pages::refused(&get, &format!("{uri}?limit=0"), "invalid_limit", "limit").await;
    pages::refused(
        &get,
        &format!("{uri}?cursor=zzz"),
        "invalid_cursor",
        "cursor",
    )
    .await;
    t.cleanup().await;
}

async fn another_tenants_notes_are_not_found(backend: Backend) {
    let (t, r) = setup(backend).await;
    let pa = resolved(&r, &session(TENANT, MP, "oN3", None))
        .await
        .profile_id;
    let pb = resolved(&r, &session(OTHER, MP, "oN3", None))
        .await
        .profile_id;
    let app = api!(r);
    let (st, n) = call!(
        app,
        REP_ALICE,
        "POST",
        format!("/v1/profiles/{pa}/notes"),
        json!({"type": "meeting", "text": "budget approved in Q3"})
    );
    assert_eq!(st, 201, "{n}");
    let id = n["id"].as_str().unwrap().to_string();
    // Tenant B, even its owner, and even as an actor of the same name: A's profile and note are
    // exactly as unknown ones.
    for who in [
        As(OTHER, "user:0", Role::Owner),
        As(OTHER, ALICE, Role::Rep),
    ] {
        let tries = [
            (
                "GET",
                format!("/v1/profiles/{pa}/notes"),
                format!("/v1/profiles/{UNKNOWN}/notes"),
                None,
            ),
            (
                "POST",
                format!("/v1/profiles/{pa}/notes"),
                format!("/v1/profiles/{UNKNOWN}/notes"),
                Some(json!({"type": "call", "text": "x"})),
            ),
            (
                "PATCH",
                format!("/v1/notes/{id}"),
                format!("/v1/notes/{UNKNOWN}"),
                Some(json!({"text": "mine now"})),
            ),
            (
                "DELETE",
                format!("/v1/notes/{id}"),
                format!("/v1/notes/{UNKNOWN}"),
                None,
            ),
        ];
        for (method, uri, unknown, body) in tries {
            let ((st, b), (st_u, b_u)) = match body {
                Some(body) => (
                    call!(app, who, method, &uri, body.clone()),
                    call!(app, who, method, &unknown, body),
                ),
                None => (
                    call!(app, who, method, &uri),
                    call!(app, who, method, &unknown),
                ),
            };
            assert_eq!(
                (st, b["code"].as_str()),
                (404, Some("not_found")),
                "{method} {uri}: {b}"
            );
            assert_eq!((st, &b["code"]), (st_u, &b_u["code"]), "{method} {uri}");
            assert!(!b.to_string().contains("budget"), "{b}");
        }
    }
    // B's own profile lists none of A's notes; A's note and timeline are untouched.
    let (st, b) = call!(
        app,
        As(OTHER, "user:0", Role::Owner),
        "GET",
        format!("/v1/profiles/{pb}/notes")
    );
    assert_eq!((st, &b["items"]), (200, &json!([])), "{b}");
    assert_eq!(listed!(app, pa), [id]);
    let (_, a) = call!(app, REP_ALICE, "GET", format!("/v1/profiles/{pa}/notes"));
    assert_eq!(a["items"][0]["text"], "budget approved in Q3");
    assert_eq!(note_entries!(app, pa).len(), 1);
    assert_eq!(count(&t.conn, "SELECT COUNT(*) FROM notes").await, 1);
    t.cleanup().await;
}

async fn notes_follow_their_person_through_merge_and_unmerge(backend: Backend) {
    let (t, r) = setup(backend).await;
    // Two profiles of one person, not yet known to be one: a mini-program login with the
    // unionid, and a login to another mini-program without it.
    let pa = resolved(&r, &session(TENANT, MP, "oM1", Some("uM")))
        .await
        .profile_id;
    let pb = resolved(&r, &session(TENANT, MP2, "oM2", None))
        .await
        .profile_id;
    let app = api!(r);
    let write = |profile: &str, text: &str| {
        let uri = format!("/v1/profiles/{profile}/notes");
        let body = json!({"type": "visit", "text": text});
        (uri, body)
    };
    let mut ids = std::collections::BTreeMap::new();
    for (profile, text) in [(&pa, "on A"), (&pb, "on B")] {
        let (uri, body) = write(profile, text);
        let (st, n) = call!(app, REP_ALICE, "POST", uri, body);
        assert_eq!(st, 201, "{n}");
        ids.insert(text, n["id"].as_str().unwrap().to_string());
    }

    // WeChat tells the unionid of B's login: B is merged into A.
    let m = resolved(&r, &session(TENANT, MP2, "oM2", Some("uM"))).await;
    assert_eq!(
        (m.profile_id.as_str(), &m.absorbed),
        (pa.as_str(), &vec![pb.clone()])
    );
    let mut under_a = listed!(app, pa);
    under_a.sort();
    let mut both = vec![ids["on A"].clone(), ids["on B"].clone()];
    both.sort();
    assert_eq!(
        under_a, both,
        "the survivor lists the absorbed profile's notes"
    );
    let a_notes = note_entries!(app, pa);
    assert_eq!(a_notes.len(), 2, "and its timeline shows them");
    // B's id still answers as a merged profile does, with its own notes.
    let (_, b_view) = call!(app, REP_ALICE, "GET", format!("/v1/profiles/{pb}"));
    assert_eq!(
        (&b_view["status"], &b_view["merged_into"]),
        (&json!("merged"), &json!(pa))
    );
    assert_eq!(listed!(app, pb), [ids["on B"].clone()]);
    // A note written through B's id while merged is kept on B, listed under A.
    let (uri, body) = write(&pb, "on B while merged");
    let (st, n) = call!(app, REP_BOB, "POST", uri, body);
    assert_eq!((st, &n["profile_id"]), (201, &json!(pb)), "{n}");
    ids.insert("on B while merged", n["id"].as_str().unwrap().to_string());
    assert_eq!(listed!(app, pa).len(), 3);
    assert_eq!(
        listed!(app, pa)[0],
        ids["on B while merged"],
        "newest first"
    );
    // A note written on A after the merge stays A's.
    let (uri, body) = write(&pa, "on A after the merge");
    let (st, n) = call!(app, REP_ALICE, "POST", uri, body);
    assert_eq!(st, 201, "{n}");
    ids.insert(
        "on A after the merge",
        n["id"].as_str().unwrap().to_string(),
    );
    // Edits while merged land with the note, wherever it is listed.
    let (st, _) = call!(
        app,
        REP_ALICE,
        "PATCH",
        format!("/v1/notes/{}", ids["on B"]),
        json!({"text": "on B, edited"})
    );
    assert_eq!(st, 200);
    assert_eq!(note_entries!(app, pa).len(), 5);

    // An operator undoes the merge: B's notes and entries are B's again, A keeps its own.
    let (_, merges) = call!(app, ADMIN, "GET", format!("/v1/profiles/{pa}/merges"));
    let merge_id = merges["items"][0]["id"].as_i64().unwrap();
    let (st, u) = call!(
        app,
        ADMIN,
        "POST",
        format!("/v1/merges/{merge_id}/unmerge"),
        json!({"reason": "two people after all"})
    );
    assert_eq!(st, 200, "{u}");
    let (_, b_view) = call!(app, REP_ALICE, "GET", format!("/v1/profiles/{pb}"));
    assert_eq!(b_view["status"], "active");
    assert_eq!(
        listed!(app, pb),
        [ids["on B while merged"].clone(), ids["on B"].clone()]
    );
    assert_eq!(
        listed!(app, pa),
        [ids["on A after the merge"].clone(), ids["on A"].clone()]
    );
    let b_entries = note_entries!(app, pb);
    let b_notes: std::collections::BTreeSet<&str> = b_entries
        .iter()
        .map(|e| e["summary"]["note_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        b_notes,
        [ids["on B"].as_str(), ids["on B while merged"].as_str()].into()
    );
    assert_eq!(b_entries.len(), 3, "two written, one edited");
    assert_eq!(note_entries!(app, pa).len(), 2);
    // The note's author can still edit it where it now is.
    let (st, e) = call!(
        app,
        REP_BOB,
        "PATCH",
        format!("/v1/notes/{}", ids["on B while merged"]),
        json!({"type": "call"})
    );
    assert_eq!((st, &e["profile_id"]), (200, &json!(pb)), "{e}");
    t.cleanup().await;
}

test_support::on_both_backends!(
    notes_are_written_listed_edited_and_deleted,
    bad_input_is_refused_naming_the_field,
    another_tenants_notes_are_not_found,
    notes_follow_their_person_through_merge_and_unmerge,
);
