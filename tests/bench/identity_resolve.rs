//! Identity resolution against MariaDB holding a realistic population: per-event latency and
//! throughput of identity-svc's real resolution path (`Resolver::resolve`: inbox, one
//! transaction, identifier/profile locks, edges, timeline, outbox).
//!
//! Run: `cargo bench -p scrm-tests --bench identity_resolve` (MariaDB from SCRM_TEST_MYSQL_URL or
//! the local default). Knobs:
//! - `BENCH_PROFILES=N` profiles preloaded (default 1 000 000). Each has an OA openid, an MP openid
//!   and a unionid; every tenth also a WeChat-verified phone (sealed and keyed-hashed exactly as
//!   identity-svc stores it) — 3.1 identifiers per profile. The edge ledger (one row per
//!   identifier) and one timeline row per profile are loaded too.
//! - `BENCH_EVENTS=N` events per attach run (default 20 000); create runs use N/4 each, the merge
//!   sample min(N/20, 1 000).
//! - `BENCH_KEEP_DB=1` keeps the database (its name is printed) instead of dropping it.
//!
//! The preload uses multi-row INSERTs built with sea-query, one transaction per table on its own
//! connection with `unique_checks=0, foreign_key_checks=0` for that session only (the identity
//! tables declare no foreign keys, and every generated key is unique by construction). On an
//! empty table this lets InnoDB build the indexes by sorting at commit instead of row by row.
//! Server settings are only read and reported, never changed.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use identity_svc::config::ResolutionConfig;
use identity_svc::domain::pii::{mask, plain_hash, seal_context, Pii};
use identity_svc::domain::Policy;
use identity_svc::store::migrations::{Identifiers, IdentityEdges, Profiles, Timeline};
use identity_svc::store::{Outcome, Resolver};
use platform::config::DbConfig;
use proto::callback::CallbackReceived;
use proto::channel::{Channel, ChannelEvent, EventBody};
use proto::identity::{IdentifierKind, LinkRule, Provenance, DEFAULT_NAMESPACE};
use proto::sdk::{Content, MpSessionStarted, Subject, TrackKind, Tracked};
use proto::Envelope;
use sea_orm::sea_query::{InsertStatement, Query, SimpleExpr};
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement, TransactionTrait};
use sea_orm_migration::MigratorTrait;
use test_support::servers::{mysql_url, unique};

const TENANT: &str = "t-bench";
/// The Official Account every preloaded person follows.
const OA: &str = "wxOA0001bench";
/// The mini-program every preloaded person has opened.
const MP: &str = "wxMP0001bench";
/// A second mini-program: known people opening it bring a new openid.
const MP2: &str = "wxMP0002bench";
/// A third mini-program, for the merge sample.
const MP3: &str = "wxMP0003bench";
const PHONE_NS: &str = "86";
/// Rows per multi-row INSERT (13 columns × 5 000 stays under MySQL's 65 535 placeholders).
const ROWS_PER_INSERT: u64 = 5_000;
/// Identifier row ids of profile `i` are `SLOTS * i + 1 ..= SLOTS * i + SLOTS` (gaps allowed).
const SLOTS: u64 = 4;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

// ---- the preloaded population: everything is a function of the person's index ----

/// When the preloaded history starts (one person a millisecond, ending a day before now).
fn epoch(n: u64) -> DateTime<Utc> {
    Utc::now() - chrono::Duration::days(1) - chrono::Duration::milliseconds(n as i64)
}

fn at(base: DateTime<Utc>, i: u64) -> DateTime<Utc> {
    base + chrono::Duration::milliseconds(i as i64)
}

/// A UUIDv7 at the person's creation time, as identity-svc makes them (`Uuid::now_v7`);
/// `salt` separates the profile id from the id of the event that created it.
fn v7(base: DateTime<Utc>, i: u64, salt: u8) -> String {
    let mut rand = [0u8; 10];
    rand[..8].copy_from_slice(&i.to_be_bytes());
    rand[8] = salt;
    let millis = u64::try_from(at(base, i).timestamp_millis()).unwrap_or(0);
    uuid::Builder::from_unix_timestamp_millis(millis, &rand)
        .into_uuid()
        .to_string()
}

fn profile_id(base: DateTime<Utc>, i: u64) -> String {
    v7(base, i, 0)
}

fn first_event(base: DateTime<Utc>, i: u64) -> String {
    v7(base, i, 1)
}

fn oa_openid(i: u64) -> String {
    format!("oA{i:026}")
}

fn mp_openid(i: u64) -> String {
    format!("oM{i:026}")
}

fn unionid(i: u64) -> String {
    format!("oU{i:026}")
}

fn has_phone(i: u64) -> bool {
    i % 10 == 0
}

fn phone(i: u64) -> String {
    // +86139…: clear of the default blocked test numbers (+86138 00138000 / 00000000).
    format!("+86139{i:08}")
}

/// One identifier row of a preloaded person, stored the way `Resolver` stores it: non-sensitive
/// kinds keep the clear value, its plain SHA-256 and the value as mask; sensitive ones (phones)
/// keep the keyed hash, the value sealed under its row context, and a mask.
struct IdRow {
    id: i64,
    kind: IdentifierKind,
    namespace: &'static str,
    hash: String,
    value: Option<String>,
    sealed: Option<String>,
    masked: String,
    provenance: Provenance,
}

fn identifier_rows(pii: &Pii, i: u64) -> Vec<IdRow> {
    let clear = |slot: u64, kind, namespace, v: String| IdRow {
        id: (SLOTS * i + slot + 1) as i64,
        kind,
        namespace,
        hash: plain_hash(&v),
        masked: v.clone(),
        value: Some(v),
        sealed: None,
        provenance: Provenance::Wechat,
    };
    let mut rows = vec![
        clear(0, IdentifierKind::OaOpenid, OA, oa_openid(i)),
        clear(1, IdentifierKind::MpOpenid, MP, mp_openid(i)),
        clear(2, IdentifierKind::Unionid, DEFAULT_NAMESPACE, unionid(i)),
    ];
    if has_phone(i) {
        let p = phone(i);
        rows.push(IdRow {
            id: (SLOTS * i + 4) as i64,
            kind: IdentifierKind::Phone,
            namespace: PHONE_NS,
            hash: pii.keyed_hash(IdentifierKind::Phone, PHONE_NS, &p),
            value: None,
            sealed: Some(pii.seal(&p, &seal_context(TENANT, IdentifierKind::Phone, PHONE_NS))),
            masked: mask(IdentifierKind::Phone, &p),
            provenance: Provenance::VerifiedMp,
        });
    }
    rows
}

#[derive(Clone, Copy, Debug)]
enum Table {
    Profiles,
    Identifiers,
    Edges,
    Timeline,
}

fn insert_for(table: Table) -> InsertStatement {
    let mut q = Query::insert();
    match table {
        Table::Profiles => {
            q.into_table(Profiles::Table).columns([
                Profiles::Id,
                Profiles::TenantId,
                Profiles::Status,
                Profiles::MergedInto,
                Profiles::CreatedAt,
                Profiles::UpdatedAt,
            ]);
        }
        Table::Identifiers => {
            q.into_table(Identifiers::Table).columns([
                Identifiers::Id,
                Identifiers::TenantId,
                Identifiers::Kind,
                Identifiers::Namespace,
                Identifiers::ValueHash,
                Identifiers::Value,
                Identifiers::ValueSealed,
                Identifiers::ValueMasked,
                Identifiers::ProfileId,
                Identifiers::Provenance,
                Identifiers::FirstSeenEvent,
                Identifiers::CreatedAt,
                Identifiers::UpdatedAt,
            ]);
        }
        Table::Edges => {
            q.into_table(IdentityEdges::Table).columns([
                IdentityEdges::TenantId,
                IdentityEdges::FromIdentifierId,
                IdentityEdges::ToIdentifierId,
                IdentityEdges::ProfileId,
                IdentityEdges::Rule,
                IdentityEdges::EvidenceEventId,
                IdentityEdges::CreatedAt,
                IdentityEdges::CreatedBy,
                IdentityEdges::RetractedAt,
            ]);
        }
        Table::Timeline => {
            q.into_table(Timeline::Table).columns([
                Timeline::TenantId,
                Timeline::ProfileId,
                Timeline::EventId,
                Timeline::EventType,
                Timeline::OccurredAt,
                Timeline::Summary,
            ]);
        }
    }
    q
}

/// Adds person `i`'s rows of `table` to `q`; returns how many.
fn add_rows(
    q: &mut InsertStatement,
    table: Table,
    pii: &Pii,
    base: DateTime<Utc>,
    i: u64,
) -> anyhow::Result<u64> {
    let pid = profile_id(base, i);
    let t = at(base, i);
    let s = |v: &str| SimpleExpr::from(v.to_string());
    let none = || SimpleExpr::from(Option::<String>::None);
    match table {
        Table::Profiles => {
            q.values([
                s(&pid),
                s(TENANT),
                s(identity_svc::store::ACTIVE),
                none(),
                t.into(),
                t.into(),
            ])?;
            Ok(1)
        }
        Table::Identifiers => {
            let ev = first_event(base, i);
            let rows = identifier_rows(pii, i);
            for r in &rows {
                q.values([
                    r.id.into(),
                    s(TENANT),
                    s(r.kind.as_str()),
                    s(r.namespace),
                    s(&r.hash),
                    r.value.clone().into(),
                    r.sealed.clone().into(),
                    s(&r.masked),
                    s(&pid),
                    s(r.provenance.as_str()),
                    s(&ev),
                    t.into(),
                    t.into(),
                ])?;
            }
            Ok(rows.len() as u64)
        }
        Table::Edges => {
            // As the first resolution wrote them: the first identifier founds the profile, the
            // others of the same event hang off it.
            let ev = first_event(base, i);
            let rows = identifier_rows_ids(i);
            for (k, id) in rows.iter().enumerate() {
                let (from, to, rule) = if k == 0 {
                    (*id, None, LinkRule::NewProfile)
                } else {
                    (rows[0], Some(*id), LinkRule::SameEvent)
                };
                q.values([
                    s(TENANT),
                    from.into(),
                    to.into(),
                    s(&pid),
                    s(rule.as_str()),
                    Some(ev.clone()).into(),
                    t.into(),
                    s("system"),
                    Option::<DateTime<Utc>>::None.into(),
                ])?;
            }
            Ok(rows.len() as u64)
        }
        Table::Timeline => {
            let summary = serde_json::json!({"app_id": OA, "event": "subscribe"}).to_string();
            q.values([
                s(TENANT),
                s(&pid),
                s(&first_event(base, i)),
                s("channel.oa.subscribe"),
                t.into(),
                SimpleExpr::from(summary),
            ])?;
            Ok(1)
        }
    }
}

/// Identifier row ids of person `i` without computing hashes (for the edge ledger).
fn identifier_rows_ids(i: u64) -> Vec<i64> {
    let n = if has_phone(i) { 4 } else { 3 };
    (0..n).map(|slot| (SLOTS * i + slot + 1) as i64).collect()
}

/// Loads `table` for persons `0..n` in one transaction on a connection of its own.
async fn load_table(
    loader: DatabaseConnection,
    table: Table,
    pii: Pii,
    base: DateTime<Utc>,
    n: u64,
) -> anyhow::Result<(Table, u64, Duration)> {
    let start = Instant::now();
    let backend = loader.get_database_backend();
    let txn = loader.begin().await?;
    txn.execute(Statement::from_string(
        backend,
        "SET SESSION unique_checks = 0, foreign_key_checks = 0",
    ))
    .await?;
    let mut rows = 0u64;
    let mut i = 0u64;
    let mut next_report = n / 5;
    while i < n {
        let mut q = insert_for(table);
        let mut in_stmt = 0u64;
        while i < n && in_stmt < ROWS_PER_INSERT - SLOTS {
            in_stmt += add_rows(&mut q, table, &pii, base, i)?;
            i += 1;
        }
        txn.execute(backend.build(&q))
            .await
            .with_context(|| format!("loading {table:?}"))?;
        rows += in_stmt;
        if i >= next_report && i < n {
            eprintln!(
                "  {table:?}: {i}/{n} persons, {rows} rows, {:.0?}",
                start.elapsed()
            );
            next_report += n / 5;
        }
    }
    txn.execute(Statement::from_string(
        backend,
        "SET SESSION unique_checks = 1, foreign_key_checks = 1",
    ))
    .await?;
    txn.commit().await?;
    Ok((table, rows, start.elapsed()))
}

async fn scalar(db: &DatabaseConnection, sql: &str) -> anyhow::Result<String> {
    let row = db
        .query_one(Statement::from_string(db.get_database_backend(), sql))
        .await?
        .context("no row")?;
    // Server variables come back as integers or strings depending on the variable.
    if let Ok(v) = row.try_get_by_index::<i64>(0) {
        return Ok(v.to_string());
    }
    if let Ok(v) = row.try_get_by_index::<u64>(0) {
        return Ok(v.to_string());
    }
    Ok(row.try_get_by_index::<String>(0)?)
}

// ---- events ----

/// Per-run counter making new openids, cookies, unionids and callback times unique.
static SEQ: AtomicU64 = AtomicU64::new(0);

fn next() -> u64 {
    SEQ.fetch_add(1, Ordering::Relaxed)
}

fn session(app: &str, openid: String, unionid: Option<String>) -> Envelope {
    let p = MpSessionStarted {
        app_id: app.into(),
        openid,
        unionid,
    };
    Envelope::of(TENANT, &p).build()
}

fn phone_verified(openid: String, unionid: String, number: String) -> Envelope {
    let p = proto::sdk::MpPhoneVerified {
        app_id: MP.into(),
        openid,
        unionid: Some(unionid),
        phone_e164: number,
        country_code: PHONE_NS.into(),
    };
    Envelope::of(TENANT, &p).build()
}

fn page_view(openid: String, unionid: String, cookie: String) -> Envelope {
    let t = Tracked {
        subject: Subject {
            mp_app_id: Some(MP.into()),
            openid: Some(openid),
            unionid: Some(unionid),
            anonymous_id: Some(cookie),
        },
        kind: TrackKind::PageView,
        name: None,
        page: Some("/pages/product/detail?id=2026".into()),
        content: Some(Content {
            id: "case-study-42".into(),
            tags: vec!["retail".into(), "private-domain".into()],
        }),
        properties: Default::default(),
        event_id: None,
    };
    Envelope::builder(
        TrackKind::PageView.routing_key(),
        TENANT,
        serde_json::json!(t),
    )
    .build()
}

fn oa_scan(openid: String) -> anyhow::Result<Envelope> {
    let ev = ChannelEvent {
        channel: Channel::Oa,
        to_user_name: "gh_bench0001".into(),
        from_user_name: openid,
        create_time: 1_760_000_000 + next() as i64,
        body: EventBody::Scan {
            scene: "campaign_2026_spring".into(),
            ticket: Some("gQH47joAAAAAAAAAASxodHRw".into()),
        },
    };
    let payload = serde_json::to_value(CallbackReceived {
        app_id: OA.into(),
        event: ev.clone(),
    })?;
    Ok(Envelope::builder(ev.event_type(), TENANT, payload)
        .occurred_at(ev.occurred_at())
        .dedupe_key(ev.dedupe_key())
        .build())
}

/// What an event is expected to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// Resolves to an existing profile and attaches this many new identifiers.
    Attach(usize),
    /// Creates a profile.
    Create,
    /// Absorbs one profile into another.
    Merge,
}

/// Labels of the event shapes, for the per-shape rows.
const SHAPES: [&str; 5] = [
    "MP2 login: known unionid + new openid",
    "page view: known openid+unionid + new cookie",
    "OA scan: known openid only",
    "MP login: new openid + new unionid",
    "MP phone: new openid, unionid, phone",
];

struct Job {
    shape: usize,
    expect: Expect,
    env: Envelope,
}

/// Attach-path events for random preloaded persons, cycling through three shapes.
fn attach_jobs(n_profiles: u64, count: u64) -> anyhow::Result<Vec<Job>> {
    let mut jobs = Vec::with_capacity(count as usize);
    for k in 0..count {
        let i = rand::random_range(0..n_profiles);
        let s = next();
        let job = match k % 3 {
            0 => Job {
                shape: 0,
                expect: Expect::Attach(1),
                env: session(MP2, format!("oN{s:026}"), Some(unionid(i))),
            },
            1 => Job {
                shape: 1,
                expect: Expect::Attach(1),
                env: page_view(mp_openid(i), unionid(i), format!("ck-{s:020}")),
            },
            _ => Job {
                shape: 2,
                expect: Expect::Attach(0),
                env: oa_scan(oa_openid(i))?,
            },
        };
        jobs.push(job);
    }
    Ok(jobs)
}

/// Brand-new people: mini-program logins, every fourth with a verified phone.
fn create_jobs(count: u64) -> Vec<Job> {
    (0..count)
        .map(|k| {
            let s = next();
            let (openid, union) = (format!("oC{s:026}"), format!("oV{s:026}"));
            if k % 4 == 3 {
                Job {
                    shape: 4,
                    expect: Expect::Create,
                    env: phone_verified(openid, union, format!("+86137{s:08}")),
                }
            } else {
                Job {
                    shape: 3,
                    expect: Expect::Create,
                    env: session(MP, openid, Some(union)),
                }
            }
        })
        .collect()
}

#[derive(Default)]
struct Sample {
    by_shape: Vec<(usize, Duration)>,
    retried: u64,
    unexpected: u64,
    failed: u64,
}

/// Resolves `jobs` with `concurrency` workers; returns the samples and the wall time.
async fn drive(
    resolver: &Resolver,
    jobs: Vec<Job>,
    concurrency: usize,
) -> anyhow::Result<(Sample, Duration)> {
    let jobs = Arc::new(jobs);
    let cursor = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (jobs, cursor, resolver) = (jobs.clone(), cursor.clone(), resolver.clone());
        tasks.push(tokio::spawn(async move {
            let mut s = Sample::default();
            loop {
                let k = cursor.fetch_add(1, Ordering::Relaxed);
                let Some(job) = jobs.get(k) else { break };
                let t = Instant::now();
                let r = resolver.resolve(&job.env).await;
                s.by_shape.push((job.shape, t.elapsed()));
                match r {
                    Ok(Outcome::Resolved(res)) => {
                        if res.attempts > 1 {
                            s.retried += 1;
                        }
                        let ok = match job.expect {
                            Expect::Attach(n) => {
                                !res.created && res.absorbed.is_empty() && res.attached == n
                            }
                            Expect::Create => res.created,
                            Expect::Merge => res.absorbed.len() == 1,
                        };
                        if !ok {
                            s.unexpected += 1;
                        }
                    }
                    Ok(_) => s.unexpected += 1,
                    Err(e) => {
                        if s.failed == 0 {
                            eprintln!("  resolve failed: {e}");
                        }
                        s.failed += 1;
                    }
                }
            }
            s
        }));
    }
    let mut all = Sample::default();
    for t in tasks {
        let s = t.await?;
        all.by_shape.extend(s.by_shape);
        all.retried += s.retried;
        all.unexpected += s.unexpected;
        all.failed += s.failed;
    }
    Ok((all, start.elapsed()))
}

#[derive(sea_orm_migration::prelude::DeriveIden)]
enum BenchCommitProbe {
    Table,
    Id,
    At,
}

/// The floor under every resolution: one durable transaction (a 1-row INSERT and COMMIT, so one
/// redo-log flush) on the same server, one at a time.
async fn commit_floor(db: &DatabaseConnection, n: usize) -> anyhow::Result<(Sample, Duration)> {
    use sea_orm::sea_query::{ColumnDef, Table as Ddl};
    let backend = db.get_database_backend();
    db.execute(
        backend.build(
            Ddl::create()
                .table(BenchCommitProbe::Table)
                .if_not_exists()
                .col(
                    ColumnDef::new(BenchCommitProbe::Id)
                        .big_integer()
                        .not_null()
                        .auto_increment()
                        .primary_key(),
                )
                .col(
                    ColumnDef::new(BenchCommitProbe::At)
                        .timestamp_with_time_zone()
                        .not_null(),
                ),
        ),
    )
    .await?;
    let mut s = Sample::default();
    let start = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        let txn = db.begin().await?;
        let mut q = Query::insert();
        q.into_table(BenchCommitProbe::Table)
            .columns([BenchCommitProbe::At])
            .values([Utc::now().into()])?;
        txn.execute(backend.build(&q)).await?;
        txn.commit().await?;
        s.by_shape.push((0, t.elapsed()));
    }
    Ok((s, start.elapsed()))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

struct Report {
    rows: Vec<String>,
}

impl Report {
    fn header() -> String {
        format!(
            "{:<48} {:>4} {:>7} {:>9} {:>8} {:>8} {:>8} {:>8} {:>7} {:>6}",
            "run",
            "conc",
            "events",
            "events/s",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "max ms",
            "retried",
            "wrong"
        )
    }

    fn add(&mut self, name: &str, concurrency: usize, s: &Sample, wall: Duration) {
        let mut all: Vec<Duration> = s.by_shape.iter().map(|(_, d)| *d).collect();
        all.sort();
        let rate = all.len() as f64 / wall.as_secs_f64();
        let first = self.rows.len();
        self.rows.push(format!(
            "{:<48} {:>4} {:>7} {:>9.0} {:>8} {:>8} {:>8} {:>8} {:>7} {:>6}",
            name,
            concurrency,
            all.len(),
            rate,
            ms(percentile(&all, 0.5)),
            ms(percentile(&all, 0.9)),
            ms(percentile(&all, 0.99)),
            ms(all.last().copied().unwrap_or_default()),
            s.retried,
            s.unexpected + s.failed,
        ));
        let shapes: std::collections::BTreeSet<usize> =
            s.by_shape.iter().map(|(k, _)| *k).collect();
        if shapes.len() > 1 {
            for shape in shapes {
                let mut d: Vec<Duration> = s
                    .by_shape
                    .iter()
                    .filter(|(k, _)| *k == shape)
                    .map(|(_, d)| *d)
                    .collect();
                d.sort();
                self.rows.push(format!(
                    "  {:<46} {:>4} {:>7} {:>9} {:>8} {:>8} {:>8} {:>8}",
                    SHAPES[shape],
                    "",
                    d.len(),
                    "",
                    ms(percentile(&d, 0.5)),
                    ms(percentile(&d, 0.9)),
                    ms(percentile(&d, 0.99)),
                    ms(d.last().copied().unwrap_or_default()),
                ));
            }
        }
        for r in &self.rows[first..] {
            println!("{r}");
        }
    }
}

async fn bench(url: &str, n_profiles: u64, n_events: u64) -> anyhow::Result<()> {
    let mut cfg = DbConfig::new(url.to_string());
    cfg.max_connections = 16;
    cfg.connect_timeout_ms = 30_000;
    let db = platform::db::connect(&cfg, true).await?;
    identity_svc::store::Migrator::up(&db, None).await?;
    let pool = scalar(&db, "SELECT @@innodb_buffer_pool_size").await?;
    let pool_mb = pool.parse::<f64>().unwrap_or(0.0) / 1_048_576.0;
    let version = scalar(&db, "SELECT VERSION()").await?;
    let flush = scalar(&db, "SELECT @@innodb_flush_log_at_trx_commit").await?;
    println!(
        "server {version}: innodb_buffer_pool_size {pool_mb:.0} MiB, \
         innodb_flush_log_at_trx_commit {flush}"
    );

    // ---- preload ----
    let pii = Pii::from_base64(&Pii::generate_base64())?;
    let base = epoch(n_profiles);
    let mut load_cfg = cfg.clone();
    load_cfg.max_connections = 4;
    let loader = platform::db::connect(&load_cfg, false).await?;
    println!("loading {n_profiles} profiles ...");
    let start = Instant::now();
    let loads = [
        Table::Profiles,
        Table::Identifiers,
        Table::Edges,
        Table::Timeline,
    ]
    .map(|t| tokio::spawn(load_table(loader.clone(), t, pii.clone(), base, n_profiles)));
    let mut loaded = Vec::new();
    for l in loads {
        loaded.push(l.await??);
    }
    let load_time = start.elapsed();
    let _ = loader.close().await;
    let total_rows: u64 = loaded.iter().map(|(_, r, _)| r).sum();
    for (t, rows, took) in &loaded {
        println!(
            "  {:<12} {rows:>9} rows in {:>6.1} s",
            format!("{t:?}"),
            took.as_secs_f64()
        );
    }
    println!(
        "  load: {total_rows} rows in {:.1} s ({:.0} rows/s, {:.0} profiles/s), tables in parallel",
        load_time.as_secs_f64(),
        total_rows as f64 / load_time.as_secs_f64(),
        n_profiles as f64 / load_time.as_secs_f64(),
    );
    let counted: i64 = scalar(&db, "SELECT COUNT(*) FROM identifiers")
        .await?
        .parse()?;
    let profiles: i64 = scalar(&db, "SELECT COUNT(*) FROM profiles")
        .await?
        .parse()?;
    println!("  check: {profiles} profiles, {counted} identifiers");
    if profiles as u64 != n_profiles {
        bail!("expected {n_profiles} profiles, found {profiles}");
    }
    db.execute(Statement::from_string(
        db.get_database_backend(),
        "ANALYZE TABLE profiles, identifiers, identity_edges, timeline",
    ))
    .await?;
    let data_mb: f64 = scalar(
        &db,
        "SELECT CAST(SUM(data_length + index_length) AS SIGNED) FROM information_schema.tables \
         WHERE table_schema = DATABASE()",
    )
    .await?
    .parse::<f64>()
    .unwrap_or(0.0)
        / 1_048_576.0;
    println!("  on disk (InnoDB estimate): {data_mb:.0} MiB");

    // ---- resolution ----
    let resolver = Resolver::new(
        db.clone(),
        Some(pii),
        Policy::from_config(&ResolutionConfig::default()),
        8,
    );
    // A short untimed warm-up so every run starts with open connections.
    drive(&resolver, attach_jobs(n_profiles, 200)?, 8).await?;

    println!();
    println!("{}", Report::header());
    let mut report = Report { rows: Vec::new() };
    let (s, wall) = commit_floor(&db, 1_000).await?;
    report.add("floor: 1-row INSERT + COMMIT (no resolution)", 1, &s, wall);
    for concurrency in [1, 8] {
        let (s, wall) = drive(&resolver, attach_jobs(n_profiles, n_events)?, concurrency).await?;
        report.add("attach (known person, mixed shapes)", concurrency, &s, wall);
    }
    let n_create = (n_events / 4).max(1);
    for concurrency in [1, 8] {
        let (s, wall) = drive(&resolver, create_jobs(n_create), concurrency).await?;
        report.add("create (new person)", concurrency, &s, wall);
    }
    // Merge sample: people known only by an MP3 openid (created untimed) log in again with the
    // unionid of a preloaded person; the unionid rule merges the two profiles.
    let n_merge = (n_events / 20).clamp(1, 1_000);
    let seeds: Vec<(String, u64)> = (0..n_merge)
        .map(|_| {
            (
                format!("oW{:026}", next()),
                rand::random_range(0..n_profiles),
            )
        })
        .collect();
    let setup: Vec<Job> = seeds
        .iter()
        .map(|(o, _)| Job {
            shape: 3,
            expect: Expect::Create,
            env: session(MP3, o.clone(), None),
        })
        .collect();
    drive(&resolver, setup, 8).await?;
    let merges: Vec<Job> = seeds
        .iter()
        .map(|(o, i)| Job {
            shape: 0,
            expect: Expect::Merge,
            env: session(MP3, o.clone(), Some(unionid(*i))),
        })
        .collect();
    let (s, wall) = drive(&resolver, merges, 1).await?;
    report.add("merge (unionid links two profiles)", 1, &s, wall);

    println!();
    println!("summary");
    println!(
        "{n_profiles} profiles / {counted} identifiers, buffer pool {pool_mb:.0} MiB, \
         load {:.1} s",
        load_time.as_secs_f64()
    );
    println!("{}", Report::header());
    for r in &report.rows {
        println!("{r}");
    }
    let _ = db.close().await;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let n_profiles = env_u64("BENCH_PROFILES", 1_000_000).max(1);
    let n_events = env_u64("BENCH_EVENTS", 20_000).max(3);
    let keep = std::env::var("BENCH_KEEP_DB").is_ok_and(|v| v == "1");
    let name = unique("scrm_bench_identity");
    let url = format!("{}/{name}", mysql_url());
    println!("database {name}");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let result = bench(&url, n_profiles, n_events).await;
        if keep {
            println!("kept database {name} (BENCH_KEEP_DB=1)");
        } else if let Err(e) = platform::db::drop_mysql_database(&url).await {
            eprintln!("could not drop {name}: {e}");
        }
        result
    })
}
