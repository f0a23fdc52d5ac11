//! Support shared by the `scrm` end-to-end tests: `scrm up` in this process (port 0, a fresh
//! data dir) with the fake WeChat server's apps registered for one tenant and the gateway's
//! WeChat API pointed at the fake.

// Each test file uses its own subset.
#![allow(dead_code)]

pub mod deployment;
pub mod leads;
pub mod sidebar;

use std::path::PathBuf;

use fake_wechat::{FakeApp, FakeHandle};
use scrm::up::{start_embedded, Running, UpOptions};
use serde_json::{json, Value};
use test_support::servers::unique;

/// The tenant the fake's apps are registered to.
pub const TENANT: &str = "t-e2e";
/// A tenant write key for `/track`.
pub const WRITE_KEY: &str = "wk-e2e-0123456789abcdef";
/// The gateway's internal key in these tests.
pub const INTERNAL_KEY: &str = "ik-e2e-0123456789abcdef0123456789abcdef";

/// A `gateway.apps` entry for a fake app.
pub fn app_seed(app: &FakeApp, kind: &str) -> Value {
    json!({
        "tenant_id": TENANT, "kind": kind, "app_id": app.appid, "token": app.token,
        "encoding_aes_key": app.encoding_aes_key, "secret": app.secret,
    })
}

/// Deep-merges `over` into `base` (objects key by key; anything else replaces).
fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, o) => *b = o,
    }
}

/// `scrm up` with the fake's OA, mini-program and WeCom contact apps registered to [`TENANT`],
/// `extra` settings merged over the test defaults. Returns the running roles and the data dir
/// (remove it after stopping).
pub async fn start_up(fake: &FakeHandle, extra: Option<Value>) -> (Running, PathBuf) {
    let dir = std::env::temp_dir().join(unique("gw-e2e"));
    let apps = fake.apps();
    let mut overrides = json!({
        "gateway": {
            "apps": [app_seed(&apps.oa, "oa"), app_seed(&apps.mp, "mp"), app_seed(&apps.wecom, "wecom")],
            "write_keys": [{"tenant_id": TENANT, "name": "server", "key": WRITE_KEY}],
            "wechat_api": {"oa_base_url": fake.base_url(), "wecom_base_url": fake.base_url()},
            "callback": {"publish_budget_ms": 1500},
            "internal_key": INTERNAL_KEY,
        },
    });
    if let Some(extra) = extra {
        merge(&mut overrides, extra);
    }
    let running = start_embedded(UpOptions {
        data_dir: dir.clone(),
        bind: Some("127.0.0.1:0".parse().expect("address")),
        config: None,
        init_tracing: false,
        overrides: Some(overrides),
    })
    .await
    .expect("scrm up starts");
    (running, dir)
}

/// Runs the `scrm` binary (without the environment's config file or data dir); its stdout.
pub fn scrm_cli(args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_scrm"))
        .args(args)
        .env_remove("SCRM_CONFIG")
        .env_remove("SCRM_DATA_DIR")
        .output()
        .expect("the scrm binary runs");
    assert!(
        out.status.success(),
        "scrm {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `scrm user add … --token` on the data dir `dir`: the API token of a new `role` user.
pub fn cli_token(dir: &str, tenant: &str, email: &str, role: &str) -> String {
    let out = scrm_cli(&[
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
    ]);
    out.lines()
        .find_map(|l| l.strip_prefix("API token (shown only now): "))
        .expect("a token")
        .trim()
        .to_string()
}

/// `method url` with `token` and an optional JSON body: `(status, body text)`.
pub async fn admin_call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: &str,
    body: Option<Value>,
) -> (u16, String) {
    let mut r = http.request(method, url).bearer_auth(token);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let res = r.send().await.expect("the gateway answers");
    (res.status().as_u16(), res.text().await.unwrap_or_default())
}
