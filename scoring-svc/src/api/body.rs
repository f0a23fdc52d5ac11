//! Request bodies read as their types. A body is a JSON object (else 400 `invalid_json`, and
//! the platform's JSON settings answer a body that is not JSON, too large or not
//! `application/json`); the fields callers typed before the service credential carried the
//! tenant and the actor ([`FROM_CREDENTIAL`]) are dropped unread, never rejected; the rest is
//! deserialized as the handler's type, and a field of the wrong type, a missing one or one the
//! type does not have is refused naming the field (`rules[0].points`, `on.threshold`).
//!
//! How the refusal reads is the type's ([`RequestBody::refused`]): a definition (a model, its
//! patch, a rule, the stage machine, a trigger, a dry run) answers 400 `invalid_definition`
//! with one `{path, code: "syntax", message}` in `details.errors`, like every other problem of
//! a definition; the others 400 `invalid_json` with the field in `details.field`
//! ([`unreadable`]); a recompute's options keep their `invalid_field`.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest};
use platform::http::ApiError;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use crate::domain::defs::{MachineSpec, ModelSpec, RuleSpec, TriggerSpec};
use crate::domain::DefError;
use crate::store::defs::{DefsError, ModelPatch};

/// Fields callers typed before the service credential carried the tenant and the actor. A
/// caller not yet migrated may still send them: they are dropped unread, never rejected.
const FROM_CREDENTIAL: [&str; 3] = ["tenant_id", "operator", "actor"];

/// A type a request body is read as.
pub(super) trait RequestBody: DeserializeOwned {
    /// The answer to a body that does not read as the type: `path` names the field at fault
    /// (empty for the body as a whole), `message` says what is wrong with it. By default a
    /// definition's: 400 `invalid_definition` with the one problem in `details.errors`.
    fn refused(path: &str, message: &str) -> ApiError {
        DefsError::Invalid(vec![DefError::new(path, "syntax", message)]).into()
    }
}

/// 400 `invalid_json` for a body that does not read, naming the field in the message and in
/// `details.field` (none when the body as a whole is at fault): the refusal of the bodies that
/// are not definitions.
pub(super) fn unreadable(path: &str, message: &str) -> ApiError {
    if path.is_empty() {
        return ApiError::bad_request("invalid_json", format!("the body does not read: {message}"));
    }
    ApiError::bad_request(
        "invalid_json",
        format!("the body does not read: `{path}`: {message}"),
    )
    .with_details(json!({"field": path}))
}

impl RequestBody for ModelSpec {}
impl RequestBody for ModelPatch {}
impl RequestBody for RuleSpec {}
impl RequestBody for MachineSpec {}
impl RequestBody for TriggerSpec {}

/// `body` as a `T`: an object without the [`FROM_CREDENTIAL`] fields, deserialized with the
/// path of a field at fault.
pub(super) fn read<T: RequestBody>(body: Value) -> Result<T, ApiError> {
    let Value::Object(mut o) = body else {
        return Err(ApiError::bad_request(
            "invalid_json",
            "the body must be a JSON object",
        ));
    };
    for k in FROM_CREDENTIAL {
        o.remove(k);
    }
    serde_path_to_error::deserialize(Value::Object(o)).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { "" } else { path.as_str() };
        T::refused(path, &e.inner().to_string())
    })
}

/// The extractor of a body read as `T` (see the module).
pub(super) struct Body<T>(pub T);

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

    fn refusal<T: RequestBody + std::fmt::Debug>(body: Value) -> ApiError {
        read::<T>(body).unwrap_err()
    }

    #[test]
    fn credential_fields_are_dropped_and_other_unknown_ones_refused() {
        let m: ModelSpec = read(json!({"tenant_id": "t", "operator": "o", "actor": "a",
            "key": "fit", "name": "Fit"}))
        .unwrap();
        assert_eq!(m.key, "fit");
        let e = refusal::<ModelSpec>(json!({"key": "fit", "name": "Fit", "owner": "x"}));
        assert_eq!(e.code, "invalid_definition");
        assert!(e.message.contains("unknown field `owner`"), "{}", e.message);
        let e = refusal::<ModelSpec>(json!(["key"]));
        assert_eq!((e.status.as_u16(), e.code), (400, "invalid_json"));
    }

    #[test]
    fn a_refused_definition_names_the_field() {
        let e = refusal::<RuleSpec>(json!({"kind": "event", "name": "x", "points": "ten"}));
        assert_eq!(e.details["errors"][0]["path"], "points");
        assert_eq!(e.details["errors"][0]["code"], "syntax");
        let e = refusal::<TriggerSpec>(json!({"name": "x", "actions": []}));
        assert_eq!(e.details["errors"][0]["path"], "");
        assert!(e.message.contains("missing field `on`"), "{}", e.message);
    }
}
