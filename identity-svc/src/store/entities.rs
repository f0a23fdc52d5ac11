//! sea-orm entities of the identity tables (see [`super::migrations`] for the schema).

/// A customer profile. `status` is `active` or `merged` (then `merged_into` names the survivor).
pub mod profile {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "profiles")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant_id: String,
        pub status: String,
        pub merged_into: Option<String>,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// One identifier of a profile, unique on (tenant, kind, namespace, value_hash). Sensitive kinds
/// keep no clear `value`, only the sealed one and a mask.
pub mod identifier {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "identifiers")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub tenant_id: String,
        pub kind: String,
        pub namespace: String,
        pub value_hash: String,
        pub value: Option<String>,
        pub value_sealed: Option<String>,
        pub value_masked: String,
        pub profile_id: String,
        pub provenance: String,
        pub first_seen_event: String,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Append-only ledger of links: identifier → identifier (or → profile when `to_identifier_id` is
/// empty, for the first identifier of a new profile), with rule, evidence and author.
pub mod edge {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "identity_edges")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub tenant_id: String,
        pub from_identifier_id: i64,
        pub to_identifier_id: Option<i64>,
        pub profile_id: String,
        pub rule: String,
        pub evidence_event_id: Option<String>,
        pub created_at: DateTimeUtc,
        pub created_by: String,
        pub retracted_at: Option<DateTimeUtc>,
        /// The merge this edge proved (merge edges only), so an un-merge retracts exactly it.
        pub merge_id: Option<i64>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// A merge of `absorbed_id` into `survivor_id` with before/after snapshots (JSON).
pub mod merge {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "merges")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub tenant_id: String,
        pub survivor_id: String,
        pub absorbed_id: String,
        pub rule: String,
        pub evidence_event_id: Option<String>,
        #[sea_orm(column_type = "Text")]
        pub before_snapshot: String,
        #[sea_orm(column_type = "Text")]
        pub after_snapshot: String,
        pub operator: Option<String>,
        pub created_at: DateTimeUtc,
        /// Why an operator merged them (manual merges).
        #[sea_orm(column_type = "Text", nullable)]
        pub reason: Option<String>,
        /// Set when the merge was undone (see `unmerge_id`).
        pub unmerged_at: Option<DateTimeUtc>,
        pub unmerge_id: Option<i64>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// A merge (or attach) the guards refused, with the candidate profiles (JSON array), rule and
/// reason.
pub mod refusal {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "merge_refusals")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub tenant_id: String,
        #[sea_orm(column_type = "Text")]
        pub candidate_ids: String,
        pub rule: String,
        pub reason: String,
        pub evidence_event_id: Option<String>,
        pub created_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// One resolved event on the profile it was resolved to (kept there after a merge, so the
/// survivor's timeline is its own rows plus those of the profiles merged into it).
pub mod timeline {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "timeline")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub tenant_id: String,
        pub profile_id: String,
        pub event_id: String,
        pub event_type: String,
        pub occurred_at: DateTimeUtc,
        #[sea_orm(column_type = "Text")]
        pub summary: String,
        /// Row ids of the identifiers the event carried (JSON array, subject first), so an
        /// un-merge can send the row back to the side owning them. Absent on rows written before
        /// reversible merges: those stay on the profile they were resolved to.
        #[sea_orm(column_type = "Text", nullable)]
        pub identifier_ids: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// An un-merge (`kind` = `unmerge`, of merge `merge_id`) or a split (`kind` = `split`, one
/// identifier taken off a profile): who, when, why, the identifiers that moved to `restored_id`
/// (JSON) and both profiles afterwards (JSON).
pub mod unmerge {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "unmerges")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub tenant_id: String,
        pub kind: String,
        pub merge_id: Option<i64>,
        pub survivor_id: String,
        pub restored_id: String,
        #[sea_orm(column_type = "Text")]
        pub identifiers: String,
        #[sea_orm(column_type = "Text")]
        pub after_snapshot: String,
        pub operator: String,
        #[sea_orm(column_type = "Text")]
        pub reason: String,
        pub created_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Two profiles an operator separated: automatic resolution refuses to merge them again
/// (reason `manually_unmerged`) until a manual merge lifts the block. `profile_a` < `profile_b`.
pub mod block {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "merge_blocks")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub tenant_id: String,
        pub profile_a: String,
        pub profile_b: String,
        pub unmerge_id: Option<i64>,
        pub created_by: String,
        pub created_at: DateTimeUtc,
        pub lifted_at: Option<DateTimeUtc>,
        pub lifted_by: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
