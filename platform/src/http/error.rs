//! The common JSON error body `{code, message, details}` and extractor error mapping.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use serde::Serialize;

use crate::error::ServiceError;

/// An error answered as `{ "code": …, "message": …, "details": … }` with a stable `code`.
#[derive(Debug, Clone, Serialize)]
pub struct ApiError {
    #[serde(skip)]
    pub status: StatusCode,
    /// Stable machine-readable code, e.g. `invalid_json`, `not_found`.
    pub code: &'static str,
    /// Human-readable message naming the field or thing at fault.
    pub message: String,
    /// Extra structured information (per-field errors, limits…).
    pub details: serde_json::Value,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            details: serde_json::Value::Null,
        }
    }

    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = details;
        self
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    pub fn unavailable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

/// The answer to a [`ServiceError`] (and so to any service error that converts into one, and to
/// a bare `DbErr`): its kind's status, code, message and details. A database failure answers 503
/// `database_unavailable` and is logged once here with where it was asked (the handler's `?`),
/// never putting the database's text in the answer.
impl<E: Into<ServiceError>> From<E> for ApiError {
    #[track_caller]
    fn from(e: E) -> Self {
        match e.into() {
            ServiceError::Invalid {
                code,
                message,
                details,
            } => ApiError::bad_request(code, message).with_details(details),
            ServiceError::Unauthenticated { code, message } => {
                ApiError::new(StatusCode::UNAUTHORIZED, code, message)
            }
            ServiceError::Forbidden { code, message } => {
                ApiError::new(StatusCode::FORBIDDEN, code, message)
            }
            ServiceError::NotFound { message, details } => {
                ApiError::not_found(message).with_details(details)
            }
            ServiceError::Conflict {
                code,
                message,
                details,
            } => ApiError::conflict(code, message).with_details(details),
            ServiceError::Throttled {
                code,
                message,
                retry_after,
            } => ApiError::new(StatusCode::TOO_MANY_REQUESTS, code, message)
                .with_details(serde_json::json!({"retry_after": retry_after.as_secs()})),
            ServiceError::Unavailable { code, message } => ApiError::unavailable(code, message),
            ServiceError::Db(e) => {
                let at = std::panic::Location::caller();
                tracing::error!(error = %e, at = %at, "Query failed");
                ApiError::unavailable("database_unavailable", "the database did not answer")
            }
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status).json(self)
    }
}

/// JSON body extractor settings: 1 MiB limit and errors in the common body.
pub fn json_config() -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(1 << 20)
        .error_handler(|err, _req| {
            let (code, status) = match &err {
                actix_web::error::JsonPayloadError::OverflowKnownLength { .. }
                | actix_web::error::JsonPayloadError::Overflow { .. } => {
                    ("payload_too_large", StatusCode::PAYLOAD_TOO_LARGE)
                }
                actix_web::error::JsonPayloadError::ContentType => {
                    ("unsupported_media_type", StatusCode::UNSUPPORTED_MEDIA_TYPE)
                }
                _ => ("invalid_json", StatusCode::BAD_REQUEST),
            };
            ApiError::new(status, code, format!("request body: {err}")).into()
        })
}

/// Query-string extractor errors in the common body.
pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err, _req| {
        ApiError::bad_request("invalid_query", format!("query string: {err}")).into()
    })
}

/// Path extractor errors in the common body.
pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|err, _req| {
        ApiError::bad_request("invalid_path", format!("path: {err}")).into()
    })
}

pub(crate) async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::not_found(format!(
        "no route for {} {}",
        req.method(),
        req.path()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup() -> Result<(), ApiError> {
        Err(sea_orm::DbErr::Conn(sea_orm::RuntimeErr::Internal(
            "connection refused".into(),
        )))?;
        Ok(())
    }

    #[test]
    fn a_database_error_is_a_503_without_its_text() {
        let e = lookup().unwrap_err();
        assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(e.code, "database_unavailable");
        assert!(!e.message.contains("refused"), "{}", e.message);
    }
}
