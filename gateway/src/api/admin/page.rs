//! Pages of the gateway's own admin lists (API tokens, users, apps, write keys, the audit log):
//! `?cursor=&limit=` in, `{items, next_cursor}` out, with the cursor codec and limits every list
//! of the system shares ([`platform::http::page`]): a cursor names its list and the sort key of
//! the last item given, so one this list did not give is refused with `invalid_cursor` naming
//! the field. This module adds the query's OpenAPI description and lists sorted in memory.

use platform::http::page as shared;
use platform::http::ApiError;
use serde::{Deserialize, Serialize};
use utoipa::IntoParams;

pub use shared::{DEFAULT_LIMIT, MAX_LIMIT};

/// `?cursor=&limit=` of a list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// `next_cursor` of the previous page; absent for the first page.
    #[serde(default)]
    pub cursor: Option<String>,
    /// Items per page, 1–500 (default 50).
    #[serde(default)]
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u64>,
}

/// One page of a list.
#[derive(Debug, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// The cursor of the next page; `null` on the last one.
    pub next_cursor: Option<String>,
}

/// A page request of one list, checked: the key to start after and the page size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    list: &'static str,
    pub after: Option<String>,
    pub limit: u64,
}

impl Window {
    /// The cursor of this list naming `key` as the last item given.
    pub fn cursor(&self, key: &str) -> String {
        shared::encode(self.list, &key)
    }
}

impl PageQuery {
    /// The checked window of list `list`: `invalid_cursor` / `invalid_limit` naming the field.
    pub fn window(&self, list: &'static str) -> Result<Window, ApiError> {
        let req = shared::PageReq::<String>::parse(list, self.cursor.as_deref(), self.limit)?;
        Ok(Window {
            list,
            after: req.after,
            limit: req.limit,
        })
    }
}

/// Cuts a page from rows read with `limit + 1` (the extra one says whether a next page
/// exists); `key` gives an item's sort key for the next cursor.
pub fn cut<T>(
    mut rows: Vec<T>,
    w: &Window,
    key: impl Fn(&T) -> String,
) -> (Vec<T>, Option<String>) {
    let more = rows.len() as u64 > w.limit;
    rows.truncate(w.limit as usize);
    let next = if more {
        rows.last().map(|r| w.cursor(&key(r)))
    } else {
        None
    };
    (rows, next)
}

/// A page of a whole list already in memory and sorted by `key` ascending (short per-tenant
/// lists: apps, write keys).
pub fn of_sorted<T>(
    rows: Vec<T>,
    w: &Window,
    key: impl Fn(&T) -> String,
) -> (Vec<T>, Option<String>) {
    let rest: Vec<T> = match &w.after {
        Some(after) => rows.into_iter().filter(|r| key(r) > *after).collect(),
        None => rows,
    };
    let rest: Vec<T> = rest.into_iter().take(w.limit as usize + 1).collect();
    cut(rest, w, key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_foreign_ones_are_refused() {
        let q = |cursor: &str| PageQuery {
            cursor: Some(cursor.to_string()),
            limit: None,
        };
        let w = PageQuery::default().window("users").unwrap();
        let c = w.cursor("0190-abc");
        assert_eq!(
            q(&c).window("users").unwrap().after.as_deref(),
            Some("0190-abc")
        );
        for (list, bad) in [("tokens", c.as_str()), ("users", "!!!"), ("users", "MTIz")] {
            let e = q(bad).window(list).unwrap_err();
            assert_eq!(
                (e.code, e.details["field"].as_str()),
                ("invalid_cursor", Some("cursor")),
                "{bad}"
            );
        }
        let q = PageQuery {
            cursor: None,
            limit: Some(0),
        };
        assert_eq!(q.window("users").unwrap_err().code, "invalid_limit");
    }

    #[test]
    fn pages_walk_a_sorted_list_to_the_end() {
        let all: Vec<String> = (0..7).map(|i| format!("k{i}")).collect();
        let first = PageQuery {
            cursor: None,
            limit: Some(3),
        };
        let mut w = first.window("apps").unwrap();
        let mut seen = Vec::new();
        loop {
            let (items, next) = of_sorted(all.clone(), &w, |s| s.clone());
            seen.extend(items);
            match next {
                Some(c) => {
                    w = PageQuery {
                        cursor: Some(c),
                        limit: Some(3),
                    }
                    .window("apps")
                    .unwrap()
                }
                None => break,
            }
        }
        assert_eq!(seen, all);
        let whole = PageQuery {
            cursor: None,
            limit: Some(7),
        };
        let (items, next) = of_sorted(all.clone(), &whole.window("apps").unwrap(), |s| s.clone());
        assert_eq!(
            (items.len(), next),
            (7, None),
            "no next page after the last item"
        );
    }
}
