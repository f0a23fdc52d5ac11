//! What went wrong in a service, by what its caller should do about it — one enum every
//! service's own errors convert into, answered over HTTP as [`crate::http::ApiError`] and on the
//! bus as [`crate::bus::HandlerError`] (the two `From`s live beside those types).
//!
//! A domain failure (a wrong field, a missing resource, a state that forbids the change) is one
//! of the request kinds, never a database error: only [`ServiceError::Db`] and
//! [`ServiceError::Unavailable`] are worth trying again.

use std::time::Duration;

use serde_json::Value;

/// A service failure with a stable `code` and a message naming the field or thing at fault.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The request is wrong (HTTP 400); it never passes as sent.
    #[error("{code}: {message}")]
    Invalid {
        code: &'static str,
        message: String,
        details: Value,
    },
    /// No valid credential (HTTP 401).
    #[error("{code}: {message}")]
    Unauthenticated { code: &'static str, message: String },
    /// The credential is valid but may not do this (HTTP 403).
    #[error("{code}: {message}")]
    Forbidden { code: &'static str, message: String },
    /// Nothing of that id in the caller's tenant (HTTP 404): another tenant's looks the same.
    #[error("not_found: {message}")]
    NotFound { message: String, details: Value },
    /// The current state forbids it (HTTP 409).
    #[error("{code}: {message}")]
    Conflict {
        code: &'static str,
        message: String,
        details: Value,
    },
    /// Too many attempts; try again after `retry_after` (HTTP 429).
    #[error("{code}: {message}")]
    Throttled {
        code: &'static str,
        message: String,
        retry_after: Duration,
    },
    /// A dependency other than the database (cache, another service, WeChat) did not answer
    /// (HTTP 503).
    #[error("{code}: {message}")]
    Unavailable { code: &'static str, message: String },
    /// The database failed (HTTP 503 `database_unavailable`; its text is logged, never answered).
    #[error("database: {0}")]
    Db(#[from] sea_orm::DbErr),
}

impl ServiceError {
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        ServiceError::Invalid {
            code,
            message: message.into(),
            details: Value::Null,
        }
    }

    /// `missing_field`: a required field is absent or blank.
    pub fn missing(field: &str) -> Self {
        Self::invalid("missing_field", format!("`{field}` is required"))
            .with_details(serde_json::json!({ "field": field }))
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        ServiceError::NotFound {
            message: message.into(),
            details: Value::Null,
        }
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        ServiceError::Conflict {
            code,
            message: message.into(),
            details: Value::Null,
        }
    }

    pub fn unauthenticated(code: &'static str, message: impl Into<String>) -> Self {
        ServiceError::Unauthenticated {
            code,
            message: message.into(),
        }
    }

    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        ServiceError::Forbidden {
            code,
            message: message.into(),
        }
    }

    pub fn unavailable(code: &'static str, message: impl Into<String>) -> Self {
        ServiceError::Unavailable {
            code,
            message: message.into(),
        }
    }

    /// The same error with structured `details` (the field at fault, per-field errors, limits);
    /// kinds without details keep none.
    pub fn with_details(mut self, v: Value) -> Self {
        match &mut self {
            ServiceError::Invalid { details, .. }
            | ServiceError::NotFound { details, .. }
            | ServiceError::Conflict { details, .. } => *details = v,
            _ => {}
        }
        self
    }

    /// Worth trying again later: the database or a dependency failed, or the caller was
    /// throttled. Everything else fails the same way every time.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ServiceError::Db(_) | ServiceError::Unavailable { .. } | ServiceError::Throttled { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_failures_of_the_moment_are_transient() {
        assert!(ServiceError::Db(sea_orm::DbErr::Custom("x".into())).is_transient());
        assert!(ServiceError::unavailable("cache_unavailable", "down").is_transient());
        assert!(!ServiceError::invalid("invalid_field", "`a` is wrong").is_transient());
        assert!(!ServiceError::not_found("no such tag").is_transient());
        assert!(!ServiceError::conflict("retired", "the tag is retired").is_transient());
    }

    #[test]
    fn details_stay_on_the_kinds_that_answer_them() {
        let e = ServiceError::invalid("invalid_field", "`a` is wrong")
            .with_details(serde_json::json!({"field": "a"}));
        assert!(matches!(e, ServiceError::Invalid { ref details, .. } if details["field"] == "a"));
        let e = ServiceError::unavailable("x", "y").with_details(serde_json::json!({"a": 1}));
        assert!(matches!(e, ServiceError::Unavailable { .. }));
    }
}
