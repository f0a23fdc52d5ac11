//! Cursor pagination, the one contract of every list of this API: `?cursor=&limit=` answers
//! `{"items": [...], "next_cursor": "…"}`, `next_cursor` null on the last page.
//!
//! A list reads its rows in a stable, unique order (a keyset: its sort columns ending in a unique
//! one, never an offset) and the cursor is the key of the last row of a page, opaque to callers:
//! the list's name and the key as JSON, base64url-encoded. A cursor that does not decode to a key
//! of the same list is 400 `invalid_cursor`; a `limit` outside `1..=MAX_LIMIT` is 400
//! `invalid_limit`; `details.field` names the parameter either way.
//!
//! Every service's lists and the gateway's own use it (the gateway through its admin `page`
//! module, which adds the OpenAPI description of the query).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::ApiError;

/// Page size when the request gives none.
pub const DEFAULT_LIMIT: u64 = 50;
/// Largest page a request may ask for.
pub const MAX_LIMIT: u64 = 500;

/// A page size: [`DEFAULT_LIMIT`] when absent, `invalid_limit` naming `field` outside
/// `1..=MAX_LIMIT`.
pub fn limit(v: Option<u64>, field: &str) -> Result<u64, ApiError> {
    match v {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::bad_request(
            "invalid_limit",
            format!("`{field}` must be between 1 and {MAX_LIMIT}"),
        )
        .with_details(json!({"field": field}))),
    }
}

/// `?cursor=&limit=` of a list that takes no other parameter (lists with filters read the two
/// beside their own and call [`PageReq::parse`]).
#[derive(Debug, Deserialize)]
pub struct PageQuery {
    pub cursor: Option<String>,
    pub limit: Option<u64>,
}

impl PageQuery {
    /// The request of list `list`.
    pub fn read<K: Serialize + DeserializeOwned>(
        &self,
        list: &'static str,
    ) -> Result<PageReq<K>, ApiError> {
        PageReq::parse(list, self.cursor.as_deref(), self.limit)
    }
}

/// What a request asks of list `list`: the key after which the page starts and its size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageReq<K> {
    list: &'static str,
    pub after: Option<K>,
    pub limit: u64,
}

impl<K: Serialize + DeserializeOwned> PageReq<K> {
    /// Reads the `cursor` and `limit` query parameters of list `list`.
    pub fn parse(
        list: &'static str,
        cursor: Option<&str>,
        limit_v: Option<u64>,
    ) -> Result<Self, ApiError> {
        let limit = limit(limit_v, "limit")?;
        let after = match cursor.map(str::trim).filter(|c| !c.is_empty()) {
            None => None,
            Some(c) => Some(decode(list, c).ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_cursor",
                    "`cursor` is not a cursor this list returned",
                )
                .with_details(json!({"field": "cursor"}))
            })?),
        };
        Ok(PageReq { list, after, limit })
    }

    /// How many rows to read: one more than the page, to learn whether another follows.
    pub fn fetch(&self) -> u64 {
        self.limit + 1
    }

    /// The page of `rows` (read with [`Self::fetch`], in the list's order): at most `limit`
    /// items, and the cursor of the last one when more rows follow.
    pub fn page<T>(&self, mut rows: Vec<T>, key: impl Fn(&T) -> K) -> Page<T> {
        let more = rows.len() as u64 > self.limit;
        rows.truncate(self.limit as usize);
        let next_cursor = if more {
            rows.last().map(|last| encode(self.list, &key(last)))
        } else {
            None
        };
        Page {
            items: rows,
            next_cursor,
        }
    }

    /// The page of `items` of a list that finds where the next page starts itself: `next` is
    /// the key to continue after, `None` on the last page.
    pub fn with_next<T>(&self, items: Vec<T>, next: Option<K>) -> Page<T> {
        Page {
            items,
            next_cursor: next.map(|k| encode(self.list, &k)),
        }
    }
}

/// One page of a list as the API answers it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; null on the last.
    pub next_cursor: Option<String>,
}

/// The cursor of list `list` naming `key` as the last item given.
pub fn encode<K: Serialize>(list: &str, key: &K) -> String {
    let key = serde_json::to_string(key).unwrap_or_default();
    URL_SAFE_NO_PAD.encode(format!("{list}:{key}"))
}

/// The key a cursor of list `list` names; `None` for a cursor of another list or none at all.
pub fn decode<K: DeserializeOwned>(list: &str, cursor: &str) -> Option<K> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    let text = std::str::from_utf8(&bytes).ok()?;
    let (name, key) = text.split_once(':')?;
    if name != list {
        return None;
    }
    serde_json::from_str(key).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_is_read_back_only_by_its_own_list() {
        let req = PageReq::<(i64, String)>::parse("a", None, Some(2)).unwrap();
        let p = req.page(vec![(1, "x"), (2, "y"), (3, "z")], |r| {
            (r.0, r.1.to_string())
        });
        assert_eq!(p.items, [(1, "x"), (2, "y")]);
        let c = p.next_cursor.expect("more rows follow");
        let next = PageReq::<(i64, String)>::parse("a", Some(&c), None).unwrap();
        assert_eq!(next.after, Some((2, "y".to_string())));
        assert_eq!(next.limit, DEFAULT_LIMIT);
        for (list, cursor) in [("b", c.as_str()), ("a", "2"), ("a", "e30"), ("a", "%%")] {
            let e = PageReq::<(i64, String)>::parse(list, Some(cursor), None).unwrap_err();
            assert_eq!(
                (e.code, &e.details["field"]),
                ("invalid_cursor", &json!("cursor"))
            );
        }
        // The last page has no cursor; an empty one is the first page.
        let last = req.page(vec![(1, "x")], |r| (r.0, r.1.to_string()));
        assert_eq!(last.next_cursor, None);
        assert_eq!(
            PageReq::<i64>::parse("a", Some(""), None).unwrap().after,
            None
        );
    }

    #[test]
    fn limits_outside_the_range_name_the_field() {
        for bad in [0, MAX_LIMIT + 1] {
            let e = PageReq::<i64>::parse("a", None, Some(bad)).unwrap_err();
            assert_eq!(
                (e.code, &e.details["field"]),
                ("invalid_limit", &json!("limit"))
            );
        }
        assert_eq!(limit(Some(MAX_LIMIT), "recent").unwrap(), MAX_LIMIT);
        assert_eq!(
            limit(Some(0), "recent").unwrap_err().details["field"],
            "recent"
        );
    }
}
