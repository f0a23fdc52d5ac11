//! The operators' front door in `scrm up`: the permission matrix over every `/admin/v1` route
//! (generated from the route table: a route added without a declared permission fails here),
//! tenant isolation through the admin API, sign-in with limited failures, API tokens, the
//! audit log, and the bootstrap token the README's examples use.

mod common;

use std::time::Duration;

use gateway::api::admin::routes::{Target, ROUTES};
use proto::auth::Role;
use scrm::roles::Role as ProcessRole;
use serde_json::{json, Value};
use wechat::fake::{CallbackMode, FakeWechat};

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

/// `scrm user add … --token`: the token it printed.
fn user_token(dir: &str, tenant: &str, email: &str, role: &str) -> String {
    let out = scrm(
        &[
            "user",
            "add",
            "--tenant",
            tenant,
            "--email",
            email,
            "--role",
            role,
            "--token",
            "--data-dir",
            dir,
        ],
        &[],
    );
    out.lines()
        .find_map(|l| l.strip_prefix("API token (shown only now): "))
        .expect("a token")
        .trim()
        .to_string()
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
    let other = user_token(&dir_s, "other", "owner@other.test", "owner");

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
    let mine = user_token(&dir_s, common::TENANT, "owner@e2e.test", "owner");
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
