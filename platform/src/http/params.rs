//! Checks of request parameters every internal API makes, answering in the common error body with
//! `details.field` naming what is wrong.

use serde_json::json;

use super::ApiError;

/// `missing_field`: a required body field is absent or blank.
pub fn missing(field: &str) -> ApiError {
    crate::ServiceError::missing(field).into()
}

/// A required, non-blank string field of a request body (trimmed).
pub fn field(v: Option<String>, name: &str) -> Result<String, ApiError> {
    match v {
        Some(s) if !s.trim().is_empty() => Ok(s.trim().to_string()),
        _ => Err(missing(name)),
    }
}

/// A required, non-blank query parameter (as given).
pub fn required(v: Option<String>, name: &str) -> Result<String, ApiError> {
    match v {
        Some(s) if !s.trim().is_empty() => Ok(s),
        _ => Err(ApiError::bad_request(
            "missing_field",
            format!("query parameter `{name}` is required"),
        )
        .with_details(json!({"field": name}))),
    }
}

/// A page size: `default` when absent, `invalid_limit` outside `1..=max`.
pub fn limit(v: Option<u64>, default: u64, max: u64) -> Result<u64, ApiError> {
    match v {
        None => Ok(default),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::bad_request(
            "invalid_limit",
            format!("limit must be between 1 and {max}"),
        )
        .with_details(json!({"field": "limit"}))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_name_the_field() {
        assert_eq!(field(Some(" a ".into()), "x").unwrap(), "a");
        let e = field(Some("  ".into()), "operator").unwrap_err();
        assert_eq!(
            (e.code, e.details["field"].as_str()),
            ("missing_field", Some("operator"))
        );
        assert_eq!(
            required(None, "tenant_id").unwrap_err().details["field"],
            "tenant_id"
        );
        assert_eq!(limit(None, 50, 500).unwrap(), 50);
        assert_eq!(limit(Some(0), 50, 500).unwrap_err().code, "invalid_limit");
    }
}
