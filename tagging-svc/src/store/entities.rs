//! sea-orm entities of the tagging tables (see [`super::migrations`] for the schema). The facts
//! tables are written through the `rules` crate's statements, not through entities.

/// A tag group: `selection` is `single` (a profile holds at most one of its tags) or `multi`.
pub mod tag_group {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "tag_groups")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant_id: String,
        pub name: String,
        pub selection: String,
        /// Tags of this group are written back to WeCom corp tags.
        pub sync_wecom: bool,
        pub corp_id: Option<String>,
        pub wecom_group_id: Option<String>,
        pub status: String,
        pub created_by: String,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// A tag; `status` is `active` or `retired` (kept for history, no longer set).
pub mod tag {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "tags")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant_id: String,
        pub group_id: String,
        pub name: String,
        pub description: String,
        pub status: String,
        /// The WeCom corp tag this tag mirrors or is written back to.
        pub wecom_tag_id: Option<String>,
        pub created_by: String,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// One reason a profile holds a tag: `source` (manual, rule, import, wecom, trigger) and `origin`
/// (the rule id for rule tags, empty otherwise). A profile holds the tag while any row exists.
pub mod membership {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "tag_memberships")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub tenant_id: String,
        pub profile_id: String,
        pub tag_id: String,
        pub source: String,
        pub origin: String,
        pub actor: Option<String>,
        /// The profile this row was held by before a merge moved it (an un-merge moves it back).
        pub merged_from: Option<String>,
        pub created_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// A tag rule: the tag is set (mode `add_only`) or kept equal to (mode `add_remove`) the
/// condition (a `rules` document, JSON).
pub mod rule {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "tag_rules")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant_id: String,
        pub tag_id: String,
        pub name: String,
        pub condition: String,
        pub mode: String,
        pub enabled: bool,
        pub version: i64,
        pub created_by: String,
        pub updated_by: String,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
        pub deleted_at: Option<DateTimeUtc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// When a profile's result for a rule may change without a new event (a window edge).
pub mod schedule {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "rule_schedule")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub profile_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub rule_id: String,
        pub due_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// A backfill (or other bulk) job with its progress.
pub mod job {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "tagging_jobs")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant_id: String,
        pub kind: String,
        pub rule_id: Option<String>,
        pub status: String,
        pub total: i64,
        pub done: i64,
        pub added: i64,
        pub removed: i64,
        pub error: Option<String>,
        pub created_by: String,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
        pub finished_at: Option<DateTimeUtc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The mirror of a WeCom corp tag or tag group.
pub mod corp_tag {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "corp_tags")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub corp_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub wecom_id: String,
        /// `tag` or `group`.
        pub kind: String,
        pub group_wecom_id: Option<String>,
        pub name: String,
        pub sort_order: i64,
        pub deleted: bool,
        pub tag_id: Option<String>,
        pub synced_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// An active WeCom follow of a profile (from `profile.updated`): whom `mark_tag` addresses.
pub mod wecom_contact {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "wecom_contacts")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub profile_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub corp_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub user_id: String,
        pub external_userid: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// A corp tag this service put on one rep's external contact (`mark_tag` accepted) and has not
/// taken off since.
pub mod wecom_mark {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "wecom_marks")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub corp_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub external_userid: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub user_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub wecom_tag_id: String,
        pub marked_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// A pending write-back of one tag to one rep's external contact (`mark_tag`).
pub mod sync_item {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "tag_sync_queue")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub tenant_id: String,
        pub corp_id: String,
        pub user_id: String,
        pub external_userid: String,
        pub wecom_tag_id: String,
        /// `add` or `remove`.
        pub action: String,
        /// `pending`, `done`, `failed`, `superseded`.
        pub status: String,
        pub attempts: i32,
        pub next_at: DateTimeUtc,
        pub last_error: Option<String>,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Mirror syncs of one corp's tag library: a sync is wanted while `requested > synced` (not
/// before `retry_at` after a failure); one process at a time runs it (`claimed_until`).
pub mod corp_tag_sync {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "corp_tag_syncs")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub corp_id: String,
        /// Grows with every request (event, API, start, refresh).
        pub requested: i64,
        /// The `requested` value the last successful sync started from.
        pub synced: i64,
        pub claimed_until: Option<DateTimeUtc>,
        pub retry_at: Option<DateTimeUtc>,
        pub last_synced_at: Option<DateTimeUtc>,
        pub last_error: Option<String>,
        pub updated_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
