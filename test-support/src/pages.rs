//! The list contract every service API keeps (`?cursor=&limit=` → `{items, next_cursor}`),
//! checked through a caller's own request function: a walk with a small page size sees exactly
//! the items one large page holds, each once and in the same order; `next_cursor` is present on
//! every page and null only on the last; a `limit` out of range and a cursor the list did not
//! give are 400 naming the parameter.

use std::future::Future;

use serde_json::Value;

/// The largest page every list takes.
pub const MAX_LIMIT: u64 = 500;

fn with_params(uri: &str, params: &str) -> String {
    let sep = if uri.contains('?') { '&' } else { '?' };
    format!("{uri}{sep}{params}")
}

/// A list read page by page, as the contract says.
#[derive(Debug, Clone)]
pub struct Walk {
    /// Every item, in the order the pages gave them.
    pub items: Vec<Value>,
    /// How many pages it took.
    pub pages: usize,
    /// The cursor the first page gave (`None` when there was one page only).
    pub first_cursor: Option<String>,
}

/// Reads the list at `uri` (which may carry its own query) `limit` items at a time until
/// `next_cursor` is null. `get` answers a URI with its status and JSON body.
pub async fn walk<F, Fut>(get: F, uri: &str, limit: u64) -> Walk
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = (u16, Value)>,
{
    let mut out = Walk {
        items: Vec::new(),
        pages: 0,
        first_cursor: None,
    };
    let mut cursor: Option<String> = None;
    loop {
        let u = match &cursor {
            None => with_params(uri, &format!("limit={limit}")),
            Some(c) => with_params(uri, &format!("limit={limit}&cursor={c}")),
        };
        let (status, body) = get(u.clone()).await;
        assert_eq!(status, 200, "{u}: {body}");
        let page = body["items"]
            .as_array()
            .unwrap_or_else(|| panic!("{u}: no `items` array: {body}"));
        assert!(
            body.get("next_cursor").is_some(),
            "{u}: `next_cursor` is on every page, null on the last: {body}"
        );
        assert!(page.len() as u64 <= limit, "{u}: over the limit");
        out.pages += 1;
        out.items.extend(page.iter().cloned());
        match &body["next_cursor"] {
            Value::Null => return out,
            Value::String(c) => {
                assert_eq!(
                    page.len() as u64,
                    limit,
                    "{u}: a page before the last is full"
                );
                if out.first_cursor.is_none() {
                    out.first_cursor = Some(c.clone());
                }
                cursor = Some(c.clone());
            }
            other => panic!("{u}: `next_cursor` is a string or null, not {other}"),
        }
        assert!(out.pages <= 10_000, "{u}: the walk does not end");
    }
}

/// Checks the list at `uri` against the contract and returns its items in order: a walk `limit`
/// at a time (at least two pages: the list must hold more than `limit` items) gives the items of
/// one page of [`MAX_LIMIT`], each once (by `key`) and in the same order; `limit` 0 and one over
/// the maximum, and cursors the list never gave, are 400 naming the parameter.
pub async fn check<F, Fut>(get: F, uri: &str, limit: u64, key: impl Fn(&Value) -> Value) -> Walk
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = (u16, Value)>,
{
    let whole = walk(&get, uri, MAX_LIMIT).await;
    assert_eq!(
        whole.pages, 1,
        "{uri}: one page of {MAX_LIMIT} holds the test's list"
    );
    let walked = walk(&get, uri, limit).await;
    assert!(
        walked.pages >= 2,
        "{uri}: {} items fit in one page of {limit}; the test needs more",
        walked.items.len()
    );
    let keys = |items: &[Value]| items.iter().map(&key).collect::<Vec<_>>();
    let (all, seen) = (keys(&whole.items), keys(&walked.items));
    assert_eq!(
        seen, all,
        "{uri}: the walk by {limit} gives the list in order"
    );
    let mut distinct = seen.iter().map(Value::to_string).collect::<Vec<_>>();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), seen.len(), "{uri}: an item twice: {seen:?}");
    for bad in [0, MAX_LIMIT + 1] {
        refused(
            &get,
            &with_params(uri, &format!("limit={bad}")),
            "invalid_limit",
            "limit",
        )
        .await;
    }
    // Not cursors at all, a bare row id, and the walk's cursor cut short.
    let cut = walked.first_cursor.clone().unwrap_or_default();
    let cut = &cut[..cut.len() / 2];
    for bad in ["zzz", "1", "%24%24", cut] {
        refused(
            &get,
            &with_params(uri, &format!("cursor={bad}")),
            "invalid_cursor",
            "cursor",
        )
        .await;
    }
    walked
}

/// Asserts that `uri` is 400 `code` naming `field`.
pub async fn refused<F, Fut>(get: F, uri: &str, code: &str, field: &str)
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = (u16, Value)>,
{
    let (status, body) = get(uri.to_string()).await;
    assert_eq!(
        (
            status,
            body["code"].as_str(),
            body["details"]["field"].as_str()
        ),
        (400, Some(code), Some(field)),
        "{uri}: {body}"
    );
}
