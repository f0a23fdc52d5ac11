//! The operators' front door in `scrm up`: the permission matrix over every `/admin/v1` route
//! (generated from the route table: a route added without a declared permission fails here),
//! tenant isolation through the admin API, sign-in with limited failures, API tokens, the
//! audit log, and the bootstrap token the README's examples use; the tenant's people and
//! settings as owners manage them, cursor pages of the gateway's lists, the check of a
//! trigger's tags, and the OpenAPI description with its viewer.

use crate::common;

use std::time::Duration;

use fake_wechat::{CallbackMode, FakeWechat};
use gateway::api::admin::routes::{Target, ROUTES};
use proto::auth::Role;
use scrm::roles::Role as ProcessRole;
use serde_json::{json, Value};

/// Runs the `scrm` binary; its stdout.
fn scrm(args: &[&str], env: &[(&str, &str)]) -> String {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_scrm"));
    cmd.args(args)
        .env_remove("SCRM_CONFIG")
        .env_remove("SCRM_DATA_DIR");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "scrm {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut r = self.http.request(m, format!("{}{path}", self.base));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        if let Some(b) = body {
            r = r.json(&b);
        }
        let res = r.send().await.unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
}

/// A concrete path of a route pattern: every parameter an id nobody has.
fn concrete(pattern: &str) -> String {
    pattern
        .split('/')
        .map(|s| {
            if s.starts_with('{') {
                "01900000-0000-7000-8000-000000000000"
            } else {
                s
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn permission_matrix_isolation_sign_in_tokens_and_audit() {
    let fake = FakeWechat::start(0, 41).unwrap();
    let (running, dir) = common::start_up(
        &fake,
        Some(json!({"identity": {"wechat": {"enabled": false}}})),
    )
    .await;
    let c = Client {
        http: reqwest::Client::new(),
        base: running.url(ProcessRole::Gateway),
    };
    let dir_s = dir.display().to_string();
    // The bootstrap owner of `demo` (what the README uses).
    let owner = std::fs::read_to_string(dir.join("admin.token")).unwrap();
    let owner = owner.trim();
    let (s, me) = c.send("GET", "/admin/v1/me", Some(owner), None).await;
    assert_eq!(
        (s, me["role"].as_str(), me["tenant"]["id"].as_str()),
        (200, Some("owner"), Some("demo")),
        "{me}"
    );

    // One person per role, each signed in with a password.
    let mut tokens: Vec<(Role, String)> = vec![(Role::Owner, owner.to_string())];
    for role in [Role::Admin, Role::Operator, Role::Analyst, Role::Rep] {
        let email = format!("{role}@demo.test");
        let (s, b) = c
            .send(
                "POST",
                "/admin/v1/users",
                Some(owner),
                Some(json!({
                "email": email, "password": "a long enough password", "role": role})),
            )
            .await;
        assert_eq!(s, 201, "{b}");
        let (s, b) = c
            .send(
                "POST",
                "/admin/v1/login",
                None,
                Some(json!({
                "email": email, "password": "a long enough password"})),
            )
            .await;
        assert_eq!(s, 200, "{b}");
        tokens.push((role, b["token"].as_str().unwrap().to_string()));
    }
    // The owner of another tenant (the command line's way in).
    scrm(
        &[
            "tenant",
            "add",
            "--id",
            "other",
            "--name",
            "Other",
            "--data-dir",
            &dir_s,
        ],
        &[],
    );
    let other = common::cli_token(&dir_s, "other", "owner@other.test", "owner");

    // The matrix: every declared route × no token, a bad token, another tenant's owner, each role.
    let mut checked = 0;
    for r in ROUTES {
        let path = concrete(r.path);
        let body = (r.method != "GET").then(|| json!({}));
        let Some(needed) = r.role else {
            continue;
        };
        if r.path == "/admin/v1/logout" {
            // Would end the very sessions the matrix uses: checked on its own below.
            continue;
        }
        for token in [None, Some("scrm_api_not-a-token")] {
            let (s, b) = c.send(r.method, &path, token, body.clone()).await;
            assert_eq!(s, 401, "{} {} with {token:?}: {b}", r.method, r.path);
        }
        for (role, token) in tokens
            .iter()
            .map(|(r, t)| (*r, t.as_str()))
            .chain([(Role::Owner, other.as_str())])
        {
            let (s, b) = c.send(r.method, &path, Some(token), body.clone()).await;
            if role.covers(needed) {
                assert!(
                    s != 401 && s != 403,
                    "{} {} as {role} (needs {needed}): {s} {b}",
                    r.method,
                    r.path
                );
                assert!(
                    s < 500 || s == 503,
                    "{} {} as {role}: {s} {b}",
                    r.method,
                    r.path
                );
            } else {
                assert_eq!(
                    s, 403,
                    "{} {} as {role} (needs {needed}): {b}",
                    r.method, r.path
                );
                assert_eq!(b["code"], "forbidden", "{b}");
            }
            checked += 1;
        }
        if let Target::Proxy(..) = r.target {
            assert!(r.path.starts_with("/admin/v1/"));
        }
    }
    assert!(checked > 300, "{checked} checks");

    // Tenant isolation: a follower of the test tenant's Official Account is its customer; for
    // `demo`'s owner it does not exist.
    scrm(
        &[
            "tenant",
            "add",
            "--id",
            common::TENANT,
            "--name",
            "E2E",
            "--data-dir",
            &dir_s,
        ],
        &[],
    );
    let mine = common::cli_token(&dir_s, common::TENANT, "owner@e2e.test", "owner");
    let apps = fake.apps();
    let xml = fake.callbacks(&apps.oa).subscribe("oADMIN1");
    let r = fake
        .send_oa(&c.base, &apps.oa, &xml, CallbackMode::Safe)
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let lookup = format!(
        "/admin/v1/customers/by-identifier?kind=oa_openid&namespace={}&value=oADMIN1",
        apps.oa.appid
    );
    let mut found = Value::Null;
    for _ in 0..100 {
        let (s, b) = c.send("GET", &lookup, Some(&mine), None).await;
        if s == 200 {
            found = b;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let id = found["id"]
        .as_str()
        .expect("the follower became a customer")
        .to_string();
    let (s, b) = c.send("GET", &lookup, Some(owner), None).await;
    assert_eq!(s, 404, "another tenant does not see it: {b}");
    let (s, b) = c
        .send(
            "GET",
            &format!("/admin/v1/customers/{id}"),
            Some(&mine),
            None,
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["profile"]["id"], json!(id), "{b}");
    let (s, b) = c
        .send(
            "GET",
            &format!("/admin/v1/customers/{id}"),
            Some(owner),
            None,
        )
        .await;
    assert_eq!(s, 404, "{b}");
    let (s, _) = c
        .send(
            "PATCH",
            &format!("/admin/v1/customers/{id}/fields"),
            Some(owner),
            Some(json!({"fields": {"contact.name": "Mallory"}})),
        )
        .await;
    assert_eq!(s, 404, "another tenant cannot change it");
    // The customer list: the tenant's own customers, never another tenant's; a query by POST
    // reads (it is not a write for the audit log).
    let mut listed = Value::Null;
    for _ in 0..100 {
        let (s, b) = c
            .send("GET", "/admin/v1/customers?limit=10", Some(&mine), None)
            .await;
        assert_eq!(s, 200, "{b}");
        if b["items"].as_array().is_some_and(|i| !i.is_empty()) {
            listed = b;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(listed["items"][0]["profile_id"], json!(id), "{listed}");
    let (s, b) = c
        .send(
            "POST",
            "/admin/v1/customers/query",
            Some(&mine),
            Some(json!({"sort": "created", "stage": listed["items"][0]["stage"]})),
        )
        .await;
    assert_eq!(
        (s, b["items"][0]["profile_id"].clone()),
        (200, json!(id)),
        "{b}"
    );
    let (s, b) = c
        .send("GET", "/admin/v1/customers", Some(owner), None)
        .await;
    assert!(
        s == 200
            && !b["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|i| i["profile_id"] == json!(id)),
        "another tenant's list: {b}"
    );

    // A write is audited with the user who made it; analysts cannot read the log.
    let operator = &tokens[2].1;
    let (s, b) = c
        .send("POST", "/admin/v1/tag-groups", Some(operator),
              Some(json!({"name": "Interest", "selection": "multi", "tenant_id": "other", "created_by": "forged"})))
        .await;
    assert_eq!(s, 201, "{b}");
    let (s, log) = c
        .send("GET", "/admin/v1/audit", Some(&tokens[1].1), None)
        .await;
    assert_eq!(s, 200, "{log}");
    let entry = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "POST /admin/v1/tag-groups")
        .unwrap_or_else(|| panic!("{log}"))
        .clone();
    for read in [
        "POST /admin/v1/customers/query",
        "POST /admin/v1/segments/preview",
    ] {
        assert!(
            !log["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["action"] == read),
            "{read} only reads (the matrix called it): not audited"
        );
    }
    let (_, op_me) = c.send("GET", "/admin/v1/me", Some(operator), None).await;
    assert_eq!(
        entry["actor"],
        json!(format!("user:{}", op_me["user_id"].as_str().unwrap()))
    );
    assert!(
        entry["summary"]["request"].get("tenant_id").is_none(),
        "{entry}"
    );
    let (s, _) = c
        .send("GET", "/admin/v1/audit", Some(&tokens[3].1), None)
        .await;
    assert_eq!(s, 403);

    // API tokens: shown once, at most the caller's role, revocable.
    let (s, t) = c
        .send(
            "POST",
            "/admin/v1/tokens",
            Some(operator),
            Some(json!({"name": "script", "role": "analyst"})),
        )
        .await;
    assert_eq!(s, 201, "{t}");
    let script = t["token"].as_str().unwrap().to_string();
    let (s, me) = c.send("GET", "/admin/v1/me", Some(&script), None).await;
    assert_eq!((s, me["role"].as_str()), (200, Some("analyst")));
    let (s, _) = c
        .send(
            "POST",
            "/admin/v1/tokens",
            Some(operator),
            Some(json!({"name": "x", "role": "owner"})),
        )
        .await;
    assert_eq!(s, 403, "no token above the caller's role");
    let (s, _) = c
        .send(
            "DELETE",
            &format!("/admin/v1/tokens/{}", t["id"].as_str().unwrap()),
            Some(operator),
            None,
        )
        .await;
    assert_eq!(s, 204);
    let (s, _) = c.send("GET", "/admin/v1/me", Some(&script), None).await;
    assert_eq!(s, 401, "a revoked token signs nothing in");

    // Failed sign-ins are limited per account.
    for _ in 0..5 {
        let (s, _) = c
            .send(
                "POST",
                "/admin/v1/login",
                None,
                Some(json!({"email": "admin@demo.test", "password": "wrong password!"})),
            )
            .await;
        assert_eq!(s, 401);
    }
    let r = c
        .http
        .post(format!("{}/admin/v1/login", c.base))
        .json(&json!({"email": "admin@demo.test", "password": "a long enough password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().get("retry-after").is_some());

    // The app registry at run time: the tenant sees its apps (never a secret), tests one
    // through the keeper, cannot take another tenant's appid, and a new app takes callbacks at
    // once; removed, it takes none.
    let (s, list) = c.send("GET", "/admin/v1/apps", Some(&mine), None).await;
    assert_eq!(s, 200, "{list}");
    let oa_entry = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["app_id"] == json!(apps.oa.appid))
        .unwrap_or_else(|| panic!("{list}"))
        .clone();
    assert_eq!(oa_entry["secret_set"], true);
    assert!(oa_entry["callback_url"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/wechat/oa/{}", apps.oa.appid)));
    assert!(
        !list.to_string().contains(&apps.oa.secret),
        "no secret in the answer"
    );
    let test_path = format!("/admin/v1/apps/oa/{}/test", apps.oa.appid);
    let (s, b) = c.send("POST", &test_path, Some(&mine), None).await;
    assert_eq!((s, b["ok"].as_bool()), (200, Some(true)), "{b}");
    let (s, _) = c.send("POST", &test_path, Some(owner), None).await;
    assert_eq!(s, 404, "another tenant's app does not exist for demo");
    let (s, b) = c
        .send(
            "POST",
            "/admin/v1/apps",
            Some(owner),
            Some(json!({
            "kind": "oa", "app_id": apps.oa.appid, "token": "tok123"})),
        )
        .await;
    assert_eq!(
        (s, b["code"].as_str()),
        (409, Some("app_registered")),
        "{b}"
    );
    let (s, b) = c
        .send(
            "POST",
            "/admin/v1/apps",
            Some(owner),
            Some(json!({
            "kind": "oa", "app_id": "wxNEWAPP00000001", "token": "bad token!"})),
        )
        .await;
    assert_eq!(
        (s, b["details"]["field"].as_str()),
        (400, Some("token")),
        "{b}"
    );
    let (s, b) = c
        .send(
            "POST",
            "/admin/v1/apps",
            Some(owner),
            Some(json!({
            "kind": "oa", "app_id": "wxNEWAPP00000001", "name": "Spring", "token": "newtoken1",
            "secret": "s3cret-value"})),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    assert!(!b.to_string().contains("s3cret-value"));
    let new_callback = |ts: i64| {
        let (ts, nonce) = (ts.to_string(), "7");
        let sig = wechat::signature::signature("newtoken1", &ts, nonce);
        (
            format!("{}/wechat/oa/wxNEWAPP00000001?signature={sig}&timestamp={ts}&nonce={nonce}", c.base),
            format!("<xml><ToUserName><![CDATA[gh_new]]></ToUserName><FromUserName><![CDATA[oNEW{ts}]]></FromUserName><CreateTime>{ts}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[subscribe]]></Event></xml>"),
        )
    };
    let (url, xml) = new_callback(chrono::Utc::now().timestamp());
    let r = c.http.post(url).body(xml).send().await.unwrap();
    assert_eq!(
        r.status(),
        200,
        "a new app takes callbacks without a restart"
    );
    let (s, _) = c
        .send(
            "DELETE",
            "/admin/v1/apps/oa/wxNEWAPP00000001",
            Some(owner),
            None,
        )
        .await;
    assert_eq!(s, 204);
    let (url, xml) = new_callback(chrono::Utc::now().timestamp() + 1);
    let r = c.http.post(url).body(xml).send().await.unwrap();
    assert_eq!(r.status(), 404, "a removed app takes none");

    // The corp's agent app (the self-built app that messages reps): keyed by the corpid with
    // its AgentID beside it, its own secret sealed, no callbacks; the keeper fetches its token.
    let agent = &apps.wecom_agent;
    let agent_id = agent.agent_id.unwrap();
    let (s, b) = c
        .send(
            "POST",
            "/admin/v1/apps",
            Some(&mine),
            Some(json!({"kind": "wecom_agent", "app_id": agent.appid, "secret": agent.secret})),
        )
        .await;
    assert_eq!(
        (s, b["details"]["field"].as_str()),
        (400, Some("agent_id")),
        "{b}"
    );
    let (s, b) = c
        .send(
            "POST",
            "/admin/v1/apps",
            Some(&mine),
            Some(
                json!({"kind": "wecom_agent", "app_id": agent.appid, "agent_id": agent_id,
                        "secret": agent.secret, "token": "tok123"}),
            ),
        )
        .await;
    assert_eq!(
        (s, b["details"]["field"].as_str()),
        (400, Some("token")),
        "{b}"
    );
    let (s, b) = c
        .send(
            "POST",
            "/admin/v1/apps",
            Some(&mine),
            Some(
                json!({"kind": "wecom_agent", "app_id": agent.appid, "agent_id": agent_id,
                        "secret": agent.secret, "name": "Sales assistant"}),
            ),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(
        (
            b["kind"].as_str(),
            b["agent_id"].as_i64(),
            b["secret_set"].as_bool(),
            b["token_set"].as_bool()
        ),
        (Some("wecom_agent"), Some(agent_id), Some(true), Some(false)),
        "{b}"
    );
    assert_eq!(b["callback_url"], Value::Null, "{b}");
    assert!(!b.to_string().contains(&agent.secret));
    let agent_path = format!("/admin/v1/apps/wecom_agent/{}", agent.appid);
    let (s, b) = c.send("GET", &agent_path, Some(&mine), None).await;
    assert_eq!((s, b["agent_id"].as_i64()), (200, Some(agent_id)), "{b}");
    let (s, b) = c
        .send("POST", &format!("{agent_path}/test"), Some(&mine), None)
        .await;
    assert_eq!((s, b["ok"].as_bool()), (200, Some(true)), "{b}");
    assert_eq!(fake.token_fetches(agent), 1, "the agent's own secret");
    // The corp's customer-contact app is another entry of the same corpid.
    let (s, b) = c
        .send(
            "GET",
            &format!("/admin/v1/apps/wecom/{}", agent.appid),
            Some(&mine),
            None,
        )
        .await;
    assert_eq!((s, b["agent_id"].clone()), (200, Value::Null), "{b}");

    // Write keys: made at run time (shown once), used by /track, removed.
    let (s, k) = c
        .send(
            "POST",
            "/admin/v1/write-keys",
            Some(&mine),
            Some(json!({"name": "site"})),
        )
        .await;
    assert_eq!(s, 201, "{k}");
    let key = k["key"].as_str().unwrap().to_string();
    let track = json!({"events": [{"type": "page_view", "page": "/", "anonymous_id": "v-1"}]});
    let r = c
        .http
        .post(format!("{}/track", c.base))
        .header("X-Write-Key", &key)
        .json(&track)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (s, _) = c
        .send(
            "DELETE",
            &format!("/admin/v1/write-keys/{}", k["id"].as_str().unwrap()),
            Some(&mine),
            None,
        )
        .await;
    assert_eq!(s, 204);
    let r = c
        .http
        .post(format!("{}/track", c.base))
        .header("X-Write-Key", &key)
        .json(&track)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "a removed key is refused");

    // Signing out ends the session.
    let analyst = &tokens[3].1;
    let (s, _) = c
        .send("POST", "/admin/v1/logout", Some(analyst), None)
        .await;
    assert_eq!(s, 204);
    let (s, _) = c.send("GET", "/admin/v1/me", Some(analyst), None).await;
    assert_eq!(s, 401);

    running.stop().await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

/// The next page of `path` (a list answering `{items, next_cursor}`) walked to its end with
/// `limit`: every item once, in order.
async fn walk(c: &Client, path: &str, token: &str, limit: u32) -> Vec<Value> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let sep = if path.contains('?') { '&' } else { '?' };
        let url = match &cursor {
            Some(k) => format!("{path}{sep}limit={limit}&cursor={k}"),
            None => format!("{path}{sep}limit={limit}"),
        };
        let (s, b) = c.send("GET", &url, Some(token), None).await;
        assert_eq!(s, 200, "{url}: {b}");
        let items = b["items"].as_array().unwrap();
        assert!(items.len() <= limit as usize, "{b}");
        all.extend(items.iter().cloned());
        match b["next_cursor"].as_str() {
            Some(k) => cursor = Some(k.to_string()),
            None => return all,
        }
    }
    panic!("{path} never ended");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn people_tenant_trigger_tags_pages_and_the_description() {
    let fake = FakeWechat::start(0, 43).unwrap();
    let (running, dir) = common::start_up(
        &fake,
        Some(json!({"identity": {"wechat": {"enabled": false}}})),
    )
    .await;
    let c = Client {
        http: reqwest::Client::new(),
        base: running.url(ProcessRole::Gateway),
    };
    let owner = std::fs::read_to_string(dir.join("admin.token")).unwrap();
    let owner = owner.trim();

    // The description and its viewer are public; every declared route is in it.
    let (s, spec) = c.send("GET", "/admin/v1/openapi.json", None, None).await;
    assert_eq!(s, 200);
    for r in ROUTES {
        let op = &spec["paths"][r.path][r.method.to_lowercase()];
        assert!(op.is_object(), "{} {} is not described", r.method, r.path);
        if let Some(role) = r.role {
            assert_eq!(op["x-least-role"], role.as_str(), "{} {}", r.method, r.path);
        }
    }
    let docs = c
        .http
        .get(format!("{}/admin/v1/docs", c.base))
        .send()
        .await
        .unwrap();
    assert_eq!(
        docs.status(),
        200,
        "the viewer is served after the redirect"
    );
    let html = docs.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    let init = c
        .http
        .get(format!("{}/admin/v1/docs/swagger-initializer.js", c.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(init.contains("/admin/v1/openapi.json"), "{init}");

    // People: an admin and an operator, each signed in.
    let mut ids = Vec::new();
    let mut sessions = Vec::new();
    for (email, role) in [("ada@demo.test", "admin"), ("otto@demo.test", "operator")] {
        let (s, b) = c
            .send(
                "POST",
                "/admin/v1/users",
                Some(owner),
                Some(json!({"email": email, "password": "a long enough password", "role": role})),
            )
            .await;
        assert_eq!((s, b["status"].as_str()), (201, Some("active")), "{b}");
        ids.push(b["id"].as_str().unwrap().to_string());
        let (s, b) = c
            .send(
                "POST",
                "/admin/v1/login",
                None,
                Some(json!({"email": email, "password": "a long enough password"})),
            )
            .await;
        assert_eq!(s, 200, "{b}");
        sessions.push(b["token"].as_str().unwrap().to_string());
    }
    let (admin_id, operator_id) = (&ids[0], &ids[1]);
    let (admin, operator) = (&sessions[0], &sessions[1]);
    // Adding a member again neither changes them nor their password.
    let (s, b) = c
        .send(
            "POST",
            "/admin/v1/users",
            Some(owner),
            Some(json!({"email": "otto@demo.test", "password": "another long password", "role": "rep"})),
        )
        .await;
    assert_eq!((s, b["code"].as_str()), (409, Some("member_exists")), "{b}");
    let (s, me) = c.send("GET", "/admin/v1/me", Some(operator), None).await;
    assert_eq!((s, me["role"].as_str()), (200, Some("operator")), "{me}");

    // Users page by cursor; a cursor this API did not give is refused naming the field.
    let users = walk(&c, "/admin/v1/users", owner, 1).await;
    assert_eq!(users.len(), 3, "{users:?}");
    let mut seen: Vec<&str> = users.iter().map(|u| u["id"].as_str().unwrap()).collect();
    seen.dedup();
    assert_eq!(seen.len(), 3);
    for path in [
        "/admin/v1/users?cursor=bm90LWEtY3Vyc29y",
        "/admin/v1/tokens?cursor=%21",
        "/admin/v1/audit?cursor=42",
        "/admin/v1/apps?cursor=x",
        "/admin/v1/write-keys?cursor=x",
    ] {
        let (s, b) = c.send("GET", path, Some(owner), None).await;
        assert_eq!(
            (s, b["code"].as_str(), b["details"]["field"].as_str()),
            (400, Some("invalid_cursor"), Some("cursor")),
            "{path}: {b}"
        );
    }
    for i in 0..3 {
        let (s, b) = c
            .send(
                "POST",
                "/admin/v1/tokens",
                Some(operator),
                Some(json!({"name": format!("script {i}")})),
            )
            .await;
        assert_eq!(s, 201, "{b}");
    }
    let tokens = walk(&c, "/admin/v1/tokens", operator, 2).await;
    assert_eq!(tokens.len(), 3, "{tokens:?}");
    assert_eq!(tokens[0]["name"], "script 2", "newest first");
    let (s, b) = c
        .send(
            "POST",
            "/admin/v1/write-keys",
            Some(owner),
            Some(json!({"name": "site"})),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(walk(&c, "/admin/v1/write-keys", owner, 1).await.len(), 1);
    for n in 1..=3 {
        let (s, b) = c
            .send(
                "POST",
                "/admin/v1/apps",
                Some(owner),
                Some(
                    json!({"kind": "oa", "app_id": format!("wxPAGE000{n}"), "token": "pagetoken1"}),
                ),
            )
            .await;
        assert_eq!(s, 201, "{b}");
    }
    let apps = walk(&c, "/admin/v1/apps", owner, 2).await;
    let app_ids: Vec<&str> = apps.iter().map(|a| a["app_id"].as_str().unwrap()).collect();
    assert_eq!(app_ids, ["wxPAGE0001", "wxPAGE0002", "wxPAGE0003"]);

    // Roles and status: only owners change people; the last owner stays.
    let patch_user = |id: &str| format!("/admin/v1/users/{id}");
    let (s, _) = c
        .send(
            "PATCH",
            &patch_user(operator_id),
            Some(admin),
            Some(json!({"role": "analyst"})),
        )
        .await;
    assert_eq!(s, 403);
    let (_, owner_me) = c.send("GET", "/admin/v1/me", Some(owner), None).await;
    let owner_id = owner_me["user_id"].as_str().unwrap().to_string();
    for body in [json!({"role": "admin"}), json!({"status": "disabled"})] {
        let (s, b) = c
            .send("PATCH", &patch_user(&owner_id), Some(owner), Some(body))
            .await;
        assert_eq!((s, b["code"].as_str()), (409, Some("last_owner")), "{b}");
    }
    let (s, b) = c
        .send("DELETE", &patch_user(&owner_id), Some(owner), None)
        .await;
    assert_eq!((s, b["code"].as_str()), (409, Some("last_owner")), "{b}");
    let (s, b) = c
        .send(
            "PATCH",
            &patch_user(operator_id),
            Some(owner),
            Some(json!({"status": "asleep"})),
        )
        .await;
    assert_eq!(s, 400, "{b}");
    let (s, b) = c
        .send(
            "PATCH",
            &patch_user(operator_id),
            Some(owner),
            Some(json!({"role": "analyst"})),
        )
        .await;
    assert_eq!((s, b["role"].as_str()), (200, Some("analyst")), "{b}");
    let (s, me) = c.send("GET", "/admin/v1/me", Some(operator), None).await;
    assert_eq!(
        (s, me["role"].as_str()),
        (200, Some("analyst")),
        "a demotion acts at once"
    );
    let (s, _) = c
        .send(
            "POST",
            "/admin/v1/tag-groups",
            Some(operator),
            Some(json!({"name": "x"})),
        )
        .await;
    assert_eq!(s, 403);
    // Disabled: every session and token of the user ends at once, and sign-in is refused.
    let (s, b) = c
        .send(
            "PATCH",
            &patch_user(operator_id),
            Some(owner),
            Some(json!({"status": "disabled"})),
        )
        .await;
    assert_eq!((s, b["status"].as_str()), (200, Some("disabled")), "{b}");
    let (s, _) = c.send("GET", "/admin/v1/me", Some(operator), None).await;
    assert_eq!(s, 401, "the disabled member's session is dead");
    let (s, _) = c
        .send(
            "POST",
            "/admin/v1/login",
            None,
            Some(json!({"email": "otto@demo.test", "password": "a long enough password"})),
        )
        .await;
    assert_eq!(s, 401, "a disabled member cannot sign in");
    // Removed: the membership and the admin's credentials for the tenant are gone.
    let (s, _) = c
        .send("DELETE", &patch_user(admin_id), Some(owner), None)
        .await;
    assert_eq!(s, 204);
    let (s, _) = c.send("GET", "/admin/v1/me", Some(admin), None).await;
    assert_eq!(s, 401);
    let (s, _) = c
        .send("DELETE", &patch_user(admin_id), Some(owner), None)
        .await;
    assert_eq!(s, 404);
    let users = walk(&c, "/admin/v1/users", owner, 50).await;
    assert_eq!(users.len(), 2, "{users:?}");

    // The tenant: admins read it, owners change it; the time zone is an IANA one.
    let (s, t) = c.send("GET", "/admin/v1/tenant", Some(owner), None).await;
    assert_eq!((s, t["id"].as_str()), (200, Some("demo")), "{t}");
    for (body, field) in [
        (json!({"time_zone": "Mars/Olympus_Mons"}), "time_zone"),
        (json!({"name": " "}), "name"),
    ] {
        let (s, b) = c
            .send("PATCH", "/admin/v1/tenant", Some(owner), Some(body))
            .await;
        assert_eq!(
            (s, b["details"]["field"].as_str()),
            (400, Some(field)),
            "{b}"
        );
    }
    let (s, t) = c
        .send(
            "PATCH",
            "/admin/v1/tenant",
            Some(owner),
            Some(json!({"name": "Demo Ltd", "time_zone": "Europe/Berlin"})),
        )
        .await;
    assert_eq!(
        (s, t["name"].as_str(), t["time_zone"].as_str()),
        (200, Some("Demo Ltd"), Some("Europe/Berlin")),
        "{t}"
    );
    let (_, me) = c.send("GET", "/admin/v1/me", Some(owner), None).await;
    assert_eq!(me["tenant"]["time_zone"], "Europe/Berlin");

    // Every one of those writes is audited, with before and after.
    let log = walk(&c, "/admin/v1/audit", owner, 5).await;
    for action in [
        "PATCH /admin/v1/users/{id}",
        "DELETE /admin/v1/users/{id}",
        "PATCH /admin/v1/tenant",
    ] {
        let e = log
            .iter()
            .find(|e| e["action"] == action && e["status"].as_u64().unwrap() < 300)
            .unwrap_or_else(|| panic!("{action} not audited: {log:?}"));
        assert!(e["summary"]["before"].is_object(), "{e}");
    }
    let patched = log
        .iter()
        .find(|e| e["action"] == "PATCH /admin/v1/tenant")
        .unwrap();
    assert_eq!(patched["summary"]["before"]["time_zone"], "Asia/Shanghai");
    assert_eq!(patched["summary"]["after"]["time_zone"], "Europe/Berlin");

    // A trigger's tag actions must name the tenant's tags.
    let (s, g) = c
        .send(
            "POST",
            "/admin/v1/tag-groups",
            Some(owner),
            Some(json!({"name": "Lifecycle", "selection": "multi"})),
        )
        .await;
    assert_eq!(s, 201, "{g}");
    let (s, tag) = c
        .send(
            "POST",
            "/admin/v1/tags",
            Some(owner),
            Some(json!({"group_id": g["id"], "name": "hot lead"})),
        )
        .await;
    assert_eq!(s, 201, "{tag}");
    let tag_id = tag["id"].as_str().unwrap().to_string();
    let trigger = |second: &str| {
        json!({"name": "MQL follow-up", "on": {"type": "stage_entered", "stage": "mql"},
               "actions": [{"type": "add_tag", "tag_id": tag_id},
                           {"type": "remove_tag", "tag_id": second},
                           {"type": "notify"}]})
    };
    let (s, b) = c
        .send(
            "POST",
            "/admin/v1/triggers",
            Some(owner),
            Some(trigger("no-such-tag")),
        )
        .await;
    assert_eq!(
        (s, b["code"].as_str(), b["details"]["field"].as_str()),
        (400, Some("unknown_tag"), Some("actions[1].tag_id")),
        "{b}"
    );
    assert!(
        b["message"].as_str().unwrap().contains("no-such-tag"),
        "{b}"
    );
    // Another tenant's tag does not exist for this one.
    scrm(
        &[
            "tenant",
            "add",
            "--id",
            "other",
            "--name",
            "Other",
            "--data-dir",
            &dir.display().to_string(),
        ],
        &[],
    );
    let other = common::cli_token(
        &dir.display().to_string(),
        "other",
        "owner@other.test",
        "owner",
    );
    let (s, b) = c
        .send(
            "POST",
            "/admin/v1/triggers",
            Some(&other),
            Some(trigger(&tag_id)),
        )
        .await;
    assert_eq!(
        (s, b["code"].as_str(), b["details"]["field"].as_str()),
        (400, Some("unknown_tag"), Some("actions[0].tag_id")),
        "{b}"
    );
    assert_eq!(b["details"]["errors"].as_array().unwrap().len(), 2, "{b}");
    let (s, created) = c
        .send(
            "POST",
            "/admin/v1/triggers",
            Some(owner),
            Some(trigger(&tag_id)),
        )
        .await;
    assert_eq!(s, 201, "{created}");
    let put = format!("/admin/v1/triggers/{}", created["id"].as_str().unwrap());
    let (s, b) = c
        .send("PUT", &put, Some(owner), Some(trigger("gone")))
        .await;
    assert_eq!((s, b["code"].as_str()), (400, Some("unknown_tag")), "{b}");
    let (s, b) = c
        .send("PUT", &put, Some(owner), Some(trigger(&tag_id)))
        .await;
    assert_eq!(s, 200, "{b}");

    running.stop().await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}
