//! A saved segment drives sends, end to end in `scrm up` with the fake WeChat server: customers
//! follow the Official Account and are added by reps (one person both, merged by identity), an
//! operator saves the segment "follows the OA or is a rep's contact" through the admin API and
//! exports its audience — openids per Official Account, external_userids with the reps following
//! them, tags — and the export feeds an OA mass send (openid list per app) and a WeCom
//! group-send task per rep exactly as WeChat's APIs take them: every recipient is reached, none
//! is refused. A customer who unfollowed is in no list; an analyst may not export identifiers;
//! the CSV has a column per registered app. The same exports run as background jobs give the
//! same files.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fake_wechat::{CallbackMode, FakeUser, FakeWechat};
use scrm::roles::Role;
use serde_json::{json, Value};
use wechat::api::{ApiBaseUrls, ApiClient};

use crate::common::admin_call as call;

/// The export's JSON lines.
fn lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// OA openids per app and external_userids per (corp, rep) in the export.
#[derive(Debug, Default, PartialEq)]
struct Lists {
    oa: BTreeMap<String, BTreeSet<String>>,
    wecom: BTreeMap<String, BTreeSet<String>>,
}

fn lists(rows: &[Value]) -> Lists {
    let mut l = Lists::default();
    for r in rows {
        for o in r["oa"].as_array().into_iter().flatten() {
            l.oa.entry(o["app_id"].as_str().unwrap().to_string())
                .or_default()
                .insert(o["openid"].as_str().unwrap().to_string());
        }
        for w in r["wecom"].as_array().into_iter().flatten() {
            for rep in w["reps"].as_array().into_iter().flatten() {
                l.wecom
                    .entry(rep.as_str().unwrap().to_string())
                    .or_default()
                    .insert(w["external_userid"].as_str().unwrap().to_string());
            }
        }
    }
    l
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_saved_segments_export_feeds_an_oa_mass_send_and_a_wecom_group_send() {
    let fake = FakeWechat::start(0, 97).expect("fake starts");
    let (running, dir) = common::start_up(&fake, None).await;
    let dir_s = dir.display().to_string();
    let gw = running.url(Role::Gateway);
    let http = reqwest::Client::new();
    let apps = fake.apps().clone();
    common::scrm_cli(&[
        "tenant",
        "add",
        "--id",
        common::TENANT,
        "--name",
        "E2E",
        "--data-dir",
        &dir_s,
    ]);
    let ops = common::cli_token(&dir_s, common::TENANT, "ops@e2e.test", "operator");
    let analyst = common::cli_token(&dir_s, common::TENANT, "analyst@e2e.test", "analyst");

    // The people: followers of the OA who are bound (a unionid) and, for the WeCom ones, some
    // rep's contacts. `a` follows and is a rep's contact: one profile once identity merges.
    let users = &fake.population().users;
    let follower = |u: &&FakeUser| u.oa.subscribed && u.unionid.is_some();
    let mut pick = users
        .iter()
        .filter(follower)
        .filter(|u| !u.follows.is_empty());
    let (a, d) = (pick.next().unwrap().clone(), pick.next().unwrap().clone());
    let rep = a.follows[0].userid.clone();
    let e = users
        .iter()
        .filter(follower)
        .find(|u| {
            u.index != a.index
                && u.index != d.index
                && !u.follows.is_empty()
                && u.follows.iter().all(|f| f.userid != rep)
        })
        .expect("a contact of another rep")
        .clone();
    let taken = [a.index, d.index, e.index];
    let b = users
        .iter()
        .filter(follower)
        .find(|u| !taken.contains(&u.index))
        .expect("another follower");
    // `c` follows and unfollows (WeChat's user info says so too).
    let c = users
        .iter()
        .find(|u| !u.oa.subscribed && !taken.contains(&u.index))
        .expect("an unfollower");
    let d_rep = d.follows[0].userid.clone();
    let e_rep = e.follows[0].userid.clone();

    let oa = fake.callbacks(&apps.oa);
    for u in [&a, b, c] {
        let r = fake
            .send_oa(
                &gw,
                &apps.oa,
                &oa.subscribe(&u.oa_openid),
                CallbackMode::Safe,
            )
            .await
            .unwrap();
        assert_eq!(r.status, 200);
    }
    // WeChat stamps events to the second: the unfollow comes a second after the follow, so it is
    // the later of the two whatever order they are consumed in.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = fake
        .send_oa(
            &gw,
            &apps.oa,
            &oa.unsubscribe(&c.oa_openid),
            CallbackMode::Safe,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let wecom = fake.callbacks(&apps.wecom);
    for (u, r) in [(&a, &rep), (&d, &d_rep), (&e, &e_rep)] {
        let sent = fake
            .send_wecom(
                &gw,
                &apps.wecom,
                &wecom.add_external_contact(r, &u.external_userid, None),
            )
            .await
            .unwrap();
        assert_eq!(sent.status, 200, "{}", sent.body);
    }

    // The operator saves the segment.
    let cond = json!({"version": 1, "root": {"type": "or", "children": [
        {"type": "wechat", "state": "oa_subscribed"},
        {"type": "wechat", "state": "wecom_followed"}]}});
    let (s, seg) = call(
        &http,
        reqwest::Method::POST,
        format!("{gw}/admin/v1/saved-segments"),
        &ops,
        Some(json!({"name": "reachable", "condition": cond, "refresh_mode": "manual"})),
    )
    .await;
    assert_eq!(s, 201, "{seg}");
    let seg: Value = serde_json::from_str(&seg).unwrap();
    let audience = format!(
        "{gw}/admin/v1/saved-segments/{}/audience",
        seg["id"].as_str().unwrap()
    );

    // The export, once every callback is resolved and `a`'s two identities are one profile.
    let want = Lists {
        oa: BTreeMap::from([(
            apps.oa.appid.clone(),
            BTreeSet::from([a.oa_openid.clone(), b.oa_openid.clone()]),
        )]),
        wecom: {
            let mut m: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
            for (u, r) in [(&a, &rep), (&d, &d_rep), (&e, &e_rep)] {
                m.entry(r.clone())
                    .or_default()
                    .insert(u.external_userid.clone());
            }
            m
        },
    };
    let deadline = Instant::now() + Duration::from_secs(40);
    let (rows, jsonl) = loop {
        let (s, text) = call(
            &http,
            reqwest::Method::POST,
            audience.clone(),
            &ops,
            Some(json!({"fields": ["contact.name"], "channels": ["oa", "wecom", "phone"]})),
        )
        .await;
        assert_eq!(s, 200, "{text}");
        let rows = lines(&text);
        if rows.len() == 4 && lists(&rows) == want {
            break (rows, text);
        }
        assert!(
            Instant::now() < deadline,
            "the export never showed every reachable customer: {rows:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let merged = rows
        .iter()
        .find(|r| {
            r["oa"].as_array().unwrap().len() == 1 && !r["wecom"].as_array().unwrap().is_empty()
        })
        .expect("the follower who is also a rep's contact, as one profile");
    assert_eq!(merged["wecom"][0]["corp_id"], json!(apps.wecom.appid));
    assert!(rows
        .iter()
        .all(|r| r.get("mp").is_none() && r["tags"].is_array()));

    // The OA mass send, per app, exactly as the export lists the openids.
    let cache = Arc::new(platform::cache::MemoryCache::new("audience:", 100));
    let client = ApiClient::new(
        cache,
        ApiBaseUrls::single(fake.base_url()),
        reqwest::Client::new(),
    );
    let l = lists(&rows);
    for (app, openids) in &l.oa {
        assert_eq!(app, &apps.oa.appid);
        let ids: Vec<&str> = openids.iter().map(String::as_str).collect();
        let sent = client
            .oa_mass_send_text(
                &apps.oa.credentials(),
                &ids,
                "双十二专享",
                Some("seg-reachable-1"),
            )
            .await
            .expect("the mass send is accepted");
        assert!(sent.msg_id > 0);
    }
    // The WeCom group send: one task per rep, with the customers that rep follows.
    for (sender, customers) in &l.wecom {
        let ids: Vec<&str> = customers.iter().map(String::as_str).collect();
        let added = client
            .wecom_add_msg_template_text(&apps.wecom.credentials(), sender, &ids, "双十二专享")
            .await
            .expect("the task is accepted");
        assert_eq!(added.fail_list, Vec::<String>::new(), "{sender}");
    }
    let sends = fake.mass_sends();
    assert_eq!(sends.len(), 1 + l.wecom.len());
    for s in &sends {
        assert_eq!(s.errcode, 0);
        assert_eq!(
            s.delivered_to, s.recipients,
            "every recipient is reached: {s:?}"
        );
    }
    let reached_oa: BTreeSet<String> = sends[0].delivered_to.iter().cloned().collect();
    assert_eq!(reached_oa, want.oa[&apps.oa.appid]);
    assert!(
        !reached_oa.contains(&c.oa_openid),
        "an unfollower is not sent to"
    );

    // The CSV: a column per registered app; only operators may take identifiers out.
    let (s, csv) = call(
        &http,
        reqwest::Method::POST,
        audience.clone(),
        &ops,
        Some(json!({"format": "csv", "channels": ["oa", "wecom"], "tags": false})),
    )
    .await;
    assert_eq!(s, 200, "{csv}");
    let header = csv.lines().next().unwrap();
    assert_eq!(
        header,
        format!(
            "profile_id,oa_openid:{},wecom_external_userid:{},wecom_reps:{}",
            apps.oa.appid, apps.wecom.appid, apps.wecom.appid
        )
    );
    assert_eq!(csv.lines().count(), 5);
    assert!(csv.contains(&a.oa_openid) && csv.contains(&e.external_userid));
    // The same exports as background jobs: progress while they run, then a file equal to the
    // streamed export.
    let jobs = format!("{audience}-jobs");
    let mut job_ids = Vec::new();
    for (body, streamed) in [
        (
            json!({"fields": ["contact.name"], "channels": ["oa", "wecom", "phone"]}),
            &jsonl,
        ),
        (
            json!({"format": "csv", "channels": ["oa", "wecom"], "tags": false}),
            &csv,
        ),
    ] {
        let (s, job) = call(&http, reqwest::Method::POST, jobs.clone(), &ops, Some(body)).await;
        assert_eq!(s, 202, "{job}");
        let job: Value = serde_json::from_str(&job).unwrap();
        let job_id = job["id"].as_str().unwrap().to_string();
        assert_eq!(job["segment_id"], seg["id"]);
        let deadline = Instant::now() + Duration::from_secs(30);
        let done = loop {
            let (s, j) = call(
                &http,
                reqwest::Method::GET,
                format!("{gw}/admin/v1/export-jobs/{job_id}"),
                &ops,
                None,
            )
            .await;
            assert_eq!(s, 200, "{j}");
            let j: Value = serde_json::from_str(&j).unwrap();
            if j["status"] == "done" {
                break j;
            }
            assert_ne!(j["status"], "failed", "{j}");
            assert!(Instant::now() < deadline, "the job never finished: {j}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(
            (
                done["members"].as_i64(),
                done["rows"].as_i64(),
                done["progress"].as_f64()
            ),
            (Some(4), Some(4), Some(1.0)),
            "{done}"
        );
        let (s, file) = call(
            &http,
            reqwest::Method::GET,
            format!("{gw}/admin/v1/export-jobs/{job_id}/file"),
            &ops,
            None,
        )
        .await;
        assert_eq!(s, 200);
        assert_eq!(&file, streamed, "the job's file is the streamed export");
        job_ids.push(job_id);
    }
    let (s, list) = call(
        &http,
        reqwest::Method::GET,
        format!("{gw}/admin/v1/export-jobs"),
        &ops,
        None,
    )
    .await;
    assert_eq!(s, 200, "{list}");
    let list: Value = serde_json::from_str(&list).unwrap();
    let listed: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap())
        .collect();
    job_ids.reverse();
    assert_eq!(listed, job_ids, "newest first");
    let (s, body) = call(
        &http,
        reqwest::Method::GET,
        format!("{gw}/admin/v1/export-jobs/01900000-0000-7000-8000-000000000000/file"),
        &ops,
        None,
    )
    .await;
    assert_eq!(s, 404, "{body}");
    for (method, url) in [
        (reqwest::Method::POST, jobs.clone()),
        (
            reqwest::Method::GET,
            format!("{gw}/admin/v1/export-jobs/{}/file", job_ids[0]),
        ),
    ] {
        let (s, body) = call(&http, method, url, &analyst, Some(json!({}))).await;
        assert_eq!(s, 403, "an analyst takes no identifiers out: {body}");
    }

    let (s, body) = call(
        &http,
        reqwest::Method::POST,
        audience.clone(),
        &analyst,
        Some(json!({})),
    )
    .await;
    assert_eq!(s, 403, "{body}");
    let (s, body) = call(
        &http,
        reqwest::Method::POST,
        format!("{gw}/admin/v1/saved-segments/01900000-0000-7000-8000-000000000000/audience"),
        &ops,
        Some(json!({})),
    )
    .await;
    assert_eq!(s, 404, "{body}");
    let (s, body) = call(
        &http,
        reqwest::Method::POST,
        audience,
        &ops,
        Some(json!({"channels": ["fax"]})),
    )
    .await;
    assert_eq!(s, 400, "{body}");

    running.stop().await.unwrap();
    fake.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}
