//! Operator decisions on identity: a manual merge, the un-merge of a merge and the split of one
//! identifier off a profile — each one transaction in one tenant (a profile or merge of another
//! tenant is not found), recorded with the operator and announced through the outbox.
//!
//! The edge ledger is the source of truth. A profile is the connected component of the
//! non-retracted edges between its identifiers and the profile itself (an edge without
//! `to_identifier_id` links an identifier to the profile named by the edge, e.g. the first
//! identifier of a new profile). Undoing a merge retracts the merge's edges (`retracted_at`; no
//! edge is ever deleted) and re-derives the sides: the absorbed profile takes back every identifier
//! still connected to it (also ones attached later through its identifiers, and profiles merged
//! in through them), the survivor keeps the rest; each timeline row goes to the side holding its
//! event's subject identifier. When other evidence still connects the two sides, the un-merge is
//! refused (`still_linked`). A split retracts every edge of one identifier and links it to a new
//! profile; identifiers attached only through it stay where they are. Both record a block, so
//! automatic resolution refuses to merge the pair again (`manually_unmerged`) until a manual
//! merge lifts it.
//!
//! Here: the operator's requests and what they answer. `manual_merge` makes a merge, `undo`
//! undoes one and `split` takes one identifier off a profile; `family` holds what the last two
//! share (the family they load and lock, the timeline rows they move, the separation they
//! record). Which edges an un-merge retracts and which side each identifier and timeline row
//! ends on is decided in the domain ([`crate::domain::separation`]).

mod family;
mod manual_merge;
mod split;
mod undo;

use proto::identity::{Identifier, IdentifierKind, UnmergeKind};
use sea_orm::DbErr;
use serde::Serialize;

use crate::domain::Key;
use crate::store::entities::identifier;
use crate::store::queries::{lookup_hash, LookupError};
use crate::store::Resolver;

use manual_merge::{merge_tx, MergeTx};
use split::split_tx;
use undo::unmerge_tx;

/// Why an operator's request was not carried out. `code`s are stable.
#[derive(Debug, thiserror::Error)]
pub enum ManualError {
    /// Bad input (HTTP 400).
    #[error("{field}: {message}")]
    Invalid {
        code: &'static str,
        field: &'static str,
        message: String,
    },
    /// Unknown profile, merge or identifier (HTTP 404).
    #[error("{field}: {message}")]
    NotFound {
        field: &'static str,
        message: String,
    },
    /// Not allowed in the current state, or refused by a guard (HTTP 409).
    #[error("{code}: {message}")]
    Conflict { code: &'static str, message: String },
    /// Phones and e-mails cannot be looked up without the personal-data key.
    #[error("{0} identifiers are not stored: no personal-data key is configured")]
    NoKey(IdentifierKind),
    #[error("database error: {0}")]
    Db(#[from] DbErr),
}

/// A race of the database is the one failure worth running the transaction again for.
impl platform::db::Contention for ManualError {
    fn is_contention(&self) -> bool {
        matches!(self, ManualError::Db(e) if platform::db::is_contention(e))
    }
}

fn conflict(code: &'static str, message: impl Into<String>) -> ManualError {
    ManualError::Conflict {
        code,
        message: message.into(),
    }
}

fn not_found(field: &'static str, message: impl Into<String>) -> ManualError {
    ManualError::NotFound {
        field,
        message: message.into(),
    }
}

/// Who decided, and why.
#[derive(Debug, Clone)]
pub struct Decision {
    pub operator: String,
    pub reason: String,
}

/// A manual merge that was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Merged {
    pub merge_id: i64,
    pub survivor: String,
    pub absorbed: String,
}

/// An un-merge or split that was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unmerged {
    pub unmerge_id: i64,
    pub kind: UnmergeKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merge_id: Option<i64>,
    pub survivor: String,
    pub restored: String,
    /// Identifiers now held by `restored` (sensitive values masked).
    pub identifiers: Vec<Identifier>,
    /// Timeline rows that changed profile.
    pub timeline_moved: usize,
}

fn public(m: &identifier::Model) -> Identifier {
    let kind = IdentifierKind::parse(&m.kind);
    let sensitive = kind.is_some_and(IdentifierKind::is_sensitive);
    let value = if sensitive {
        m.value_masked.clone()
    } else {
        m.value.clone().unwrap_or_else(|| m.value_masked.clone())
    };
    // Stored kinds are always known ones; an unknown one is shown as a CRM id rather than lost.
    Identifier::new(
        kind.unwrap_or(IdentifierKind::CrmId),
        m.namespace.clone(),
        value,
    )
}

impl Resolver {
    /// Merges `absorbed` into `survivor` on an operator's decision. The guards apply (a refusal is
    /// recorded and answered as a conflict with the reason code); a block left by an earlier
    /// un-merge of the two is lifted.
    pub async fn manual_merge(
        &self,
        tenant: &str,
        survivor: &str,
        absorbed: &str,
        by: &Decision,
    ) -> Result<Merged, ManualError> {
        if survivor == absorbed {
            return Err(ManualError::Invalid {
                code: "same_profile",
                field: "absorbed",
                message: "`absorbed` must be another profile than `survivor`".into(),
            });
        }
        let r = in_tx!(
            self,
            txn,
            ManualError::Db,
            merge_tx(&txn, self, tenant, survivor, absorbed, by).await
        )?;
        match r {
            MergeTx::Done(m) => {
                metrics::counter!(crate::metrics::MANUAL, "op" => "merge").increment(1);
                Ok(m)
            }
            MergeTx::Refused(reason) => Err(conflict(
                reason.as_str(),
                format!("the merge is refused by a guard: {}", reason.as_str()),
            )),
        }
    }

    /// Undoes `tenant`'s merge `merge_id`: the absorbed profile is active again with the
    /// identifiers still connected to it in the edge ledger, and the timeline rows of their
    /// events. A merge of another tenant is not found.
    pub async fn unmerge_in(
        &self,
        tenant: &str,
        merge_id: i64,
        by: &Decision,
    ) -> Result<Unmerged, ManualError> {
        let r = in_tx!(
            self,
            txn,
            ManualError::Db,
            unmerge_tx(&txn, tenant, merge_id, by).await
        )?;
        metrics::counter!(crate::metrics::MANUAL, "op" => "unmerge").increment(1);
        Ok(r)
    }

    /// Takes one identifier off `tenant`'s profile `profile_id` into a new profile.
    pub async fn split(
        &self,
        tenant: &str,
        profile_id: &str,
        kind: IdentifierKind,
        namespace: &str,
        value: &str,
        by: &Decision,
    ) -> Result<Unmerged, ManualError> {
        let hash = match lookup_hash(self.pii.as_ref(), kind, namespace, value) {
            Ok(h) => h,
            Err(LookupError::BadValue(k)) => {
                return Err(ManualError::Invalid {
                    code: "invalid_value",
                    field: "identifier.value",
                    message: format!("`identifier.value` is not a valid {k}"),
                })
            }
            Err(LookupError::NoKey(k)) => return Err(ManualError::NoKey(k)),
            Err(LookupError::Db(e)) => return Err(ManualError::Db(e)),
        };
        let key = Key {
            kind,
            namespace: namespace.trim().to_string(),
            hash,
        };
        let r = in_tx!(
            self,
            txn,
            ManualError::Db,
            split_tx(&txn, tenant, profile_id, &key, by).await
        )?;
        metrics::counter!(crate::metrics::MANUAL, "op" => "split").increment(1);
        Ok(r)
    }
}
