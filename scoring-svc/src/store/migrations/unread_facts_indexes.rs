//! Drops the facts projection's value indexes scoring never reads.

use super::*;

/// Drops the facts projection's value indexes. They serve the `rules` crate's SQL compiler
/// (tagging-svc's bulk previews over every profile); scoring reads its projection one profile at
/// a time (`facts::load_profile`, merges, splits), which the primary keys and the `*_profile`
/// indexes serve, so keeping them would only multiply the index writes of every event.
pub struct DropUnreadFactsIndexes;

/// The value indexes of the facts tables (names as `rules::schema::indexes` creates them);
/// those the facts schema no longer has are skipped.
const UNREAD_FACTS_INDEXES: [&str; 11] = [
    "ix_facts_property_s",
    "ix_facts_property_n",
    "ix_facts_property_fold",
    "ix_facts_relation_ref",
    "ix_facts_daily_cnt",
    "ix_facts_rolling_7",
    "ix_facts_rolling_30",
    "ix_facts_rolling_90",
    "ix_facts_rolling_total",
    "ix_facts_event_kind",
    "ix_facts_event_prop_s",
];

/// The facts schema's indexes with their names and tables.
fn facts_indexes() -> Vec<(String, String, IndexCreateStatement)> {
    rules::schema::indexes()
        .into_iter()
        .map(|i| {
            // `CREATE INDEX "name" ON "table" (…)`
            let sql = i.to_string(SqliteQueryBuilder);
            let mut quoted = sql.split('"').skip(1).step_by(2);
            let name = quoted.next().unwrap_or_default().to_string();
            let table = quoted.next().unwrap_or_default().to_string();
            (name, table, i)
        })
        .collect()
}

impl MigrationName for DropUnreadFactsIndexes {
    fn name(&self) -> &str {
        "m20260601_000002_drop_unread_facts_indexes"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for DropUnreadFactsIndexes {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for (name, table, _) in facts_indexes() {
            if UNREAD_FACTS_INDEXES.contains(&name.as_str()) {
                m.drop_index(
                    Index::drop()
                        .name(&name)
                        .table(Alias::new(table))
                        .to_owned(),
                )
                .await?;
            }
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for (name, _, i) in facts_indexes() {
            if UNREAD_FACTS_INDEXES.contains(&name.as_str()) {
                m.create_index(i).await?;
            }
        }
        Ok(())
    }
}
