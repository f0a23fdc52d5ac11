//! The facts tables the SQL compiler reads, as sea-query statements valid on MySQL / MariaDB /
//! TiDB and SQLite: tagging-svc's migrations create exactly these ([`statements`]), and
//! [`insert_statements`] / [`delete_profile_statements`] / [`bump_daily`] write rows in the
//! encoding the evaluator uses. Raw events' content tags are their property
//! [`crate::CONTENT_TAGS_KEY`], stored as strings.
//!
//! Every string column is `VARBINARY`: MySQL-family `_bin` collations are PAD SPACE (`'a' = 'a '`
//! and `'a\t' < 'a'`), which would make the database disagree with the evaluator's byte-wise
//! string semantics; binary strings compare byte for byte everywhere, and SQLite's default
//! `BINARY` collation does the same. Lengths are bytes (4 per character of the validated limits).
//! MySQL flags such columns binary: read `profile_id` as bytes (`Vec<u8>`), not `String`.
//!
//! Invariant the compiler relies on: every profile with a row in any facts table has a row in
//! `facts_profile` (the universe that NOT and "did not do" start from). The one exception is a
//! merged-away profile's row in `facts_first_seen` (`merged_into` set), kept for an un-merge.
//!
//! Analytics read three tables no condition reads: `facts_first_seen` (when each profile was
//! first seen, by tenant-local day), `facts_activity` (events per profile, kind, tenant-local day
//! and hour) and `facts_activity_tenant` (the same summed over the tenant's profiles, in
//! [`ACTIVITY_SHARDS`] rows per hour so that concurrent writers rarely meet on one row).

use sea_query::{
    ColumnDef, Index, IndexCreateStatement, Table, TableCreateStatement, TableDropStatement,
};

mod write;

pub use write::{
    bump_activity_rows, bump_activity_tenant, bump_daily, bump_daily_many, bump_daily_rows,
    delete_profile_statements, insert_statements, recount_content_day,
    recount_content_day_and_kinds, recount_kinds, recount_tags, score_row, Recount, EVENT_COLS,
    SCORE_COLS,
};
pub use write::{count_tag_holders, fold_tag_holders, log_tag_holders, unhold_profile_tags};

/// The facts tables.
#[derive(sea_query::Iden, Debug, Clone, Copy, PartialEq, Eq)]
pub enum FactsTable {
    /// `(tenant_id, profile_id, version, updated_at)`: the universe of profiles.
    FactsProfile,
    /// One row per property value.
    FactsProperty,
    /// One row per tag a profile carries.
    FactsTag,
    /// One row per relationship in force.
    FactsRelation,
    /// Events per profile, metric and tenant-local day.
    FactsBehaviourDaily,
    /// Windowed sums of the daily buckets as of one day.
    FactsBehaviourRolling,
    /// Raw events.
    FactsEvent,
    /// One row per raw event property value.
    FactsEventProp,
    /// One row per lead score: `pkey` the model key, `n` the held part, `decaying` as of
    /// `folded_at` (unix seconds), `rate` in half-lives per second ([`crate::ScoreFold`]).
    FactsScore,
    /// When each profile was first seen: `seen_at` its own first sighting (null when unknown),
    /// `first_at` the earliest of its own and of the profiles merged into it, `day` that
    /// instant's tenant-local day, `merged_into` the survivor while it is merged away (else
    /// empty).
    FactsFirstSeen,
    /// Events per profile, event `kind` ([`EVERY_EVENT`] for all of them), tenant-local day and
    /// hour (0–23).
    FactsActivity,
    /// [`FactsTable::FactsActivity`] summed over the tenant's profiles, spread over `shard`s.
    FactsActivityTenant,
    /// One row per stage a lead entered (`history_id`: scoring's stage-history entry), with the
    /// instant and its tenant-local day: the history stage conversion is counted from.
    FactsStageEntry,
    /// Holders of each tag, as of the last compaction of [`FactsTable::FactsTagHolderLog`].
    FactsTagHolders,
    /// Changes to the holders of each tag since that compaction, one row per write (`seq`
    /// assigned by the database, `cnt` the change): insert-only, so concurrent writers never
    /// meet on a row; a tag's holders are its `facts_tag_holders` count plus its rows here.
    FactsTagHolderLog,
}

/// The `kind` of the activity rows that count every event.
pub const EVERY_EVENT: &str = "*";

/// Rows per (tenant, kind, day, hour) of `facts_activity_tenant`: a transaction adds to one of
/// them, so concurrent consumers of one tenant seldom wait for each other's row locks; reads
/// sum them.
pub const ACTIVITY_SHARDS: u32 = 16;

/// Columns of the facts tables.
#[derive(sea_query::Iden, Debug, Clone, Copy, PartialEq, Eq)]
pub enum FactsCol {
    TenantId,
    ProfileId,
    Version,
    UpdatedAt,
    Pkey,
    Ord,
    Vtype,
    S,
    SFold,
    N,
    TagId,
    Kind,
    Ns,
    Ref,
    Metric,
    Day,
    Cnt,
    #[iden = "last7"]
    Last7,
    #[iden = "last30"]
    Last30,
    #[iden = "last90"]
    Last90,
    Total,
    EventId,
    Decaying,
    FoldedAt,
    Rate,
    SeenAt,
    FirstAt,
    MergedInto,
    Hour,
    Shard,
    TagCount,
    ContentDay,
    #[iden = "kinds7"]
    Kinds7,
    #[iden = "kinds30"]
    Kinds30,
    #[iden = "kinds90"]
    Kinds90,
    KindsTotal,
    HistoryId,
    Stage,
    EnteredAt,
    Seq,
}

pub(crate) use FactsCol as C;
pub(crate) use FactsTable as T;

/// Column widths in bytes.
mod width {
    pub const TENANT: u32 = 64;
    pub const UUID: u32 = 36;
    pub const KEY: u32 = 128;
    pub const VALUE: u32 = 1020;
    pub const ID: u32 = 256;
    pub const REF: u32 = 512;
    pub const METRIC: u32 = 260;
    pub const RELATION_KIND: u32 = 16;
}

fn bin(col: FactsCol, bytes: u32) -> ColumnDef {
    ColumnDef::new(col).var_binary(bytes).not_null().to_owned()
}

fn int(col: FactsCol) -> ColumnDef {
    ColumnDef::new(col).integer().not_null().to_owned()
}

fn big(col: FactsCol) -> ColumnDef {
    ColumnDef::new(col).big_integer().not_null().to_owned()
}

fn table(name: FactsTable, cols: Vec<ColumnDef>, pk: &[FactsCol]) -> TableCreateStatement {
    let mut t = Table::create();
    t.table(name).if_not_exists();
    for mut c in cols {
        t.col(&mut c);
    }
    let mut key = Index::create();
    for c in pk {
        key.col(*c);
    }
    t.primary_key(&mut key);
    t.to_owned()
}

fn index(name: &str, on: FactsTable, cols: &[FactsCol]) -> IndexCreateStatement {
    let mut i = Index::create();
    i.name(name).table(on);
    for c in cols {
        i.col(*c);
    }
    i.to_owned()
}

/// The value columns shared by `facts_property` and `facts_event_prop`.
fn value_cols() -> Vec<ColumnDef> {
    vec![
        bin(C::Pkey, width::KEY),
        int(C::Ord),
        bin(C::Vtype, 1),
        ColumnDef::new(C::S)
            .var_binary(width::VALUE)
            .null()
            .to_owned(),
        ColumnDef::new(C::SFold)
            .var_binary(width::VALUE)
            .null()
            .to_owned(),
        ColumnDef::new(C::N).double().null().to_owned(),
    ]
}

/// `CREATE TABLE IF NOT EXISTS` of every facts table.
pub fn tables() -> Vec<TableCreateStatement> {
    let tenant = || bin(C::TenantId, width::TENANT);
    let profile = || bin(C::ProfileId, width::UUID);
    let mut property = vec![tenant(), profile()];
    property.extend(value_cols());
    let mut event_prop = vec![tenant(), bin(C::EventId, width::UUID)];
    event_prop.extend(value_cols());
    vec![
        table(
            T::FactsProfile,
            vec![
                tenant(),
                profile(),
                big(C::Version),
                ColumnDef::new(C::UpdatedAt)
                    .date_time()
                    .not_null()
                    .to_owned(),
            ]
            .into_iter()
            .chain(profile_summary_cols())
            .collect(),
            &[C::TenantId, C::ProfileId],
        ),
        table(
            T::FactsProperty,
            property,
            &[C::TenantId, C::ProfileId, C::Pkey, C::Ord],
        ),
        table(
            T::FactsTag,
            vec![tenant(), profile(), bin(C::TagId, width::ID)],
            &[C::TenantId, C::TagId, C::ProfileId],
        ),
        table(
            T::FactsRelation,
            vec![
                tenant(),
                profile(),
                bin(C::Kind, width::RELATION_KIND),
                bin(C::Ns, width::ID),
                bin(C::Ref, width::REF),
            ],
            &[C::TenantId, C::Kind, C::Ns, C::Ref, C::ProfileId],
        ),
        table(
            T::FactsBehaviourDaily,
            vec![
                tenant(),
                profile(),
                bin(C::Metric, width::METRIC),
                ColumnDef::new(C::Day).date().not_null().to_owned(),
                int(C::Cnt),
            ],
            &[C::TenantId, C::Metric, C::Day, C::ProfileId],
        ),
        table(
            T::FactsBehaviourRolling,
            vec![
                tenant(),
                profile(),
                bin(C::Metric, width::METRIC),
                int(C::Last7),
                int(C::Last30),
                int(C::Last90),
                big(C::Total),
            ],
            &[C::TenantId, C::ProfileId, C::Metric],
        ),
        table(
            T::FactsEvent,
            vec![
                tenant(),
                bin(C::EventId, width::UUID),
                profile(),
                bin(C::Kind, width::KEY),
                ColumnDef::new(C::Day).date().not_null().to_owned(),
                event_hour_col(),
            ],
            &[C::TenantId, C::EventId],
        ),
        table(
            T::FactsEventProp,
            event_prop,
            &[C::TenantId, C::EventId, C::Pkey, C::Ord],
        ),
        score_table(),
    ]
    .into_iter()
    .chain(analytics_tables())
    .collect()
}

/// What `facts_profile` keeps about each profile's other facts, for counts over the tenant that
/// would otherwise be a DISTINCT over millions of rows: `tag_count`, the tags it holds (rows of
/// `facts_tag`), and `content_day`, the latest day with events on tagged content (a non-zero
/// `c:` bucket of `facts_behaviour_daily`). The writers recount them from those rows
/// ([`recount_tags`], [`recount_content_day`]) whenever they change them. They have no index:
/// a count over them reads the tenant's profile rows once (as its population count does), and
/// every tag or content event written would otherwise move an index entry as well.
pub fn profile_summary_cols() -> Vec<ColumnDef> {
    vec![
        ColumnDef::new(C::TagCount)
            .integer()
            .not_null()
            .default(0)
            .to_owned(),
        ColumnDef::new(C::ContentDay).date().null().to_owned(),
    ]
    .into_iter()
    .chain(KIND_COLS.iter().map(|c| {
        ColumnDef::new(*c)
            .integer()
            .not_null()
            .default(0)
            .to_owned()
    }))
    .collect()
}

/// `facts_profile`'s counts of the event kinds a profile has events of in the last 7 / 30 / 90
/// days and ever: its `e:` rows of `facts_behaviour_rolling` with the window's column above
/// zero ([`recount_kinds`]; every writer of the rolling rows recounts them), so a "distinct event
/// kinds" condition on a rolling window reads one column per profile instead of grouping
/// millions of rolling rows.
pub const KIND_COLS: [FactsCol; 4] = [C::Kinds7, C::Kinds30, C::Kinds90, C::KindsTotal];

/// `facts_event.hour`: the event's tenant-local hour, null for events recorded before it was
/// kept (their activity is not counted, so an un-merge has none of theirs to move).
pub fn event_hour_col() -> ColumnDef {
    ColumnDef::new(C::Hour).small_integer().null().to_owned()
}

/// The tables analytics read ([`FactsTable::FactsFirstSeen`], [`FactsTable::FactsActivity`],
/// [`FactsTable::FactsActivityTenant`], [`FactsTable::FactsTagHolders`] and its log).
pub fn analytics_tables() -> Vec<TableCreateStatement> {
    let tenant = || bin(C::TenantId, width::TENANT);
    let day = || ColumnDef::new(C::Day).date().not_null().to_owned();
    let hour = || {
        ColumnDef::new(C::Hour)
            .small_integer()
            .not_null()
            .to_owned()
    };
    vec![
        table(
            T::FactsFirstSeen,
            vec![
                tenant(),
                bin(C::ProfileId, width::UUID),
                ColumnDef::new(C::SeenAt).date_time().null().to_owned(),
                ColumnDef::new(C::FirstAt).date_time().not_null().to_owned(),
                day(),
                bin(C::MergedInto, width::UUID),
            ],
            &[C::TenantId, C::ProfileId],
        ),
        table(
            T::FactsActivity,
            vec![
                tenant(),
                bin(C::ProfileId, width::UUID),
                bin(C::Kind, width::KEY),
                day(),
                hour(),
                int(C::Cnt),
            ],
            &[C::TenantId, C::Kind, C::Day, C::Hour, C::ProfileId],
        ),
        table(
            T::FactsActivityTenant,
            vec![
                tenant(),
                bin(C::Kind, width::KEY),
                day(),
                hour(),
                ColumnDef::new(C::Shard)
                    .small_integer()
                    .not_null()
                    .to_owned(),
                big(C::Cnt),
            ],
            &[C::TenantId, C::Kind, C::Day, C::Hour, C::Shard],
        ),
        table(
            T::FactsTagHolders,
            vec![tenant(), bin(C::TagId, width::ID), big(C::Cnt)],
            &[C::TenantId, C::TagId],
        ),
        Table::create()
            .table(T::FactsTagHolderLog)
            .if_not_exists()
            .col(
                ColumnDef::new(C::Seq)
                    .big_integer()
                    .not_null()
                    .auto_increment()
                    .primary_key(),
            )
            .col(tenant())
            .col(bin(C::TagId, width::ID))
            .col(big(C::Cnt))
            .to_owned(),
    ]
}

/// The secondary indexes of [`analytics_tables`]: (table, index name, statement).
pub fn analytics_indexes() -> Vec<(FactsTable, &'static str, IndexCreateStatement)> {
    use FactsCol::*;
    [
        // New profiles per day: the live rows of a tenant by day, without visiting rows; and
        // the rows merged into a survivor.
        (
            "ix_facts_first_seen_day",
            T::FactsFirstSeen,
            &[TenantId, MergedInto, Day, ProfileId][..],
        ),
        // A profile's activity rows (merges, un-merges, removal).
        (
            "ix_facts_activity_profile",
            T::FactsActivity,
            &[TenantId, ProfileId, Kind, Day, Hour, Cnt][..],
        ),
    ]
    .into_iter()
    .map(|(name, t, cols)| (t, name, index(name, t, cols)))
    .collect()
}

/// `facts_stage_entry` ([`FactsTable::FactsStageEntry`]), keyed by scoring's history entry (a
/// redelivered change is one row), and its index by day and stage (the entries of a period).
pub fn stage_entry_table() -> (TableCreateStatement, IndexCreateStatement) {
    use FactsCol::*;
    (
        table(
            T::FactsStageEntry,
            vec![
                bin(TenantId, width::TENANT),
                big(HistoryId),
                bin(ProfileId, width::UUID),
                bin(Stage, width::KEY),
                ColumnDef::new(EnteredAt).date_time().not_null().to_owned(),
                ColumnDef::new(Day).date().not_null().to_owned(),
            ],
            &[TenantId, HistoryId],
        ),
        index(
            "ix_facts_stage_entry_day",
            T::FactsStageEntry,
            &[TenantId, Day, Stage, ProfileId, EnteredAt],
        ),
    )
}

/// `facts_score`, keyed by profile then model: a profile's scores are read and replaced
/// together, and a score leaf reads every row of one model of the tenant (its value depends on
/// the instant, so no index on it could serve the comparison).
pub fn score_table() -> TableCreateStatement {
    let double = |c: FactsCol| ColumnDef::new(c).double().not_null().to_owned();
    table(
        T::FactsScore,
        vec![
            bin(C::TenantId, width::TENANT),
            bin(C::ProfileId, width::UUID),
            bin(C::Pkey, width::KEY),
            double(C::N),
            double(C::Decaying),
            big(C::FoldedAt),
            double(C::Rate),
        ],
        &[C::TenantId, C::ProfileId, C::Pkey],
    )
}

/// The secondary indexes (names are unique per database, as SQLite requires). Created without
/// `IF NOT EXISTS`, which MySQL does not have for indexes.
pub fn indexes() -> Vec<IndexCreateStatement> {
    use FactsCol::*;
    vec![
        index(
            "ix_facts_property_s",
            T::FactsProperty,
            &[TenantId, Pkey, Vtype, S, ProfileId],
        ),
        index(
            "ix_facts_property_n",
            T::FactsProperty,
            &[TenantId, Pkey, Vtype, N, ProfileId],
        ),
        index(
            "ix_facts_property_fold",
            T::FactsProperty,
            &[TenantId, Pkey, Vtype, SFold, ProfileId],
        ),
        index("ix_facts_tag_profile", T::FactsTag, &[TenantId, ProfileId]),
        index(
            "ix_facts_relation_ref",
            T::FactsRelation,
            &[TenantId, Kind, Ref, ProfileId],
        ),
        index(
            "ix_facts_relation_profile",
            T::FactsRelation,
            &[TenantId, ProfileId],
        ),
        // The primary key (tenant, metric, day, profile) serves window sums by metric and day
        // (on MySQL the clustered index holds `cnt`); this one serves a profile's buckets — its
        // load for evaluation and the rolling counters' rebuild — without visiting rows.
        index(
            "ix_facts_daily_profile",
            T::FactsBehaviourDaily,
            &[TenantId, ProfileId, Metric, Day, Cnt],
        ),
        index(
            "ix_facts_rolling_7",
            T::FactsBehaviourRolling,
            &[TenantId, Metric, Last7, ProfileId],
        ),
        index(
            "ix_facts_rolling_30",
            T::FactsBehaviourRolling,
            &[TenantId, Metric, Last30, ProfileId],
        ),
        index(
            "ix_facts_rolling_90",
            T::FactsBehaviourRolling,
            &[TenantId, Metric, Last90, ProfileId],
        ),
        index(
            "ix_facts_rolling_total",
            T::FactsBehaviourRolling,
            &[TenantId, Metric, Total, ProfileId],
        ),
        index(
            "ix_facts_event_kind",
            T::FactsEvent,
            &[TenantId, Kind, Day, ProfileId],
        ),
        index(
            "ix_facts_event_profile",
            T::FactsEvent,
            &[TenantId, ProfileId],
        ),
        index(
            "ix_facts_event_prop_s",
            T::FactsEventProp,
            &[TenantId, Pkey, Vtype, S, EventId],
        ),
    ]
    .into_iter()
    .chain(analytics_indexes().into_iter().map(|(_, _, i)| i))
    .collect()
}

/// One schema statement, in the order to run them.
#[derive(Debug, Clone)]
pub enum SchemaStatement {
    Table(TableCreateStatement),
    Index(IndexCreateStatement),
}

/// Every table, then every index.
pub fn statements() -> Vec<SchemaStatement> {
    tables()
        .into_iter()
        .map(SchemaStatement::Table)
        .chain(indexes().into_iter().map(SchemaStatement::Index))
        .collect()
}

/// `DROP TABLE IF EXISTS` of every facts table (for a migration's `down`).
pub fn drop_statements() -> Vec<TableDropStatement> {
    [
        T::FactsProfile,
        T::FactsProperty,
        T::FactsTag,
        T::FactsRelation,
        T::FactsBehaviourDaily,
        T::FactsBehaviourRolling,
        T::FactsEvent,
        T::FactsEventProp,
        T::FactsScore,
        T::FactsFirstSeen,
        T::FactsActivity,
        T::FactsActivityTenant,
        T::FactsTagHolders,
        T::FactsTagHolderLog,
    ]
    .into_iter()
    .map(|t| Table::drop().table(t).if_exists().to_owned())
    .collect()
}
