//! When each profile was first seen: `facts_first_seen` (by tenant-local day, for analytics) and
//! the property [`FIRST_SEEN_KEY`] (for conditions), kept equal for every live profile.
//!
//! A profile's own first sighting is the earliest instant the projection was given for it (the
//! creating event's time, or the time of the first message about it — see the callers); a
//! later sighting with an earlier instant lowers it. Its first-seen is the earliest of its own
//! and those of the profiles merged into it. A merged-away profile's row stays, marked with its
//! survivor, so an un-merge gives it back and the survivor's is worked out again from what is
//! still merged into it. Instants are kept to the second, as datetime properties are.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, SubsecRound, Utc};
use platform::clock::Tz;
use rules::schema::{FactsCol as C, FactsTable as T};
use rules::{FactValue, FIRST_SEEN_KEY};
use sea_orm::sea_query::{Expr, Query};
use sea_orm::{ConnectionTrait, DbErr, QueryResult};

use super::*;
use crate::{exec, local_day, rows, text};

/// A profile and an instant it was seen at.
pub type Sighting<'a> = (&'a str, DateTime<Utc>);

/// A profile's `facts_first_seen` row.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Held {
    seen_at: Option<DateTime<Utc>>,
    first_at: DateTime<Utc>,
    day: NaiveDate,
    merged_into: String,
}

impl Held {
    fn live(&self) -> bool {
        self.merged_into.is_empty()
    }
}

/// What a sighting at `at` does to a profile's row.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Sight {
    /// A first row: own and first-seen `at`.
    Insert,
    /// The own sighting goes down to `at`; the first-seen too when `first` is set.
    Lower { first: bool },
    /// Nothing: the row has an earlier instant, or the profile is merged away.
    Keep,
}

fn sight(held: Option<&Held>, at: DateTime<Utc>) -> Sight {
    match held {
        None => Sight::Insert,
        Some(h) if !h.live() => Sight::Keep,
        Some(h) if at < h.first_at => Sight::Lower { first: true },
        Some(h) if h.seen_at.is_none_or(|s| at < s) => Sight::Lower { first: false },
        Some(_) => Sight::Keep,
    }
}

/// The earliest of `candidates` (instant, its day).
fn earliest(
    candidates: impl IntoIterator<Item = (DateTime<Utc>, NaiveDate)>,
) -> Option<(DateTime<Utc>, NaiveDate)> {
    candidates.into_iter().min_by_key(|(at, _)| *at)
}

fn held_of(r: &QueryResult) -> Result<Held, DbErr> {
    Ok(Held {
        seen_at: r.try_get("", "seen_at")?,
        first_at: r.try_get("", "first_at")?,
        day: r.try_get("", "day")?,
        merged_into: text(r, "merged_into")?,
    })
}

async fn held<Db: ConnectionTrait>(
    conn: &Db,
    tenant: &str,
    profiles: &[&str],
) -> Result<BTreeMap<String, Held>, DbErr> {
    let mut out = BTreeMap::new();
    for chunk in profiles.chunks(ROWS_PER_INSERT) {
        let q = Query::select()
            .columns([C::ProfileId, C::SeenAt, C::FirstAt, C::Day, C::MergedInto])
            .from(T::FactsFirstSeen)
            .and_where(Expr::col(C::TenantId).eq(tenant))
            .and_where(Expr::col(C::ProfileId).is_in(chunk.iter().map(|p| p.to_string())))
            .to_owned();
        for r in rows(conn, &q).await? {
            out.insert(text(&r, "profile_id")?, held_of(&r)?);
        }
    }
    Ok(out)
}

fn row_of(tenant: &str, profile: &str, h: &Held) -> Vec<sea_orm::sea_query::SimpleExpr> {
    vec![
        s(tenant),
        s(profile),
        Expr::val(h.seen_at).into(),
        Expr::val(h.first_at).into(),
        Expr::val(h.day).into(),
        s(&h.merged_into),
    ]
}

const ROW_COLS: [C; 6] = [
    C::TenantId,
    C::ProfileId,
    C::SeenAt,
    C::FirstAt,
    C::Day,
    C::MergedInto,
];

/// Replaces a profile's row (several columns change together).
async fn put<Db: ConnectionTrait>(
    conn: &Db,
    tenant: &str,
    profile: &str,
    h: &Held,
) -> Result<(), DbErr> {
    forget(conn, tenant, profile).await?;
    insert_rows(
        conn,
        T::FactsFirstSeen,
        &ROW_COLS,
        vec![row_of(tenant, profile, h)],
    )
    .await
}

async fn forget<Db: ConnectionTrait>(conn: &Db, tenant: &str, profile: &str) -> Result<(), DbErr> {
    let q = Query::delete()
        .from_table(T::FactsFirstSeen)
        .and_where(Expr::col(C::TenantId).eq(tenant))
        .and_where(Expr::col(C::ProfileId).eq(profile))
        .to_owned();
    exec(conn, &q).await.map(drop)
}

/// Sets the property [`FIRST_SEEN_KEY`] of `profiles` to their instants (`None` removes it).
async fn set_property<Db: ConnectionTrait>(
    conn: &Db,
    tenant: &str,
    profiles: &[(&str, Option<DateTime<Utc>>)],
) -> Result<(), DbErr> {
    for chunk in profiles.chunks(ROWS_PER_INSERT) {
        let q = Query::delete()
            .from_table(T::FactsProperty)
            .and_where(Expr::col(C::TenantId).eq(tenant))
            .and_where(Expr::col(C::ProfileId).is_in(chunk.iter().map(|(p, _)| p.to_string())))
            .and_where(Expr::col(C::Pkey).eq(FIRST_SEEN_KEY))
            .to_owned();
        exec(conn, &q).await?;
        let rows = chunk
            .iter()
            .filter_map(|(p, at)| {
                let v = FactValue::DateTime((*at)?);
                Some([vec![s(tenant), s(p)], value_row(FIRST_SEEN_KEY, 0, &v)].concat())
            })
            .collect();
        let cols: Vec<C> = [C::TenantId, C::ProfileId]
            .into_iter()
            .chain(VALUE_COLS)
            .collect();
        insert_rows(conn, T::FactsProperty, &cols, rows).await?;
    }
    Ok(())
}

/// Takes sightings of a tenant's profiles: for each profile the earliest of its sightings here
/// becomes its own first sighting (and its first-seen, day counted in `zone`) when it has none
/// or a later one; a merged-away profile's row is left alone. A few statements whatever the
/// number of sightings, none changing rows when nothing is earlier.
pub async fn record_first_seen<Db: ConnectionTrait>(
    conn: &Db,
    tenant: &str,
    sightings: &[Sighting<'_>],
    zone: Tz,
) -> Result<(), DbErr> {
    let mut earliest_at: BTreeMap<&str, DateTime<Utc>> = BTreeMap::new();
    for (p, at) in sightings {
        let at = at.trunc_subsecs(0);
        earliest_at
            .entry(p)
            .and_modify(|e| *e = (*e).min(at))
            .or_insert(at);
    }
    if earliest_at.is_empty() {
        return Ok(());
    }
    let profiles: Vec<&str> = earliest_at.keys().copied().collect();
    let held = held(conn, tenant, &profiles).await?;
    let (mut inserts, mut props) = (Vec::new(), Vec::new());
    for (p, at) in &earliest_at {
        let h = held.get(*p);
        match (sight(h, *at), h) {
            (Sight::Insert, _) => {
                let row = Held {
                    seen_at: Some(*at),
                    first_at: *at,
                    day: local_day(*at, zone),
                    merged_into: String::new(),
                };
                inserts.push(row_of(tenant, p, &row));
                props.push((*p, Some(*at)));
            }
            (Sight::Lower { first }, Some(h)) => {
                let mut row = Held {
                    seen_at: Some(*at),
                    ..h.clone()
                };
                if first {
                    row.first_at = *at;
                    row.day = local_day(*at, zone);
                    props.push((*p, Some(*at)));
                }
                put(conn, tenant, p, &row).await?;
            }
            _ => {}
        }
    }
    insert_rows(conn, T::FactsFirstSeen, &ROW_COLS, inserts).await?;
    set_property(conn, tenant, &props).await
}

/// `absorbed` was merged into `survivor`: its row is kept, marked with the survivor, and the
/// survivor's first-seen becomes the earlier of the two (a survivor without a row gets one,
/// its own sighting unknown). Call before the absorbed profile's facts are removed.
pub async fn merge_first_seen<Db: ConnectionTrait>(
    conn: &Db,
    tenant: &str,
    survivor: &str,
    absorbed: &str,
) -> Result<(), DbErr> {
    let held = held(conn, tenant, &[survivor, absorbed]).await?;
    let Some(a) = held.get(absorbed).filter(|a| a.live()) else {
        return Ok(());
    };
    let marked = Held {
        merged_into: survivor.to_string(),
        ..a.clone()
    };
    put(conn, tenant, absorbed, &marked).await?;
    let next = match held.get(survivor) {
        Some(s) if !s.live() => return Ok(()),
        Some(s) if s.first_at <= a.first_at => return Ok(()),
        Some(s) => Held {
            first_at: a.first_at,
            day: a.day,
            ..s.clone()
        },
        None => Held {
            seen_at: None,
            first_at: a.first_at,
            day: a.day,
            merged_into: String::new(),
        },
    };
    put(conn, tenant, survivor, &next).await?;
    set_property(conn, tenant, &[(survivor, Some(next.first_at))]).await
}

/// An un-merge separated `restored` from `survivor`: the restored profile's row is live again
/// with the first-seen it had (a profile new with the separation — a split — gets a row seen
/// at `new_at` when given), and the survivor's first-seen is worked out again from its own
/// sighting and what is still merged into it (no row when none is known).
pub async fn unmerge_first_seen<Db: ConnectionTrait>(
    conn: &Db,
    tenant: &str,
    survivor: &str,
    restored: &str,
    new_at: Option<DateTime<Utc>>,
    zone: Tz,
) -> Result<(), DbErr> {
    let held = held(conn, tenant, &[survivor, restored]).await?;
    match held.get(restored) {
        Some(r) => {
            let live = Held {
                merged_into: String::new(),
                ..r.clone()
            };
            put(conn, tenant, restored, &live).await?;
            set_property(conn, tenant, &[(restored, Some(live.first_at))]).await?;
        }
        None => {
            if let Some(at) = new_at {
                record_first_seen(conn, tenant, &[(restored, at)], zone).await?;
            }
        }
    }
    let Some(s) = held.get(survivor).filter(|s| s.live()) else {
        return Ok(());
    };
    let q = Query::select()
        .columns([C::FirstAt, C::Day])
        .from(T::FactsFirstSeen)
        .and_where(Expr::col(C::TenantId).eq(tenant))
        .and_where(Expr::col(C::MergedInto).eq(survivor))
        .to_owned();
    let mut candidates: Vec<(DateTime<Utc>, NaiveDate)> = s
        .seen_at
        .map(|at| (at, local_day(at, zone)))
        .into_iter()
        .collect();
    for r in rows(conn, &q).await? {
        candidates.push((r.try_get("", "first_at")?, r.try_get("", "day")?));
    }
    match earliest(candidates) {
        Some((first_at, day)) => {
            let next = Held {
                first_at,
                day,
                ..s.clone()
            };
            if next != *s {
                put(conn, tenant, survivor, &next).await?;
                set_property(conn, tenant, &[(survivor, Some(first_at))]).await?;
            }
        }
        None => {
            forget(conn, tenant, survivor).await?;
            set_property(conn, tenant, &[(survivor, None)]).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn row(seen: Option<&str>, first: &str, merged: &str) -> Held {
        Held {
            seen_at: seen.map(at),
            first_at: at(first),
            day: at(first).date_naive(),
            merged_into: merged.into(),
        }
    }

    #[test]
    fn sightings_only_ever_go_earlier() {
        let t = "2026-11-02T17:00:00Z";
        assert_eq!(sight(None, at(t)), Sight::Insert);
        let h = row(Some(t), t, "");
        assert_eq!(sight(Some(&h), at("2026-11-03T00:00:00Z")), Sight::Keep);
        assert_eq!(
            sight(Some(&h), at("2026-11-01T00:00:00Z")),
            Sight::Lower { first: true }
        );
        // First-seen from a merged profile, own sighting later: only the own one goes down.
        let merged = row(Some(t), "2026-10-01T00:00:00Z", "");
        assert_eq!(
            sight(Some(&merged), at("2026-11-01T00:00:00Z")),
            Sight::Lower { first: false }
        );
        let unknown = row(None, "2026-10-01T00:00:00Z", "");
        assert_eq!(
            sight(Some(&unknown), at("2026-11-01T00:00:00Z")),
            Sight::Lower { first: false }
        );
        let away = row(Some(t), t, "p-survivor");
        assert_eq!(sight(Some(&away), at("2026-01-01T00:00:00Z")), Sight::Keep);
    }

    #[test]
    fn the_earliest_candidate_wins() {
        let d = |s: &str| s.parse::<NaiveDate>().unwrap();
        let got = earliest([
            (at("2026-11-02T17:00:00Z"), d("2026-11-03")),
            (at("2026-10-02T17:00:00Z"), d("2026-10-03")),
        ]);
        assert_eq!(got, Some((at("2026-10-02T17:00:00Z"), d("2026-10-03"))));
        assert_eq!(earliest([]), None);
    }
}
