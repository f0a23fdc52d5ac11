//! The operators' reads at scale: the customer list and the 360° read through the real gateway,
//! with a million profiles in MariaDB, in production mode on this machine (the four roles as
//! separate `scrm` processes, RabbitMQ, Redis).
//!
//! Run: `cargo bench -p scrm --bench customers`. It
//! 1. makes `BENCH_BASE` real customers through the pipeline: signed Official Account follows
//!    (one in five also clicks twice) and WeCom adds by reps, so every service holds them as the
//!    running system does (identifiers, fields, timeline, tags, scores, leads);
//! 2. copies them inside each service's database until the tenant has `BENCH_PROFILES` profiles:
//!    every row of a table keyed by profile is copied with a new profile id (the same one in every
//!    service), the values of other unique keys made unique, and its times (but a score fold's)
//!    spread over 90 days;
//! 3. reads at `BENCH_RATE` requests per second for `BENCH_SECONDS` each (open loop: latency from
//!    the scheduled start, so a slow answer delays nobody's clock): the first page of the list
//!    (last active), by score, filtered by a tag, filtered by stage and score range, the 360°
//!    read of random customers, and the WeCom sidebar's card of the reps' own customers (each
//!    rep signed in through the fake WeChat's OAuth; the card looks the customer up by
//!    external_userid in 1 M identifiers and checks the rep follows them).
//!
//! Each line: p50 / p99 / max and errors. The last line is
//! `customers: profiles=N list_p99_ms=… score_p99_ms=… tag_p99_ms=… range_p99_ms=… c360_p99_ms=…
//! card_p99_ms=…`.
//! Env: `BENCH_PROFILES` (1 000 000), `BENCH_BASE` (200), `BENCH_RATE` (50), `BENCH_CARD_RATE`
//! (100: the sidebar card), `BENCH_SECONDS` (20).
//! Leaves nothing behind (databases, users, queues, exchange).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use fake_wechat::{prepare_oa, prepare_wecom, CallbackMode, FakeWechat, PreparedCallback};
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};

#[path = "../../scrm/tests/it/common/deployment.rs"]
mod deployment;
#[path = "../../scrm/tests/it/common/sidebar.rs"]
mod sidebar;

use deployment::{exec, Deployment};

const TENANT: &str = "t-customers";

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

/// The profile id of copy `seq` of the profile in column `{col}` of `t` (`s` the sequence).
const COPY_ID_SQL: &str = "LOWER(CONCAT_WS('-', SUBSTR(MD5(CONCAT(t.{col}, '/', s.seq)), 1, 8), \
     SUBSTR(MD5(CONCAT(t.{col}, '/', s.seq)), 9, 4), SUBSTR(MD5(CONCAT(t.{col}, '/', s.seq)), 13, 4), \
     SUBSTR(MD5(CONCAT(t.{col}, '/', s.seq)), 17, 4), SUBSTR(MD5(CONCAT(t.{col}, '/', s.seq)), 21, 12)))";

/// The first column of the first row of `sql` (a count); an error rather than a panic, so the
/// deployment is always stopped.
async fn count(db: &DatabaseConnection, sql: &str) -> anyhow::Result<i64> {
    let r = rows(db, sql).await?;
    Ok(r.first()
        .map(|r| r.try_get_by_index::<i64>(0))
        .transpose()?
        .unwrap_or(0))
}

async fn rows(db: &DatabaseConnection, sql: &str) -> anyhow::Result<Vec<sea_orm::QueryResult>> {
    Ok(db
        .query_all(Statement::from_string(db.get_database_backend(), sql))
        .await?)
}

/// Tables whose times are copied as they are: a score fold's time and its leaderboard key
/// (`norm`) go together.
const KEEP_TIMES: [&str; 1] = ["profile_scores"];

/// One column of a table.
struct Col {
    name: String,
    data_type: String,
    max_len: Option<i64>,
    auto: bool,
}

/// Copies every row of `tenant` in the tables of `db` keyed by profile `copies` times (see the
/// module's header); returns the rows written.
async fn multiply(
    admin: &DatabaseConnection,
    db: &str,
    tenant: &str,
    copies: u64,
) -> anyhow::Result<u64> {
    let tables: Vec<String> = rows(
        admin,
        &format!(
            "SELECT DISTINCT TABLE_NAME AS t FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = '{db}' AND (COLUMN_NAME = 'profile_id' OR TABLE_NAME = 'profiles') \
             ORDER BY TABLE_NAME"
        ),
    )
    .await?
    .iter()
    .map(|r| r.try_get::<String>("", "t"))
    .collect::<Result<_, _>>()?;
    let mut written = 0u64;
    for table in tables {
        let cols: Vec<Col> = rows(
            admin,
            &format!(
                "SELECT COLUMN_NAME AS n, DATA_TYPE AS d, CHARACTER_MAXIMUM_LENGTH AS l, EXTRA AS e \
                 FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = '{db}' AND TABLE_NAME = '{table}' \
                 ORDER BY ORDINAL_POSITION"
            ),
        )
        .await?
        .iter()
        .map(|r| {
            Ok::<_, sea_orm::DbErr>(Col {
                name: r.try_get("", "n")?,
                data_type: r.try_get("", "d")?,
                max_len: r.try_get::<Option<u64>>("", "l")?.map(|v| v as i64),
                auto: r.try_get::<String>("", "e")?.contains("auto_increment"),
            })
        })
        .collect::<Result<_, _>>()?;
        if !cols.iter().any(|c| c.name == "tenant_id") {
            continue;
        }
        let profile_col = if cols.iter().any(|c| c.name == "profile_id") {
            "profile_id"
        } else {
            "id"
        };
        // Unique keys the new profile id does not already make unique get a unique value.
        let mut index_cols: Vec<(String, String)> = Vec::new();
        for r in rows(
            admin,
            &format!(
                "SELECT INDEX_NAME AS i, COLUMN_NAME AS c FROM information_schema.STATISTICS \
                 WHERE TABLE_SCHEMA = '{db}' AND TABLE_NAME = '{table}' AND NON_UNIQUE = 0 \
                 ORDER BY INDEX_NAME, SEQ_IN_INDEX"
            ),
        )
        .await?
        {
            index_cols.push((r.try_get("", "i")?, r.try_get("", "c")?));
        }
        let mut uniquify: Vec<String> = Vec::new();
        let mut indexes: Vec<&str> = index_cols.iter().map(|(i, _)| i.as_str()).collect();
        indexes.dedup();
        for idx in indexes {
            let members: Vec<&Col> = index_cols
                .iter()
                .filter(|(i, _)| i == idx)
                .filter_map(|(_, c)| cols.iter().find(|col| &col.name == c))
                .collect();
            if members.iter().any(|c| c.name == profile_col || c.auto) {
                continue;
            }
            let Some(pick) = members.iter().rev().find(|c| {
                c.name != "tenant_id"
                    && matches!(c.data_type.as_str(), "varchar" | "varbinary" | "bigint")
            }) else {
                bail!("{db}.{table}: unique key {idx} cannot be made unique by copying");
            };
            uniquify.push(pick.name.clone());
        }
        let mut names = Vec::new();
        let mut exprs = Vec::new();
        for c in cols.iter().filter(|c| !c.auto) {
            names.push(format!("`{}`", c.name));
            let e = if c.name == profile_col {
                COPY_ID_SQL.replace("{col}", profile_col)
            } else if uniquify.contains(&c.name) && c.data_type == "bigint" {
                format!("t.`{0}` + s.seq * 10000000000", c.name)
            } else if uniquify.contains(&c.name) {
                let keep = (c.max_len.unwrap_or(64) - 9).max(1);
                format!("CONCAT(LEFT(t.`{0}`, {keep}), '~', s.seq)", c.name)
            } else if matches!(c.data_type.as_str(), "datetime" | "timestamp")
                && !KEEP_TIMES.contains(&table.as_str())
            {
                format!(
                    "t.`{0}` - INTERVAL ((s.seq * 1553) MOD 7776000) SECOND",
                    c.name
                )
            } else {
                format!("t.`{}`", c.name)
            };
            exprs.push(e);
        }
        let chunk = 100u64;
        let mut from = 1;
        while from <= copies {
            let to = (from + chunk - 1).min(copies);
            let sql = format!(
                "INSERT INTO `{db}`.`{table}` ({}) SELECT {} FROM `{db}`.`{table}` t \
                 JOIN `{db}`.seq_{from}_to_{to} s WHERE t.tenant_id = '{tenant}' AND t.`{profile_col}` \
                 IN (SELECT id FROM `{db}`.bench_base)",
                names.join(", "),
                exprs.join(", ")
            );
            let r = admin
                .execute(Statement::from_string(admin.get_database_backend(), sql))
                .await
                .map_err(|e| anyhow!("{db}.{table}: {e}"))?;
            written += r.rows_affected();
            from = to + 1;
        }
        exec(admin, &format!("ANALYZE TABLE `{db}`.`{table}`")).await?;
    }
    Ok(written)
}

/// The path and the bearer token of the i-th read of a scenario.
type UriFn = Arc<dyn Fn(u64) -> (String, String) + Send + Sync>;

/// Reads `uri(i)` at `rate` per second for `seconds`; latencies from each request's scheduled
/// start.
async fn read_load(
    http: &reqwest::Client,
    base: &str,
    rate: f64,
    seconds: f64,
    uri: UriFn,
) -> anyhow::Result<(Vec<Duration>, u64)> {
    let n = (rate * seconds).round() as u64;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..n {
        let due = started + Duration::from_secs_f64(i as f64 / rate);
        let (path, token) = uri(i);
        let (http, url) = (http.clone(), format!("{base}{path}"));
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(due.into()).await;
            let r = http.get(&url).bearer_auth(&token).send().await;
            let took = due.elapsed();
            match r {
                Ok(r) if r.status().is_success() => {
                    let _ = r.bytes().await;
                    (due.elapsed().max(took), true)
                }
                Ok(r) => {
                    eprintln!(
                        "{url}: {} {}",
                        r.status(),
                        r.text().await.unwrap_or_default()
                    );
                    (took, false)
                }
                Err(e) => {
                    eprintln!("{url}: {e}");
                    (took, false)
                }
            }
        }));
    }
    let mut lat = Vec::with_capacity(n as usize);
    let mut errors = 0;
    for t in tasks {
        let (d, ok) = t.await?;
        if ok {
            lat.push(d);
        } else {
            errors += 1;
        }
    }
    lat.sort();
    Ok((lat, errors))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let profiles = env_u64("BENCH_PROFILES", 1_000_000);
    let base_n = env_u64("BENCH_BASE", 200);
    let rate = env_u64("BENCH_RATE", 50) as f64;
    let card_rate = env_u64("BENCH_CARD_RATE", 100) as f64;
    let seconds = env_u64("BENCH_SECONDS", 20) as f64;
    let fake = FakeWechat::start(0, 9)?;
    {
        let admin = platform::db::connect(
            &platform::config::DbConfig::new(test_support::servers::mysql_url()),
            false,
        )
        .await?;
        let pool = count(
            &admin,
            "SELECT CAST(@@GLOBAL.innodb_buffer_pool_size AS SIGNED)",
        )
        .await?;
        if pool < 2 << 30 {
            println!(
                "customers: MariaDB's buffer pool is {} MiB: copying millions of rows will be slow \
                 (SET GLOBAL innodb_buffer_pool_size = 6*1024*1024*1024 speeds it up)",
                pool >> 20
            );
        }
    }
    let apps = fake.apps().clone();
    let mut d =
        Deployment::start(TENANT, &[(&apps.oa, "oa"), (&apps.wecom, "wecom")], false).await?;
    let bus = d.bus().await?;
    let result = async {
        d.define_engagement(TENANT).await?;
        // The corp's agent app and WeChat's pages at the fake: reps sign in to the sidebar.
        let agent = apps.wecom_agent.clone();
        let agent_id = agent.agent_id.ok_or_else(|| anyhow!("the fake agent app has no AgentID"))?;
        d.append_config(&format!(
            "[[gateway.apps]]\ntenant_id = \"{TENANT}\"\nkind = \"wecom_agent\"\napp_id = \"{}\"\n\
             agent_id = {agent_id}\nsecret = \"{}\"\n\n\
             [gateway.wechat_api]\noa_base_url = \"{base}\"\nwecom_base_url = \"{base}\"\n\
             open_base_url = \"{base}\"\n",
            agent.appid,
            agent.secret,
            base = fake.base_url(),
        ))?;
        d.run_roles().await?;
        let token = d.user_token(TENANT, "analyst@bench.test", "analyst")?;
        let gateway = d.urls["gateway"].clone();
        let http = reqwest::Client::builder().pool_max_idle_per_host(64).build()?;

        // 1. Real customers through the pipeline.
        let t0 = Instant::now();
        let oa = fake.callbacks(&apps.oa);
        let reps: Vec<String> = fake.population().reps.iter().map(|r| r.userid.clone()).collect();
        let mut callbacks: Vec<PreparedCallback> = Vec::new();
        for i in 0..base_n {
            if i % 5 == 4 {
                let xml = fake.callbacks(&apps.wecom).add_external_contact(
                    &reps[i as usize % reps.len()],
                    &format!("wmbench{i}"),
                    None,
                );
                callbacks.push(prepare_wecom(&gateway, &apps.wecom, &xml)?);
            } else {
                let openid = format!("obench{i}");
                callbacks.push(prepare_oa(&gateway, &apps.oa, &oa.subscribe(&openid), CallbackMode::Safe)?);
                if i % 5 == 0 {
                    for k in 0..2 {
                        let xml = oa.click(&openid, &format!("MENU{k}"));
                        callbacks.push(prepare_oa(&gateway, &apps.oa, &xml, CallbackMode::Safe)?);
                    }
                }
            }
        }
        for cb in &callbacks {
            let r = deployment::post_callback(&http, cb).await?;
            if !r.status().is_success() {
                bail!("gateway answered {}", r.status());
            }
        }
        let identity = d.db("identity").await?;
        let tagging = d.db("tagging").await?;
        let scoring = d.db("scoring").await?;
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let leads = count(
                &scoring,
                &format!("SELECT COUNT(*) FROM leads WHERE tenant_id = '{TENANT}' AND status = 'active'"),
            )
            .await?;
            let facts = count(
                &tagging,
                &format!("SELECT COUNT(*) FROM facts_profile WHERE tenant_id = '{TENANT}'"),
            )
            .await?;
            let queued: i64 = {
                let mut n = 0;
                for db in [&identity, &tagging, &scoring] {
                    n += count(db, "SELECT COUNT(*) FROM bus_outbox").await?;
                }
                n
            };
            if leads >= base_n as i64 && facts >= base_n as i64 && queued == 0 {
                break;
            }
            if Instant::now() > deadline {
                bail!("the base customers did not settle: {leads} leads, {facts} facts");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let base_ids: Vec<String> = rows(
            &identity,
            &format!("SELECT id FROM profiles WHERE tenant_id = '{TENANT}' AND status = 'active'"),
        )
        .await?
        .iter()
        .map(|r| r.try_get::<String>("", "id"))
        .collect::<Result<_, _>>()?;
        // Each rep who added a customer signs in to the sidebar.
        let browser = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let mut sessions: std::collections::HashMap<String, String> = Default::default();
        let mut cards = Vec::new();
        for i in (0..base_n).filter(|i| i % 5 == 4) {
            let rep = reps[i as usize % reps.len()].clone();
            if !sessions.contains_key(&rep) {
                // The walk asserts each step: a failure ends the bench, not the process, so the
                // deployment is still stopped.
                let (b, g, corp, r) = (
                    browser.clone(),
                    gateway.clone(),
                    apps.wecom.appid.clone(),
                    rep.clone(),
                );
                let s = tokio::spawn(async move { sidebar::sign_in(&b, &g, &corp, agent_id, &r).await })
                    .await
                    .map_err(|e| anyhow!("the sidebar sign-in of {rep} failed: {e}"))?;
                sessions.insert(rep.clone(), s);
            }
            cards.push((format!("wmbench{i}"), sessions[&rep].clone()));
        }
        println!(
            "customers: {} base customers through the pipeline in {:.1} s",
            base_ids.len(),
            t0.elapsed().as_secs_f64()
        );

        // 2. Copies up to `profiles`.
        let copies = profiles.saturating_sub(base_ids.len() as u64) / base_ids.len().max(1) as u64;
        let t1 = Instant::now();
        let admin = &d.admin;
        let mut written = 0;
        let mut read_ids: Vec<String> = base_ids.clone();
        for role in ["identity", "tagging", "scoring"] {
            let db = d.db_name(role);
            exec(admin, &format!("DROP TABLE IF EXISTS `{db}`.bench_base")).await?;
            exec(
                admin,
                &format!("CREATE TABLE `{db}`.bench_base (id VARCHAR(36) PRIMARY KEY)"),
            )
            .await?;
            for chunk in base_ids.chunks(500) {
                let values: Vec<String> = chunk.iter().map(|id| format!("('{id}')")).collect();
                exec(
                    admin,
                    &format!("INSERT INTO `{db}`.bench_base VALUES {}", values.join(",")),
                )
                .await?;
            }
            let n = multiply(admin, &db, TENANT, copies).await?;
            if role == "identity" {
                // Customers to read: the base ones and their first 50 copies.
                let sql = format!(
                    "SELECT {} AS id FROM `{db}`.bench_base t JOIN `{db}`.seq_1_to_{} s",
                    COPY_ID_SQL.replace("{col}", "id"),
                    copies.clamp(1, 50)
                );
                for r in rows(admin, &sql).await? {
                    read_ids.push(r.try_get::<String>("", "id")?);
                }
            }
            exec(admin, &format!("DROP TABLE `{db}`.bench_base")).await?;
            println!("customers: {role}: {n} rows copied");
            written += n;
        }
        let total = count(
            &scoring,
            &format!("SELECT COUNT(*) FROM leads WHERE tenant_id = '{TENANT}' AND status = 'active'"),
        )
        .await?;
        println!(
            "customers: {total} customers ({written} rows) after copying in {:.0} s",
            t1.elapsed().as_secs_f64()
        );
        let tag: String = rows(&tagging, &format!("SELECT id FROM tags WHERE tenant_id = '{TENANT}' LIMIT 1"))
            .await?
            .first()
            .map(|r| r.try_get::<String>("", "id"))
            .transpose()?
            .ok_or_else(|| anyhow!("no tag"))?;

        // 3. Reads.
        let ids: Arc<Vec<String>> = Arc::new(read_ids);
        let mut summary = Vec::new();
        let with = {
            let token = token.clone();
            move |path: String| (path, token.clone())
        };
        let fixed = |path: &'static str| -> UriFn {
            let with = with.clone();
            Arc::new(move |_| with(path.to_string()))
        };
        let mut scenarios: Vec<(&str, &str, UriFn)> = vec![
            ("list", "first page, last active", fixed("/admin/v1/customers?limit=50")),
            (
                "score",
                "first page by score",
                fixed("/admin/v1/customers?sort=score&model=engagement&limit=50"),
            ),
            ("tag", "first page with a tag", {
                let (tag, with) = (tag.clone(), with.clone());
                Arc::new(move |_| with(format!("/admin/v1/customers?tag={tag}&limit=50")))
            }),
            (
                "range",
                "first page, stage and score range",
                fixed("/admin/v1/customers?stage=new&model=engagement&score_min=5&score_max=100&limit=50"),
            ),
            ("c360", "360° read", {
                let (ids, with) = (ids.clone(), with.clone());
                Arc::new(move |i| {
                    let k = (i.wrapping_mul(2_654_435_761) % ids.len() as u64) as usize;
                    with(format!("/admin/v1/customers/{}", ids[k]))
                })
            }),
        ];
        // The sidebar card of the reps' own customers, each read with its rep's session.
        let cards: Arc<Vec<(String, String)>> = Arc::new(cards);
        if !cards.is_empty() {
            scenarios.push(("card", "sidebar card (rep's session)", {
                let cards = cards.clone();
                Arc::new(move |i| {
                    let (ext, session) = &cards[(i % cards.len() as u64) as usize];
                    (format!("/sidebar/v1/customers/{ext}"), session.clone())
                })
            }));
        }
        for (key, what, uri) in scenarios {
            // Reps read cards at their own rate.
            let rate = if key == "card" { card_rate } else { rate };
            // A warm-up second, not counted.
            read_load(&http, &gateway, rate, 1.0, uri.clone()).await?;
            let (lat, errors) = read_load(&http, &gateway, rate, seconds, uri).await?;
            println!(
                "customers: {what:<34} {:>4} reads at {rate:.0}/s: p50 {:>6.1} ms  p99 {:>6.1} ms  max {:>6.1} ms  errors {errors}",
                lat.len(),
                pct(&lat, 0.50),
                pct(&lat, 0.99),
                pct(&lat, 1.0),
            );
            if errors > 0 {
                bail!("{what}: {errors} reads failed");
            }
            summary.push(format!("{key}_p99_ms={:.0}", pct(&lat, 0.99)));
        }
        println!("customers: profiles={total} {}", summary.join(" "));
        Ok::<_, anyhow::Error>(())
    }
    .await;
    d.stop(&bus).await;
    fake.stop().await;
    result
}
