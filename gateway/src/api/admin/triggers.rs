//! The gateway's check of a scoring trigger before it is created or replaced: every `add_tag` /
//! `remove_tag` action must name a tag of the principal's tenant, asked of tagging (a tag of
//! another tenant does not exist there). A trigger naming a tag that does not exist is refused
//! with 400 `unknown_tag` and the path of each such action's field (`actions[1].tag_id`),
//! instead of a trigger whose action could never do anything.

use actix_web::http::{Method, StatusCode};
use platform::http::ApiError;
use serde_json::{json, Value};

use super::proxy::url_escape;
use crate::access::AdminPrincipal;
use crate::services::{Service, Services};

/// The admin routes whose body is a trigger.
pub(super) fn carries_trigger(method: &Method, pattern: &str) -> bool {
    matches!(
        (method.as_str(), pattern),
        ("POST", "/admin/v1/triggers") | ("PUT", "/admin/v1/triggers/{id}")
    )
}

/// `(field path, tag id)` of every tag action of a trigger body; what is not shaped like one
/// is left to scoring's own validation.
pub(super) fn tag_actions(body: &Value) -> Vec<(String, String)> {
    let Some(actions) = body.get("actions").and_then(Value::as_array) else {
        return Vec::new();
    };
    actions
        .iter()
        .enumerate()
        .filter_map(|(i, a)| {
            let kind = a.get("type").and_then(Value::as_str)?;
            if kind != "add_tag" && kind != "remove_tag" {
                return None;
            }
            let tag = a.get("tag_id").and_then(Value::as_str)?;
            (!tag.trim().is_empty()).then(|| (format!("actions[{i}].tag_id"), tag.to_string()))
        })
        .collect()
}

/// Refuses a trigger body naming a tag the tenant does not have.
pub(super) async fn check_tags(
    services: &Services,
    p: &AdminPrincipal,
    body: &Value,
) -> Result<(), ApiError> {
    let named = tag_actions(body);
    if named.is_empty() {
        return Ok(());
    }
    let mut ids: Vec<&str> = named.iter().map(|(_, t)| t.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    let lookups = ids.iter().map(|id| {
        let path = format!("/v1/tags/{}", url_escape(id));
        async move {
            let answer = services
                .call(Service::Tagging, Method::GET, &path, None, p)
                .await;
            (*id, answer)
        }
    });
    let mut missing = Vec::new();
    for (id, answer) in futures_util::future::join_all(lookups).await {
        // Only a clear "no such tag" refuses; a malformed id is scoring's to name.
        if answer?.status == StatusCode::NOT_FOUND {
            missing.push(id);
        }
    }
    let errors: Vec<Value> = named
        .iter()
        .filter(|(_, t)| missing.contains(&t.as_str()))
        .map(|(path, t)| {
            json!({"path": path, "code": "unknown_tag",
                   "message": format!("no tag `{t}` in this tenant")})
        })
        .collect();
    let Some(first) = errors.first() else {
        return Ok(());
    };
    let field = first["path"].as_str().unwrap_or("actions").to_string();
    Err(ApiError::bad_request(
        "unknown_tag",
        format!(
            "`{field}`: {}",
            first["message"].as_str().unwrap_or_default()
        ),
    )
    .with_details(json!({"field": field, "errors": errors})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_tag_actions_are_named_with_their_paths() {
        let body = json!({"name": "hot", "actions": [
            {"type": "move_stage", "stage": "mql"},
            {"type": "add_tag", "tag_id": "t-1"},
            {"type": "remove_tag", "tag_id": "t-2"},
            {"type": "add_tag", "tag_id": 7},
            {"type": "notify"},
        ]});
        assert_eq!(
            tag_actions(&body),
            vec![
                ("actions[1].tag_id".to_string(), "t-1".to_string()),
                ("actions[2].tag_id".to_string(), "t-2".to_string()),
            ]
        );
        assert!(tag_actions(&json!({"actions": "x"})).is_empty());
        assert!(carries_trigger(&Method::PUT, "/admin/v1/triggers/{id}"));
        assert!(!carries_trigger(&Method::DELETE, "/admin/v1/triggers/{id}"));
    }
}
