//! Notes (follow-up records) on a customer, decided without I/O: what a request body asks for
//! (type, text, next follow-up time — each field checked and named when refused, unknown fields
//! refused), what an edit changes, who may change a note, and the timeline summaries of its
//! history. The store loads the note, asks here, and writes what was decided.

use chrono::{DateTime, Datelike, SubsecRound, Utc};
use proto::auth::Role;
use serde_json::{json, Map, Value};

/// Longest note text, in characters (after trimming).
pub const MAX_TEXT: usize = 2000;

/// Timeline entry type of a note written.
pub const NOTE_ADDED: &str = "note.added";
/// Timeline entry type of a note edited.
pub const NOTE_EDITED: &str = "note.edited";
/// Timeline entry type of a note deleted.
pub const NOTE_DELETED: &str = "note.deleted";

/// Earliest and latest year a follow-up time may name: outside them it is a typing slip.
const FOLLOW_UP_YEARS: std::ops::RangeInclusive<i32> = 2000..=2100;

/// How the contact the note records took place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NoteType {
    Call,
    Visit,
    Wechat,
    Meeting,
    Email,
    Other,
}

impl NoteType {
    pub const ALL: [NoteType; 6] = [
        NoteType::Call,
        NoteType::Visit,
        NoteType::Wechat,
        NoteType::Meeting,
        NoteType::Email,
        NoteType::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NoteType::Call => "call",
            NoteType::Visit => "visit",
            NoteType::Wechat => "wechat",
            NoteType::Meeting => "meeting",
            NoteType::Email => "email",
            NoteType::Other => "other",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// A field of a note request that cannot be taken, named as the request names it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    /// A required field is absent (or null).
    #[error("`{0}` is required")]
    Missing(&'static str),
    /// An edit that names no field at all.
    #[error("give at least one of `text`, `type`, `next_follow_up_at`")]
    NothingToChange,
    /// A field given with a value it cannot take (`reason`: `wrong_type`, `empty`, `too_long`,
    /// `unknown_type`, `invalid_date`, `out_of_range`), or a field notes do not have
    /// (`unknown_field`).
    #[error("`{field}`: {reason}")]
    Invalid { field: String, reason: &'static str },
}

fn invalid(field: &str, reason: &'static str) -> FieldError {
    FieldError::Invalid {
        field: field.to_string(),
        reason,
    }
}

/// What a note says: how the contact took place, what was said, when to follow up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteContent {
    pub note_type: NoteType,
    /// Trimmed, 1..=[`MAX_TEXT`] characters.
    pub text: String,
    /// Whole seconds, UTC.
    pub next_follow_up_at: Option<DateTime<Utc>>,
}

/// What an edit asks to change; `None` leaves a field as it is (`Some(None)` clears the
/// follow-up time).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NoteEdit {
    pub note_type: Option<NoteType>,
    pub text: Option<String>,
    pub next_follow_up_at: Option<Option<DateTime<Utc>>>,
}

impl NoteEdit {
    /// Does the edit name no field at all?
    pub fn is_empty(&self) -> bool {
        self.note_type.is_none() && self.text.is_none() && self.next_follow_up_at.is_none()
    }
}

const FIELDS: [&str; 3] = ["type", "text", "next_follow_up_at"];

/// Refuses a field notes do not have (one of them when there are several).
fn known_fields(body: &Map<String, Value>) -> Result<(), FieldError> {
    match body.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        Some(k) => Err(invalid(k, "unknown_field")),
        None => Ok(()),
    }
}

fn note_type(v: &Value) -> Result<NoteType, FieldError> {
    let s = v.as_str().ok_or_else(|| invalid("type", "wrong_type"))?;
    NoteType::parse(s.trim()).ok_or_else(|| invalid("type", "unknown_type"))
}

fn text(v: &Value) -> Result<String, FieldError> {
    let s = v
        .as_str()
        .ok_or_else(|| invalid("text", "wrong_type"))?
        .trim();
    match s.chars().count() {
        0 => Err(invalid("text", "empty")),
        n if n > MAX_TEXT => Err(invalid("text", "too_long")),
        _ => Ok(s.to_string()),
    }
}

/// An RFC 3339 time (any offset) in UTC whole seconds; `null` is none.
fn follow_up(v: &Value) -> Result<Option<DateTime<Utc>>, FieldError> {
    const FIELD: &str = "next_follow_up_at";
    if v.is_null() {
        return Ok(None);
    }
    let s = v.as_str().ok_or_else(|| invalid(FIELD, "wrong_type"))?;
    let at = DateTime::parse_from_rfc3339(s.trim())
        .map_err(|_| invalid(FIELD, "invalid_date"))?
        .with_timezone(&Utc)
        .trunc_subsecs(0);
    if !FOLLOW_UP_YEARS.contains(&at.year()) {
        return Err(invalid(FIELD, "out_of_range"));
    }
    Ok(Some(at))
}

/// The content of a new note from its request body `{type, text, next_follow_up_at?}`.
pub fn read_new(body: &Map<String, Value>) -> Result<NoteContent, FieldError> {
    known_fields(body)?;
    let given = |f: &'static str| body.get(f).filter(|v| !v.is_null());
    Ok(NoteContent {
        note_type: note_type(given("type").ok_or(FieldError::Missing("type"))?)?,
        text: text(given("text").ok_or(FieldError::Missing("text"))?)?,
        next_follow_up_at: match body.get("next_follow_up_at") {
            Some(v) => follow_up(v)?,
            None => None,
        },
    })
}

/// What an edit's body `{text?, type?, next_follow_up_at?}` asks for: a field left out stays
/// as it is, `next_follow_up_at: null` clears it; `type` and `text` cannot be cleared. A body
/// naming no field is refused.
pub fn read_edit(body: &Map<String, Value>) -> Result<NoteEdit, FieldError> {
    known_fields(body)?;
    let mut edit = NoteEdit::default();
    if let Some(v) = body.get("type") {
        edit.note_type = Some(note_type(v)?);
    }
    if let Some(v) = body.get("text") {
        edit.text = Some(text(v)?);
    }
    if let Some(v) = body.get("next_follow_up_at") {
        edit.next_follow_up_at = Some(follow_up(v)?);
    }
    if edit.is_empty() {
        return Err(FieldError::NothingToChange);
    }
    Ok(edit)
}

/// The content after `edit`, and the fields it changed (in the API's names); `None` when it
/// changes nothing (the note is left alone: no write, no timeline entry).
pub fn apply(current: &NoteContent, edit: &NoteEdit) -> Option<(NoteContent, Vec<&'static str>)> {
    let mut next = current.clone();
    let mut changed = Vec::new();
    if let Some(t) = edit.note_type.filter(|t| *t != current.note_type) {
        next.note_type = t;
        changed.push("type");
    }
    if let Some(s) = edit.text.as_ref().filter(|s| **s != current.text) {
        next.text = s.clone();
        changed.push("text");
    }
    if let Some(at) = edit
        .next_follow_up_at
        .filter(|at| *at != current.next_follow_up_at)
    {
        next.next_follow_up_at = at;
        changed.push("next_follow_up_at");
    }
    (!changed.is_empty()).then_some((next, changed))
}

/// May `actor` with `role` edit or delete a note `author` wrote? The author may; of everyone
/// else, only admins and owners.
pub fn may_change(actor: &str, role: Role, author: &str) -> bool {
    actor == author || role.covers(Role::Admin)
}

/// The timeline summary of a note written: `{note_id, type, text, author, next_follow_up_at}`.
pub fn added_summary(note_id: &str, author: &str, c: &NoteContent) -> Value {
    json!({
        "note_id": note_id,
        "type": c.note_type.as_str(),
        "text": c.text,
        "author": author,
        "next_follow_up_at": c.next_follow_up_at,
    })
}

/// The timeline summary of an edit: the note as it now reads, who edited it and which fields
/// changed.
pub fn edited_summary(
    note_id: &str,
    author: &str,
    c: &NoteContent,
    by: &str,
    changed: &[&str],
) -> Value {
    let mut s = added_summary(note_id, author, c);
    s["edited_by"] = json!(by);
    s["changed"] = json!(changed);
    s
}

/// The timeline summary of a delete: which note, who deleted it — without its text.
pub fn deleted_summary(note_id: &str, author: &str, note_type: NoteType, by: &str) -> Value {
    json!({
        "note_id": note_id,
        "type": note_type.as_str(),
        "author": author,
        "deleted_by": by,
    })
}

/// An earlier entry of note `note_id` as it reads once the note is deleted: its text is gone
/// (`text: null`, `deleted: true`), so a deleted note cannot be read back from the timeline.
/// `None` for an entry of another note, or one already without text.
pub fn redacted(summary: &Value, note_id: &str) -> Option<Value> {
    if summary["note_id"].as_str() != Some(note_id) || summary["text"].is_null() {
        return None;
    }
    let mut s = summary.clone();
    s["text"] = Value::Null;
    s["deleted"] = json!(true);
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    fn field_of(e: FieldError) -> (String, &'static str) {
        match e {
            FieldError::Missing(f) => (f.to_string(), "missing"),
            FieldError::NothingToChange => ("*".to_string(), "nothing"),
            FieldError::Invalid { field, reason } => (field, reason),
        }
    }

    #[test]
    fn a_new_note_is_read_and_cleaned() {
        let c = read_new(&body(json!({
            "type": "call", "text": "  called, wants a quote  ",
            "next_follow_up_at": "2026-07-01T09:30:15.750+08:00"
        })))
        .unwrap();
        assert_eq!(c.note_type, NoteType::Call);
        assert_eq!(c.text, "called, wants a quote");
        assert_eq!(
            c.next_follow_up_at,
            Some("2026-07-01T01:30:15Z".parse().unwrap()),
            "UTC, whole seconds"
        );
        let c = read_new(&body(
            json!({"type": "wechat", "text": "hi", "next_follow_up_at": null}),
        ))
        .unwrap();
        assert_eq!(c.next_follow_up_at, None);
        let long = "长".repeat(MAX_TEXT);
        assert_eq!(
            read_new(&body(json!({"type": "other", "text": long})))
                .unwrap()
                .text
                .chars()
                .count(),
            MAX_TEXT,
            "characters, not bytes"
        );
    }

    #[test]
    fn bad_fields_are_named() {
        let cases = [
            (json!({"text": "x"}), ("type", "missing")),
            (json!({"type": "call"}), ("text", "missing")),
            (json!({"type": "call", "text": null}), ("text", "missing")),
            (
                json!({"type": "fax", "text": "x"}),
                ("type", "unknown_type"),
            ),
            (json!({"type": 1, "text": "x"}), ("type", "wrong_type")),
            (json!({"type": "call", "text": "   "}), ("text", "empty")),
            (
                json!({"type": "call", "text": ["x"]}),
                ("text", "wrong_type"),
            ),
            (
                json!({"type": "call", "text": "x".repeat(MAX_TEXT + 1)}),
                ("text", "too_long"),
            ),
            (
                json!({"type": "call", "text": "x", "next_follow_up_at": "tomorrow"}),
                ("next_follow_up_at", "invalid_date"),
            ),
            (
                json!({"type": "call", "text": "x", "next_follow_up_at": "2026-07-01"}),
                ("next_follow_up_at", "invalid_date"),
            ),
            (
                json!({"type": "call", "text": "x", "next_follow_up_at": 1_780_000_000}),
                ("next_follow_up_at", "wrong_type"),
            ),
            (
                json!({"type": "call", "text": "x", "next_follow_up_at": "1970-01-01T00:00:00Z"}),
                ("next_follow_up_at", "out_of_range"),
            ),
            (
                json!({"type": "call", "text": "x", "author": "user:9"}),
                ("author", "unknown_field"),
            ),
        ];
        for (b, (field, reason)) in cases {
            let e = read_new(&body(b.clone())).unwrap_err();
            assert_eq!(field_of(e), (field.to_string(), reason), "{b}");
        }
    }

    #[test]
    fn an_edit_names_what_it_changes() {
        let e = read_edit(&body(json!({"next_follow_up_at": null}))).unwrap();
        assert_eq!(e.next_follow_up_at, Some(None), "null clears");
        let e = read_edit(&body(json!({"text": " new "}))).unwrap();
        assert_eq!(
            (e.text.as_deref(), e.note_type, e.next_follow_up_at),
            (Some("new"), None, None)
        );
        for (b, (field, reason)) in [
            (json!({}), ("*", "nothing")),
            (json!({"text": ""}), ("text", "empty")),
            (json!({"type": null}), ("type", "wrong_type")),
            (json!({"profile_id": "p"}), ("profile_id", "unknown_field")),
        ] {
            let e = read_edit(&body(b.clone())).unwrap_err();
            assert_eq!(field_of(e), (field.to_string(), reason), "{b}");
        }
    }

    #[test]
    fn applying_an_edit() {
        let at: DateTime<Utc> = "2026-07-01T01:00:00Z".parse().unwrap();
        let current = NoteContent {
            note_type: NoteType::Call,
            text: "a".into(),
            next_follow_up_at: Some(at),
        };
        let same = NoteEdit {
            note_type: Some(NoteType::Call),
            text: Some("a".into()),
            next_follow_up_at: Some(Some(at)),
        };
        assert_eq!(apply(&current, &same), None, "nothing changes");
        let edit = NoteEdit {
            note_type: Some(NoteType::Visit),
            text: Some("a".into()),
            next_follow_up_at: Some(None),
        };
        let (next, changed) = apply(&current, &edit).unwrap();
        assert_eq!(changed, ["type", "next_follow_up_at"]);
        assert_eq!(
            next,
            NoteContent {
                note_type: NoteType::Visit,
                text: "a".into(),
                next_follow_up_at: None,
            }
        );
    }

    #[test]
    fn who_may_change_a_note() {
        let author = "rep:ww1:alice";
        assert!(may_change(author, Role::Rep, author));
        assert!(!may_change("rep:ww1:bob", Role::Rep, author));
        assert!(!may_change("user:7", Role::Operator, author));
        assert!(may_change("user:1", Role::Admin, author));
        assert!(may_change("user:1", Role::Owner, author));
    }

    #[test]
    fn summaries_and_redaction() {
        let c = NoteContent {
            note_type: NoteType::Visit,
            text: "met at the expo".into(),
            next_follow_up_at: None,
        };
        let added = added_summary("n1", "rep:ww1:alice", &c);
        assert_eq!(
            added,
            json!({"note_id": "n1", "type": "visit", "text": "met at the expo",
                   "author": "rep:ww1:alice", "next_follow_up_at": null})
        );
        let edited = edited_summary("n1", "rep:ww1:alice", &c, "user:1", &["text"]);
        assert_eq!(
            (&edited["edited_by"], &edited["changed"]),
            (&json!("user:1"), &json!(["text"]))
        );
        let deleted = deleted_summary("n1", "rep:ww1:alice", NoteType::Visit, "user:1");
        assert!(deleted.get("text").is_none());
        let r = redacted(&added, "n1").unwrap();
        assert_eq!((&r["text"], &r["deleted"]), (&Value::Null, &json!(true)));
        assert_eq!(r["type"], "visit");
        assert_eq!(redacted(&added, "n2"), None, "another note's entry");
        assert_eq!(redacted(&r, "n1"), None, "already without text");
    }
}
