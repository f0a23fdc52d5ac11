//! WeCom corp-tag sync end to end in `scrm up` with the fake WeChat server: a rep adds a
//! customer (identity looks them up and announces the follow with its external_userid), the
//! operator mirrors the corp's tag library and links a corp tag group over tagging's API, a tag
//! command tags the profile — and the tag appears on the rep's view of the customer in WeCom,
//! written with a token tagging got from the gateway's keeper. A corp tag renamed in WeCom
//! (its `change_external_tag` callback through the gateway) renames the linked local tag.
//! Tagging's API is called as the gateway calls it (a service credential naming the tenant and
//! the operator); another tenant's credential finds neither the corp's mirror, nor its link,
//! nor its groups and write-backs, and cannot sync the corp (the keeper refuses it the corp).

use crate::common;

use std::time::{Duration, Instant};

use crate::common::TENANT;
use fake_wechat::{endpoints, FakeWechat};
use platform::http::PRINCIPAL_HEADER;
use proto::auth::Role as AuthRole;
use proto::tagging::{TagCommand, COMMAND_TAG_ADD};
use proto::Envelope;
use scrm::roles::Role;
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{json, Value};

/// Polls `check` every 100 ms for up to 20 s; the last value when it never passes.
async fn until<T, F, Fut>(what: &str, mut probe: F, check: impl Fn(&T) -> bool) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
    T: std::fmt::Debug,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v = probe().await;
        if check(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: last seen {v:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Another tenant of the deployment.
const OTHER: &str = "t-e2e-other";

/// The credential the gateway would send for operator `user:ops` of `tenant`.
fn credential(tenant: &str) -> String {
    test_support::auth::header_with(common::INTERNAL_KEY, tenant, "user:ops", AuthRole::Operator).1
}

/// `GET url` as `tenant`.
async fn get_as(http: &reqwest::Client, tenant: &str, url: String) -> (u16, Value) {
    let r = http
        .get(url)
        .header(PRINCIPAL_HEADER, credential(tenant))
        .send()
        .await
        .expect("answers");
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

/// `GET url` as [`TENANT`].
async fn get(http: &reqwest::Client, url: String) -> (u16, Value) {
    get_as(http, TENANT, url).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tag_set_in_scrm_reaches_the_reps_customer_in_wecom() {
    let fake = FakeWechat::start(0, 61).expect("fake starts");
    let (running, dir) = common::start_up(
        &fake,
        Some(json!({"tagging": {"wecom_sync": {"poll_ms": 200, "retry_delays_ms": [500]}}})),
    )
    .await;
    let http = reqwest::Client::new();
    let gw = running.url(Role::Gateway);
    let identity = running.url(Role::Identity);
    let tagging = running.url(Role::Tagging);
    let apps = fake.apps();
    let corp = apps.wecom.appid.clone();
    let user = fake
        .population()
        .users
        .iter()
        .find(|u| !u.follows.is_empty())
        .expect("a contact")
        .clone();
    let rep = user.follows[0].userid.clone();

    // The rep adds the customer: identity asks WeCom who it is and announces the follow.
    let wecom = fake.callbacks(&apps.wecom);
    let r = fake
        .send_wecom(
            &gw,
            &apps.wecom,
            &wecom.add_external_contact(&rep, &user.external_userid, None),
        )
        .await
        .expect("callback");
    assert_eq!(r.status, 200, "{}", r.body);
    let by_ext = format!(
        "{identity}/v1/profiles/by-identifier?tenant_id={TENANT}&kind=wecom_external_userid&namespace={corp}&value={}",
        user.external_userid
    );
    let (_, profile) = until(
        "the profile with the rep's follow",
        || get(&http, by_ext.clone()),
        |(s, p)| {
            *s == 200
                && p["relations"]["wecom_follows"][0]["external_userid"]
                    == json!(user.external_userid)
        },
    )
    .await;
    let profile_id = profile["id"].as_str().expect("id").to_owned();
    // tagging keeps the follow from profile.updated (its own database, read here directly).
    let tagging_db = sea_orm::Database::connect(format!(
        "sqlite://{}?mode=ro",
        dir.join("tagging.db").display()
    ))
    .await
    .expect("tagging database");
    until(
        "tagging knows whom to write to",
        || async {
            let row = tagging_db
                .query_one(Statement::from_sql_and_values(
                    tagging_db.get_database_backend(),
                    "SELECT COUNT(*) FROM wecom_contacts WHERE profile_id = $1 AND user_id = $2",
                    [profile_id.clone().into(), rep.clone().into()],
                ))
                .await
                .ok()
                .flatten();
            row.and_then(|r| r.try_get_by_index::<i64>(0).ok())
                .unwrap_or(0)
        },
        |n| *n == 1,
    )
    .await;
    tagging_db.close().await.expect("closes");

    // Mirror the corp's library and link its first group.
    let r = http
        .post(format!("{tagging}/v1/wecom/{corp}/corp-tags/sync"))
        .header(PRINCIPAL_HEADER, credential(TENANT))
        .send()
        .await
        .expect("sync");
    assert!(
        [200, 202].contains(&r.status().as_u16()),
        "{:?}",
        r.text().await
    );
    let lib = fake.corp_tag_groups();
    let mirror_url = format!("{tagging}/v1/wecom/{corp}/corp-tags");
    let (_, mirror) = until(
        "the mirror",
        || get(&http, mirror_url.clone()),
        |(_, m)| m["items"].as_array().is_some_and(|g| g.len() == lib.len()),
    )
    .await;
    assert_eq!(mirror["sync"]["last_error"], Value::Null);
    let g0 = &lib[0];
    let link_url = format!(
        "{tagging}/v1/wecom/{corp}/corp-tag-groups/{}/link",
        g0.group_id
    );
    // Another tenant: the corp's library is not theirs to read, its mirror not theirs to see or
    // link (404 like a corp nobody has).
    let r = http
        .post(format!("{tagging}/v1/wecom/{corp}/corp-tags/sync"))
        .header(PRINCIPAL_HEADER, credential(OTHER))
        .send()
        .await
        .expect("sync");
    assert_eq!(r.status().as_u16(), 404, "{:?}", r.text().await);
    let (s, _) = get_as(&http, OTHER, mirror_url.clone()).await;
    assert_eq!(s, 404);
    let r = http
        .post(&link_url)
        .header(PRINCIPAL_HEADER, credential(OTHER))
        .json(&json!({}))
        .send()
        .await
        .expect("link");
    assert_eq!(r.status().as_u16(), 404, "{:?}", r.text().await);
    let r = http
        .post(&link_url)
        .header(PRINCIPAL_HEADER, credential(TENANT))
        .json(&json!({"tenant_id": OTHER, "operator": "typed-by-caller"}))
        .send()
        .await
        .expect("link");
    let status = r.status().as_u16();
    assert_eq!(status, 201, "{:?}", r.text().await);
    let group: Value = r.json().await.expect("group");
    assert_eq!(group["sync_wecom"], json!(true));
    assert_eq!(group["tenant_id"], json!(TENANT));
    let before = fake.corp_tags_of(&user, &rep);
    let target = g0
        .tags
        .iter()
        .find(|t| !before.contains(&t.id))
        .expect("a tag the customer lacks")
        .clone();
    // The local tag linked to a corp tag.
    let linked = |wecom_tag: &str| {
        group["tags"]
            .as_array()
            .expect("tags")
            .iter()
            .find(|t| t["wecom_tag_id"] == json!(wecom_tag))
            .expect("linked tag")["id"]
            .as_str()
            .expect("id")
            .to_owned()
    };
    let local = linked(&target.id);

    // A service asks tagging to tag the profile: the write-back reaches WeCom.
    let cmd = Envelope::builder(
        COMMAND_TAG_ADD,
        TENANT,
        json!(TagCommand {
            profile_id: profile_id.clone(),
            tag_id: local.clone(),
            actor: "e2e".into()
        }),
    )
    .build();
    running.deps.bus.publish(&cmd).await.expect("published");
    until(
        "the tag on the rep's view of the customer",
        || async { fake.corp_tags_of(&user, &rep) },
        |tags| tags.contains(&target.id),
    )
    .await;
    let calls = fake.mark_tag_calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(
        (calls[0].userid.as_str(), calls[0].add.clone()),
        (rep.as_str(), vec![target.id.clone()])
    );
    let queue_url = format!("{tagging}/v1/wecom/sync-queue");
    let (s, queue) = until(
        "the item done",
        || get(&http, queue_url.clone()),
        |(_, q)| q["counts"]["done"] == json!(1),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(queue["items"], json!([]));
    assert!(
        fake.calls(endpoints::GETTOKEN) >= 1,
        "tokens through the gateway"
    );
    // The other tenant's queue is empty, the write-back and its group are not theirs.
    let (s, theirs) = get_as(&http, OTHER, format!("{queue_url}?tenant_id={TENANT}")).await;
    assert_eq!(s, 200);
    assert!(
        theirs["counts"]
            .as_object()
            .expect("counts")
            .values()
            .all(|n| *n == json!(0)),
        "{theirs}"
    );
    let group_id = group["id"].as_str().expect("id").to_owned();
    for (method, url, body) in [
        (
            reqwest::Method::PATCH,
            format!("{tagging}/v1/tag-groups/{group_id}/wecom"),
            json!({"sync_wecom": false}),
        ),
        (
            reqwest::Method::POST,
            format!("{tagging}/v1/tag-groups/{group_id}/wecom/push"),
            json!({}),
        ),
    ] {
        let r = http
            .request(method.clone(), &url)
            .header(PRINCIPAL_HEADER, credential(OTHER))
            .json(&body)
            .send()
            .await
            .expect("answers");
        assert_eq!(r.status().as_u16(), 404, "{method} {url}");
    }
    let (s, _) = get_as(&http, OTHER, format!("{tagging}/v1/tags/{local}")).await;
    assert_eq!(s, 404);
    // Nor can the other tenant push its own group into this corp: the keeper refuses it the
    // corp, nothing is created in WeCom.
    let post_as = |tenant: &'static str, url: String, body: Value| {
        let http = http.clone();
        async move {
            let r = http
                .post(url)
                .header(PRINCIPAL_HEADER, credential(tenant))
                .json(&body)
                .send()
                .await
                .expect("answers");
            (
                r.status().as_u16(),
                r.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let (s, theirs) = post_as(
        OTHER,
        format!("{tagging}/v1/tag-groups"),
        json!({"name": "borrowed", "corp_id": corp}),
    )
    .await;
    assert_eq!(s, 201, "{theirs}");
    let (s, t) = post_as(
        OTHER,
        format!("{tagging}/v1/tags"),
        json!({"group_id": theirs["id"], "name": "borrowed tag"}),
    )
    .await;
    assert_eq!(s, 201, "{t}");
    let created_before = fake.calls(endpoints::ADD_CORP_TAG);
    let (s, e) = post_as(
        OTHER,
        format!(
            "{tagging}/v1/tag-groups/{}/wecom/push",
            theirs["id"].as_str().expect("id")
        ),
        json!({}),
    )
    .await;
    assert_eq!(
        (s, e["code"].as_str(), e["details"]["field"].as_str()),
        (400, Some("invalid_field"), Some("corp_id")),
        "{e}"
    );
    assert_eq!(fake.calls(endpoints::ADD_CORP_TAG), created_before);

    // Renamed in WeCom: the callback reaches tagging through the gateway and the bus.
    assert!(fake.rename_corp_tag(&target.id, "重点跟进"));
    let r = fake
        .send_wecom(
            &gw,
            &apps.wecom,
            &wecom.external_tag(&target.id, "tag", "update"),
        )
        .await
        .expect("callback");
    assert_eq!(r.status, 200, "{}", r.body);
    until(
        "the local tag renamed",
        || get(&http, format!("{tagging}/v1/tags/{local}")),
        |(_, t)| t["name"] == json!("重点跟进"),
    )
    .await;

    // The rep tags the customer by hand in WeCom (WeCom sends `edit_external_contact`):
    // identity reads the rep's tags afresh, tagging holds the tag for the rep — and not the one
    // it wrote itself, which WeCom now shows too.
    let by_hand = g0
        .tags
        .iter()
        .find(|t| t.id != target.id && !before.contains(&t.id))
        .expect("another tag the customer lacks")
        .clone();
    fake.rep_tags(&user, &rep, &[&by_hand.id], &[]);
    let r = fake
        .send_wecom(
            &gw,
            &apps.wecom,
            &wecom.edit_external_contact(&rep, &user.external_userid),
        )
        .await
        .expect("callback");
    assert_eq!(r.status, 200, "{}", r.body);
    let tags_url = format!("{tagging}/v1/profiles/{profile_id}/tags");
    let (_, held) = until(
        "the rep's own tag held for them",
        || get(&http, tags_url.clone()),
        |(_, t)| {
            t["items"]
                .as_array()
                .is_some_and(|i| i.iter().any(|m| m["source"] == json!("wecom")))
        },
    )
    .await;
    let reasons = |tag: &str| -> Vec<(String, String)> {
        held["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter(|m| m["tag_id"] == json!(tag))
            .map(|m| {
                (
                    m["source"].as_str().unwrap_or("").to_owned(),
                    m["actor"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect()
    };
    let by_hand_local = linked(&by_hand.id);
    assert_eq!(
        reasons(&by_hand_local),
        vec![("wecom".to_owned(), rep.clone())]
    );
    assert_eq!(
        reasons(&local),
        vec![("trigger".to_owned(), "e2e".to_owned())]
    );
    // Nothing went back to WeCom for the rep's own change.
    assert_eq!(fake.mark_tag_calls().len(), 1);

    // Write-back off for the group.
    let r = http
        .patch(format!("{tagging}/v1/tag-groups/{group_id}/wecom"))
        .header(PRINCIPAL_HEADER, credential(TENANT))
        .json(&json!({"sync_wecom": false}))
        .send()
        .await
        .expect("patch");
    let status = r.status().as_u16();
    assert_eq!(status, 200, "{:?}", r.text().await);
    let g: Value = r.json().await.expect("group");
    assert_eq!(g["sync_wecom"], json!(false));

    running.stop().await.expect("stops");
    fake.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}
