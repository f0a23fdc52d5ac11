//! Writing the projection: a profile's state (replacing its properties and relationships when a
//! newer `profile.updated` version arrives), behaviour events (raw row, daily buckets, rolling
//! counters, activity by hour), when each profile was first seen, tags, a lead's scores and
//! stage, and moving facts between profiles on merges and un-merges.

use std::collections::BTreeSet;

use rules::schema::{FactsCol as C, FactsTable as T};
use rules::FactValue;
use sea_orm::sea_query::{Alias, Expr, Query, SimpleExpr};
use sea_orm::{ConnectionTrait, DbErr, SqlErr};

use super::{exec, rows, text};

/// Rows per multi-row `INSERT`.
const ROWS_PER_INSERT: usize = 200;

mod activity;
mod events;
mod first_seen;
mod lead;
mod moves;
mod profiles;
mod tags;

pub use activity::bump_tenant_activity;
pub use events::*;
pub use first_seen::*;
pub use lead::*;
pub use moves::*;
pub use profiles::*;
pub use tags::*;

fn s(v: &str) -> SimpleExpr {
    Expr::val(v.to_string()).into()
}

fn is_duplicate(e: &DbErr) -> bool {
    matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)))
}

async fn insert_rows<Db: ConnectionTrait>(
    conn: &Db,
    table: T,
    cols: &[C],
    rows: Vec<Vec<SimpleExpr>>,
) -> Result<(), DbErr> {
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let mut q = Query::insert();
        q.into_table(table).columns(cols.iter().copied());
        for r in chunk {
            q.values(r.iter().cloned())
                .map_err(|e| DbErr::Custom(e.to_string()))?;
        }
        exec(conn, &q).await?;
    }
    Ok(())
}

/// The stored version of a profile, `None` when it is not in the projection.
async fn version<Db: ConnectionTrait>(
    conn: &Db,
    tenant: &str,
    profile: &str,
) -> Result<Option<i64>, DbErr> {
    let q = Query::select()
        .column(C::Version)
        .from(T::FactsProfile)
        .and_where(Expr::col(C::TenantId).eq(tenant))
        .and_where(Expr::col(C::ProfileId).eq(profile))
        .to_owned();
    match rows(conn, &q).await?.first() {
        Some(r) => Ok(Some(r.try_get("", "version")?)),
        None => Ok(None),
    }
}

fn value_row(key: &str, ord: usize, v: &FactValue) -> Vec<SimpleExpr> {
    let e = v.encode();
    vec![
        s(key),
        Expr::val(i32::try_from(ord).unwrap_or(i32::MAX)).into(),
        s(e.vtype.code()),
        Expr::val(e.s).into(),
        Expr::val(e.s_fold).into(),
        Expr::val(e.n).into(),
    ]
}

const VALUE_COLS: [C; 6] = [C::Pkey, C::Ord, C::Vtype, C::S, C::SFold, C::N];

/// The profiles of `wanted` not in `known`.
fn absent(wanted: &[&str], known: &BTreeSet<String>) -> BTreeSet<String> {
    wanted
        .iter()
        .filter(|p| !known.contains(**p))
        .map(|p| p.to_string())
        .collect()
}

/// Which of `keys` (values of `col`, in chunks) `table` holds for the tenant (a plain read).
async fn known_keys<Db: ConnectionTrait>(
    conn: &Db,
    tenant: &str,
    table: T,
    col: C,
    keys: &[&str],
) -> Result<BTreeSet<String>, DbErr> {
    let mut known = BTreeSet::new();
    for chunk in keys.chunks(ROWS_PER_INSERT) {
        let q = Query::select()
            .expr_as(Expr::col(col), Alias::new("k"))
            .from(table)
            .and_where(Expr::col(C::TenantId).eq(tenant))
            .and_where(Expr::col(col).is_in(chunk.iter().map(|k| k.to_string())))
            .to_owned();
        for r in rows(conn, &q).await? {
            known.insert(text(&r, "k")?);
        }
    }
    Ok(known)
}

/// Which summary column of `facts_profile` a recount sets (see
/// [`rules::schema::profile_summary_cols`]).
#[derive(Debug, Clone, Copy)]
pub(super) enum Summary {
    /// `tag_count`.
    Tags,
    /// `content_day`.
    ContentDay,
    /// `content_day` and the event kinds with events in each rolling window (`kinds7` …), in
    /// one statement.
    ContentDayAndKinds,
}

/// Recounts `what` of `profiles` into their `facts_profile` rows, 500 profiles a statement.
pub(super) async fn recount<Db: ConnectionTrait>(
    conn: &Db,
    tenant: &str,
    profiles: &[&str],
    what: Summary,
) -> Result<(), DbErr> {
    for chunk in profiles.chunks(500) {
        let of = rules::schema::Recount::Profiles(tenant, chunk);
        let q = match what {
            Summary::Tags => rules::schema::recount_tags(of),
            Summary::ContentDay => rules::schema::recount_content_day(of),
            Summary::ContentDayAndKinds => rules::schema::recount_content_day_and_kinds(of),
        };
        crate::exec(conn, &q).await?;
    }
    Ok(())
}
