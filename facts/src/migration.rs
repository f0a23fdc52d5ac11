//! The migration that creates the facts tables (exactly [`rules::schema::statements`]), those that
//! add to a projection made before a table existed, and the projection's own bookkeeping: the day
//! each tenant's rolling counters were rolled to (`facts_clock`) and the profiles whose counters
//! must be recomputed before the next roll completes (`facts_rolling_dirty`). Each service that
//! keeps a projection adds it to its migrator.

use platform::db::schema::{str_col, ts_col};
use rules::schema::{self, SchemaStatement};
use sea_orm::Statement;
use sea_orm_migration::prelude::*;

#[derive(DeriveIden)]
pub enum FactsClock {
    Table,
    TenantId,
    RolledTo,
    UpdatedAt,
}

#[derive(DeriveIden)]
pub enum FactsRollingDirty {
    Table,
    TenantId,
    ProfileId,
}

/// Creates the facts tables and the rolling bookkeeping.
pub struct CreateFactsTables;

impl MigrationName for CreateFactsTables {
    fn name(&self) -> &str {
        "m20260501_000000_create_facts_tables"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateFactsTables {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for s in schema::statements() {
            match s {
                SchemaStatement::Table(t) => m.create_table(t).await?,
                SchemaStatement::Index(i) => m.create_index(i).await?,
            }
        }
        m.create_table(
            Table::create()
                .table(FactsClock::Table)
                .if_not_exists()
                .col(str_col(FactsClock::TenantId, 64).primary_key())
                .col(ColumnDef::new(FactsClock::RolledTo).date().null())
                .col(ts_col(FactsClock::UpdatedAt))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(FactsRollingDirty::Table)
                .if_not_exists()
                .col(str_col(FactsRollingDirty::TenantId, 64))
                .col(str_col(FactsRollingDirty::ProfileId, 36))
                .primary_key(
                    Index::create()
                        .col(FactsRollingDirty::TenantId)
                        .col(FactsRollingDirty::ProfileId),
                )
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            FactsRollingDirty::Table.into_iden(),
            FactsClock::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(t).if_exists().to_owned())
                .await?;
        }
        for t in schema::drop_statements() {
            m.drop_table(t).await?;
        }
        Ok(())
    }
}

/// Creates `facts_score` ([`rules::schema::score_table`]) in a projection made before it existed
/// (a new one has it from [`CreateFactsTables`]).
pub struct CreateScoreFacts;

impl MigrationName for CreateScoreFacts {
    fn name(&self) -> &str {
        "m20261207_000000_create_facts_score"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateScoreFacts {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(schema::score_table()).await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(
            Table::drop()
                .table(rules::schema::FactsTable::FactsScore)
                .if_exists()
                .to_owned(),
        )
        .await
    }
}

/// Creates what analytics read ([`rules::schema::analytics_tables`] with their indexes, and
/// `facts_event.hour`) in a projection made before they existed (a new one has them from
/// [`CreateFactsTables`]). Every service whose projection removes a merged profile's facts runs
/// it: the removal names these tables.
pub struct CreateAnalyticsFacts;

impl MigrationName for CreateAnalyticsFacts {
    fn name(&self) -> &str {
        "m20261215_000000_create_analytics_facts"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateAnalyticsFacts {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        use rules::schema::{FactsCol, FactsTable};
        for t in schema::analytics_tables() {
            m.create_table(t).await?;
        }
        for (table, name, i) in schema::analytics_indexes() {
            if !m.has_index(table.to_string(), name).await? {
                m.create_index(i).await?;
            }
        }
        let (events, hour) = (FactsTable::FactsEvent, FactsCol::Hour);
        if !m.has_column(events.to_string(), hour.to_string()).await? {
            m.alter_table(
                Table::alter()
                    .table(events)
                    .add_column(schema::event_hour_col())
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        use rules::schema::{FactsCol, FactsTable};
        for t in [
            FactsTable::FactsFirstSeen,
            FactsTable::FactsActivity,
            FactsTable::FactsActivityTenant,
        ] {
            m.drop_table(Table::drop().table(t).if_exists().to_owned())
                .await?;
        }
        m.alter_table(
            Table::alter()
                .table(FactsTable::FactsEvent)
                .drop_column(FactsCol::Hour)
                .to_owned(),
        )
        .await
    }
}

/// Adds the summary columns of `facts_profile` ([`rules::schema::profile_summary_cols`]) that a
/// projection made before they were kept lacks.
async fn add_summary_cols(m: &SchemaManager<'_>) -> Result<(), DbErr> {
    let profiles = rules::schema::FactsTable::FactsProfile;
    for col in schema::profile_summary_cols() {
        let name = col.get_column_name();
        if !m.has_column(profiles.to_string(), name).await? {
            let added = m
                .alter_table(
                    Table::alter()
                        .table(profiles)
                        .add_column(col.to_owned())
                        .to_owned(),
                )
                .await;
            match added {
                // SQLite's pooled connections can answer `has_column` from a schema read
                // before another connection's ALTER: the column is there, which is the point.
                Err(e) if e.to_string().to_lowercase().contains("duplicate column") => {}
                other => other?,
            }
        }
    }
    Ok(())
}

/// Adds `facts_profile.tag_count` and `content_day` ([`rules::schema::profile_summary_cols`])
/// to a projection made before they were kept, and fills them from the rows
/// they summarise (a new projection has them from [`CreateFactsTables`]); and drops a key's
/// repeated values from `facts_property`, which writers now store once
/// ([`rules::FactValue::stored_distinct`]).
pub struct ProfileSummaryFacts;

impl MigrationName for ProfileSummaryFacts {
    fn name(&self) -> &str {
        "m20261216_000000_facts_profile_summary"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for ProfileSummaryFacts {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        use rules::schema::Recount;
        add_summary_cols(m).await?;
        let db = m.get_connection();
        let b = db.get_database_backend();
        // The later of two rows of a key stored alike (the derived table lets MySQL read the
        // table it deletes from).
        db.execute(Statement::from_string(
            b,
            "DELETE FROM facts_property WHERE (tenant_id, profile_id, pkey, ord) IN \
             (SELECT tenant_id, profile_id, pkey, ord FROM \
              (SELECT p.tenant_id, p.profile_id, p.pkey, p.ord \
               FROM facts_property p JOIN facts_property q \
                 ON q.tenant_id = p.tenant_id AND q.profile_id = p.profile_id \
                AND q.pkey = p.pkey AND q.ord < p.ord AND q.vtype = p.vtype \
                AND (q.s = p.s OR (q.s IS NULL AND p.s IS NULL)) \
                AND (q.n = p.n OR (q.n IS NULL AND p.n IS NULL))) AS dup)",
        ))
        .await?;
        db.execute(b.build(&schema::recount_tags(Recount::Everything)))
            .await?;
        db.execute(b.build(&schema::recount_content_day(Recount::Everything)))
            .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        use rules::schema::{FactsCol, FactsTable};
        for col in [FactsCol::TagCount, FactsCol::ContentDay] {
            m.alter_table(
                Table::alter()
                    .table(FactsTable::FactsProfile)
                    .drop_column(col)
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }
}

/// Creates `facts_stage_entry` with its index ([`rules::schema::stage_entry_table`]): the stage
/// history tagging counts stage conversion from. Entries are kept from the first
/// `lead.stage_changed` handled after it exists.
pub struct CreateStageFacts;

impl MigrationName for CreateStageFacts {
    fn name(&self) -> &str {
        "m20261217_000002_create_facts_stage_entry"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateStageFacts {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let (table, index) = schema::stage_entry_table();
        m.create_table(table).await?;
        let t = rules::schema::FactsTable::FactsStageEntry;
        if !m
            .has_index(t.to_string(), "ix_facts_stage_entry_day")
            .await?
        {
            m.create_index(index).await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(
            Table::drop()
                .table(rules::schema::FactsTable::FactsStageEntry)
                .if_exists()
                .to_owned(),
        )
        .await
    }
}

/// Adds `facts_profile`'s event-kind counts ([`rules::schema::KIND_COLS`]) to a projection made
/// before they were kept and fills them from the rolling rows they count (a new projection has
/// them from [`CreateFactsTables`]).
pub struct KindCountFacts;

impl MigrationName for KindCountFacts {
    fn name(&self) -> &str {
        "m20261217_000003_facts_profile_kind_counts"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for KindCountFacts {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        use rules::schema::Recount;
        add_summary_cols(m).await?;
        let db = m.get_connection();
        let b = db.get_database_backend();
        db.execute(b.build(&schema::recount_kinds(Recount::Everything)))
            .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for col in rules::schema::KIND_COLS {
            m.alter_table(
                Table::alter()
                    .table(rules::schema::FactsTable::FactsProfile)
                    .drop_column(col)
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }
}

/// Creates `facts_tag_holders` and its log ([`rules::schema::FactsTable::FactsTagHolderLog`]) in
/// a projection made before they were kept and counts the holders from `facts_tag` (a new
/// projection has them from [`CreateFactsTables`]).
pub struct TagHolderFacts;

impl MigrationName for TagHolderFacts {
    fn name(&self) -> &str {
        "m20261218_000001_facts_tag_holders"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for TagHolderFacts {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // Every analytics table is created if missing: the two new ones among them.
        for t in schema::analytics_tables() {
            m.create_table(t).await?;
        }
        let db = m.get_connection();
        let b = db.get_database_backend();
        let (clear, count) = schema::count_tag_holders();
        for d in clear {
            db.execute(b.build(&d)).await?;
        }
        db.execute(b.build(&count)).await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        use rules::schema::FactsTable as T;
        for t in [T::FactsTagHolderLog, T::FactsTagHolders] {
            m.drop_table(Table::drop().table(t).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
