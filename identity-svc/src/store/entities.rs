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
        /// Derived fields (JSON object by dotted key), see `domain::derive`.
        pub fields: Option<String>,
        /// Derived relationship state (JSON of `proto::identity::Relations`).
        pub relations: Option<String>,
        /// Grows with every change of the derived state (`profile.updated.version`).
        pub version: i64,
        /// Name or nickname, for prefix search.
        pub display_name: Option<String>,
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

/// What one source said about one field of one identifier's person (the newest statement; the
/// earliest for first touch). `value` is JSON.
pub mod property_record {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "property_records")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub tenant_id: String,
        pub identifier_id: i64,
        pub field: String,
        pub source: String,
        pub trust: String,
        pub value: String,
        pub observed_at: DateTimeUtc,
        pub event_id: Option<String>,
        pub updated_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Subscription state of one OA openid (`changed_at`: event time of the last change applied).
pub mod oa_subscription {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "oa_subscriptions")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub tenant_id: String,
        pub identifier_id: i64,
        pub app_id: String,
        pub subscribed: bool,
        pub scene: Option<String>,
        pub changed_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// A WeCom rep's follow of one external contact (`deleted_at` set once either side deleted).
pub mod wecom_follow {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "wecom_follows")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub tenant_id: String,
        pub identifier_id: i64,
        pub corp_id: String,
        pub user_id: String,
        pub remark: Option<String>,
        pub add_way: Option<i32>,
        pub state: Option<String>,
        pub added_at: DateTimeUtc,
        pub deleted_at: Option<DateTimeUtc>,
        pub changed_at: DateTimeUtc,
        /// The corp tags in the rep's view, a JSON array of WeCom tag ids (`None`: not known).
        pub corp_tags: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Membership of one external member (by the hash of their external_userid, so it is kept even
/// before the member is known) in one customer group.
pub mod group_member {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "group_members")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub tenant_id: String,
        pub corp_id: String,
        pub chat_id: String,
        pub member_hash: String,
        pub joined_at: DateTimeUtc,
        pub left_at: Option<DateTimeUtc>,
        pub changed_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// A value refused on ingest, with the reason.
pub mod data_quality {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "data_quality_log")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub tenant_id: String,
        pub profile_id: Option<String>,
        pub event_id: Option<String>,
        pub field: String,
        pub value: String,
        pub reason: String,
        pub source: String,
        pub created_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// A tenant-declared custom field (`custom.<name>`).
pub mod custom_field {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "custom_fields")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub tenant_id: String,
        pub name: String,
        pub value_type: String,
        pub label: String,
        pub created_by: String,
        pub created_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// A personalised binding token (千人千面码): a QR scene or contact-me `state` that names a
/// known profile, so whoever follows or adds through it is merged into that profile.
pub mod binding_token {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "binding_tokens")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub token: String,
        pub tenant_id: String,
        pub profile_id: String,
        pub created_by: String,
        pub created_at: DateTimeUtc,
        pub expires_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// A note (follow-up record) on a customer, on the profile it was written on; `deleted_at` set
/// once deleted (the row stays).
pub mod note {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "notes")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant_id: String,
        pub profile_id: String,
        pub author: String,
        pub note_type: String,
        #[sea_orm(column_type = "Text")]
        pub text: String,
        pub next_follow_up_at: Option<DateTimeUtc>,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
        pub deleted_at: Option<DateTimeUtc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
