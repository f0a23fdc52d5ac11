//! Tables of the identity service, their migrations, the transactional resolution of one event
//! ([`resolve`]), the reads behind the internal API ([`queries`]), the notes reps and operators
//! keep on customers ([`notes`]) and the tenant's source registry ([`sources`]).

/// Runs `$body` (an expression awaiting on `$txn`) in a transaction that takes the write lock
/// first, committed when it succeeds, and again after a short pause while it meets a race
/// ([`platform::db::retry_on_contention`], counted under `identity.manual`). `$db` is the variant
/// of the body's error type that carries a `DbErr`; the error type says what a race is
/// ([`platform::db::Contention`]).
macro_rules! in_tx {
    ($self:ident, $txn:ident, $db:path, $body:expr) => {{
        platform::db::retry_on_contention("identity.manual", $self.tx_attempts, || async {
            let $txn = platform::db::begin_write(&$self.db).await.map_err($db)?;
            match $body {
                Ok(v) => $txn.commit().await.map(|_| v).map_err($db),
                Err(e) => {
                    let _ = $txn.rollback().await;
                    Err(e)
                }
            }
        })
        .await
        .0
    }};
}

pub mod bindings;
pub mod directory;
pub mod edits;
pub mod entities;
pub mod migrations;
pub mod notes;
pub mod queries;
pub mod reach;
pub mod resolve;
pub mod sources;
pub mod state;
pub mod unmerge;

use platform::db::migrations::{CreateInbox, CreateOutbox};
use sea_orm_migration::{MigrationTrait, MigratorTrait};

pub use resolve::{Outcome, Resolution, ResolveError, Resolver};

/// Every migration of this service, in order.
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(CreateInbox),
            Box::new(CreateOutbox),
            Box::new(migrations::CreateIdentityTables),
            Box::new(migrations::ReversibleMerges),
            Box::new(migrations::ProfileStateTables),
            Box::new(migrations::FollowCorpTags),
            Box::new(migrations::CreateNotes),
            Box::new(migrations::CreateSourceRegistry),
        ]
    }
}

/// Profile status of a live profile.
pub const ACTIVE: &str = "active";
/// Profile status of a profile absorbed into another (`merged_into`).
pub const MERGED: &str = "merged";

pub use platform::db::is_contention;
