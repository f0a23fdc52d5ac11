//! The four roles of a production deployment as separate `scrm` processes on this machine's
//! MariaDB, RabbitMQ and Redis: a config file with fresh databases (each role connects as its own
//! MariaDB user, so its statements can be counted apart), a unique bus exchange and cache prefix,
//! the given fake WeChat apps registered to one tenant, WeChat lookups off. Used by the pipeline
//! benchmark and the end-to-end tests that kill a role; [`Deployment::stop`] removes everything.

// Each user takes its own subset.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use chrono::Utc;
use fake_wechat::FakeApp;
use platform::bus::AmqpBus;
use platform::config::DbConfig;
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use serde_json::json;
use test_support::servers::{amqp_url, free_port, mysql_url, redis_url, unique};

pub const ROLES: [&str; 4] = ["gateway", "identity", "tagging", "scoring"];
pub const SERVICES: [&str; 3] = ["identity", "tagging", "scoring"];
pub const INTERNAL_KEY: &str = "ik-pipeline-0123456789abcdef0123456789abcdef";
/// The tenant's write key for `/track` (not rate-limited here: one load generator sends all).
pub const WRITE_KEY: &str = "wk-pipeline-0123456789abcdef";
const KEY_B64: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

/// The four roles as processes, their databases and users.
pub struct Deployment {
    dir: PathBuf,
    config: PathBuf,
    /// role → (database name, MariaDB user).
    dbs: Vec<(&'static str, String, String)>,
    children: Vec<(&'static str, Child)>,
    pub urls: HashMap<&'static str, String>,
    pub exchange: String,
    pub admin: DatabaseConnection,
    /// `userstat` before the start, when per-user statistics were switched on.
    userstat_was: Option<String>,
}

impl Deployment {
    /// Databases, users and the config file; `scrm migrate` run. `count_statements` switches
    /// MariaDB's per-user statistics on (set back by [`Deployment::stop`]).
    pub async fn start(
        tenant: &str,
        fake_apps: &[(&FakeApp, &str)],
        count_statements: bool,
    ) -> anyhow::Result<Deployment> {
        let dir = std::env::temp_dir().join(unique("pipeline"));
        std::fs::create_dir_all(&dir)?;
        let root = mysql_url();
        let admin = platform::db::connect(&DbConfig::new(root.clone()), false).await?;
        let userstat_was = if count_statements {
            Some(scalar(&admin, "SELECT @@GLOBAL.userstat").await?)
        } else {
            None
        };
        let suffix = unique("p");
        let mut dbs = Vec::new();
        for role in ROLES {
            let db = format!("{suffix}_{role}");
            let user = format!("{}_{role}", &suffix[..suffix.len().min(20)]);
            exec(&admin, &format!("CREATE DATABASE `{db}`")).await?;
            exec(
                &admin,
                &format!("CREATE USER '{user}'@'%' IDENTIFIED BY 'bench'"),
            )
            .await?;
            exec(&admin, &format!("GRANT ALL ON `{db}`.* TO '{user}'@'%'")).await?;
            dbs.push((role, db, user));
        }
        if count_statements {
            exec(&admin, "SET GLOBAL userstat = 1").await?;
        }
        let host = root
            .split_once("://")
            .map(|(_, r)| r.rsplit_once('@').map_or(r, |(_, h)| h))
            .unwrap_or("127.0.0.1:3306")
            .trim_end_matches('/')
            .to_string();
        let exchange = unique("pipeline");
        let ports: HashMap<&str, u16> = ROLES.iter().map(|r| (*r, free_port())).collect();
        let urls: HashMap<&'static str, String> = ROLES
            .iter()
            .map(|r| (*r, format!("http://127.0.0.1:{}", ports[r])))
            .collect();
        let mut toml = String::new();
        toml += &format!(
            "[telemetry]\nlog_format = \"json\"\nlog_level = \"warn\"\n\n\
             [bus]\nkind = \"amqp\"\nurl = \"{}\"\nexchange = \"{exchange}\"\nprefetch = 64\n\n\
             [cache]\nkind = \"redis\"\nurl = \"{}\"\nkey_prefix = \"{exchange}:\"\n\n",
            amqp_url(),
            redis_url()
        );
        for (role, db, user) in &dbs {
            toml += &format!(
                "[{role}.http]\nbind = \"127.0.0.1:{}\"\n[{role}.database]\n\
                 url = \"mysql://{user}:bench@{host}/{db}\"\nmax_connections = 10\n\n",
                ports[role]
            );
        }
        toml += &format!(
            "[gateway.services]\nidentity_url = \"{}\"\ntagging_url = \"{}\"\nscoring_url = \"{}\"\n\n\
             [identity.wechat]\nenabled = false\n\n[tagging.wechat]\nenabled = false\n\n\
             [gateway.track]\nrate_per_minute = 100000000\n\n\
             [[gateway.write_keys]]\ntenant_id = \"{tenant}\"\nname = \"load\"\nkey = \"{WRITE_KEY}\"\n\n",
            urls["identity"], urls["tagging"], urls["scoring"]
        );
        for (app, kind) in fake_apps {
            toml += &format!(
                "[[gateway.apps]]\ntenant_id = \"{tenant}\"\nkind = \"{kind}\"\napp_id = \"{}\"\n\
                 token = \"{}\"\nencoding_aes_key = \"{}\"\nsecret = \"{}\"\n\n",
                app.appid, app.token, app.encoding_aes_key, app.secret
            );
        }
        let config = dir.join("pipeline.toml");
        std::fs::write(&config, toml)?;
        let d = Deployment {
            dir,
            config,
            dbs,
            children: Vec::new(),
            urls,
            exchange,
            admin,
            userstat_was,
        };
        let (ok, out) = d.scrm(&["migrate"]);
        if !ok {
            bail!("scrm migrate failed: {out}");
        }
        Ok(d)
    }

    /// Adds `toml` to the roles' config file (before they start: e.g. more apps, the WeChat API
    /// base URLs, a section's tuning).
    pub fn append_config(&self, toml: &str) -> anyhow::Result<()> {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.config)?;
        writeln!(f, "\n{toml}")?;
        Ok(())
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("SCRM_GATEWAY__INTERNAL_KEY", INTERNAL_KEY.to_string()),
            ("SCRM_GATEWAY__SECRET_KEY", KEY_B64.to_string()),
            ("SCRM_IDENTITY__PII_KEY", KEY_B64.to_string()),
            ("SCRM_IDENTITY__INTERNAL_KEY", INTERNAL_KEY.to_string()),
            ("SCRM_TAGGING__INTERNAL_KEY", INTERNAL_KEY.to_string()),
            ("SCRM_SCORING__INTERNAL_KEY", INTERNAL_KEY.to_string()),
        ]
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_scrm"));
        cmd.args(args)
            .arg("--config")
            .arg(&self.config)
            .envs(self.env());
        cmd
    }

    fn scrm(&self, args: &[&str]) -> (bool, String) {
        match self.command(args).output() {
            Ok(o) => (
                o.status.success(),
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                ),
            ),
            Err(e) => (false, e.to_string()),
        }
    }

    /// Starts every role and waits for each `/readyz`.
    pub async fn run_roles(&mut self) -> anyhow::Result<()> {
        for role in ROLES {
            self.spawn(role)?;
        }
        for role in ROLES {
            self.ready(role).await?;
        }
        Ok(())
    }

    fn spawn(&mut self, role: &'static str) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("{role}.log")))?;
        let child = self
            .command(&[role])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("start {role}"))?;
        self.children.push((role, child));
        Ok(())
    }

    /// Kills `role`'s process at once (SIGKILL: no drain, no goodbye to the broker or database).
    pub fn kill(&mut self, role: &str) {
        for (_, c) in self.children.iter_mut().filter(|(r, _)| *r == role) {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.children.retain(|(r, _)| *r != role);
    }

    /// Starts one more process of `role` on its own port (a replica: a competing consumer of
    /// the role's queues) and waits until it is ready.
    pub async fn add_replica(&mut self, role: &'static str) -> anyhow::Result<()> {
        let port = free_port();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("{role}-{port}.log")))?;
        let child = self
            .command(&[role])
            .env(
                format!("SCRM_{}__HTTP__BIND", role.to_uppercase()),
                format!("127.0.0.1:{port}"),
            )
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("start a replica of {role}"))?;
        self.children.push((role, child));
        let http = reqwest::Client::new();
        let url = format!("http://127.0.0.1:{port}/readyz");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = http.get(&url).send().await {
                if r.status().is_success() {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!("the replica of {role} never became ready");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Starts `role` again and waits until it is ready.
    pub async fn restart(&mut self, role: &'static str) -> anyhow::Result<()> {
        self.spawn(role)?;
        self.ready(role).await
    }

    /// Waits for `role`'s `/readyz`.
    async fn ready(&self, role: &str) -> anyhow::Result<()> {
        let http = reqwest::Client::new();
        let url = format!("{}/readyz", self.urls[role]);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = http.get(&url).send().await {
                if r.status().is_success() {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "{role} never became ready; see {}",
                    self.dir.join(format!("{role}.log")).display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A connection to the deployment's bus with every consumer group declared, so nothing the
    /// roles publish before their consumers start is dropped; [`Deployment::stop`] removes what
    /// it declared.
    pub async fn bus(&self) -> anyhow::Result<AmqpBus> {
        let mut cfg = platform::config::BusConfig::amqp(amqp_url());
        cfg.exchange = self.exchange.clone();
        let bus = AmqpBus::connect(&cfg).await?;
        platform::bus::declare_groups(&bus, proto::routing::GROUPS)
            .await
            .map_err(|(g, e)| anyhow!("declare {g}: {e}"))?;
        Ok(bus)
    }

    /// A connection to `role`'s database (as root).
    pub async fn db(&self, role: &str) -> anyhow::Result<DatabaseConnection> {
        Ok(platform::db::connect(&DbConfig::new(self.db_url(role)), false).await?)
    }

    /// The name of `role`'s database.
    pub fn db_name(&self, role: &str) -> String {
        let (_, db, _) = self.dbs.iter().find(|(r, _, _)| *r == role).unwrap();
        db.clone()
    }

    /// A new user of `tenant` with `role` (the tenant made first when missing) and their API
    /// token, through the command line.
    pub fn user_token(&self, tenant: &str, email: &str, role: &str) -> anyhow::Result<String> {
        let (ok, out) = self.scrm(&["tenant", "add", "--id", tenant, "--name", tenant]);
        if !ok {
            bail!("scrm tenant add: {out}");
        }
        let (ok, out) = self.scrm(&[
            "user", "add", "--tenant", tenant, "--email", email, "--role", role, "--token",
        ]);
        if !ok {
            bail!("scrm user add: {out}");
        }
        out.lines()
            .find_map(|l| l.strip_prefix("API token (shown only now): "))
            .map(|t| t.trim().to_string())
            .ok_or_else(|| anyhow!("no token in: {out}"))
    }

    /// The URL of `role`'s database (as root).
    pub fn db_url(&self, role: &str) -> String {
        let (_, db, _) = self.dbs.iter().find(|(r, _, _)| *r == role).unwrap();
        format!("{}/{db}", mysql_url())
    }

    /// Statements each service's user has sent so far.
    pub async fn statements(&self) -> anyhow::Result<HashMap<&'static str, u64>> {
        let mut out = HashMap::new();
        for (role, _, user) in &self.dbs {
            let row = self
                .admin
                .query_one(Statement::from_string(
                    self.admin.get_database_backend(),
                    format!(
                        "SELECT CAST(SELECT_COMMANDS + UPDATE_COMMANDS + OTHER_COMMANDS AS SIGNED) \
                         FROM information_schema.USER_STATISTICS WHERE USER = '{user}'"
                    ),
                ))
                .await?;
            let n: i64 = row.map(|r| r.try_get_by_index(0)).transpose()?.unwrap_or(0);
            out.insert(*role, n as u64);
        }
        Ok(out)
    }

    /// CPU seconds (user + system) each role's process has used so far.
    pub fn cpu(&self) -> HashMap<&'static str, f64> {
        self.children
            .iter()
            .map(|(role, c)| (*role, process_cpu_seconds(c.id())))
            .collect()
    }

    /// Stops the roles and removes the databases, users, queues (declared through `bus`), cache
    /// keys and files.
    pub async fn stop(mut self, bus: &AmqpBus) {
        for (_, c) in &mut self.children {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
        }
        for (_, c) in &mut self.children {
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline && matches!(c.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        for (_, db, user) in &self.dbs {
            let _ = exec(&self.admin, &format!("DROP DATABASE IF EXISTS `{db}`")).await;
            let _ = exec(&self.admin, &format!("DROP USER IF EXISTS '{user}'@'%'")).await;
        }
        if let Some(was) = &self.userstat_was {
            let _ = exec(&self.admin, &format!("SET GLOBAL userstat = {was}")).await;
        }
        let _ = bus.destroy().await;
        if let Ok(cache) =
            platform::cache::RedisCache::connect(&redis_url(), &format!("{}:", self.exchange)).await
        {
            let _ = cache.delete_prefix().await;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A test that fails before [`Deployment::stop`] still ends its processes (their connections,
/// consumers and ports go with them); its databases stay for a look at what went wrong.
impl Drop for Deployment {
    fn drop(&mut self) {
        for (_, c) in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub async fn exec(db: &DatabaseConnection, sql: &str) -> anyhow::Result<()> {
    db.execute(Statement::from_string(
        db.get_database_backend(),
        sql.to_string(),
    ))
    .await
    .with_context(|| sql.to_string())?;
    Ok(())
}

pub async fn scalar(db: &DatabaseConnection, sql: &str) -> anyhow::Result<String> {
    let row = db
        .query_one(Statement::from_string(
            db.get_database_backend(),
            sql.to_string(),
        ))
        .await?
        .ok_or_else(|| anyhow!("no row: {sql}"))?;
    let v: i64 = row.try_get_by_index(0)?;
    Ok(v.to_string())
}

impl Deployment {
    /// `tenant`'s definitions, written before the roles start: tag `follower` by a rule
    /// (followed the Official Account), and an engagement model (follow 10 once, click 2,
    /// text 1, added by a rep 10, page view 1).
    pub async fn define_engagement(&self, tenant: &str) -> anyhow::Result<()> {
        let d = self;
        let tagging = platform::db::connect(&DbConfig::new(d.db_url("tagging")), false).await?;
        let tag_id = scrm_tests::tagging::group_with_tag(&tagging, tenant, "lifecycle", "follower")
            .await
            .map_err(|e| anyhow!("{e}"))?;
        tagging_svc::store::rules::create(
        &tagging,
        tagging_svc::store::rules::RuleInput {
            tenant_id: tenant.into(),
            tag_id,
            name: "followed the Official Account".into(),
            condition: json!({"version": 1, "root": {"type": "behaviour", "event": "oa.subscribe",
                               "count": {"op": "gte", "value": 1}, "window": {"type": "all_time"}}}),
            mode: "add_remove".into(),
            enabled: true,
            operator: "bench".into(),
        },
        &rules::Limits::default(),
    )
    .await
    .map_err(|e| anyhow!("{e:?}"))?;
        let now = Utc::now();
        facts::roll(
            &tagging,
            tenant,
            facts::local_day(now, chrono_tz::Asia::Shanghai),
            20_000,
            now,
        )
        .await?;
        let scoring = platform::db::connect(&DbConfig::new(d.db_url("scoring")), false).await?;
        use scoring_svc::domain::defs::{ModelSpec, RuleSpec};
        use scoring_svc::store::defs;
        let spec: ModelSpec =
            serde_json::from_value(json!({"key": "engagement", "name": "Engagement",
        "decay": {"kind": "half_life", "days": 30}}))?;
        let m = defs::create_model(&scoring, tenant, spec, "bench", now).await?;
        for r in [
            json!({"kind": "event", "name": "Follow", "event": "oa.subscribe", "points": 10, "caps": {"once": true}}),
            json!({"kind": "event", "name": "Menu click", "event": "oa.click", "points": 2}),
            json!({"kind": "event", "name": "Message", "event": "oa.message.text", "points": 1}),
            json!({"kind": "event", "name": "Added by a rep", "event": "wecom.external_contact.add_external_contact", "points": 10}),
            json!({"kind": "event", "name": "Page view", "event": "track.page_view", "points": 1}),
        ] {
            let spec: RuleSpec = serde_json::from_value(r)?;
            defs::create_rule_in(&scoring, tenant, &m.id, spec, "bench", now).await?;
        }
        Ok(())
    }
}

/// The first column of the first row of `sql` (a count).
pub async fn count(db: &DatabaseConnection, sql: &str) -> i64 {
    db.query_one(Statement::from_string(
        db.get_database_backend(),
        sql.to_string(),
    ))
    .await
    .unwrap()
    .unwrap()
    .try_get_by_index(0)
    .unwrap()
}

/// Posts a prepared callback to the gateway as WeChat would.
pub async fn post_callback(
    http: &reqwest::Client,
    cb: &fake_wechat::PreparedCallback,
) -> reqwest::Result<reqwest::Response> {
    http.post(&cb.url)
        .query(&cb.query)
        .header("content-type", cb.content_type)
        .body(cb.body.clone())
        .send()
        .await
}

/// User and system CPU seconds process `pid` has used so far (0 when it is gone).
pub fn process_cpu_seconds(pid: u32) -> f64 {
    let tick = 100.0; // USER_HZ on Linux
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces), from its closing paren.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let t = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the paren.
    (t(11) + t(12)) / tick
}

/// The servers a deployment runs on, by the name of their processes.
pub const SERVERS: &[(&str, &str)] = &[
    ("mariadb", "mariadbd"),
    ("rabbitmq", "beam.smp"),
    ("redis", "redis-server"),
];

/// CPU seconds used so far by each server of [`SERVERS`] (all its processes) and by this
/// process (the load it generates and observes), as `load`.
pub fn server_cpu() -> HashMap<&'static str, f64> {
    let mut out: HashMap<&'static str, f64> = SERVERS
        .iter()
        .map(|(name, process)| {
            let pids = Command::new("pidof")
                .arg(process)
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            let secs = pids
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .map(process_cpu_seconds)
                .sum();
            (*name, secs)
        })
        .collect();
    out.insert("load", process_cpu_seconds(std::process::id()));
    out
}

/// Busy and total CPU seconds of the whole machine so far (`/proc/stat`; idle and I/O wait are
/// not busy).
pub fn machine_cpu() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let f: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let total: f64 = f.iter().take(8).sum();
    let idle = f.get(3).copied().unwrap_or(0.0) + f.get(4).copied().unwrap_or(0.0);
    ((total - idle) / 100.0, total / 100.0)
}
