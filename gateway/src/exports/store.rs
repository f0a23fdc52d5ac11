//! The export-job tables and what is done to them: `export_jobs` (one row per job: what it
//! exports, for whom, how far it got, whether a process holds it) and `export_parts` (the
//! output, one row per page written, in order). A page's part and the job's progress are
//! written in one transaction, guarded by the number of parts the writer expects, so a job
//! resumed by another process after a dead holder's lease neither skips nor repeats a page.

use chrono::{DateTime, Duration, Utc};
use platform::db::schema::{big, dt_null, index, opt_str, str_col, text, ts_col};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DbErr,
    EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set, TransactionTrait,
};
use sea_orm_migration::prelude::*;
use serde::Serialize;
use utoipa::ToSchema;

/// Job states.
pub const QUEUED: &str = "queued";
pub const RUNNING: &str = "running";
pub const DONE: &str = "done";
pub const FAILED: &str = "failed";
/// Its output was dropped after the retention.
pub const EXPIRED: &str = "expired";

/// An export job.
pub mod job {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "export_jobs")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant_id: String,
        /// `audience`.
        pub kind: String,
        /// The saved segment exported.
        pub segment_id: String,
        /// `jsonl` or `csv`.
        pub format: String,
        /// What the export carries (JSON, as the runner's source reads it).
        pub spec: String,
        /// The principal the job reads as (JSON), as it was when the job was asked for.
        pub principal: String,
        pub status: String,
        /// The segment's size when the job was asked for (`None`: never counted).
        pub total: Option<i64>,
        /// Members read, rows written, bytes written, parts written.
        pub members: i64,
        pub rows: i64,
        pub bytes: i64,
        pub parts: i64,
        /// The profile id after which the next page starts (`None`: from the start).
        pub cursor: Option<String>,
        pub error: Option<String>,
        pub created_by: String,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
        pub finished_at: Option<DateTimeUtc>,
        /// When the output is dropped.
        pub expires_at: Option<DateTimeUtc>,
        /// A process running the job holds it until then.
        pub claimed_until: Option<DateTimeUtc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// One page of a job's output.
pub mod part {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "export_parts")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub job_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub seq: i64,
        pub body: Vec<u8>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// A job as the API shows it.
#[derive(Debug, Clone, Serialize, PartialEq, ToSchema)]
pub struct JobView {
    pub id: String,
    pub kind: String,
    pub segment_id: String,
    pub format: String,
    /// `queued`, `running`, `done`, `failed` or `expired`.
    pub status: String,
    /// The segment's size when the job was asked for (null: it was never counted).
    pub total: Option<i64>,
    /// Members read so far.
    pub members: i64,
    /// Rows written so far (members left out as unreachable are not written).
    pub rows: i64,
    pub bytes: i64,
    /// `members / total` in 0..=1 while running (1 once done; null when the total is unknown).
    pub progress: Option<f64>,
    pub error: Option<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// When the file is dropped.
    pub expires_at: Option<DateTime<Utc>>,
}

impl From<job::Model> for JobView {
    fn from(j: job::Model) -> Self {
        let progress = match (j.status.as_str(), j.total) {
            (DONE, _) => Some(1.0),
            (_, Some(t)) if t > 0 => Some((j.members as f64 / t as f64).min(1.0)),
            (_, Some(_)) => Some(0.0),
            _ => None,
        };
        JobView {
            id: j.id,
            kind: j.kind,
            segment_id: j.segment_id,
            format: j.format,
            status: j.status,
            total: j.total,
            members: j.members,
            rows: j.rows,
            bytes: j.bytes,
            progress,
            error: j.error,
            created_by: j.created_by,
            created_at: j.created_at,
            finished_at: j.finished_at,
            expires_at: j.expires_at,
        }
    }
}

/// A job to record.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub tenant_id: String,
    pub kind: String,
    pub segment_id: String,
    pub format: String,
    pub spec: String,
    pub principal: String,
    pub total: Option<i64>,
    pub created_by: String,
}

/// Records a queued job.
pub async fn create(
    db: &DatabaseConnection,
    n: NewJob,
    now: DateTime<Utc>,
) -> Result<job::Model, DbErr> {
    job::ActiveModel {
        id: Set(uuid::Uuid::now_v7().to_string()),
        tenant_id: Set(n.tenant_id),
        kind: Set(n.kind),
        segment_id: Set(n.segment_id),
        format: Set(n.format),
        spec: Set(n.spec),
        principal: Set(n.principal),
        status: Set(QUEUED.into()),
        total: Set(n.total),
        members: Set(0),
        rows: Set(0),
        bytes: Set(0),
        parts: Set(0),
        cursor: Set(None),
        error: Set(None),
        created_by: Set(n.created_by.chars().take(64).collect()),
        created_at: Set(now),
        updated_at: Set(now),
        finished_at: Set(None),
        expires_at: Set(None),
        claimed_until: Set(None),
    }
    .insert(db)
    .await
}

fn open() -> Condition {
    Condition::all().add(job::Column::Status.is_in([QUEUED, RUNNING]))
}

fn free(now: DateTime<Utc>) -> Condition {
    Condition::any()
        .add(job::Column::ClaimedUntil.is_null())
        .add(job::Column::ClaimedUntil.lte(now))
}

/// Takes the job `id` for `lease` when it is open and no live process holds it: the job as
/// taken, or `None`.
pub async fn claim(
    db: &DatabaseConnection,
    id: &str,
    now: DateTime<Utc>,
    lease: Duration,
) -> Result<Option<job::Model>, DbErr> {
    let taken = job::Entity::update_many()
        .col_expr(job::Column::Status, Expr::value(RUNNING))
        .col_expr(job::Column::ClaimedUntil, Expr::value(Some(now + lease)))
        .col_expr(job::Column::UpdatedAt, Expr::value(now))
        .filter(job::Column::Id.eq(id))
        .filter(open())
        .filter(free(now))
        .exec(db)
        .await?
        .rows_affected;
    if taken == 0 {
        return Ok(None);
    }
    job::Entity::find_by_id(id.to_string()).one(db).await
}

/// Open jobs no live process holds (a stopped process's, or queued ones), oldest first.
pub async fn claimable(
    db: &DatabaseConnection,
    now: DateTime<Utc>,
    limit: u64,
) -> Result<Vec<String>, DbErr> {
    job::Entity::find()
        .select_only()
        .column(job::Column::Id)
        .filter(open())
        .filter(free(now))
        .order_by_asc(job::Column::CreatedAt)
        .limit(limit)
        .into_tuple::<String>()
        .all(db)
        .await
}

/// A page written: its bytes and what it moved.
#[derive(Debug, Clone, Default)]
pub struct Written {
    pub body: Vec<u8>,
    pub members: u64,
    pub rows: u64,
    /// Where the next page starts (unchanged for a header).
    pub cursor: Option<String>,
}

/// Appends the job's next part (number `seq`, which must be its part count) and its progress
/// in one transaction, renewing the holder's lease. `false`: the job is no longer at `seq` or
/// no longer open (another process took it over): nothing is written.
pub async fn append(
    db: &DatabaseConnection,
    id: &str,
    seq: i64,
    w: &Written,
    now: DateTime<Utc>,
    lease: Duration,
) -> Result<bool, DbErr> {
    let txn = db.begin().await?;
    let moved = job::Entity::update_many()
        .col_expr(job::Column::Parts, Expr::value(seq + 1))
        .col_expr(job::Column::Cursor, Expr::value(w.cursor.clone()))
        .col_expr(
            job::Column::Members,
            Expr::col(job::Column::Members).add(w.members as i64),
        )
        .col_expr(
            job::Column::Rows,
            Expr::col(job::Column::Rows).add(w.rows as i64),
        )
        .col_expr(
            job::Column::Bytes,
            Expr::col(job::Column::Bytes).add(w.body.len() as i64),
        )
        .col_expr(job::Column::ClaimedUntil, Expr::value(Some(now + lease)))
        .col_expr(job::Column::UpdatedAt, Expr::value(now))
        .filter(job::Column::Id.eq(id))
        .filter(job::Column::Parts.eq(seq))
        .filter(job::Column::Status.eq(RUNNING))
        .exec(&txn)
        .await?
        .rows_affected;
    if moved == 0 {
        txn.rollback().await?;
        return Ok(false);
    }
    part::ActiveModel {
        job_id: Set(id.to_string()),
        seq: Set(seq),
        body: Set(w.body.clone()),
    }
    .insert(&txn)
    .await?;
    txn.commit().await?;
    Ok(true)
}

/// Marks the job done after `parts` parts (unless another process moved it on), its output
/// kept until `expires_at`.
pub async fn finish(
    db: &DatabaseConnection,
    id: &str,
    parts: i64,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> Result<bool, DbErr> {
    Ok(job::Entity::update_many()
        .col_expr(job::Column::Status, Expr::value(DONE))
        .col_expr(job::Column::FinishedAt, Expr::value(Some(now)))
        .col_expr(job::Column::ExpiresAt, Expr::value(Some(expires_at)))
        .col_expr(
            job::Column::ClaimedUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(job::Column::UpdatedAt, Expr::value(now))
        .filter(job::Column::Id.eq(id))
        .filter(job::Column::Parts.eq(parts))
        .filter(job::Column::Status.eq(RUNNING))
        .exec(db)
        .await?
        .rows_affected
        == 1)
}

/// Marks the job failed with `why`; its partial output is dropped at once.
pub async fn fail(
    db: &DatabaseConnection,
    id: &str,
    why: &str,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    job::Entity::update_many()
        .col_expr(job::Column::Status, Expr::value(FAILED))
        .col_expr(
            job::Column::Error,
            Expr::value(Some(why.chars().take(1_000).collect::<String>())),
        )
        .col_expr(job::Column::FinishedAt, Expr::value(Some(now)))
        .col_expr(
            job::Column::ClaimedUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(job::Column::UpdatedAt, Expr::value(now))
        .filter(job::Column::Id.eq(id))
        .filter(open())
        .exec(db)
        .await?;
    drop_parts(db, id).await
}

async fn drop_parts<C: ConnectionTrait>(conn: &C, id: &str) -> Result<(), DbErr> {
    part::Entity::delete_many()
        .filter(part::Column::JobId.eq(id))
        .exec(conn)
        .await
        .map(drop)
}

/// Lets go of the job `id` (this process is stopping): the next pass of any process takes it
/// over at once, where it was.
pub async fn release(db: &DatabaseConnection, id: &str) -> Result<(), DbErr> {
    job::Entity::update_many()
        .col_expr(
            job::Column::ClaimedUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .filter(job::Column::Id.eq(id))
        .filter(job::Column::Status.eq(RUNNING))
        .exec(db)
        .await
        .map(drop)
}

/// The job `id` of `tenant` (another tenant's is not found, as an unknown id).
pub async fn get_in(
    db: &DatabaseConnection,
    tenant: &str,
    id: &str,
) -> Result<Option<job::Model>, DbErr> {
    job::Entity::find_by_id(id.to_string())
        .filter(job::Column::TenantId.eq(tenant))
        .one(db)
        .await
}

/// The tenant's jobs, newest first: at most `limit` older than the job `before`.
pub async fn list(
    db: &DatabaseConnection,
    tenant: &str,
    before: Option<&str>,
    limit: u64,
) -> Result<Vec<job::Model>, DbErr> {
    let mut q = job::Entity::find().filter(job::Column::TenantId.eq(tenant));
    if let Some(b) = before {
        q = q.filter(job::Column::Id.lt(b));
    }
    q.order_by_desc(job::Column::Id).limit(limit).all(db).await
}

/// Parts `from..from + n` of the job's output, in order.
pub async fn parts(
    db: &DatabaseConnection,
    id: &str,
    from: i64,
    n: u64,
) -> Result<Vec<Vec<u8>>, DbErr> {
    Ok(part::Entity::find()
        .filter(part::Column::JobId.eq(id))
        .filter(part::Column::Seq.gte(from))
        .order_by_asc(part::Column::Seq)
        .limit(n)
        .all(db)
        .await?
        .into_iter()
        .map(|p| p.body)
        .collect())
}

/// Drops the output of done jobs past their retention (the job stays, `expired`): how many.
pub async fn prune(db: &DatabaseConnection, now: DateTime<Utc>) -> Result<u64, DbErr> {
    let ids: Vec<String> = job::Entity::find()
        .select_only()
        .column(job::Column::Id)
        .filter(job::Column::Status.eq(DONE))
        .filter(job::Column::ExpiresAt.lte(now))
        .limit(100)
        .into_tuple::<String>()
        .all(db)
        .await?;
    for id in &ids {
        let txn = db.begin().await?;
        drop_parts(&txn, id).await?;
        job::Entity::update_many()
            .col_expr(job::Column::Status, Expr::value(EXPIRED))
            .col_expr(job::Column::UpdatedAt, Expr::value(now))
            .filter(job::Column::Id.eq(id.as_str()))
            .exec(&txn)
            .await?;
        txn.commit().await?;
    }
    Ok(ids.len() as u64)
}

#[derive(DeriveIden)]
enum ExportJobs {
    Table,
    Id,
    TenantId,
    Kind,
    SegmentId,
    Format,
    Spec,
    Principal,
    Status,
    Total,
    Members,
    Rows,
    Bytes,
    Parts,
    Cursor,
    Error,
    CreatedBy,
    CreatedAt,
    UpdatedAt,
    FinishedAt,
    ExpiresAt,
    ClaimedUntil,
}

#[derive(DeriveIden)]
enum ExportParts {
    Table,
    JobId,
    Seq,
    Body,
}

/// Creates `export_jobs` and `export_parts`.
pub struct CreateExportJobs;

impl MigrationName for CreateExportJobs {
    fn name(&self) -> &str {
        "m20261217_000001_create_export_jobs"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateExportJobs {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        use ExportJobs as J;
        m.create_table(
            Table::create()
                .table(J::Table)
                .if_not_exists()
                .col(str_col(J::Id, 36).primary_key())
                .col(str_col(J::TenantId, 64))
                .col(str_col(J::Kind, 16))
                .col(str_col(J::SegmentId, 36))
                .col(str_col(J::Format, 8))
                .col(text(J::Spec))
                .col(text(J::Principal))
                .col(str_col(J::Status, 16))
                .col(ColumnDef::new(J::Total).big_integer().null())
                .col(big(J::Members))
                .col(big(J::Rows))
                .col(big(J::Bytes))
                .col(big(J::Parts))
                .col(opt_str(J::Cursor, 64))
                .col(ColumnDef::new(J::Error).text().null())
                .col(str_col(J::CreatedBy, 64))
                .col(ts_col(J::CreatedAt))
                .col(ts_col(J::UpdatedAt))
                .col(dt_null(J::FinishedAt))
                .col(dt_null(J::ExpiresAt))
                .col(dt_null(J::ClaimedUntil))
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ix_export_jobs_tenant",
            J::Table,
            vec![J::TenantId.into_iden(), J::Id.into_iden()],
            false,
        )
        .await?;
        index(
            m,
            "ix_export_jobs_status",
            J::Table,
            vec![J::Status.into_iden(), J::ClaimedUntil.into_iden()],
            false,
        )
        .await?;
        use ExportParts as P;
        m.create_table(
            Table::create()
                .table(P::Table)
                .if_not_exists()
                .col(str_col(P::JobId, 36))
                .col(ColumnDef::new(P::Seq).big_integer().not_null())
                // A page of a thousand members outgrows MySQL's 64 KiB BLOB.
                .col(
                    ColumnDef::new(P::Body)
                        .custom(Alias::new("LONGBLOB"))
                        .not_null(),
                )
                .primary_key(Index::create().col(P::JobId).col(P::Seq))
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            ExportParts::Table.into_iden(),
            ExportJobs::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(t).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
