//! The profiles of a saved segment, page by page in profile-id byte order (a keyset: the page
//! after a profile id), each with the fields asked for (by default those a preview's sample
//! shows) and, when asked, the tags it carries — what an audience export reads a page at a time.
//!
//! A page is found by windows of the tenant's profile ids: the condition is compiled by the
//! `rules` SQL compiler restricted to the ids after the last one given and up to the window's
//! end (as backfill batches are), and the first matches taken. A dense segment fills a page in
//! its first window; a sparse one widens the window each time (up to [`MAX_WINDOW`] ids), so a
//! page costs a few bounded queries and never a count of the whole segment.

use rules::schema::{FactsCol as C, FactsTable as T};
use rules::sql::{self, IdRange, Restrict};
use rules::Expanded;
use sea_orm::sea_query::{Expr, Order, Query, SelectStatement};
use sea_orm::{ConnectionTrait, DatabaseBackend, DbErr, Statement};
use serde::Serialize;

use std::collections::BTreeMap;

use crate::domain::At;
use crate::store::segments::{self, TagRef};

/// The fields shown with each member: those a preview's sample shows.
pub const MEMBER_FIELDS: [&str; 3] = ["contact.name", "contact.nickname", "contact.city"];
/// The first window's least size, and the largest window, in profile ids.
const FIRST_WINDOW: u64 = 2_000;
const MAX_WINDOW: u64 = 200_000;

/// What each member is shown with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shown {
    /// Field keys (first value of each; several joined).
    pub fields: Vec<String>,
    /// The tags the member carries now.
    pub tags: bool,
}

impl Default for Shown {
    fn default() -> Self {
        Shown {
            fields: MEMBER_FIELDS.iter().map(|f| f.to_string()).collect(),
            tags: false,
        }
    }
}

/// A member with what was asked of it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Member {
    pub profile_id: String,
    pub fields: BTreeMap<String, serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<TagRef>>,
}

/// A page of members: `next` is the profile id to pass as `after` for the next page (null on the
/// last).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MembersPage {
    pub items: Vec<Member>,
    pub next: Option<String>,
}

async fn run<Db: ConnectionTrait>(conn: &Db, stmt: &SelectStatement) -> Result<Vec<String>, DbErr> {
    let backend = match conn.get_database_backend() {
        DatabaseBackend::MySql => sql::Backend::MySql,
        _ => sql::Backend::Sqlite,
    };
    let (q, values) = sql::build(stmt, backend);
    conn.query_all(Statement::from_sql_and_values(
        conn.get_database_backend(),
        q,
        values,
    ))
    .await?
    .iter()
    .map(|r| {
        let raw: Vec<u8> = r.try_get_by_index(0)?;
        String::from_utf8(raw).map_err(|e| DbErr::Custom(format!("profile_id: {e}")))
    })
    .collect()
}

/// The `n`th profile id of the tenant after `after` (`None` when fewer follow).
async fn nth_after<Db: ConnectionTrait>(
    conn: &Db,
    tenant: &str,
    after: Option<&str>,
    n: u64,
) -> Result<Option<String>, DbErr> {
    let mut q = Query::select();
    q.column(C::ProfileId)
        .from(T::FactsProfile)
        .and_where(Expr::col(C::TenantId).eq(tenant))
        .order_by(C::ProfileId, Order::Asc)
        .limit(1)
        .offset(n.saturating_sub(1));
    if let Some(a) = after {
        q.and_where(Expr::col(C::ProfileId).gt(a));
    }
    Ok(run(conn, &q).await?.into_iter().next())
}

/// The members of `cond` of `tenant` after the profile id `after`: at most `limit`, in byte
/// order, shown as `shown` asks. Read in one transaction (`conn`), so the page is one snapshot.
pub async fn members<Db: ConnectionTrait>(
    conn: &Db,
    tenant: &str,
    cond: &Expanded,
    at: &At,
    after: Option<&str>,
    limit: u64,
    shown: &Shown,
) -> Result<MembersPage, DbErr> {
    let first = ((limit + 1) * 8).clamp(FIRST_WINDOW, MAX_WINDOW);
    let (ids, next) = ids_in_windows(conn, tenant, cond, at, after, limit, first).await?;
    shown_page(conn, tenant, ids, next, shown).await
}

/// A page of a real-time segment's kept members ([`super::kept`]) after `after`, shown as
/// [`members`] shows them.
pub async fn kept_members<Db: ConnectionTrait>(
    conn: &Db,
    tenant: &str,
    segment: &str,
    after: Option<&str>,
    limit: u64,
    shown: &Shown,
) -> Result<MembersPage, DbErr> {
    let mut ids = super::kept::page(conn, tenant, segment, after, limit + 1).await?;
    let next = if ids.len() as u64 > limit {
        ids.truncate(limit as usize);
        ids.last().cloned()
    } else {
        None
    };
    shown_page(conn, tenant, ids, next, shown).await
}

async fn shown_page<Db: ConnectionTrait>(
    conn: &Db,
    tenant: &str,
    ids: Vec<String>,
    next: Option<String>,
    shown: &Shown,
) -> Result<MembersPage, DbErr> {
    let keys: Vec<&str> = shown.fields.iter().map(String::as_str).collect();
    let mut fields = segments::fields_of(conn, tenant, &ids, &keys).await?;
    let mut tags = if shown.tags {
        Some(segments::tags_of(conn, tenant, &ids).await?)
    } else {
        None
    };
    Ok(MembersPage {
        items: ids
            .into_iter()
            .map(|id| Member {
                fields: fields.remove(&id).unwrap_or_default(),
                tags: tags.as_mut().map(|t| t.remove(&id).unwrap_or_default()),
                profile_id: id,
            })
            .collect(),
        next,
    })
}

/// The ids of a page of [`members`] and the `next` cursor, looking at `first` profile ids first
/// (then four times as many each time, up to [`MAX_WINDOW`]).
pub async fn ids_in_windows<Db: ConnectionTrait>(
    conn: &Db,
    tenant: &str,
    cond: &Expanded,
    at: &At,
    after: Option<&str>,
    limit: u64,
    first: u64,
) -> Result<(Vec<String>, Option<String>), DbErr> {
    let want = limit + 1;
    let mut found: Vec<String> = Vec::new();
    let mut from = after.map(str::to_string);
    let mut window = first.clamp(1, MAX_WINDOW);
    loop {
        let until = nth_after(conn, tenant, from.as_deref(), window).await?;
        let range = Restrict::Range(IdRange {
            after: from.clone(),
            until: until.clone(),
        });
        let compiled = sql::compile(cond, &segments::ctx(conn, tenant, at, range).await?);
        let left = want - found.len() as u64;
        found.extend(run(conn, &sql::sample_statement(&compiled, left)).await?);
        if found.len() as u64 >= want || until.is_none() {
            break;
        }
        from = until;
        window = (window * 4).min(MAX_WINDOW);
    }
    let next = if found.len() as u64 > limit {
        found.truncate(limit as usize);
        found.last().cloned()
    } else {
        None
    };
    Ok((found, next))
}
