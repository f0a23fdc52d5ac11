//! The bodies of the sidebar's writes, read as their types (through `platform::http::body`). A body is a JSON object (else 400
//! `invalid_json`; the platform's JSON settings answer a body that is not JSON, too large or
//! not `application/json`), deserialized as the handler's type; a field of the wrong type or
//! one the type does not have is refused naming the field in the message and in
//! `details.field`. Every field is optional here, so an empty object reads (and a request
//! without a session still answers 401): what a write requires is checked by the handler or by
//! the service it goes to, which answer `missing_field` naming it.
//!
//! The bodies passed on to a service ([`MoveBody`] to scoring, [`NewNote`] and [`NoteEdit`] to
//! identity) are refused in that service's words: a move's like any JSON body scoring cannot
//! read (`invalid_json`), a note's like identity's checks of a note (`invalid_field` with
//! `details.reason` `wrong_type` or `unknown_field`).

pub(super) use platform::http::body::{Body, RequestBody};
use platform::http::ApiError;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::json;

/// `POST …/tags`: tag ids to add and to remove.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TagsBody {
    #[serde(default)]
    pub add: Vec<String>,
    #[serde(default)]
    pub remove: Vec<String>,
}

impl RequestBody for TagsBody {}

/// `POST …/stage`: a manual move, passed on to scoring (which requires both; other fields are
/// not read, as scoring does not read them).
#[derive(Debug, Default, Deserialize, Serialize)]
pub(super) struct MoveBody {
    /// The stage's key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    /// Why, in the stage history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl RequestBody for MoveBody {}

/// `POST …/notes`: a new note, passed on to identity (which requires `type` and `text` and
/// checks their values).
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewNote {
    /// `call`, `visit`, `wechat`, `meeting`, `email` or `other`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub note_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// RFC 3339; `null` is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_follow_up_at: Option<String>,
}

impl RequestBody for NewNote {
    fn refused(path: &str, message: &str) -> ApiError {
        note_refused(path, message)
    }
}

/// `PATCH /sidebar/v1/notes/{id}`: an edit, passed on to identity: a field left out stays as
/// it is, `next_follow_up_at: null` clears it (identity refuses a `null` `type` or `text`).
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NoteEdit {
    #[serde(rename = "type", default, skip_serializing_if = "Field::is_absent")]
    pub note_type: Field<String>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub text: Field<String>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub next_follow_up_at: Field<String>,
}

impl RequestBody for NoteEdit {
    fn refused(path: &str, message: &str) -> ApiError {
        note_refused(path, message)
    }
}

/// A note body refused as identity refuses one: `invalid_field` with the field and the reason.
fn note_refused(path: &str, message: &str) -> ApiError {
    let (field, reason) = match unknown_field(message) {
        Some(f) => (f, "unknown_field"),
        None => (path, "wrong_type"),
    };
    ApiError::bad_request("invalid_field", format!("`{field}`: {message}"))
        .with_details(json!({"field": field, "reason": reason}))
}

/// The field serde names in an "unknown field `x`, expected …" error.
fn unknown_field(message: &str) -> Option<&str> {
    message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split_once('`'))
        .map(|(field, _)| field)
}

/// A field of an edit: left out, `null`, or a value, passed on exactly as given.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) enum Field<T> {
    #[default]
    Absent,
    Null,
    Value(T),
}

impl<T> Field<T> {
    pub fn is_absent(&self) -> bool {
        matches!(self, Field::Absent)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Field<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match Option::<T>::deserialize(d)? {
            None => Field::Null,
            Some(v) => Field::Value(v),
        })
    }
}

impl<T: Serialize> Serialize for Field<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Field::Value(v) => v.serialize(s),
            Field::Absent | Field::Null => s.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use platform::http::body::read;

    #[test]
    fn an_empty_object_reads_and_a_non_object_does_not() {
        read::<TagsBody>(json!({})).unwrap();
        read::<MoveBody>(json!({})).unwrap();
        read::<NewNote>(json!({})).unwrap();
        read::<NoteEdit>(json!({})).unwrap();
        let e = read::<MoveBody>(json!(["stage"])).unwrap_err();
        assert_eq!((e.status.as_u16(), e.code), (400, "invalid_json"));
    }

    #[test]
    fn a_wrong_type_is_refused_naming_the_field() {
        let e = read::<TagsBody>(json!({"add": ["a", 7]})).unwrap_err();
        assert_eq!(
            (e.code, e.details["field"].as_str()),
            ("invalid_json", Some("add[1]"))
        );
        assert!(e.message.contains("`add[1]`"), "{}", e.message);
        let e = read::<MoveBody>(json!({"stage": 5, "reason": "x"})).unwrap_err();
        assert_eq!(
            (e.code, e.details["field"].as_str()),
            ("invalid_json", Some("stage"))
        );
        let e = read::<NewNote>(json!({"type": "call", "text": 5})).unwrap_err();
        assert_eq!(e.code, "invalid_field");
        assert_eq!(e.details, json!({"field": "text", "reason": "wrong_type"}));
        assert!(e.message.starts_with("`text`"), "{}", e.message);
    }

    #[test]
    fn unknown_fields_are_refused_as_the_service_would_or_not_read() {
        let e =
            read::<NewNote>(json!({"type": "call", "text": "x", "tenant_id": "t"})).unwrap_err();
        assert_eq!(
            e.details,
            json!({"field": "tenant_id", "reason": "unknown_field"})
        );
        let e = read::<TagsBody>(json!({"add": ["a"], "tags": []})).unwrap_err();
        assert_eq!(e.code, "invalid_json");
        let m: MoveBody = read(json!({"stage": "sql", "reason": "x", "actor": "a"})).unwrap();
        assert_eq!(
            serde_json::to_value(&m).unwrap(),
            json!({"stage": "sql", "reason": "x"})
        );
    }

    #[test]
    fn an_edit_passes_on_left_out_null_and_given_fields_as_they_were() {
        let e: NoteEdit = read(json!({"text": "again", "next_follow_up_at": null})).unwrap();
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            json!({"text": "again", "next_follow_up_at": null})
        );
        let e: NoteEdit = read(json!({"type": null})).unwrap();
        assert_eq!(serde_json::to_value(&e).unwrap(), json!({"type": null}));
        let n: NewNote =
            read(json!({"type": "call", "text": "hi", "next_follow_up_at": null})).unwrap();
        assert_eq!(
            serde_json::to_value(&n).unwrap(),
            json!({"type": "call", "text": "hi"})
        );
    }
}
