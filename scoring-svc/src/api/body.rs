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
//! a definition; the others 400 `invalid_json` with the field in `details.field` (the
//! platform's default); a recompute's options keep their `invalid_field`. The reading itself is
//! `platform::http::body`'s.

pub(super) use platform::http::body::{read, Body, RequestBody};
use platform::http::ApiError;

use crate::domain::defs::{MachineSpec, ModelSpec, RuleSpec, TriggerSpec};
use crate::domain::DefError;
use crate::store::defs::{DefsError, ModelPatch};

/// Fields callers typed before the service credential carried the tenant and the actor. A
/// caller not yet migrated may still send them: they are dropped unread, never rejected.
pub(super) const FROM_CREDENTIAL: &[&str] = &["tenant_id", "operator", "actor"];

/// A definition's refusal of a body that does not read: 400 `invalid_definition` with the one
/// problem in `details.errors`, like every other problem of a definition.
pub(super) fn definition_refused(path: &str, message: &str) -> ApiError {
    DefsError::Invalid(vec![DefError::new(path, "syntax", message)]).into()
}

/// Bodies read as definitions: the credential's fields dropped, refused as a definition.
macro_rules! definition_bodies {
    ($($t:ty),* $(,)?) => {$(
        impl RequestBody for $t {
            const IGNORED: &'static [&'static str] = $crate::api::body::FROM_CREDENTIAL;
            fn refused(path: &str, message: &str) -> ApiError {
                $crate::api::body::definition_refused(path, message)
            }
        }
    )*};
}
pub(super) use definition_bodies;

definition_bodies!(ModelSpec, ModelPatch, RuleSpec, MachineSpec, TriggerSpec);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

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
