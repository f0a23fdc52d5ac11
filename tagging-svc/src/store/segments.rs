//! Conditions over every profile of a tenant, through the `rules` SQL compiler on the facts
//! projection: a preview (count and a sample, before a rule is saved), the matching profiles of
//! an id range (backfill batches), and the pages of a streamed export.

use std::collections::{BTreeMap, BTreeSet};

use rules::schema::{FactsCol as C, FactsTable as T};
use rules::sql::{self, CompileCtx, IdRange, Restrict};
use rules::Expanded;
use sea_orm::sea_query::{Expr, Order, Query, SelectStatement};
use sea_orm::{
    ConnectionTrait, DatabaseBackend, DatabaseConnection, DatabaseTransaction, DbErr, Statement,
    TransactionTrait,
};
use serde::Serialize;

use crate::domain::At;

/// Profile ids a dense preview's sample looks at first.
const SAMPLE_WINDOW: u64 = 2_000;

/// Fields shown with each profile of a preview sample.
const SAMPLE_FIELDS: [&str; 3] = ["contact.name", "contact.nickname", "contact.city"];

fn backend(conn: &impl ConnectionTrait) -> sql::Backend {
    match conn.get_database_backend() {
        DatabaseBackend::MySql => sql::Backend::MySql,
        _ => sql::Backend::Sqlite,
    }
}

pub(crate) async fn run<Db: ConnectionTrait>(
    conn: &Db,
    stmt: &SelectStatement,
) -> Result<Vec<sea_orm::QueryResult>, DbErr> {
    let (q, values) = sql::build(stmt, backend(conn));
    conn.query_all(Statement::from_sql_and_values(
        conn.get_database_backend(),
        q,
        values,
    ))
    .await
}

fn id_of(r: &sea_orm::QueryResult) -> Result<String, DbErr> {
    let raw: Vec<u8> = r.try_get_by_index(0)?;
    String::from_utf8(raw).map_err(|e| DbErr::Custom(format!("profile_id: {e}")))
}

/// Set operations over large segments need room for their temporary tables: MySQL's default
/// 16 MiB sends a few hundred thousand profile ids to disk, many times slower.
const TMP_TABLE_BYTES: u64 = 256 << 20;

/// A read transaction for bulk segment queries (preview, backfill batches, export pages): on
/// MySQL / MariaDB its session may keep set-operation temporaries of [`TMP_TABLE_BYTES`] in memory.
pub async fn reader(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    let txn = db.begin().await?;
    if txn.get_database_backend() == DatabaseBackend::MySql {
        txn.execute(Statement::from_string(
            DatabaseBackend::MySql,
            format!(
                "SET SESSION tmp_table_size = {TMP_TABLE_BYTES}, max_heap_table_size = {TMP_TABLE_BYTES}"
            ),
        ))
        .await?;
    }
    Ok(txn)
}

/// How a condition is compiled now for `tenant` (rolling counters when current).
pub async fn ctx<Db: ConnectionTrait>(
    conn: &Db,
    tenant: &str,
    at: &At,
    restrict: Restrict,
) -> Result<CompileCtx, DbErr> {
    Ok(CompileCtx {
        rolling_as_of: facts::rolled_to(conn, tenant).await?,
        restrict,
        ..CompileCtx::new(tenant, &at.eval())
    })
}

/// A profile of a preview sample.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SampleProfile {
    pub profile_id: String,
    pub fields: BTreeMap<String, serde_json::Value>,
}

/// How many profiles match, and the first `limit` of them.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Preview {
    pub count: u64,
    pub sample: Vec<SampleProfile>,
    /// Milliseconds the two queries took.
    pub took_ms: u64,
}

/// Counts the profiles matching `cond` and samples `limit` of them with a few fields.
pub async fn preview<Db: ConnectionTrait>(
    conn: &Db,
    tenant: &str,
    cond: &Expanded,
    at: &At,
    limit: u64,
) -> Result<Preview, DbErr> {
    let started = std::time::Instant::now();
    let cctx = ctx(conn, tenant, at, Restrict::All).await?;
    let compiled = sql::compile(cond, &cctx);
    let (count, ids) = if limit > 0 && !sql::is_negative(cond, &cctx) {
        // A positive condition: its count and its first profiles from one evaluation.
        let rows = run(conn, &sql::sample_with_count(&compiled, limit)).await?;
        let count = match rows.first() {
            Some(r) => r.try_get::<i64>("", sql::SAMPLE_TOTAL)?,
            None => 0,
        };
        let ids = rows.iter().map(id_of).collect::<Result<Vec<_>, _>>()?;
        (count, ids)
    } else {
        // "Everyone except a broad set" is counted by subtraction (`rules::sql::count_query`)
        // and sampled a window of ids at a time, as a saved segment's members are: its first
        // profiles are among the first ids, and a window keeps the set difference small.
        let count = run(conn, &sql::count_query(cond, &cctx)).await?;
        let count: i64 = count
            .first()
            .map(|r| r.try_get_by_index(0))
            .transpose()?
            .unwrap_or(0);
        let ids = if limit == 0 {
            Vec::new()
        } else {
            crate::store::saved::ids_in_windows(conn, tenant, cond, at, None, limit, SAMPLE_WINDOW)
                .await?
                .0
        };
        (count, ids)
    };
    let fields = fields_of(conn, tenant, &ids, &SAMPLE_FIELDS).await?;
    Ok(Preview {
        count: count.max(0) as u64,
        sample: ids
            .into_iter()
            .map(|id| SampleProfile {
                fields: fields.get(&id).cloned().unwrap_or_default(),
                profile_id: id,
            })
            .collect(),
        took_ms: started.elapsed().as_millis() as u64,
    })
}

/// The next `limit` profile ids of the tenant after `after`, in byte order.
pub async fn next_ids<Db: ConnectionTrait>(
    conn: &Db,
    tenant: &str,
    after: Option<&str>,
    limit: u64,
) -> Result<Vec<String>, DbErr> {
    let mut q = Query::select();
    q.column(C::ProfileId)
        .from(T::FactsProfile)
        .and_where(Expr::col(C::TenantId).eq(tenant))
        .order_by(C::ProfileId, Order::Asc)
        .limit(limit);
    if let Some(a) = after {
        q.and_where(Expr::col(C::ProfileId).gt(a));
    }
    run(conn, &q).await?.iter().map(id_of).collect()
}

/// Is `profile` in the tenant's projection (a profile tagging has heard of, for this tenant)?
pub async fn has_profile<Db: ConnectionTrait>(
    conn: &Db,
    tenant: &str,
    profile: &str,
) -> Result<bool, DbErr> {
    let q = Query::select()
        .column(C::ProfileId)
        .from(T::FactsProfile)
        .and_where(Expr::col(C::TenantId).eq(tenant))
        .and_where(Expr::col(C::ProfileId).eq(profile))
        .limit(1)
        .to_owned();
    Ok(!run(conn, &q).await?.is_empty())
}

/// Profiles of the tenant.
pub async fn profile_count<Db: ConnectionTrait>(conn: &Db, tenant: &str) -> Result<u64, DbErr> {
    let q = Query::select()
        .expr(Expr::col(C::ProfileId).count())
        .from(T::FactsProfile)
        .and_where(Expr::col(C::TenantId).eq(tenant))
        .to_owned();
    let n: i64 = run(conn, &q)
        .await?
        .first()
        .map(|r| r.try_get_by_index(0))
        .transpose()?
        .unwrap_or(0);
    Ok(n.max(0) as u64)
}

/// The profiles `after < id <= until` that match `cond`.
pub async fn matching<Db: ConnectionTrait>(
    conn: &Db,
    tenant: &str,
    cond: &Expanded,
    at: &At,
    after: Option<&str>,
    until: &str,
) -> Result<BTreeSet<String>, DbErr> {
    let range = Restrict::Range(IdRange {
        after: after.map(str::to_string),
        until: Some(until.to_string()),
    });
    let compiled = sql::compile(cond, &ctx(conn, tenant, at, range).await?);
    run(conn, &compiled).await?.iter().map(id_of).collect()
}

/// A tag a profile carries, as an export names it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TagRef {
    pub id: String,
    pub name: String,
}

/// The tags each of `ids` carries now (the facts projection's tag set), by name within each.
pub async fn tags_of<Db: ConnectionTrait>(
    conn: &Db,
    tenant: &str,
    ids: &[String],
) -> Result<BTreeMap<String, Vec<TagRef>>, DbErr> {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

    use crate::store::entities::tag;

    let mut held: BTreeMap<String, Vec<String>> = BTreeMap::new();
    if ids.is_empty() {
        return Ok(BTreeMap::new());
    }
    let q = Query::select()
        .columns([C::ProfileId, C::TagId])
        .from(T::FactsTag)
        .and_where(Expr::col(C::TenantId).eq(tenant))
        .and_where(Expr::col(C::ProfileId).is_in(ids.iter().cloned()))
        .to_owned();
    for r in run(conn, &q).await? {
        let profile = id_of(&r)?;
        let raw: Vec<u8> = r.try_get_by_index(1)?;
        held.entry(profile)
            .or_default()
            .push(String::from_utf8_lossy(&raw).into_owned());
    }
    let wanted: BTreeSet<&String> = held.values().flatten().collect();
    let names: BTreeMap<String, String> = if wanted.is_empty() {
        BTreeMap::new()
    } else {
        tag::Entity::find()
            .filter(tag::Column::TenantId.eq(tenant))
            .filter(tag::Column::Id.is_in(wanted.into_iter().cloned()))
            .all(conn)
            .await?
            .into_iter()
            .map(|t| (t.id, t.name))
            .collect()
    };
    Ok(held
        .into_iter()
        .map(|(profile, tag_ids)| {
            let mut tags: Vec<TagRef> = tag_ids
                .into_iter()
                .filter_map(|id| {
                    let name = names.get(&id)?.clone();
                    Some(TagRef { id, name })
                })
                .collect();
            tags.sort_by(|a, b| (&a.name, &a.id).cmp(&(&b.name, &b.id)));
            (profile, tags)
        })
        .collect())
}

/// The values of `keys` of each of `ids` (first value of each key; arrays joined).
pub async fn fields_of<Db: ConnectionTrait>(
    conn: &Db,
    tenant: &str,
    ids: &[String],
    keys: &[&str],
) -> Result<BTreeMap<String, BTreeMap<String, serde_json::Value>>, DbErr> {
    let mut out: BTreeMap<String, BTreeMap<String, serde_json::Value>> = BTreeMap::new();
    if ids.is_empty() || keys.is_empty() {
        return Ok(out);
    }
    let q = Query::select()
        .columns([C::ProfileId, C::Pkey, C::Vtype, C::S, C::N])
        .from(T::FactsProperty)
        .and_where(Expr::col(C::TenantId).eq(tenant))
        .and_where(Expr::col(C::ProfileId).is_in(ids.iter().cloned()))
        .and_where(Expr::col(C::Pkey).is_in(keys.iter().map(|k| k.to_string())))
        .order_by(C::Ord, Order::Asc)
        .to_owned();
    for r in run(conn, &q).await? {
        let text = |c: &str| -> Result<Option<String>, DbErr> {
            let raw: Option<Vec<u8>> = r.try_get("", c)?;
            Ok(raw.map(|b| String::from_utf8_lossy(&b).into_owned()))
        };
        let id = text("profile_id")?.unwrap_or_default();
        let key = text("pkey")?.unwrap_or_default();
        let vtype = text("vtype")?.unwrap_or_default();
        let n: Option<f64> = r.try_get("", "n")?;
        let v = match (vtype.as_str(), text("s")?, n) {
            ("b", _, Some(n)) => serde_json::json!(n != 0.0),
            ("n", _, Some(n)) => serde_json::json!(n),
            (_, Some(s), _) => serde_json::json!(s),
            _ => continue,
        };
        let slot = out.entry(id).or_default();
        match slot.get_mut(&key) {
            None => {
                slot.insert(key, v);
            }
            Some(existing) => {
                let joined = format!(
                    "{}; {}",
                    existing
                        .as_str()
                        .map_or(existing.to_string(), str::to_string),
                    v.as_str().map_or(v.to_string(), str::to_string)
                );
                *existing = serde_json::json!(joined);
            }
        }
    }
    Ok(out)
}
