//! Notes (follow-up records) reps and operators keep on customers: written, edited and deleted
//! one transaction at a time in one tenant, each with its timeline entry (`note.added`,
//! `note.edited`, `note.deleted`) in the same transaction. What a request may say and who may
//! change a note is decided in [`crate::domain::notes`]; here the note is loaded, the decision
//! asked for, and its outcome written.
//!
//! A note and its timeline entries stay on the profile they were written on, as the timeline's
//! event rows do: while that profile is merged into another, the survivor lists them (its
//! [`family`]); when the merge is undone they are the restored profile's again, with nothing to
//! move. A note written through the id of a merged profile is kept on that id the same way.
//! Deleting keeps the row (`deleted_at`) and takes the text out of the note's earlier timeline
//! entries.

use chrono::{DateTime, SubsecRound, Utc};
use proto::auth::Role;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseTransaction, DbErr,
    EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, QuerySelect, Set,
};
use serde::Serialize;

use super::entities::{note, timeline};
use super::queries::{family, find_profile};
use super::Resolver;
use crate::domain::notes::{self, NoteContent, NoteEdit, NoteType};

/// A note as the API shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct NoteView {
    pub id: String,
    /// The profile it was written on (a profile merged into the one listed, for a merged one's).
    pub profile_id: String,
    pub author: String,
    #[serde(rename = "type")]
    pub note_type: String,
    pub text: String,
    pub next_follow_up_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl NoteView {
    /// The note's place in a list, newest first: `(created_at in Unix seconds, id)`.
    pub fn key(&self) -> (i64, String) {
        (self.created_at.timestamp(), self.id.clone())
    }
}

impl From<note::Model> for NoteView {
    fn from(n: note::Model) -> Self {
        NoteView {
            id: n.id,
            profile_id: n.profile_id,
            author: n.author,
            note_type: n.note_type,
            text: n.text,
            next_follow_up_at: n.next_follow_up_at,
            created_at: n.created_at,
            updated_at: n.updated_at,
        }
    }
}

/// Why a note was not written, changed or deleted.
#[derive(Debug, thiserror::Error)]
pub enum NoteError {
    /// No such profile in the tenant.
    #[error("no profile with id `{0}`")]
    NoProfile(String),
    /// No such note in the tenant (or it was deleted).
    #[error("no note with id `{0}`")]
    NoNote(String),
    /// Someone other than its author, and not an admin or owner.
    #[error("note `{0}` was written by someone else: only its author, an admin or an owner may change it")]
    NotYours(String),
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// A race of the database is the one failure worth running the transaction again for.
impl platform::db::Contention for NoteError {
    fn is_contention(&self) -> bool {
        matches!(self, NoteError::Db(e) if platform::db::is_contention(e))
    }
}

/// Times of notes are whole seconds: what MySQL's TIMESTAMP keeps, so a note reads back as
/// written and its place in a list is the same on every backend.
fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(0)
}

fn content(n: &note::Model) -> NoteContent {
    NoteContent {
        // Stored types are always known ones; an unknown one reads as `other` rather than lost.
        note_type: NoteType::parse(&n.note_type).unwrap_or(NoteType::Other),
        text: n.text.clone(),
        next_follow_up_at: n.next_follow_up_at,
    }
}

async fn add_entry(
    txn: &DatabaseTransaction,
    n: &note::Model,
    event_id: String,
    event_type: &str,
    summary: serde_json::Value,
    at: DateTime<Utc>,
) -> Result<(), DbErr> {
    timeline::Entity::insert(timeline::ActiveModel {
        id: sea_orm::NotSet,
        tenant_id: Set(n.tenant_id.clone()),
        profile_id: Set(n.profile_id.clone()),
        event_id: Set(event_id),
        event_type: Set(event_type.to_string()),
        occurred_at: Set(at),
        summary: Set(summary.to_string()),
        // No identifier: an un-merge leaves the entry on the note's profile, as the note.
        identifier_ids: Set(None),
    })
    .exec_without_returning(txn)
    .await?;
    Ok(())
}

/// `tenant`'s live note `id`, locked; `NoNote` when unknown there or deleted.
async fn load(txn: &DatabaseTransaction, tenant: &str, id: &str) -> Result<note::Model, NoteError> {
    note::Entity::find_by_id(id.to_string())
        .filter(note::Column::TenantId.eq(tenant))
        .filter(note::Column::DeletedAt.is_null())
        .lock_exclusive()
        .one(txn)
        .await?
        .ok_or_else(|| NoteError::NoNote(id.to_string()))
}

/// The note `id` that `actor` (with `role`) may change.
async fn load_changeable(
    txn: &DatabaseTransaction,
    tenant: &str,
    id: &str,
    actor: &str,
    role: Role,
) -> Result<note::Model, NoteError> {
    let n = load(txn, tenant, id).await?;
    if !notes::may_change(actor, role, &n.author) {
        return Err(NoteError::NotYours(id.to_string()));
    }
    Ok(n)
}

async fn add_tx(
    txn: &DatabaseTransaction,
    tenant: &str,
    profile_id: &str,
    author: &str,
    c: &NoteContent,
) -> Result<note::Model, NoteError> {
    if find_profile(txn, tenant, profile_id).await?.is_none() {
        return Err(NoteError::NoProfile(profile_id.to_string()));
    }
    let at = now();
    let n = note::Model {
        id: uuid::Uuid::now_v7().to_string(),
        tenant_id: tenant.to_string(),
        profile_id: profile_id.to_string(),
        author: author.to_string(),
        note_type: c.note_type.as_str().to_string(),
        text: c.text.clone(),
        next_follow_up_at: c.next_follow_up_at,
        created_at: at,
        updated_at: at,
        deleted_at: None,
    };
    note::Entity::insert(n.clone().into_active_model())
        .exec_without_returning(txn)
        .await?;
    // The entry of the note's writing is known by the note's id.
    let summary = notes::added_summary(&n.id, author, c);
    add_entry(txn, &n, n.id.clone(), notes::NOTE_ADDED, summary, at).await?;
    Ok(n)
}

async fn edit_tx(
    txn: &DatabaseTransaction,
    tenant: &str,
    id: &str,
    actor: &str,
    role: Role,
    edit: &NoteEdit,
) -> Result<note::Model, NoteError> {
    let n = load_changeable(txn, tenant, id, actor, role).await?;
    let Some((next, changed)) = notes::apply(&content(&n), edit) else {
        return Ok(n);
    };
    let at = now();
    let mut m = n.clone().into_active_model();
    m.note_type = Set(next.note_type.as_str().to_string());
    m.text = Set(next.text.clone());
    m.next_follow_up_at = Set(next.next_follow_up_at);
    m.updated_at = Set(at);
    let updated = m.update(txn).await?;
    let summary = notes::edited_summary(&n.id, &n.author, &next, actor, &changed);
    let event_id = uuid::Uuid::now_v7().to_string();
    add_entry(txn, &n, event_id, notes::NOTE_EDITED, summary, at).await?;
    Ok(updated)
}

async fn delete_tx(
    txn: &DatabaseTransaction,
    tenant: &str,
    id: &str,
    actor: &str,
    role: Role,
) -> Result<(), NoteError> {
    let n = load_changeable(txn, tenant, id, actor, role).await?;
    let at = now();
    let mut m = n.clone().into_active_model();
    m.deleted_at = Set(Some(at));
    m.updated_at = Set(at);
    m.update(txn).await?;
    // Earlier entries of the note lose its text; they sit on the note's profile, and their
    // summary names the note (`"note_id":"<uuid>"`, compact JSON: no wildcard to escape).
    let earlier = timeline::Entity::find()
        .filter(timeline::Column::TenantId.eq(tenant))
        .filter(timeline::Column::ProfileId.eq(n.profile_id.clone()))
        .filter(timeline::Column::EventType.is_in([notes::NOTE_ADDED, notes::NOTE_EDITED]))
        .filter(timeline::Column::Summary.like(format!("%\"note_id\":\"{}\"%", n.id)))
        .all(txn)
        .await?;
    for row in earlier {
        let summary = serde_json::from_str(&row.summary).unwrap_or_default();
        if let Some(r) = notes::redacted(&summary, &n.id) {
            timeline::Entity::update_many()
                .col_expr(timeline::Column::Summary, Expr::value(r.to_string()))
                .filter(timeline::Column::Id.eq(row.id))
                .exec(txn)
                .await?;
        }
    }
    let summary = notes::deleted_summary(&n.id, &n.author, content(&n).note_type, actor);
    let event_id = uuid::Uuid::now_v7().to_string();
    add_entry(txn, &n, event_id, notes::NOTE_DELETED, summary, at).await?;
    Ok(())
}

impl Resolver {
    /// Writes a note by `author` on `tenant`'s profile `profile_id` (a merged one too: the note is
    /// kept on it and listed under its survivor), with its `note.added` timeline entry.
    pub async fn add_note(
        &self,
        tenant: &str,
        profile_id: &str,
        author: &str,
        c: &NoteContent,
    ) -> Result<NoteView, NoteError> {
        let n = in_tx!(
            self,
            txn,
            NoteError::Db,
            add_tx(&txn, tenant, profile_id, author, c).await
        )?;
        metrics::counter!(crate::metrics::NOTES, "op" => "add").increment(1);
        Ok(n.into())
    }

    /// Applies `edit` to `tenant`'s note `id` on behalf of `actor` (its author, or an admin or
    /// owner), with a `note.edited` timeline entry; an edit that changes nothing writes nothing.
    pub async fn edit_note(
        &self,
        tenant: &str,
        id: &str,
        actor: &str,
        role: Role,
        edit: &NoteEdit,
    ) -> Result<NoteView, NoteError> {
        let n = in_tx!(
            self,
            txn,
            NoteError::Db,
            edit_tx(&txn, tenant, id, actor, role, edit).await
        )?;
        metrics::counter!(crate::metrics::NOTES, "op" => "edit").increment(1);
        Ok(n.into())
    }

    /// Deletes `tenant`'s note `id` on behalf of `actor` (its author, or an admin or owner): the
    /// row is kept with `deleted_at`, its earlier timeline entries lose the text, and a
    /// `note.deleted` entry is written.
    pub async fn delete_note(
        &self,
        tenant: &str,
        id: &str,
        actor: &str,
        role: Role,
    ) -> Result<(), NoteError> {
        in_tx!(
            self,
            txn,
            NoteError::Db,
            delete_tx(&txn, tenant, id, actor, role).await
        )?;
        metrics::counter!(crate::metrics::NOTES, "op" => "delete").increment(1);
        Ok(())
    }
}

/// The live notes of `tenant`'s profile and of every profile merged into it, newest first: at
/// most `limit` after `before` (a note's [`NoteView::key`]).
pub async fn notes<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    profile_id: &str,
    before: Option<(i64, String)>,
    limit: u64,
) -> Result<Vec<NoteView>, DbErr> {
    let ids = family(db, tenant, profile_id).await?;
    let mut q = note::Entity::find()
        .filter(note::Column::TenantId.eq(tenant))
        .filter(note::Column::ProfileId.is_in(ids))
        .filter(note::Column::DeletedAt.is_null());
    if let Some((secs, id)) = before {
        let Some(at) = DateTime::<Utc>::from_timestamp(secs, 0) else {
            return Ok(Vec::new());
        };
        q = q.filter(
            Condition::any().add(note::Column::CreatedAt.lt(at)).add(
                Condition::all()
                    .add(note::Column::CreatedAt.eq(at))
                    .add(note::Column::Id.lt(id)),
            ),
        );
    }
    Ok(q.order_by_desc(note::Column::CreatedAt)
        .order_by_desc(note::Column::Id)
        .limit(limit)
        .all(db)
        .await?
        .into_iter()
        .map(NoteView::from)
        .collect())
}
