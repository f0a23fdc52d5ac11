//! sea-orm entities of the saved-segment tables (see [`super::migration`] for the schema).

/// A saved segment: a named condition of a tenant with its refresh mode and last size.
pub mod segment {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "saved_segments")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant_id: String,
        pub name: String,
        /// `name` while active, `None` once archived (unique per tenant).
        pub live_name: Option<String>,
        pub description: String,
        /// Who created it (the credential's actor).
        pub owner: String,
        /// The condition document (JSON), as validated on write.
        pub condition: String,
        /// `scheduled` or `manual`.
        pub refresh_mode: String,
        pub interval_minutes: i64,
        /// `active` or `archived`.
        pub status: String,
        /// Profiles matching at the last refresh (`None` before the first, or since the
        /// condition changed).
        pub size: Option<i64>,
        pub refreshed_at: Option<DateTimeUtc>,
        /// When the scheduled refresh is due (`None`: manual or archived).
        pub due_at: Option<DateTimeUtc>,
        /// A process refreshing it holds it until then.
        pub claimed_until: Option<DateTimeUtc>,
        /// Why the last refresh failed (`None` after a successful one).
        pub last_error: Option<String>,
        /// Bumped by every change of the definition.
        pub version: i64,
        pub updated_by: String,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
        pub archived_at: Option<DateTimeUtc>,
        /// The version whose members `saved_segment_members` holds in full (a real-time
        /// segment once its build job is done; `None` while building and when not real-time).
        pub members_version: Option<i64>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// One refresh of a saved segment: how many profiles matched then.
pub mod size {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "saved_segment_sizes")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub tenant_id: String,
        pub segment_id: String,
        pub at: DateTimeUtc,
        pub count: i64,
        /// `manual` (an operator's refresh) or `scheduled`.
        pub cause: String,
        /// The operator of a manual refresh.
        pub actor: Option<String>,
        /// The segment's version that was counted.
        pub segment_version: i64,
        pub took_ms: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// A saved segment's analytics breakdowns as of its last scheduled refresh.
pub mod breakdown {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "saved_segment_breakdowns")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub segment_id: String,
        pub tenant_id: String,
        /// The segment's version whose condition was broken down.
        pub segment_version: i64,
        /// The refresh's instant.
        pub at: DateTimeUtc,
        /// The segment's size then.
        pub total: i64,
        /// The dimensions (JSON array), in the order of `answers`.
        pub dimensions: String,
        /// Their answers (JSON array of distributions).
        pub answers: String,
        pub took_ms: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// A member of a real-time saved segment.
pub mod member {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "saved_segment_members")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub segment_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub profile_id: String,
        /// When it entered the segment.
        pub since: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
