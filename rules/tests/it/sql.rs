//! The rules SQL compiler against the in-memory evaluator, on MariaDB and SQLite: random profiles
//! (every fact kind, multi-valued and mistyped properties, non-ASCII and LIKE-special strings,
//! future-dated buckets) in two tenants with overlapping profile ids, and random condition trees
//! of every leaf kind and operator, compiled for fresh and stale rolling counters and for
//! restricted universes. The compiled query, its count and its sample must select exactly the
//! profiles the evaluator matches.

#[path = "sql/gen.rs"]
mod gen;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use chrono::{Days, Duration};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use rules::schema::SchemaStatement;
use rules::sql::{CompileCtx, IdRange, Restrict};
use rules::{Condition, ConditionDoc, EvalCtx, Limits, ProfileFacts};
use sea_orm::{ConnectionTrait, DatabaseConnection};
use test_support::db::{Backend, TestDb};

use gen::{case, catalogue, now, population, shift, today, Case, TENANTS};

const CASES: u32 = 1024;

struct World {
    populations: Vec<Vec<ProfileFacts>>,
    rules: BTreeMap<String, Condition>,
    /// Cases that selected some but not all profiles of their universe (the rest prove little).
    split: Arc<AtomicUsize>,
}

async fn exec<S: sea_orm::StatementBuilder>(
    db: &DatabaseConnection,
    stmt: &S,
) -> Result<(), String> {
    let b = db.get_database_backend();
    db.execute(b.build(stmt))
        .await
        .map(drop)
        .map_err(|e| format!("{e}: {}", b.build(stmt)))
}

async fn create_schema(db: &DatabaseConnection) -> Result<(), String> {
    for st in rules::schema::statements() {
        match st {
            SchemaStatement::Table(t) => exec(db, &t).await?,
            SchemaStatement::Index(i) => exec(db, &i).await?,
        }
    }
    Ok(())
}

async fn load(db: &DatabaseConnection, world: &World) -> Result<(), String> {
    create_schema(db).await?;
    for ((tenant, _), pop) in TENANTS.iter().zip(&world.populations) {
        for ins in rules::schema::insert_statements(tenant, pop, 1, now(), Some(today())) {
            exec(db, &ins).await?;
        }
    }
    Ok(())
}

async fn ids(
    db: &DatabaseConnection,
    stmt: &sea_orm::sea_query::SelectStatement,
) -> Result<Vec<String>, String> {
    let b = db.get_database_backend();
    let rows = db
        .query_all(b.build(stmt))
        .await
        .map_err(|e| format!("{e}\nSQL: {}", b.build(stmt)))?;
    rows.iter()
        .map(|r| {
            // Binary columns: MySQL flags them binary, so they are read as bytes.
            let raw: Vec<u8> = r.try_get_by_index(0).map_err(|e| e.to_string())?;
            String::from_utf8(raw).map_err(|e| e.to_string())
        })
        .collect()
}

fn contexts(case: &Case, world: &World) -> (EvalCtx, CompileCtx) {
    let at = EvalCtx {
        now: now() + Duration::days(case.day_offset),
        today: shift(today(), case.day_offset),
    };
    let mut ids: Vec<&str> = world.populations[case.tenant]
        .iter()
        .map(|p| p.profile_id.as_str())
        .collect();
    ids.sort_unstable();
    let (a, b) = (case.bounds.0.get(&ids), case.bounds.1.get(&ids));
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    let restrict = match case.restrict {
        0 => Restrict::All,
        1 => Restrict::Range(IdRange {
            after: Some(lo.to_string()),
            until: Some(hi.to_string()),
        }),
        2 => Restrict::Ids(
            case.ids
                .iter()
                .filter_map(|i| ids.get(*i).map(|s| s.to_string()))
                .chain(["not-a-profile".to_string()])
                .collect(),
        ),
        _ => Restrict::Range(IdRange {
            after: None,
            until: Some(hi.to_string()),
        }),
    };
    let mut c = CompileCtx::new(TENANTS[case.tenant].0, &at);
    // The counters were rolled to `today()`; on other days they are stale.
    c.rolling_as_of = case.rolling_fresh.then(today);
    c.restrict = restrict;
    (at, c)
}

fn allowed(r: &Restrict, id: &str) -> bool {
    match r {
        Restrict::All => true,
        Restrict::Range(IdRange { after, until }) => {
            after.as_deref().is_none_or(|a| id > a) && until.as_deref().is_none_or(|u| id <= u)
        }
        Restrict::Ids(ids) => ids.iter().any(|i| i == id),
    }
}

async fn check(db: &DatabaseConnection, case: &Case, world: &World) -> Result<(), TestCaseError> {
    let limits = Limits::default();
    let doc = ConditionDoc::new(case.tree.clone());
    let json = serde_json::to_value(&doc).unwrap();
    let parsed = rules::parse(&json, &limits, &world.rules)
        .map_err(|e| TestCaseError::fail(format!("generated tree rejected: {e:?}\n{json}")))?;
    prop_assert_eq!(&parsed, &doc, "JSON round trip");
    let expanded = rules::expand(&parsed.root, &limits, &world.rules)
        .map_err(|e| TestCaseError::fail(format!("expand failed: {e:?}\n{json}")))?;
    let (at, cctx) = contexts(case, world);
    let expected: BTreeSet<String> = world.populations[case.tenant]
        .iter()
        .filter(|p| allowed(&cctx.restrict, &p.profile_id))
        .filter(|p| rules::evaluate(&expanded, &gen::valued_at(p, at.now), &at))
        .map(|p| p.profile_id.clone())
        .collect();
    let universe = world.populations[case.tenant]
        .iter()
        .filter(|p| allowed(&cctx.restrict, &p.profile_id))
        .count();
    if !expected.is_empty() && expected.len() < universe {
        world.split.fetch_add(1, Ordering::Relaxed);
    }
    let compiled = rules::sql::compile(&expanded, &cctx);
    let sql = db.get_database_backend().build(&compiled).to_string();
    let fail = |what: &str, detail: String| {
        TestCaseError::fail(format!(
            "{what}\ntree: {json}\ntoday {} rolling {:?} restrict {:?}\nSQL: {sql}\n{detail}",
            cctx.today, cctx.rolling_as_of, cctx.restrict
        ))
    };
    let got_rows = ids(db, &compiled)
        .await
        .map_err(|e| fail("query failed", e))?;
    let got: BTreeSet<String> = got_rows.iter().cloned().collect();
    if got.len() != got_rows.len() {
        return Err(fail("duplicate profile ids", format!("{got_rows:?}")));
    }
    if got != expected {
        let missing: Vec<_> = expected.difference(&got).collect();
        let extra: Vec<_> = got.difference(&expected).collect();
        return Err(fail(
            "SQL and evaluator disagree",
            format!("only evaluator: {missing:?}\nonly SQL: {extra:?}"),
        ));
    }
    let b = db.get_database_backend();
    let count = rules::sql::count_statement(&compiled);
    let row = db
        .query_one(b.build(&count))
        .await
        .map_err(|e| fail("count failed", e.to_string()))?
        .ok_or_else(|| fail("count returned no row", String::new()))?;
    let n: i64 = row
        .try_get_by_index(0)
        .map_err(|e| fail("count type", e.to_string()))?;
    prop_assert_eq!(n as usize, expected.len(), "count of {}", json);
    let by_complement = rules::sql::count_query(&expanded, &cctx);
    let row = db
        .query_one(b.build(&by_complement))
        .await
        .map_err(|e| fail("complement count failed", e.to_string()))?
        .ok_or_else(|| fail("complement count returned no row", String::new()))?;
    let n: i64 = row
        .try_get_by_index(0)
        .map_err(|e| fail("complement count type", e.to_string()))?;
    prop_assert_eq!(n as usize, expected.len(), "complement count of {}", json);
    let sample = ids(db, &rules::sql::sample_statement(&compiled, 7))
        .await
        .map_err(|e| fail("sample failed", e))?;
    let first: Vec<String> = expected.iter().take(7).cloned().collect();
    prop_assert_eq!(sample, first, "sample of {}", json);
    Ok(())
}

async fn compiled_sql_selects_what_the_evaluator_matches(backend: Backend) {
    let t = TestDb::new(backend).await;
    let outcome = run_cases(t.conn.clone()).await;
    t.cleanup().await;
    if let Err(e) = outcome {
        panic!("{e}");
    }
}

async fn run_cases(db: DatabaseConnection) -> Result<(), String> {
    let started = std::time::Instant::now();
    let mut data_rng = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]),
    );
    let world = World {
        populations: TENANTS
            .iter()
            .map(|(_, n)| population(&mut data_rng, *n))
            .collect(),
        rules: catalogue(),
        split: Arc::new(AtomicUsize::new(0)),
    };
    load(&db, &world).await?;
    let split = world.split.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        let handle = tokio::runtime::Handle::current();
        let config = Config {
            cases: CASES,
            failure_persistence: None,
            max_shrink_iters: 500,
            ..Config::default()
        };
        let mut runner =
            TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &[42; 32]));
        runner
            .run(&case(), |c| handle.block_on(check(&db, &c, &world)))
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())?;
    outcome?;
    let split = split.load(Ordering::Relaxed);
    eprintln!(
        "{CASES} cases in {:?}, {split} selecting some but not all",
        started.elapsed()
    );
    if split < CASES as usize / 3 {
        return Err(format!("only {split} of {CASES} cases split the profiles"));
    }
    Ok(())
}

/// The bucket upsert tagging-svc uses on every event, and deleting a profile's facts.
async fn buckets_upsert_and_profiles_delete(backend: Backend) {
    let t = TestDb::new(backend).await;
    let outcome = upsert_and_delete(&t.conn).await;
    t.cleanup().await;
    if let Err(e) = outcome {
        panic!("{e}");
    }
}

/// An error (not a panic, so the database is still dropped) when `got` is not `want`.
fn same(got: Vec<String>, want: &[&str]) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("got {got:?}, want {want:?}"))
    }
}

async fn upsert_and_delete(db: &DatabaseConnection) -> Result<(), String> {
    create_schema(db).await?;
    let tenant = "t-rules-bump";
    let profiles = [ProfileFacts::new("p-1"), ProfileFacts::new("p-2")];
    for ins in rules::schema::insert_statements(tenant, &profiles, 1, now(), None) {
        exec(db, &ins).await?;
    }
    let metric = rules::event_metric("track.page_view");
    for by in [1, 2] {
        exec(
            db,
            &rules::schema::bump_daily(tenant, "p-1", &metric, today(), by),
        )
        .await?;
    }
    let yesterday = today() - Days::new(1);
    exec(
        db,
        &rules::schema::bump_daily(tenant, "p-2", &metric, yesterday, 3),
    )
    .await?;
    let limits = Limits::default();
    let at = EvalCtx {
        now: now(),
        today: today(),
    };
    let leaf = |v: serde_json::Value| {
        let doc = serde_json::json!({"version": 1, "root": v});
        let d = rules::parse(&doc, &limits, &rules::NoRules).map_err(|e| format!("{e:?}"))?;
        rules::expand(&d.root, &limits, &rules::NoRules).map_err(|e| format!("{e:?}"))
    };
    let three_today = leaf(
        serde_json::json!({"type": "behaviour", "event": "track.page_view",
        "count": {"op": "eq", "value": 3}, "window": {"type": "last", "days": 1}}),
    )?;
    let everyone = leaf(serde_json::json!({"type": "not", "child":
        {"type": "tag", "op": "has", "tags": ["nobody"]}}))?;
    let ctx = CompileCtx::new(tenant, &at);
    let compile = |c: &rules::Expanded| rules::sql::compile(c, &ctx);
    same(ids(db, &compile(&three_today)).await?, &["p-1"])?;
    let mut all = ids(db, &compile(&everyone)).await?;
    all.sort();
    same(all, &["p-1", "p-2"])?;
    for del in rules::schema::delete_profile_statements(tenant, "p-1") {
        exec(db, &del).await?;
    }
    same(ids(db, &compile(&everyone)).await?, &["p-2"])?;
    same(ids(db, &compile(&three_today)).await?, &[])?;
    for d in &rules::schema::drop_statements() {
        exec(db, d).await?;
    }
    Ok(())
}

test_support::on_both_backends!(
    compiled_sql_selects_what_the_evaluator_matches,
    buckets_upsert_and_profiles_delete,
);
