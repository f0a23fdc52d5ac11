//! Pages of the gateway's own admin lists (API tokens, users, apps, write keys, the audit log):
//! `?cursor=&limit=` in, `{items, next_cursor}` out. A cursor is opaque to callers: the
//! base64url of the sort key of the last item given, under a version prefix, so a cursor this
//! API did not give (or one of another shape) is refused with `invalid_cursor` naming the field.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use platform::http::ApiError;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::IntoParams;

/// Items per page when `limit` is absent.
pub const DEFAULT_LIMIT: u64 = 50;
/// The most items one page may hold.
pub const MAX_LIMIT: u64 = 500;

/// The version prefix inside every cursor.
const PREFIX: &str = "c1:";

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

/// A page request checked: the key to start after and the page size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub after: Option<String>,
    pub limit: u64,
}

/// The cursor naming `key` as the last item given.
pub fn encode(key: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{PREFIX}{key}"))
}

fn invalid_cursor() -> ApiError {
    ApiError::bad_request("invalid_cursor", "`cursor` is not one this API gave")
        .with_details(json!({"field": "cursor"}))
}

/// The sort key a cursor names, or `invalid_cursor`.
pub fn decode(cursor: &str) -> Result<String, ApiError> {
    let raw = URL_SAFE_NO_PAD
        .decode(cursor.trim())
        .map_err(|_| invalid_cursor())?;
    let text = String::from_utf8(raw).map_err(|_| invalid_cursor())?;
    match text.strip_prefix(PREFIX) {
        Some(key) if !key.is_empty() && key.len() <= 512 => Ok(key.to_string()),
        _ => Err(invalid_cursor()),
    }
}

impl PageQuery {
    /// The checked window: `invalid_cursor` / `invalid_limit` naming the field.
    pub fn window(&self) -> Result<Window, ApiError> {
        let limit = platform::http::params::limit(self.limit, DEFAULT_LIMIT, MAX_LIMIT)?;
        let after = self.cursor.as_deref().map(decode).transpose()?;
        Ok(Window { after, limit })
    }
}

/// Cuts a page from rows read with `limit + 1` (the extra one says whether a next page
/// exists); `key` gives an item's sort key for the next cursor.
pub fn cut<T>(
    mut rows: Vec<T>,
    limit: u64,
    key: impl Fn(&T) -> String,
) -> (Vec<T>, Option<String>) {
    let more = rows.len() as u64 > limit;
    rows.truncate(limit as usize);
    let next = if more {
        rows.last().map(|r| encode(&key(r)))
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
    cut(rest, w.limit, key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_foreign_ones_are_refused() {
        let c = encode("0190-abc");
        assert_eq!(decode(&c).unwrap(), "0190-abc");
        for bad in ["", "!!!", "MTIz", &URL_SAFE_NO_PAD.encode("c1:")] {
            let e = decode(bad).unwrap_err();
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
        assert_eq!(q.window().unwrap_err().code, "invalid_limit");
    }

    #[test]
    fn pages_walk_a_sorted_list_to_the_end() {
        let all: Vec<String> = (0..7).map(|i| format!("k{i}")).collect();
        let mut w = Window {
            after: None,
            limit: 3,
        };
        let mut seen = Vec::new();
        loop {
            let (items, next) = of_sorted(all.clone(), &w, |s| s.clone());
            seen.extend(items);
            match next {
                Some(c) => w.after = Some(decode(&c).unwrap()),
                None => break,
            }
        }
        assert_eq!(seen, all);
        let (items, next) = of_sorted(
            all.clone(),
            &Window {
                after: None,
                limit: 7,
            },
            |s| s.clone(),
        );
        assert_eq!(
            (items.len(), next),
            (7, None),
            "no next page after the last item"
        );
    }
}
