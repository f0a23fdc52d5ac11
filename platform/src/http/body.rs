//! Request bodies read as their types: [`Body<T>`] extracts a JSON object (else 400
//! `invalid_json`; the JSON settings of [`super::json_config`] answer a body that is not JSON,
//! too large or not `application/json`), drops the fields the type ignores unread
//! ([`RequestBody::IGNORED`]), and deserializes the rest; a field of the wrong type, a missing
//! one or one the type does not have is refused naming the field (`rules[0].points`,
//! `on.threshold`) in the type's words ([`RequestBody::refused`]; by default [`unreadable`]).

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use super::ApiError;

/// A type a request body is read as.
pub trait RequestBody: DeserializeOwned {
    /// Top-level fields dropped unread before the body is read, never refused (e.g. what old
    /// callers still send that the credential now says).
    const IGNORED: &'static [&'static str] = &[];

    /// The answer to a body that does not read as the type: `path` names the field at fault
    /// (empty for the body as a whole), `message` says what is wrong with it.
    fn refused(path: &str, message: &str) -> ApiError {
        unreadable(path, message)
    }
}

/// 400 `invalid_json` naming the field in the message and in `details.field` (none when the
/// body as a whole is at fault).
pub fn unreadable(path: &str, message: &str) -> ApiError {
    if path.is_empty() {
        return ApiError::bad_request("invalid_json", format!("the body does not read: {message}"));
    }
    ApiError::bad_request(
        "invalid_json",
        format!("the body does not read: `{path}`: {message}"),
    )
    .with_details(json!({ "field": path }))
}

/// `body` as a `T`: an object without `T`'s ignored fields, deserialized with the path of a
/// field at fault.
pub fn read<T: RequestBody>(body: Value) -> Result<T, ApiError> {
    let Value::Object(mut o) = body else {
        return Err(ApiError::bad_request(
            "invalid_json",
            "the body must be a JSON object",
        ));
    };
    for k in T::IGNORED {
        o.remove(*k);
    }
    serde_path_to_error::deserialize(Value::Object(o)).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { "" } else { path.as_str() };
        T::refused(path, &e.inner().to_string())
    })
}

/// The extractor of a body read as `T` (see the module).
pub struct Body<T>(pub T);

impl<T: RequestBody + 'static> FromRequest for Body<T> {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let json = web::Json::<Value>::from_request(req, payload);
        Box::pin(async move { Ok(Body(read(json.await?.into_inner())?)) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Move {
        stage: String,
        #[serde(default)]
        tags: Vec<String>,
    }

    impl RequestBody for Move {
        const IGNORED: &'static [&'static str] = &["tenant_id"];
    }

    #[test]
    fn ignored_fields_go_and_a_field_at_fault_is_named() {
        let m: Move = read(json!({"tenant_id": "t", "stage": "sql"})).unwrap();
        assert_eq!(m.stage, "sql");
        assert!(m.tags.is_empty());
        let e = read::<Move>(json!({"stage": 5})).unwrap_err();
        assert_eq!((e.status.as_u16(), e.code), (400, "invalid_json"));
        assert_eq!(e.details["field"], "stage");
        let e = read::<Move>(json!({"stage": "x", "tags": ["a", 7]})).unwrap_err();
        assert_eq!(e.details["field"], "tags[1]");
        let e = read::<Move>(json!({"stage": "x", "owner": "y"})).unwrap_err();
        assert!(e.message.contains("unknown field `owner`"), "{}", e.message);
        let e = read::<Move>(json!({})).unwrap_err();
        assert!(e.message.contains("missing field `stage`"), "{}", e.message);
        assert!(e.details.is_null());
        let e = read::<Move>(json!(["stage"])).unwrap_err();
        assert_eq!(e.message, "the body must be a JSON object");
    }
}
